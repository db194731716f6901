//! A manual reward is keyed by `reward_id`, else by a hash of (player, staff,
//! points, reason, gaming day): the same key writes one entry and the repeat
//! answers 200 with the original (DESIGN §3.3, issue 3 point 4).

use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::*;

/// Sets the clock to `when` and sends `body` as `staff`.
async fn reward_on(app: &TestApp, when: &str, staff: &(String, String), body: &Value) -> Resp {
    app.set_clock(when).await;
    app.manual_reward(&staff.1, body.clone()).await
}

#[track_caller]
fn assert_replay_of(r: &Resp, original: &Value) {
    assert_eq!(r.status, 200, "expected a replay: {}", r.text);
    assert_eq!(r.body["idempotent_replay"], true, "{}", r.text);
    for field in ENTRY_FIELDS {
        assert_eq!(
            r.body[field], original[field],
            "replay differs from the original in {field}"
        );
    }
}

#[track_caller]
fn assert_new_entry(r: &Resp, not: &Value) {
    assert_eq!(r.status, 201, "expected a new entry: {}", r.text);
    assert_eq!(r.body["idempotent_replay"], false, "{}", r.text);
    assert_ne!(r.body["id"], not["id"], "{}", r.text);
}

#[tokio::test]
async fn the_same_reward_id_twice_credits_once_and_answers_200_with_the_original_entry() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let mut body = reward_body(&player, &id, 500, REASON);
    body["reward_id"] = json!("floor-7-2026-03-02-001");

    let first = app
        .manual_reward(&token, body.clone())
        .header_values(&[("x-correlation-id", hv(b"first-try"))])
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = app
        .manual_reward(&token, body.clone())
        .header_values(&[("x-correlation-id", hv(b"second-try"))])
        .await;
    assert_replay_of(&second, &first.body);
    assert_eq!(
        second.body["correlation_id"], "first-try",
        "the original entry, not a new one"
    );
    assert_eq!(second.headers["x-correlation-id"], "second-try");

    // A different body under the same reward_id cannot credit twice, and
    // is told so without seeing the original entry (DESIGN §3.3).
    let mut changed = body.clone();
    changed["points"] = json!(900);
    changed["reason"] = json!("a second attempt, more points");
    let reused = app.manual_reward(&token, changed.clone()).await;
    assert_error(&reused, 422, "IDEMPOTENCY_KEY_REUSED", None);
    assert!(!reused.text.contains(REASON), "{}", reused.text);

    let l = app.loyalty(&player).await;
    assert_eq!(l["current_balance"], 500);
    assert_eq!(l["lifetime_points"], 500);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 1);
}

#[tokio::test]
async fn the_same_body_without_reward_id_twice_in_one_gaming_day_is_one_entry() {
    let app = TestApp::spawn().await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &staff.0, 300, REASON);
    let first = reward_on(&app, "2026-03-02T00:00:30Z", &staff, &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = reward_on(&app, "2026-03-02T23:59:00Z", &staff, &body).await;
    assert_replay_of(&again, &first.body);
    assert_eq!(app.balance(&player).await, 300);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 1);
}

#[tokio::test]
async fn crossing_midnight_utc_starts_a_new_gaming_day_and_the_same_body_writes_a_new_entry() {
    let app = TestApp::spawn().await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &staff.0, 300, REASON);
    let before = reward_on(&app, "2026-03-02T23:59:30Z", &staff, &body).await;
    assert_eq!(before.status, 201, "{}", before.text);
    let after = reward_on(&app, "2026-03-03T00:00:30Z", &staff, &body).await;
    assert_new_entry(&after, &before.body);
    assert_ne!(
        after.body["idempotency_key"],
        before.body["idempotency_key"]
    );
    // …and that new day has its own single entry.
    assert_replay_of(
        &reward_on(&app, "2026-03-03T00:10:00Z", &staff, &body).await,
        &after.body,
    );
    assert_eq!(app.balance(&player).await, 600);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 2);
}

#[tokio::test]
async fn with_the_gaming_day_starting_at_06_00_05_59_and_06_01_are_different_days() {
    let app = TestApp::spawn_with(&["--test-mode", "--gaming-day-start-hour", "6"]).await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &staff.0, 300, REASON);
    let late = reward_on(&app, "2026-03-02T05:59:00Z", &staff, &body).await;
    assert_eq!(late.status, 201, "{}", late.text);
    let early = reward_on(&app, "2026-03-02T06:01:00Z", &staff, &body).await;
    assert_new_entry(&early, &late.body);
    assert_eq!(app.balance(&player).await, 600);
}

#[tokio::test]
async fn with_the_gaming_day_starting_at_06_00_the_night_before_00_30_and_05_30_are_one_day() {
    let app = TestApp::spawn_with(&["--test-mode", "--gaming-day-start-hour", "6"]).await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &staff.0, 300, REASON);
    let evening = reward_on(&app, "2026-03-02T23:30:00Z", &staff, &body).await;
    assert_eq!(evening.status, 201, "{}", evening.text);
    // Calendar midnight is not the gaming day's boundary.
    assert_replay_of(
        &reward_on(&app, "2026-03-03T00:30:00Z", &staff, &body).await,
        &evening.body,
    );
    assert_replay_of(
        &reward_on(&app, "2026-03-03T05:30:00Z", &staff, &body).await,
        &evening.body,
    );
    let morning = reward_on(&app, "2026-03-03T06:30:00Z", &staff, &body).await;
    assert_new_entry(&morning, &evening.body);
    assert_eq!(app.balance(&player).await, 600);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 2);
}

#[tokio::test]
async fn the_gaming_day_follows_the_configured_time_zone() {
    // Los Angeles is UTC-8 in January: local midnight is 08:00 UTC.
    let app = TestApp::spawn_with(&["--test-mode", "--gaming-day-tz", "America/Los_Angeles"]).await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &staff.0, 300, REASON);
    let first = reward_on(&app, "2026-01-15T00:30:00Z", &staff, &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_replay_of(
        &reward_on(&app, "2026-01-15T07:59:00Z", &staff, &body).await,
        &first.body,
    );
    let next_day = reward_on(&app, "2026-01-15T08:01:00Z", &staff, &body).await;
    assert_new_entry(&next_day, &first.body);
    assert_eq!(app.balance(&player).await, 600);
}

#[tokio::test]
async fn a_different_reason_points_player_or_staff_member_is_a_different_key() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let a = app.staff("pit_boss").await;
    let b = app.staff("pit_boss").await;
    let player = app.player().await;
    let other = app.player().await;
    let base = reward_body(&player, &a.0, 100, REASON);
    let first = reward_ok(&app, &a.1, &base).await;

    let variants = [
        (
            "reason",
            &a,
            reward_body(&player, &a.0, 100, "another fine reason"),
        ),
        ("points", &a, reward_body(&player, &a.0, 101, REASON)),
        ("player", &a, reward_body(&other, &a.0, 100, REASON)),
        ("staff", &b, reward_body(&player, &b.0, 100, REASON)),
    ];
    let mut keys = vec![first["idempotency_key"].clone()];
    for (what, staff, body) in variants {
        let r = app.manual_reward(&staff.1, body.clone()).await;
        assert_eq!(
            r.status, 201,
            "a different {what} must be a new reward: {}",
            r.text
        );
        assert!(
            !keys.contains(&r.body["idempotency_key"]),
            "a different {what} reused a key"
        );
        keys.push(r.body["idempotency_key"].clone());
    }
    // The original body is still a replay.
    assert_replay_of(&app.manual_reward(&a.1, base.clone()).await, &first);
    assert_eq!(app.balance(&player).await, 100 + 100 + 101 + 100);
    assert_eq!(app.balance(&other).await, 100);
}

#[tokio::test]
async fn a_replay_by_the_deterministic_key_is_not_confused_with_an_idempotency_key_replay() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let body = reward_body(&player, &id, 100, REASON);
    let key = [("idempotency-key", HeaderValue::from_static("click-1"))];
    let first = app
        .manual_reward(&token, body.clone())
        .header_values(&key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    // A retry with a fresh header key is a deterministic-key replay: 200.
    let other_key = [("idempotency-key", HeaderValue::from_static("click-2"))];
    let r = app
        .manual_reward(&token, body.clone())
        .header_values(&other_key)
        .await;
    assert_replay_of(&r, &first.body);
    assert!(!replayed(&r), "not a stored Idempotency-Key response");
    assert_eq!(app.balance(&player).await, 100);
}
