//! TLS to the backing services, with certificates made by `openssl` for
//! each test: PostgreSQL (`sslmode`, `sslrootcert`, `sslcert` and `sslkey`
//! in `--database-url`, against a private PostgreSQL that refuses TCP
//! connections without TLS) and Redis (`rediss://` with `--redis-ca-file`
//! and a client certificate, against a TLS-only Redis that verifies its
//! clients). The NATS relay's TLS is tested with the relay
//! (`tests/events/nats.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::certs::make_certs;
use crate::common::{Storage, TestApp, bin, cli_staff_create};
use crate::servers::{PgInstance, Redis, on_path, pg_bin_dir, require};

/// Runs `loyalty staff create` (opens the store, migrates, writes) against
/// `url`; returns whether it worked and what it printed on stderr.
fn staff_create(url: &str) -> (bool, String) {
    let out = Command::new(bin())
        .args([
            "staff",
            "create",
            "--name",
            "tls",
            "--role",
            "admin",
            "--database-url",
            url,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn on_socket<T: Send + 'static>(
    url: String,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || f(&mut postgres::Client::connect(&url, postgres::NoTls).unwrap()))
        .join()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_server_as_sslmode_says() {
    let Some(pg_bin) = pg_bin_dir() else {
        require("PostgreSQL server binaries (initdb, pg_ctl)", false);
        return;
    };
    if !require("runuser (to run initdb as postgres)", on_path("runuser"))
        || !require("openssl (to make test certificates)", on_path("openssl"))
    {
        return;
    }
    let certs = make_certs();
    let c = |f: &str| certs.path().join(f).display().to_string();
    let pg = PgInstance::start_tls(&pg_bin, certs.path());
    on_socket(pg.socket_url("postgres"), |db| {
        for sql in [
            "CREATE DATABASE loyalty_tls",
            "CREATE ROLE certuser LOGIN",
            "CREATE DATABASE loyalty_cert OWNER certuser",
        ] {
            db.batch_execute(sql).unwrap();
        }
    });
    let url = |user: &str, host: &str, db: &str, query: &str| {
        format!("postgres://{user}@{host}:{}/{db}?{query}", pg.port)
    };
    let full = format!("sslmode=verify-full&sslrootcert={}", c("ca.crt"));

    // The server takes no plaintext over TCP, so whatever works below ran
    // over TLS.
    let (ok, err) = staff_create(&url(
        "postgres",
        "127.0.0.1",
        "loyalty_tls",
        "sslmode=disable",
    ));
    assert!(!ok && err.contains("no encryption"), "{err}");

    // verify-full: the chain leads to our CA and the certificate names
    // 127.0.0.1. A node serves over it, every connection encrypted.
    let verified = url("postgres", "127.0.0.1", "loyalty_tls", &full);
    let (ok, err) = staff_create(&verified);
    assert!(ok, "{err}");
    let storage = Storage::Pg {
        url: verified.clone(),
        admin_url: pg.socket_url("postgres"),
        db: "loyalty_tls".into(),
    };
    let admin = cli_staff_create(&storage, "admin", "admin");
    let app = TestApp::start(
        tempfile::tempdir().unwrap(),
        storage,
        admin,
        &["--db-pool-size", "4"],
    )
    .await;
    let player = app.player().await;
    let (staff, token) = app.staff("supervisor").await;
    let reward = serde_json::json!({"player_id": player, "points": 25, "staff_id": staff,
        "reason": "reward over a TLS connection"});
    let r = app.manual_reward(&token, reward).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (encrypted, all) = on_socket(pg.socket_url("postgres"), |db| {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*)
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                 WHERE a.application_name = 'loyalty'",
                &[],
            )
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    });
    assert!(
        all >= 2,
        "the node's pool and sequencer are connected ({all})"
    );
    assert_eq!(encrypted, all, "every connection of the node is encrypted");

    // A server whose certificate another CA signed is refused.
    let other = format!("sslmode=verify-full&sslrootcert={}", c("other-ca.crt"));
    let (ok, err) = staff_create(&url("postgres", "127.0.0.1", "loyalty_tls", &other));
    assert!(!ok && err.contains("UnknownIssuer"), "{err}");

    // The certificate does not name "localhost": verify-full refuses it,
    // verify-ca (chain only) accepts it.
    let (ok, err) = staff_create(&url("postgres", "localhost", "loyalty_tls", &full));
    assert!(
        !ok && err.contains("not valid for name \"localhost\""),
        "{err}"
    );
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", c("ca.crt"));
    let (ok, err) = staff_create(&url("postgres", "localhost", "loyalty_tls", &ca_only));
    assert!(ok, "{err}");
    // ...and so does require with no root certificate, as in libpq.
    let (ok, err) = staff_create(&url(
        "postgres",
        "localhost",
        "loyalty_tls",
        "sslmode=require",
    ));
    assert!(ok, "{err}");

    // A role that logs in by certificate needs the client certificate.
    let (ok, err) = staff_create(&url("certuser", "127.0.0.1", "loyalty_cert", &full));
    assert!(
        !ok && err.contains("requires a valid client certificate"),
        "{err}"
    );
    let with_cert = format!(
        "{full}&sslcert={}&sslkey={}",
        c("client.crt"),
        c("client.key")
    );
    let (ok, err) = staff_create(&url("certuser", "127.0.0.1", "loyalty_cert", &with_cert));
    assert!(ok, "{err}");
}

/// Starts `loyalty serve` with `args` and waits for it to exit (it must,
/// within 30 s); returns what it printed on stderr.
fn serve_must_fail(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "serve {args:?} started");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_limiter_speaks_tls_with_a_client_certificate() {
    if !require("redis-server", on_path("redis-server"))
        || !require("openssl (to make test certificates)", on_path("openssl"))
    {
        return;
    }
    let certs = make_certs();
    let c = |f: &str| certs.path().join(f).display().to_string();
    let redis = Redis::start_tls(certs.path());
    let tls_url = format!("rediss://127.0.0.1:{}", redis.port);
    let (ca, cert, key) = (c("ca.crt"), c("client.crt"), c("client.key"));

    // Plaintext, a foreign CA, or no client certificate: the node does not
    // start, and says why.
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let err = serve_must_fail(&["--redis-url", &plain]);
    assert!(err.contains("cannot reach Redis"), "{err}");
    let other = c("other-ca.crt");
    let err = serve_must_fail(&[
        "--redis-url",
        &tls_url,
        "--redis-ca-file",
        &other,
        "--redis-cert-file",
        &cert,
        "--redis-key-file",
        &key,
    ]);
    assert!(err.contains("UnknownIssuer"), "{err}");
    let err = serve_must_fail(&["--redis-url", &tls_url, "--redis-ca-file", &ca]);
    assert!(err.contains("CertificateRequired"), "{err}");
    let err = serve_must_fail(&["--redis-url", &plain, "--redis-ca-file", &ca]);
    assert!(err.contains("need a rediss:// URL"), "{err}");

    // With the CA and the client certificate the limiter works over TLS:
    // the limit of 2 rewards an hour is counted in Redis.
    let app = TestApp::spawn_with(&[
        "--redis-url",
        &tls_url,
        "--redis-ca-file",
        &ca,
        "--redis-cert-file",
        &cert,
        "--redis-key-file",
        &key,
        "--reward-rate-limit",
        "2",
    ])
    .await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    let reward = |i: u32| {
        serde_json::json!({"player_id": player, "points": 5, "staff_id": staff,
            "reason": format!("reward {i} over a TLS limiter")})
    };
    for i in 0..2 {
        let r = app.manual_reward(&token, reward(i)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app.manual_reward(&token, reward(2)).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let ready = app
        .send(reqwest::Method::GET, None, "/readyz", None, &[])
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}
