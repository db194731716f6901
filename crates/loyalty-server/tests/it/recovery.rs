//! Partial completion and recovery (DESIGN §3.2): when accrual fails the slip
//! still closes, loyalty stays pending, and recovery — by hand or by the
//! background retry — earns the slip's points exactly once.

use std::time::Duration;

use serde_json::json;

use crate::common::TestApp;
use crate::support::{T0, assert_error, at, eventually, min, s};

/// Holds the background retry off: a pending slip's next retry is due a
/// second or more after its last attempt on the test clock, so setting the
/// clock `hours` back makes nothing due while the test drives recovery by hand.
async fn hold_background_retry(app: &TestApp, hours: i64) {
    app.set_clock(&at(T0, -min(60 * hours))).await;
}

#[tokio::test]
async fn a_failed_accrual_closes_the_slip_and_recovery_earns_it_exactly_once() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    app.set_accrual_fault("fail").await;

    let cid = "partial-completion-1";
    let r = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .headers(&[("X-Correlation-Id", cid)])
        .await;
    hold_background_retry(&app, 1).await;

    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.code(), "PARTIAL_COMPLETION");
    assert_eq!(r.body["error"]["details"]["rating_slip_id"], id);
    assert_eq!(r.body["error"]["correlation_id"], cid);
    assert_eq!(r.headers["x-correlation-id"], cid);
    let failed: Vec<_> = app
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "loyalty_accrual_failed" && l["rating_slip_id"] == id)
        .collect();
    assert_eq!(failed.len(), 1, "one loyalty_accrual_failed line");
    assert_eq!(failed[0]["recovery_needed"], true);
    assert_eq!(failed[0]["correlation_id"], cid);
    assert_eq!(failed[0]["player_id"], player.as_str());

    let closed = app.slip(id).await;
    assert_eq!(closed["status"], "CLOSED");
    assert_eq!(closed["loyalty_status"], "PENDING");
    assert!(app.ledger(&player).await.is_empty());
    assert_eq!(app.loyalty(&player).await["current_balance"], 0);
    let event = app
        .all_events()
        .await
        .into_iter()
        .find(|e| e["event_type"] == "LOYALTY_ACCRUAL_FAILED");
    let event = event.expect("a LOYALTY_ACCRUAL_FAILED event");
    assert_eq!(event["payload"]["rating_slip_id"], id);
    assert_eq!(event["correlation_id"], cid);

    app.set_accrual_fault("ok").await;
    let first = app.recover_loyalty(&app.admin_token, id).await;
    let second = app.recover_loyalty(&app.admin_token, id).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(first.body["loyalty"]["idempotent_replay"], false);
    assert_eq!(second.body["loyalty"]["idempotent_replay"], true);
    assert_eq!(
        first.body["loyalty"]["ledger_entry_id"],
        second.body["loyalty"]["ledger_entry_id"]
    );
    assert_eq!(first.body["loyalty"]["points_earned"], 1620);
    assert_eq!(second.body["loyalty"]["points_earned"], 1620);
    assert_eq!(first.body["rating_slip"]["loyalty_status"], "ACCRUED");
    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], first.body["loyalty"]["ledger_entry_id"]);
    assert_eq!(entries[0]["points_change"], 1620);
    assert_eq!(entries[0]["rating_slip_id"], id);
    assert_eq!(app.loyalty(&player).await["current_balance"], 1620);
    // Completing it again now replays the recovered result.
    let again = app.complete_slip(&app.admin_token, id, json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["loyalty"]["idempotent_replay"], true);
    assert_eq!(app.ledger(&player).await.len(), 1);
}

#[tokio::test]
async fn recovery_while_accrual_still_fails_stays_pending_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    app.set_accrual_fault("fail").await;
    let r = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    hold_background_retry(&app, 1).await;

    let again = app.recover_loyalty(&app.admin_token, id).await;
    hold_background_retry(&app, 2).await;

    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.code(), "PARTIAL_COMPLETION");
    assert_eq!(again.body["error"]["details"]["rating_slip_id"], id);
    assert_eq!(app.slip(id).await["loyalty_status"], "PENDING");
    assert!(app.ledger(&player).await.is_empty());

    // A pending slip completed again retries its accrual.
    app.set_accrual_fault("ok").await;
    let done = app.complete_slip(&app.admin_token, id, json!({})).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["loyalty"]["idempotent_replay"], false);
    assert_eq!(done.body["loyalty"]["points_earned"], 1620);
    assert_eq!(app.ledger(&player).await.len(), 1);
}

#[tokio::test]
async fn recovering_an_open_slip_is_refused() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let slip = app.open_slip(&player, &table, "100", None).await;
    let id = s(&slip, "id");

    assert_error(
        &app.recover_loyalty(&app.admin_token, id).await,
        409,
        "SLIP_NOT_CLOSED",
    );
    assert_eq!(app.pause_slip(&app.admin_token, id).await.status, 200);
    assert_error(
        &app.recover_loyalty(&app.admin_token, id).await,
        409,
        "SLIP_NOT_CLOSED",
    );

    let after = app.slip(id).await;
    assert_eq!(after["status"], "PAUSED");
    assert_eq!(after["loyalty_status"], "NONE");
    assert!(app.ledger(&player).await.is_empty());
}

#[tokio::test]
async fn a_pending_slip_is_recovered_by_the_background_retry_without_anyone_asking() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    app.set_accrual_fault("fail").await;
    let r = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    app.set_accrual_fault("ok").await;
    let accrued = eventually(Duration::from_secs(30), "the background retry", || async {
        let slip = app.slip(id).await;
        (slip["loyalty_status"] == "ACCRUED").then_some(slip)
    })
    .await;

    assert_eq!(accrued["status"], "CLOSED");
    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["points_change"], 1620);
    assert_eq!(entries[0]["rating_slip_id"], id);
    assert_eq!(accrued["ledger_entry_id"], entries[0]["id"]);
    assert_eq!(app.loyalty(&player).await["current_balance"], 1620);
    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "loyalty_accrual_completed" && l["rating_slip_id"] == id);
    let line = line.expect("a loyalty_accrual_completed line from the retry");
    assert_eq!(line["action"], "background_retry");
    assert_eq!(line["points"], 1620);

    // A manual recovery afterwards only replays.
    let replay = app.recover_loyalty(&app.admin_token, id).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.body["loyalty"]["idempotent_replay"], true);
    assert_eq!(app.ledger(&player).await.len(), 1);
}
