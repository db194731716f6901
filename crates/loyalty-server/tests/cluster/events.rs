//! The event stream of two nodes writing into one PostgreSQL: events are
//! numbered after commit (ARCHITECTURE.md, "Event numbering on
//! PostgreSQL"), and every reader — polling or streaming, on either node,
//! across a node's restart — sees every event exactly once, in one order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::nodes::entries;
use crate::servers::two_nodes;

/// Reads `/v1/events` after `after` until `target` (set when the writers
/// are done) is reached, asserting each page continues the last.
async fn poll_until(app: Arc<TestApp>, mut after: i64, target: Arc<AtomicI64>) -> Vec<Value> {
    let mut seen = Vec::new();
    while after < target.load(Ordering::SeqCst) {
        let r = app
            .events(&app.admin_token)
            .query(format!("limit=500&after={after}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.body["events"].as_array().unwrap().clone();
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        for e in page {
            let seq = e["seq"].as_i64().unwrap();
            assert_eq!(seq, after + 1, "a poller found a gap or an old event");
            after = seq;

            seen.push(e);
        }
    }
    seen
}

/// Streams `/v1/events/stream` from `after` until `target` is reached.
async fn stream_until(app: Arc<TestApp>, after: i64, target: Arc<AtomicI64>) -> Vec<Value> {
    let mut s = app
        .open_stream(&app.admin_token, "", Some(after).filter(|a| *a > 0))
        .await;
    let mut seen: Vec<Value> = Vec::new();
    let mut last = after;
    while last < target.load(Ordering::SeqCst) {
        // Wake now and then to see whether the head is known yet (reading
        // a chunk is cancel-safe: nothing is lost when the wait times out).
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), s.next()).await else {
            continue;
        };
        let (id, ev) = next.expect("the stream stays open");
        assert_eq!(id, last + 1, "a stream skipped or repeated an event");
        last = id;

        seen.push(ev);
    }
    seen
}

/// The newest seq this node serves.
async fn head(app: &TestApp) -> i64 {
    app.all_events()
        .await
        .last()
        .map_or(0, |e| e["seq"].as_i64().unwrap())
}

fn reward(player: &str, staff: &str, k: usize) -> Value {
    json!({"player_id": player, "points": 1 + (k % 9) as i64, "staff_id": staff,
           "reason": format!("concurrent reward number {k}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reader_on_either_node_sees_every_event_once_in_one_order() {
    let Some((a, b)) = two_nodes(&["--reward-rate-limit", "100000"]).await else {
        return;
    };
    let mut players = Vec::new();
    for _ in 0..8 {
        players.push(a.player().await);
    }
    let (staff, token) = a.staff("supervisor").await;
    let start = head(&a).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let target = Arc::new(AtomicI64::new(i64::MAX));

    // Readers first: a poller and a stream on each node.
    let mut readers = Vec::new();
    for node in [&a, &b] {
        readers.push(tokio::spawn(poll_until(
            node.clone(),
            start,
            target.clone(),
        )));
        readers.push(tokio::spawn(stream_until(
            node.clone(),
            start,
            target.clone(),
        )));
    }

    // 32 writers, alternating nodes, on 8 players (so writers of one player
    // race on both nodes).
    let mut writers = Vec::new();
    for w in 0..32usize {
        let (a, b, players, staff, token) = (
            a.clone(),
            b.clone(),
            players.clone(),
            staff.clone(),
            token.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..12 {
                let k = w * 100 + i;
                let node = if (w + i) % 2 == 0 { &a } else { &b };
                let r = node
                    .manual_reward(&token, reward(&players[k % players.len()], &staff, k))
                    .await;
                assert_eq!(r.status, 201, "{}", r.text);
            }
        }));
    }
    for w in join_all(writers).await {
        w.unwrap();
    }
    // (Subscribers may still be adding events, e.g. frequency alerts: the
    // readers compare what they saw up to this head.)
    let end = head(&a).await;
    assert!(head(&b).await >= end, "b serves everything a has numbered");
    target.store(end, Ordering::SeqCst);

    let mut views = Vec::new();
    let joined = tokio::time::timeout(Duration::from_secs(60), join_all(readers))
        .await
        .expect("every reader reaches the head within a minute");
    for r in joined {
        views.push(r.unwrap());
    }
    let reference: Vec<(i64, String)> = views[0]
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reference.len() as i64, end - start);
    // Three events per reward: entry, balance, and the reward itself.
    assert!(reference.len() >= 32 * 12 * 2, "{}", reference.len());
    for v in &views[1..] {
        let ids: Vec<(i64, String)> = v
            .iter()
            .map(|e| {
                (
                    e["seq"].as_i64().unwrap(),
                    e["event_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            ids, reference,
            "every reader saw the same events, once, in one order"
        );
    }

    // Per player, the entry events are in the order of the player's ledger.
    let mut by_player: HashMap<String, Vec<String>> = HashMap::new();
    for e in views[0]
        .iter()
        .filter(|e| e["event_type"] == "LEDGER_ENTRY_CREATED")
    {
        by_player
            .entry(e["payload"]["player_id"].as_str().unwrap().to_string())
            .or_default()
            .push(
                e["payload"]["ledger_entry_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
    }
    for p in &players {
        let ledger: Vec<String> = entries(&a, p)
            .await
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(by_player[p], ledger, "player {p}: events in commit order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_resumes_across_a_node_restart_without_gap_or_repeat() {
    let Some((a, mut b)) = two_nodes(&["--reward-rate-limit", "100000"]).await else {
        return;
    };
    let player = a.player().await;
    let (staff, token) = a.staff("supervisor").await;
    for k in 0..20 {
        let r = b.manual_reward(&token, reward(&player, &staff, k)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let mid = head(&b).await;
    let mut s = b.open_stream(&b.admin_token, "", None).await;
    let mut seen = Vec::new();
    while seen.last() != Some(&mid) {
        seen.push(s.next().await.expect("backlog").0);
    }
    drop(s);

    // Node b goes away; writes continue on a; b comes back.
    b.kill();
    for k in 20..40 {
        let r = a.manual_reward(&token, reward(&player, &staff, k)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    b.restart(&["--reward-rate-limit", "100000"]);
    let end = head(&a).await;
    let mut s = b.open_stream(&b.admin_token, "", Some(mid)).await;
    while seen.last() != Some(&end) {
        seen.push(s.next().await.expect("resumed").0);
    }
    let first = seen[0];
    let expected: Vec<i64> = (first..=end).collect();
    assert_eq!(seen, expected, "no gap, no repeat across the restart");
}
