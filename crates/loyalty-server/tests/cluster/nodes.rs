//! Several `loyalty` processes on one PostgreSQL, driven concurrently.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::common::{Storage, TestApp, bin, cli_staff_create};
use crate::servers::{Redis, on_path, pg_url, require, two_nodes};

/// Every entry of a player, oldest first.
pub(crate) async fn entries(app: &TestApp, player: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "limit=1000".to_string();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let r = app.player_ledger(&app.admin_token, player).query(q).await;
        assert_eq!(r.status, 200, "{}", r.text);
        all.extend(r.body["entries"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    all.reverse();
    all
}

/// DESIGN §3.6 for one player, through the API; returns the entries.
async fn assert_player_consistent(app: &TestApp, player: &str) -> Vec<Value> {
    let list = entries(app, player).await;
    let mut balance = 0i64;
    let mut lifetime = 0i64;
    for e in &list {
        assert_eq!(
            e["balance_before"].as_i64().unwrap(),
            balance,
            "chain broken at {e}"
        );
        balance += e["points_change"].as_i64().unwrap();
        assert_eq!(e["balance_after"].as_i64().unwrap(), balance);
        let t = e["transaction_type"].as_str().unwrap();
        let p = e["points_change"].as_i64().unwrap();
        if (t == "GAMEPLAY" || t == "MANUAL_BONUS") && p > 0 {
            lifetime += p;
        }
    }
    let summary = app.player_loyalty(&app.admin_token, player).await;
    assert_eq!(summary.body["current_balance"].as_i64().unwrap(), balance);
    assert_eq!(summary.body["lifetime_points"].as_i64().unwrap(), lifetime);
    list
}

fn cli_verify_ok(storage: &Storage) {
    let out = std::process::Command::new(bin())
        .arg("verify")
        .args(storage.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loyalty verify: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_database_lose_no_update_and_count_nothing_twice() {
    let Some((a, b)) = two_nodes(&["--reward-rate-limit", "100000"]).await else {
        return;
    };
    let nodes = Arc::new([a, b]);
    let table = nodes[0].table().await;
    let mut players = Vec::new();
    for _ in 0..20 {
        players.push(nodes[0].player().await);
    }
    let (staff_id, staff_token) = nodes[0].staff("supervisor").await;

    // 200 slips, opened half on each node, started 30 minutes ago.
    let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)).to_string();
    let mut slips = Vec::new();
    for i in 0..200 {
        let node = &nodes[i % 2];
        let slip = node
            .open_slip(&players[i % 20], &table, "25", Some(&started))
            .await;
        slips.push((
            slip["id"].as_str().unwrap().to_string(),
            players[i % 20].clone(),
        ));
    }

    // Every slip completed on BOTH nodes at once, 200 rewards spread over
    // both nodes, all concurrently.
    let limit = Arc::new(Semaphore::new(48));
    let mut tasks = Vec::new();
    for (i, (slip, _)) in slips.iter().enumerate() {
        for n in 0..2 {
            let (nodes, slip, limit) = (nodes.clone(), slip.clone(), limit.clone());
            tasks.push(tokio::spawn(async move {
                let _p = limit.acquire().await.unwrap();
                let node = &nodes[(i + n) % 2];
                let r = node
                    .complete_slip(&node.admin_token, &slip, json!({}))
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
                ("complete", r.body)
            }));
        }
    }
    for i in 0..200 {
        let (nodes, limit, player, staff, token) = (
            nodes.clone(),
            limit.clone(),
            players[i % 20].clone(),
            staff_id.clone(),
            staff_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = limit.acquire().await.unwrap();
            let node = &nodes[i % 2];
            let body = json!({"player_id": player, "points": 10 + (i % 7) as i64, "staff_id": staff,
                              "reason": format!("service recovery number {i}")});
            let r = node.manual_reward(&token, body).await;
            assert_eq!(r.status, 201, "{}", r.text);
            ("reward", r.body)
        }));
    }
    let results: Vec<(&str, Value)> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    // Each slip: exactly one fresh accrual and one replay with the same entry.
    let mut by_entry: HashMap<String, Vec<bool>> = HashMap::new();
    for (kind, body) in &results {
        if *kind == "complete" {
            let l = &body["loyalty"];
            by_entry
                .entry(l["ledger_entry_id"].as_str().unwrap().to_string())
                .or_default()
                .push(l["idempotent_replay"].as_bool().unwrap());
        }
    }
    assert_eq!(by_entry.len(), 200, "one GAMEPLAY entry per slip");
    for replays in by_entry.values() {
        assert_eq!(replays.len(), 2);
        assert_eq!(
            replays.iter().filter(|r| !**r).count(),
            1,
            "exactly one fresh accrual"
        );
    }

    // Every player's ledger is consistent; no slip has two GAMEPLAY entries.
    let mut gameplay_slips = HashSet::new();
    let mut total_entries = 0;
    for p in &players {
        let list = assert_player_consistent(&nodes[1], p).await;
        total_entries += list.len();
        for e in list.iter().filter(|e| e["transaction_type"] == "GAMEPLAY") {
            assert!(
                gameplay_slips.insert(e["rating_slip_id"].as_str().unwrap().to_string()),
                "duplicate GAMEPLAY for {e}"
            );
        }
    }
    assert_eq!(gameplay_slips.len(), 200);
    assert_eq!(total_entries, 400);

    // The same Idempotency-Key sent to both nodes at once: one effect.
    let key = [("idempotency-key", "cluster-key-1")];
    let body = json!({"display_name": "Twice Sent", "card_number": "CL-1"});
    let (r1, r2) = tokio::join!(
        nodes[0]
            .create_player(&nodes[0].admin_token, body.clone())
            .headers(&key),
        nodes[1]
            .create_player(&nodes[1].admin_token, body.clone())
            .headers(&key),
    );
    let ok: Vec<_> = [&r1, &r2].into_iter().filter(|r| r.status == 201).collect();
    assert!(!ok.is_empty(), "{} / {}", r1.text, r2.text);
    for r in [&r1, &r2] {
        assert!(
            r.status == 201 || r.code() == "IDEMPOTENCY_KEY_IN_USE",
            "{}",
            r.text
        );
    }
    if r1.status == 201 && r2.status == 201 {
        assert_eq!(r1.text, r2.text, "the replay is the stored response");
    }
    let created = nodes[0]
        .events(&nodes[0].admin_token)
        .query("event_type=PLAYER_CREATED&limit=1000")
        .await;
    let cl1 = created.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"]["card_number"] == "CL-1")
        .count();
    assert_eq!(cl1, 1, "one player created for one key");

    let verify = nodes[0].verify(&nodes[0].admin_token).await;
    assert_eq!(verify.body["drift"], json!([]), "{}", verify.text);
    cli_verify_ok(&nodes[0].storage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_retries_on_two_nodes_accrue_each_pending_slip_once() {
    let Some((a, b)) = two_nodes(&["--test-mode"]).await else {
        return;
    };
    let table = a.table().await;
    let player = a.player().await;
    let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)).to_string();
    a.set_accrual_fault("fail").await;
    b.set_accrual_fault("fail").await;
    let mut slips = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let slip = node.open_slip(&player, &table, "25", Some(&started)).await;
        let id = slip["id"].as_str().unwrap().to_string();
        let r = node.complete_slip(&node.admin_token, &id, json!({})).await;
        assert_eq!(r.status, 202, "{}", r.text);
        assert_eq!(r.code(), "PARTIAL_COMPLETION");
        slips.push(id);
    }
    a.set_accrual_fault("ok").await;
    b.set_accrual_fault("ok").await;

    // Both nodes' retry tasks race for the same pending slips.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut pending = 0;
        for id in &slips {
            let r = a.get_slip(&a.admin_token, id).await;
            if r.body["loyalty_status"] != "ACCRUED" {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} slips still pending"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let list = assert_player_consistent(&b, &player).await;
    let gameplay: Vec<_> = list
        .iter()
        .filter(|e| e["transaction_type"] == "GAMEPLAY")
        .collect();
    assert_eq!(gameplay.len(), 20, "each slip accrued exactly once");
    let distinct: HashSet<_> = gameplay
        .iter()
        .map(|e| e["rating_slip_id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reward_limit_holds_across_two_nodes_with_redis() {
    if !require("redis-server", on_path("redis-server")) {
        return;
    }
    let redis = Redis::start();
    let url = redis.url();
    let Some((a, b)) = two_nodes(&["--redis-url", &url]).await else {
        return;
    };
    let (staff_id, token) = a.staff("pit_boss").await;
    let player = a.player().await;
    let nodes = Arc::new([a, b]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (nodes, token, staff_id, player) = (
            nodes.clone(),
            token.clone(),
            staff_id.clone(),
            player.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let node = &nodes[i % 2];
            let body = json!({"player_id": player, "points": 5, "staff_id": staff_id,
                              "reason": format!("birthday gift number {i}")});
            let r = node.manual_reward(&token, body).await;
            (
                r.status.as_u16(),
                r.code().to_string(),
                r.headers.get("retry-after").is_some(),
            )
        }));
    }
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.0 == 201).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok, 10, "{results:?}");
    assert_eq!(limited.len(), 10, "{results:?}");
    assert!(limited.iter().all(|r| r.1 == "RATE_LIMIT_EXCEEDED" && r.2));
    let summary = nodes[0]
        .player_loyalty(&nodes[0].admin_token, &player)
        .await;
    assert_eq!(summary.body["current_balance"], 50);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skewed_node_clocks_agree_on_the_gaming_day() {
    let libfaketime = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists());
    if !require(
        "libfaketime (Debian package faketime)",
        libfaketime.is_some(),
    ) {
        return;
    }
    let libfaketime = libfaketime.unwrap();
    let Some(server) = pg_url() else {
        require("PostgreSQL (LOYALTY_TEST_PG_URL)", false);
        return;
    };
    // A gaming day that starts 3–4 minutes from now (UTC). Node B runs five
    // minutes fast, so by its own clock the new gaming day has begun; by the
    // shared database clock it has not.
    let boundary = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(180 + 59);
    let boundary = boundary.to_zoned(jiff::tz::TimeZone::UTC);
    let (hour, minute) = (boundary.hour().to_string(), boundary.minute().to_string());
    let args = [
        "--gaming-day-start-hour",
        hour.as_str(),
        "--gaming-day-start-minute",
        minute.as_str(),
    ];
    let storage = Storage::fresh_pg(&server);
    let admin = cli_staff_create(&storage, "admin", "admin");
    let a = TestApp::start(
        tempfile::tempdir().unwrap(),
        storage.clone(),
        admin.clone(),
        &args,
    )
    .await;
    let b = TestApp::start_wrapped(
        tempfile::tempdir().unwrap(),
        storage,
        admin,
        &args,
        // `env` execs in place (faketime forks, and a killed wrapper would
        // leave the node running).
        &[
            "env",
            &format!("LD_PRELOAD={}", libfaketime.display()),
            "FAKETIME=+5m",
        ],
    )
    .await;

    let (staff_id, token) = a.staff("supervisor").await;
    let player = a.player().await;
    let body = json!({"player_id": player, "points": 250, "staff_id": staff_id,
                      "reason": "comp for a long wait at the cage"});
    let r1 = a.manual_reward(&token, body.clone()).await;
    let r2 = b.manual_reward(&token, body).await;
    assert_eq!(r1.status, 201, "{}", r1.text);
    assert_eq!(
        r2.status, 200,
        "same gaming day on both nodes → replay: {}",
        r2.text
    );
    assert_eq!(r2.body["id"], r1.body["id"]);
    assert_eq!(r2.body["idempotent_replay"], true);
    let list = entries(&a, &player).await;
    assert_eq!(list.len(), 1, "one entry");
}
