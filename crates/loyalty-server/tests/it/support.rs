//! Small helpers shared by the black-box modules: times relative to a fixed
//! test instant, slips played for an exact duration, whole ledgers.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

pub use crate::common::{ENTRY_FIELDS, at};
use crate::common::{Resp, TestApp};

/// The instant most tests set the server clock to.
pub const T0: &str = "2026-03-01T12:00:00Z";

/// Minutes in milliseconds, for [`at`].
pub const fn min(m: i64) -> i64 {
    m * 60_000
}

/// Parses an RFC 3339 instant from a JSON value.
pub fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap()
}

/// The string at `v[key]`, which must be one.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// POST /v1/rating-slips/{id}/complete as the admin.
pub async fn complete(app: &TestApp, slip: &str, body: Value) -> Resp {
    complete_with(app, &app.admin_token, slip, body, &[]).await
}

/// POST /v1/rating-slips/{id}/complete with a token and headers.
pub async fn complete_with(
    app: &TestApp,
    token: &str,
    slip: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Resp {
    app.send(
        Method::POST,
        Some(token),
        &format!("/v1/rating-slips/{slip}/complete"),
        Some(body),
        headers,
    )
    .await
}

/// POST on a slip action (pause, resume, recover-loyalty) with no body.
pub async fn slip_action(app: &TestApp, slip: &str, action: &str) -> Resp {
    app.send(
        Method::POST,
        Some(&app.admin_token),
        &format!("/v1/rating-slips/{slip}/{action}"),
        None,
        &[],
    )
    .await
}

/// GET /v1/rating-slips/{id}, which must answer 200.
pub async fn get_slip(app: &TestApp, slip: &str) -> Value {
    let r = app
        .get(&app.admin_token, &format!("/v1/rating-slips/{slip}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Plays a slip from `start` to `end` (explicit times; the server clock must
/// be at or after `end`) and completes it; returns the completion response,
/// which must be 200.
pub async fn play(
    app: &TestApp,
    player: &str,
    table: &str,
    bet: &str,
    start: &str,
    end: &str,
) -> Value {
    let slip = app.open_slip(player, table, bet, Some(start)).await;
    let r = complete(app, s(&slip, "id"), json!({"ended_at": end})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// A player's whole ledger, newest first, read one full page.
pub async fn ledger(app: &TestApp, player: &str) -> Vec<Value> {
    let r = app
        .get(
            &app.admin_token,
            &format!("/v1/players/{player}/ledger?limit=1000"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["next_cursor"].is_null(),
        "ledger larger than one page"
    );
    r.body["entries"].as_array().unwrap().clone()
}

/// GET /v1/players/{id}/loyalty, which must answer 200.
pub async fn loyalty(app: &TestApp, player: &str) -> Value {
    let r = app
        .get(&app.admin_token, &format!("/v1/players/{player}/loyalty"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Every event in the outbox (at most 1000).
pub async fn events(app: &TestApp) -> Vec<Value> {
    let r = app.get(&app.admin_token, "/v1/events?limit=1000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.body["events"].as_array().unwrap().clone();
    assert!(events.len() < 1000, "more events than one page");
    events
}

/// Asserts `r` is an error envelope with `status` and `code` and a
/// correlation id.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "expected {status} {code}, got {}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    let cid = r.body["error"]["correlation_id"].as_str().unwrap_or("");
    assert!(!cid.is_empty(), "error without correlation_id: {}", r.text);
    assert!(
        r.body["error"]["message"].is_string(),
        "error without message: {}",
        r.text
    );
}

/// Polls `check` until it yields a value or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
