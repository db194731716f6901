//! Revocation and signed cursors across nodes (issue 9 points 4 and 14):
//! the token cache of a node must not keep a token revoked on another node
//! alive, and every node signs and accepts the same cursors.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;
use crate::servers::two_nodes;

/// How long after `since` node `app` first refuses `token` (polling every
/// 20 ms, for at most 5 s).
async fn refused_after(app: &TestApp, token: &str, path: &str, since: Instant) -> Duration {
    loop {
        let r = app.get(token, path).await;
        if r.status == 401 {
            assert_eq!(r.code(), "UNAUTHORIZED");
            return since.elapsed();
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_revoked_on_one_node_is_refused_on_the_other_within_a_second() {
    let Some((a, b)) = two_nodes(&["--test-mode"]).await else {
        return;
    };
    let player = a.player().await;

    // A staff token, warm in node B's cache, revoked on node A.
    let (_, staff) = a.staff("supervisor").await;
    for _ in 0..5 {
        assert_eq!(b.get(&staff, "/v1/me").await.status, 200);
    }
    let r = a
        .send(Method::DELETE, Some(&staff), "/v1/me/token", None, &[])
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let took = refused_after(&b, &staff, "/v1/me", Instant::now()).await;
    assert!(
        took < Duration::from_secs(1),
        "own revocation took {took:?} on the other node"
    );

    // A disabled staff member, warm on B.
    let (pit_id, pit) = a.staff("pit_boss").await;
    assert_eq!(b.get(&pit, "/v1/me").await.status, 200);
    let r = a
        .post(
            &a.admin_token,
            &format!("/v1/staff/{pit_id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let took = refused_after(&b, &pit, "/v1/me", Instant::now()).await;
    assert!(
        took < Duration::from_secs(1),
        "disabling took {took:?} on the other node"
    );

    // A player's tokens, revoked on B, warm on A.
    let token = a
        .post(
            &a.admin_token,
            &format!("/v1/players/{player}/tokens"),
            json!({}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/players/{player}/loyalty");
    assert_eq!(a.get(&token, &path).await.status, 200);
    let r = b
        .send(
            Method::DELETE,
            Some(&b.admin_token),
            &format!("/v1/players/{player}/tokens"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let took = refused_after(&a, &token, &path, Instant::now()).await;
    assert!(
        took < Duration::from_secs(1),
        "player revocation took {took:?} on the other node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_accepts_the_cursors_of_the_others() {
    let Some((a, b)) = two_nodes(&["--test-mode"]).await else {
        return;
    };
    let player = a.player().await;
    let (sup_id, sup) = a.staff("supervisor").await;
    for i in 0..3 {
        let r = a
            .post(
                &sup,
                "/v1/loyalty/manual-rewards",
                json!({"player_id": player, "staff_id": sup_id, "points": 10 + i,
                       "reason": format!("cursor test reward {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let path = format!("/v1/players/{player}/ledger?limit=1");
    let first = a.get(&a.admin_token, &path).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let on_b = b
        .get(&b.admin_token, &format!("{path}&cursor={cursor}"))
        .await;
    assert_eq!(on_b.status, 200, "{}", on_b.text);
    let on_a = a
        .get(&a.admin_token, &format!("{path}&cursor={cursor}"))
        .await;
    assert_eq!(on_a.body, on_b.body);
    let last = if cursor.ends_with('0') { '1' } else { '0' };
    let bad = format!("{}{last}", &cursor[..cursor.len() - 1]);
    let r = b.get(&b.admin_token, &format!("{path}&cursor={bad}")).await;
    assert_eq!(r.status, 400, "{}", r.text);
}
