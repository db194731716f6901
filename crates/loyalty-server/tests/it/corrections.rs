//! Voiding and correcting closed slips over HTTP (DESIGN §3.2):
//! `loyalty:adjust`, a reason, replays, INSUFFICIENT_BALANCE when the
//! points are gone, events and canonical log lines.

use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::{T0, assert_error, at, min, play, s};

async fn post(app: &TestApp, token: &str, slip: &str, action: &str, body: Value) -> Resp {
    app.slip_action(token, slip, action, Some(body)).await
}

/// A player with one slip of an hour at 100 (1,620 points, SILVER).
async fn setup(app: &TestApp) -> (String, String) {
    app.set_clock(&at(T0, min(120))).await;
    let player = app.player().await;
    let table = app.table().await;
    let done = play(app, &player, &table, "100", T0, &at(T0, min(60))).await;
    assert_eq!(done["loyalty"]["points_earned"], 1_620);
    (player, s(&done["rating_slip"], "id").to_string())
}

#[tokio::test]
async fn a_supervisor_voids_a_slip_and_its_points_lifetime_and_tier_go_back() {
    let app = TestApp::spawn().await;
    let (player, slip) = setup(&app).await;
    let (_, supervisor) = app.staff("supervisor").await;

    let r = post(&app, &supervisor, &slip, "void", json!({"reason": "short"})).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = post(
        &app,
        &supervisor,
        &slip,
        "void",
        json!({"reason": "rated at the wrong seat", "x": 1}),
    )
    .await;
    assert_error(&r, 400, "VALIDATION_ERROR");

    let r = post(
        &app,
        &supervisor,
        &slip,
        "void",
        json!({"reason": "rated at the wrong seat"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rating_slip"]["status"], "VOIDED");
    assert_eq!(r.body["rating_slip"]["corrections"][0]["kind"], "VOID");
    assert_eq!(
        r.body["rating_slip"]["corrections"][0]["points_reversed"],
        1_620
    );
    assert_eq!(r.body["loyalty"]["points_reversed"], 1_620);
    assert_eq!(r.body["loyalty"]["current_balance"], 0);
    assert_eq!(r.body["loyalty"]["tier"], "BRONZE");
    assert_eq!(r.body["loyalty"]["idempotent_replay"], false);
    let summary = app.loyalty(&player).await;
    assert_eq!(
        (
            &summary["current_balance"],
            &summary["lifetime_points"],
            &summary["tier"]
        ),
        (&json!(0), &json!(0), &json!("BRONZE"))
    );
    let entries = app.ledger(&player).await;
    assert_eq!(entries[0]["transaction_type"], "GAMEPLAY_REVERSAL");
    assert_eq!(entries[0]["points_change"], -1_620);
    assert_eq!(entries[0]["reason"], "rated at the wrong seat");

    // Again: the same answer, nothing new.
    let again = post(
        &app,
        &supervisor,
        &slip,
        "void",
        json!({"reason": "rated at the wrong seat"}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["loyalty"]["idempotent_replay"], true);
    assert_eq!(app.ledger(&player).await.len(), 2);
    // A voided slip neither completes nor corrects.
    let r = post(&app, &supervisor, &slip, "complete", json!({})).await;
    assert_error(&r, 409, "SLIP_NOT_OPEN");
    let r = post(
        &app,
        &supervisor,
        &slip,
        "correct",
        json!({"reason": "after the void", "average_bet": "50"}),
    )
    .await;
    assert_error(&r, 409, "CONFLICT");

    let voided: Vec<Value> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "RATING_SLIP_VOIDED")
        .collect();
    assert_eq!(voided.len(), 1);
    assert_eq!(voided[0]["payload"]["rating_slip_id"], slip.as_str());
    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "rating_slip_voided")
        .expect("a rating_slip_voided log line");
    assert_eq!(line["points_reversed"], 1_620);
    assert_eq!(line["reason"], "rated at the wrong seat");
    let verify = app.verify(&app.admin_token).await;
    assert_eq!(verify.body["drift"], json!([]), "{}", verify.text);
}

#[tokio::test]
async fn a_correction_reaccrues_and_spent_points_refuse_it() {
    let app = TestApp::spawn().await;
    let (player, slip) = setup(&app).await;
    let (staff, supervisor) = app.staff("supervisor").await;

    let r = post(
        &app,
        &supervisor,
        &slip,
        "correct",
        json!({"reason": "nothing to change here"}),
    )
    .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let body = json!({"reason": "average bet keyed wrongly", "average_bet": "50"});
    let r = post(&app, &supervisor, &slip, "correct", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rating_slip"]["status"], "CLOSED");
    assert_eq!(r.body["rating_slip"]["average_bet"], "50");
    assert_eq!(r.body["loyalty"]["points_reversed"], 1_620);
    assert_eq!(r.body["loyalty"]["points_accrued"], 810);
    assert_eq!(r.body["loyalty"]["current_balance"], 810);
    let again = post(&app, &supervisor, &slip, "correct", body).await;
    assert_eq!(
        again.body["loyalty"]["idempotent_replay"], true,
        "{}",
        again.text
    );
    assert_eq!(app.ledger(&player).await.len(), 3);
    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "rating_slip_corrected")
        .expect("a rating_slip_corrected log line");
    assert_eq!(line["points_accrued"], 810);

    // Points spent: a void would take back more than is there.
    let spend = app
        .manual_reward(
            &supervisor,
            json!({"player_id": player, "points": -500, "staff_id": staff,
                   "reason": "points redeemed at the desk"}),
        )
        .await;
    assert_eq!(spend.status, 201, "{}", spend.text);
    let r = post(
        &app,
        &supervisor,
        &slip,
        "void",
        json!({"reason": "rated at the wrong seat"}),
    )
    .await;
    assert_error(&r, 422, "INSUFFICIENT_BALANCE");
    assert_eq!(app.ledger(&player).await.len(), 4, "nothing written");
    assert_eq!(
        app.all_events()
            .await
            .iter()
            .filter(|e| e["event_type"] == "RATING_SLIP_CORRECTED")
            .count(),
        1
    );
}
