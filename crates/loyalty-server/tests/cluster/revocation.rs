//! Revocation and signed cursors across nodes (issue 9 points 4 and 14):
//! the token cache of a node must not keep a token revoked on another node
//! alive, and every node signs and accepts the same cursors.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::Call;
use crate::servers::two_nodes;

/// How long after `since` node `app` first refuses `token` (polling every
/// 20 ms, for at most 5 s).
async fn refused_after<'a>(request: impl Fn() -> Call<'a>, since: Instant) -> Duration {
    loop {
        let r = request().await;
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
        assert_eq!(b.me(&staff).await.status, 200);
    }
    let r = a.revoke_own_token(&staff).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let took = refused_after(|| b.me(&staff), Instant::now()).await;
    assert!(
        took < Duration::from_secs(1),
        "own revocation took {took:?} on the other node"
    );

    // A disabled staff member, warm on B.
    let (pit_id, pit) = a.staff("pit_boss").await;
    assert_eq!(b.me(&pit).await.status, 200);
    let r = a.disable_staff(&a.admin_token, &pit_id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let took = refused_after(|| b.me(&pit), Instant::now()).await;
    assert!(
        took < Duration::from_secs(1),
        "disabling took {took:?} on the other node"
    );

    // A player's tokens, revoked on B, warm on A.
    let token = a.create_player_token(&a.admin_token, &player).await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.player_loyalty(&token, &player).await.status, 200);
    let r = b.revoke_player_tokens(&b.admin_token, &player).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let took = refused_after(|| a.player_loyalty(&token, &player), Instant::now()).await;
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
            .manual_reward(
                &sup,
                json!({"player_id": player, "staff_id": sup_id, "points": 10 + i,
                       "reason": format!("cursor test reward {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let first = a
        .player_ledger(&a.admin_token, &player)
        .query("limit=1")
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let on_b = b
        .player_ledger(&b.admin_token, &player)
        .query(format!("limit=1&cursor={cursor}"))
        .await;
    assert_eq!(on_b.status, 200, "{}", on_b.text);
    let on_a = a
        .player_ledger(&a.admin_token, &player)
        .query(format!("limit=1&cursor={cursor}"))
        .await;
    assert_eq!(on_a.body, on_b.body);
    let last = if cursor.ends_with('0') { '1' } else { '0' };
    let bad = format!("{}{last}", &cursor[..cursor.len() - 1]);
    let r = b
        .player_ledger(&b.admin_token, &player)
        .query(format!("limit=1&cursor={bad}"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}
