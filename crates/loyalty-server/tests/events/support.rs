//! Helpers of the events suite: polling with deadlines, the outbox, the
//! subscribers' progress, rewards.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestApp;

/// A reason long enough for a manual reward.
pub const REASON: &str = "event suite reward";

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event in the outbox, in sequence order.
pub async fn all_events(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let r = app
            .get(
                &app.admin_token,
                &format!("/v1/events?limit=1000&after={after}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.body["events"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["seq"].as_i64().unwrap();
        all.extend(page);
    }
    all
}

/// `GET /v1/subscribers`.
pub async fn subscribers(app: &TestApp) -> Value {
    let r = app.get(&app.admin_token, "/v1/subscribers").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Waits until every subscriber (and the relay, if any) has handled the
/// whole outbox; returns the head.
pub async fn caught_up(app: &TestApp, secs: u64) -> i64 {
    eventually(
        secs,
        "every subscriber to reach the outbox head",
        || async {
            let s = subscribers(app).await;
            let head = s["outbox_head"].as_i64()?;
            let subs_done = s["subscribers"]
                .as_array()?
                .iter()
                .all(|v| v["checkpoint"].as_i64() == Some(head) && v["lag"] == 0);
            let relay_done = s["nats_relay"].is_null() || s["nats_relay"]["lag"] == 0;
            (subs_done && relay_done).then_some(head)
        },
    )
    .await
}

/// A subscriber's entry in `GET /v1/subscribers`.
pub fn subscriber<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no subscriber {name} in {s}"))
}

/// Grants a manual reward that must succeed; returns the entry.
pub async fn reward(
    app: &TestApp,
    token: &str,
    staff: &str,
    player: &str,
    points: i64,
    n: usize,
) -> Value {
    let r = app
        .post(
            token,
            "/v1/loyalty/manual-rewards",
            json!({"player_id": player, "staff_id": staff, "points": points,
                   "reason": format!("{REASON} number {n}")}),
        )
        .await;
    if r.status != 201 {
        let why: Vec<String> = app
            .logs()
            .into_iter()
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .map(|l| l.to_string())
            .collect();
        panic!(
            "reward refused: {}\nserver warnings:\n{}",
            r.text,
            why.join("\n")
        );
    }
    r.body
}

/// Sets test-mode faults.
pub async fn faults(app: &TestApp, body: Value) {
    let r = app
        .send(
            reqwest::Method::PUT,
            Some(&app.admin_token),
            "/v1/test/faults",
            Some(body),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A player's whole feed (`activity` or `notifications`), newest first.
pub async fn feed(app: &TestApp, player: &str, feed: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/players/{player}/{feed}?limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&app.admin_token, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        all.extend(r.body[feed].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    all
}

/// The value of a metric line (`name{labels}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `GET /metrics` as text.
pub async fn metrics_text(app: &TestApp) -> String {
    let r = app
        .send(reqwest::Method::GET, None, "/metrics", None, &[])
        .await;
    assert_eq!(r.status, 200);
    r.text
}
