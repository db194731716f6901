//! `GET /v1/events/stream` read by a real HTTP client.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestApp;
use crate::support::*;

#[tokio::test]
async fn the_stream_replays_follows_live_and_resumes_after_last_event_id_without_gaps() {
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "1000"]).await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    for n in 0..5 {
        reward(&app, &token, &staff, &player, 10, n).await;
    }
    let head = app.all_events().await.len() as i64;
    let mut seen = Vec::new();
    let mut s = app.open_stream(&app.admin_token, "", None).await;
    while seen.last() != Some(&head) {
        let (id, ev) = s.next().await.expect("backlog");
        assert_eq!(ev["seq"], id, "SSE id is the seq");
        seen.push(id);
    }
    // Live: a write made now arrives on the open stream.
    let entry = reward(&app, &token, &staff, &player, 10, 100).await;
    loop {
        let (id, ev) = s.next().await.expect("live event");
        seen.push(id);
        if ev["event_type"] == "LEDGER_ENTRY_CREATED"
            && ev["payload"]["ledger_entry_id"] == entry["id"]
        {
            break;
        }
    }
    let last = *seen.last().unwrap();
    drop(s);
    // Written while disconnected, then resumed after the last id seen.
    for n in 0..5 {
        reward(&app, &token, &staff, &player, 10, 200 + n).await;
    }
    let head = app.all_events().await.len() as i64;
    let mut s = app.open_stream(&app.admin_token, "", Some(last)).await;
    while seen.last() != Some(&head) {
        seen.push(s.next().await.expect("resumed").0);
    }
    let expected: Vec<i64> = (1..=head).collect();
    assert_eq!(seen, expected, "no gap, no duplicate");
}

#[tokio::test]
async fn a_player_token_streams_only_that_players_events_and_types_filter() {
    let app = TestApp::spawn().await;
    let mine = app.player().await;
    let other = app.player().await;
    let r = app.create_player_token(&app.admin_token, &mine).await;
    let player_token = r.body["token"].as_str().unwrap().to_string();
    let (staff, token) = app.staff("supervisor").await;
    reward(&app, &token, &staff, &mine, 1200, 1).await;
    reward(&app, &token, &staff, &other, 1200, 2).await;
    let events = app.all_events().await;

    let mut s = app.open_stream(&player_token, "follow=false", None).await;
    let mut got = Vec::new();
    while let Some((id, ev)) = s.next().await {
        assert_eq!(ev["payload"]["player_id"], mine.as_str(), "{ev}");
        got.push(id);
    }
    let expected: Vec<i64> = events
        .iter()
        .filter(|e| e["payload"]["player_id"] == mine.as_str())
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got, expected);
    assert!(!got.is_empty());

    let mut s = app
        .open_stream(
            &app.admin_token,
            "follow=false&event_type=TIER_CHANGED",
            None,
        )
        .await;
    let mut types = Vec::new();
    while let Some((_, ev)) = s.next().await {
        types.push(ev["event_type"].as_str().unwrap().to_string());
    }
    assert_eq!(types, vec!["TIER_CHANGED", "TIER_CHANGED"]);

    let r = app
        .send(reqwest::Method::GET, None, "/v1/events/stream", None, &[])
        .await;
    assert_eq!(r.status, 401);
    let (_, pit_boss) = app.staff("pit_boss").await;
    assert_eq!(app.events_stream(&pit_boss).await.status, 403);
    let r = app
        .events_stream(&app.admin_token)
        .headers(&[("Last-Event-ID", "seven")])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_instead_of_buffered() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--reward-rate-limit",
        "100000",
        "--stream-buffer-events",
        "8",
    ])
    .await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    // A raw connection with a tiny receive window that never reads.
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    let req = format!(
        "GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        app.admin_token
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut n = 0;
    eventually(
        Duration::from_secs(120),
        "the slow client to be disconnected",
        || {
            let (app, token, staff, player) = (&app, &token, &staff, &player);
            n += 20;
            let from = n;
            async move {
                for i in from..from + 20 {
                    reward(app, token, staff, player, 1, i).await;
                }
                let m = app.metrics_text().await;
                (metric(&m, "loyalty_sse_disconnected_slow_total").unwrap_or(0.0) >= 1.0)
                    .then_some(())
            }
        },
    )
    .await;
    // The server closed the connection: reading drains what was sent, then EOF.
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was not closed");
    // The server still serves others.
    assert_eq!(app.subscribers(&app.admin_token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_by_another_process_reach_the_stream_and_the_subscribers_in_order() {
    // The server's own writes reach the tail in memory; `loyalty staff
    // create` writes the same database from another process. Interleaved,
    // every event still streams once, in seq order, with nothing skipped.
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "1000"]).await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    let start = app.all_events().await.len() as i64;
    let mut s = app.open_stream(&app.admin_token, "", Some(start)).await;
    // Each CLI write lands between two of the server's own, so the server's
    // next events are handed over right after an event it never saw.
    for n in 0..5 {
        let storage = app.storage.clone();
        tokio::task::spawn_blocking(move || {
            crate::common::cli_staff_create(&storage, &format!("cli-{n}"), "auditor")
        })
        .await
        .unwrap();
        for k in 0..3 {
            reward(&app, &token, &staff, &player, 5, n * 10 + k).await;
        }
    }
    let head = app.all_events().await.len() as i64;
    let mut seen = Vec::new();
    let mut staff_created = 0;
    while seen.last().is_none_or(|l| *l < head) {
        let (id, ev) = s.next().await.expect("event");
        if ev["event_type"] == "STAFF_CREATED" {
            staff_created += 1;
        }
        seen.push(id);
    }
    assert_eq!(seen, (start + 1..=head).collect::<Vec<i64>>());
    assert_eq!(staff_created, 5, "every event of the other process");
    // The subscribers, fed from the tail's window, skipped nothing either.
    caught_up(&app, 30).await;
    crate::dispatch::assert_feeds_match_outbox(&app, std::slice::from_ref(&player)).await;
}
