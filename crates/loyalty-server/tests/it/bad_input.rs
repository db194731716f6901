//! Malformed requests (DESIGN §5): every one gets a 4xx error envelope with
//! a stable code and a correlation id, none a 5xx, and none writes anything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::{T0, at, min, play, s};

enum Body {
    None,
    Json(Value),
    Raw(String),
}

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Body,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Body,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        body,
        headers: Vec::new(),
        status,
        code,
    }
}

async fn send(app: &TestApp, c: &Case) -> Resp {
    let mut rb = app
        .client
        .request(c.method.clone(), format!("{}{}", app.base, c.path))
        .bearer_auth(&app.admin_token);
    for (k, v) in &c.headers {
        rb = rb.header(*k, v);
    }
    rb = match &c.body {
        Body::None => rb,
        Body::Json(v) => rb.json(v),
        Body::Raw(raw) => rb
            .header("content-type", "application/json")
            .body(raw.clone()),
    };
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.what));
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        headers,
        text,
    }
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_envelope_and_write_nothing() {
    use Body::{Json, None as NoBody, Raw};
    use Method as M;

    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let t2 = at(T0, min(120));
    // A slip that would last 25 h if completed at T0 + 2 h.
    app.set_clock(T0).await;
    let long = app
        .open_slip(&player, &table, "10", Some(&at(T0, -min(23 * 60))))
        .await;
    app.set_clock(&t2).await;
    let slip = app
        .open_slip(&player, &table, "10", Some(&at(&t2, -min(60))))
        .await;
    play(&app, &player, &table, "10", &at(&t2, -min(30)), &t2).await;
    let (long, slip) = (s(&long, "id").to_string(), s(&slip, "id").to_string());
    let nobody = "0196a4d8-0000-7000-8000-00000000dead";
    let name_201 = "n".repeat(201);
    let big = format!("{{\"display_name\": \"{}\"}}", "x".repeat(70 * 1024));
    let table_body = |patch: Value| {
        let mut b = json!({"name": "BJ 2", "game_type": "blackjack", "house_edge": "2.7", "average_rounds_per_hour": 60});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        Json(b)
    };
    let slip_body = |patch: Value| {
        let mut b = json!({"player_id": player, "table_id": table, "average_bet": "25"});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        Json(b)
    };
    let raw_slip = |bet: &str| {
        Raw(format!(
            r#"{{"player_id": "{player}", "table_id": "{table}", "average_bet": {bet}}}"#
        ))
    };
    let raw_table = |field: &str, v: &str| {
        Raw(format!(
            r#"{{"name": "BJ 3", "game_type": "blackjack", "house_edge": "2.7", "average_rounds_per_hour": 60, "{field}": {v}}}"#
        ))
    };
    let (bad, missing, unknown) = (400, 404, "NOT_FOUND");
    let v = "VALIDATION_ERROR";
    let complete = format!("/v1/rating-slips/{slip}/complete");
    let player_ledger = format!("/v1/players/{player}/ledger");

    // One row per request: what, method, path, body, expected status and code.
    #[rustfmt::skip]
    let mut cases = vec![
        // Players: JSON, types, missing fields, bounds.
        case("truncated JSON", M::POST, "/v1/players", Raw(r#"{"display_name": "#.into()), bad, v),
        case("not JSON at all", M::POST, "/v1/players", Raw("display_name=Bob".into()), bad, v),
        case("empty body", M::POST, "/v1/players", Raw(String::new()), bad, v),
        case("JSON array body", M::POST, "/v1/players", Raw("[]".into()), bad, v),
        case("JSON null body", M::POST, "/v1/players", Raw("null".into()), bad, v),
        case("name of the wrong type", M::POST, "/v1/players", Json(json!({"display_name": 42})), bad, v),
        case("missing display_name", M::POST, "/v1/players", Json(json!({})), bad, v),
        case("name of 201 characters", M::POST, "/v1/players", Json(json!({"display_name": name_201})), bad, v),
        case("blank name", M::POST, "/v1/players", Json(json!({"display_name": "   "})), bad, v),
        case("control character in name", M::POST, "/v1/players", Json(json!({"display_name": "Bell\u{7}"})), bad, v),
        case("card number of 65 characters", M::POST, "/v1/players", Json(json!({"display_name": "Ok", "card_number": "9".repeat(65)})), bad, v),
        case("body over 64 KiB", M::POST, "/v1/players", Raw(big), 413, "PAYLOAD_TOO_LARGE"),
        case("data after the JSON body", M::POST, "/v1/players", Raw(r#"{"display_name":"x"} xyz"#.into()), bad, v),
        case("two concatenated JSON bodies", M::POST, "/v1/players", Raw(r#"{"display_name":"x"}{"display_name":"y"}"#.into()), bad, v),
        case("right-to-left override in a name", M::POST, "/v1/players", Json(json!({"display_name": "Ann\u{202E}eeL"})), bad, v),
        case("isolate in a name", M::POST, "/v1/players", Json(json!({"display_name": "\u{2067}Ann"})), bad, v),
        case("zero-width space in a name", M::POST, "/v1/players", Json(json!({"display_name": "Ann\u{200B}Lee"})), bad, v),
        case("word joiner in a name", M::POST, "/v1/players", Json(json!({"display_name": "Ann\u{2060}Lee"})), bad, v),
        case("byte order mark in a name", M::POST, "/v1/players", Json(json!({"display_name": "\u{FEFF}Ann"})), bad, v),
        case("a name of joiners only", M::POST, "/v1/players", Json(json!({"display_name": "\u{200D}\u{200C}"})), bad, v),
        case("a table name of fillers only", M::POST, "/v1/tables", table_body(json!({"name": "\u{3164}\u{3164}"})), bad, v),
        case("token for an unknown player", M::POST, format!("/v1/players/{nobody}/tokens"), Json(json!({})), missing, unknown),
        case("non-uuid player id", M::GET, "/v1/players/12345", NoBody, missing, unknown),
        case("unknown player's loyalty", M::GET, format!("/v1/players/{nobody}/loyalty"), NoBody, missing, unknown),
        case("unknown player's ledger", M::GET, format!("/v1/players/{nobody}/ledger"), NoBody, missing, unknown),
        // Staff.
        case("unknown role", M::POST, "/v1/staff", Json(json!({"name": "Eve", "role": "owner"})), bad, v),
        case("staff name of 201 characters", M::POST, "/v1/staff", Json(json!({"name": name_201, "role": "cashier"})), bad, v),
        // Tables.
        case("house edge 101", M::POST, "/v1/tables", table_body(json!({"house_edge": "101"})), bad, v),
        case("negative house edge", M::POST, "/v1/tables", table_body(json!({"house_edge": -0.5})), bad, v),
        case("house edge 1e400", M::POST, "/v1/tables", raw_table("house_edge", "1e400"), bad, v),
        case("house edge not a number", M::POST, "/v1/tables", table_body(json!({"house_edge": "2.7.1"})), bad, v),
        case("rounds per hour 0", M::POST, "/v1/tables", table_body(json!({"average_rounds_per_hour": 0})), bad, v),
        case("rounds per hour 1001", M::POST, "/v1/tables", table_body(json!({"average_rounds_per_hour": 1001})), bad, v),
        case("rounds per hour 2^63", M::POST, "/v1/tables", raw_table("average_rounds_per_hour", "9223372036854775808"), bad, v),
        case("rounds per hour fractional", M::POST, "/v1/tables", table_body(json!({"average_rounds_per_hour": 60.5})), bad, v),
        case("seats 21", M::POST, "/v1/tables", table_body(json!({"seats_available": 21})), bad, v),
        case("negative seats", M::POST, "/v1/tables", table_body(json!({"seats_available": -1})), bad, v),
        case("negative multiplier", M::POST, "/v1/tables", table_body(json!({"point_multiplier": "-1"})), bad, v),
        case("table name of 201 characters", M::POST, "/v1/tables", table_body(json!({"name": name_201})), bad, v),
        case("missing game type", M::POST, "/v1/tables", Json(json!({"name": "BJ", "house_edge": "2.7", "average_rounds_per_hour": 60})), bad, v),
        case("patch house edge 101", M::PATCH, format!("/v1/tables/{table}"), Json(json!({"house_edge": 101})), bad, v),
        case("patch unknown table", M::PATCH, format!("/v1/tables/{nobody}"), Json(json!({"name": "Ghost"})), missing, unknown),
        case("patch non-uuid table", M::PATCH, "/v1/tables/table-1", Json(json!({"name": "Ghost"})), missing, unknown),
        // Opening slips.
        case("average bet 0", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "0"})), bad, v),
        case("negative average bet", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "-5"})), bad, v),
        case("average bet over 1,000,000", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "1000000.01"})), bad, v),
        case("average bet 2^63", M::POST, "/v1/rating-slips", raw_slip("9223372036854775808"), bad, v),
        case("average bet 1e400", M::POST, "/v1/rating-slips", raw_slip("1e400"), bad, v),
        case("average bet with 5 decimals", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "1.00001"})), bad, v),
        case("average bet a word", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "lots"})), bad, v),
        case("average bet a boolean", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": true})), bad, v),
        // Decimal strings are digits with an optional fraction, nothing a
        // lenient parser would also read (the OpenAPI schema says exactly this).
        case("average bet \"+5\"", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "+5"})), bad, v),
        case("average bet \"1e2\"", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "1e2"})), bad, v),
        case("average bet \".5\"", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": ".5"})), bad, v),
        case("average bet \"5.\"", M::POST, "/v1/rating-slips", slip_body(json!({"average_bet": "5."})), bad, v),
        case("house edge \" 2.7\"", M::POST, "/v1/tables", Json(json!({"name": "T", "game_type": "bj", "house_edge": " 2.7", "average_rounds_per_hour": 60})), bad, v),
        case("missing average bet", M::POST, "/v1/rating-slips", Json(json!({"player_id": player, "table_id": table})), bad, v),
        case("unknown player", M::POST, "/v1/rating-slips", slip_body(json!({"player_id": nobody})), missing, unknown),
        case("unknown table", M::POST, "/v1/rating-slips", slip_body(json!({"table_id": nobody})), missing, unknown),
        case("non-uuid player id in body", M::POST, "/v1/rating-slips", slip_body(json!({"player_id": "P-1"})), bad, v),
        case("started_at in the future", M::POST, "/v1/rating-slips", slip_body(json!({"started_at": at(&t2, min(5))})), bad, v),
        case("started_at 25 h ago", M::POST, "/v1/rating-slips", slip_body(json!({"started_at": at(&t2, -min(25 * 60))})), bad, v),
        case("started_at not a time", M::POST, "/v1/rating-slips", slip_body(json!({"started_at": "yesterday"})), bad, v),
        case("seat 21", M::POST, "/v1/rating-slips", slip_body(json!({"seat_number": 21})), bad, v),
        case("negative seat", M::POST, "/v1/rating-slips", slip_body(json!({"seat_number": -1})), bad, v),
        // Changing and completing slips.
        case("patch average bet 0", M::PATCH, format!("/v1/rating-slips/{slip}"), Json(json!({"average_bet": 0})), bad, v),
        case("patch without average bet", M::PATCH, format!("/v1/rating-slips/{slip}"), Json(json!({})), bad, v),
        case("ended_at before started_at", M::POST, complete.clone(), Json(json!({"ended_at": at(&t2, -min(90))})), bad, v),
        case("ended_at in the future", M::POST, complete.clone(), Json(json!({"ended_at": at(&t2, min(5))})), bad, v),
        case("ended_at not a time", M::POST, complete.clone(), Json(json!({"ended_at": "soon"})), bad, v),
        case("complete with broken JSON", M::POST, complete.clone(), Raw("{".into()), bad, v),
        case("25 h session", M::POST, format!("/v1/rating-slips/{long}/complete"), Json(json!({})), bad, v),
        case("complete a non-uuid slip", M::POST, "/v1/rating-slips/slip-1/complete", Json(json!({})), missing, unknown),
        case("get a non-uuid slip", M::GET, "/v1/rating-slips/%20", NoBody, missing, unknown),
        case("pause an unknown slip", M::POST, format!("/v1/rating-slips/{nobody}/pause"), NoBody, missing, unknown),
        case("recover an unknown slip", M::POST, format!("/v1/rating-slips/{nobody}/recover-loyalty"), NoBody, missing, unknown),
        // Reading the ledger and events.
        case("limit=abc", M::GET, format!("{player_ledger}?limit=abc"), NoBody, bad, v),
        case("limit=0", M::GET, format!("{player_ledger}?limit=0"), NoBody, bad, v),
        case("limit=1001", M::GET, format!("{player_ledger}?limit=1001"), NoBody, bad, v),
        case("limit=-1", M::GET, format!("{player_ledger}?limit=-1"), NoBody, bad, v),
        case("limit=2^63", M::GET, format!("{player_ledger}?limit=9223372036854775808"), NoBody, bad, v),
        case("bogus cursor", M::GET, format!("{player_ledger}?cursor=zzz"), NoBody, bad, v),
        case("forged cursor", M::GET, format!("{player_ledger}?cursor=0000000000000001000000000000"), NoBody, bad, v),
        case("unknown transaction type", M::GET, format!("{player_ledger}?transaction_type=JACKPOT"), NoBody, bad, v),
        case("from not a time", M::GET, format!("{player_ledger}?from=yesterday"), NoBody, bad, v),
        case("audit search by a non-uuid staff", M::GET, "/v1/ledger?staff_id=nope", NoBody, bad, v),
        case("audit search by a bad correlation id", M::GET, "/v1/ledger?correlation_id=a%20b", NoBody, bad, v),
        case("events limit 0", M::GET, "/v1/events?limit=0", NoBody, bad, v),
        case("events after -1", M::GET, "/v1/events?after=-1", NoBody, bad, v),
        case("events after abc", M::GET, "/v1/events?after=abc", NoBody, bad, v),
        // Routes and methods.
        case("unknown route", M::GET, "/v1/jackpots", NoBody, missing, unknown),
        case("wrong method", M::DELETE, format!("/v1/players/{player}"), NoBody, 405, "METHOD_NOT_ALLOWED"),
    ];
    let mut with_header = |what, header: &'static str, value: String| {
        let mut c = case(
            what,
            M::POST,
            "/v1/players",
            Json(json!({"display_name": "Headers"})),
            bad,
            v,
        );
        c.headers.push((header, value));
        cases.push(c);
    };
    with_header(
        "correlation id of 65 characters",
        "X-Correlation-Id",
        "c".repeat(65),
    );
    with_header(
        "correlation id with a space",
        "X-Correlation-Id",
        "two words".into(),
    );
    with_header(
        "idempotency key of 129 characters",
        "Idempotency-Key",
        "k".repeat(129),
    );
    assert!(cases.len() >= 30);

    let events_before = app.all_events().await;
    let ledger_before = app.ledger(&player).await;
    let table_before = app.get_table(&app.admin_token, &table).await.body;

    for c in &cases {
        let r = send(&app, c).await;
        assert!(
            r.status.is_client_error(),
            "{}: {} {} answered {}: {}",
            c.what,
            c.method,
            c.path,
            r.status,
            r.text
        );
        assert_eq!(r.status, c.status, "{}: {}", c.what, r.text);
        assert_eq!(r.code(), c.code, "{}: {}", c.what, r.text);
        let cid = r.body["error"]["correlation_id"].as_str().unwrap_or("");
        assert!(!cid.is_empty(), "{}: no correlation id: {}", c.what, r.text);
        assert_eq!(r.headers["x-correlation-id"], cid, "{}", c.what);
        if c.code == v {
            assert!(
                r.body["error"]["details"]["field"].is_string(),
                "{}: details name no field: {}",
                c.what,
                r.text
            );
        }
    }

    assert_eq!(
        app.all_events().await,
        events_before,
        "no event was written"
    );
    assert_eq!(
        app.ledger(&player).await,
        ledger_before,
        "no ledger entry was written"
    );
    assert_eq!(
        app.get_table(&app.admin_token, &table).await.body,
        table_before
    );
    for id in [&slip, &long] {
        let after = app.slip(id).await;
        assert_eq!(after["status"], "OPEN");
        assert_eq!(after["average_bet"], "10");
    }
}
