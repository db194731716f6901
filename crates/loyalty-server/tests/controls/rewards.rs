//! `POST /v1/loyalty/manual-rewards` writes one ledger entry as DESIGN §5
//! shows it, moves balance, lifetime points and tier with it, and logs it.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::*;

#[tokio::test]
async fn a_reward_answers_201_with_a_manual_bonus_entry_carrying_every_design_field() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("pit_boss").await;
    let player = app.player().await;

    let body = reward_body(&player, &staff_id, 500, REASON);
    let r = app
        .manual_reward(&token, body.clone())
        .header_values(&[("x-correlation-id", hv(b"reward-test.1_a"))])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = &r.body;
    for field in ENTRY_FIELDS {
        assert!(e.get(field).is_some(), "entry lacks {field}: {e}");
    }
    assert_eq!(e["player_id"], player);
    assert_eq!(e["transaction_type"], "MANUAL_BONUS");
    assert!(
        e["event_type"].as_str().is_some_and(|t| !t.is_empty()),
        "{e}"
    );
    assert_eq!(e["points_change"], 500);
    assert_eq!(e["reason"], REASON);
    assert_eq!(e["source"], "manual_reward");
    assert_eq!(e["staff_id"], staff_id);
    assert_eq!(e["rating_slip_id"], Value::Null);
    assert!(
        e["idempotency_key"].as_str().is_some_and(|k| !k.is_empty()),
        "{e}"
    );
    assert_eq!(e["balance_before"], 0);
    assert_eq!(e["balance_after"], 500);
    assert_eq!(e["tier_before"], "BRONZE");
    assert_eq!(e["tier_after"], "BRONZE");
    assert_eq!(e["correlation_id"], "reward-test.1_a");
    assert_eq!(e["idempotent_replay"], false);
    let created: Timestamp = e["created_at"].as_str().unwrap().parse().unwrap();
    let t0: Timestamp = T0.parse().unwrap();
    assert!(
        created >= t0 && created.duration_since(t0).as_secs() < 60,
        "created_at {created} is not the set clock"
    );
    assert_eq!(r.headers["x-correlation-id"], "reward-test.1_a");

    // The ledger holds exactly this entry, field for field.
    let entries = app.ledger_oldest_first(&player).await;
    assert_eq!(entries.len(), 1);
    for field in ENTRY_FIELDS {
        assert_eq!(
            entries[0][field], e[field],
            "ledger and response disagree on {field}"
        );
    }
    let l = app.loyalty(&player).await;
    assert_eq!(l["current_balance"], 500);
    assert_eq!(l["lifetime_points"], 500);
    assert_eq!(l["tier"], "BRONZE");

    // Every event of the request carries its correlation id.
    let evs: Vec<Value> = app
        .all_events()
        .await
        .into_iter()
        .filter(|ev| ev["correlation_id"] == "reward-test.1_a")
        .collect();
    let types: Vec<&str> = evs
        .iter()
        .map(|ev| ev["event_type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"LEDGER_ENTRY_CREATED"), "{types:?}");
    assert!(types.contains(&"BALANCE_UPDATED"), "{types:?}");
}

#[tokio::test]
async fn a_reward_id_becomes_part_of_the_entry_idempotency_key() {
    let app = TestApp::spawn().await;
    let (staff_id, token) = app.staff("supervisor").await;
    let player = app.player().await;
    let mut body = reward_body(&player, &staff_id, 50, REASON);
    body["reward_id"] = json!("promo-2026-03-02-0001");
    let e = reward_ok(&app, &token, &body).await;
    assert!(
        e["idempotency_key"]
            .as_str()
            .unwrap()
            .contains("promo-2026-03-02-0001"),
        "{e}"
    );
}

#[tokio::test]
async fn negative_points_by_a_supervisor_write_an_adjustment_that_leaves_lifetime_points_alone() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("supervisor").await;
    let player = app.player().await;
    reward_ok(&app, &token, &reward_body(&player, &staff_id, 800, REASON)).await;

    let e = reward_ok(
        &app,
        &token,
        &reward_body(&player, &staff_id, -300, "correcting a double entry"),
    )
    .await;
    assert_eq!(e["transaction_type"], "ADJUSTMENT");
    assert_eq!(e["points_change"], -300);
    assert_eq!(e["balance_before"], 800);
    assert_eq!(e["balance_after"], 500);
    assert_eq!(e["staff_id"], staff_id);
    assert_eq!(e["reason"], "correcting a double entry");
    assert_eq!(e["idempotent_replay"], false);

    let l = app.loyalty(&player).await;
    assert_eq!(l["current_balance"], 500);
    assert_eq!(
        l["lifetime_points"], 800,
        "an adjustment must not lower lifetime points"
    );
    assert_chained(&app.ledger_oldest_first(&player).await);
}

#[tokio::test]
async fn an_adjustment_below_zero_is_422_insufficient_balance_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("supervisor").await;
    let player = app.player().await;
    reward_ok(&app, &token, &reward_body(&player, &staff_id, 100, REASON)).await;
    let events_before = app.all_events().await.len();

    let r = app
        .manual_reward(
            &token,
            reward_body(&player, &staff_id, -101, "taking back too much"),
        )
        .await;
    assert_error(&r, 422, "INSUFFICIENT_BALANCE", None);
    assert_eq!(r.body["error"]["details"]["available"], 100, "{}", r.text);
    assert_eq!(r.body["error"]["details"]["requested"], 101, "{}", r.text);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 1);
    assert_eq!(app.balance(&player).await, 100);
    assert_eq!(app.all_events().await.len(), events_before);

    // Down to exactly zero is allowed.
    let e = reward_ok(
        &app,
        &token,
        &reward_body(&player, &staff_id, -100, "taking back all of it"),
    )
    .await;
    assert_eq!(e["balance_after"], 0);
    assert_eq!(app.balance(&player).await, 0);
}

#[tokio::test]
async fn a_reward_may_name_an_open_paused_or_closed_slip_of_that_player_but_not_another_players() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let other = app.player().await;
    let table = app.table().await;
    let started = at(T0, -secs(600));
    let open = app.open_slip(&player, &table, "25", Some(&started)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let paused = app.open_slip(&player, &table, "25", Some(&started)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let closed = app.open_slip(&player, &table, "25", Some(&started)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = app.open_slip(&other, &table, "25", Some(&started)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .pause_slip(&app.admin_token, &paused)
        .body(json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .complete_slip(&app.admin_token, &closed, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let gameplay = app.balance(&player).await;

    for (slip, status) in [(&open, "OPEN"), (&paused, "PAUSED"), (&closed, "CLOSED")] {
        let r = app.get_slip(&app.admin_token, slip).await;
        assert_eq!(r.body["status"], status, "{}", r.text);
        let mut body = reward_body(
            &player,
            &staff_id,
            10,
            &format!("bonus for the {status} slip"),
        );
        body["rating_slip_id"] = json!(slip);
        let e = reward_ok(&app, &token, &body).await;
        assert_eq!(e["rating_slip_id"], json!(slip), "{e}");
    }
    assert_eq!(app.balance(&player).await, gameplay + 30);

    let events_before = app.all_events().await.len();
    let mut body = reward_body(&player, &staff_id, 10, "bonus on someone else's slip");
    body["rating_slip_id"] = json!(theirs);
    let r = app.manual_reward(&token, body.clone()).await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("rating_slip_id"));
    assert_eq!(app.balance(&player).await, gameplay + 30);
    assert_eq!(app.balance(&other).await, 0);
    assert_eq!(app.all_events().await.len(), events_before);
}

#[tokio::test]
async fn a_reward_crossing_1000_lifetime_points_moves_the_tier_to_silver_and_logs_it() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("supervisor").await;
    let player = app.player().await;
    reward_ok(&app, &token, &reward_body(&player, &staff_id, 900, REASON)).await;

    let r = app
        .manual_reward(
            &token,
            reward_body(&player, &staff_id, 100, "welcome to silver tier"),
        )
        .header_values(&[("x-correlation-id", hv(b"tier-up-1"))])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["tier_before"], "BRONZE");
    assert_eq!(r.body["tier_after"], "SILVER");
    let l = app.loyalty(&player).await;
    assert_eq!(l["tier"], "SILVER");
    assert_eq!(l["lifetime_points"], 1000);

    let logs = app.logs();
    let line = logs
        .iter()
        .find(|l| l["message"] == "loyalty_tier_changed" && l["correlation_id"] == "tier-up-1")
        .unwrap_or_else(|| panic!("no loyalty_tier_changed line for tier-up-1"));
    assert_eq!(line["player_id"], player);
    assert_eq!(line["tier_before"], "BRONZE");
    assert_eq!(line["tier_after"], "SILVER");
    // Only the reward that moved the tier logs a change.
    let changes = logs
        .iter()
        .filter(|l| l["message"] == "loyalty_tier_changed")
        .count();
    assert_eq!(changes, 1);
}

#[tokio::test]
async fn a_reward_writes_the_canonical_manual_reward_issued_log_line() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (staff_id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let r = app
        .manual_reward(&token, reward_body(&player, &staff_id, 250, REASON))
        .header_value("x-correlation-id", hv(b"log-check-1"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "manual_reward_issued" && l["correlation_id"] == "log-check-1")
        .unwrap_or_else(|| panic!("no manual_reward_issued line for log-check-1"));
    assert_eq!(line["staff_id"], staff_id, "{line}");
    assert_eq!(line["player_id"], player, "{line}");
    assert_eq!(line["points"], 250, "{line}");
    assert_eq!(line["reason"], REASON, "{line}");
    assert_eq!(line["idempotency_key"], r.body["idempotency_key"], "{line}");
    assert_eq!(line["balance_before"], 0, "{line}");
    assert_eq!(line["balance_after"], 250, "{line}");
    assert_eq!(line["tier_before"], "BRONZE", "{line}");
    assert_eq!(line["tier_after"], "BRONZE", "{line}");
    assert_eq!(line["correlation_id"], "log-check-1", "{line}");
}
