//! Security hardening (issue 9; DESIGN §3.3, §3.7, §5): each hole found by
//! an attacker's probing, pinned by the request that used to get through.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Resp, TestApp};
use crate::support::*;

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A client whose connections come from `ip` (any 127/8 address is this
/// machine's loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn get_from(app: &TestApp, client: &reqwest::Client, token: Option<&str>) -> Resp {
    let mut rb = client.get(format!("{}/v1/me", app.base));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    TestApp::resp(rb.send().await.expect("request")).await
}

async fn player_token(app: &TestApp, token: &str, player: &str) -> Resp {
    app.create_player_token(token, player).await
}

// ------------------------------------------------------------ 1. escalation

#[tokio::test]
async fn only_staff_who_may_read_the_ledger_may_issue_a_player_token() {
    let app = TestApp::spawn().await;
    let (_, pit) = app.staff("pit_boss").await;
    let (_, sup) = app.staff("supervisor").await;
    let player = app.player().await;

    // The pit boss may not read the ledger, so may not mint a token that can.
    let ledger = app.player_ledger(&pit, &player).await;
    assert_error(&ledger, 403, "FORBIDDEN", None);
    let minted = player_token(&app, &pit, &player).await;
    assert_error(&minted, 403, "FORBIDDEN", None);
    assert_eq!(
        minted.body["error"]["details"]["permission"],
        "loyalty:view_all"
    );

    let ok = player_token(&app, &sup, &player).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let token = ok.body["token"].as_str().unwrap();
    let own = app.player_ledger(token, &player).await;
    assert_eq!(own.status, 200, "{}", own.text);
}

// ------------------------------------------------------------ 3. secrets at rest

#[tokio::test]
async fn an_idempotent_replay_never_shows_a_token_and_no_table_holds_one() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let key = [("idempotency-key", hv(b"issue-token-1"))];
    let body = r#"{"name":"Cage cashier","role":"cashier"}"#;
    let first = app
        .raw(
            Method::POST,
            Some(&app.admin_token),
            "/v1/staff",
            Some(body),
            &key,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let staff_token = first.body["token"].as_str().unwrap().to_string();
    assert!(staff_token.starts_with("ll_"));
    let again = app
        .raw(
            Method::POST,
            Some(&app.admin_token),
            "/v1/staff",
            Some(body),
            &key,
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["token"], Value::Null, "{}", again.text);
    assert_eq!(again.body["token_redacted"], true, "{}", again.text);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let path = format!("/v1/players/{player}/tokens");
    let key = [("idempotency-key", hv(b"issue-token-2"))];
    let first = app
        .raw(
            Method::POST,
            Some(&app.admin_token),
            &path,
            Some("{}"),
            &key,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let token = first.body["token"].as_str().unwrap().to_string();
    let again = app
        .raw(
            Method::POST,
            Some(&app.admin_token),
            &path,
            Some("{}"),
            &key,
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["token"], Value::Null);
    assert_eq!(again.body["token_redacted"], true);
    assert_eq!(again.body["player_id"], first.body["player_id"]);

    // Both tokens work, and neither is anywhere in storage.
    assert_eq!(app.me(&staff_token).await.status, 200);
    assert_eq!(app.me(&token).await.status, 200);
    let dump = app.storage.dump();
    assert!(
        dump.contains("issue-token-1"),
        "the dump misses the idempotency records"
    );
    for secret in [&staff_token, &token] {
        assert!(
            !dump.contains(secret.as_str()),
            "a token is stored in plaintext"
        );
        assert!(
            !dump.contains(&secret[3..]),
            "a token is stored in plaintext"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    if crate::common::postgres_backend() {
        return; // no data directory on this backend
    }
    app.player().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&app.data_dir), 0o700, "data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&app.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files += 1;
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert!(files >= 2, "expected the database and its log");
}

// ------------------------------------------------------------ 4. revocation

#[tokio::test]
async fn me_says_who_the_token_belongs_to() {
    let app = TestApp::spawn().await;
    let (pit_id, pit) = app.staff("pit_boss").await;
    let me = app.me(&pit).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["kind"], "staff");
    assert_eq!(me.body["id"], pit_id.as_str());
    assert_eq!(me.body["role"], "pit_boss");
    assert_eq!(me.body["name"], "pit_boss user");
    let perms: Vec<&str> = me.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        perms,
        [
            "players:read",
            "players:write",
            "ratingslip:write",
            "loyalty:award"
        ]
    );

    let player = app.player().await;
    let token = player_token(&app, &app.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = app.me(&token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["kind"], "player");
    assert_eq!(me.body["id"], player.as_str());
    assert_eq!(me.body["name"], "Test Player");
    assert_eq!(me.body["permissions"], json!([]));
}

#[tokio::test]
async fn revoked_tokens_and_disabled_staff_get_401_and_keep_their_history() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let player = app.player().await;

    // Revoking one's own token stops that token only.
    let (_, sup) = app.staff("supervisor").await;
    let second = app.staff("supervisor").await.1;
    let r = app.revoke_own_token(&sup).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&app.me(&sup).await, 401, "UNAUTHORIZED", None);
    assert_eq!(app.me(&second).await.status, 200);

    // Disabling a pit boss stops every token of theirs; their rewards keep
    // naming them.
    let (pit_id, pit) = app.staff("pit_boss").await;
    let granted = reward_ok(&app, &pit, &reward_body(&player, &pit_id, 25, REASON)).await;
    let entry_id = granted["id"].as_str().unwrap().to_string();
    let r = app.disable_staff(&app.admin_token, &pit_id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disabled"], true);
    assert_eq!(r.body["id"], pit_id.as_str());
    assert_error(&app.me(&pit).await, 401, "UNAUTHORIZED", None);
    let again = app
        .manual_reward(&pit, reward_body(&player, &pit_id, 5, REASON))
        .await;
    assert_error(&again, 401, "UNAUTHORIZED", None);
    let entries = app.ledger_oldest_first(&player).await;
    let kept = entries
        .iter()
        .find(|e| e["id"] == entry_id.as_str())
        .unwrap();
    assert_eq!(kept["staff_id"], pit_id.as_str());
    // Disabling twice is harmless; an unknown id is 404; oneself is refused.
    let r = app.disable_staff(&app.admin_token, &pit_id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .disable_staff(&app.admin_token, &uuid::Uuid::now_v7().to_string())
        .await;
    assert_error(&r, 404, "NOT_FOUND", None);
    let admin_id = app.me(&app.admin_token).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.disable_staff(&app.admin_token, &admin_id).await;
    assert_error(&r, 409, "CONFLICT", None);

    // Revoking a player's tokens stops all of them.
    let t1 = player_token(&app, &app.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let t2 = player_token(&app, &app.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let loyalty = |token: &str| app.player_loyalty(token, &player);
    assert_eq!(loyalty(&t1).await.status, 200);
    let r = app.revoke_player_tokens(&second, &player).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&loyalty(&t1).await, 401, "UNAUTHORIZED", None);
    assert_error(&loyalty(&t2).await, 401, "UNAUTHORIZED", None);
    // A new token works again.
    let t3 = player_token(&app, &app.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(loyalty(&t3).await.status, 200);
}

// ------------------------------------------------------------ 5. reward_id

#[tokio::test]
async fn a_reward_id_replays_only_the_identical_request() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (a_id, a) = app.staff("supervisor").await;
    let (b_id, b) = app.staff("supervisor").await;
    let p1 = app.player().await;
    let p2 = app.player().await;
    let secret_reason = "comp for the anniversary dinner, table 12";

    let mut body = reward_body(&p1, &a_id, 40, secret_reason);
    body["reward_id"] = json!("rw-2026-001");
    let first = app.manual_reward(&a, body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);

    // B reuses A's reward_id for another player and amount.
    let mut stolen = reward_body(&p2, &b_id, 500, REASON);
    stolen["reward_id"] = json!("rw-2026-001");
    let r = app.manual_reward(&b, stolen.clone()).await;
    assert_error(&r, 422, "IDEMPOTENCY_KEY_REUSED", None);
    assert!(
        !r.text.contains(secret_reason),
        "the original entry leaked: {}",
        r.text
    );
    assert!(
        !r.text.contains(&p1),
        "the original entry leaked: {}",
        r.text
    );
    assert!(app.ledger_oldest_first(&p2).await.is_empty());

    // Any single difference is a reuse too.
    for (field, value) in [
        ("points", json!(41)),
        ("reason", json!("a different reason, same id")),
        ("player_id", json!(p2)),
    ] {
        let mut other = body.clone();
        other[field] = value;
        let r = app.manual_reward(&a, other.clone()).await;
        assert_error(&r, 422, "IDEMPOTENCY_KEY_REUSED", None);
    }

    // The identical request replays.
    let again = app.manual_reward(&a, body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["idempotent_replay"], true);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(app.ledger_oldest_first(&p1).await.len(), 1);
}

#[tokio::test]
async fn the_same_reward_for_two_slips_on_one_gaming_day_is_two_rewards() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (pit_id, pit) = app.staff("pit_boss").await;
    let player = app.player().await;
    let table = app.table().await;
    let mut rewards = Vec::new();
    for _ in 0..2 {
        let slip = app.open_slip(&player, &table, "25", None).await;
        let mut body = reward_body(&player, &pit_id, 30, REASON);
        body["rating_slip_id"] = slip["id"].clone();
        let r = app.manual_reward(&pit, body.clone()).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["idempotent_replay"], false);
        // The same slip again is a replay.
        let r2 = app.manual_reward(&pit, body.clone()).await;
        assert_eq!(r2.status, 200, "{}", r2.text);
        assert_eq!(r2.body["id"], r.body["id"]);
        rewards.push(r.body["id"].clone());
    }
    assert_ne!(rewards[0], rewards[1]);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 2);
}

// ------------------------------------------------------------ 6. slow clients

/// Reads until the server closes the connection (or `within` passes);
/// returns what it sent and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_and_silent_connections_are_closed_by_their_timeouts() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--header-timeout-ms",
        "500",
        "--body-timeout-ms",
        "500",
        "--idle-timeout-ms",
        "1000",
    ])
    .await;
    let to = addr(&app);

    // Silent: connects and says nothing.
    let mut silent = TcpStream::connect(to).await.unwrap();
    // Partial headers, trickled.
    let mut partial = TcpStream::connect(to).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Partial body: complete headers, ten bytes of a hundred.
    let mut body = TcpStream::connect(to).await.unwrap();
    let head = format!(
        "POST /v1/players HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"display_",
        app.admin_token
    );
    body.write_all(head.as_bytes()).await.unwrap();
    // Kept alive after one answered request, then silent.
    let mut kept = TcpStream::connect(to).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let limit = Duration::from_secs(10);
    let (_, closed) = read_until_closed(&mut silent, limit).await;
    assert!(closed, "a silent connection stayed open");
    let (_, closed) = read_until_closed(&mut partial, limit).await;
    assert!(closed, "a connection with partial headers stayed open");
    let (answer, closed) = read_until_closed(&mut body, limit).await;
    assert!(closed, "a connection with a partial body stayed open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"REQUEST_TIMEOUT\""), "{answer}");
    let (answer, closed) = read_until_closed(&mut kept, limit).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stayed open");
    // Nothing was written by the cut-off request.
    let r = app.events(&app.admin_token).query("limit=1000").await;
    assert!(
        !r.text.contains("PLAYER_CREATED"),
        "the cut-off request wrote something: {}",
        r.text
    );
}

#[tokio::test]
async fn connections_over_the_cap_get_429_with_the_envelope() {
    let app = TestApp::spawn_with(&["--test-mode", "--max-connections", "3"]).await;
    let to = addr(&app);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(to).await.unwrap();
        // One request each, so the server has surely accepted them.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut extra = TcpStream::connect(to).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "RATE_LIMIT_EXCEEDED");
    assert!(v["error"]["correlation_id"].as_str().is_some());

    // Closing the held connections frees their places.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let client = reqwest::Client::new();
        let r = client.get(format!("{}/healthz", app.base)).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "places were not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_token_holds_at_most_the_configured_live_streams() {
    let app = TestApp::spawn_with(&["--test-mode", "--streams-per-token", "2"]).await;
    let player = app.player().await;
    let token = player_token(&app, &app.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    let open = |t: String| {
        let c = client.clone();
        let url = format!("{}/v1/events/stream", app.base);
        async move { c.get(url).bearer_auth(t).send().await.unwrap() }
    };
    let s1 = open(token.clone()).await;
    let s2 = open(token.clone()).await;
    assert_eq!(s1.status(), 200);
    assert_eq!(s2.status(), 200);
    let s3 = open(token.clone()).await;
    assert_eq!(s3.status(), 429);
    assert!(s3.headers().get("retry-after").is_some());
    let v: Value = s3.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RATE_LIMIT_EXCEEDED");
    // Another token has its own allowance.
    let staff = open(app.admin_token.clone()).await;
    assert_eq!(staff.status(), 200);
    drop((s1, s2, staff));
}

// ------------------------------------------------------------ 7. brute force

#[tokio::test]
async fn repeated_failed_tokens_from_one_address_throttle_every_token_from_it() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let attacker = client_from("127.0.0.2");
    let bystander = client_from("127.0.0.3");

    // Requests without a token are not failures.
    for _ in 0..30 {
        let r = get_from(&app, &attacker, None).await;
        assert_error(&r, 401, "UNAUTHORIZED", None);
    }
    assert_eq!(
        get_from(&app, &attacker, Some(&app.admin_token))
            .await
            .status,
        200
    );

    for i in 0..21 {
        let guess = format!("ll_{i:064x}");
        let r = get_from(&app, &attacker, Some(&guess)).await;
        assert_error(&r, 401, "UNAUTHORIZED", None);
    }
    // The 22nd, even a valid token, is throttled until the minute passes.
    let r = get_from(&app, &attacker, Some(&app.admin_token)).await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let r = get_from(&app, &attacker, Some("ll_another_guess")).await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED", None);
    // Without a token it is still just 401; other addresses are untouched.
    assert_error(
        &get_from(&app, &attacker, None).await,
        401,
        "UNAUTHORIZED",
        None,
    );
    assert_eq!(
        get_from(&app, &bystander, Some(&app.admin_token))
            .await
            .status,
        200
    );

    // Each failure is logged, never with the token.
    let logs = app.logs();
    let failures: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "auth_failed")
        .collect();
    assert_eq!(failures.len(), 21, "auth_failed lines");
    assert_eq!(failures[0]["client"], "127.0.0.2");
    let all = std::fs::read_to_string(&app.log_path).unwrap();
    assert!(
        !all.contains(&format!("ll_{:064x}", 3)),
        "a guessed token was logged"
    );

    // The window follows the server clock.
    app.set_clock(&at(T0, secs(61))).await;
    assert_eq!(
        get_from(&app, &attacker, Some(&app.admin_token))
            .await
            .status,
        200
    );
}

// ------------------------------------------------------------ 8. CSV export

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_are_attachments() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (sup_id, sup) = app.staff("supervisor").await;
    let player = app.player().await;
    let formula = "=cmd|' /C calc'!A0 for the win";
    reward_ok(&app, &sup, &reward_body(&player, &sup_id, 50, formula)).await;
    reward_ok(
        &app,
        &sup,
        &reward_body(&player, &sup_id, -20, "@SUM(A1:A9) correction"),
    )
    .await;
    let plus = "+1 for the birthday, as promised";
    reward_ok(&app, &sup, &reward_body(&player, &sup_id, 5, plus)).await;

    let csv = app
        .export_ledger(&app.admin_token)
        .query("format=csv")
        .await;
    assert_eq!(csv.status, 200);
    let disposition = csv.headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        csv.text.contains(",'=cmd|' /C calc'!A0 for the win,"),
        "{}",
        csv.text
    );
    assert!(
        csv.text.contains(",'@SUM(A1:A9) correction,"),
        "{}",
        csv.text
    );
    assert!(
        csv.text.contains(",\"'+1 for the birthday, as promised\","),
        "{}",
        csv.text
    );
    // Numbers stay numbers: the adjustment's points are a plain -20.
    assert!(csv.text.contains(",-20,"), "{}", csv.text);
    assert!(!csv.text.contains("'-20"), "{}", csv.text);

    let jsonl = app
        .export_ledger(&app.admin_token)
        .query("format=jsonl")
        .await;
    assert!(jsonl.headers.get("content-disposition").is_none());
    let reasons: Vec<String> = jsonl
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(reasons.contains(&formula.to_string()), "{reasons:?}");
}

// ------------------------------------------------------------ 9. parser

#[tokio::test]
async fn bodies_are_one_json_value_sent_as_json() {
    let app = TestApp::spawn().await;
    let events_before = app.all_events().await.len();
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut rb = app
            .client
            .post(format!("{}/v1/players", app.base))
            .bearer_auth(&app.admin_token)
            .body(body);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (
                status,
                v["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let json = Some("application/json");
    for (body, ct, status, code) in [
        (r#"{"display_name":"x"} xyz"#, json, 400, "VALIDATION_ERROR"),
        (
            r#"{"display_name":"x"}{"display_name":"y"}"#,
            json,
            400,
            "VALIDATION_ERROR",
        ),
        (r#"{"display_name":"x"} 1"#, json, 400, "VALIDATION_ERROR"),
        (
            r#"{"display_name":"x"}"#,
            Some("text/plain"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            r#"{"display_name":"x"}"#,
            Some("application/x-www-form-urlencoded"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            r#"{"display_name":"x"}"#,
            None,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ] {
        let (got, got_code) = post(body, ct).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{body} as {ct:?}");
    }
    // JSON with parameters, and a trailing newline, are fine.
    let (got, _) = post(
        "{\"display_name\":\"Ann\"}\n",
        Some("application/json; charset=utf-8"),
    )
    .await;
    assert_eq!(got, 201);
    assert_eq!(
        app.all_events().await.len(),
        events_before + 1,
        "a refused body wrote something"
    );

    // A body over the limit: 413 with the envelope.
    let big = format!(r#"{{"display_name":"{}"}}"#, "x".repeat(70 * 1024));
    let r = app
        .raw(
            Method::POST,
            Some(&app.admin_token),
            "/v1/players",
            Some(&big),
            &[],
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", None);
}

// ------------------------------------------------------------ 10. headers

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let cases = [
        app.send(Method::GET, None, "/healthz", None, &[]).await,
        app.me(&app.admin_token).await,
        app.send(Method::GET, None, "/v1/me", None, &[]).await,
        app.get(&app.admin_token, "/v1/no-such-route").await,
        app.send(Method::GET, None, "/metrics", None, &[]).await,
    ];
    for r in &cases {
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{}", r.text);
    }
    for r in &cases[1..4] {
        assert_eq!(r.headers["cache-control"], "no-store", "{}", r.text);
    }
    // Headers over the application's limit: 431 with the envelope.
    let big = "x".repeat(20 * 1024);
    let r = app
        .send(
            Method::GET,
            None,
            "/healthz",
            None,
            &[("x-padding", big.as_str())],
        )
        .await;
    assert_eq!(r.status, 431, "{}", r.text);
    assert_eq!(r.code(), "HEADERS_TOO_LARGE");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    let unauthorized = &cases[2];
    assert_eq!(unauthorized.status, 401);
    let challenge = unauthorized.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

// ------------------------------------------------------------ 11. names

#[tokio::test]
async fn names_refuse_invisible_and_direction_changing_characters() {
    let app = TestApp::spawn().await;
    let app = &app;
    let create = |name: String| async move {
        app.create_player(&app.admin_token, json!({"display_name": name}))
            .await
    };
    for bad in [
        "Ann\u{202E}eeL",
        "Ann\u{2066}Lee\u{2069}",
        "Ann\u{200B}Lee",
        "Ann\u{2060}Lee",
        "\u{FEFF}Ann",
        "\u{200D}",
        "\u{200C}\u{200D}",
        "\u{3164}",
        "\u{FE0F}",
    ] {
        let r = create(bad.to_string()).await;
        assert_error(&r, 400, "VALIDATION_ERROR", Some("display_name"));
    }
    for good in [
        "می\u{200C}خواهم",
        "👨\u{200D}👩\u{200D}👧 family",
        "क्\u{200D}ष",
        "Zoë O'Neil",
    ] {
        let r = create(good.to_string()).await;
        assert_eq!(r.status, 201, "{good:?}: {}", r.text);
        assert_eq!(r.body["display_name"], good);
    }
    let r = app
        .create_staff(
            &app.admin_token,
            json!({"name": "Eve\u{202E}", "role": "cashier"}),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("name"));
}

// ------------------------------------------------------------ 12. range

#[tokio::test]
async fn no_balance_leaves_the_range_json_clients_read_exactly() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let player = app.player().await;
    let table = app
        .table_with(
            json!({"name": "High roller", "game_type": "baccarat", "house_edge": "100",
            "average_rounds_per_hour": 1000, "points_conversion_rate": "1000",
            "point_multiplier": "100", "seats_available": 0}),
        )
        .await;
    let day_ago = at(T0, -secs(24 * 3600 - 60));
    let s1 = app
        .open_slip(&player, &table, "1000000", Some(&day_ago))
        .await;
    let s2 = app
        .open_slip(&player, &table, "1000000", Some(&day_ago))
        .await;
    let first = app
        .complete_slip(&app.admin_token, s1["id"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let balance = first.body["loyalty"]["balance_after"].as_i64().unwrap();
    assert!(balance < (1i64 << 53), "{balance}");

    let slip2 = s2["id"].as_str().unwrap();
    let events_before = app.all_events().await.len();
    let second = app.complete_slip(&app.admin_token, slip2, json!({})).await;
    assert_error(&second, 422, "POINTS_OUT_OF_RANGE", None);
    // Nothing written: the slip is still open, the balance unchanged.
    let slip = app.get_slip(&app.admin_token, slip2).await;
    assert_eq!(slip.body["status"], "OPEN", "{}", slip.text);
    let loyalty = app.player_loyalty(&app.admin_token, &player).await;
    assert_eq!(loyalty.body["current_balance"].as_i64(), Some(balance));
    assert_eq!(app.all_events().await.len(), events_before);
    assert_eq!(app.ledger_oldest_first(&player).await.len(), 1);
}

// ------------------------------------------------------------ 13. echo

#[tokio::test]
async fn errors_echo_at_most_a_short_piece_of_the_input() {
    let app = TestApp::spawn().await;
    let (pit_id, pit) = app.staff("pit_boss").await;
    let player = app.player().await;
    let huge = "A".repeat(60 * 1000);
    let mut body = reward_body(&player, &pit_id, 10, REASON);
    body["points"] = json!(huge);
    let r = app.manual_reward(&pit, body.clone()).await;
    assert_error(&r, 400, "VALIDATION_ERROR", Some("points"));
    assert!(r.text.len() < 1000, "{} bytes echoed", r.text.len());
    let mut body = json!({"display_name": "x"});
    body[&huge[..5000]] = json!(1);
    body["card_number"] = json!([huge]);
    let r = app.create_player(&app.admin_token, body).await;
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert!(r.text.len() < 1000, "{} bytes echoed", r.text.len());
}

// ------------------------------------------------------------ 14. cursors

#[tokio::test]
async fn ledger_cursors_are_signed_by_the_server() {
    use sha2::{Digest, Sha256};
    let mut app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (sup_id, sup) = app.staff("supervisor").await;
    let player = app.player().await;
    for i in 0..3 {
        reward_ok(
            &app,
            &sup,
            &reward_body(&player, &sup_id, 10 + i, &format!("{REASON} {i}")),
        )
        .await;
    }
    let page_of_one = || {
        app.player_ledger(&app.admin_token, &player)
            .query("limit=1")
    };
    let page = page_of_one().await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(
        page_of_one().query(format!("cursor={cursor}")).await.status,
        200
    );

    // The old, unkeyed scheme: anyone could compute a cursor for any seq.
    let forged_old = {
        let mut h = Sha256::new();
        h.update(b"loyalty-ledger-cursor-v1");
        h.update(1_000_000i64.to_be_bytes());
        let d = h.finalize();
        let hex: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{:016x}{hex}", 1_000_000)
    };
    let seq_hex = &cursor[..16];
    let altered = format!(
        "{:016x}{}",
        i64::from_str_radix(seq_hex, 16).unwrap() + 1,
        &cursor[16..]
    );
    let flipped = format!(
        "{}{}",
        &cursor[..cursor.len() - 1],
        if cursor.ends_with('0') { '1' } else { '0' }
    );
    for bad in [forged_old, altered, flipped, "0".repeat(cursor.len())] {
        let r = page_of_one().query(format!("cursor={bad}")).await;
        assert_error(&r, 400, "VALIDATION_ERROR", Some("cursor"));
    }
    // The key is kept with the data: a restarted server honours the cursor.
    app.restart(&["--test-mode"]);
    let r = app
        .player_ledger(&app.admin_token, &player)
        .query(format!("limit=1&cursor={cursor}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1);
}

// ------------------------------------------------------------ 15. metrics

#[tokio::test]
async fn metrics_can_move_to_their_own_listener() {
    let app = TestApp::spawn_with(&["--test-mode", "--metrics-listen", "127.0.0.1:0"]).await;
    let main = app.send(Method::GET, None, "/metrics", None, &[]).await;
    assert_error(&main, 404, "NOT_FOUND", None);
    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "metrics_listening")
        .expect("metrics listener address in the log");
    let addr = line["addr"].as_str().unwrap();
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("loyalty_http_requests"),
        "{}",
        &text[..text.len().min(500)]
    );
    let other = reqwest::get(format!("http://{addr}/v1/me")).await.unwrap();
    assert_eq!(other.status(), 404);
}
