//! Concurrent completions (DESIGN §3.3, §3.6): one slip from many clients
//! earns once; many slips of one player lose no update.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::{T0, at, min, s};

/// Completes `slips` all at once, one task per slip id.
async fn complete_concurrently(app: &Arc<TestApp>, slips: Vec<String>) -> Vec<Resp> {
    let tasks: Vec<_> = slips
        .into_iter()
        .map(|id| {
            let app = Arc::clone(app);
            tokio::spawn(async move { app.complete_slip(&app.admin_token, &id, json!({})).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("completion task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_completing_one_slip_write_one_entry() {
    let app = Arc::new(TestApp::spawn().await);
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id").to_string();

    let responses = complete_concurrently(&app, vec![id.clone(); 8]).await;

    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let fresh = responses
        .iter()
        .filter(|r| r.body["loyalty"]["idempotent_replay"] == false)
        .count();
    assert_eq!(fresh, 1, "exactly one completion is not a replay");
    let entry_ids: Vec<&Value> = responses
        .iter()
        .map(|r| &r.body["loyalty"]["ledger_entry_id"])
        .collect();
    assert!(
        entry_ids.iter().all(|e| *e == entry_ids[0]),
        "all report the same entry"
    );
    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(&entries[0]["id"], entry_ids[0]);
    assert_eq!(entries[0]["points_change"], 1620);
    assert_eq!(app.loyalty(&player).await["current_balance"], 1620);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_slips_of_one_player_completed_at_once_lose_no_update() {
    let app = Arc::new(TestApp::spawn().await);
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let mut slips = Vec::new();
    for i in 0..50 {
        let bet = (5 + i).to_string();
        let slip = app
            .open_slip(&player, &table, &bet, Some(&at(T0, -min(30))))
            .await;
        slips.push(s(&slip, "id").to_string());
    }

    let responses = complete_concurrently(&app, slips).await;

    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["loyalty"]["idempotent_replay"], false);
    }
    let mut entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 50);
    let sum: i64 = entries
        .iter()
        .map(|e| e["points_change"].as_i64().unwrap())
        .sum();
    let summary = app.loyalty(&player).await;
    assert_eq!(summary["current_balance"].as_i64(), Some(sum));
    assert_eq!(summary["lifetime_points"].as_i64(), Some(sum));

    // Oldest first, each entry starts where the previous one ended.
    entries.reverse();
    assert_eq!(entries[0]["balance_before"], 0);
    for pair in entries.windows(2) {
        assert_eq!(
            pair[1]["balance_before"], pair[0]["balance_after"],
            "chain broken at {}",
            pair[1]["id"]
        );
    }
    assert_eq!(entries[49]["balance_after"].as_i64(), Some(sum));
    // Every response carries its own entry's numbers.
    for r in &responses {
        let l = &r.body["loyalty"];
        let e = entries
            .iter()
            .find(|e| e["id"] == l["ledger_entry_id"])
            .expect("the response's entry");
        assert_eq!(e["points_change"], l["points_earned"]);
        assert_eq!(e["balance_before"], l["balance_before"]);
        assert_eq!(e["balance_after"], l["balance_after"]);
    }

    let verify = app.verify(&app.admin_token).await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    assert_eq!(verify.body["drift"], json!([]));
}
