//! Test mode (DESIGN §5): the clock and fault controls exist only with
//! `--test-mode`, and the set clock drives slip durations.

use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;
use crate::support::{assert_error, at, s, ts};

#[tokio::test]
async fn without_test_mode_the_test_controls_do_not_exist() {
    let app = TestApp::spawn_with(&[]).await;

    let clock = app
        .send(
            Method::PUT,
            None,
            "/v1/test/clock",
            Some(json!({"now": "2031-01-01T00:00:00Z"})),
            &[],
        )
        .await;
    let faults = app
        .send(
            Method::PUT,
            None,
            "/v1/test/faults",
            Some(json!({"loyalty_accrual": "fail"})),
            &[],
        )
        .await;
    let as_admin = app
        .put_clock(&app.admin_token, json!({"now": "2031-01-01T00:00:00Z"}))
        .await;

    assert_error(&clock, 404, "NOT_FOUND");
    assert_error(&faults, 404, "NOT_FOUND");
    assert_error(&as_admin, 404, "NOT_FOUND");

    // The server still runs on the real clock and accrues normally.
    let player = app.player().await;
    let table = app.table().await;
    let slip = app.open_slip(&player, &table, "10", None).await;
    let started = ts(&slip["started_at"]);
    let real_now = jiff::Timestamp::now();
    assert!(
        real_now.duration_since(started).abs() < jiff::SignedDuration::from_mins(5),
        "{started} vs {real_now}"
    );
    let done = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
}

#[tokio::test]
async fn the_set_clock_drives_slip_durations() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    // Far from the real date, so the slip's times can only come from the
    // set clock.
    let t0 = "2031-07-04T20:00:00Z";
    app.set_clock(t0).await;

    let slip = app.open_slip(&player, &table, "100", None).await;
    let id = s(&slip, "id");
    let started = ts(&slip["started_at"]);
    assert!(
        started >= ts(&json!(t0))
            && started.duration_since(ts(&json!(t0))) < jiff::SignedDuration::from_mins(1)
    );

    // Two hours later on the test clock (plus half a second, so the running
    // clock cannot land the reading just under a whole second).
    app.set_clock(&at(t0, 2 * 3_600_000 + 500)).await;
    assert_eq!(app.slip(id).await["accumulated_seconds"], 7200);
    let done = app.complete_slip(&app.admin_token, id, json!({})).await;

    assert_eq!(done.status, 200, "{}", done.text);
    let rs = &done.body["rating_slip"];
    assert_eq!(rs["accumulated_seconds"], 7200);
    assert!(ts(&rs["ended_at"]) >= ts(&json!(at(t0, 2 * 3_600_000))));
    // 120 rounds (> 60/h → ×1.1): 100 × 120 × 0.27 × 1.1 = 3564.
    assert_eq!(done.body["loyalty"]["points_earned"], 3564);
}

#[tokio::test]
async fn the_test_controls_validate_their_input() {
    let app = TestApp::spawn().await;

    let admin = &app.admin_token;
    for call in [
        app.put_clock(admin, json!({"now": "tomorrow"})),
        app.put_clock(admin, json!({})),
        app.put_faults(admin, json!({"loyalty_accrual": "sometimes"})),
        app.put_faults(admin, json!({"loyalty_accrual": true})),
    ] {
        let r = call.await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let set = app
        .put_clock(&app.admin_token, json!({"now": "2030-01-01T00:00:00Z"}))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert!(
        s(&set.body, "now").starts_with("2030-01-01T00:00:"),
        "{}",
        set.text
    );
}

#[tokio::test]
async fn the_test_controls_need_an_administrator() {
    let app = TestApp::spawn().await;
    let (_, cashier) = app.staff("cashier").await;
    let (_, supervisor) = app.staff("supervisor").await;
    for (path, body) in [
        ("/v1/test/clock", json!({"now": "2030-01-01T00:00:00Z"})),
        ("/v1/test/faults", json!({"loyalty_accrual": "fail"})),
    ] {
        let none = app
            .send(Method::PUT, None, path, Some(body.clone()), &[])
            .await;
        assert_error(&none, 401, "UNAUTHORIZED");
        let bogus = app
            .send(Method::PUT, Some("ll_bogus"), path, Some(body.clone()), &[])
            .await;
        assert_error(&bogus, 401, "UNAUTHORIZED");
        for token in [&cashier, &supervisor] {
            let r = app
                .send(Method::PUT, Some(token), path, Some(body.clone()), &[])
                .await;
            assert_error(&r, 403, "FORBIDDEN");
        }
    }
    // Nothing changed: the clock is the real one and accrual works.
    let player = app.player().await;
    let table = app.table().await;
    let slip = app.open_slip(&player, &table, "10", None).await;
    let started = ts(&slip["started_at"]);
    assert!(
        jiff::Timestamp::now().duration_since(started).abs() < jiff::SignedDuration::from_mins(5),
        "the clock moved: {started}"
    );
    let done = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
}
