//! Who may do what (DESIGN §3.7): bearer tokens, roles, player tokens and
//! the `loyalty staff create` command beside a running server.

use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::common::{Call, TestApp, bin, cli_staff_create};
use crate::support::{T0, assert_error, at, min, play, s};

#[tokio::test]
async fn requests_without_a_valid_bearer_token_are_unauthorized() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let long = format!("Bearer {}", "a".repeat(300));
    let lower = format!("bearer {}", "b".repeat(40));
    let basic = format!("Basic {}", app.admin_token);
    let no_scheme = app.admin_token.clone();
    let headers: [Option<&str>; 8] = [
        None,
        Some("Bearer ll_0000000000000000000000000000000000000000000000000000000000000000"),
        Some(&basic),
        Some(&no_scheme),
        Some("Bearer"),
        Some("Bearer    "),
        Some(&long),
        Some(&lower),
    ];
    let routes = [
        (Method::GET, format!("/v1/players/{player}")),
        (Method::GET, format!("/v1/players/{player}/loyalty")),
        (Method::POST, "/v1/players".to_string()),
        (Method::GET, "/v1/ledger".to_string()),
        (Method::POST, "/v1/admin/verify".to_string()),
    ];

    app.set_clock(T0).await;
    for (n, header) in headers.into_iter().enumerate() {
        // Forty-odd failed tokens from one address within a minute would
        // throttle it (DESIGN §3.7): give each header its own minute.
        app.set_clock(&at(T0, 61_000 * n as i64)).await;
        for (method, path) in &routes {
            let extra: Vec<(&str, &str)> = header
                .map(|h| vec![("authorization", h)])
                .unwrap_or_default();
            let body = (*method == Method::POST).then(|| json!({"display_name": "Intruder"}));
            let r = app.send(method.clone(), None, path, body, &extra).await;
            assert_error(&r, 401, "UNAUTHORIZED");
        }
    }
    let events = app
        .events(&app.admin_token)
        .query("event_type=PLAYER_CREATED")
        .await;
    assert_eq!(
        events.body["events"].as_array().unwrap().len(),
        1,
        "a 401 writes nothing"
    );
}

/// (who, request, expected status)
type Row<'a> = (&'a str, Call<'a>, u16);

#[tokio::test]
async fn each_role_has_exactly_its_permissions() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let (_, cashier) = app.staff("cashier").await;
    let (_, auditor) = app.staff("auditor").await;
    let (_, pit_boss) = app.staff("pit_boss").await;
    let (_, supervisor) = app.staff("supervisor").await;
    let new_player = json!({"display_name": "Walk-in"});
    let new_table = json!({"name": "BJ 9", "game_type": "blackjack", "house_edge": "1.5", "average_rounds_per_hour": 70});
    let new_slip = json!({"player_id": player, "table_id": table, "average_bet": "25"});
    let new_staff = json!({"name": "Newcomer", "role": "cashier"});

    let (cashier, auditor, pit_boss, supervisor, admin) = (
        cashier.as_str(),
        auditor.as_str(),
        pit_boss.as_str(),
        supervisor.as_str(),
        app.admin_token.as_str(),
    );

    #[rustfmt::skip]
    let rows: [Row; 24] = [
        ("cashier", app.create_player(cashier, new_player.clone()), 403),
        ("cashier", app.get_player(cashier, &player), 200),
        ("cashier", app.player_loyalty(cashier, &player), 200),
        ("cashier", app.player_ledger(cashier, &player), 403),
        ("cashier", app.create_slip(cashier, new_slip.clone()), 403),
        ("cashier", app.create_staff(cashier, new_staff.clone()), 403),
        ("auditor", app.player_ledger(auditor, &player), 200),
        ("auditor", app.audit_ledger(auditor), 200),
        ("auditor", app.player_loyalty(auditor, &player), 200),
        ("auditor", app.verify(auditor).no_body(), 200),
        ("auditor", app.create_player(auditor, new_player.clone()), 403),
        ("auditor", app.create_slip(auditor, new_slip.clone()), 403),
        ("auditor", app.create_staff(auditor, new_staff.clone()), 403),
        ("pit_boss", app.player_ledger(pit_boss, &player), 403),
        ("pit_boss", app.audit_ledger(pit_boss), 403),
        ("pit_boss", app.player_loyalty(pit_boss, &player), 200),
        ("pit_boss", app.create_table(pit_boss, new_table.clone()), 403),
        ("pit_boss", app.create_player(pit_boss, new_player.clone()), 201),
        ("pit_boss", app.create_slip(pit_boss, new_slip.clone()), 201),
        ("pit_boss", app.create_staff(pit_boss, new_staff.clone()), 403),
        ("supervisor", app.create_table(supervisor, new_table.clone()), 201),
        ("supervisor", app.player_ledger(supervisor, &player), 200),
        ("supervisor", app.create_staff(supervisor, new_staff.clone()), 403),
        ("admin", app.create_staff(admin, new_staff.clone()), 201),
    ];

    for (who, call, status) in rows {
        let what = call.to_string();
        let r = call.await;
        assert_eq!(r.status, status, "{who} {what}: {}", r.text);
        if status == 403 {
            assert_error(&r, 403, "FORBIDDEN");
            assert!(
                r.body["error"]["details"]["permission"].is_string(),
                "names the permission: {}",
                r.text
            );
        }
    }
}

#[tokio::test]
async fn staff_created_through_the_api_get_a_working_token_of_their_role() {
    let app = TestApp::spawn().await;

    let r = app
        .create_staff(&app.admin_token, json!({"name": "Dana", "role": "auditor"}))
        .await;

    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "Dana");
    assert_eq!(r.body["role"], "auditor");
    assert!(r.body["id"].is_string());
    let token = s(&r.body, "token");
    assert_eq!(app.audit_ledger(token).await.status, 200);
    assert_error(
        &app.create_player(token, json!({"display_name": "Nope"}))
            .await,
        403,
        "FORBIDDEN",
    );
}

#[tokio::test]
async fn a_player_token_reads_only_that_players_own_balance_and_ledger() {
    let app = TestApp::spawn().await;
    let table = app.table().await;
    let (me, other) = (app.player().await, app.player().await);
    app.set_clock(T0).await;
    play(&app, &me, &table, "10", &at(T0, -min(30)), T0).await;
    play(&app, &other, &table, "10", &at(T0, -min(30)), T0).await;
    let issued = app.create_player_token(&app.admin_token, &me).await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    let token = s(&issued.body, "token");

    let own = app.player_loyalty(token, &me).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["player_id"], me.as_str());
    assert_eq!(own.body["current_balance"], 81);
    let own_ledger = app.player_ledger(token, &me).await;
    assert_eq!(own_ledger.status, 200, "{}", own_ledger.text);
    assert_eq!(own_ledger.body["entries"], json!(app.ledger(&me).await));

    let slip = app.open_slip(&me, &table, "10", None).await;
    let slip_id = s(&slip, "id");
    let forbidden = [
        app.player_loyalty(token, &other),
        app.player_ledger(token, &other),
        app.get_player(token, &me),
        app.get_player(token, &other),
        app.audit_ledger(token),
        app.audit_ledger(token).query(format!("player_id={me}")),
        app.get_slip(token, slip_id),
        app.create_player(token, json!({"display_name": "Me Again"})),
        app.create_player_token(token, &me),
        app.create_slip(
            token,
            json!({"player_id": me, "table_id": table, "average_bet": "10"}),
        ),
        app.complete_slip(token, slip_id, json!({})),
        app.manual_reward(
            token,
            json!({"player_id": me, "points": 500, "reason": "I deserve more points"}),
        ),
        app.verify(token).no_body(),
    ];
    for call in forbidden {
        assert_error(&call.await, 403, "FORBIDDEN");
    }
    assert_eq!(app.ledger(&me).await.len(), 1, "nothing was written");
}

#[tokio::test]
async fn staff_create_on_the_command_line_works_while_the_server_runs() {
    let app = TestApp::spawn().await;

    let token = cli_staff_create(&app.storage, "Night Supervisor", "supervisor");

    assert!(
        token.starts_with("ll_") && !token.contains(char::is_whitespace),
        "token alone on stdout: {token:?}"
    );
    let r = app
        .create_table(&token, json!({"name": "Roulette 2", "game_type": "roulette", "house_edge": "5.26", "average_rounds_per_hour": 38}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_error(
        &app.create_staff(&token, json!({"name": "X", "role": "admin"}))
            .await,
        403,
        "FORBIDDEN",
    );
}

#[tokio::test]
async fn staff_create_with_an_unknown_role_fails_with_one_line_on_stderr() {
    let app = TestApp::spawn().await;

    let out = Command::new(bin())
        .args(["staff", "create", "--name", "Eve", "--role", "owner"])
        .args(app.storage.args())
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("owner"), "{stderr}");
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let mut app = TestApp::spawn().await;
    let (_, staff_token) = app.staff("cashier").await;
    let player = app.player().await;
    let issued = app.create_player_token(&app.admin_token, &player).await;
    let player_token = s(&issued.body, "token").to_string();
    app.kill();

    let stored = app.storage.dump();
    for token in [&app.admin_token, &staff_token, &player_token] {
        assert!(
            !stored.contains(token.as_str()),
            "a token is stored in plain text"
        );
    }
}
