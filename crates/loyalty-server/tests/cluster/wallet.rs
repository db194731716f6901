//! The wallet on two nodes of one PostgreSQL (issue 11 points 4 and 8):
//! both sweep expired holds at once and each hold is refunded once;
//! captures and refunds of the same holds from both nodes end every escrow
//! in one final state.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::servers::two_nodes;

const T0: &str = "2026-06-01T18:00:00Z";

/// Fast sweeps, and rewards enough to fund the players.
const FLAGS: [&str; 5] = [
    "--test-mode",
    "--escrow-sweep-interval-ms",
    "50",
    "--reward-rate-limit",
    "1000",
];

/// Players with 1,000 points each and a merchant.
async fn setup(app: &TestApp, players: usize) -> (Vec<String>, String) {
    app.set_clock(T0).await;
    let me = app.me(&app.admin_token).await.body["id"].clone();
    let mut ids = Vec::new();
    for _ in 0..players {
        let p = app.player().await;
        let r = app
            .manual_reward(&app.admin_token, json!({"player_id": p, "staff_id": me, "points": 1_000, "reason": "wallet cluster funding"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(p);
    }
    let m = app
        .create_merchant(&app.admin_token, json!({"name": "Pool bar"}))
        .await;
    (ids, m.body["id"].as_str().unwrap().to_string())
}

async fn hold(
    app: &TestApp,
    player: &str,
    merchant: &str,
    amount: i64,
    expires: Option<&str>,
) -> String {
    let mut body = json!({"player_id": player, "merchant_id": merchant, "amount": amount, "reason": "cluster hold"});
    if let Some(e) = expires {
        body["expires_at"] = json!(e);
    }
    let r = app.hold(&app.admin_token, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn verify_clean(app: &TestApp) {
    let v = app.verify(&app.admin_token).await;
    assert_eq!(v.body["drift_count"], 0, "{}", v.text);
}

fn refunds_of(entries: &[Value], escrow: &str) -> usize {
    entries
        .iter()
        .filter(|e| e["escrow_id"] == escrow && e["transaction_type"] == "ESCROW_REFUND")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sweeping_at_once_refund_each_expired_hold_once() {
    let Some((a, b)) = two_nodes(&FLAGS).await else {
        return;
    };
    let (players, merchant) = setup(&a, 4).await;
    b.set_clock(T0).await;
    let expires = "2026-06-01T18:10:00Z";
    let mut escrows = Vec::new();
    for (i, p) in players.iter().enumerate() {
        for k in 0..5 {
            let node = if (i + k) % 2 == 0 { &a } else { &b };
            escrows.push((
                p.clone(),
                hold(node, p, &merchant, 10 + k as i64, Some(expires)).await,
            ));
        }
    }
    // The clock moves past the expiry on every node at once (shared test clock).
    a.set_clock("2026-06-01T18:11:00Z").await;
    b.set_clock("2026-06-01T18:11:00Z").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut held = 0;
        for (_, id) in &escrows {
            let r = b.escrow(&b.admin_token, id).await;
            if r.body["status"] == "HELD" {
                held += 1;
            }
        }
        if held == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{held} holds were not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in &players {
        let l = a.player_ledger(&a.admin_token, p).query("limit=1000").await;
        let entries = l.body["entries"].as_array().unwrap().clone();
        for (owner, id) in &escrows {
            if owner == p {
                assert_eq!(
                    refunds_of(&entries, id),
                    1,
                    "escrow {id} refunded more or less than once"
                );
            }
        }
        let lo = a.player_loyalty(&a.admin_token, p).await;
        assert_eq!(
            (
                lo.body["current_balance"].as_i64(),
                lo.body["escrow_balance"].as_i64()
            ),
            (Some(1_000), Some(0))
        );
    }
    let expired = a
        .events(&a.admin_token)
        .query("event_type=ESCROW_EXPIRED&limit=1000")
        .await;
    assert_eq!(
        expired.body["events"].as_array().unwrap().len(),
        escrows.len()
    );
    verify_clean(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captures_and_refunds_from_two_nodes_end_each_escrow_once() {
    let Some((a, b)) = two_nodes(&FLAGS).await else {
        return;
    };
    let (players, merchant) = setup(&a, 2).await;
    b.set_clock(T0).await;
    let mut ids = Vec::new();
    for p in &players {
        for _ in 0..8 {
            ids.push(hold(&a, p, &merchant, 100, None).await);
        }
    }
    let nodes = [&a, &b];
    let mut work = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for k in 0..4 {
            let node = nodes[(i + k) % 2];
            let token = &node.admin_token;
            work.push(match k {
                0 => node.settle(token, id, json!({"amount": 30, "final": false})),
                1 => node.settle(token, id, json!({"amount": 50})),
                2 => node.refund(token, id, json!({})),
                _ => node.settle(token, id, json!({})),
            });
        }
    }
    let results = join_all(work).await;
    for r in &results {
        assert!(
            r.status == 200
                || r.code() == "ESCROW_NOT_HELD"
                || r.code() == "ESCROW_AMOUNT_EXCEEDED",
            "{} {}",
            r.status,
            r.text
        );
    }
    let mut earned = 0;
    for id in &ids {
        let e = b.escrow(&b.admin_token, id).await.body;
        assert_ne!(e["status"], "HELD", "{e}");
        assert_eq!(e["held_amount"], 0);
        earned += e["settled_amount"].as_i64().unwrap();
    }
    let m = a.merchant(&a.admin_token, &merchant).await;
    assert_eq!(m.body["earnings"].as_i64(), Some(earned));
    verify_clean(&b).await;
}
