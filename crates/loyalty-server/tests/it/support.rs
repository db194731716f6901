//! Small helpers shared by the black-box modules: times relative to a fixed
//! test instant, slips played for an exact duration, error envelopes. The
//! requests themselves go through the typed client of `tests/common`.

use jiff::Timestamp;
use serde_json::{Value, json};

pub use crate::common::{ENTRY_FIELDS, at, eventually};
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
    let r = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({"ended_at": end}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
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
