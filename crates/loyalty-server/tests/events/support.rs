//! Helpers of the events suite: the subscribers' progress, rewards, metric
//! lines. Requests go through the typed client of `tests/common`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestApp;
pub use crate::common::eventually;

/// A reason long enough for a manual reward.
pub const REASON: &str = "event suite reward";

/// Waits until every subscriber (and the relay, if any) has handled the
/// whole outbox; returns the head.
pub async fn caught_up(app: &TestApp, secs: u64) -> i64 {
    eventually(
        Duration::from_secs(secs),
        "every subscriber to reach the outbox head",
        || async {
            let s = app.subscriber_status().await;
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
        .manual_reward(
            token,
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

/// The value of a metric line (`name{labels}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
