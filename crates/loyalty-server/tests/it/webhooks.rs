//! Signed webhooks (issue 13 point 4, DESIGN §6), against a real receiver on
//! loopback (`fixtures/webhook_receiver.py`), whose signatures are checked
//! by an independent implementation: Python's `hmac`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestApp;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/webhook_receiver.py")
}

/// The receiver, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(dir: &Path, fail_first: u32) -> Receiver {
    let (port_file, log) = (dir.join("port"), dir.join("received.jsonl"));
    let child = Command::new("python3")
        .arg(script())
        .arg("serve")
        .arg(&port_file)
        .arg(&log)
        .arg(fail_first.to_string())
        .spawn()
        .expect("python3 runs the receiver");
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse()
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the receiver did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Receiver { child, port, log }
}

/// What the receiver got, checked by Python's hmac.
fn verified(secret: &str, log: &Path) -> Value {
    if !log.exists() {
        return json!({"requests": 0, "valid": 0, "fresh": 0, "delivered": [], "seqs": []});
    }
    let out = Command::new("python3")
        .arg(script())
        .arg("verify")
        .arg(secret)
        .arg(log)
        .output()
        .expect("python3 verifies");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn some_events(app: &TestApp, n: usize) {
    for i in 0..n {
        let r = app
            .create_player(
                &app.admin_token,
                json!({"display_name": format!("Hook player {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

#[tokio::test]
async fn registering_shows_the_secret_once_and_refuses_urls_that_are_not_allowed() {
    let app = TestApp::spawn().await;
    // Without --webhook-allow-hosts: no internal address, no localhost.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.1/x",
        "ftp://example.org/x",
    ] {
        let r = app
            .create_webhook(&app.admin_token, json!({"url": url}))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "VALIDATION_ERROR"),
            "{url}: {}",
            r.text
        );
    }
    let allowed = TestApp::spawn_with(&["--test-mode", "--webhook-allow-hosts", "127.0.0.1"]).await;
    let bad_type = allowed
        .create_webhook(
            &allowed.admin_token,
            json!({"url": "http://127.0.0.1:9/h", "event_types": ["NO_SUCH_EVENT"]}),
        )
        .await;
    assert_eq!(bad_type.status, 400, "{}", bad_type.text);
    let elsewhere = allowed
        .create_webhook(
            &allowed.admin_token,
            json!({"url": "https://hooks.example.org/h"}),
        )
        .await;
    assert_eq!(
        elsewhere.status, 400,
        "only allowed hosts: {}",
        elsewhere.text
    );

    let body = json!({"url": "http://127.0.0.1:9/h", "event_types": ["TIER_CHANGED"], "description": "tier changes"});
    let first = allowed
        .create_webhook(&allowed.admin_token, body.clone())
        .header("Idempotency-Key", "hook-1")
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.body["secret"].as_str().expect("the secret, once");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let again = allowed
        .create_webhook(&allowed.admin_token, body)
        .header("Idempotency-Key", "hook-1")
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.body["secret"],
        Value::Null,
        "never stored in plaintext: {}",
        again.text
    );
    assert_eq!(again.body["secret_redacted"], true);
    assert_eq!(again.body["id"], first.body["id"]);

    let list = allowed.webhooks(&allowed.admin_token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["webhooks"].as_array().map(Vec::len), Some(1));
    assert!(
        !list.text.contains("whsec_"),
        "the list shows no secret: {}",
        list.text
    );
}

#[tokio::test]
async fn deliveries_are_signed_in_order_and_a_failing_or_down_receiver_holds_up_no_other() {
    let dir = tempfile::tempdir().unwrap();
    // The first three requests fail (503); the receiver then recovers.
    let rx = receiver(dir.path(), 3);
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--webhook-allow-hosts",
        "127.0.0.1",
        "--dispatch-retry-base-ms",
        "20",
        "--dispatch-attempts-max",
        "5",
    ])
    .await;
    let healthy = app
        .create_webhook(
            &app.admin_token,
            json!({"url": format!("http://127.0.0.1:{}/loyalty", rx.port), "event_types": ["PLAYER_CREATED"]}),
        )
        .await;
    assert_eq!(healthy.status, 201, "{}", healthy.text);
    let secret = healthy.body["secret"].as_str().unwrap().to_string();
    let healthy_id = healthy.body["id"].as_str().unwrap().to_string();
    // Nothing listens on port 9: every attempt fails.
    let down = app
        .create_webhook(
            &app.admin_token,
            json!({"url": "http://127.0.0.1:9/down", "event_types": ["PLAYER_CREATED"]}),
        )
        .await;
    assert_eq!(down.status, 201, "{}", down.text);
    let down_id = down.body["id"].as_str().unwrap().to_string();

    some_events(&app, 5).await;
    let created: Vec<(i64, String)> = app
        .all_events()
        .await
        .iter()
        .filter(|e| e["event_type"] == "PLAYER_CREATED" && e["payload"]["card_number"].is_null())
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(created.len(), 5);

    eventually(
        "every event delivered to the healthy receiver",
        async || {
            verified(&secret, &rx.log)["delivered"]
                .as_array()
                .map(Vec::len)
                == Some(5)
        },
    )
    .await;
    let got = verified(&secret, &rx.log);
    let requests = got["requests"].as_u64().unwrap();
    assert_eq!(
        got["valid"].as_u64(),
        Some(requests),
        "every signature verifies: {got}"
    );
    assert_eq!(
        got["fresh"].as_u64(),
        Some(requests),
        "timestamps are the wall clock: {got}"
    );
    let delivered: Vec<String> = got["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(delivered, want, "each event once, in sequence order");
    assert_eq!(
        requests,
        5 + 3,
        "three failed attempts, then each event once"
    );

    // The attempts, as the API lists them: three 503s for the first event,
    // then a success for each.
    let attempts = app.webhook_deliveries(&app.admin_token, &healthy_id).await;
    assert_eq!(attempts.status, 200, "{}", attempts.text);
    let list = attempts.body["deliveries"].as_array().unwrap().clone();
    let failed: Vec<&Value> = list.iter().filter(|d| d["ok"] == false).collect();
    assert_eq!(failed.len(), 3, "{list:?}");
    assert!(
        failed
            .iter()
            .all(|d| d["status_code"] == 503 && d["event_seq"] == created[0].0)
    );
    assert_eq!(list.iter().filter(|d| d["ok"] == true).count(), 5);

    // The endpoint that is down: its attempts fail without a status and its
    // events become dead letters for replay, one by one.
    eventually(
        "the first event dead-lettered for the down endpoint",
        async || {
            let r = app
                .dead_letters(&app.admin_token)
                .query(format!("subscriber=webhook:{down_id}"))
                .await;
            r.body["dead_letters"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
        },
    )
    .await;
    // A replay goes through the same endpoint: still down, it is DEAD again
    // with one more attempt.
    let dead = app
        .dead_letters(&app.admin_token)
        .query(format!("subscriber=webhook:{down_id}"))
        .await;
    let first_dead = dead.body["dead_letters"][0].clone();
    let attempts_before = first_dead["attempts"].as_u64().unwrap();
    let replay = app
        .replay_dead_letter(&app.admin_token, first_dead["id"].to_string())
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text);
    eventually("the replay attempted and failed", async || {
        let r = app
            .dead_letters(&app.admin_token)
            .query(format!("subscriber=webhook:{down_id}"))
            .await;
        r.body["dead_letters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| {
                d["id"] == first_dead["id"]
                    && d["status"] == "DEAD"
                    && d["attempts"].as_u64() == Some(attempts_before + 1)
            })
    })
    .await;
    let down_attempts = app.webhook_deliveries(&app.admin_token, &down_id).await;
    let down_list = down_attempts.body["deliveries"].as_array().unwrap();
    assert!(!down_list.is_empty());
    assert!(
        down_list
            .iter()
            .all(|d| d["ok"] == false && d["status_code"].is_null() && d["error"].is_string()),
        "{down_list:?}"
    );

    // Deleted: no more deliveries.
    let del = app.delete_webhook(&app.admin_token, &healthy_id).await;
    assert_eq!(del.status, 204, "{}", del.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    some_events(&app, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        verified(&secret, &rx.log)["delivered"]
            .as_array()
            .map(Vec::len),
        Some(5),
        "nothing after deletion"
    );
    let gone = app.webhook_deliveries(&app.admin_token, &healthy_id).await;
    assert_eq!(gone.status, 404);
}
