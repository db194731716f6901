//! The manual-reward rules are checked in one order (issue 3 point 2):
//! 401 → 403 FORBIDDEN → 403 INVALID_STAFF_ID → 400 VALIDATION_ERROR →
//! 422 REWARD_EXCEEDS_LIMIT → 422 INSUFFICIENT_BALANCE → 429. A request that
//! breaks two rules gets the earlier rule's code, and a refused request
//! uses no quota.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::*;

/// A server with the clock set, every staff role, and a player holding 50.
struct Floor {
    app: TestApp,
    player: String,
    pit: (String, String),
    sup: (String, String),
    cashier: (String, String),
    auditor: (String, String),
}

async fn floor() -> Floor {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let pit = app.staff("pit_boss").await;
    let sup = app.staff("supervisor").await;
    let cashier = app.staff("cashier").await;
    let auditor = app.staff("auditor").await;
    let player = app.player().await;
    // Funded by a separate supervisor so the others' quotas stay untouched.
    let (funder_id, funder) = app.staff("supervisor").await;
    reward_ok(
        &app,
        &funder,
        &reward_body(&player, &funder_id, 50, "opening balance for the test"),
    )
    .await;
    Floor {
        app,
        player,
        pit,
        sup,
        cashier,
        auditor,
    }
}

fn long(n: usize) -> String {
    "r".repeat(n)
}

#[tokio::test]
async fn without_a_valid_token_every_reward_is_401_whatever_else_is_wrong() {
    let f = floor().await;
    let worst =
        json!({"player_id": f.player, "staff_id": f.sup.0, "points": -20000, "reason": "short"});
    let r = f
        .app
        .raw(Method::POST, None, REWARDS, Some(&worst.to_string()), &[])
        .await;
    assert_error(&r, 401, "UNAUTHORIZED", None);
    let r = f.app.manual_reward("ll_not_a_token", worst.clone()).await;
    assert_error(&r, 401, "UNAUTHORIZED", None);
    assert_eq!(f.app.balance(&f.player).await, 50);
}

#[tokio::test]
async fn cashiers_auditors_and_players_lack_loyalty_award_and_get_403_forbidden_first() {
    let f = floor().await;
    let player_token = f
        .app
        .create_player_token(&f.app.admin_token, &f.player)
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    for (who, id, token) in [
        ("cashier", &f.cashier.0, &f.cashier.1),
        ("auditor", &f.auditor.0, &f.auditor.1),
        ("player", &f.pit.0, &player_token),
    ] {
        // A valid request of their own…
        let r = f
            .app
            .manual_reward(token, reward_body(&f.player, id, 10, REASON))
            .await;
        assert_error(&r, 403, "FORBIDDEN", None);
        assert_eq!(
            r.body["error"]["details"]["permission"], "loyalty:award",
            "{who}: {}",
            r.text
        );
        // …and one that also names someone else and has bad input.
        let r = f
            .app
            .manual_reward(token, reward_body(&f.player, &f.sup.0, 20000, "short"))
            .await;
        assert_error(&r, 403, "FORBIDDEN", None);
    }
    assert_eq!(f.app.balance(&f.player).await, 50);
}

#[tokio::test]
async fn negative_points_from_a_pit_boss_are_403_forbidden_for_lack_of_loyalty_adjust() {
    let f = floor().await;
    let r = f
        .app
        .manual_reward(&f.pit.1, reward_body(&f.player, &f.pit.0, -10, REASON))
        .await;
    assert_error(&r, 403, "FORBIDDEN", None);
    assert_eq!(
        r.body["error"]["details"]["permission"], "loyalty:adjust",
        "{}",
        r.text
    );
    // Before INVALID_STAFF_ID and before input checks.
    let r = f
        .app
        .manual_reward(&f.pit.1, reward_body(&f.player, &f.sup.0, -20000, "short"))
        .await;
    assert_error(&r, 403, "FORBIDDEN", None);
    assert_eq!(
        r.body["error"]["details"]["permission"], "loyalty:adjust",
        "{}",
        r.text
    );
    // A supervisor may.
    reward_ok(
        &f.app,
        &f.sup.1,
        &reward_body(&f.player, &f.sup.0, -10, REASON),
    )
    .await;
    assert_eq!(f.app.balance(&f.player).await, 40);
}

#[tokio::test]
async fn a_staff_id_other_than_the_caller_is_403_invalid_staff_id_before_input_checks() {
    let f = floor().await;
    let cases: Vec<(&str, Value)> = vec![
        (
            "another staff member",
            reward_body(&f.player, &f.sup.0, 10, REASON),
        ),
        (
            "an unknown id",
            reward_body(
                &f.player,
                "0190f000-0000-7000-8000-000000000000",
                10,
                REASON,
            ),
        ),
        (
            "and a short reason",
            reward_body(&f.player, &f.sup.0, 10, "short"),
        ),
        (
            "and 20000 points with a short reason",
            reward_body(&f.player, &f.sup.0, 20000, "short"),
        ),
        (
            "and string points",
            json!({"player_id": f.player, "staff_id": f.sup.0, "points": "10", "reason": REASON}),
        ),
        (
            "and an unknown player",
            reward_body("0190f000-0000-7000-8000-000000000001", &f.sup.0, 10, REASON),
        ),
    ];
    for (what, body) in cases {
        let r = f.app.manual_reward(&f.pit.1, body.clone()).await;
        assert_eq!(r.code(), "INVALID_STAFF_ID", "{what}: {}", r.text);
        assert_error(&r, 403, "INVALID_STAFF_ID", None);
    }
    assert_eq!(f.app.balance(&f.player).await, 50);
}

#[tokio::test]
async fn bad_input_is_400_validation_error_naming_the_field_before_the_points_limit() {
    let f = floor().await;
    let (id, token) = (&f.pit.0, &f.pit.1);
    let p = &f.player;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "zero points",
            json!({"player_id": p, "staff_id": id, "points": 0, "reason": REASON}),
            "points",
        ),
        (
            "fractional points",
            json!({"player_id": p, "staff_id": id, "points": 1.5, "reason": REASON}),
            "points",
        ),
        (
            "string points",
            json!({"player_id": p, "staff_id": id, "points": "10", "reason": REASON}),
            "points",
        ),
        (
            "reason of 9",
            json!({"player_id": p, "staff_id": id, "points": 10, "reason": long(9)}),
            "reason",
        ),
        (
            "reason of 501",
            json!({"player_id": p, "staff_id": id, "points": 10, "reason": long(501)}),
            "reason",
        ),
        (
            "20000 points and a short reason",
            json!({"player_id": p, "staff_id": id, "points": 20000, "reason": "too short"}),
            "reason",
        ),
        (
            "20000.5 points",
            json!({"player_id": p, "staff_id": id, "points": 20000.5, "reason": REASON}),
            "points",
        ),
    ];
    for (what, body, field) in cases {
        let r = f.app.manual_reward(token, body.clone()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_error(&r, 400, "VALIDATION_ERROR", Some(field));
    }
    assert_eq!(f.app.balance(&f.player).await, 50);

    // The bounds themselves are fine.
    reward_ok(&f.app, token, &reward_body(p, id, 10, &long(10))).await;
    reward_ok(&f.app, token, &reward_body(p, id, 10, &long(500))).await;
    assert_eq!(f.app.balance(&f.player).await, 70);
}

#[tokio::test]
async fn more_than_10000_points_either_way_is_422_reward_exceeds_limit_before_the_balance_check() {
    let f = floor().await;
    let r = f
        .app
        .manual_reward(&f.pit.1, reward_body(&f.player, &f.pit.0, 10_001, REASON))
        .await;
    assert_error(&r, 422, "REWARD_EXCEEDS_LIMIT", None);
    assert_eq!(r.body["error"]["details"]["limit"], 10_000, "{}", r.text);
    // The balance (50) could not cover it either; the limit is checked first.
    let r = f
        .app
        .manual_reward(&f.sup.1, reward_body(&f.player, &f.sup.0, -10_001, REASON))
        .await;
    assert_error(&r, 422, "REWARD_EXCEEDS_LIMIT", None);
    assert_eq!(f.app.balance(&f.player).await, 50);

    // Exactly 10000 either way is allowed.
    reward_ok(
        &f.app,
        &f.pit.1,
        &reward_body(&f.player, &f.pit.0, 10_000, REASON),
    )
    .await;
    reward_ok(
        &f.app,
        &f.sup.1,
        &reward_body(&f.player, &f.sup.0, -10_000, REASON),
    )
    .await;
    assert_eq!(f.app.balance(&f.player).await, 50);
}

#[tokio::test]
async fn when_rate_limited_every_other_rule_still_answers_first_and_429_comes_last() {
    let f = floor().await;
    let (id, token) = (&f.sup.0, &f.sup.1);
    for i in 0..10 {
        reward_ok(
            &f.app,
            token,
            &reward_body(&f.player, id, 1, &format!("{REASON} #{i}")),
        )
        .await;
    }
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, 1, "one reward too many"))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);

    let r = f
        .app
        .raw(
            Method::POST,
            None,
            REWARDS,
            Some(&reward_body(&f.player, id, 1, REASON).to_string()),
            &[],
        )
        .await;
    assert_error(&r, 401, "UNAUTHORIZED", None);
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, &f.pit.0, 1, REASON))
        .await;
    assert_error(&r, 403, "INVALID_STAFF_ID", None);
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, 1, "short"))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("reason"));
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, 10_001, REASON))
        .await;
    assert_error(&r, 422, "REWARD_EXCEEDS_LIMIT", None);
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, -61, REASON))
        .await;
    assert_error(&r, 422, "INSUFFICIENT_BALANCE", None);
    let r = f
        .app
        .manual_reward(
            token,
            reward_body("0190f000-0000-7000-8000-000000000002", id, 1, REASON),
        )
        .await;
    assert_error(&r, 404, "NOT_FOUND", None);
    // An adjustment the balance covers is subject to the limit like any reward.
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, -60, REASON))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);
    assert_eq!(f.app.balance(&f.player).await, 60);
}

#[tokio::test]
async fn refused_requests_use_no_quota_so_ten_rewards_still_pass_after_ten_refusals() {
    let f = floor().await;
    let (id, token) = (&f.sup.0, &f.sup.1);
    let table = f.app.table().await;
    let other = f.app.player().await;
    let theirs = f.app.open_slip(&other, &table, "25", None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut on_their_slip = reward_body(&f.player, id, 5, REASON);
    on_their_slip["rating_slip_id"] = json!(theirs);

    let refusals: Vec<(Value, u16, &str)> = vec![
        (
            reward_body(&f.player, id, 0, REASON),
            400,
            "VALIDATION_ERROR",
        ),
        (
            reward_body(&f.player, id, 5, "short"),
            400,
            "VALIDATION_ERROR",
        ),
        (
            reward_body(&f.player, id, 5, &long(501)),
            400,
            "VALIDATION_ERROR",
        ),
        (
            reward_body(&f.player, &f.pit.0, 5, REASON),
            403,
            "INVALID_STAFF_ID",
        ),
        (
            reward_body(&f.player, id, 10_001, REASON),
            422,
            "REWARD_EXCEEDS_LIMIT",
        ),
        (
            reward_body(&f.player, id, -10_001, REASON),
            422,
            "REWARD_EXCEEDS_LIMIT",
        ),
        (
            reward_body(&f.player, id, -51, REASON),
            422,
            "INSUFFICIENT_BALANCE",
        ),
        (
            reward_body(&f.player, id, -500, REASON),
            422,
            "INSUFFICIENT_BALANCE",
        ),
        (
            reward_body("0190f000-0000-7000-8000-000000000003", id, 5, REASON),
            404,
            "NOT_FOUND",
        ),
        // Another player's slip: bad input, found only by reading the store.
        (on_their_slip.clone(), 400, "VALIDATION_ERROR"),
        (on_their_slip, 400, "VALIDATION_ERROR"),
    ];
    for (body, status, code) in refusals {
        let r = f.app.manual_reward(token, body.clone()).await;
        assert_error(&r, status, code, None);
    }
    for i in 0..10 {
        reward_ok(
            &f.app,
            token,
            &reward_body(&f.player, id, 1, &format!("{REASON} #{i}")),
        )
        .await;
    }
    let r = f
        .app
        .manual_reward(token, reward_body(&f.player, id, 1, "one reward too many"))
        .await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);
    assert_eq!(f.app.balance(&f.player).await, 60);
    assert_eq!(f.app.balance(&other).await, 0);
}

#[tokio::test]
async fn a_slip_of_another_player_is_a_400_before_the_balance_check_and_the_rate_limit() {
    let f = floor().await;
    let (id, token) = (&f.sup.0, &f.sup.1);
    let table = f.app.table().await;
    let other = f.app.player().await;
    let theirs = f.app.open_slip(&other, &table, "25", None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let on_their_slip = |points: i64| {
        let mut b = reward_body(&f.player, id, points, REASON);
        b["rating_slip_id"] = json!(theirs);
        b
    };
    // The player is looked up first: an unknown one is 404 whatever the slip.
    let mut nobody = on_their_slip(5);
    nobody["player_id"] = json!("0190f000-0000-7000-8000-000000000005");
    let r = f.app.manual_reward(token, nobody.clone()).await;
    assert_error(&r, 404, "NOT_FOUND", None);
    // An overdraft naming another player's slip: the slip is bad input.
    let r = f.app.manual_reward(token, on_their_slip(-51)).await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("rating_slip_id"));

    for i in 0..10 {
        reward_ok(
            &f.app,
            token,
            &reward_body(&f.player, id, 1, &format!("{REASON} #{i}")),
        )
        .await;
    }
    // At the limit, the same bad input is still a 400, not a 429.
    let r = f.app.manual_reward(token, on_their_slip(5)).await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("rating_slip_id"));
    let mut unknown = reward_body(&f.player, id, 5, REASON);
    unknown["rating_slip_id"] = json!("0190f000-0000-7000-8000-000000000004");
    let r = f.app.manual_reward(token, unknown.clone()).await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("rating_slip_id"));
    assert_eq!(f.app.balance(&f.player).await, 60);
}
