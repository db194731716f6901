//! `ops::apply_entry`: the only way a balance changes.

use loyalty_core::{Tier, TierTable, TransactionType};
use loyalty_store::ops::{self, OpError};
use loyalty_store::{EntryQuery, EventRecord, LedgerEntry, Store};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// The events an entry wrote: LEDGER_ENTRY_CREATED, BALANCE_UPDATED and, if
/// the tier moved, TIER_CHANGED, consecutive in the outbox.
fn assert_entry_events(evs: &[EventRecord], entry: &LedgerEntry, tiers: &TierTable) {
    let i = evs
        .iter()
        .position(|e| {
            e.event_type == "LEDGER_ENTRY_CREATED"
                && e.payload.value()["ledger_entry_id"] == json!(entry.id)
        })
        .unwrap_or_else(|| panic!("no LEDGER_ENTRY_CREATED for {}", entry.id));
    let created = &evs[i];
    assert_eq!(created.payload.value()["player_id"], json!(entry.player_id));
    assert_eq!(
        created.payload.value()["points_change"],
        json!(entry.points_change)
    );
    assert_eq!(
        created.payload.value()["balance_before"],
        json!(entry.balance_before)
    );
    assert_eq!(
        created.payload.value()["balance_after"],
        json!(entry.balance_after)
    );
    assert_eq!(
        created.payload.value()["transaction_type"],
        json!(entry.transaction_type)
    );
    assert_eq!(created.correlation_id, entry.correlation_id);
    assert_eq!(created.occurred_at, entry.created_at);

    let balance = evs.get(i + 1).expect("BALANCE_UPDATED follows");
    assert_eq!(balance.event_type, "BALANCE_UPDATED");
    assert_eq!(balance.seq, created.seq + 1);
    assert_eq!(balance.payload.value()["ledger_entry_id"], json!(entry.id));
    assert_eq!(
        balance.payload.value()["current_balance"],
        json!(entry.balance_after)
    );
    assert_eq!(
        balance.payload.value()["lifetime_points"],
        json!(entry.lifetime_after)
    );
    assert_eq!(balance.payload.value()["tier"], json!(entry.tier_after));
    assert_eq!(balance.correlation_id, entry.correlation_id);

    let next = evs.get(i + 2);
    if entry.tier_before != entry.tier_after {
        let tier = next.expect("TIER_CHANGED follows");
        assert_eq!(tier.event_type, "TIER_CHANGED");
        assert_eq!(tier.seq, balance.seq + 1);
        assert_eq!(tier.payload.value()["ledger_entry_id"], json!(entry.id));
        assert_eq!(
            tier.payload.value()["tier_before"],
            json!(entry.tier_before)
        );
        assert_eq!(tier.payload.value()["tier_after"], json!(entry.tier_after));
        assert_eq!(tier.correlation_id, entry.correlation_id);
        assert_eq!(entry.tier_after, tiers.tier_for(entry.lifetime_after));
    } else if let Some(n) = next {
        assert!(
            !(n.event_type == "TIER_CHANGED"
                && n.payload.value()["ledger_entry_id"] == json!(entry.id)),
            "TIER_CHANGED without a tier change"
        );
    }
}

pub async fn apply_entry_chains_balances_and_moves_the_account(store: Store) {
    let player = new_player(&store, at(0)).await;
    let other = new_player(&store, at(0)).await;
    let pid = player.id;
    let staff = Uuid::now_v7();
    // (type, change, expected lifetime after, expected tier after)
    let steps: [(TransactionType, i64, i64, Tier); 7] = [
        (TransactionType::ManualBonus, 400, 400, Tier::Bronze),
        (TransactionType::Gameplay, 700, 1_100, Tier::Silver),
        (TransactionType::Adjustment, -300, 1_100, Tier::Silver),
        (TransactionType::EscrowRefund, 50, 1_100, Tier::Silver),
        (TransactionType::Adjustment, 20, 1_100, Tier::Silver),
        (TransactionType::EscrowHold, -70, 1_100, Tier::Silver),
        (TransactionType::Gameplay, 4_000, 5_100, Tier::Gold),
    ];
    let tiers = TierTable::default();
    let mut written: Vec<LedgerEntry> = Vec::new();
    let mut balance = 0;
    for (n, (tt, change, lifetime, tier)) in steps.iter().copied().enumerate() {
        let c = ctx(at(10 + n as i64));
        let mut sp = spec(pid, tt, change);
        sp.staff_id = Some(staff);
        sp.reason = Some(format!("step {n}"));
        let e = apply(&store, &c, sp).await.expect("apply entry");
        let tier_before = written.last().map(|w| w.tier_after).unwrap_or(Tier::Bronze);
        assert_eq!(e.balance_before, balance, "step {n}: chained");
        assert_eq!(e.balance_after, balance + change, "step {n}");
        assert_eq!(e.points_change, change);
        assert_eq!(e.lifetime_after, lifetime, "step {n}: lifetime");
        assert_eq!(e.tier_before, tier_before, "step {n}");
        assert_eq!(e.tier_after, tier, "step {n}: tier");
        assert_eq!(e.transaction_type, tt);
        assert_eq!(e.correlation_id, c.correlation_id);
        assert_eq!(e.created_at, c.now);
        assert_eq!(e.staff_id, Some(staff));
        if let Some(prev) = written.last() {
            assert!(e.seq > prev.seq, "sequence increases");
        }
        balance += change;
        let acc = account(&store, pid).await;
        assert_eq!(acc.current_balance, balance);
        assert_eq!(acc.lifetime_points, lifetime);
        assert_eq!(acc.tier, tier);
        assert_eq!(acc.entry_count, n as i64 + 1);
        assert_eq!(acc.updated_at, c.now);
        // The chain: each entry follows the player's previous one, whose
        // hash the account keeps for the next.
        let prev = written
            .last()
            .map_or(loyalty_store::chain::GENESIS, |w| w.hash.as_str());
        assert_eq!(e.prev_hash, prev, "step {n}: prev_hash");
        assert_eq!(
            e.hash,
            loyalty_store::chain::entry_hash(&e),
            "step {n}: hash"
        );
        assert_eq!(
            acc.chain_head.as_deref(),
            Some(e.hash.as_str()),
            "step {n}: chain head"
        );
        written.push(e);
    }
    assert_eq!(balance, 4_800);

    // Stored exactly as returned.
    assert_eq!(ledger(&store, pid).await, written);
    let untouched = account(&store, other.id).await;
    assert_eq!((untouched.current_balance, untouched.entry_count), (0, 0));

    // Events: one group per entry, in the same order, gap-free overall.
    let evs = events(&store).await;
    assert_gap_free(&evs);
    for e in &written {
        assert_entry_events(&evs, e, &tiers);
    }
    assert_eq!(
        evs.iter()
            .filter(|e| e.event_type == "TIER_CHANGED")
            .count(),
        2
    );
    let ledger_events: Vec<&EventRecord> = evs
        .iter()
        .filter(|e| e.event_type == "LEDGER_ENTRY_CREATED")
        .collect();
    let ids: Vec<Uuid> = written.iter().map(|e| e.id).collect();
    let evids: Vec<Uuid> = ledger_events
        .iter()
        .map(|e| {
            e.payload.value()["ledger_entry_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(evids, ids, "events in ledger order");

    // A tier reached is kept even if a smaller table would say otherwise:
    // tiers never go down.
    let mut c = ctx(at(100));
    c.tiers = std::sync::Arc::new(TierTable {
        thresholds: [0, 10_000, 20_000, 30_000],
        ..TierTable::default()
    });
    let e = apply(&store, &c, spec(pid, TransactionType::ManualBonus, 1))
        .await
        .expect("apply");
    assert_eq!((e.tier_before, e.tier_after), (Tier::Gold, Tier::Gold));
}

pub async fn apply_entry_refuses_to_go_below_zero_and_writes_nothing(store: Store) {
    let player = new_player(&store, at(0)).await;
    let pid = player.id;
    let c = ctx(at(1));
    apply(&store, &c, spec(pid, TransactionType::ManualBonus, 100))
        .await
        .expect("credit");
    let acc_before = account(&store, pid).await;
    let evs_before = events(&store).await;

    // Refused inside an operation that then goes on and commits: apply_entry
    // itself must have written nothing.
    let c2 = ctx(at(2));
    let (refused, entries_seen, events_seen) = op(&store, move |tx| {
        let r = ops::apply_entry(tx, &c2, spec(pid, TransactionType::Adjustment, -101));
        let entries = tx.entries(&EntryQuery {
            player_id: Some(pid),
            limit: 100,
            ..Default::default()
        })?;
        let events = tx.events(0, 1000, None)?;
        Ok((r, entries.len(), events.len()))
    })
    .await
    .expect("the operation commits");
    match refused {
        Err(OpError::InsufficientBalance {
            available,
            requested,
        }) => assert_eq!((available, requested), (100, 101)),
        other => panic!("expected InsufficientBalance, got {other:?}"),
    }
    assert_eq!(entries_seen, 1);
    assert_eq!(events_seen, evs_before.len());
    assert_eq!(account(&store, pid).await, acc_before);
    assert_eq!(events(&store).await.len(), evs_before.len());

    // On its own, the refusal is the operation's error.
    let r = apply(&store, &c, spec(pid, TransactionType::EscrowHold, -1_000)).await;
    assert!(
        matches!(
            r,
            Err(OpError::InsufficientBalance {
                available: 100,
                requested: 1_000
            })
        ),
        "{r:?}"
    );

    // Down to exactly zero is fine.
    let e = apply(&store, &c, spec(pid, TransactionType::Adjustment, -100))
        .await
        .expect("debit to zero");
    assert_eq!((e.balance_before, e.balance_after), (100, 0));
    let acc = account(&store, pid).await;
    assert_eq!(acc.current_balance, 0);
    assert_eq!(
        acc.lifetime_points, 100,
        "debits never lower lifetime points"
    );
    assert_eq!(acc.entry_count, 2);
    let r = apply(&store, &c, spec(pid, TransactionType::Adjustment, -1)).await;
    assert!(
        matches!(
            r,
            Err(OpError::InsufficientBalance {
                available: 0,
                requested: 1
            })
        ),
        "{r:?}"
    );
    assert_eq!(ledger(&store, pid).await.len(), 2);
}

pub async fn apply_entry_is_undone_with_its_operation(store: Store) {
    let player = new_player(&store, at(0)).await;
    let pid = player.id;
    let acc_before = account(&store, pid).await;
    let evs_before = events(&store).await.len();
    let c = ctx(at(1));
    let r: Result<(), OpError> = op(&store, move |tx| {
        let e = ops::apply_entry(tx, &c, spec(pid, TransactionType::Gameplay, 5_000))?;
        assert_eq!(tx.account(pid)?.unwrap().current_balance, 5_000);
        assert!(tx.entry(e.id)?.is_some());
        Err(OpError::AccrualFailed("later step failed".into()))
    })
    .await;
    assert!(matches!(r, Err(OpError::AccrualFailed(_))), "{r:?}");
    assert_eq!(account(&store, pid).await, acc_before);
    assert!(ledger(&store, pid).await.is_empty());
    assert_eq!(events(&store).await.len(), evs_before);
}

pub async fn apply_entry_for_an_unknown_player_is_not_found(store: Store) {
    let c = ctx(at(0));
    let r = apply(
        &store,
        &c,
        spec(Uuid::now_v7(), TransactionType::ManualBonus, 10),
    )
    .await;
    assert!(matches!(r, Err(OpError::NotFound("player"))), "{r:?}");
    assert!(all_entries(&store).await.is_empty());
    assert!(events(&store).await.is_empty());
}

/// Balances, lifetime totals and amounts stay within ±(2^53 − 1), the
/// range every JSON client reads exactly; beyond it nothing is written.
pub async fn apply_entry_keeps_points_within_the_exact_json_range(store: Store) {
    let player = new_player(&store, at(0)).await;
    let pid = player.id;
    let max = ops::POINTS_ABS_MAX;
    apply(
        &store,
        &ctx(at(1)),
        spec(pid, TransactionType::ManualBonus, max - 10),
    )
    .await
    .expect("a credit up to the limit");
    let evs_before = events(&store).await.len();
    for (points, field) in [(11, "current_balance"), (max + 1, "points_change")] {
        let r = apply(
            &store,
            &ctx(at(2)),
            spec(pid, TransactionType::ManualBonus, points),
        )
        .await;
        match r {
            Err(OpError::PointsOutOfRange { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected PointsOutOfRange for {points}, got {other:?}"),
        }
    }
    let r = apply(
        &store,
        &ctx(at(2)),
        spec(pid, TransactionType::ManualBonus, i64::MAX),
    )
    .await;
    assert!(matches!(r, Err(OpError::PointsOutOfRange { .. })), "{r:?}");
    apply(
        &store,
        &ctx(at(3)),
        spec(pid, TransactionType::ManualBonus, 10),
    )
    .await
    .expect("exactly the limit");
    let acc = account(&store, pid).await;
    assert_eq!((acc.current_balance, acc.lifetime_points), (max, max));
    assert_eq!(
        events(&store).await.len(),
        evs_before + 2,
        "a refusal wrote events"
    );
    assert_eq!(
        ledger(&store, pid).await.len(),
        2,
        "a refusal wrote an entry"
    );
}

/// A manual reward's key replays only the request that wrote it; the same
/// key with another player, staff member, amount, reason or slip is a reuse
/// and writes nothing.
pub async fn a_reward_key_reused_with_other_content_is_refused(store: Store) {
    let player = new_player(&store, at(0)).await;
    let other = new_player(&store, at(0)).await;
    let staff = Uuid::now_v7();
    let c = ctx(at(1));
    let input = reward_input(player.id, 40, "reward:shared", staff);
    let (first, replay) = op(&store, {
        let (c, input) = (c.clone(), input.clone());
        move |tx| ops::manual_reward(tx, &c, input)
    })
    .await
    .expect("first reward");
    assert!(!replay);
    let evs_before = events(&store).await.len();
    let mut variants = Vec::new();
    let mut v = input.clone();
    v.player_id = loyalty_core::PlayerId::of(other.id);
    variants.push(v);
    let mut v = input.clone();
    v.staff_id = loyalty_core::StaffId::of(Uuid::now_v7());
    variants.push(v);
    let mut v = input.clone();
    v.points = points(41);
    variants.push(v);
    let mut v = input.clone();
    v.reason = reason("another reason entirely");
    variants.push(v);
    for v in variants {
        let c = c.clone();
        let r = op(&store, move |tx| ops::manual_reward(tx, &c, v)).await;
        assert!(matches!(r, Err(OpError::IdempotencyKeyReused)), "{r:?}");
    }
    assert_eq!(events(&store).await.len(), evs_before);
    assert!(ledger(&store, other.id).await.is_empty());
    let (again, replay) = op(&store, move |tx| ops::manual_reward(tx, &c, input))
        .await
        .expect("identical replay");
    assert!(replay);
    assert_eq!(again.id, first.id);
}
