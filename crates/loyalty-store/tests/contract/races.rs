//! Concurrent operations on the same rows: no double accrual, no double
//! reward, no overdraft, no lost update (DESIGN §3.3, §3.6).

use loyalty_core::TransactionType;
use loyalty_store::Store;
use loyalty_store::ops::{self, Completion, OpError};
use uuid::Uuid;

use crate::slips::open_slip_at;
use crate::support::*;

pub async fn concurrent_completions_of_one_slip_write_one_entry(store: Store) {
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let sid = open_slip_at(&store, player.id, table.id, "100", at(0), None)
        .await
        .id;

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let c = ctx(at(3600));
            tokio::spawn(async move {
                op(&store, move |tx| {
                    ops::complete_slip(tx, &c, loyalty_core::SlipId::of(sid), None)
                })
                .await
            })
        })
        .collect();
    let mut firsts = 0;
    let mut entry_ids = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(Completion::Accrued { loyalty, entry, .. }) => {
                if !loyalty.idempotent_replay {
                    firsts += 1;
                }
                assert_eq!(entry.points_change, 1_620);
                entry_ids.push(entry.id);
            }
            other => panic!("expected Accrued, got {other:?}"),
        }
    }
    assert_eq!(
        firsts, 1,
        "exactly one completion accrued, the rest replayed"
    );
    entry_ids.dedup();
    assert_eq!(
        entry_ids.len(),
        1,
        "every completion reports the same entry"
    );
    let entries = ledger(&store, player.id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, entry_ids[0]);
    let acc = account(&store, player.id).await;
    assert_eq!((acc.current_balance, acc.entry_count), (1_620, 1));
    let completed = events(&store)
        .await
        .iter()
        .filter(|e| e.event_type == "RATING_SLIP_COMPLETED")
        .count();
    assert_eq!(completed, 1);
}

pub async fn concurrent_rewards_with_one_key_write_one_entry(store: Store) {
    let player = new_player(&store, at(0)).await;
    let staff = Uuid::now_v7();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let c = ctx(at(10));
            let pid = player.id;
            tokio::spawn(async move { reward(&store, &c, pid, 250, "reward-key-1", staff).await })
        })
        .collect();
    let mut firsts = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let (entry, replay) = t.await.expect("task").expect("reward");
        if !replay {
            firsts += 1;
        }
        assert_eq!(entry.points_change, 250);
        assert_eq!(entry.transaction_type, TransactionType::ManualBonus);
        ids.push(entry.id);
    }
    assert_eq!(firsts, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let entries = ledger(&store, player.id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].idempotency_key.as_deref(), Some("reward-key-1"));
    assert_eq!(entries[0].staff_id, Some(staff));
    let acc = account(&store, player.id).await;
    assert_eq!((acc.current_balance, acc.lifetime_points), (250, 250));
    let requested = events(&store)
        .await
        .iter()
        .filter(|e| e.event_type == "POINTS_UPDATE_REQUESTED")
        .count();
    assert_eq!(requested, 1);
}

pub async fn concurrent_adjustments_cannot_overdraw_a_balance(store: Store) {
    let player = new_player(&store, at(0)).await;
    let pid = player.id;
    let staff = Uuid::now_v7();
    reward(&store, &ctx(at(1)), pid, 100, "credit", staff)
        .await
        .expect("credit");

    let tasks: Vec<_> = ["debit-a", "debit-b"]
        .into_iter()
        .map(|key| {
            let store = store.clone();
            let c = ctx(at(2));
            tokio::spawn(async move { reward(&store, &c, pid, -60, key, staff).await })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok((e, false)) => {
                ok += 1;
                assert_eq!(e.transaction_type, TransactionType::Adjustment);
                assert_eq!((e.balance_before, e.balance_after), (100, 40));
            }
            Err(OpError::InsufficientBalance {
                available,
                requested,
            }) => {
                refused += 1;
                assert_eq!((available, requested), (40, 60));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, refused), (1, 1));
    let acc = account(&store, pid).await;
    assert_eq!(acc.current_balance, 40);
    assert_eq!(acc.lifetime_points, 100);
    assert_eq!(ledger(&store, pid).await.len(), 2);
}

pub async fn concurrent_rewards_lose_no_update(store: Store) {
    const PLAYERS: usize = 4;
    const EACH: i64 = 40;
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        players.push(new_player(&store, at(0)).await.id);
    }
    let staff = Uuid::now_v7();
    let mut tasks = Vec::new();
    for (p, pid) in players.iter().copied().enumerate() {
        for i in 0..EACH {
            let store = store.clone();
            let c = ctx(at(1));
            let key = format!("r-{p}-{i}");
            tasks.push(tokio::spawn(async move {
                reward(&store, &c, pid, i + 1, &key, staff).await
            }));
        }
    }
    for t in tasks {
        let (_, replay) = t.await.expect("task").expect("reward");
        assert!(!replay);
    }
    let want = EACH * (EACH + 1) / 2;
    for pid in players {
        let acc = account(&store, pid).await;
        assert_eq!(acc.current_balance, want);
        assert_eq!(acc.lifetime_points, want);
        assert_eq!(acc.entry_count, EACH);
        let entries = ledger(&store, pid).await;
        assert_eq!(entries.len() as i64, EACH);
        let mut balance = 0;
        for e in entries {
            assert_eq!(e.balance_before, balance);
            balance = e.balance_after;
        }
        assert_eq!(balance, want);
    }
    let (_, drift, _) = store.read(|tx| ops::verify(tx, 10)).await.expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
}

pub async fn concurrent_completions_and_rewards_for_one_player_all_succeed(store: Store) {
    // Completions lock the slip, emit RATING_SLIP_COMPLETED and then take the
    // account; rewards take the account and then emit. Neither may fail (e.g.
    // with a deadlock) however they interleave.
    const SLIPS: usize = 12;
    const REWARDS: i64 = 24;
    let player = new_player(&store, at(0)).await;
    let pid = player.id;
    let table = new_table(&store, at(0), blackjack()).await;
    let mut slips = Vec::new();
    for _ in 0..SLIPS {
        slips.push(
            open_slip_at(&store, pid, table.id, "100", at(0), None)
                .await
                .id,
        );
    }
    let staff = Uuid::now_v7();
    let mut tasks = Vec::new();
    for (i, sid) in slips.iter().copied().enumerate() {
        let s = store.clone();
        let c = ctx(at(3600));
        tasks.push(tokio::spawn(async move {
            match op(&s, move |tx| {
                ops::complete_slip(tx, &c, loyalty_core::SlipId::of(sid), None)
            })
            .await
            {
                Ok(Completion::Accrued { entry, .. }) => Ok(entry.points_change),
                other => Err(format!("completion {i}: {other:?}")),
            }
        }));
        for j in 0..REWARDS / SLIPS as i64 {
            let store = store.clone();
            let c = ctx(at(3600));
            let key = format!("mixed-{i}-{j}");
            tasks.push(tokio::spawn(async move {
                match reward(&store, &c, pid, 10, &key, staff).await {
                    Ok((e, false)) => Ok(e.points_change),
                    other => Err(format!("reward {key}: {other:?}")),
                }
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} operations failed: {failures:#?}",
        failures.len()
    );
    let total: i64 = results.iter().map(|r| *r.as_ref().unwrap()).sum();
    let acc = account(&store, pid).await;
    assert_eq!(acc.current_balance, total);
    assert_eq!(acc.entry_count, SLIPS as i64 + REWARDS);
    let (_, drift, _) = store.read(|tx| ops::verify(tx, 10)).await.expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
}
