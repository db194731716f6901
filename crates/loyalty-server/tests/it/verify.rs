//! Verification (DESIGN §3.6): the endpoint and `loyalty verify` prove every
//! account against its ledger, and report a balance corrupted behind the
//! server's back. The ledger itself refuses to be changed.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common::{Storage, TestApp, bin};
use crate::support::{T0, at, min, play, s};

fn cli_verify(storage: &Storage) -> (Output, Value) {
    let out = Command::new(bin())
        .arg("verify")
        .args(storage.args())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {stdout}"));
    (out, report)
}

/// Two players with a few entries each.
async fn some_activity(app: &TestApp) -> (String, String) {
    let table = app.table().await;
    let (p1, p2) = (app.player().await, app.player().await);
    app.set_clock(T0).await;
    for (player, bets) in [(&p1, ["10", "20", "30"]), (&p2, ["40", "50", "60"])] {
        for bet in bets {
            play(app, player, &table, bet, &at(T0, -min(30)), T0).await;
        }
    }
    (p1, p2)
}

#[tokio::test]
async fn a_clean_database_verifies_without_drift_on_the_endpoint_and_the_command_line() {
    let app = TestApp::spawn().await;
    let (p1, _) = some_activity(&app).await;
    let (_, auditor) = app.staff("auditor").await;

    let r = app.verify(&auditor).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["accounts_checked"], 2);
    assert_eq!(r.body["drift"], json!([]));
    assert_eq!(app.ledger(&p1).await.len(), 3);

    // The command line reads the same data while the server runs.
    let (out, report) = cli_verify(&app.storage);
    assert!(
        out.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["accounts_checked"], 2);
    assert_eq!(report["drift"], json!([]));
}

#[tokio::test]
async fn a_balance_corrupted_in_the_database_is_reported_as_drift() {
    let mut app = TestApp::spawn().await;
    let (p1, p2) = some_activity(&app).await;
    app.kill();

    let changed = app
        .storage
        .exec(&format!("UPDATE loyalty_accounts SET current_balance = current_balance + 5 WHERE player_id = '{p1}'"))
        .unwrap();
    assert_eq!(changed, 1);

    let (out, report) = cli_verify(&app.storage);
    assert!(!out.status.success(), "verify must fail on drift: {report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&p1),
        "the drifting player is named: {stdout}"
    );
    assert!(
        !stdout.contains(&p2),
        "only the drifting player is named: {stdout}"
    );
    let drift = report["drift"].as_array().unwrap();
    let balance = drift
        .iter()
        .find(|d| d["check"] == "current_balance")
        .expect("a current_balance finding");
    assert_eq!(balance["player_id"], p1.as_str());
    assert_eq!(
        balance["expected"].as_i64().unwrap() - balance["actual"].as_i64().unwrap(),
        5
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one clear line on stderr: {stderr}"
    );

    // The running server reports the same drift.
    app.restart(&["--test-mode"]);
    let r = app.verify(&app.admin_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["accounts_checked"], 2);
    let drift = r.body["drift"].as_array().unwrap();
    assert!(!drift.is_empty());
    // Every finding names the drifting player, except the conservation
    // law, which concerns no one player (the balances hold points no entry
    // explains).
    assert!(
        drift.iter().all(|d| d["player_id"] == p1.as_str()
            || (d["check"] == "conservation" && d["player_id"].is_null())),
        "{drift:?}"
    );
}

#[tokio::test]
async fn ledger_rows_cannot_be_updated_or_deleted() {
    let mut app = TestApp::spawn().await;
    let (p1, _) = some_activity(&app).await;
    let entries = app.ledger(&p1).await;
    let id = s(&entries[0], "id").to_string();
    app.kill();

    let update = app.storage.exec(&format!(
        "UPDATE ledger_entries SET points_change = 0 WHERE id = '{id}'"
    ));
    let delete = app
        .storage
        .exec(&format!("DELETE FROM ledger_entries WHERE id = '{id}'"));
    let delete_all = app.storage.exec("DELETE FROM ledger_entries");

    for (what, result) in [
        ("update", update),
        ("delete", delete),
        ("delete all", delete_all),
    ] {
        let err = result.expect_err(what);
        assert!(err.contains("append-only"), "{what}: {err}");
    }
    let count = app.storage.query_i64("SELECT count(*) FROM ledger_entries");
    assert_eq!(count, 6);
    let (out, report) = cli_verify(&app.storage);
    assert!(out.status.success(), "{report}");
}

/// `loyalty seed` writes players and rewards through the real operations:
/// the counts are exact, every balance and chain verifies, and the entries
/// are there to read (issue 16 point 3).
#[tokio::test]
async fn loyalty_seed_fills_a_database_that_verifies() {
    let app = crate::common::TestApp::spawn().await;
    let out = std::process::Command::new(crate::common::bin())
        .args(["seed", "--players", "7", "--entries", "12000"])
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["players"], 7);
    assert_eq!(report["entries"], 12_000);
    // No progress bar when piped (a log line may appear; no bar).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains("entries ["),
        "a progress bar was drawn on a pipe: {stderr:?}"
    );
    let verify = std::process::Command::new(crate::common::bin())
        .arg("verify")
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let checked: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(checked["drift_count"], 0);
    assert!(checked["accounts_checked"].as_u64().unwrap() >= 7);
    // 12,000 rewards of 1..=97 points over 7 players, round robin.
    let total: i64 = (0..12_000i64).map(|i| 1 + i % 97).sum();
    let found = app
        .list_players(&app.admin_token)
        .query("q=Seeded&limit=100")
        .await;
    let players = found.body["players"].as_array().unwrap().clone();
    assert_eq!(players.len(), 7);
    let mut sum = 0;
    for p in &players {
        let r = app
            .player_loyalty(&app.admin_token, p["id"].as_str().unwrap())
            .await;
        sum += r.body["current_balance"].as_i64().unwrap();
    }
    assert_eq!(sum, total);
}
