//! The wallet (DESIGN §3.5): holds, captures, refunds, expiry, optimistic
//! concurrency and the conservation law, on every backend.

use jiff::{SignedDuration, Timestamp};
use loyalty_core::{EscrowStatus, TransactionType};
use loyalty_store::ops::wallet::{self, Capture, Hold};
use loyalty_store::ops::{self, OpError};
use loyalty_store::{Escrow, Merchant, Store};
use uuid::Uuid;

use crate::support::*;

/// A player holding `balance` available points, and a merchant.
async fn funded(store: &Store, balance: i64) -> (Uuid, Merchant) {
    let player = new_player(store, at(0)).await;
    if balance > 0 {
        apply(
            store,
            &ctx(at(1)),
            spec(player.id, TransactionType::ManualBonus, balance),
        )
        .await
        .expect("fund the player");
    }
    let c = ctx(at(1));
    let merchant = op(store, move |tx| {
        wallet::create_merchant(tx, &c, name("Steakhouse"))
    })
    .await
    .expect("merchant");
    (player.id, merchant)
}

fn hold_of(player_id: Uuid, merchant_id: Uuid, amount: i64) -> Hold {
    Hold {
        player_id: loyalty_core::PlayerId::of(player_id),
        merchant_id: loyalty_core::MerchantId::of(merchant_id),
        amount,
        reason: reason("dinner for two"),
        reference: Some("CHK-1001".into()),
        expires_at: None,
    }
}

async fn hold(store: &Store, now: Timestamp, h: Hold) -> Result<Escrow, OpError> {
    let c = ctx(now);
    op(store, move |tx| wallet::hold(tx, &c, h)).await
}

async fn settle(
    store: &Store,
    now: Timestamp,
    id: Uuid,
    amount: Option<i64>,
    final_capture: bool,
    expected_version: Option<i64>,
) -> Result<Escrow, OpError> {
    let c = ctx(now);
    op(store, move |tx| {
        wallet::settle(
            tx,
            &c,
            Capture {
                escrow_id: loyalty_core::EscrowId::of(id),
                amount,
                final_capture,
                expected_version,
            },
        )
    })
    .await
}

async fn refund(store: &Store, now: Timestamp, id: Uuid) -> Result<Escrow, OpError> {
    let c = ctx(now);
    op(store, move |tx| {
        wallet::refund(tx, &c, loyalty_core::EscrowId::of(id), None)
    })
    .await
}

/// A scripted wallet history for migration tests: a player funded with
/// 1,000, a hold of 300, a capture of 100 that keeps the hold, then a final
/// capture of 50 (the other 150 refunded). Returns the player. Escrow
/// changes: +300, −100, −50, −150.
pub async fn scripted_wallet_history(store: &Store) -> Uuid {
    let (pid, m) = funded(store, 1_000).await;
    let e = hold(store, at(2), hold_of(pid, m.id, 300))
        .await
        .expect("hold");
    settle(store, at(3), e.id, Some(100), false, None)
        .await
        .expect("capture");
    settle(store, at(4), e.id, Some(50), true, None)
        .await
        .expect("final capture");
    pid
}

/// The (type, points, escrow change) of a player's wallet entries.
pub async fn escrow_changes(store: &Store, pid: Uuid) -> Vec<(TransactionType, i64, i64)> {
    ledger(store, pid)
        .await
        .into_iter()
        .filter(|e| e.escrow_id.is_some())
        .map(|e| (e.transaction_type, e.points_change, e.escrow_change))
        .collect()
}

/// What [`scripted_wallet_history`] writes.
pub const SCRIPTED_ESCROW_CHANGES: [(TransactionType, i64, i64); 4] = [
    (TransactionType::EscrowHold, -300, 300),
    (TransactionType::EscrowSettle, 0, -100),
    (TransactionType::EscrowSettle, 0, -50),
    (TransactionType::EscrowRefund, 150, -150),
];

async fn merchant(store: &Store, id: Uuid) -> Merchant {
    barrier(store).await;
    look(store, move |tx| tx.merchant(id))
        .await
        .expect("merchant")
}

async fn escrow(store: &Store, id: Uuid) -> Escrow {
    barrier(store).await;
    look(store, move |tx| tx.escrow(id)).await.expect("escrow")
}

/// Verification finds nothing.
async fn assert_clean(store: &Store) {
    barrier(store).await;
    let (_, drift, total) = look(store, |tx| {
        ops::verify(tx, 100).map_err(|e| loyalty_store::StoreError::Internal(e.to_string()))
    })
    .await;
    assert_eq!(total, 0, "{drift:?}");
}

pub async fn a_hold_moves_available_to_escrow_with_its_entry_and_event(store: Store) {
    let (pid, m) = funded(&store, 1_000).await;
    let evs_before = events(&store).await.len();
    let e = hold(&store, at(10), hold_of(pid, m.id, 300))
        .await
        .expect("hold");
    assert_eq!(e.status, EscrowStatus::Held);
    assert_eq!((e.amount, e.held_amount(), e.version), (300, 300, 1));
    let acc = account(&store, pid).await;
    assert_eq!((acc.current_balance, acc.escrow_balance), (700, 300));
    assert_eq!(
        acc.lifetime_points, 1_000,
        "the wallet never moves lifetime points"
    );
    let entries = ledger(&store, pid).await;
    let last = entries.last().unwrap();
    assert_eq!(last.transaction_type, TransactionType::EscrowHold);
    assert_eq!(
        (last.points_change, last.balance_before, last.balance_after),
        (-300, 1_000, 700)
    );
    assert_eq!(last.escrow_id, Some(e.id));
    assert_eq!(last.reason.as_deref(), Some("dinner for two"));
    assert_eq!(last.idempotency_key, Some(format!("escrow:{}:hold", e.id)));
    let evs = events(&store).await;
    let held: Vec<_> = evs[evs_before..]
        .iter()
        .filter(|ev| ev.event_type == "ESCROW_HELD")
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].payload.value()["escrow_balance"], 300);
    assert_eq!(held[0].payload.value()["current_balance"], 700);
    assert_eq!(
        held[0].payload.value()["merchant_id"],
        serde_json::json!(m.id)
    );
    assert_clean(&store).await;
}

pub async fn a_hold_refuses_a_short_balance_unknown_ids_and_bad_input(store: Store) {
    let (pid, m) = funded(&store, 100).await;
    let evs_before = events(&store).await.len();
    match hold(&store, at(10), hold_of(pid, m.id, 101)).await {
        Err(OpError::InsufficientBalance {
            available,
            requested,
        }) => {
            assert_eq!((available, requested), (100, 101))
        }
        other => panic!("expected InsufficientBalance, got {other:?}"),
    }
    let r = hold(&store, at(10), hold_of(Uuid::now_v7(), m.id, 10)).await;
    assert!(matches!(r, Err(OpError::NotFound("player"))), "{r:?}");
    let r = hold(&store, at(10), hold_of(pid, Uuid::now_v7(), 10)).await;
    assert!(matches!(r, Err(OpError::NotFound("merchant"))), "{r:?}");
    for amount in [0, -5, 1_000_001] {
        let r = hold(&store, at(10), hold_of(pid, m.id, amount)).await;
        assert!(
            matches!(
                r,
                Err(OpError::Validation {
                    field: "amount",
                    ..
                })
            ),
            "{amount}: {r:?}"
        );
    }
    for expires in [
        at(10),
        at(5),
        at(10) + SignedDuration::from_hours(24 * 90 + 1),
    ] {
        let mut h = hold_of(pid, m.id, 10);
        h.expires_at = Some(expires);
        let r = hold(&store, at(10), h).await;
        assert!(
            matches!(
                r,
                Err(OpError::Validation {
                    field: "expires_at",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert_eq!(
        events(&store).await.len(),
        evs_before,
        "a refused hold wrote events"
    );
    let acc = account(&store, pid).await;
    assert_eq!((acc.current_balance, acc.escrow_balance), (100, 0));
}

pub async fn settles_capture_refund_and_close_as_the_design_says(store: Store) {
    let (pid, m) = funded(&store, 10_000).await;
    // Full capture.
    let a = hold(&store, at(10), hold_of(pid, m.id, 1_000))
        .await
        .unwrap();
    let a = settle(&store, at(11), a.id, None, true, None)
        .await
        .unwrap();
    assert_eq!(a.status, EscrowStatus::Settled);
    assert_eq!(
        (a.settled_amount, a.refunded_amount, a.held_amount()),
        (1_000, 0, 0)
    );
    // Partial, final: the rest refunded in the same transaction.
    let b = hold(&store, at(12), hold_of(pid, m.id, 500)).await.unwrap();
    let b = settle(&store, at(13), b.id, Some(200), true, None)
        .await
        .unwrap();
    assert_eq!(b.status, EscrowStatus::PartiallySettled);
    assert_eq!((b.settled_amount, b.refunded_amount), (200, 300));
    // Several captures on one hold, then the last one closes it.
    let c = hold(&store, at(14), hold_of(pid, m.id, 300)).await.unwrap();
    let c1 = settle(&store, at(15), c.id, Some(100), false, None)
        .await
        .unwrap();
    assert_eq!(
        (c1.status, c1.held_amount(), c1.version),
        (EscrowStatus::Held, 200, 2)
    );
    let c2 = settle(&store, at(16), c.id, Some(50), false, None)
        .await
        .unwrap();
    assert_eq!((c2.status, c2.held_amount()), (EscrowStatus::Held, 150));
    let c3 = settle(&store, at(17), c.id, Some(150), false, None)
        .await
        .unwrap();
    assert_eq!((c3.status, c3.settled_amount), (EscrowStatus::Settled, 300));
    // Captures then a refund of the rest.
    let d = hold(&store, at(18), hold_of(pid, m.id, 400)).await.unwrap();
    settle(&store, at(19), d.id, Some(100), false, None)
        .await
        .unwrap();
    match settle(&store, at(19), d.id, Some(301), false, None).await {
        Err(OpError::EscrowAmountExceeded { held, requested }) => {
            assert_eq!((held, requested), (300, 301))
        }
        other => panic!("expected EscrowAmountExceeded, got {other:?}"),
    }
    let d = refund(&store, at(20), d.id).await.unwrap();
    assert_eq!(d.status, EscrowStatus::Refunded);
    assert_eq!((d.settled_amount, d.refunded_amount), (100, 300));
    // Closed escrows refuse everything.
    for id in [a.id, b.id, c.id, d.id] {
        let r = settle(&store, at(21), id, Some(1), false, None).await;
        assert!(matches!(r, Err(OpError::EscrowNotHeld { .. })), "{r:?}");
        let r = refund(&store, at(21), id).await;
        assert!(matches!(r, Err(OpError::EscrowNotHeld { .. })), "{r:?}");
    }
    let r = settle(&store, at(21), Uuid::now_v7(), None, true, None).await;
    assert!(matches!(r, Err(OpError::NotFound("escrow"))), "{r:?}");

    // The merchant earned every capture; the player kept the rest.
    let captured = 1_000 + 200 + 300 + 100;
    assert_eq!(merchant(&store, m.id).await.earnings, captured);
    let acc = account(&store, pid).await;
    assert_eq!(
        (acc.current_balance, acc.escrow_balance),
        (10_000 - captured, 0)
    );
    assert_eq!(acc.lifetime_points, 10_000);
    let steps: Vec<TransactionType> = ledger(&store, pid)
        .await
        .iter()
        .filter(|e| e.escrow_id == Some(c.id))
        .map(|e| e.transaction_type)
        .collect();
    assert_eq!(
        steps,
        [
            TransactionType::EscrowHold,
            TransactionType::EscrowSettle,
            TransactionType::EscrowSettle,
            TransactionType::EscrowSettle
        ]
    );
    assert_clean(&store).await;
}

pub async fn a_stale_version_is_a_conflict_and_changes_nothing(store: Store) {
    let (pid, m) = funded(&store, 1_000).await;
    let e = hold(&store, at(10), hold_of(pid, m.id, 500)).await.unwrap();
    let e2 = settle(&store, at(11), e.id, Some(100), false, Some(1))
        .await
        .unwrap();
    assert_eq!(e2.version, 2);
    match settle(&store, at(12), e.id, Some(100), false, Some(1)).await {
        Err(OpError::VersionConflict { current }) => assert_eq!(current, 2),
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    let c = ctx(at(12));
    let r = op(&store, move |tx| {
        wallet::refund(tx, &c, loyalty_core::EscrowId::of(e.id), Some(7))
    })
    .await;
    assert!(
        matches!(r, Err(OpError::VersionConflict { current: 2 })),
        "{r:?}"
    );
    assert_eq!(escrow(&store, e.id).await.held_amount(), 400);
    assert_clean(&store).await;
}

pub async fn expiry_refunds_each_due_hold_once_and_wins_or_loses_cleanly(store: Store) {
    let (pid, m) = funded(&store, 1_000).await;
    let mut h = hold_of(pid, m.id, 300);
    h.expires_at = Some(at(100));
    let due = hold(&store, at(10), h.clone()).await.unwrap();
    let later = hold(
        &store,
        at(10),
        Hold {
            expires_at: Some(at(1_000)),
            ..h
        },
    )
    .await
    .unwrap();
    // Not due yet: nothing happens.
    let c = ctx(at(99));
    assert!(
        op(&store, move |tx| wallet::expire(
            tx,
            &c,
            loyalty_core::EscrowId::of(due.id)
        ))
        .await
        .unwrap()
        .is_none()
    );
    // Past its expiry the hold can no longer be captured…
    let r = settle(&store, at(100), due.id, None, true, None).await;
    assert!(
        matches!(
            r,
            Err(OpError::EscrowNotHeld {
                status: EscrowStatus::Expired
            })
        ),
        "{r:?}"
    );
    // …and two sweepers at once refund it once.
    barrier(&store).await;
    let ids = look(&store, |tx| tx.due_escrows(at(100), 10)).await;
    assert_eq!(ids, vec![due.id]);
    let sweeps: Vec<_> = (0..2)
        .map(|_| {
            let (store, c) = (store.clone(), ctx(at(100)));
            tokio::spawn(async move {
                op(&store, move |tx| {
                    wallet::expire(tx, &c, loyalty_core::EscrowId::of(due.id))
                })
                .await
            })
        })
        .collect();
    let mut expired = 0;
    for s in sweeps {
        if s.await.unwrap().unwrap().is_some() {
            expired += 1;
        }
    }
    assert_eq!(expired, 1);
    let e = escrow(&store, due.id).await;
    assert_eq!((e.status, e.refunded_amount), (EscrowStatus::Expired, 300));
    let refunds: Vec<_> = ledger(&store, pid)
        .await
        .into_iter()
        .filter(|x| {
            x.escrow_id == Some(due.id) && x.transaction_type == TransactionType::EscrowRefund
        })
        .collect();
    assert_eq!(refunds.len(), 1);
    assert!(
        refunds[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("expired at"),
        "{:?}",
        refunds[0].reason
    );
    assert!(
        events(&store)
            .await
            .iter()
            .any(|ev| ev.event_type == "ESCROW_EXPIRED")
    );
    // The other hold is untouched; a capture racing its expiry: one wins.
    assert_eq!(escrow(&store, later.id).await.status, EscrowStatus::Held);
    let capture = {
        let store = store.clone();
        tokio::spawn(async move { settle(&store, at(999), later.id, None, true, None).await })
    };
    let sweep = {
        let (store, c) = (store.clone(), ctx(at(1_000)));
        tokio::spawn(async move {
            op(&store, move |tx| {
                wallet::expire(tx, &c, loyalty_core::EscrowId::of(later.id))
            })
            .await
        })
    };
    let captured = capture.await.unwrap().is_ok();
    let swept = sweep.await.unwrap().unwrap().is_some();
    assert!(captured ^ swept, "captured {captured}, swept {swept}");
    let e = escrow(&store, later.id).await;
    assert_eq!(
        e.status,
        if captured {
            EscrowStatus::Settled
        } else {
            EscrowStatus::Expired
        }
    );
    assert_clean(&store).await;
}

pub async fn concurrent_holds_never_overdraw_and_lose_nothing(store: Store) {
    let (pid, m) = funded(&store, 1_000).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { hold(&store, at(10), hold_of(pid, m.id, 100)).await })
        })
        .collect();
    let mut ok = Vec::new();
    let mut short = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(e) => ok.push(e),
            Err(OpError::InsufficientBalance { .. }) => short += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok.len(), short), (10, 6));
    let acc = account(&store, pid).await;
    assert_eq!((acc.current_balance, acc.escrow_balance), (0, 1_000));
    // Captures and refunds of the same holds from many tasks at once: every
    // escrow ends in one final state, each step written once.
    let mut tasks = Vec::new();
    for e in &ok {
        for k in 0..3 {
            let (store, id) = (store.clone(), e.id);
            tasks.push(tokio::spawn(async move {
                match k {
                    0 => settle(&store, at(20), id, Some(60), true, None)
                        .await
                        .map(|_| ()),
                    1 => settle(&store, at(20), id, None, true, None)
                        .await
                        .map(|_| ()),
                    _ => refund(&store, at(20), id).await.map(|_| ()),
                }
            }));
        }
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(OpError::EscrowNotHeld { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, ok.len(), "exactly one closing step per escrow");
    for e in &ok {
        let e = escrow(&store, e.id).await;
        assert_ne!(e.status, EscrowStatus::Held);
        assert_eq!(e.held_amount(), 0);
    }
    let acc = account(&store, pid).await;
    let earned = merchant(&store, m.id).await.earnings;
    assert_eq!(acc.escrow_balance, 0);
    assert_eq!(acc.current_balance + earned, 1_000);
    assert_clean(&store).await;
}

pub async fn verify_reports_each_broken_wallet_invariant(store: Store) {
    let (pid, m) = funded(&store, 1_000).await;
    let e = hold(&store, at(10), hold_of(pid, m.id, 400)).await.unwrap();
    settle(&store, at(11), e.id, Some(100), false, None)
        .await
        .unwrap();
    assert_clean(&store).await;

    let checks = |store: Store| async move {
        barrier(&store).await;
        let (_, drift, _) = look(&store, |tx| {
            ops::verify(tx, 100).map_err(|e| loyalty_store::StoreError::Internal(e.to_string()))
        })
        .await;
        let mut names: Vec<String> = drift.iter().map(|d| d.check.clone()).collect();
        names.sort();
        (names, drift)
    };

    // A merchant credited behind the ledger's back.
    let mut mm = merchant(&store, m.id).await;
    mm.earnings += 50;
    op(&store, move |tx| Ok(tx.update_merchant(&mm)?))
        .await
        .unwrap();
    let (names, drift) = checks(store.clone()).await;
    assert_eq!(names, ["conservation", "merchant_earnings"], "{drift:?}");
    let d = drift
        .iter()
        .find(|d| d.check == "merchant_earnings")
        .unwrap();
    assert_eq!(
        (d.merchant_id, d.expected, d.actual),
        (Some(m.id), 150, 100)
    );
    mm = merchant(&store, m.id).await;
    mm.earnings -= 50;
    op(&store, move |tx| Ok(tx.update_merchant(&mm)?))
        .await
        .unwrap();
    assert_clean(&store).await;

    // An escrow balance that no hold explains (neither an open escrow nor
    // the entries' escrow changes).
    let mut acc = account(&store, pid).await;
    acc.escrow_balance += 7;
    let a2 = acc.clone();
    op(&store, move |tx| Ok(tx.update_account(&a2)?))
        .await
        .unwrap();
    let (names, drift) = checks(store.clone()).await;
    assert_eq!(
        names,
        ["conservation", "escrow_balance", "escrow_entries"],
        "{drift:?}"
    );
    let d = drift.iter().find(|d| d.check == "escrow_entries").unwrap();
    assert_eq!((d.player_id, d.expected, d.actual), (pid, 307, 300));
    let d = drift.iter().find(|d| d.check == "escrow_balance").unwrap();
    assert_eq!((d.player_id, d.expected, d.actual), (pid, 307, 300));
    acc.escrow_balance -= 7;
    op(&store, move |tx| Ok(tx.update_account(&acc)?))
        .await
        .unwrap();
    assert_clean(&store).await;

    // An escrow that claims a refund its ledger never wrote (and so holds
    // less than the player's escrow balance says).
    let mut x = escrow(&store, e.id).await;
    x.refunded_amount += 20;
    op(&store, move |tx| Ok(tx.update_escrow(&x)?))
        .await
        .unwrap();
    let (names, drift) = checks(store.clone()).await;
    assert_eq!(
        names,
        ["escrow_balance", "escrow_refund_entries"],
        "{drift:?}"
    );
    let d = drift
        .iter()
        .find(|d| d.check == "escrow_refund_entries")
        .unwrap();
    assert_eq!((d.escrow_id, d.expected, d.actual), (Some(e.id), 20, 0));
}
