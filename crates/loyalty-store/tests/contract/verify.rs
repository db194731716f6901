//! `ops::verify` (DESIGN §3.6): proves every account against its ledger and
//! names the drift it finds.

use loyalty_core::TransactionType;
use loyalty_store::ops::{self, EntrySpec, OpError};
use loyalty_store::{Account, Drift, Store};
use uuid::Uuid;

use crate::support::*;

async fn verify(store: &Store) -> (u64, Vec<Drift>, u64) {
    store.read(|tx| ops::verify(tx, 100)).await.expect("verify")
}

/// Three players with a few entries each; returns their ids.
async fn populate(store: &Store) -> Vec<Uuid> {
    let staff = Uuid::now_v7();
    let mut ids = Vec::new();
    for p in 0..3 {
        let pid = new_player(store, at(0)).await.id;
        for i in 0..4 {
            let c = ctx(at(10 + i));
            reward(store, &c, pid, 300 * (i + 1), &format!("k-{p}-{i}"), staff)
                .await
                .expect("reward");
        }
        reward(store, &ctx(at(20)), pid, -250, &format!("adj-{p}"), staff)
            .await
            .expect("adjust");
        apply(
            store,
            &ctx(at(21)),
            EntrySpec {
                escrow_change: 100,
                ..spec(pid, TransactionType::EscrowHold, -100)
            },
        )
        .await
        .expect("hold");
        apply(
            store,
            &ctx(at(22)),
            EntrySpec {
                escrow_change: -100,
                ..spec(pid, TransactionType::EscrowRefund, 100)
            },
        )
        .await
        .expect("refund");
        ids.push(pid);
    }
    // A player without entries is checked too.
    ids.push(new_player(store, at(30)).await.id);
    ids
}

async fn corrupt(store: &Store, pid: Uuid, change: impl FnOnce(&mut Account) + Send + 'static) {
    op(store, move |tx| {
        let mut a = tx.account(pid)?.expect("account");
        change(&mut a);
        tx.update_account(&a)?;
        Ok::<_, OpError>(())
    })
    .await
    .expect("corrupt the account row");
}

pub async fn verify_finds_no_drift_in_a_clean_store(store: Store) {
    let (checked, drift, total) = verify(&store).await;
    assert_eq!((checked, drift.len(), total), (0, 0, 0), "empty store");
    let ids = populate(&store).await;
    let (checked, drift, total) = verify(&store).await;
    assert_eq!(checked, ids.len() as u64);
    assert!(drift.is_empty(), "{drift:?}");
    assert_eq!(total, 0);
}

/// The account's chain head (schema 15) is checked against the player's
/// newest entry; an account that has none recorded is not.
pub async fn verify_reports_a_chain_head_that_is_not_the_newest_hash(store: Store) {
    let ids = populate(&store).await;
    let victim = ids[2];
    let entries = ledger(&store, victim).await;
    let newest = entries.iter().max_by_key(|e| e.seq).expect("entries");
    assert_eq!(
        account(&store, victim).await.chain_head.as_deref(),
        Some(newest.hash.as_str())
    );
    let older = entries
        .iter()
        .min_by_key(|e| e.seq)
        .expect("entries")
        .hash
        .clone();
    corrupt(&store, victim, move |a| a.chain_head = Some(older)).await;

    let (checked, drift, total) = verify(&store).await;
    assert_eq!(checked, ids.len() as u64);
    assert_eq!(total, 1, "{drift:?}");
    assert_eq!(
        drift,
        vec![Drift {
            player_id: victim,
            check: "chain_head".into(),
            expected: 0,
            actual: 1,
            entry_id: Some(newest.id),
            escrow_id: None,
            merchant_id: None,
        }]
    );
}

pub async fn verify_reports_a_corrupted_balance_naming_the_player(store: Store) {
    let ids = populate(&store).await;
    let victim = ids[1];
    let truth = account(&store, victim).await.current_balance;
    corrupt(&store, victim, |a| a.current_balance += 13).await;

    let (checked, drift, total) = verify(&store).await;
    assert_eq!(checked, ids.len() as u64);
    assert_eq!(total, drift.len() as u64);
    let (global, accounts): (Vec<Drift>, Vec<Drift>) =
        drift.into_iter().partition(|d| d.check == "conservation");
    assert_eq!(
        accounts,
        vec![Drift {
            player_id: victim,
            check: "current_balance".into(),
            expected: truth + 13,
            actual: truth,
            entry_id: None,
            escrow_id: None,
            merchant_id: None,
        }],
        "exactly the corrupted account, naming the player"
    );
    // Points that no ledger entry explains also break conservation: the
    // balances hold 13 more than was ever earned.
    assert_eq!(global.len(), 1, "{global:?}");
    assert_eq!(global[0].expected - global[0].actual, 13);

    // Reported drift is capped; the count is exact.
    for pid in [ids[0], ids[2]] {
        corrupt(&store, pid, |a| a.current_balance += 1).await;
    }
    let (_, shown, total) = store.read(|tx| ops::verify(tx, 2)).await.expect("verify");
    // Three accounts, and conservation.
    assert_eq!((shown.len(), total), (2, 4));
}

pub async fn verify_reports_corrupted_lifetime_points_and_entry_count(store: Store) {
    let ids = populate(&store).await;
    let victim = ids[0];
    let truth = account(&store, victim).await;
    corrupt(&store, victim, |a| {
        a.lifetime_points += 5;
        a.entry_count -= 1;
    })
    .await;
    let (_, drift, _) = verify(&store).await;
    let mut checks: Vec<(Uuid, &str, i64, i64)> = drift
        .iter()
        .map(|d| (d.player_id, d.check.as_str(), d.expected, d.actual))
        .collect();
    checks.sort();
    assert_eq!(
        checks,
        vec![
            (
                victim,
                "entry_count",
                truth.entry_count - 1,
                truth.entry_count
            ),
            (
                victim,
                "lifetime_points",
                truth.lifetime_points + 5,
                truth.lifetime_points
            ),
        ]
    );
}

/// A ledger entry whose account row is gone is drift on every backend: the
/// points it moved are in no balance (this is the check the two backends
/// once disagreed on).
pub async fn verify_reports_entries_whose_account_is_missing(store: Store) {
    let ids = populate(&store).await;
    let victim = ids[1];
    let entries: Vec<(Uuid, i64)> = ledger(&store, victim)
        .await
        .into_iter()
        .map(|e| (e.id, e.points_change))
        .collect();
    assert!(!entries.is_empty());
    raw_sql(
        &store,
        &format!("DELETE FROM loyalty_accounts WHERE player_id = '{victim}'"),
    )
    .await;

    let (checked, drift, total) = verify(&store).await;
    assert_eq!(checked, ids.len() as u64 - 1, "the other accounts");
    let mut orphans: Vec<(Uuid, i64)> = drift
        .iter()
        .filter(|d| d.check == "entry_without_account")
        .map(|d| {
            assert_eq!(d.player_id, victim, "{d:?}");
            (d.entry_id.expect("names the entry"), d.actual)
        })
        .collect();
    orphans.sort();
    let mut want = entries.clone();
    want.sort();
    assert_eq!(orphans, want, "every entry of the missing account, once");
    assert_eq!(total, drift.len() as u64);
}
