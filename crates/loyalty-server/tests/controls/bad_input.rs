//! Malformed manual-reward requests (issue 3 point 9): each is a 4xx with
//! its code in the error envelope, and none writes anything or uses quota.

use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::json;

use crate::common::TestApp;
use crate::support::*;

/// Who sends a case: the pit boss, or the supervisor (for negatives).
#[derive(Clone, Copy)]
enum By {
    PitBoss,
    Supervisor,
}

struct Case {
    what: &'static str,
    by: By,
    body: String,
    headers: Vec<(&'static str, HeaderValue)>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

#[tokio::test]
async fn malformed_reward_requests_are_4xx_with_a_code_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let pit = app.staff("pit_boss").await;
    let sup = app.staff("supervisor").await;
    let player = app.player().await;
    let other = app.player().await;
    let table = app.table().await;
    let theirs = app.open_slip(&other, &table, "25", None).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let p = player.as_str();
    // A raw body with the pit boss's or supervisor's staff id.
    let raw = |by: By, points: &str, extra: &str| -> String {
        let id = match by {
            By::PitBoss => &pit.0,
            By::Supervisor => &sup.0,
        };
        format!(
            r#"{{"player_id":"{p}","staff_id":"{id}","points":{points},"reason":"{REASON}"{extra}}}"#
        )
    };
    let with = |by: By, key: &str, value: serde_json::Value| -> String {
        let id = match by {
            By::PitBoss => &pit.0,
            By::Supervisor => &sup.0,
        };
        let mut b = reward_body(p, id, 10, REASON);
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b.to_string()
    };
    let case = |what, by, body: String, status, code, field| Case {
        what,
        by,
        body,
        headers: vec![],
        status,
        code,
        field,
    };
    let header_case = |what, name: &'static str, value: &[u8], field| Case {
        what,
        by: By::PitBoss,
        body: raw(By::PitBoss, "10", ""),
        headers: vec![(name, hv(value))],
        status: 400,
        code: "VALIDATION_ERROR",
        field: Some(field),
    };
    use By::{PitBoss, Supervisor};
    const V: &str = "VALIDATION_ERROR";
    let cases = vec![
        // points
        case(
            "points as text",
            PitBoss,
            with(PitBoss, "points", json!("abc")),
            400,
            V,
            Some("points"),
        ),
        case(
            "points as a numeric string",
            PitBoss,
            with(PitBoss, "points", json!("10")),
            400,
            V,
            Some("points"),
        ),
        case(
            "fractional points",
            PitBoss,
            with(PitBoss, "points", json!(1.5)),
            400,
            V,
            Some("points"),
        ),
        case(
            "boolean points",
            PitBoss,
            with(PitBoss, "points", json!(true)),
            400,
            V,
            Some("points"),
        ),
        case(
            "points in an array",
            PitBoss,
            with(PitBoss, "points", json!([10])),
            400,
            V,
            Some("points"),
        ),
        case(
            "missing points",
            PitBoss,
            with(PitBoss, "points", json!(null)),
            400,
            V,
            Some("points"),
        ),
        case(
            "points 2^63",
            PitBoss,
            raw(PitBoss, "9223372036854775808", ""),
            400,
            V,
            Some("points"),
        ),
        case(
            "points 1e3",
            PitBoss,
            raw(PitBoss, "1e3", ""),
            400,
            V,
            Some("points"),
        ),
        case(
            "points -2^63-1",
            Supervisor,
            raw(Supervisor, "-9223372036854775809", ""),
            400,
            V,
            Some("points"),
        ),
        case(
            "points -2^63",
            Supervisor,
            raw(Supervisor, "-9223372036854775808", ""),
            422,
            "REWARD_EXCEEDS_LIMIT",
            None,
        ),
        case(
            "points 2^63-1",
            PitBoss,
            raw(PitBoss, "9223372036854775807", ""),
            422,
            "REWARD_EXCEEDS_LIMIT",
            None,
        ),
        // A duplicate key must not slip a negative past the permission check.
        case(
            "points twice, negative first",
            PitBoss,
            format!(
                r#"{{"player_id":"{p}","staff_id":"{}","points":-10,"points":10,"reason":"{REASON}"}}"#,
                pit.0
            ),
            400,
            V,
            None,
        ),
        // reason
        case(
            "empty reason",
            PitBoss,
            with(PitBoss, "reason", json!("")),
            400,
            V,
            Some("reason"),
        ),
        case(
            "blank reason",
            PitBoss,
            with(PitBoss, "reason", json!("            ")),
            400,
            V,
            Some("reason"),
        ),
        case(
            "reason with a NUL",
            PitBoss,
            with(PitBoss, "reason", json!("bad\u{0}reason here")),
            400,
            V,
            Some("reason"),
        ),
        case(
            "numeric reason",
            PitBoss,
            with(PitBoss, "reason", json!(1234567890)),
            400,
            V,
            Some("reason"),
        ),
        case(
            "missing reason",
            PitBoss,
            with(PitBoss, "reason", json!(null)),
            400,
            V,
            Some("reason"),
        ),
        // player
        case(
            "unknown player",
            PitBoss,
            with(
                PitBoss,
                "player_id",
                json!("0190f000-0000-7000-8000-00000000000a"),
            ),
            404,
            "NOT_FOUND",
            None,
        ),
        case(
            "player id not an id",
            PitBoss,
            with(PitBoss, "player_id", json!("player-1")),
            400,
            V,
            Some("player_id"),
        ),
        case(
            "missing player",
            PitBoss,
            with(PitBoss, "player_id", json!(null)),
            400,
            V,
            Some("player_id"),
        ),
        // staff
        case(
            "missing staff_id",
            PitBoss,
            with(PitBoss, "staff_id", json!(null)),
            400,
            V,
            Some("staff_id"),
        ),
        case(
            "staff_id not an id",
            PitBoss,
            with(PitBoss, "staff_id", json!("me")),
            403,
            "INVALID_STAFF_ID",
            None,
        ),
        // rating slip
        case(
            "slip of another player",
            PitBoss,
            with(PitBoss, "rating_slip_id", json!(theirs)),
            400,
            V,
            Some("rating_slip_id"),
        ),
        case(
            "unknown slip",
            PitBoss,
            with(
                PitBoss,
                "rating_slip_id",
                json!("0190f000-0000-7000-8000-00000000000b"),
            ),
            400,
            V,
            Some("rating_slip_id"),
        ),
        case(
            "slip id not an id",
            PitBoss,
            with(PitBoss, "rating_slip_id", json!("slip-1")),
            400,
            V,
            Some("rating_slip_id"),
        ),
        // reward_id
        case(
            "reward_id of 129",
            PitBoss,
            with(PitBoss, "reward_id", json!("r".repeat(129))),
            400,
            V,
            Some("reward_id"),
        ),
        case(
            "empty reward_id",
            PitBoss,
            with(PitBoss, "reward_id", json!("")),
            400,
            V,
            Some("reward_id"),
        ),
        case(
            "reward_id with a space",
            PitBoss,
            with(PitBoss, "reward_id", json!("two words")),
            400,
            V,
            Some("reward_id"),
        ),
        case(
            "non-ASCII reward_id",
            PitBoss,
            with(PitBoss, "reward_id", json!("prime-\u{e9}t\u{e9}")),
            400,
            V,
            Some("reward_id"),
        ),
        case(
            "numeric reward_id",
            PitBoss,
            with(PitBoss, "reward_id", json!(42)),
            400,
            V,
            Some("reward_id"),
        ),
        // body
        case("not JSON", PitBoss, "{\"player_id\":".into(), 400, V, None),
        case("empty body", PitBoss, String::new(), 400, V, None),
        case("a JSON array", PitBoss, "[]".into(), 400, V, None),
        case("JSON null", PitBoss, "null".into(), 400, V, None),
        case(
            "a body over 64 KiB",
            PitBoss,
            raw(
                PitBoss,
                "10",
                &format!(r#","pad":"{}""#, "x".repeat(70_000)),
            ),
            413,
            "PAYLOAD_TOO_LARGE",
            None,
        ),
        // issue 9: one JSON value and nothing after it; names and reasons
        // without invisible or direction-changing characters
        case(
            "trailing data after the body",
            PitBoss,
            format!("{} xyz", raw(PitBoss, "10", "")),
            400,
            V,
            Some("body"),
        ),
        case(
            "two concatenated bodies",
            PitBoss,
            format!("{0}{0}", raw(PitBoss, "10", "")),
            400,
            V,
            Some("body"),
        ),
        case(
            "a reason with a right-to-left override",
            PitBoss,
            with(PitBoss, "reason", json!("comp for \u{202E}regnid eht")),
            400,
            V,
            Some("reason"),
        ),
        case(
            "a reason with a zero-width space",
            PitBoss,
            with(PitBoss, "reason", json!("comp for\u{200B} the dinner")),
            400,
            V,
            Some("reason"),
        ),
        case(
            "60 KB of text where points go",
            PitBoss,
            with(PitBoss, "points", json!("9".repeat(60_000))),
            400,
            V,
            Some("points"),
        ),
        // headers
        header_case(
            "Idempotency-Key of 129",
            "idempotency-key",
            "k".repeat(129).as_bytes(),
            "Idempotency-Key",
        ),
        header_case(
            "empty Idempotency-Key",
            "idempotency-key",
            b"",
            "Idempotency-Key",
        ),
        header_case(
            "Idempotency-Key with a space",
            "idempotency-key",
            b"two words",
            "Idempotency-Key",
        ),
        header_case(
            "Idempotency-Key with a tab",
            "idempotency-key",
            b"a\tb",
            "Idempotency-Key",
        ),
        header_case(
            "non-ASCII Idempotency-Key",
            "idempotency-key",
            "cl\u{e9}".as_bytes(),
            "Idempotency-Key",
        ),
        header_case(
            "X-Correlation-Id of 65",
            "x-correlation-id",
            "c".repeat(65).as_bytes(),
            "X-Correlation-Id",
        ),
        header_case(
            "empty X-Correlation-Id",
            "x-correlation-id",
            b"",
            "X-Correlation-Id",
        ),
        header_case(
            "X-Correlation-Id with a slash",
            "x-correlation-id",
            b"a/b",
            "X-Correlation-Id",
        ),
        header_case(
            "X-Correlation-Id with a space",
            "x-correlation-id",
            b"a b",
            "X-Correlation-Id",
        ),
        header_case(
            "non-ASCII X-Correlation-Id",
            "x-correlation-id",
            "caf\u{e9}".as_bytes(),
            "X-Correlation-Id",
        ),
        Case {
            what: "Basic authorization",
            by: PitBoss,
            body: raw(PitBoss, "10", ""),
            headers: vec![("authorization", hv(b"Basic YWRtaW46YWRtaW4="))],
            status: 401,
            code: "UNAUTHORIZED",
            field: None,
        },
    ];

    let events_before = app.all_events().await.len();
    for c in &cases {
        let token = match c.by {
            By::PitBoss => &pit.1,
            By::Supervisor => &sup.1,
        };
        // An explicit Authorization header replaces the bearer token.
        let token = if c.headers.iter().any(|(h, _)| *h == "authorization") {
            None
        } else {
            Some(token.as_str())
        };
        let r = app
            .raw(Method::POST, token, REWARDS, Some(&c.body), &c.headers)
            .await;
        assert_eq!(r.status, c.status, "{}: {}", c.what, r.text);
        assert_eq!(r.code(), c.code, "{}: {}", c.what, r.text);
        assert_error(&r, c.status, c.code, c.field);
        assert!(
            r.headers.get("x-correlation-id").is_some(),
            "{}: no correlation id header",
            c.what
        );
    }

    assert_eq!(
        app.all_events().await.len(),
        events_before,
        "a refused request wrote something"
    );
    assert!(app.ledger_oldest_first(&player).await.is_empty());
    assert!(app.ledger_oldest_first(&other).await.is_empty());
    // And none of them used quota: both can still issue ten rewards each.
    for (id, token) in [&pit, &sup] {
        for i in 0..10 {
            reward_ok(
                &app,
                token,
                &reward_body(&player, id, 1, &format!("{REASON} #{i}")),
            )
            .await;
        }
        assert_eq!(
            app.manual_reward(token, reward_body(&player, id, 1, "one too many"))
                .await
                .status,
            429
        );
    }
}

#[tokio::test]
async fn a_malformed_correlation_id_is_refused_with_a_generated_one_in_the_envelope() {
    let app = TestApp::spawn().await;
    let (id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let r = app
        .manual_reward(&token, reward_body(&player, &id, 10, REASON))
        .header_values(&[("x-correlation-id", hv(b"bad id!"))])
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("X-Correlation-Id"));
    let cid = r.body["error"]["correlation_id"].as_str().unwrap();
    assert_ne!(cid, "bad id!");
    assert_eq!(r.headers["x-correlation-id"], cid);
    assert_eq!(app.balance(&player).await, 0);
}

/// Text query parameters never reach storage with a control character in
/// them (PostgreSQL refuses NUL in text: a dead-letter search by such a
/// subscriber name was a 500 there): 400, naming the parameter.
#[tokio::test]
async fn control_characters_in_query_parameters_are_refused() {
    let app = TestApp::spawn().await;
    let (_, token) = app.staff("admin").await;
    for (path, field) in [
        ("/v1/dead-letters?subscriber=%C3%BC%01%00%1F", "subscriber"),
        ("/v1/players?q=a%00b", "q"),
        ("/v1/ledger?correlation_id=x%0Ay", "correlation_id"),
        ("/v1/ledger?a%00b=1", "query"),
    ] {
        let r = app.get(&token, path).await;
        assert_error(&r, 400, "VALIDATION_ERROR", Some(field));
    }
    // Printable text beyond ASCII still passes.
    assert_eq!(app.get(&token, "/v1/players?q=%C3%BC").await.status, 200);
    assert_eq!(
        app.get(&token, "/v1/dead-letters?subscriber=%C3%BC")
            .await
            .status,
        200
    );
}
