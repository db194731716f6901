//! Helpers shared by the controls modules: manual rewards, instants relative
//! to a fixed test time, ledger chains. Requests go through the typed client
//! of `tests/common` (raw ones through `TestApp::raw`).

use reqwest::header::HeaderValue;
use serde_json::{Value, json};

pub use crate::common::{ENTRY_FIELDS, at};
use crate::common::{Resp, TestApp};

/// The manual-rewards endpoint.
pub const REWARDS: &str = "/v1/loyalty/manual-rewards";

/// The instant most tests set the server clock to (a Monday, noon UTC).
pub const T0: &str = "2026-03-02T12:00:00Z";

/// A reason long enough for a manual reward.
pub const REASON: &str = "great table manners tonight";

/// Seconds in milliseconds, for [`at`].
pub const fn secs(s: i64) -> i64 {
    s * 1000
}

/// A header value, which may be any bytes (to send malformed ones).
pub fn hv(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("a header value reqwest can send")
}

/// A manual-reward body.
pub fn reward_body(player: &str, staff_id: &str, points: i64, reason: &str) -> Value {
    json!({"player_id": player, "staff_id": staff_id, "points": points, "reason": reason})
}

/// POSTs a manual reward that must succeed with 201; returns the entry.
pub async fn reward_ok(app: &TestApp, token: &str, body: &Value) -> Value {
    let r = app.manual_reward(token, body.clone()).await;
    assert_eq!(r.status, 201, "reward {body} was refused: {}", r.text);
    r.body
}

/// Asserts each entry's `balance_before` is the previous entry's
/// `balance_after`, starting from zero; returns the last `balance_after`.
pub fn assert_chained(entries: &[Value]) -> i64 {
    let mut balance = 0;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e["balance_before"].as_i64(),
            Some(balance),
            "entry {i} breaks the chain: {e}"
        );
        assert_eq!(
            e["balance_after"].as_i64(),
            Some(balance + e["points_change"].as_i64().unwrap()),
            "entry {i} does not add up: {e}"
        );
        balance = e["balance_after"].as_i64().unwrap();
    }
    balance
}

/// POST /v1/admin/verify as the admin; asserts no drift.
pub async fn assert_no_drift(app: &TestApp) {
    let r = app.verify(&app.admin_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["drift"], json!([]), "drift found: {}", r.text);
    assert!(
        r.body["accounts_checked"].as_u64().unwrap() >= 1,
        "{}",
        r.text
    );
}

/// The `Retry-After` header as whole seconds.
pub fn retry_after(r: &Resp) -> u64 {
    let v = r
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers));
    v.to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {v:?} is not integer seconds"))
}

/// Whether the response is a stored `Idempotency-Key` response.
pub fn replayed(r: &Resp) -> bool {
    r.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// Asserts `r` is an error envelope with `status` and `code` (and, if given,
/// `details.field`).
#[track_caller]
pub fn assert_error(r: &Resp, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "expected {status} {code}, got {}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert!(
        r.body["error"]["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "error without correlation id: {}",
        r.text
    );
    if let Some(f) = field {
        assert_eq!(r.body["error"]["details"]["field"], f, "{}", r.text);
    }
}
