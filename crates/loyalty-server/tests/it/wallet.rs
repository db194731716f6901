//! The wallet over HTTP (issue 11; DESIGN §3.5): a comp at an outlet is a
//! hold when the guest orders and a capture when the outlet confirms.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::{Call, Resp, TestApp, bin};
use crate::support::*;

/// A player with `points`, a merchant, and a cashier (id, token).
struct Cage {
    player: String,
    merchant: String,
    cashier: String,
}

async fn cage(app: &TestApp, points: i64) -> Cage {
    app.set_clock(T0).await;
    let player = app.player().await;
    let admin_id = s(&app.me(&app.admin_token).await.body, "id").to_string();
    let mut left = points;
    while left > 0 {
        let chunk = left.min(10_000);
        let r = app
            .manual_reward(
                &app.admin_token,
                json!({"player_id": player, "staff_id": admin_id, "points": chunk,
                       "reason": format!("wallet test funding {left}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        left -= chunk;
    }
    let (_, cashier) = app.staff("cashier").await;
    let m = app
        .create_merchant(&cashier, json!({"name": "Prime Steakhouse"}))
        .await;
    assert_eq!(m.status, 201, "{}", m.text);
    assert_eq!(m.body["earnings"], 0);
    Cage {
        player,
        merchant: s(&m.body, "id").to_string(),
        cashier,
    }
}

async fn hold(app: &TestApp, c: &Cage, amount: i64, extra: Value) -> Resp {
    let mut body = json!({"player_id": c.player, "merchant_id": c.merchant, "amount": amount,
                          "reason": "dinner for two", "reference": "CHK-1001"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.hold(&c.cashier, body).await
}

async fn settle(app: &TestApp, c: &Cage, id: &str, body: Value) -> Resp {
    app.settle(&c.cashier, id, body).await
}

async fn escrow(app: &TestApp, id: &str) -> Value {
    let r = app.escrow(&app.admin_token, id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn verify_ok(app: &TestApp) {
    let r = app.verify(&app.admin_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["drift_count"], 0, "{}", r.text);
}

#[tokio::test]
async fn a_comp_is_held_then_captured_and_every_point_is_accounted_for() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 5_000).await;

    let h = hold(&app, &c, 1_200, json!({})).await;
    assert_eq!(h.status, 201, "{}", h.text);
    for field in [
        "id",
        "player_id",
        "merchant_id",
        "amount",
        "settled_amount",
        "refunded_amount",
        "held_amount",
        "status",
        "reason",
        "reference",
        "expires_at",
        "created_at",
        "updated_at",
        "version",
    ] {
        assert!(
            h.body.get(field).is_some(),
            "escrow without {field}: {}",
            h.text
        );
    }
    assert_eq!(h.body["status"], "HELD");
    assert_eq!(h.body["held_amount"], 1_200);
    let id = s(&h.body, "id").to_string();
    let l = app.loyalty(&c.player).await;
    assert_eq!(
        (l["current_balance"].as_i64(), l["escrow_balance"].as_i64()),
        (Some(3_800), Some(1_200))
    );
    let hold_entry = &app.ledger(&c.player).await[0];
    assert_eq!(hold_entry["transaction_type"], "ESCROW_HOLD");
    assert_eq!(hold_entry["points_change"], -1_200);
    assert_eq!(hold_entry["balance_before"], 5_000);
    assert_eq!(hold_entry["balance_after"], 3_800);
    assert_eq!(hold_entry["reason"], "dinner for two");
    assert!(hold_entry["staff_id"].is_string());
    assert_eq!(
        hold_entry["correlation_id"],
        h.headers["x-correlation-id"].to_str().unwrap()
    );

    // A bar tab: two rounds captured, then the rest on the final one.
    let r = settle(
        &app,
        &c,
        &id,
        json!({"amount": 200, "final": false, "expected_version": 1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["status"].as_str(), r.body["held_amount"].as_i64()),
        (Some("HELD"), Some(1_000))
    );
    let r = settle(&app, &c, &id, json!({"amount": 300, "final": false})).await;
    assert_eq!(r.body["held_amount"], 700, "{}", r.text);
    // Final with less than is held: the rest goes back, PARTIALLY_SETTLED.
    let r = settle(&app, &c, &id, json!({"amount": 500})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PARTIALLY_SETTLED");
    assert_eq!(
        (
            r.body["settled_amount"].as_i64(),
            r.body["refunded_amount"].as_i64()
        ),
        (Some(1_000), Some(200))
    );
    assert_eq!(r.body["version"], 4);

    let m = app.merchant(&c.cashier, &c.merchant).await;
    assert_eq!(m.body["earnings"], 1_000, "{}", m.text);
    let l = app.loyalty(&c.player).await;
    assert_eq!(
        (l["current_balance"].as_i64(), l["escrow_balance"].as_i64()),
        (Some(4_000), Some(0))
    );
    assert_eq!(
        l["lifetime_points"], 5_000,
        "the wallet never moves lifetime points"
    );

    // Another hold, refunded whole.
    let h2 = hold(&app, &c, 300, json!({})).await;
    let id2 = s(&h2.body, "id").to_string();
    let r = app.refund(&c.cashier, &id2, json!({})).await;
    assert_eq!(
        (r.status.as_u16(), r.body["status"].as_str()),
        (200, Some("REFUNDED")),
        "{}",
        r.text
    );

    // The events tell the story.
    let types: Vec<String> = app
        .all_events()
        .await
        .iter()
        .map(|e| s(e, "event_type").to_string())
        .filter(|t| t.starts_with("ESCROW_") || t == "MERCHANT_CREATED")
        .collect();
    assert_eq!(
        types,
        [
            "MERCHANT_CREATED",
            "ESCROW_HELD",
            "ESCROW_SETTLED",
            "ESCROW_SETTLED",
            "ESCROW_PARTIAL_SETTLED",
            "ESCROW_HELD",
            "ESCROW_REFUNDED"
        ]
    );
    verify_ok(&app).await;
}

#[tokio::test]
async fn who_may_hold_settle_and_read_escrows() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 1_000).await;
    let (_, pit) = app.staff("pit_boss").await;
    let (_, auditor) = app.staff("auditor").await;
    let h = hold(&app, &c, 100, json!({})).await;
    let id = s(&h.body, "id").to_string();

    let body =
        json!({"player_id": c.player, "merchant_id": c.merchant, "amount": 1, "reason": "x"});
    assert_error(&app.hold(&pit, body.clone()).await, 403, "FORBIDDEN");
    assert_error(&app.hold(&auditor, body).await, 403, "FORBIDDEN");
    assert_error(&app.settle(&pit, &id, json!({})).await, 403, "FORBIDDEN");
    assert_error(&app.escrow(&pit, &id).await, 403, "FORBIDDEN");
    assert_eq!(app.escrow(&auditor, &id).await.status, 200);

    // A player token reads that player's escrows, and no one else's.
    let token = app
        .create_player_token(&app.admin_token, &c.player)
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.escrow(&token, &id).await.status, 200);
    let own = app.player_escrows(&token, &c.player).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["escrows"].as_array().unwrap().len(), 1);
    let other = cage(&app, 500).await;
    let theirs = hold(&app, &other, 50, json!({})).await;
    let r = app.escrow(&token, s(&theirs.body, "id")).await;
    assert_error(&r, 403, "FORBIDDEN");
    let r = app.player_escrows(&token, &other.player).await;
    assert_error(&r, 403, "FORBIDDEN");
    assert_error(&app.merchants(&token).await, 403, "FORBIDDEN");
}

#[tokio::test]
async fn escrow_lists_page_newest_first_and_filter_by_status() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 10_000).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let h = hold(&app, &c, 10 + i, json!({})).await;
        ids.push(s(&h.body, "id").to_string());
    }
    for id in &ids[..3] {
        assert_eq!(settle(&app, &c, id, json!({})).await.status, 200);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .player_escrows(&c.cashier, &c.player)
            .query("limit=3")
            .query(&cursor)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for e in r.body["escrows"].as_array().unwrap() {
            seen.push(s(e, "id").to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(cur) => cursor = format!("cursor={cur}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let held = app
        .player_escrows(&c.cashier, &c.player)
        .query("status=HELD")
        .await;
    assert_eq!(held.body["escrows"].as_array().unwrap().len(), 4);
    let settled = app
        .player_escrows(&c.cashier, &c.player)
        .query("status=SETTLED")
        .await;
    assert_eq!(settled.body["escrows"].as_array().unwrap().len(), 3);
    let merchants = app.merchants(&c.cashier).await;
    assert_eq!(merchants.body["merchants"][0]["id"], c.merchant.as_str());
    assert_eq!(merchants.body["merchants"][0]["earnings"], 10 + 11 + 12);
}

#[tokio::test]
async fn malformed_wallet_requests_are_4xx_and_write_nothing() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 1_000).await;
    let h = hold(&app, &c, 500, json!({"expires_at": at(T0, min(60))})).await;
    assert_eq!(h.status, 201, "{}", h.text);
    let id = s(&h.body, "id").to_string();
    let nobody = uuid::Uuid::now_v7();
    let before = app.all_events().await.len();
    let balance_before = app.loyalty(&c.player).await;

    let hold_with = |k: &str, v: Value| {
        let mut b =
            json!({"player_id": c.player, "merchant_id": c.merchant, "amount": 10, "reason": "r"});
        b[k] = v;
        b
    };
    let cases: Vec<(&str, Call, u16, &str)> = vec![
        (
            "zero amount",
            app.hold(&c.cashier, hold_with("amount", json!(0))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "negative amount",
            app.hold(&c.cashier, hold_with("amount", json!(-5))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "fractional amount",
            app.hold(&c.cashier, hold_with("amount", json!(1.5))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "amount over 1,000,000",
            app.hold(&c.cashier, hold_with("amount", json!(1_000_001))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "huge amount",
            app.hold(&c.cashier, hold_with("amount", json!(1e20))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "amount as text",
            app.hold(&c.cashier, hold_with("amount", json!("10"))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "empty reason",
            app.hold(&c.cashier, hold_with("reason", json!("  "))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "reason of 501",
            app.hold(&c.cashier, hold_with("reason", json!("r".repeat(501)))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "reference of 201",
            app.hold(&c.cashier, hold_with("reference", json!("x".repeat(201)))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "expiry in the past",
            app.hold(&c.cashier, hold_with("expires_at", json!(at(T0, -min(1))))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "expiry 91 days out",
            app.hold(
                &c.cashier,
                hold_with("expires_at", json!(at(T0, min(91 * 24 * 60)))),
            ),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "expiry not a time",
            app.hold(&c.cashier, hold_with("expires_at", json!("tomorrow"))),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "unknown player",
            app.hold(&c.cashier, hold_with("player_id", json!(nobody))),
            404,
            "NOT_FOUND",
        ),
        (
            "unknown merchant",
            app.hold(&c.cashier, hold_with("merchant_id", json!(nobody))),
            404,
            "NOT_FOUND",
        ),
        (
            "more than available",
            app.hold(&c.cashier, hold_with("amount", json!(501))),
            422,
            "INSUFFICIENT_BALANCE",
        ),
        (
            "final not a boolean",
            app.settle(&c.cashier, &id.to_string(), json!({"final": "yes"})),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "version as text",
            app.settle(
                &c.cashier,
                &id.to_string(),
                json!({"expected_version": "1"}),
            ),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "zero capture",
            app.settle(&c.cashier, &id.to_string(), json!({"amount": 0})),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "capture over held",
            app.settle(&c.cashier, &id.to_string(), json!({"amount": 501})),
            422,
            "ESCROW_AMOUNT_EXCEEDED",
        ),
        (
            "stale version",
            app.settle(&c.cashier, &id.to_string(), json!({"expected_version": 9})),
            409,
            "CONFLICT",
        ),
        (
            "stale version on refund",
            app.refund(&c.cashier, &id.to_string(), json!({"expected_version": 9})),
            409,
            "CONFLICT",
        ),
        (
            "unknown escrow",
            app.settle(&c.cashier, &nobody.to_string(), json!({})),
            404,
            "NOT_FOUND",
        ),
        (
            "not an escrow id",
            app.settle(&c.cashier, "12", json!({})),
            404,
            "NOT_FOUND",
        ),
        (
            "merchant without a name",
            app.create_merchant(&c.cashier, json!({})),
            400,
            "VALIDATION_ERROR",
        ),
    ];
    for (what, call, status, code) in cases {
        let r = call.await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{what}: {}",
            r.text
        );
    }
    let stale = app
        .settle(&c.cashier, &id, json!({"expected_version": 9}))
        .await;
    assert_eq!(
        stale.body["error"]["details"]["current_version"], 1,
        "{}",
        stale.text
    );
    let over = settle(&app, &c, &id, json!({"amount": 501})).await;
    assert_eq!(over.body["error"]["details"]["held_amount"], 500);

    assert_eq!(
        app.all_events().await.len(),
        before,
        "a refused request wrote events"
    );
    assert_eq!(app.loyalty(&c.player).await, balance_before);

    // Past its expiry a hold can no longer be captured (swept or not).
    app.set_clock(&at(T0, min(61))).await;
    let late = settle(&app, &c, &id, json!({})).await;
    assert_error(&late, 422, "ESCROW_NOT_HELD");
}

#[tokio::test]
async fn the_sweeper_refunds_expired_holds_by_the_server_clock() {
    let app = TestApp::spawn_with(&["--test-mode", "--escrow-sweep-interval-ms", "100"]).await;
    let c = cage(&app, 1_000).await;
    let soon = hold(&app, &c, 300, json!({"expires_at": at(T0, min(30))})).await;
    let later = hold(&app, &c, 200, json!({"expires_at": at(T0, min(120))})).await;
    let open = hold(&app, &c, 100, json!({})).await;
    let (soon, later, open) = (
        s(&soon.body, "id").to_string(),
        s(&later.body, "id").to_string(),
        s(&open.body, "id").to_string(),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        escrow(&app, &soon).await["status"],
        "HELD",
        "expired before its time"
    );

    app.set_clock(&at(T0, min(31))).await;
    let e = eventually(Duration::from_secs(10), "the expiry sweep", || async {
        let e = escrow(&app, &soon).await;
        (e["status"] == "EXPIRED").then_some(e)
    })
    .await;
    assert_eq!(
        (e["refunded_amount"].as_i64(), e["held_amount"].as_i64()),
        (Some(300), Some(0))
    );
    assert_eq!(escrow(&app, &later).await["status"], "HELD");
    assert_eq!(escrow(&app, &open).await["status"], "HELD");
    let refund = app
        .ledger(&c.player)
        .await
        .into_iter()
        .find(|e| e["transaction_type"] == "ESCROW_REFUND")
        .expect("a refund entry");
    assert_eq!(refund["points_change"], 300);
    assert!(s(&refund, "reason").starts_with("expired at"), "{refund}");
    assert!(
        app.all_events()
            .await
            .iter()
            .any(|e| e["event_type"] == "ESCROW_EXPIRED")
    );
    let l = app.loyalty(&c.player).await;
    assert_eq!(
        (l["current_balance"].as_i64(), l["escrow_balance"].as_i64()),
        (Some(700), Some(300))
    );
    verify_ok(&app).await;
}

#[tokio::test]
async fn sixteen_concurrent_holds_of_100_on_1000_leave_exactly_ten() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 1_000).await;
    let responses = join_all((0..16).map(|_| hold(&app, &c, 100, json!({})))).await;
    let ok = responses.iter().filter(|r| r.status == 201).count();
    let short = responses
        .iter()
        .filter(|r| r.code() == "INSUFFICIENT_BALANCE")
        .count();
    assert_eq!((ok, short), (10, 6));
    let l = app.loyalty(&c.player).await;
    assert_eq!(
        (l["current_balance"].as_i64(), l["escrow_balance"].as_i64()),
        (Some(0), Some(1_000))
    );

    // Concurrent captures, refunds and retried captures of the same holds.
    let ids: Vec<String> = responses
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| s(&r.body, "id").to_string())
        .collect();
    let mut work = Vec::new();
    for id in &ids {
        work.push(settle(&app, &c, id, json!({"amount": 40})));
        work.push(settle(&app, &c, id, json!({})));
    }
    let results = join_all(work).await;
    for r in &results {
        assert!(
            r.status == 200 || r.code() == "ESCROW_NOT_HELD",
            "{} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        ids.len()
    );
    verify_ok(&app).await;
}

#[tokio::test]
async fn a_retried_partial_capture_never_applies_twice() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 1_000).await;
    let h = hold(&app, &c, 600, json!({})).await;
    let id = s(&h.body, "id").to_string();
    let body = json!({"amount": 100, "final": false});
    let key = [("Idempotency-Key", "pos-4711-round-1")];
    let first = app
        .settle(&c.cashier, &id, body.clone())
        .headers(&key)
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let tries =
        join_all((0..5).map(|_| app.settle(&c.cashier, &id, body.clone()).headers(&key))).await;
    // Each retry replays the stored answer, or — while another retry with
    // the key is being answered — is told so (409); none captures again.
    for r in tries.iter().chain([&app
        .settle(&c.cashier, &id, body.clone())
        .headers(&key)
        .await])
    {
        if r.status == 409 {
            assert_eq!(r.code(), "IDEMPOTENCY_KEY_IN_USE", "{}", r.text);
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.text, first.text);
        assert_eq!(r.headers["idempotent-replayed"], "true");
    }
    assert_eq!(escrow(&app, &id).await["held_amount"], 500);
    let m = app.merchant(&c.cashier, &c.merchant).await;
    assert_eq!(m.body["earnings"], 100);
    // The same key with another amount is refused.
    let other = app
        .settle(&c.cashier, &id, json!({"amount": 200, "final": false}))
        .headers(&key)
        .await;
    assert_error(&other, 422, "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn verification_reports_a_wallet_changed_behind_its_back() {
    let app = TestApp::spawn().await;
    let c = cage(&app, 1_000).await;
    let h = hold(&app, &c, 400, json!({})).await;
    settle(
        &app,
        &c,
        s(&h.body, "id"),
        json!({"amount": 150, "final": false}),
    )
    .await;
    verify_ok(&app).await;
    let n = app
        .storage
        .exec(&format!(
            "UPDATE merchants SET earnings = earnings + 25 WHERE id = '{}'",
            c.merchant
        ))
        .unwrap();
    assert_eq!(n, 1);
    let r = app.verify(&app.admin_token).await;
    let checks: Vec<&str> = r.body["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["check"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"merchant_earnings"), "{}", r.text);
    assert!(checks.contains(&"conservation"), "{}", r.text);
    let d = r.body["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["check"] == "merchant_earnings")
        .unwrap();
    assert_eq!(d["merchant_id"], c.merchant.as_str());
    assert_eq!(
        (d["expected"].as_i64(), d["actual"].as_i64()),
        (Some(175), Some(150))
    );

    // The CLI says the same, with a non-zero exit.
    let out = std::process::Command::new(bin())
        .arg("verify")
        .args(app.storage.args())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("merchant_earnings"));
}
