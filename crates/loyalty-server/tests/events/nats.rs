//! The JetStream relay against a real `nats-server -js` started here
//! (`LOYALTY_TEST_NATS_BIN` or `nats-server` on PATH). Without one these
//! tests print a loud SKIPPED and pass — unless `LOYALTY_CI=1`, where they
//! fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::TestApp;
use crate::support::*;

fn find_nats() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOYALTY_TEST_NATS_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// The nats-server binary, or None after announcing the skip (panics under CI).
fn nats_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_nats();
    if found.is_none() {
        if std::env::var("LOYALTY_CI").is_ok_and(|v| v == "1") {
            panic!(
                "{test}: nats-server not found (LOYALTY_CI=1 forbids skipping): install it (apt-get install -y nats-server) or set LOYALTY_TEST_NATS_BIN"
            );
        }
        eprintln!("\n**************************************************************");
        eprintln!("SKIPPED {test}: nats-server not found");
        eprintln!("(install it: apt-get install -y nats-server, or set LOYALTY_TEST_NATS_BIN)");
        eprintln!("**************************************************************\n");
    }
    found
}

/// A `nats-server -js` on loopback with its own store directory.
struct Nats {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// With TLS: the directory of `make_certs`; the server requires TLS
    /// and a client certificate signed by its CA.
    certs: Option<PathBuf>,
}

impl Nats {
    fn start(bin: PathBuf) -> Nats {
        Nats::start_with(bin, None)
    }

    fn start_with(bin: PathBuf, certs: Option<PathBuf>) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Nats {
            bin,
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            certs,
        };
        n.restart();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .args(self.certs.iter().flat_map(|c| {
                let f = |name: &str| c.join(name).display().to_string();
                [
                    "--tls".to_string(),
                    "--tlscert".into(),
                    f("server.crt"),
                    "--tlskey".into(),
                    f("server.key"),
                    "--tlsverify".into(),
                    "--tlscacert".into(),
                    f("ca.crt"),
                ]
            }))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every message of the stream: (sequence, Nats-Msg-Id, subject, envelope).
async fn stream_messages(nats: &Nats) -> Vec<(u64, String, String, Value)> {
    let mut opts = async_nats::ConnectOptions::new();
    if let Some(c) = &nats.certs {
        opts = opts
            .require_tls(true)
            .add_root_certificates(c.join("ca.crt"))
            .add_client_certificate(c.join("client.crt"), c.join("client.key"));
    }
    let client = opts
        .connect(nats.url())
        .await
        .expect("test client connects");
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream("LOYALTY_EVENTS")
        .await
        .expect("the stream exists");
    let info = stream.info().await.expect("stream info");
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    let last = info.state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("message");
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        out.push((seq, id, m.subject.to_string(), body));
    }
    out
}

/// Every outbox event is in the stream exactly once, on its type's subject,
/// in seq order.
async fn assert_stream_matches_outbox(app: &TestApp, nats: &Nats) {
    let events = app.all_events().await;
    let msgs = stream_messages(nats).await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, id, _, _) in &msgs {
        *count.entry(id.clone()).or_default() += 1;
    }
    let dups: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates in the stream: {dups:?}");
    assert_eq!(msgs.len(), events.len(), "stream and outbox differ in size");
    for ((_, id, subject, body), ev) in msgs.iter().zip(&events) {
        assert_eq!(id, ev["event_id"].as_str().unwrap());
        assert_eq!(
            subject,
            &format!("loyalty.events.{}", ev["event_type"].as_str().unwrap())
        );
        assert_eq!(body, ev);
    }
}

async fn relay_lag(app: &TestApp) -> i64 {
    app.subscriber_status().await["nats_relay"]["lag"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn every_event_reaches_jetstream_exactly_once_across_a_nats_restart() {
    let Some(bin) =
        nats_or_skip("every_event_reaches_jetstream_exactly_once_across_a_nats_restart")
    else {
        return;
    };
    let mut nats = Nats::start(bin);
    let url = nats.url();
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--reward-rate-limit",
        "100000",
        "--nats-url",
        &url,
    ])
    .await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    let mut n = 0;
    for _ in 0..10 {
        reward(&app, &token, &staff, &player, 10, n).await;
        n += 1;
    }
    caught_up(&app, 60).await;

    // Mid-stream: the broker goes away while writes go on.
    nats.stop();
    for _ in 0..10 {
        reward(&app, &token, &staff, &player, 10, n).await;
        n += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        relay_lag(&app).await > 0,
        "nothing can be acknowledged while NATS is down"
    );
    nats.restart();
    for _ in 0..10 {
        reward(&app, &token, &staff, &player, 10, n).await;
        n += 1;
    }
    caught_up(&app, 120).await;
    assert_stream_matches_outbox(&app, &nats).await;
    let m = app.metrics_text().await;
    assert!(
        metric(
            &m,
            "loyalty_subscriber_published_total{subscriber=\"nats_relay\"}"
        )
        .unwrap_or(0.0)
            >= app.all_events().await.len() as f64
    );
    assert_eq!(metric(&m, "loyalty_nats_relay_leader"), Some(1.0));
}

#[tokio::test]
async fn two_nodes_relay_one_at_a_time_and_every_event_arrives_once() {
    let Some(bin) = nats_or_skip("two_nodes_relay_one_at_a_time_and_every_event_arrives_once")
    else {
        return;
    };
    let nats = Nats::start(bin);
    let url = nats.url();
    let args = [
        "--test-mode",
        "--reward-rate-limit",
        "100000",
        "--lease-ttl-ms",
        "1500",
        "--nats-url",
        &url,
    ];
    // Two nodes on one database (PostgreSQL under LOYALTY_TEST_BACKEND=
    // postgres, else the same SQLite file from two processes).
    let a = TestApp::spawn_with(&args).await;
    let mut b = Some(
        TestApp::start(
            tempfile::tempdir().unwrap(),
            a.storage.clone(),
            a.admin_token.clone(),
            &args,
        )
        .await,
    );
    let (staff, token) = a.staff("supervisor").await;
    let player = a.player().await;
    for n in 0..20 {
        let node = if n % 2 == 0 { &a } else { b.as_ref().unwrap() };
        reward(node, &token, &staff, &player, 10, n).await;
    }
    caught_up(&a, 60).await;
    caught_up(b.as_ref().unwrap(), 60).await;
    assert_stream_matches_outbox(&a, &nats).await;

    // Exactly one node holds the relay lease.
    let leader = |m: String| metric(&m, "loyalty_nats_relay_leader").unwrap_or(0.0);
    let la = leader(a.metrics_text().await);
    let lb = leader(b.as_ref().unwrap().metrics_text().await);
    assert_eq!(la + lb, 1.0, "leaders: a={la} b={lb}");

    // The leader dies; the other takes over after the lease expires. (The
    // dead node's handle stays alive: dropping it would drop a PostgreSQL
    // test database the survivor still uses.)
    let mut a = a;
    let mut b = b.take().unwrap();
    let survivor = if la == 1.0 {
        a.kill();
        &b
    } else {
        b.kill();
        &a
    };
    for n in 100..110 {
        reward(survivor, &token, &staff, &player, 10, n).await;
    }
    caught_up(survivor, 60).await;
    assert_stream_matches_outbox(survivor, &nats).await;
    let ids: BTreeSet<String> = stream_messages(&nats)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(ids.len(), survivor.all_events().await.len());
}

#[tokio::test]
async fn the_relay_speaks_tls_to_a_server_that_verifies_it_and_its_client_certificate() {
    let test = "the_relay_speaks_tls_to_a_server_that_verifies_it_and_its_client_certificate";
    let Some(bin) = nats_or_skip(test) else {
        return;
    };
    let has_openssl = Command::new("openssl").arg("version").output().is_ok();
    if !has_openssl {
        assert!(
            std::env::var("LOYALTY_CI").map_or(true, |v| v != "1"),
            "{test}: openssl is required under CI"
        );
        eprintln!("SKIPPED {test}: openssl not found");
        return;
    }
    let certs = crate::common::certs::make_certs();
    let c = |f: &str| certs.path().join(f).display().to_string();
    // The server takes only TLS, and only from clients with a certificate
    // its CA signed: events arriving prove the relay used both.
    let nats = Nats::start_with(bin, Some(certs.path().to_path_buf()));
    let (ca, cert, key) = (c("ca.crt"), c("client.crt"), c("client.key"));
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--nats-url",
        &nats.url(),
        "--nats-ca-file",
        &ca,
        "--nats-cert-file",
        &cert,
        "--nats-key-file",
        &key,
    ])
    .await;
    for _ in 0..3 {
        app.player().await;
    }
    caught_up(&app, 60).await;
    assert_stream_matches_outbox(&app, &nats).await;
    assert!(!stream_messages(&nats).await.is_empty());
}
