//! Moving an embedded installation to PostgreSQL with `loyalty migrate-to`:
//! every balance, entry, event, slip and token survives the move.

use serde_json::{Value, json};

use crate::common::{Storage, TestApp, bin};
use crate::servers::{pg_url, require};

async fn snapshot(app: &TestApp, players: &[String], slips: &[String]) -> Value {
    let mut out = Vec::new();
    for p in players {
        let loyalty = app.player_loyalty(&app.admin_token, p).await;
        let ledger = app
            .player_ledger(&app.admin_token, p)
            .query("limit=1000")
            .await;
        assert_eq!(loyalty.status, 200, "{}", loyalty.text);
        out.push(json!({"loyalty": loyalty.body, "ledger": ledger.body["entries"]}));
    }
    for s in slips {
        let slip = app.get_slip(&app.admin_token, s).await;
        let mut body = slip.body;
        // Time played of an open slip grows with the clock; compare the rest.
        body.as_object_mut().unwrap().remove("accumulated_seconds");
        out.push(body);
    }
    let events = app.events(&app.admin_token).query("limit=1000").await;
    out.push(events.body["events"].clone());
    for p in players {
        for feed in ["activity", "notifications"] {
            let r = app
                .player_feed(&app.admin_token, p, feed)
                .query("limit=1000")
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            out.push(r.body[feed].clone());
        }
    }
    Value::Array(out)
}

/// Waits until every subscriber has handled the whole outbox.
async fn caught_up(app: &TestApp) {
    for _ in 0..300 {
        let s = app.subscribers(&app.admin_token).await;
        let head = s.body["outbox_head"].as_i64();
        if s.body["subscribers"]
            .as_array()
            .is_some_and(|v| v.iter().all(|v| v["checkpoint"].as_i64() == head))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the subscribers did not catch up");
}

/// A reward that lifts `player` to a higher tier.
async fn tier_change(app: &TestApp, token: &str, staff: &str, player: &str) {
    let r = app
        .manual_reward(
            token,
            json!({"player_id": player, "points": 10_000, "staff_id": staff,
                     "reason": "tier match from another casino"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.body["tier_after"], r.body["tier_before"], "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_postgres_keeps_every_balance_entry_event_and_token() {
    let Some(server) = pg_url() else {
        require("PostgreSQL (LOYALTY_TEST_PG_URL)", false);
        return;
    };
    // Activity on the embedded default. The background retry of pending
    // accruals is held off (10 min) on both nodes so the pending slip stays
    // pending until this test recovers it on the new backend.
    let flags = ["--test-mode", "--accrual-retry-interval-ms", "600000"];
    let mut app = TestApp::spawn_with(&flags).await;
    assert!(matches!(app.storage, Storage::Dir(_)));
    let table = app.table().await;
    let (staff, token) = app.staff("supervisor").await;
    let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(45)).to_string();
    let mut players = Vec::new();
    let mut slips = Vec::new();
    for i in 0..5 {
        let p = app.player().await;
        for bet in ["25", "100"] {
            let slip = app.open_slip(&p, &table, bet, Some(&started)).await;
            let id = slip["id"].as_str().unwrap().to_string();
            let r = app.complete_slip(&app.admin_token, &id, json!({})).await;
            assert_eq!(r.status, 200, "{}", r.text);
            slips.push(id);
        }
        let r = app
            .manual_reward(&token, json!({"player_id": p, "points": 100 + i, "staff_id": staff, "reason": "welcome back bonus"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        players.push(p);
    }
    // An open slip and a pending one move too.
    let open = app
        .open_slip(&players[0], &table, "50", Some(&started))
        .await;
    slips.push(open["id"].as_str().unwrap().to_string());
    app.set_accrual_fault("fail").await;
    let pending = app
        .open_slip(&players[1], &table, "50", Some(&started))
        .await;
    let pending_id = pending["id"].as_str().unwrap().to_string();
    let r = app
        .complete_slip(&app.admin_token, &pending_id, json!({}))
        .await;
    assert_eq!(r.status, 202);
    slips.push(pending_id.clone());
    // A tier notification (a row with a serial id) moves too.
    app.set_accrual_fault("ok").await;
    tier_change(&app, &token, &staff, &players[3]).await;
    // The wallet moves: a merchant, a hold still held, one partly captured.
    let merchant = app
        .create_merchant(&app.admin_token, json!({"name": "Moving bistro"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut escrows = Vec::new();
    for (p, amount) in [(&players[0], 50), (&players[1], 60)] {
        let r = app
            .hold(&app.admin_token, json!({"player_id": p, "merchant_id": merchant, "amount": amount, "reason": "dinner before the move"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        escrows.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = app
        .settle(&app.admin_token, &escrows[1], json!({"amount": 20}))
        .await;
    assert_eq!(r.body["status"], "PARTIALLY_SETTLED", "{}", r.text);
    let wallet_before: Vec<Value> = {
        let mut v = Vec::new();
        for id in &escrows {
            v.push(app.escrow(&app.admin_token, id).await.body);
        }
        v
    };
    caught_up(&app).await;
    let before = snapshot(&app, &players, &slips).await;
    app.kill();

    // The move.
    let target = Storage::fresh_pg(&server);
    let Storage::Pg { url, .. } = &target else {
        unreachable!()
    };
    let out = std::process::Command::new(bin())
        .args(["migrate-to", "--to", url])
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate-to: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["drift_count"], 0, "{report}");
    assert_eq!(report["accounts_checked"], 5);
    assert_eq!(report["rows_copied"]["ledger_entries"], 20, "{report}");
    assert_eq!(report["rows_copied"]["escrows"], 2, "{report}");
    assert_eq!(report["rows_copied"]["merchants"], 1, "{report}");

    // Moving again into the same (now full) database is refused.
    let again = std::process::Command::new(bin())
        .args(["migrate-to", "--to", url])
        .args(app.storage.args())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The same tokens work against PostgreSQL and every number is the same.
    let moved = TestApp::start(
        tempfile::tempdir().unwrap(),
        target,
        app.admin_token.clone(),
        &flags,
    )
    .await;
    let after = snapshot(&moved, &players, &slips).await;
    assert_eq!(before, after);
    for (id, was) in escrows.iter().zip(&wallet_before) {
        let now = moved.escrow(&moved.admin_token, id).await;
        assert_eq!(&now.body, was, "escrow {id} moved unchanged");
    }
    // The held one is captured on the new backend; the merchant earns on.
    let r = moved
        .settle(&moved.admin_token, &escrows[0], json!({}))
        .await;
    assert_eq!(r.body["status"], "SETTLED", "{}", r.text);
    let m = moved.merchant(&moved.admin_token, &merchant).await;
    assert_eq!(m.body["earnings"], 70, "{}", m.text);
    // Players are found by name on the new backend (its own trigram index).
    let found = moved
        .list_players(&moved.admin_token)
        .query("q=test+play")
        .await;
    assert_eq!(
        found.body["players"].as_array().map(Vec::len),
        Some(players.len()),
        "{}",
        found.text
    );
    let r = moved
        .manual_reward(&token, json!({"player_id": players[2], "points": 1, "staff_id": staff, "reason": "first reward after the move"}))
        .await;
    assert_eq!(r.status, 201, "the moved staff token works: {}", r.text);
    // The pending slip is recovered on the new backend, exactly once.
    let r = moved
        .recover_loyalty(&moved.admin_token, &pending_id)
        .body(json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["loyalty"]["idempotent_replay"], false, "{}", r.text);
    // Subscribers go on writing on the new backend: serial ids continue
    // after the copied rows, so the next notification is stored, not
    // dead-lettered.
    tier_change(&moved, &token, &staff, &players[4]).await;
    caught_up(&moved).await;
    let n = moved
        .player_notifications(&moved.admin_token, &players[4])
        .await;
    let notes = n.body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        notes.iter().any(|n| n["data"]["tier_after"] == "GOLD"),
        "{}",
        n.text
    );
    let dead = moved.dead_letters(&moved.admin_token).await;
    assert_eq!(dead.body["dead_letters"], json!([]), "{}", dead.text);
    let verify = moved.verify(&moved.admin_token).await;
    assert_eq!(verify.body["drift"], json!([]), "{}", verify.text);
    // New events continue the sequence without a gap.
    let events = moved.events(&moved.admin_token).query("limit=1000").await;
    let seqs: Vec<i64> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}
