//! Real parallel HTTP clients against one server: no lost update, every
//! entry chained to the one before, no drift (DESIGN §3.6, issue 3 point 6).

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;

use crate::common::TestApp;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_staff_rewarding_100_to_one_player_at_once_leave_1000_in_a_chained_ledger() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let player = app.player().await;
    let mut staff = Vec::new();
    for i in 0..10 {
        staff.push(
            app.staff(if i % 2 == 0 { "pit_boss" } else { "supervisor" })
                .await,
        );
    }

    let bodies: Vec<_> = staff
        .iter()
        .map(|(id, _)| reward_body(&player, id, 100, REASON))
        .collect();
    let responses = join_all(
        staff
            .iter()
            .zip(&bodies)
            .map(|((_, token), body)| app.manual_reward(token, body.clone())),
    )
    .await;
    for r in &responses {
        assert_eq!(r.status, 201, "{}", r.text);
    }

    let l = app.loyalty(&player).await;
    assert_eq!(l["current_balance"], 1000);
    assert_eq!(l["lifetime_points"], 1000);
    assert_eq!(l["tier"], "SILVER");
    let entries = app.ledger_oldest_first(&player).await;
    assert_eq!(entries.len(), 10);
    assert_eq!(assert_chained(&entries), 1000);
    let who: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["staff_id"].as_str().unwrap())
        .collect();
    assert_eq!(who.len(), 10, "one entry per staff member");
    // Each response is the entry the ledger holds.
    for r in &responses {
        let e = entries
            .iter()
            .find(|e| e["id"] == r.body["id"])
            .expect("response entry is in the ledger");
        assert_eq!(e["balance_before"], r.body["balance_before"]);
        assert_eq!(e["balance_after"], r.body["balance_after"]);
    }
    assert_no_drift(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_and_a_slip_completion_for_the_same_player_at_once_are_both_applied() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (id, token) = app.staff("supervisor").await;
    let table = app.table().await;
    let mut pairs = Vec::new();
    for _ in 0..5 {
        let player = app.player().await;
        let slip = app
            .open_slip(&player, &table, "100", Some(&at(T0, -secs(1800))))
            .await;
        pairs.push((player, slip["id"].as_str().unwrap().to_string()));
    }

    let work = pairs.iter().map(|(player, slip)| {
        let (app, id, token) = (&app, &id, &token);
        async move {
            let complete = app.complete_slip(&app.admin_token, slip, json!({}));
            let body = reward_body(player, id, 250, REASON);
            let bonus = app.manual_reward(token, body.clone());
            let (c, b) = tokio::join!(complete, bonus);
            assert_eq!(c.status, 200, "{}", c.text);
            assert_eq!(b.status, 201, "{}", b.text);
            c.body["loyalty"]["points_earned"].as_i64().unwrap()
        }
    });
    let earned = join_all(work).await;

    for ((player, _), points) in pairs.iter().zip(earned) {
        assert!(points > 0);
        let entries = app.ledger_oldest_first(player).await;
        let types: BTreeSet<&str> = entries
            .iter()
            .map(|e| e["transaction_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, BTreeSet::from(["GAMEPLAY", "MANUAL_BONUS"]));
        assert_eq!(assert_chained(&entries), points + 250);
        let l = app.loyalty(player).await;
        assert_eq!(l["current_balance"], points + 250);
        assert_eq!(l["lifetime_points"], points + 250);
    }
    assert_no_drift(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_adjustments_never_take_a_balance_below_zero() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let player = app.player().await;
    let (fid, funder) = app.staff("supervisor").await;
    reward_ok(&app, &funder, &reward_body(&player, &fid, 100, REASON)).await;
    let mut sups = Vec::new();
    for _ in 0..5 {
        sups.push(app.staff("supervisor").await);
    }
    let bodies: Vec<_> = sups
        .iter()
        .map(|(id, _)| reward_body(&player, id, -30, "correcting an over-award"))
        .collect();
    let responses = join_all(
        sups.iter()
            .zip(&bodies)
            .map(|((_, token), body)| app.manual_reward(token, body.clone())),
    )
    .await;
    let applied = responses.iter().filter(|r| r.status == 201).count();
    for r in responses.iter().filter(|r| r.status != 201) {
        assert_error(r, 422, "INSUFFICIENT_BALANCE", None);
    }
    assert_eq!(applied, 3, "100 covers exactly three adjustments of 30");
    assert_eq!(app.balance(&player).await, 10);
    assert_eq!(assert_chained(&app.ledger_oldest_first(&player).await), 10);
    assert_no_drift(&app).await;
}
