//! The ledger export: streamed CSV and JSON lines over a date range, over
//! HTTP and on the command line, equal to the ledger itself.

use std::process::Command;

use serde_json::Value;

use crate::common::{TestApp, bin};
use crate::support::{T0, assert_error, at, min, play};

/// Three players with two slips each, the second slip an hour later.
async fn activity(app: &TestApp) -> Vec<String> {
    let table = app.table().await;
    app.set_clock(T0).await;
    let mut players = Vec::new();
    for bet in ["10", "20", "30"] {
        let p = app.player().await;
        play(app, &p, &table, bet, &at(T0, -min(30)), T0).await;
        players.push(p);
    }
    let later = at(T0, min(60));
    app.set_clock(&later).await;
    for p in &players {
        play(app, p, &table, "40", &at(&later, -min(30)), &later).await;
    }
    players
}

async fn all_entries(app: &TestApp, players: &[String]) -> Vec<Value> {
    let mut all = Vec::new();
    for p in players {
        all.extend(app.ledger(p).await);
    }
    all.sort_by_key(|e| e["id"].as_str().unwrap().to_string());
    all
}

#[tokio::test]
async fn the_jsonl_export_is_the_ledger_entry_for_entry() {
    let app = TestApp::spawn().await;
    let players = activity(&app).await;
    let (_, auditor) = app.staff("auditor").await;

    let r = app.export_ledger(&auditor).query("format=jsonl").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let mut exported: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    exported.sort_by_key(|e| e["id"].as_str().unwrap().to_string());
    assert_eq!(exported.len(), 6);
    assert_eq!(exported, all_entries(&app, &players).await);
}

#[tokio::test]
async fn the_csv_export_has_a_header_and_one_row_per_entry_in_the_range() {
    let app = TestApp::spawn().await;
    activity(&app).await;
    let r = app
        .export_ledger(&app.admin_token)
        .query(format!(
            "format=csv&from={}&to={}",
            at(T0, -1000),
            at(T0, min(30))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = r.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(
        lines[0].starts_with("id,player_id,transaction_type,"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len(),
        1 + 3,
        "only the first hour's three entries: {lines:?}"
    );
    assert!(lines[1..].iter().all(|l| l.contains(",GAMEPLAY,")));
}

#[tokio::test]
async fn the_export_needs_audit_read_and_valid_parameters() {
    let app = TestApp::spawn().await;
    let (_, pit_boss) = app.staff("pit_boss").await;
    assert_error(&app.export_ledger(&pit_boss).await, 403, "FORBIDDEN");
    assert_error(
        &app.export_ledger(&app.admin_token)
            .query("format=xml")
            .await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &app.export_ledger(&app.admin_token)
            .query("from=yesterday")
            .await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &app.export_ledger(&app.admin_token)
            .query(format!("from={}&to={}", at(T0, 1000), T0))
            .await,
        400,
        "VALIDATION_ERROR",
    );
}

#[tokio::test]
async fn loyalty_export_on_the_command_line_writes_the_same_lines() {
    let app = TestApp::spawn().await;
    activity(&app).await;
    let http = app
        .export_ledger(&app.admin_token)
        .query("format=csv")
        .await;
    let out = Command::new(bin())
        .args(["export", "--format", "csv"])
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), http.text);
}

/// Long-running commands draw a progress bar on a terminal and nothing
/// extra when their output is piped (issue 13 point 7): `export` and
/// `verify` run twice, piped and under a pseudo-terminal (`script`), and the
/// data written is the same.
#[tokio::test]
async fn export_and_verify_show_progress_on_a_terminal_only() {
    let app = TestApp::spawn().await;
    activity(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let args = app.storage.args().join(" ");
    let bin = bin();
    let bin = bin.display();

    // Piped: stderr stays empty, stdout is the data.
    let piped = Command::new(&*bin.to_string())
        .args(["export", "--format", "csv"])
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let verify = Command::new(&*bin.to_string())
        .arg("verify")
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(verify.status.success());
    assert!(
        verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // On a terminal: the bar is drawn on it, the file gets only the data.
    let file = dir.path().join("ledger.csv");
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{bin} export --format csv {args} > {}",
            file.display()
        ))
        .arg("/dev/null")
        .output()
        .expect("script(1) from util-linux runs the command on a pseudo-terminal");
    assert!(
        tty.status.success(),
        "{}",
        String::from_utf8_lossy(&tty.stderr)
    );
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("exporting"),
        "no progress bar drawn: {screen:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), piped.stdout);
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!("{bin} verify {args}"))
        .arg("/dev/null")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("verifying"),
        "no progress bar drawn: {screen:?}"
    );
    assert!(screen.contains("\"drift_count\":0"), "{screen:?}");
}
