//! Property test: random operations over five players, run concurrently in
//! chunks against one store, then every DESIGN §3.6 invariant is checked by
//! reading the data back.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use jiff::{SignedDuration, Timestamp};
use loyalty_core::{
    EscrowStatus, GameSettings, LoyaltyStatus, SlipStatus, TierTable, TransactionType,
};
use loyalty_store::ops::{self, Completion, ManualReward, OpCtx, OpError, OpenSlip, wallet};
use loyalty_store::{EscrowQuery, LedgerEntry, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::backends::Backend;
use crate::support::*;

const PLAYERS: usize = 5;
const KEYS: u8 = 10;

/// One generated action; slips are chosen among those opened so far.
#[derive(Debug, Clone)]
enum Action {
    Open {
        player: usize,
        bet: u32,
    },
    Pause(Index),
    Resume(Index),
    SetBet(Index, u32),
    Complete(Index, bool),
    Recover(Index, bool),
    Reward {
        player: usize,
        points: i64,
        key: u8,
    },
    Advance {
        secs: i64,
    },
    Hold {
        player: usize,
        amount: i64,
        expires_in: Option<i64>,
    },
    Capture(Index, Option<i64>, bool),
    Refund(Index),
    Sweep(Index),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0..PLAYERS, 1..=500u32).prop_map(|(player, bet)| Action::Open { player, bet }),
        2 => any::<Index>().prop_map(Action::Pause),
        2 => any::<Index>().prop_map(Action::Resume),
        1 => (any::<Index>(), 1..=500u32).prop_map(|(i, bet)| Action::SetBet(i, bet)),
        4 => (any::<Index>(), prop::bool::weighted(0.35)).prop_map(|(i, f)| Action::Complete(i, f)),
        2 => (any::<Index>(), prop::bool::weighted(0.25)).prop_map(|(i, f)| Action::Recover(i, f)),
        4 => (0..PLAYERS, prop_oneof![-400..=-1i64, 1..=400i64], 0..KEYS)
            .prop_map(|(player, points, key)| Action::Reward { player, points, key }),
        2 => (60..=1800i64).prop_map(|secs| Action::Advance { secs }),
        3 => (0..PLAYERS, 1..=600i64, prop::option::weighted(0.4, 30..=2400i64))
            .prop_map(|(player, amount, expires_in)| Action::Hold { player, amount, expires_in }),
        3 => (any::<Index>(), prop::option::of(1..=300i64), any::<bool>())
            .prop_map(|(i, amount, last)| Action::Capture(i, amount, last)),
        1 => any::<Index>().prop_map(Action::Refund),
        1 => any::<Index>().prop_map(Action::Sweep),
    ]
}

/// Chunks of actions; the actions of one chunk run concurrently.
fn plan() -> impl Strategy<Value = Vec<Vec<Action>>> {
    prop::collection::vec(prop::collection::vec(action(), 2..=10), 3..=14)
}

/// Runs the property against stores made by `factory`.
pub fn run<F, Fut>(backend: &str, factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Backend>>,
{
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    if runtime().block_on(factory()).is_none() {
        crate::backends::skipped(backend);
        return;
    }
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&plan(), |chunks| {
        runtime().block_on(async {
            let backend = factory().await.expect("backend");
            check(backend.store(), chunks).await
        })
    });
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
}

/// An action with its slip resolved, ready to run.
#[derive(Debug, Clone)]
enum Step {
    Open { player: Uuid, table: Uuid, bet: u32 },
    Pause(Uuid),
    Resume(Uuid),
    SetBet(Uuid, u32),
    Complete(Uuid),
    Recover(Uuid),
    Reward(ManualReward),
    Hold(wallet::Hold),
    Capture(wallet::Capture),
    Refund(Uuid),
    Sweep(Uuid),
}

enum Outcome {
    Opened(Uuid),
    Changed,
    Settled(Uuid, Box<Completion>),
    Rewarded(String, Box<LedgerEntry>, bool),
    Held(Uuid),
    Refused,
}

fn allowed(step: &Step, e: &OpError) -> bool {
    match step {
        Step::Open { .. } => false,
        // Validation: a session would exceed 24 h.
        Step::Pause(_) => matches!(
            e,
            OpError::SlipNotOpen | OpError::Conflict(_) | OpError::Validation { .. }
        ),
        Step::Resume(_) => matches!(e, OpError::SlipNotOpen | OpError::Conflict(_)),
        Step::SetBet(..) => matches!(e, OpError::SlipNotOpen),
        // Validation: concurrent steps of one chunk commit in any order, so
        // a completion may see a resume from a later instant; or 24 h passed.
        Step::Complete(_) => matches!(
            e,
            OpError::Validation {
                field: "ended_at",
                ..
            }
        ),
        Step::Recover(_) => matches!(e, OpError::SlipNotClosed),
        Step::Reward(_) => matches!(e, OpError::InsufficientBalance { .. }),
        Step::Hold(_) => matches!(e, OpError::InsufficientBalance { .. }),
        Step::Capture(_) => matches!(
            e,
            OpError::EscrowNotHeld { .. } | OpError::EscrowAmountExceeded { .. }
        ),
        Step::Refund(_) => matches!(e, OpError::EscrowNotHeld { .. }),
        Step::Sweep(_) => false,
    }
}

async fn execute(store: Store, c: OpCtx, step: Step) -> Result<Outcome, String> {
    let s = step.clone();
    let r = match s {
        Step::Open { player, table, bet } => {
            let input = OpenSlip {
                player_id: loyalty_core::PlayerId::of(player),
                table_id: loyalty_core::TableId::of(table),
                average_bet: loyalty_core::AverageBet::new(Decimal::from(bet))
                    .expect("bets are 1-500"),
                seat_number: None,
                started_at: None,
            };
            op(&store, move |tx| ops::open_slip(tx, &c, input))
                .await
                .map(|s| Outcome::Opened(s.id))
        }
        Step::Pause(id) => op(&store, move |tx| {
            ops::pause_slip(tx, &c, loyalty_core::SlipId::of(id))
        })
        .await
        .map(|_| Outcome::Changed),
        Step::Resume(id) => op(&store, move |tx| {
            ops::resume_slip(tx, &c, loyalty_core::SlipId::of(id))
        })
        .await
        .map(|_| Outcome::Changed),
        Step::SetBet(id, bet) => op(&store, move |tx| {
            ops::set_average_bet(
                tx,
                &c,
                loyalty_core::SlipId::of(id),
                loyalty_core::AverageBet::new(Decimal::from(bet)).expect("bets are 1-500"),
            )
        })
        .await
        .map(|_| Outcome::Changed),
        Step::Complete(id) => op(&store, move |tx| {
            ops::complete_slip(tx, &c, loyalty_core::SlipId::of(id), None)
        })
        .await
        .map(|done| Outcome::Settled(id, Box::new(done))),
        Step::Recover(id) => op(&store, move |tx| {
            ops::recover_slip(tx, &c, loyalty_core::SlipId::of(id))
        })
        .await
        .map(|done| Outcome::Settled(id, Box::new(done))),
        Step::Hold(input) => op(&store, move |tx| wallet::hold(tx, &c, input))
            .await
            .map(|e| Outcome::Held(e.id)),
        Step::Capture(input) => op(&store, move |tx| wallet::settle(tx, &c, input))
            .await
            .map(|_| Outcome::Changed),
        Step::Refund(id) => op(&store, move |tx| {
            wallet::refund(tx, &c, loyalty_core::EscrowId::of(id), None)
        })
        .await
        .map(|_| Outcome::Changed),
        Step::Sweep(id) => op(&store, move |tx| {
            wallet::expire(tx, &c, loyalty_core::EscrowId::of(id))
        })
        .await
        .map(|_| Outcome::Changed),
        Step::Reward(input) => {
            let key = input.key.clone();
            op(&store, move |tx| ops::manual_reward(tx, &c, input))
                .await
                .map(|(e, replay)| Outcome::Rewarded(key, Box::new(e), replay))
        }
    };
    match r {
        Ok(o) => Ok(o),
        Err(e) if allowed(&step, &e) => Ok(Outcome::Refused),
        Err(e) => Err(format!("{step:?} failed unexpectedly: {e:?}")),
    }
}

fn settings() -> GameSettings {
    GameSettings {
        house_edge: dec("1.35"),
        average_rounds_per_hour: 75,
        points_conversion_rate: dec("10"),
        point_multiplier: dec("1.5"),
        seats_available: 5,
    }
}

/// What the operations reported, to compare with what the store holds.
#[derive(Default)]
struct Seen {
    slips: Vec<Uuid>,
    /// Per reward key: (entry id, replay) of every successful call.
    rewards: BTreeMap<String, Vec<(Uuid, bool)>>,
    /// Per reward key: the request it stands for (player, points, staff).
    reward_inputs: BTreeMap<String, (Uuid, i64, Uuid)>,
    /// Escrows placed.
    escrows: Vec<Uuid>,
    /// Per slip: (entry id, replay) of every accrued completion/recovery.
    accruals: BTreeMap<Uuid, Vec<(Uuid, bool)>>,
}

async fn check(store: Store, chunks: Vec<Vec<Action>>) -> Result<(), TestCaseError> {
    let tiers = TierTable::default();
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        players.push(new_player(&store, at(0)).await.id);
    }
    let table = new_table(&store, at(0), settings()).await.id;
    let mut merchants = Vec::new();
    for name in ["Steakhouse", "Spa"] {
        let c = ctx(at(0));
        let m = op(&store, move |tx| {
            wallet::create_merchant(tx, &c, crate::support::name(name))
        })
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        merchants.push(m.id);
    }
    let staff = [Uuid::now_v7(), Uuid::now_v7()];
    let mut now: Timestamp = at(0);
    let mut seen = Seen::default();

    for chunk in chunks {
        let mut tasks = Vec::new();
        for action in chunk {
            let mut c = ctx(now);
            c.staff_id = Some(staff[0]);
            let known = &seen.slips;
            let slip = |i: &Index| (!known.is_empty()).then(|| known[i.index(known.len())]);
            let held = &seen.escrows;
            let escrow = |i: &Index| (!held.is_empty()).then(|| held[i.index(held.len())]);
            let step = match action {
                Action::Advance { secs } => {
                    now += SignedDuration::from_secs(secs);
                    continue;
                }
                Action::Hold {
                    player,
                    amount,
                    expires_in,
                } => Step::Hold(wallet::Hold {
                    player_id: loyalty_core::PlayerId::of(players[player]),
                    merchant_id: loyalty_core::MerchantId::of(merchants[player % 2]),
                    amount,
                    reason: reason("property test hold"),
                    reference: None,
                    expires_at: expires_in.map(|s| now + SignedDuration::from_secs(s)),
                }),
                Action::Capture(i, amount, last) => match escrow(&i) {
                    Some(id) => Step::Capture(wallet::Capture {
                        escrow_id: loyalty_core::EscrowId::of(id),
                        amount,
                        final_capture: last,
                        expected_version: None,
                    }),
                    None => continue,
                },
                Action::Refund(i) => match escrow(&i) {
                    Some(id) => Step::Refund(id),
                    None => continue,
                },
                Action::Sweep(i) => match escrow(&i) {
                    Some(id) => Step::Sweep(id),
                    None => continue,
                },
                Action::Open { player, bet } => Step::Open {
                    player: players[player],
                    table,
                    bet,
                },
                Action::Pause(i) => match slip(&i) {
                    Some(id) => Step::Pause(id),
                    None => continue,
                },
                Action::Resume(i) => match slip(&i) {
                    Some(id) => Step::Resume(id),
                    None => continue,
                },
                Action::SetBet(i, bet) => match slip(&i) {
                    Some(id) => Step::SetBet(id, bet),
                    None => continue,
                },
                Action::Complete(i, fail) => match slip(&i) {
                    Some(id) => {
                        c.fail_accrual = fail;
                        Step::Complete(id)
                    }
                    None => continue,
                },
                Action::Recover(i, fail) => match slip(&i) {
                    Some(id) => {
                        c.fail_accrual = fail;
                        Step::Recover(id)
                    }
                    None => continue,
                },
                Action::Reward {
                    player,
                    points,
                    key,
                } => {
                    let staff_id = staff[usize::from(key) % 2];
                    c.staff_id = Some(staff_id);
                    // A key stands for one request (DESIGN §3.3): the same
                    // key with other content would be refused as a reuse.
                    Step::Reward(reward_input(
                        players[player],
                        points,
                        &format!("reward:{key}:{player}:{points}"),
                        staff_id,
                    ))
                }
            };
            tasks.push(tokio::spawn(execute(store.clone(), c, step)));
        }
        // Wait for every step of the chunk before judging any of them, so no
        // operation is still running when a failure ends the case.
        let mut outcomes = Vec::with_capacity(tasks.len());
        for t in tasks {
            outcomes.push(t.await.expect("task"));
        }
        for outcome in outcomes {
            let outcome = outcome.map_err(TestCaseError::fail)?;
            match outcome {
                Outcome::Opened(id) => seen.slips.push(id),
                Outcome::Held(id) => seen.escrows.push(id),
                Outcome::Changed | Outcome::Refused => {}
                Outcome::Settled(id, done) => match *done {
                    Completion::Accrued {
                        slip,
                        loyalty,
                        entry,
                    } => {
                        prop_assert_eq!(slip.status, SlipStatus::Closed);
                        prop_assert_eq!(slip.loyalty_status, LoyaltyStatus::Accrued);
                        prop_assert_eq!(slip.ledger_entry_id, Some(entry.id));
                        prop_assert_eq!(entry.rating_slip_id, Some(id));
                        prop_assert_eq!(loyalty.ledger_entry_id, entry.id);
                        seen.accruals
                            .entry(id)
                            .or_default()
                            .push((entry.id, loyalty.idempotent_replay));
                    }
                    Completion::Pending { slip, .. } => {
                        prop_assert_eq!(slip.status, SlipStatus::Closed);
                        prop_assert_eq!(slip.loyalty_status, LoyaltyStatus::Pending);
                        prop_assert!(slip.next_retry_at.is_some());
                    }
                },
                Outcome::Rewarded(key, entry, replay) => {
                    seen.reward_inputs.insert(
                        key.clone(),
                        (
                            entry.player_id,
                            entry.points_change,
                            entry.staff_id.unwrap(),
                        ),
                    );
                    seen.rewards
                        .entry(key)
                        .or_default()
                        .push((entry.id, replay));
                }
            }
        }
    }

    check_invariants(&store, &players, &seen, &tiers).await?;
    check_as_of(&store, &players, now).await?;

    // Replaying any manual-reward key or any accrued slip adds nothing, even
    // concurrently.
    let entries_before = all_entries(&store).await;
    let events_before = events(&store).await.len();
    let mut replays = Vec::new();
    for (key, results) in &seen.rewards {
        let original = results[0].0;
        let store = store.clone();
        let (player, points, staff_id) = seen.reward_inputs[key];
        let mut c = ctx(now);
        c.staff_id = Some(staff_id);
        // The identical request replays the original entry.
        let input = reward_input(player, points, key, staff_id);
        replays.push(tokio::spawn(async move {
            let r = op(&store, move |tx| ops::manual_reward(tx, &c, input)).await;
            match r {
                Ok((e, true)) if e.id == original => Ok(()),
                other => Err(format!("replay of {original}: {other:?}")),
            }
        }));
    }
    for (slip_id, results) in &seen.accruals {
        let original = results[0].0;
        let (store, c, id) = (store.clone(), ctx(now), *slip_id);
        replays.push(tokio::spawn(async move {
            let r = op(&store, move |tx| {
                ops::recover_slip(tx, &c, loyalty_core::SlipId::of(id))
            })
            .await;
            match r {
                Ok(Completion::Accrued { loyalty, entry, .. })
                    if loyalty.idempotent_replay && entry.id == original =>
                {
                    Ok(())
                }
                other => Err(format!("replay of slip {id}: {other:?}")),
            }
        }));
    }
    let mut replayed = Vec::with_capacity(replays.len());
    for r in replays {
        replayed.push(r.await.expect("task"));
    }
    for r in replayed {
        r.map_err(TestCaseError::fail)?;
    }
    prop_assert_eq!(
        &all_entries(&store).await,
        &entries_before,
        "a replay wrote an entry"
    );
    prop_assert_eq!(
        events(&store).await.len(),
        events_before,
        "a replay wrote an event"
    );
    check_invariants(&store, &players, &seen, &tiers).await
}

async fn check_invariants(
    store: &Store,
    players: &[Uuid],
    seen: &Seen,
    tiers: &TierTable,
) -> Result<(), TestCaseError> {
    // The verifier agrees, wallet conservation included.
    barrier(store).await;
    let (_, drift, total) = look(store, |tx| {
        ops::verify(tx, 20).map_err(|e| loyalty_store::StoreError::Internal(e.to_string()))
    })
    .await;
    prop_assert_eq!(total, 0, "verify found drift: {:?}", drift);
    let mut total_entries = 0;
    let mut gameplay_by_slip: BTreeMap<Uuid, Vec<LedgerEntry>> = BTreeMap::new();
    for &pid in players {
        let entries = ledger(store, pid).await;
        let acc = account(store, pid).await;
        let mut balance = 0i64;
        let mut lifetime = 0i64;
        for (n, e) in entries.iter().enumerate() {
            prop_assert_eq!(e.player_id, pid);
            prop_assert_eq!(
                e.balance_before,
                balance,
                "entry {} of {} breaks the chain",
                n,
                pid
            );
            prop_assert_eq!(e.balance_after, e.balance_before + e.points_change);
            prop_assert!(e.balance_after >= 0, "negative balance after {}", e.id);
            balance = e.balance_after;
            if e.points_change > 0
                && matches!(
                    e.transaction_type,
                    TransactionType::Gameplay | TransactionType::ManualBonus
                )
            {
                lifetime += e.points_change;
            }
            prop_assert_eq!(e.lifetime_after, lifetime);
            prop_assert!(e.tier_after >= e.tier_before, "tier went down");
            if e.transaction_type == TransactionType::Gameplay {
                let slip = e.rating_slip_id.expect("GAMEPLAY entries name their slip");
                prop_assert_eq!(e.idempotency_key.clone(), Some(ops::gameplay_key(slip)));
                gameplay_by_slip.entry(slip).or_default().push(e.clone());
            }
        }
        let sum: i64 = entries.iter().map(|e| e.points_change).sum();
        prop_assert_eq!(
            acc.current_balance,
            sum,
            "balance of {} ≠ Σ points_change",
            pid
        );
        prop_assert_eq!(acc.lifetime_points, lifetime, "lifetime of {}", pid);
        prop_assert_eq!(acc.entry_count, entries.len() as i64);
        prop_assert!(acc.current_balance >= 0);
        let held: i64 = look(store, move |tx| {
            tx.escrows(&EscrowQuery {
                player_id: Some(pid),
                status: Some(EscrowStatus::Held),
                before_seq: None,
                limit: 10_000,
            })
        })
        .await
        .iter()
        .map(|e| e.held_amount())
        .sum();
        prop_assert_eq!(acc.escrow_balance, held, "escrow of {}", pid);
        prop_assert_eq!(acc.tier, tiers.tier_for(lifetime));
        total_entries += entries.len();
    }

    // At most one GAMEPLAY entry per slip; slips and entries agree.
    for (slip_id, list) in &gameplay_by_slip {
        prop_assert_eq!(
            list.len(),
            1,
            "slip {} has {} GAMEPLAY entries",
            slip_id,
            list.len()
        );
    }
    let known: BTreeSet<Uuid> = seen.slips.iter().copied().collect();
    for slip_id in gameplay_by_slip.keys() {
        prop_assert!(
            known.contains(slip_id),
            "GAMEPLAY entry for an unknown slip"
        );
    }
    for &id in &seen.slips {
        let slip = look(store, move |tx| tx.slip(id)).await.expect("slip");
        let entry = gameplay_by_slip.get(&id).map(|v| &v[0]);
        match slip.loyalty_status {
            LoyaltyStatus::Accrued => {
                prop_assert_eq!(slip.status, SlipStatus::Closed);
                let entry = entry.expect("an ACCRUED slip has its entry");
                prop_assert_eq!(slip.ledger_entry_id, Some(entry.id));
                prop_assert_eq!(entry.player_id, slip.player_id);
                prop_assert!(slip.next_retry_at.is_none());
            }
            LoyaltyStatus::Pending => {
                prop_assert_eq!(slip.status, SlipStatus::Closed);
                prop_assert!(entry.is_none(), "a PENDING slip has an entry");
                prop_assert!(slip.ledger_entry_id.is_none());
                prop_assert!(slip.accrual_attempts >= 1);
                prop_assert!(slip.next_retry_at.is_some());
            }
            LoyaltyStatus::None => {
                prop_assert!(slip.status != SlipStatus::Closed);
                prop_assert!(entry.is_none(), "an open slip has an entry");
            }
        }
        // Every accrual reported for the slip names the stored entry, and
        // exactly one of them was not a replay.
        if let Some(results) = seen.accruals.get(&id) {
            let entry = entry.expect("an accrued slip has its entry");
            prop_assert!(results.iter().all(|(e, _)| *e == entry.id));
            prop_assert_eq!(results.iter().filter(|(_, replay)| !replay).count(), 1);
        } else {
            prop_assert!(slip.loyalty_status != LoyaltyStatus::Accrued);
        }
    }

    // Every reward key maps to one entry; exactly one call created it.
    for (key, results) in &seen.rewards {
        let k = key.clone();
        let stored = look(store, move |tx| tx.entry_by_key(&k))
            .await
            .expect("a rewarded key has its entry");
        prop_assert!(results.iter().all(|(e, _)| *e == stored.id), "key {}", key);
        prop_assert_eq!(
            results.iter().filter(|(_, replay)| !replay).count(),
            1,
            "key {}",
            key
        );
        prop_assert!(matches!(
            stored.transaction_type,
            TransactionType::ManualBonus | TransactionType::Adjustment
        ));
    }

    // The outbox: gap-free, one LEDGER_ENTRY_CREATED per entry.
    let evs = events(store).await;
    assert_gap_free(&evs);
    let created = evs
        .iter()
        .filter(|e| e.event_type == "LEDGER_ENTRY_CREATED")
        .count();
    prop_assert_eq!(created, total_entries);
    prop_assert_eq!(all_entries(store).await.len(), total_entries);

    // And the store's own integrity check agrees.
    let (checked, drift, total) = store
        .read(|tx| ops::verify(tx, 100))
        .await
        .map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
    prop_assert_eq!(checked, players.len() as u64);
    prop_assert!(drift.is_empty(), "drift: {:?}", drift);
    prop_assert_eq!(total, 0);
    Ok(())
}

/// DESIGN §9 "point in time": for every player, the balances as of each
/// entry's instant are the running totals after the last entry written at
/// that instant (balance, lifetime and tier from it, escrow summed over the
/// escrow changes so far); nothing before the first entry; today's account
/// for an instant after the last.
async fn check_as_of(store: &Store, players: &[Uuid], now: Timestamp) -> Result<(), TestCaseError> {
    for &p in players {
        let entries = ledger(store, p).await;
        let as_of = |at: Timestamp| look(store, move |tx| tx.balances_as_of(p, at));
        let mut escrow = 0i64;
        for (i, e) in entries.iter().enumerate() {
            escrow += e.escrow_change;
            prop_assert!(
                i == 0 || entries[i - 1].created_at <= e.created_at,
                "entries are written in time order"
            );
            if entries
                .get(i + 1)
                .is_some_and(|n| n.created_at == e.created_at)
            {
                continue;
            }
            let got = as_of(e.created_at).await;
            prop_assert_eq!(
                got,
                Some(loyalty_store::BalancesAsOf {
                    current_balance: e.balance_after,
                    escrow_balance: escrow,
                    lifetime_points: e.lifetime_after,
                    tier: e.tier_after,
                    last_entry_at: e.created_at,
                }),
                "player {} as of entry {}",
                p,
                e.id
            );
        }
        if let Some(first) = entries.first() {
            let before = first.created_at - SignedDuration::from_micros(1);
            prop_assert_eq!(as_of(before).await, None);
        }
        let later = as_of(now + SignedDuration::from_hours(24)).await;
        let acc = account(store, p).await;
        match later {
            Some(b) => {
                prop_assert_eq!(
                    (
                        b.current_balance,
                        b.escrow_balance,
                        b.lifetime_points,
                        b.tier
                    ),
                    (
                        acc.current_balance,
                        acc.escrow_balance,
                        acc.lifetime_points,
                        acc.tier
                    )
                );
            }
            None => prop_assert!(entries.is_empty() && acc.current_balance == 0),
        }
    }
    Ok(())
}
