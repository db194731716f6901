//! At most 10 manual rewards per staff member in any 60 seconds, a sliding
//! window driven by the server clock (DESIGN §3.4, issue 3 point 3).
//!
//! The test clock keeps running from the instant set, so each reward sets
//! the clock just before it is sent, and instants that are compared sit half
//! a second off a whole-second boundary: `Retry-After` is then exact no
//! matter how long each request takes.

use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::*;

/// Sets the clock to `T + offset_ms`, then sends a reward with a reason
/// unique to `n` (so it is not a replay).
async fn reward_at(
    app: &TestApp,
    offset_ms: i64,
    staff: &(String, String),
    player: &str,
    n: usize,
) -> Resp {
    app.set_clock(&at(T0, offset_ms)).await;
    app.manual_reward(
        &staff.1,
        reward_body(player, &staff.0, 1, &format!("{REASON} number {n}")),
    )
    .await
}

#[track_caller]
fn assert_limited(r: &Resp, retry_after_s: u64) {
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED", None);
    let s = retry_after(r);
    assert!((1..=60).contains(&s), "Retry-After {s} out of 1..=60");
    assert_eq!(s, retry_after_s, "{}", r.text);
}

#[tokio::test]
async fn ten_rewards_in_a_minute_pass_and_the_eleventh_is_429_with_retry_after_until_the_oldest_slot_frees()
 {
    let app = TestApp::spawn().await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    for n in 0..10 {
        let r = reward_at(&app, 0, &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    // 20.5 s later the oldest slot frees in 39.5 s: Retry-After 40.
    let r = reward_at(&app, secs(20) + 500, &staff, &player, 10).await;
    assert_limited(&r, 40);
    assert_eq!(
        r.body["error"]["details"]["retry_after_seconds"], 40,
        "{}",
        r.text
    );
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 10);
    assert_eq!(app.balance(&player).await, 10);
}

#[tokio::test]
async fn one_staff_member_at_the_limit_does_not_limit_another() {
    let app = TestApp::spawn().await;
    let a = app.staff("pit_boss").await;
    let b = app.staff("supervisor").await;
    let player = app.player().await;
    for n in 0..10 {
        assert_eq!(reward_at(&app, 0, &a, &player, n).await.status, 201);
    }
    assert_eq!(reward_at(&app, 500, &a, &player, 10).await.status, 429);
    for n in 0..10 {
        let r = reward_at(&app, 500, &b, &player, n).await;
        assert_eq!(r.status, 201, "staff b, reward {n}: {}", r.text);
    }
    // At T+1.25 a's oldest slot (T) frees in 58.75 s, b's (T+0.5) in 59.25 s.
    assert_limited(&reward_at(&app, 1250, &a, &player, 11).await, 59);
    assert_limited(&reward_at(&app, 1250, &b, &player, 10).await, 60);
    assert_eq!(app.balance(&player).await, 20);
}

#[tokio::test]
async fn sixty_seconds_after_the_oldest_reward_its_slot_is_free_again() {
    let app = TestApp::spawn().await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    for n in 0..10 {
        assert_eq!(reward_at(&app, 0, &staff, &player, n).await.status, 201);
    }
    assert_limited(
        &reward_at(&app, secs(59) + 500, &staff, &player, 10).await,
        1,
    );
    for n in 11..21 {
        let r = reward_at(&app, secs(60) + 500, &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    assert_limited(&reward_at(&app, secs(61), &staff, &player, 21).await, 60);
    assert_eq!(app.balance(&player).await, 20);
}

#[tokio::test]
async fn with_ten_rewards_spread_over_the_window_only_the_slots_that_left_it_are_free() {
    let app = TestApp::spawn().await;
    let staff = app.staff("supervisor").await;
    let player = app.player().await;
    // One reward every 6 s: T, T+6, …, T+54.
    for n in 0..10 {
        let r = reward_at(&app, secs(6 * n as i64), &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    // T+59.5: nothing has left the window yet; the T slot frees in 0.5 s.
    assert_limited(
        &reward_at(&app, secs(59) + 500, &staff, &player, 10).await,
        1,
    );
    // T+65.5: only the T slot is free; the T+6 slot frees in 0.5 s.
    assert_eq!(
        reward_at(&app, secs(65) + 500, &staff, &player, 11)
            .await
            .status,
        201
    );
    assert_limited(
        &reward_at(&app, secs(65) + 500, &staff, &player, 12).await,
        1,
    );
    // T+78.5: the T+6, T+12 and T+18 slots are free; T+24 frees in 5.5 s.
    for n in 13..16 {
        let r = reward_at(&app, secs(78) + 500, &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    assert_limited(
        &reward_at(&app, secs(78) + 500, &staff, &player, 16).await,
        6,
    );
    assert_eq!(app.balance(&player).await, 14);
}

#[tokio::test]
async fn the_window_slides_instead_of_resetting_at_calendar_minutes() {
    let app = TestApp::spawn().await;
    let staff = app.staff("pit_boss").await;
    let player = app.player().await;
    // T0 is 12:00:00; 5 rewards at 12:00:40 and 5 at 12:01:10.
    for n in 0..5 {
        assert_eq!(
            reward_at(&app, secs(40), &staff, &player, n).await.status,
            201
        );
    }
    for n in 5..10 {
        assert_eq!(
            reward_at(&app, secs(70), &staff, &player, n).await.status,
            201
        );
    }
    // 12:01:15.5 is in a calendar minute with only 5 rewards, but the last
    // 60 s hold 10; the 12:00:40 slots free in 24.5 s.
    assert_limited(
        &reward_at(&app, secs(75) + 500, &staff, &player, 10).await,
        25,
    );
    // 12:01:40.5: the 12:00:40 slots have left the window, the 12:01:10 not.
    for n in 11..16 {
        let r = reward_at(&app, secs(100) + 500, &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    assert_limited(
        &reward_at(&app, secs(100) + 500, &staff, &player, 16).await,
        30,
    );
    // 12:02:10.5: the 12:01:10 slots have left too.
    for n in 17..22 {
        let r = reward_at(&app, secs(130) + 500, &staff, &player, n).await;
        assert_eq!(r.status, 201, "reward {n}: {}", r.text);
    }
    assert_eq!(
        reward_at(&app, secs(130) + 500, &staff, &player, 22)
            .await
            .status,
        429
    );
    assert_eq!(app.balance(&player).await, 20);
}

#[tokio::test]
async fn replays_do_not_count_against_the_limit_and_are_answered_even_at_the_limit() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let with_id = |n: usize| -> Value {
        let mut b = reward_body(&player, &id, 1, &format!("{REASON} number {n}"));
        b["reward_id"] = json!(format!("r-{n}"));
        b
    };
    for n in 0..8 {
        reward_ok(&app, &token, &with_id(n)).await;
    }
    let plain = reward_body(&player, &id, 1, "a reward without a reward id");
    let key = [("idempotency-key", HeaderValue::from_static("k-9"))];
    assert_eq!(
        app.manual_reward(&token, plain.clone())
            .header_values(&key)
            .await
            .status,
        201
    );

    // Replays by reward_id, by the deterministic key and by Idempotency-Key.
    for n in 0..8 {
        let r = app.manual_reward(&token, with_id(n)).await;
        assert_eq!(r.status, 200, "replay {n}: {}", r.text);
    }
    assert_eq!(app.manual_reward(&token, plain.clone()).await.status, 200);
    let r = app
        .manual_reward(&token, plain.clone())
        .header_values(&key)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(replayed(&r));

    // Ten were written, so exactly one more fits.
    reward_ok(&app, &token, &with_id(9)).await;
    let r = app.manual_reward(&token, with_id(10)).await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);

    // At the limit, replays are still answered.
    let r = app.manual_reward(&token, with_id(0)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["idempotent_replay"], true);
    assert_eq!(app.manual_reward(&token, plain.clone()).await.status, 200);
    let r = app
        .manual_reward(&token, plain.clone())
        .header_values(&key)
        .await;
    assert!(r.status == 201 && replayed(&r), "{}", r.text);
    assert_eq!(app.balance(&player).await, 10);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 10);
}
