//! `Store::write` is atomic per operation: a failed operation leaves nothing
//! behind, whatever it wrote first, and never disturbs the operations that
//! commit with it.

use std::sync::{Arc, Mutex};

use loyalty_core::Tier;
use loyalty_store::ops::{self, OpError};
use loyalty_store::{Account, Player, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

fn raw_player(card: Option<String>) -> Player {
    Player {
        id: Uuid::now_v7(),
        display_name: "Raw Player".into(),
        card_number: card,
        status: loyalty_core::PlayerStatus::Active,
        created_at: at(0),
    }
}

fn raw_account(player_id: Uuid) -> Account {
    Account {
        player_id,
        current_balance: 0,
        escrow_balance: 0,
        lifetime_points: 0,
        tier: Tier::Bronze,
        entry_count: 0,
        updated_at: at(0),
        chain_head: None,
    }
}

fn forced() -> OpError {
    OpError::Conflict("forced failure".into())
}

/// Whether the player is visible to a read, after a barrier (see
/// [`barrier`]).
async fn exists(store: &Store, id: Uuid) -> bool {
    barrier(store).await;
    look(store, move |tx| Ok(tx.player(id)?.is_some())).await
}

pub async fn a_failed_operation_leaves_nothing_behind(store: Store) {
    // Raw writes, then an error.
    let p = raw_player(Some("C-1".into()));
    let pid = p.id;
    let r: Result<(), OpError> = op(&store, move |tx| {
        tx.insert_player(&p)?;
        tx.insert_account(&raw_account(p.id))?;
        Err(forced())
    })
    .await;
    assert!(
        matches!(r, Err(OpError::Conflict(ref m)) if m == "forced failure"),
        "{r:?}"
    );
    assert!(!exists(&store, pid).await);
    assert_eq!(look(&store, move |tx| tx.account(pid)).await, None);

    // A whole operation (player, account, event), then an error.
    let seen: Arc<Mutex<Option<Uuid>>> = Arc::default();
    let s = seen.clone();
    let c = ctx(at(0));
    let r: Result<(), OpError> = op(&store, move |tx| {
        let p = ops::create_player(tx, &c, name("Doomed"), Some(card("C-2")))?;
        *s.lock().unwrap() = Some(p.id);
        // The operation sees its own writes…
        assert!(tx.player(p.id)?.is_some());
        Err(forced())
    })
    .await;
    assert!(r.is_err());
    let pid = seen.lock().unwrap().expect("the operation ran");
    // …but nobody else ever does.
    assert!(!exists(&store, pid).await);
    assert_eq!(look(&store, move |tx| tx.account(pid)).await, None);
    assert!(
        events(&store).await.is_empty(),
        "no event of a failed operation"
    );

    // The card numbers are free again.
    let c = ctx(at(1));
    op(&store, move |tx| {
        ops::create_player(tx, &c, name("Alive"), Some(card("C-1")))?;
        ops::create_player(tx, &c, name("Alive too"), Some(card("C-2")))
    })
    .await
    .expect("card numbers of failed operations are free");
}

pub async fn a_successful_operation_is_visible_to_the_next_read(store: Store) {
    let c = ctx(at(0));
    let p = op(&store, move |tx| {
        ops::create_player(tx, &c, name("Visible"), Some(card("C-9")))
    })
    .await
    .expect("create player");
    let pid = p.id;
    // No barrier: the acknowledgement itself means committed.
    assert_eq!(look(&store, move |tx| tx.player(pid)).await, Some(p));
    let evs = look(&store, |tx| tx.events(0, 100, None)).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event_type, "PLAYER_CREATED");
    assert_eq!(evs[0].payload.value()["player_id"], json!(pid));

    // Read-your-writes across a chain of operations.
    for i in 0..5 {
        let pl = new_player(&store, at(i)).await;
        let id = pl.id;
        let seen = look(&store, move |tx| tx.player(id)).await;
        assert_eq!(seen, Some(pl), "write {i} is visible at once");
    }
}

pub async fn a_failed_operation_with_an_unreleased_savepoint_leaves_nothing_behind(store: Store) {
    let outer = raw_player(None);
    let inner = raw_player(None);
    let (oid, iid) = (outer.id, inner.id);
    let r: Result<(), OpError> = op(&store, move |tx| {
        tx.insert_player(&outer)?;
        tx.savepoint()?;
        tx.insert_player(&inner)?;
        // Neither released nor rolled back: the operation just fails.
        Err(forced())
    })
    .await;
    assert!(r.is_err());
    assert!(!exists(&store, oid).await, "write before the savepoint");
    assert!(!exists(&store, iid).await, "write inside the savepoint");

    // The same, with the savepoint opened first.
    let a = raw_player(None);
    let aid = a.id;
    let r: Result<(), OpError> = op(&store, move |tx| {
        tx.savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&a)?;
        tx.release_savepoint()?;
        Err(forced())
    })
    .await;
    assert!(r.is_err());
    assert!(!exists(&store, aid).await);

    // A later operation is unaffected and commits normally.
    let fine = new_player(&store, at(1)).await;
    assert!(exists(&store, fine.id).await);
}

pub async fn a_rolled_back_savepoint_keeps_the_outer_writes(store: Store) {
    let (a, b, c) = (raw_player(None), raw_player(None), raw_player(None));
    let (aid, bid, cid) = (a.id, b.id, c.id);
    op(&store, move |tx| {
        tx.insert_player(&a)?;
        tx.savepoint()?;
        tx.insert_player(&b)?;
        tx.rollback_savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&c)?;
        tx.release_savepoint()?;
        // Inside the operation the rolled-back write is already gone.
        assert!(tx.player(b.id)?.is_none());
        Ok(())
    })
    .await
    .expect("operation with savepoints");
    assert!(exists(&store, aid).await);
    assert!(!exists(&store, bid).await);
    assert!(exists(&store, cid).await);

    // A failed statement inside a savepoint (a conflict) is recoverable.
    let dup_card = raw_player(Some("C-X".into()));
    let dup_card2 = raw_player(Some("C-X".into()));
    let (d1, d2) = (dup_card.id, dup_card2.id);
    op(&store, move |tx| {
        tx.insert_player(&dup_card)?;
        tx.savepoint()?;
        let r = tx.insert_player(&dup_card2);
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        tx.rollback_savepoint()?;
        Ok(())
    })
    .await
    .expect("recover from a conflict with a savepoint");
    assert!(exists(&store, d1).await);
    assert!(!exists(&store, d2).await);

    // Released savepoints (PostgreSQL sends a RELEASE with the next
    // savepoint command, or not at all before COMMIT): a rollback to an
    // outer savepoint still undoes a released inner one, a later savepoint
    // rolls back only its own writes, and a failed statement after a
    // release is recoverable in a savepoint of its own.
    let [e, f, g, h, k] = [0; 5].map(|_| raw_player(None));
    let dup = raw_player(Some("C-Y".into()));
    let dup2 = raw_player(Some("C-Y".into()));
    let ids = [e.id, f.id, g.id, h.id, k.id, dup.id, dup2.id];
    op(&store, move |tx| {
        tx.savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&e)?;
        tx.release_savepoint()?;
        tx.rollback_savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&f)?;
        tx.release_savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&g)?;
        tx.rollback_savepoint()?;
        tx.insert_player(&h)?;
        tx.insert_player(&dup)?;
        tx.savepoint()?;
        let r = tx.insert_player(&dup2);
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        tx.rollback_savepoint()?;
        tx.savepoint()?;
        tx.insert_player(&k)?;
        tx.release_savepoint()?;
        Ok(())
    })
    .await
    .expect("operation with released savepoints");
    let mut kept = Vec::new();
    for id in ids {
        kept.push(exists(&store, id).await);
    }
    assert_eq!(kept, [false, true, false, true, true, true, false]);
}

pub async fn a_panicking_operation_fails_and_leaves_nothing_behind(store: Store) {
    let p = raw_player(None);
    let pid = p.id;
    let r: Result<(), OpError> = op(&store, move |tx| {
        tx.insert_player(&p)?;
        tx.savepoint()?;
        tx.insert_account(&raw_account(p.id))?;
        panic!("deliberate panic inside a write operation (contract test)");
    })
    .await;
    assert!(r.is_err(), "a panicking operation must not report success");
    assert!(!exists(&store, pid).await);
    assert_eq!(look(&store, move |tx| tx.account(pid)).await, None);

    // The store keeps working.
    let fine = new_player(&store, at(1)).await;
    assert!(exists(&store, fine.id).await);
}

pub async fn group_commit_keeps_exactly_the_successful_operations(store: Store) {
    const N: usize = 200;
    let mut tasks = Vec::with_capacity(N);
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let p = raw_player(Some(format!("G-{i}")));
        ids.push(p.id);
        let store = store.clone();
        let c = ctx(at(i as i64));
        tasks.push(tokio::spawn(async move {
            op(&store, move |tx| {
                tx.insert_player(&p)?;
                tx.insert_account(&raw_account(p.id))?;
                tx.append_event(loyalty_store::NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "PLAYER_CREATED",
                    version: 1,
                    occurred_at: c.now,
                    correlation_id: c.correlation_id.clone(),
                    idempotency_key: None,
                    source: "contract_test",
                    payload: loyalty_core::events::Payload::of(&json!({"player_id": p.id, "i": i})),
                })?;
                if i % 3 == 0 {
                    return Err(OpError::Conflict(format!("forced failure {i}")));
                }
                Ok(i)
            })
            .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.expect("task");
        if i % 3 == 0 {
            assert!(
                matches!(&r, Err(OpError::Conflict(m)) if *m == format!("forced failure {i}")),
                "op {i}: {r:?}"
            );
        } else {
            assert_eq!(r.expect("successful op"), i);
        }
    }

    barrier(&store).await;
    let want: Vec<bool> = (0..N).map(|i| i % 3 != 0).collect();
    let ids2 = ids.clone();
    let got = look(&store, move |tx| {
        ids2.iter()
            .map(|id| Ok(tx.player(*id)?.is_some() && tx.account(*id)?.is_some()))
            .collect::<Result<Vec<bool>, StoreError>>()
    })
    .await;
    assert_eq!(got, want, "exactly the successful operations are visible");

    let evs = events(&store).await;
    assert_eq!(evs.len(), want.iter().filter(|w| **w).count());
    assert_gap_free(&evs);
    let mut seen: Vec<usize> = evs
        .iter()
        .map(|e| e.payload.value()["i"].as_u64().expect("i") as usize)
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..N).filter(|i| i % 3 != 0).collect::<Vec<_>>(),
        "exactly the successful operations' events"
    );

    let (checked, drift, _) = store.read(|tx| ops::verify(tx, 10)).await.expect("verify");
    assert_eq!(checked as usize, want.iter().filter(|w| **w).count());
    assert!(drift.is_empty());
}
