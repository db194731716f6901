//! Event retention (docs/events.md, "Retention"): old events that every
//! consumer has passed move to archive files; nothing a consumer still
//! needs moves; `loyalty export --events` reads every event there ever was
//! and `loyalty verify` catches a changed archive.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Storage, TestApp, bin};
use crate::support::*;

/// Now (the administrator created by the command line is written at the
/// real time), and 31 days later: past a 30-day retention.
fn now_and_a_month_later() -> (String, String) {
    let now = jiff::Timestamp::now();
    let later = now + jiff::SignedDuration::from_hours(31 * 24);
    (now.to_string(), later.to_string())
}

/// The archive directory the server uses: its own on the embedded store,
/// one named on PostgreSQL (where it is required).
fn archive_dir(app: &TestApp) -> PathBuf {
    match &app.storage {
        Storage::Dir(d) => d.join("event-archive"),
        Storage::Pg { .. } => app.data_dir.with_file_name("event-archive"),
    }
}

fn retention_args(archive: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--test-mode",
        "--event-retention-days",
        "30",
        "--event-archive-interval-ms",
        "200",
        "--dispatch-retry-base-ms",
        "20",
        "--dispatch-attempts-max",
        "2",
        "--reward-rate-limit",
        "1000",
        "--webhook-allow-hosts",
        "127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    if crate::common::postgres_backend() {
        args.push("--event-archive-dir".into());
        args.push(archive.display().to_string());
    }
    args
}

/// `loyalty <args…>` against the app's storage and archive directory.
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .args(app.storage.args())
        .args([
            "--event-archive-dir",
            &archive_dir(app).display().to_string(),
        ])
        .output()
        .expect("run loyalty")
}

fn exported_events(app: &TestApp) -> Vec<Value> {
    let out = cli(app, &["export", "--events"]);
    assert!(
        out.status.success(),
        "export --events: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The oldest event still in the outbox.
async fn oldest_seq(app: &TestApp) -> i64 {
    app.events_after(0).await[0]["seq"].as_i64().unwrap()
}

async fn spawn_with_retention() -> (TestApp, PathBuf) {
    // The archive directory must be known before the server starts; on
    // PostgreSQL it sits beside the (unused) data directory.
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::fresh(dir.path());
    let token = crate::common::cli_staff_create(&storage, "admin", "admin");
    let archive = match &storage {
        Storage::Dir(d) => d.join("event-archive"),
        Storage::Pg { .. } => dir.path().join("event-archive"),
    };
    let args = retention_args(&archive);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = TestApp::start(dir, storage, token, &args).await;
    assert_eq!(archive_dir(&app), archive);
    (app, archive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_every_consumer_has_passed_move_to_checked_archives() {
    let (app, archive) = spawn_with_retention().await;
    let (t0, t31) = now_and_a_month_later();
    app.set_clock(&t0).await;
    let (staff, token) = app.staff("supervisor").await;
    let players = [app.player().await, app.player().await];
    for n in 0..6 {
        reward(&app, &token, &staff, &players[n % 2], 10, n).await;
    }
    caught_up(&app, 30).await;

    // The activity feed fails one reward's events: they become dead letters
    // waiting for a replay, and hold archiving back.
    app.set_faults(json!({"failing_subscribers": ["activity_feed"]}))
        .await;
    reward(&app, &token, &staff, &players[0], 10, 6).await;
    let dead = eventually(Duration::from_secs(30), "a dead letter", || async {
        let r = app
            .dead_letters(&app.admin_token)
            .query("subscriber=activity_feed")
            .await;
        let seqs: Vec<i64> = r.body["dead_letters"]
            .as_array()?
            .iter()
            .filter_map(|d| d["event_seq"].as_i64())
            .collect();
        seqs.iter().min().copied()
    })
    .await;
    app.set_faults(json!({"failing_subscribers": []})).await;
    for n in 7..10 {
        reward(&app, &token, &staff, &players[n % 2], 10, n).await;
    }
    let head = caught_up(&app, 30).await;
    let before = app.all_events().await;
    assert_eq!(before.len() as i64, head);

    // A month later everything is old enough: archiving stops short of the
    // dead letter.
    app.set_clock(&t31).await;
    eventually(Duration::from_secs(30), "the first archive", || async {
        (oldest_seq(&app).await == dead).then_some(())
    })
    .await;
    let files: Vec<String> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    assert!(
        files.contains(&format!("events-{:012}-{:012}.jsonl", 1, dead - 1)),
        "{files:?}"
    );
    // The archive holds the events exactly as /v1/events showed them.
    let first_file: Vec<Value> =
        std::fs::read_to_string(archive.join(format!("events-{:012}-{:012}.jsonl", 1, dead - 1)))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(first_file, before[..(dead - 1) as usize].to_vec());

    // Replayed, the dead letters stop holding it back; the newest event
    // always stays, so numbering goes on from it.
    let r = app
        .dead_letters(&app.admin_token)
        .query("subscriber=activity_feed")
        .await;
    for d in r.body["dead_letters"].as_array().unwrap() {
        let r = app.replay_dead_letter(&app.admin_token, &d["id"]).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    eventually(
        Duration::from_secs(30),
        "archiving up to the head",
        || async { (oldest_seq(&app).await == head).then_some(()) },
    )
    .await;

    // The activity items of archived events went with them.
    assert_eq!(
        app.storage.query_i64(&format!(
            "SELECT count(*) FROM activity_items WHERE event_seq < {head}"
        )),
        0
    );

    // Every event there ever was, in order, from the archives and the outbox.
    assert_eq!(exported_events(&app), before);
    let out = cli(&app, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["event_archives"]["events"], head - 1, "{report}");
    assert_eq!(report["event_archives"]["problems"], json!([]));

    // Writing goes on after the head; the activity feed shows what is left.
    let entry = reward(&app, &token, &staff, &players[1], 10, 10).await;
    let newest = caught_up(&app, 30).await;
    assert!(newest > head);
    // The old head is a month old as well: once a newer event exists, it
    // goes to an archive too; the new reward's events are young and stay.
    eventually(Duration::from_secs(30), "the old head archived", || async {
        (oldest_seq(&app).await == head + 1).then_some(())
    })
    .await;
    let after = app.events_after(0).await;
    let seqs: Vec<i64> = after.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, ((head + 1)..=newest).collect::<Vec<_>>());
    let feed = app.feed(&players[1], "activity").await;
    assert!(!feed.is_empty());
    assert!(
        feed.iter().all(|e| e["event_seq"].as_i64() > Some(head)),
        "{feed:?}"
    );
    assert!(
        feed.iter()
            .any(|e| e["data"]["payload"]["ledger_entry_id"] == entry["id"]),
        "{feed:?}"
    );

    // A changed archive is caught by verify and refused by the export.
    let path = archive.join(format!("events-{:012}-{:012}.jsonl", 1, dead - 1));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"points_change\":10", "\"points_change\":99", 1),
    )
    .unwrap();
    let out = cli(&app, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match its record"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&app, &["export", "--events"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_has_not_caught_up_keeps_its_events_in_the_database() {
    let (app, _archive) = spawn_with_retention().await;
    let (t0, t31) = now_and_a_month_later();
    app.set_clock(&t0).await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    reward(&app, &token, &staff, &player, 10, 0).await;
    caught_up(&app, 30).await;
    // An endpoint nobody listens on: its deliveries keep failing, and with
    // a long retry it never gets past the first event after registering.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = app
        .create_webhook(
            &app.admin_token,
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "event_types": null}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let name = format!("webhook:{}", r.body["id"].as_str().unwrap());
    let registered_at = app.storage.query_i64(&format!(
        "SELECT seq FROM subscriber_checkpoints WHERE subscriber = '{name}'"
    ));
    for n in 1..4 {
        reward(&app, &token, &staff, &player, 10, n).await;
    }
    app.set_clock(&t31).await;
    // Everything the webhook has passed (up to its registration) goes;
    // nothing after it does, however old.
    eventually(Duration::from_secs(30), "the archive", || async {
        (oldest_seq(&app).await > 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(oldest_seq(&app).await, registered_at + 1);
}
