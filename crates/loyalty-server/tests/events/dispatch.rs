//! The dispatcher seen from outside: feeds match the outbox exactly, failing
//! subscribers are retried, dead-lettered and replayed without holding up the
//! others, and a kill -9 loses no event.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::*;
use std::time::Duration;

/// seqs of the outbox events that concern `player` (payload.player_id).
fn player_seqs(events: &[Value], player: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["payload"]["player_id"] == player)
        .filter(|e| {
            loyalty_server::events::subscribers::ACTIVITY_TYPES
                .contains(&e["event_type"].as_str().unwrap())
        })
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

fn feed_seqs(feed: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = feed
        .iter()
        .map(|i| i["event_seq"].as_i64().unwrap())
        .collect();
    v.reverse();
    v
}

/// Activity = every player event once, in order; notifications = every
/// TIER_CHANGED once.
pub async fn assert_feeds_match_outbox(app: &TestApp, players: &[String]) {
    let events = app.all_events().await;
    for p in players {
        let activity = app.feed(p, "activity").await;
        assert_eq!(
            feed_seqs(&activity),
            player_seqs(&events, p),
            "activity of {p} differs from its outbox events"
        );
        let tiers: Vec<i64> = events
            .iter()
            .filter(|e| {
                e["event_type"] == "TIER_CHANGED" && e["payload"]["player_id"] == p.as_str()
            })
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(feed_seqs(&app.feed(p, "notifications").await), tiers);
    }
}

#[tokio::test]
async fn every_player_event_reaches_the_activity_feed_once_and_in_order() {
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "1000"]).await;
    let (staff, token) = app.staff("pit_boss").await;
    let mut players = Vec::new();
    for _ in 0..3 {
        players.push(app.player().await);
    }
    for (i, p) in players.iter().enumerate() {
        for n in 0..4 {
            reward(&app, &token, &staff, p, 400, i * 10 + n).await;
        }
    }
    caught_up(&app, 60).await;
    assert_feeds_match_outbox(&app, &players).await;
    // 1,600 points cross SILVER: one notification each.
    let n = app.feed(&players[0], "notifications").await;
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["data"]["tier_after"], "SILVER");
    assert_eq!(n[0]["data"]["tier_before"], "BRONZE");
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_then_dead_lettered_and_the_others_keep_going() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--dispatch-retry-base-ms",
        "20",
        "--dispatch-attempts-max",
        "3",
    ])
    .await;
    let (staff, token) = app.staff("supervisor").await;
    let player = app.player().await;
    caught_up(&app, 30).await;
    app.set_faults(json!({"failing_subscribers": ["tier_notifications"]}))
        .await;
    reward(&app, &token, &staff, &player, 1500, 1).await;
    let events = app.all_events().await;
    let tier_event = events
        .iter()
        .find(|e| e["event_type"] == "TIER_CHANGED")
        .expect("a TIER_CHANGED event")
        .clone();

    // The failing subscriber parks the event after 3 attempts and moves on.
    let dead = eventually(
        Duration::from_secs(30),
        "a dead letter for tier_notifications",
        || async {
            let r = app
                .dead_letters(&app.admin_token)
                .query("subscriber=tier_notifications")
                .await;
            r.body["dead_letters"].as_array()?.first().cloned()
        },
    )
    .await;
    assert_eq!(dead["event_seq"], tier_event["seq"]);
    assert_eq!(dead["event_id"], tier_event["event_id"]);
    assert_eq!(dead["event_type"], "TIER_CHANGED");
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["status"], "DEAD");
    assert!(
        dead["error"].as_str().unwrap().contains("fault injected"),
        "{dead}"
    );
    // Everyone, the failing one included, reaches the head; the others
    // delivered the event.
    caught_up(&app, 30).await;
    assert!(app.feed(&player, "notifications").await.is_empty());
    let activity = app.feed(&player, "activity").await;
    assert!(
        activity
            .iter()
            .any(|i| i["event_id"] == tier_event["event_id"])
    );
    let m = app.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "loyalty_subscriber_dead_lettered_total{subscriber=\"tier_notifications\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "loyalty_subscriber_failed_total{subscriber=\"tier_notifications\"}"
        )
        .unwrap_or(0.0)
            >= 3.0
    );
    let logs = app.logs();
    assert!(
        logs.iter().any(|l| l["message"] == "event_dead_lettered"
            && l["subscriber"] == "tier_notifications"
            && l["attempts"] == 3),
        "no event_dead_lettered log line"
    );

    // Only an admin replays; once healed, the replay delivers it once.
    let id = dead["id"].as_i64().unwrap();
    let (_, auditor) = app.staff("auditor").await;
    let r = app.replay_dead_letter(&auditor, id).await;
    assert_eq!(r.status, 403, "{}", r.text);
    app.set_faults(json!({"failing_subscribers": []})).await;
    let r = app.replay_dead_letter(&app.admin_token, id).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "REPLAY_REQUESTED");
    eventually(
        Duration::from_secs(30),
        "the replay to deliver the notification",
        || async {
            let r = app
                .dead_letters(&app.admin_token)
                .query("status=REPLAYED")
                .await;
            (r.body["dead_letters"][0]["id"] == id).then_some(())
        },
    )
    .await;
    let notes = app.feed(&player, "notifications").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["event_id"], tier_event["event_id"]);
    // Replaying again changes nothing.
    let r = app.replay_dead_letter(&app.admin_token, id).await;
    assert_eq!(r.body["status"], "REPLAYED", "{}", r.text);
    assert_eq!(app.feed(&player, "notifications").await.len(), 1);
    // With an Idempotency-Key the stored response is replayed as it was.
    let key = [("idempotency-key", "replay-dead-letter-once")];
    let first = app
        .replay_dead_letter(&app.admin_token, id)
        .headers(&key)
        .await;
    let again = app
        .replay_dead_letter(&app.admin_token, id)
        .headers(&key)
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(again.text, first.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let r = app.replay_dead_letter(&app.admin_token, 999999).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn after_kill_9_every_subscriber_resumes_from_its_checkpoint_and_skips_nothing() {
    let fast = [
        "--test-mode",
        "--reward-rate-limit",
        "100000",
        "--lease-ttl-ms",
        "1000",
        "--dispatch-retry-base-ms",
        "50",
        "--dispatch-attempts-max",
        "100",
    ];
    let mut app = TestApp::spawn_with(&fast).await;
    let (staff, token) = app.staff("supervisor").await;
    let mut players = Vec::new();
    for _ in 0..4 {
        players.push(app.player().await);
    }
    caught_up(&app, 30).await;
    // The activity feed is stuck retrying while the writes go on, so it is
    // mid-stream when the process dies.
    app.set_faults(json!({"failing_subscribers": ["activity_feed"]}))
        .await;
    let mut writes = Vec::new();
    for (i, p) in players.iter().enumerate() {
        let (app_base, client, token, staff, p) = (
            app.base.clone(),
            app.client.clone(),
            token.clone(),
            staff.clone(),
            p.clone(),
        );
        writes.push(tokio::spawn(async move {
            for n in 0..15 {
                let r = client
                    .post(format!("{app_base}/v1/loyalty/manual-rewards"))
                    .bearer_auth(&token)
                    .json(&json!({"player_id": p, "staff_id": staff, "points": 150,
                                  "reason": format!("{REASON} {i}-{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    // Every other subscriber finishes first (the alert subscriber appends a
    // MANUAL_REWARD_ALERT of its own), so the head is final before the kill.
    let before = eventually(
        Duration::from_secs(30),
        "the other subscribers to reach the head",
        || async {
            let s = app.subscriber_status().await;
            let head = s["outbox_head"].as_i64()?;
            let others_done = s["subscribers"]
                .as_array()?
                .iter()
                .filter(|v| v["name"] != "activity_feed")
                .all(|v| v["checkpoint"].as_i64() == Some(head));
            others_done.then_some(s)
        },
    )
    .await;
    let head = before["outbox_head"].as_i64().unwrap();
    let stuck = subscriber(&before, "activity_feed")["checkpoint"]
        .as_i64()
        .unwrap();
    assert!(stuck < head, "activity_feed should be behind: {before}");

    app.kill();
    app.restart(&fast);
    let after = caught_up(&app, 60).await;
    assert_eq!(after, head, "no events were written after the restart");
    assert_feeds_match_outbox(&app, &players).await;
    // Nothing was parked: the retries outlived the process, not the attempts.
    let r = app.dead_letters(&app.admin_token).await;
    assert_eq!(r.body["dead_letters"], json!([]), "{}", r.text);
    // Each activity item is distinct (no event applied twice).
    for p in &players {
        let items = app.feed(p, "activity").await;
        let ids: BTreeSet<_> = items.iter().map(|i| i["event_id"].to_string()).collect();
        assert_eq!(ids.len(), items.len());
    }
}
