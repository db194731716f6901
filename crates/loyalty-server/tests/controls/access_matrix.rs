//! For every route the server exposes and every kind of caller, the status
//! is what DESIGN §3.7 says (issue 3 point 8). The rows are compared with
//! `loyalty_server::http::ROUTES`, the list `router()` is checked against,
//! so a new route without a row fails this test.
//!
//! Run with `--nocapture` to print the matrix as a markdown table.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::*;

/// DESIGN §3.7, literally: permission → (admin, supervisor, pit_boss,
/// cashier, auditor).
const PERMISSIONS: [(&str, [bool; 5]); 10] = [
    ("players:read", [true, true, true, true, true]),
    ("players:write", [true, true, true, false, false]),
    ("tables:write", [true, true, false, false, false]),
    ("ratingslip:write", [true, true, true, false, false]),
    ("loyalty:award", [true, true, true, false, false]),
    ("loyalty:adjust", [true, true, false, false, false]),
    ("wallet:escrow", [true, true, false, true, false]),
    ("loyalty:view_all", [true, true, false, false, true]),
    ("audit:read", [true, true, false, false, true]),
    ("staff:admin", [true, false, false, false, false]),
];

const ROLES: [&str; 5] = ["admin", "supervisor", "pit_boss", "cashier", "auditor"];

/// Who calls: a staff role (index into [`ROLES`]), the player the route
/// concerns (with that player's token), or nobody (no token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Role(usize),
    Player,
    Anonymous,
}

const CALLERS: [Who; 7] = [
    Who::Role(0),
    Who::Role(1),
    Who::Role(2),
    Who::Role(3),
    Who::Role(4),
    Who::Player,
    Who::Anonymous,
];

fn caller_name(w: Who) -> &'static str {
    match w {
        Who::Role(i) => ROLES[i],
        Who::Player => "player token",
        Who::Anonymous => "no token",
    }
}

#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, no token needed.
    Public,
    /// Staff holding the permission.
    Staff(&'static str),
    /// Staff holding the permission, or the player themself.
    StaffOrSelf(&'static str),
    /// Staff holding both permissions.
    StaffBoth(&'static str, &'static str),
    /// Any valid token, staff or player.
    AnyToken,
    /// Staff holding any of the permissions.
    StaffAny(&'static [&'static str]),
    /// Staff holding any of the permissions, or the player themself.
    StaffAnyOrSelf(&'static [&'static str]),
}

/// Who reads merchants and escrows (DESIGN §3.5).
const WALLET_READERS: &[&str] = &["wallet:escrow", "loyalty:view_all", "audit:read"];
const APPROVAL_READERS: &[&str] = &["loyalty:adjust", "audit:read"];
/// The matrix's server runs dual control at this threshold (its other
/// rewards stay below it).
const DUAL_CONTROL_THRESHOLD: i64 = 9_500;

struct Row {
    method: &'static str,
    path: &'static str,
    access: Access,
    success: u16,
}

const fn row(method: &'static str, path: &'static str, access: Access, success: u16) -> Row {
    Row {
        method,
        path,
        access,
        success,
    }
}

use Access::{AnyToken, Public, Staff, StaffAny, StaffAnyOrSelf, StaffBoth, StaffOrSelf};

/// One row per route. DESIGN names no permission for the events replay,
/// verification and single-table reads; these rows record the server's
/// choice (audit:read, audit:read, players:read).
const ROWS: [Row; 69] = [
    row("POST", "/v1/staff", Staff("staff:admin"), 201),
    row("POST", "/v1/players", Staff("players:write"), 201),
    row("GET", "/v1/players/{id}", Staff("players:read"), 200),
    row(
        "POST",
        "/v1/players/{id}/tokens",
        StaffBoth("players:write", "loyalty:view_all"),
        201,
    ),
    row(
        "DELETE",
        "/v1/players/{id}/tokens",
        StaffBoth("players:write", "loyalty:view_all"),
        204,
    ),
    row("GET", "/v1/players", Staff("players:read"), 200),
    row("GET", "/v1/tables", Staff("players:read"), 200),
    row("GET", "/v1/rating-slips", Staff("players:read"), 200),
    row(
        "GET",
        "/v1/rating-slips/{id}/preview",
        Staff("players:read"),
        200,
    ),
    row(
        "GET",
        "/v1/reports/manual-rewards",
        Staff("audit:read"),
        200,
    ),
    row("POST", "/v1/merchants", Staff("wallet:escrow"), 201),
    row("GET", "/v1/merchants", StaffAny(WALLET_READERS), 200),
    row("GET", "/v1/merchants/{id}", StaffAny(WALLET_READERS), 200),
    row("POST", "/v1/escrows", Staff("wallet:escrow"), 201),
    row(
        "GET",
        "/v1/escrows/{id}",
        StaffAnyOrSelf(WALLET_READERS),
        200,
    ),
    row(
        "GET",
        "/v1/players/{id}/escrows",
        StaffAnyOrSelf(WALLET_READERS),
        200,
    ),
    row(
        "POST",
        "/v1/escrows/{id}/settle",
        Staff("wallet:escrow"),
        200,
    ),
    row(
        "POST",
        "/v1/escrows/{id}/refund",
        Staff("wallet:escrow"),
        200,
    ),
    row("GET", "/v1/me", AnyToken, 200),
    row("DELETE", "/v1/me/token", AnyToken, 204),
    row("POST", "/v1/staff/{id}/disable", Staff("staff:admin"), 200),
    row(
        "GET",
        "/v1/players/{id}/loyalty",
        StaffOrSelf("players:read"),
        200,
    ),
    row(
        "GET",
        "/v1/players/{id}/ledger",
        StaffOrSelf("loyalty:view_all"),
        200,
    ),
    row("POST", "/v1/tables", Staff("tables:write"), 201),
    row("GET", "/v1/tables/{id}", Staff("players:read"), 200),
    row("PATCH", "/v1/tables/{id}", Staff("tables:write"), 200),
    row("POST", "/v1/rating-slips", Staff("ratingslip:write"), 201),
    row("GET", "/v1/rating-slips/{id}", Staff("players:read"), 200),
    row(
        "PATCH",
        "/v1/rating-slips/{id}",
        Staff("ratingslip:write"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/pause",
        Staff("ratingslip:write"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/resume",
        Staff("ratingslip:write"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/complete",
        Staff("ratingslip:write"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/recover-loyalty",
        Staff("ratingslip:write"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/void",
        Staff("loyalty:adjust"),
        200,
    ),
    row(
        "POST",
        "/v1/rating-slips/{id}/correct",
        Staff("loyalty:adjust"),
        200,
    ),
    row(
        "POST",
        "/v1/loyalty/manual-rewards",
        Staff("loyalty:award"),
        201,
    ),
    row("GET", "/v1/ledger", Staff("loyalty:view_all"), 200),
    row("GET", "/v1/ledger/checkpoint", Staff("audit:read"), 200),
    row("GET", "/v1/reports/comps", Staff("audit:read"), 200),
    row("GET", "/v1/approvals", StaffAny(APPROVAL_READERS), 200),
    row(
        "POST",
        "/v1/approvals/{id}/approve",
        Staff("loyalty:adjust"),
        200,
    ),
    row(
        "POST",
        "/v1/approvals/{id}/reject",
        Staff("loyalty:adjust"),
        200,
    ),
    row(
        "GET",
        "/v1/reports/staff-activity",
        Staff("audit:read"),
        200,
    ),
    row("GET", "/v1/events", Staff("audit:read"), 200),
    row("GET", "/v1/exports/ledger", Staff("audit:read"), 200),
    row("GET", "/v1/events/stream", StaffOrSelf("audit:read"), 200),
    row("GET", "/v1/dead-letters", Staff("audit:read"), 200),
    row(
        "POST",
        "/v1/dead-letters/{id}/replay",
        Staff("staff:admin"),
        202,
    ),
    row("GET", "/v1/alerts", Staff("audit:read"), 200),
    row("GET", "/v1/subscribers", Staff("audit:read"), 200),
    row(
        "GET",
        "/v1/players/{id}/notifications",
        StaffOrSelf("players:read"),
        200,
    ),
    row(
        "GET",
        "/v1/players/{id}/activity",
        StaffOrSelf("loyalty:view_all"),
        200,
    ),
    row("GET", "/metrics", Public, 200),
    row("POST", "/v1/admin/verify", Staff("audit:read"), 200),
    row("GET", "/", Public, 200),
    row("GET", "/console/", Public, 200),
    row("GET", "/console/{file}", Public, 200),
    row("GET", "/healthz", Public, 200),
    row("GET", "/readyz", Public, 200),
    row("PUT", "/v1/test/clock", Staff("staff:admin"), 200),
    row("PUT", "/v1/test/faults", Staff("staff:admin"), 200),
    row("GET", "/openapi.json", Public, 200),
    row("GET", "/docs", Public, 200),
    row("GET", "/docs/redoc.js", Public, 200),
    row("POST", "/v1/webhooks", Staff("staff:admin"), 201),
    row("GET", "/v1/webhooks", Staff("staff:admin"), 200),
    row("GET", "/v1/webhooks/{id}", Staff("staff:admin"), 200),
    row("DELETE", "/v1/webhooks/{id}", Staff("staff:admin"), 204),
    row(
        "GET",
        "/v1/webhooks/{id}/deliveries",
        Staff("staff:admin"),
        200,
    ),
];

fn role_has(role: usize, permission: &str) -> bool {
    PERMISSIONS
        .iter()
        .find(|(p, _)| *p == permission)
        .unwrap_or_else(|| panic!("{permission} is not in the DESIGN §3.7 table"))
        .1[role]
}

fn expected(r: &Row, who: Who) -> u16 {
    match (r.access, who) {
        (Public, _) => r.success,
        (_, Who::Anonymous) => 401,
        (AnyToken, _) => r.success,
        (StaffAny(_), Who::Player) => 403,
        (StaffAnyOrSelf(_), Who::Player) => r.success,
        (StaffAny(ps) | StaffAnyOrSelf(ps), Who::Role(i)) => {
            if ps.iter().any(|p| role_has(i, p)) {
                r.success
            } else {
                403
            }
        }
        (StaffBoth(..), Who::Player) => 403,
        (StaffBoth(p, q), Who::Role(i)) => {
            if role_has(i, p) && role_has(i, q) {
                r.success
            } else {
                403
            }
        }
        (StaffOrSelf(_), Who::Player) => r.success,
        (Staff(_), Who::Player) => 403,
        (Staff(p) | StaffOrSelf(p), Who::Role(i)) => {
            if role_has(i, p) {
                r.success
            } else {
                403
            }
        }
    }
}

/// What every cell shares: a player (whose token is the player caller), a
/// table and an open slip.
struct Fixture {
    /// A supervisor who asks for approvals: (id, token).
    requester: (String, String),
    player: String,
    table: String,
    slip: String,
    merchant: String,
    escrow: String,
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// A fresh slip of the fixture player in the state the route needs.
async fn slip_for(app: &TestApp, fx: &Fixture, action: &str) -> String {
    let id = id_of(&app.open_slip(&fx.player, &fx.table, "25", None).await);
    let prior = match action {
        "resume" => Some("pause"),
        "recover-loyalty" | "void" | "correct" => Some("complete"),
        _ => None,
    };
    if let Some(p) = prior {
        let r = app
            .slip_action(&app.admin_token, &id, p, Some(json!({})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    id
}

/// The request of one cell: path and body. `n` makes bodies unique.
async fn request(
    app: &TestApp,
    fx: &Fixture,
    r: &Row,
    staff_id: &str,
    n: usize,
) -> (String, Option<Value>) {
    let with_player = r.path.replace("{id}", &fx.player);
    let with_table = r.path.replace("{id}", &fx.table);
    match (r.method, r.path) {
        ("POST", "/v1/staff") => (
            r.path.into(),
            Some(json!({"name": "Matrix staff", "role": "cashier"})),
        ),
        ("POST", "/v1/players") => (
            r.path.into(),
            Some(json!({"display_name": "Matrix player"})),
        ),
        (
            "GET",
            "/v1/players/{id}"
            | "/v1/players/{id}/loyalty"
            | "/v1/players/{id}/ledger"
            | "/v1/players/{id}/notifications"
            | "/v1/players/{id}/activity",
        ) => (with_player, None),
        ("POST", "/v1/players/{id}/tokens") => (with_player, Some(json!({}))),
        // Another player's tokens: the fixture player's token is a caller.
        ("DELETE", "/v1/players/{id}/tokens") => {
            let other = app.player().await;
            mint_player_token(app, &other).await;
            (r.path.replace("{id}", &other), None)
        }
        ("GET", "/v1/me") | ("DELETE", "/v1/me/token") => (r.path.into(), None),
        ("GET", "/v1/players") => ("/v1/players?q=Test".into(), None),
        ("GET", "/v1/ledger/checkpoint") => (r.path.into(), None),
        ("GET", "/" | "/console/") => (r.path.into(), None),
        ("GET", "/console/{file}") => ("/console/console.js".into(), None),
        ("GET", "/v1/tables" | "/v1/rating-slips") => (r.path.into(), None),
        ("GET", "/v1/rating-slips/{id}/preview") => (r.path.replace("{id}", &fx.slip), None),
        ("GET", "/v1/reports/manual-rewards") => (
            format!(
                "{}?from={}&to={}&bucket=hour",
                r.path,
                at(T0, -secs(3600)),
                at(T0, secs(3600))
            ),
            None,
        ),
        ("GET", "/v1/approvals") => ("/v1/approvals?status=PENDING".into(), None),
        ("POST", "/v1/approvals/{id}/approve") => {
            let id = new_approval(app, fx, n).await;
            (r.path.replace("{id}", &id), Some(json!({})))
        }
        ("POST", "/v1/approvals/{id}/reject") => {
            let id = new_approval(app, fx, n).await;
            (
                r.path.replace("{id}", &id),
                Some(json!({"reason": format!("matrix rejection {n}")})),
            )
        }
        ("GET", "/v1/reports/comps" | "/v1/reports/staff-activity") => (
            format!(
                "{}?from={}&to={}",
                r.path,
                at(T0, -secs(3600)),
                at(T0, secs(3600))
            ),
            None,
        ),
        ("POST", "/v1/webhooks") => (
            r.path.into(),
            Some(json!({"url": "http://127.0.0.1:9/matrix", "description": "matrix endpoint"})),
        ),
        ("GET", "/v1/webhooks") => (r.path.into(), None),
        ("GET" | "DELETE", "/v1/webhooks/{id}") | ("GET", "/v1/webhooks/{id}/deliveries") => {
            (r.path.replace("{id}", &new_webhook(app).await), None)
        }
        ("POST", "/v1/merchants") => (r.path.into(), Some(json!({"name": "Matrix bar"}))),
        ("GET", "/v1/merchants") => (r.path.into(), None),
        ("GET", "/v1/merchants/{id}") => (r.path.replace("{id}", &fx.merchant), None),
        ("POST", "/v1/escrows") => (
            r.path.into(),
            Some(
                json!({"player_id": fx.player, "merchant_id": fx.merchant, "amount": 1,
                        "reason": format!("matrix hold {n}")}),
            ),
        ),
        ("GET", "/v1/escrows/{id}") => (r.path.replace("{id}", &fx.escrow), None),
        ("GET", "/v1/players/{id}/escrows") => (with_player, None),
        ("POST", "/v1/escrows/{id}/settle" | "/v1/escrows/{id}/refund") => {
            let escrow = new_hold(app, fx, n).await;
            (r.path.replace("{id}", &escrow), Some(json!({})))
        }
        ("POST", "/v1/staff/{id}/disable") => {
            let (target, _) = app.staff("cashier").await;
            (r.path.replace("{id}", &target), Some(json!({})))
        }
        ("POST", "/v1/tables") => (
            r.path.into(),
            Some(
                json!({"name": "Matrix BJ", "game_type": "blackjack", "house_edge": "2.7", "average_rounds_per_hour": 60}),
            ),
        ),
        ("GET", "/v1/tables/{id}") => (with_table, None),
        ("PATCH", "/v1/tables/{id}") => (with_table, Some(json!({"house_edge": "1.5"}))),
        ("POST", "/v1/rating-slips") => (
            r.path.into(),
            Some(json!({"player_id": fx.player, "table_id": fx.table, "average_bet": "25"})),
        ),
        ("GET", "/v1/rating-slips/{id}") => (r.path.replace("{id}", &fx.slip), None),
        ("PATCH", "/v1/rating-slips/{id}") => (
            r.path.replace("{id}", &fx.slip),
            Some(json!({"average_bet": "30"})),
        ),
        ("POST", "/v1/rating-slips/{id}/void") => {
            let slip = slip_for(app, fx, "void").await;
            (
                r.path.replace("{id}", &slip),
                Some(json!({"reason": format!("access matrix void {n}")})),
            )
        }
        ("POST", "/v1/rating-slips/{id}/correct") => {
            let slip = slip_for(app, fx, "correct").await;
            (
                r.path.replace("{id}", &slip),
                Some(
                    json!({"reason": format!("access matrix correction {n}"), "average_bet": "30"}),
                ),
            )
        }
        ("POST", p) if p.starts_with("/v1/rating-slips/{id}/") => {
            let action = p.rsplit('/').next().unwrap();
            let slip = slip_for(app, fx, action).await;
            (p.replace("{id}", &slip), Some(json!({})))
        }
        ("POST", "/v1/loyalty/manual-rewards") => (
            r.path.into(),
            Some(reward_body(
                &fx.player,
                staff_id,
                10,
                &format!("access matrix reward {n}"),
            )),
        ),
        (
            "GET",
            "/v1/ledger" | "/v1/events" | "/v1/exports/ledger" | "/healthz" | "/readyz"
            | "/v1/dead-letters" | "/v1/alerts" | "/v1/subscribers" | "/metrics" | "/openapi.json"
            | "/docs" | "/docs/redoc.js",
        ) => (r.path.into(), None),
        // The backlog only: a following stream would never end.
        ("GET", "/v1/events/stream") => ("/v1/events/stream?follow=false".into(), None),
        ("POST", "/v1/dead-letters/{id}/replay") => (
            r.path.replace("{id}", &dead_letter_id(app).await),
            Some(json!({})),
        ),
        ("POST", "/v1/admin/verify") => (r.path.into(), Some(json!({}))),
        // Always forward, a minute per cell, so slips opened later stay valid.
        ("PUT", "/v1/test/clock") => (
            r.path.into(),
            Some(json!({"now": at(T0, secs(60 * n as i64))})),
        ),
        ("PUT", "/v1/test/faults") => (r.path.into(), Some(json!({"loyalty_accrual": "ok"}))),
        (m, p) => panic!("no request written for {m} {p}: add one to the access matrix"),
    }
}

/// Some dead letter's id: made once by failing the activity feed until an
/// event is parked (default retry policy), then healing it.
async fn dead_letter_id(app: &TestApp) -> String {
    let first = |r: &crate::common::Resp| {
        r.body["dead_letters"][0]["id"]
            .as_i64()
            .map(|id| id.to_string())
    };
    if let Some(id) = first(&app.dead_letters(&app.admin_token).query("limit=1").await) {
        return id;
    }
    let faults = |names: Value| async move {
        app.set_faults(json!({"failing_subscribers": names})).await;
    };
    faults(json!(["activity_feed"])).await;
    app.player().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        if let Some(id) = first(&app.dead_letters(&app.admin_token).query("limit=1").await) {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    faults(json!([])).await;
    id
}

/// A new hold of 1 point on the fixture player, placed by the admin.
async fn new_hold(app: &TestApp, fx: &Fixture, n: usize) -> String {
    let r = app
        .hold(
            &app.admin_token,
            json!({"player_id": fx.player, "merchant_id": fx.merchant, "amount": 1,
                   "reason": format!("matrix fixture hold {n}")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    id_of(&r.body)
}

/// A pending approval requested by the fixture's requester (so that any
/// caller may decide it).
async fn new_approval(app: &TestApp, fx: &Fixture, n: usize) -> String {
    let r = app
        .manual_reward(
            &fx.requester.1,
            json!({"player_id": fx.player, "staff_id": fx.requester.0,
                   "points": DUAL_CONTROL_THRESHOLD + 100,
                   "reason": format!("matrix approval request {n}")}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    id_of(&r.body["approval"])
}

/// A new webhook endpoint on a closed loopback port, registered by the admin.
async fn new_webhook(app: &TestApp) -> String {
    let r = app
        .create_webhook(
            &app.admin_token,
            json!({"url": "http://127.0.0.1:9/matrix", "event_types": ["TIER_CHANGED"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    id_of(&r.body)
}

/// A new token for `player`, issued by the admin.
async fn mint_player_token(app: &TestApp, player: &str) -> String {
    let r = app.create_player_token(&app.admin_token, player).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["token"].as_str().unwrap().to_string()
}

#[test]
fn the_matrix_has_exactly_one_row_per_route_the_server_exposes() {
    let served: BTreeSet<(&str, &str)> = loyalty_server::http::ROUTES.iter().copied().collect();
    let rows: BTreeSet<(&str, &str)> = ROWS.iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(rows.len(), ROWS.len(), "a route has two rows");
    let missing: Vec<_> = served.difference(&rows).collect();
    let extra: Vec<_> = rows.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the access matrix: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "rows for routes the server does not expose: {extra:?}"
    );
}

#[tokio::test]
async fn every_route_answers_every_caller_as_design_section_3_7_says() {
    let threshold = DUAL_CONTROL_THRESHOLD.to_string();
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--dual-control-threshold",
        &threshold,
        "--reward-rate-limit",
        "1000",
        "--webhook-allow-hosts",
        "127.0.0.1",
    ])
    .await;
    app.set_clock(T0).await;
    let mut staff = Vec::new();
    for role in ROLES {
        staff.push(app.staff(role).await);
    }
    let player = app.player().await;
    let table = app.table().await;
    let slip = id_of(&app.open_slip(&player, &table, "25", None).await);
    let player_token = app
        .create_player_token(&app.admin_token, &player)
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Points to hold, a merchant and a hold for the wallet's rows.
    let admin_id = app.me(&app.admin_token).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let funded = app
        .manual_reward(
            &app.admin_token,
            json!({"player_id": player, "staff_id": admin_id, "points": 9_000,
                   "reason": "wallet rows of the access matrix"}),
        )
        .await;
    assert_eq!(funded.status, 201, "{}", funded.text);
    let merchant = id_of(
        &app.create_merchant(&app.admin_token, json!({"name": "Matrix steakhouse"}))
            .await
            .body,
    );
    let mut fx = Fixture {
        requester: app.staff("supervisor").await,
        player,
        table,
        slip,
        merchant,
        escrow: String::new(),
    };
    fx.escrow = new_hold(&app, &fx, 0).await;

    let mut table_md = String::from("| method | path |");
    for w in CALLERS {
        table_md.push_str(&format!(" {} |", caller_name(w)));
    }
    table_md.push_str("\n|---|---|");
    table_md.push_str(&"---|".repeat(CALLERS.len()));
    table_md.push('\n');
    let mut wrong = Vec::new();
    let mut n = 0;
    for r in &ROWS {
        table_md.push_str(&format!("| {} | `{}` |", r.method, r.path));
        for who in CALLERS {
            n += 1;
            let (mut token, staff_id) = match who {
                Who::Role(i) => (Some(staff[i].1.clone()), staff[i].0.as_str()),
                Who::Player => (Some(player_token.clone()), staff[0].0.as_str()),
                Who::Anonymous => (None, staff[0].0.as_str()),
            };
            // Revoking the caller's own token: a token minted for this cell.
            if (r.method, r.path) == ("DELETE", "/v1/me/token") {
                token = match who {
                    Who::Role(i) => Some(app.staff(ROLES[i]).await.1),
                    Who::Player => Some(mint_player_token(&app, &fx.player).await),
                    Who::Anonymous => None,
                };
            }
            let token = token.as_deref();
            let (path, body) = request(&app, &fx, r, staff_id, n).await;
            let method = Method::from_bytes(r.method.as_bytes()).unwrap();
            let body = body.map(|b| b.to_string());
            let resp = app.raw(method, token, &path, body.as_deref(), &[]).await;
            let got = resp.status.as_u16();
            let want = expected(r, who);
            let code_ok = match got {
                401 => resp.code() == "UNAUTHORIZED",
                403 => resp.code() == "FORBIDDEN",
                _ => true,
            };
            if got != want || !code_ok {
                wrong.push(format!(
                    "{} {} as {}: expected {want}, got {got} {}",
                    r.method,
                    r.path,
                    caller_name(who),
                    resp.text
                ));
            }
            let mark = if got == want { "" } else { " ✗" };
            table_md.push_str(&format!(" {got}{mark} |"));
        }
        table_md.push('\n');
    }
    println!(
        "\nAccess matrix (status per route and caller; 401 UNAUTHORIZED, 403 FORBIDDEN):\n\n{table_md}"
    );
    assert!(
        wrong.is_empty(),
        "cells that differ from DESIGN §3.7:\n{}",
        wrong.join("\n")
    );
}
