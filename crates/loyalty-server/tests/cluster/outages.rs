//! Outages of the servers a node depends on: requests fail cleanly (503,
//! never 500, nothing half-written) and the node recovers by itself.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Storage, TestApp, cli_staff_create};
use crate::servers::{PgInstance, Redis, on_path, pg_bin_dir, require};

fn reward(player: &str, staff: &str, i: usize) -> serde_json::Value {
    json!({"player_id": player, "points": 7, "staff_id": staff,
           "reason": format!("outage test reward {i}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_refuses_rewards_with_503_and_writes_nothing_then_recovers() {
    if !require("redis-server", on_path("redis-server")) {
        return;
    }
    let mut redis = Redis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&["--redis-url", &url]).await;
    let (staff, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let r = app.manual_reward(&token, reward(&player, &staff, 0)).await;
    assert_eq!(r.status, 201, "{}", r.text);

    redis.down();
    for i in 1..4 {
        let r = app.manual_reward(&token, reward(&player, &staff, i)).await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.code(), "RATE_LIMIT_UNAVAILABLE");
    }
    let ready = app
        .send(reqwest::Method::GET, None, "/readyz", None, &[])
        .await;
    assert_eq!(
        ready.status, 503,
        "readiness reflects Redis: {}",
        ready.text
    );
    let summary = app.player_loyalty(&app.admin_token, &player).await;
    assert_eq!(
        summary.body["current_balance"], 7,
        "nothing written while Redis was down"
    );

    redis.up();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.manual_reward(&token, reward(&player, &staff, 9)).await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.code(), "RATE_LIMIT_UNAVAILABLE", "{}", r.text);
        assert!(
            Instant::now() < deadline,
            "did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = app
        .send(reqwest::Method::GET, None, "/readyz", None, &[])
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let summary = app.player_loyalty(&app.admin_token, &player).await;
    assert_eq!(summary.body["current_balance"], 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_gives_503_not_500_and_the_node_recovers_by_itself() {
    let Some(bin) = pg_bin_dir() else {
        require("PostgreSQL server binaries (initdb, pg_ctl)", false);
        return;
    };
    if !require("runuser (to run initdb as postgres)", on_path("runuser")) {
        return;
    }
    let pg = PgInstance::start(&bin);
    let storage = Storage::fresh_pg(&pg.url());
    let admin = cli_staff_create(&storage, "admin", "admin");
    let app = TestApp::start(
        tempfile::tempdir().unwrap(),
        storage,
        admin,
        &["--db-pool-size", "4"],
    )
    .await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    let r = app.manual_reward(&token, reward(&player, &staff, 0)).await;
    assert_eq!(r.status, 201, "{}", r.text);

    pg.down();
    let mut refused = 0;
    for i in 1..6 {
        let w = app.manual_reward(&token, reward(&player, &staff, i)).await;
        let g = app.player_loyalty(&app.admin_token, &player).await;
        for r in [&w, &g] {
            assert_eq!(r.status, 503, "during the outage: {}", r.text);
            assert_eq!(r.code(), "UNAVAILABLE", "{}", r.text);
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    let ready = app
        .send(reqwest::Method::GET, None, "/readyz", None, &[])
        .await;
    assert_eq!(ready.status, 503, "{}", ready.text);

    pg.up();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = app.player_loyalty(&app.admin_token, &player).await;
        if g.status == 200 {
            // Only the reward acknowledged before the outage exists.
            assert_eq!(g.body["current_balance"], 7, "{}", g.text);
            break;
        }
        assert_ne!(g.status.as_u16(), 500, "{}", g.text);
        assert!(
            Instant::now() < deadline,
            "did not recover after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = app.manual_reward(&token, reward(&player, &staff, 99)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let verify = app.verify(&app.admin_token).await;
    assert_eq!(verify.body["drift"], json!([]), "{}", verify.text);
    assert_eq!(verify.body["accounts_checked"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_clock_drives_the_redis_window() {
    if !require("redis-server", on_path("redis-server")) {
        return;
    }
    let redis = Redis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&["--test-mode", "--redis-url", &url]).await;
    let (staff, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    app.set_clock("2030-01-01T10:00:00Z").await;
    for i in 0..10 {
        let r = app.manual_reward(&token, reward(&player, &staff, i)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    app.set_clock("2030-01-01T10:00:30.5Z").await;
    let r = app.manual_reward(&token, reward(&player, &staff, 10)).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(
        r.headers.get("retry-after").unwrap(),
        "30",
        "the oldest slot frees at 10:01:00"
    );
    // A minute later by the test clock (not by the wall clock) the window
    // has slid past all ten.
    app.set_clock("2030-01-01T10:01:00.5Z").await;
    let r = app.manual_reward(&token, reward(&player, &staff, 11)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}
