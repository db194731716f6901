//! Graceful shutdown (issue 13 point 6): on SIGTERM the server stops
//! accepting, lets a request in flight finish, ends live streams cleanly and
//! exits 0; what it acknowledged is there after a restart.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestApp;

#[tokio::test]
async fn sigterm_finishes_what_is_in_flight_ends_streams_and_exits_zero() {
    let mut app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // A live stream, and a request whose body is still on its way.
    let stream = app
        .client
        .get(format!("{}/v1/events/stream", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let body = r#"{"display_name":"Last guest of the night"}"#;
    let (first, rest) = body.split_at(10);
    let mut inflight = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/players HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        app.admin_token,
        body.len()
    );
    inflight.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let kill = Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No new connection is accepted…
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "a new connection was accepted"
    );
    // …the live stream ends cleanly…
    let mut stream = stream;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream
            .chunk()
            .await
            .expect("the stream ends without an error")
            .is_some()
        {}
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end");
    // …and the request in flight gets its full answer.
    inflight.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), inflight.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let id = json["id"].as_str().unwrap().to_string();

    let status = app
        .wait_exit(Duration::from_secs(15))
        .expect("the server exits");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let logs = app.logs();
    assert!(logs.iter().any(|l| l["message"] == "shutting_down"));
    assert!(logs.iter().any(|l| l["message"] == "stopped"));

    // What it acknowledged is there.
    app.restart(&["--test-mode"]);
    let r = app.get_player(&app.admin_token, &id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["display_name"], "Last guest of the night");
}
