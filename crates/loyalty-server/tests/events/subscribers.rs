//! The shipped subscribers: the balance cache stays exact under concurrent
//! load, and the manual-reward frequency alert follows the (test) clock.

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::*;

fn cache_hit(r: &crate::common::Resp) -> bool {
    r.headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.ends_with("; hit"))
}

#[tokio::test]
async fn the_balance_cache_never_serves_a_balance_older_than_an_acknowledged_write() {
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "100000"]).await;
    let mut players = Vec::new();
    for _ in 0..8 {
        players.push(app.player().await);
    }
    // 16 concurrent clients; two per player, each with its own staff member.
    let mut clients = Vec::new();
    for c in 0..16 {
        let (staff, token) = app.staff("supervisor").await;
        let player = players[c % players.len()].clone();
        let (base, http, admin) = (
            app.base.clone(),
            app.client.clone(),
            app.admin_token.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut hits = 0;
            for n in 0..20 {
                let r = http
                    .post(format!("{base}/v1/loyalty/manual-rewards"))
                    .bearer_auth(&token)
                    .json(&json!({"player_id": player, "staff_id": staff, "points": 7,
                                  "reason": format!("{REASON} client {c} number {n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let entry: Value = r.json().await.unwrap();
                let r = http
                    .get(format!("{base}/v1/players/{player}/loyalty"))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap();
                let hit = r
                    .headers()
                    .get("cache-status")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.ends_with("; hit"));
                let body: Value = r.json().await.unwrap();
                // Balances only rise here, so a read older than the
                // acknowledged write would show less.
                assert!(
                    body["current_balance"].as_i64() >= entry["balance_after"].as_i64(),
                    "read {body} (cache hit: {hit}) is older than the acknowledged {entry}"
                );
                if hit {
                    hits += 1;
                }
            }
            hits
        }));
    }
    let mut hits_under_load = 0;
    for c in clients {
        hits_under_load += c.await.unwrap();
    }
    caught_up(&app, 60).await;
    // Now every read is served by the cache and equals the database.
    for p in &players {
        let r = app.player_loyalty(&app.admin_token, p).await;
        assert!(cache_hit(&r), "not served from the cache: {:?}", r.headers);
        let ledger = app
            .player_ledger(&app.admin_token, p)
            .query("limit=1000")
            .await;
        let entries = ledger.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 40);
        let sum: i64 = entries
            .iter()
            .map(|e| e["points_change"].as_i64().unwrap())
            .sum();
        let lifetime: i64 = entries
            .iter()
            .map(|e| e["points_change"].as_i64().unwrap())
            .filter(|p| *p > 0)
            .sum();
        assert_eq!(r.body["current_balance"], sum, "{}", r.text);
        assert_eq!(r.body["lifetime_points"], lifetime, "{}", r.text);
        assert_eq!(r.body["current_balance"], entries[0]["balance_after"]);
        assert_eq!(r.body["tier"], entries[0]["tier_after"]);
        assert_eq!(r.body["updated_at"], entries[0]["created_at"]);
    }
    let r = app.verify(&app.admin_token).await;
    assert_eq!(r.body["drift"], json!([]), "{}", r.text);
    let m = app.metrics_text().await;
    assert!(metric(&m, "loyalty_balance_cache_reads_total{result=\"hit\"}").unwrap_or(0.0) >= 8.0);
    println!("cache hits during the load: {hits_under_load} of 320 reads");
}

const T0: &str = "2026-03-02T12:00:00Z";

fn at_minutes(m: i64) -> String {
    let t: jiff::Timestamp = T0.parse().unwrap();
    (t + jiff::SignedDuration::from_mins(m)).to_string()
}

async fn alerts(app: &TestApp) -> Vec<Value> {
    let r = app.alerts(&app.admin_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["alerts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn more_than_twenty_manual_rewards_in_a_sliding_hour_raise_one_alert() {
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "1000"]).await;
    let (staff, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    let mut n = 0;
    let mut grant = |k: usize| {
        let v: Vec<usize> = (n..n + k).collect();
        n += k;
        v
    };
    // 11 at 12:00 and 10 at 13:01: 21 rewards, but never 21 within an hour.
    app.set_clock(&at_minutes(0)).await;
    for i in grant(11) {
        reward(&app, &token, &staff, &player, 5, i).await;
    }
    app.set_clock(&at_minutes(61)).await;
    for i in grant(10) {
        reward(&app, &token, &staff, &player, 5, i).await;
    }
    caught_up(&app, 30).await;
    assert_eq!(alerts(&app).await, Vec::<Value>::new());

    // 11 more at 13:02: (12:02, 13:02] now holds 10 + 11 = 21.
    app.set_clock(&at_minutes(62)).await;
    for i in grant(11) {
        reward(&app, &token, &staff, &player, 5, i).await;
    }
    caught_up(&app, 30).await;
    let list = alerts(&app).await;
    assert_eq!(list.len(), 1, "one alert per window: {list:?}");
    let a = &list[0];
    assert_eq!(a["staff_id"], staff.as_str());
    assert_eq!(a["count"], 21);
    assert_eq!(a["window_seconds"], 3600);
    assert_eq!(a["kind"], "MANUAL_REWARD_FREQUENCY");

    let events = app.all_events().await;
    let alert_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "MANUAL_REWARD_ALERT")
        .collect();
    assert_eq!(alert_events.len(), 1);
    let p = &alert_events[0]["payload"];
    assert_eq!(p["staff_id"], staff.as_str());
    assert_eq!(p["count"], 21);
    assert_eq!(p["window_seconds"], 3600);
    assert_eq!(alert_events[0]["event_id"], a["event_id"]);
    assert_eq!(alert_events[0]["version"], 1);
    // The alert happened at the 21st reward's (test) time.
    assert!(
        alert_events[0]["occurred_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-02T13:02:"),
        "{}",
        alert_events[0]
    );

    let line = app
        .logs()
        .into_iter()
        .find(|l| l["message"] == "manual_reward_alert")
        .expect("a manual_reward_alert log line");
    assert_eq!(line["staff_id"], staff.as_str());
    assert_eq!(line["count"], 21);
    assert_eq!(line["window_seconds"], 3600);
    assert!(
        line["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    // Alerts are for auditors, not floor staff.
    let r = app.alerts(&token).await;
    assert_eq!(r.status, 403, "{}", r.text);
}
