//! Correlation ids and logs (DESIGN §5, §7): accepted or generated, echoed,
//! stored on ledger entries, and on every log line of the request.

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::{T0, assert_error, at, min, s};

fn header(r: &crate::common::Resp) -> String {
    r.headers["x-correlation-id"].to_str().unwrap().to_string()
}

fn valid(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[tokio::test]
async fn a_valid_correlation_id_is_echoed_and_stored_on_the_ledger_entry() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "40", Some(&at(T0, -min(30))))
        .await;
    let cid = "Pit-7.shift_B-000123";

    let r = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({}))
        .headers(&[("X-Correlation-Id", cid)])
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(header(&r), cid);
    let entries = app.ledger(&player).await;
    assert_eq!(entries[0]["correlation_id"], cid);
    let caused: Vec<Value> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e["correlation_id"] == cid)
        .collect();
    assert!(
        caused
            .iter()
            .any(|e| e["event_type"] == "LEDGER_ENTRY_CREATED"),
        "the events the completion caused carry its id: {caused:?}"
    );

    // The longest allowed id is accepted too, and echoed on errors.
    let longest = "x".repeat(64);
    let r = app
        .get_player(&app.admin_token, "not-a-player")
        .header("X-Correlation-Id", &longest)
        .await;
    assert_error(&r, 404, "NOT_FOUND");
    assert_eq!(header(&r), longest);
    assert_eq!(r.body["error"]["correlation_id"], longest.as_str());
}

#[tokio::test]
async fn an_invalid_correlation_id_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let before = app.all_events().await.len();
    let too_long = "y".repeat(65);

    for bad in [
        too_long.as_str(),
        "",
        "has space",
        "semi;colon",
        "slash/ed",
        "quote\"d",
        "a,b",
        "tab\there",
    ] {
        let r = app
            .create_player(&app.admin_token, json!({"display_name": "Never Created"}))
            .headers(&[("X-Correlation-Id", bad)])
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(
            r.body["error"]["details"]["field"], "X-Correlation-Id",
            "{bad:?}"
        );
        let generated = header(&r);
        assert!(
            valid(&generated),
            "a usable id is returned instead: {generated:?}"
        );
        assert_eq!(r.body["error"]["correlation_id"], generated.as_str());
    }
    assert_eq!(app.all_events().await.len(), before);
}

#[tokio::test]
async fn without_a_correlation_id_one_is_generated_per_request() {
    let app = TestApp::spawn().await;

    let a = app
        .create_player(&app.admin_token, json!({"display_name": "A"}))
        .await;
    let b = app
        .get_player(&app.admin_token, "00000000-0000-0000-0000-000000000000")
        .await;
    let c = app.healthz().await;

    assert_eq!(a.status, 201, "{}", a.text);
    assert_error(&b, 404, "NOT_FOUND");
    assert_eq!(c.status, 200);
    let ids = [header(&a), header(&b), header(&c)];
    for id in &ids {
        assert!(valid(id), "generated id {id:?} is itself a valid id");
    }
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "fresh per request: {ids:?}"
    );
    assert_eq!(b.body["error"]["correlation_id"], ids[1].as_str());
}

/// The log lines of the request with id `cid`, or of route `route`.
fn lines_of(app: &TestApp, cid: &str, route: &str) -> Vec<Value> {
    app.logs()
        .into_iter()
        .filter(|l| {
            l["correlation_id"] == cid
                || l["span"]["correlation_id"] == cid
                || l["span"]["route"] == route
        })
        .collect()
}

#[tokio::test]
async fn every_log_line_of_a_completion_carries_its_correlation_id() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    // 100 × 60 rounds × 0.27 = 1620: the completion also changes the tier.
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let cid = "log-lines-of-one-completion";

    let r = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({}))
        .headers(&[("X-Correlation-Id", cid)])
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    let lines = lines_of(&app, cid, "/v1/rating-slips/{id}/complete");
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or(""))
        .collect();
    for expected in [
        "loyalty_accrual_completed",
        "loyalty_tier_changed",
        "request_completed",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected} line among {messages:?}"
        );
    }
    for line in &lines {
        assert_eq!(
            line["correlation_id"], cid,
            "line without the request's id: {line}"
        );
        assert_eq!(
            line["span"]["correlation_id"], cid,
            "line outside the request span: {line}"
        );
    }
}

#[tokio::test]
async fn the_canonical_accrual_line_has_every_field() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let (staff_id, staff_token) = app.staff("pit_boss").await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "150", Some(&at(T0, -min(3))))
        .await;
    let id = s(&slip, "id");
    let cid = "canonical-line-1";

    let r = app
        .complete_slip(&staff_token, id, json!({}))
        .headers(&[("X-Correlation-Id", cid)])
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    let l = &r.body["loyalty"];
    let lines: Vec<Value> = app
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "loyalty_accrual_completed" && l["rating_slip_id"] == id)
        .collect();
    assert_eq!(lines.len(), 1, "one canonical line per accrual");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["correlation_id"], cid);
    assert_eq!(line["player_id"], player.as_str());
    assert_eq!(line["rating_slip_id"], id);
    assert_eq!(line["staff_id"], staff_id.as_str());
    assert_eq!(line["ledger_entry_id"], l["ledger_entry_id"]);
    assert_eq!(line["points"], 122);
    assert_eq!(line["points"], l["points_earned"]);
    assert_eq!(line["balance_before"], l["balance_before"]);
    assert_eq!(line["balance_after"], l["balance_after"]);
    assert_eq!(line["tier_before"], l["tier_before"]);
    assert_eq!(line["tier_after"], l["tier_after"]);
    assert_eq!(
        line["idempotency_key"],
        app.ledger(&player).await[0]["idempotency_key"]
    );
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "duration_ms: {line}"
    );

    // A replay logs its own line, marked as one, and no tier change.
    let again = app
        .complete_slip(&staff_token, id, json!({}))
        .headers(&[("X-Correlation-Id", "canonical-line-2")])
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let replay = app.logs().into_iter().find(|l| {
        l["message"] == "loyalty_accrual_completed" && l["correlation_id"] == "canonical-line-2"
    });
    assert_eq!(
        replay.expect("a line for the replay")["idempotent_replay"],
        true
    );
}
