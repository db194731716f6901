//! Helpers shared by the contract tests. Everything goes through `Store`,
//! `Tx` and `ops`, never through a backend's internals.

use std::sync::Arc;

use jiff::Timestamp;
use loyalty_core::{EventType, GameSettings, TierTable, TransactionType};
use loyalty_store::ops::{self, EntrySpec, ManualReward, OpCtx, OpError};
use loyalty_store::{
    Account, EntryQuery, EventRecord, GameTable, LedgerEntry, NewEvent, Player, Store, StoreResult,
    Tx,
};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A fixed, whole-second epoch for test clocks (stored times are µs).
pub const EPOCH_S: i64 = 1_750_000_000;

/// `EPOCH_S + secs` as a timestamp.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(EPOCH_S + secs).expect("valid test time")
}

/// A plain event numbered `n` (type `SOMETHING_HAPPENED`, at `at(n)`).
pub fn plain_event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "SOMETHING_HAPPENED",
        version: 1,
        occurred_at: at(n),
        correlation_id: format!("corr-{n}"),
        idempotency_key: None,
        source: "contract_test",
        payload: loyalty_core::events::Payload::of(&serde_json::json!({"n": n})),
    }
}

/// A context at `now` with a fresh correlation id, default tiers, no staff.
pub fn ctx(now: Timestamp) -> OpCtx {
    OpCtx {
        now,
        correlation_id: format!("test-{}", Uuid::new_v4().simple()),
        idempotency_key: None,
        staff_id: None,
        tiers: Arc::new(TierTable::default()),
        fail_accrual: false,
    }
}

/// An exact decimal.
pub fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

/// Blackjack at 2.7 % edge, 60 rounds an hour, default rate, multiplier and
/// seats: one hour at an average bet of 100 earns 100 × 2.7 % × 60 × 10 =
/// 1,620 points at BRONZE.
pub fn blackjack() -> GameSettings {
    GameSettings {
        house_edge: dec("2.7"),
        average_rounds_per_hour: 60,
        points_conversion_rate: dec("10"),
        point_multiplier: dec("1"),
        seats_available: 7,
    }
}

/// Runs an operation in one write transaction.
pub async fn op<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    store.write(f).await
}

/// Waits until every operation submitted before has committed or rolled
/// back. The caller of a failed operation may hear of the failure before the
/// batch it ran in commits; a read after this barrier sees what it left.
pub async fn barrier(store: &Store) {
    op(store, |_| Ok(())).await.expect("barrier write");
}

/// Runs a read and unwraps it.
pub async fn look<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&mut dyn Tx) -> StoreResult<T> + Send + 'static,
) -> T {
    store.read(f).await.expect("read")
}

/// Creates a player (no card) at `now`.
pub async fn new_player(store: &Store, now: Timestamp) -> Player {
    let c = ctx(now);
    op(store, move |tx| {
        ops::create_player(tx, &c, name("Test Player"), None)
    })
    .await
    .expect("create player")
}

/// Creates a table at `now`.
pub async fn new_table(store: &Store, now: Timestamp, settings: GameSettings) -> GameTable {
    let c = ctx(now);
    op(store, move |tx| {
        ops::create_table(tx, &c, name("BJ-1"), name("blackjack"), settings)
    })
    .await
    .expect("create table")
}

/// A player's account (after a [`barrier`]); panics if missing.
pub async fn account(store: &Store, player_id: Uuid) -> Account {
    barrier(store).await;
    look(store, move |tx| tx.account(player_id))
        .await
        .expect("account exists")
}

/// Every entry matching `query` (its `limit` is the page size), newest first,
/// walking the `before_seq` cursor.
pub async fn walk(store: &Store, query: EntryQuery) -> Vec<LedgerEntry> {
    assert!(query.limit > 0, "page size must be positive");
    let mut out: Vec<LedgerEntry> = Vec::new();
    let mut q = query;
    loop {
        let page = {
            let q = q.clone();
            look(store, move |tx| tx.entries(&q)).await
        };
        assert!(page.len() <= q.limit as usize, "page larger than its limit");
        let Some(last) = page.last() else { break };
        q.before_seq = Some(last.seq);
        let short = page.len() < q.limit as usize;
        out.extend(page);
        if short {
            break;
        }
    }
    out
}

/// A player's entries (after a [`barrier`]), oldest first.
pub async fn ledger(store: &Store, player_id: Uuid) -> Vec<LedgerEntry> {
    barrier(store).await;
    let mut v = walk(
        store,
        EntryQuery {
            player_id: Some(player_id),
            limit: 100,
            ..EntryQuery::default()
        },
    )
    .await;
    v.reverse();
    v
}

/// Every entry (after a [`barrier`]), oldest first.
pub async fn all_entries(store: &Store) -> Vec<LedgerEntry> {
    barrier(store).await;
    let mut v = walk(
        store,
        EntryQuery {
            limit: 500,
            ..EntryQuery::default()
        },
    )
    .await;
    v.reverse();
    v
}

/// The whole outbox (after a [`barrier`]) in sequence order.
pub async fn events(store: &Store) -> Vec<EventRecord> {
    barrier(store).await;
    let mut out: Vec<EventRecord> = Vec::new();
    loop {
        let after = out.last().map(|e| e.seq).unwrap_or(0);
        let page = look(store, move |tx| tx.events(after, 500, None)).await;
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Asserts the outbox sequence is strictly increasing without gaps.
pub fn assert_gap_free(events: &[EventRecord]) {
    for w in events.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "event sequence has a gap or is out of order: {} then {}",
            w[0].seq,
            w[1].seq
        );
    }
}

/// A manual reward input.
pub fn reward_input(player_id: Uuid, points: i64, key: &str, staff_id: Uuid) -> ManualReward {
    ManualReward {
        player_id: loyalty_core::PlayerId::of(player_id),
        points: crate::support::points(points),
        reason: reason("contract test reward"),
        staff_id: loyalty_core::StaffId::of(staff_id),
        rating_slip_id: None,
        key: key.into(),
    }
}

/// Grants a manual reward (or adjustment).
pub async fn reward(
    store: &Store,
    c: &OpCtx,
    player_id: Uuid,
    points: i64,
    key: &str,
    staff_id: Uuid,
) -> Result<(LedgerEntry, bool), OpError> {
    let c = c.clone();
    let input = reward_input(player_id, points, key, staff_id);
    op(store, move |tx| ops::manual_reward(tx, &c, input)).await
}

/// An entry spec with only the essentials set.
pub fn spec(player_id: Uuid, transaction_type: TransactionType, points_change: i64) -> EntrySpec {
    EntrySpec {
        player_id,
        transaction_type,
        event_type: EventType::PointsUpdateRequested,
        points_change,
        reason: None,
        staff_id: None,
        rating_slip_id: None,
        idempotency_key: None,
        escrow_id: None,
        escrow_change: 0,
        approved_by: None,
    }
}

/// Applies one ledger entry in its own transaction.
pub async fn apply(store: &Store, c: &OpCtx, spec: EntrySpec) -> Result<LedgerEntry, OpError> {
    let c = c.clone();
    op(store, move |tx| ops::apply_entry(tx, &c, spec)).await
}

/// Runs raw SQL against the store's database, behind its back: only for
/// tests that corrupt data on purpose to prove verification finds it.
pub async fn raw_sql(store: &Store, sql: &str) {
    let sql = sql.to_string();
    let store = store.clone();
    tokio::task::spawn_blocking(move || match &store {
        Store::Sqlite(s) => {
            let conn = rusqlite::Connection::open(s.path()).expect("open the database file");
            conn.execute_batch(&sql).expect("raw sql");
        }
        Store::Postgres(p) => {
            let mut client = p.raw_client().expect("connect");
            client.batch_execute(&sql).expect("raw sql");
        }
    })
    .await
    .expect("raw sql task");
}

/// A name for test input (valid by construction).
pub fn name(v: &str) -> loyalty_core::Name {
    loyalty_core::Name::new(v).expect("a valid test name")
}

/// A reason for test input (valid by construction).
pub fn reason(v: &str) -> loyalty_core::Reason {
    loyalty_core::Reason::new(v, 1).expect("a valid test reason")
}

/// A card number for test input.
pub fn card(v: &str) -> loyalty_core::CardNumber {
    loyalty_core::CardNumber::new(v).expect("a valid test card number")
}

/// An average bet for test input.
pub fn bet(v: &str) -> loyalty_core::AverageBet {
    loyalty_core::AverageBet::new(dec(v)).expect("a valid test bet")
}

/// Points for test input.
pub fn points(v: i64) -> loyalty_core::Points {
    loyalty_core::Points::new(v).expect("points within range")
}
