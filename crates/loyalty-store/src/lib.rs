//! Storage for Loyalty Ledger.
//!
//! * [`Tx`] — the primitive reads and writes of one transaction. Every backend
//!   implements it; nothing outside this crate writes SQL.
//! * [`Store`] — a handle to a backend that runs closures over a [`Tx`]:
//!   [`Store::write`] runs one operation atomically and durably (the result is
//!   returned only after the commit is on disk), [`Store::read`] runs a
//!   read-only snapshot.
//! * [`ops`] — the transactional operations (complete a slip, grant a reward,
//!   apply a ledger entry …), written once against [`Tx`], so both backends
//!   behave the same by construction.
//!
//! The embedded backend ([`sqlite`]) funnels all writes through one writer
//! thread that commits them in groups: operations queued while a commit is
//! running share the next fsync, each inside its own savepoint so one failure
//! never affects another.
#![warn(missing_docs)]

pub mod chain;
pub mod dispatch;
mod entry_json;
pub mod ops;
pub mod postgres;
pub mod records;
mod rows;
mod savepoints;
mod sql;
pub mod sqlite;
pub mod transfer;

use std::sync::Arc;

pub use dispatch::{
    Alert, DeadLetter, DeadLetterQuery, DeadLetterStatus, FeedItem, NewDeadLetter, Webhook,
    WebhookDelivery,
};
pub use records::*;
use uuid::Uuid;

/// The schema version this build creates and expects (both backends carry
/// the same numbered migrations).
pub const SCHEMA_VERSION: i64 = 16;

/// Failures of the storage layer itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. card number taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage is unreachable or shutting down.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupted data.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Result of storage primitives.
pub type StoreResult<T> = Result<T, StoreError>;

/// The primitive operations of one transaction.
///
/// Reads see the transaction's own writes. In the PostgreSQL backend
/// `account` locks the row; in SQLite the writer already holds the database
/// write lock.
pub trait Tx {
    /// Inserts a staff member.
    fn insert_staff(&mut self, staff: &Staff) -> StoreResult<()>;
    /// A staff member by id.
    fn staff(&mut self, id: Uuid) -> StoreResult<Option<Staff>>;
    /// Stores a token hash for a subject.
    fn insert_token(
        &mut self,
        hash: &str,
        subject: TokenSubject,
        at: jiff::Timestamp,
    ) -> StoreResult<()>;
    /// Looks a token hash up; a revoked token is not found.
    fn token(&mut self, hash: &str) -> StoreResult<Option<TokenSubject>>;
    /// Revokes one token; false if there is no such live token.
    fn revoke_token(&mut self, hash: &str, at: jiff::Timestamp) -> StoreResult<bool>;
    /// Revokes every live token of a subject; returns how many.
    fn revoke_subject_tokens(
        &mut self,
        subject: TokenSubject,
        at: jiff::Timestamp,
    ) -> StoreResult<u64>;
    /// Marks a staff member disabled (the first time only); false if no such staff.
    fn disable_staff(&mut self, id: Uuid, at: jiff::Timestamp) -> StoreResult<bool>;
    /// The server key `name`: stores `candidate` if there is none yet, and
    /// returns the stored one (so every process on the database agrees).
    fn server_key(
        &mut self,
        name: &str,
        candidate: &str,
        at: jiff::Timestamp,
    ) -> StoreResult<String>;

    /// Inserts a player; `Conflict` if the card number is taken.
    fn insert_player(&mut self, player: &Player) -> StoreResult<()>;
    /// A player by id.
    fn player(&mut self, id: Uuid) -> StoreResult<Option<Player>>;
    /// Inserts a loyalty account.
    fn insert_account(&mut self, account: &Account) -> StoreResult<()>;
    /// A loyalty account (locked for update where the backend needs it).
    fn account(&mut self, player_id: Uuid) -> StoreResult<Option<Account>>;
    /// Overwrites a loyalty account's balances.
    fn update_account(&mut self, account: &Account) -> StoreResult<()>;

    /// Inserts a table.
    fn insert_table(&mut self, table: &GameTable) -> StoreResult<()>;
    /// A table by id (locked until commit in a write transaction, on
    /// backends that lock rows: for changing it).
    fn table(&mut self, id: Uuid) -> StoreResult<Option<GameTable>>;
    /// A table by id, never locked: for copying its settings (opening a
    /// slip), so that slips opened at one busy table do not queue behind
    /// each other. A concurrent change of the table is ordered after the
    /// copy, which is what a slip opened just before the change sees anyway.
    fn table_unlocked(&mut self, id: Uuid) -> StoreResult<Option<GameTable>> {
        self.table(id)
    }
    /// What opening a slip reads: whether the player exists, and the table
    /// as [`Tx::table_unlocked`] reads it. PostgreSQL answers both in one
    /// statement (one round trip instead of two).
    fn slip_subjects(
        &mut self,
        player_id: Uuid,
        table_id: Uuid,
    ) -> StoreResult<(bool, Option<GameTable>)> {
        Ok((
            self.player(player_id)?.is_some(),
            self.table_unlocked(table_id)?,
        ))
    }
    /// Overwrites a table.
    fn update_table(&mut self, table: &GameTable) -> StoreResult<()>;

    /// Inserts a rating slip.
    fn insert_slip(&mut self, slip: &RatingSlip) -> StoreResult<()>;
    /// A rating slip by id.
    fn slip(&mut self, id: Uuid) -> StoreResult<Option<RatingSlip>>;
    /// Overwrites a rating slip.
    fn update_slip(&mut self, slip: &RatingSlip) -> StoreResult<()>;
    /// Ids of closed slips whose loyalty is pending and due for a retry.
    fn pending_slips(&mut self, due_at: jiff::Timestamp, limit: u32) -> StoreResult<Vec<Uuid>>;

    /// Appends a ledger entry; returns its sequence number. `Conflict` if the
    /// idempotency key or the slip's GAMEPLAY entry already exists.
    fn insert_entry(&mut self, entry: &LedgerEntry) -> StoreResult<i64>;
    /// A ledger entry by id.
    fn entry(&mut self, id: Uuid) -> StoreResult<Option<LedgerEntry>>;
    /// The ledger entry written under an idempotency key.
    fn entry_by_key(&mut self, key: &str) -> StoreResult<Option<LedgerEntry>>;
    /// Every player's chain head as of ledger position `up_to_seq` — the
    /// hash of their newest entry at or before it — in the order of the
    /// player id's text; players with no entry then are left out. Streams.
    fn chain_heads(
        &mut self,
        up_to_seq: i64,
        visit: &mut dyn FnMut(Uuid, String),
    ) -> StoreResult<()>;
    /// The `hash` of the player's newest entry ([`chain::GENESIS`] if none).
    fn chain_head(&mut self, player_id: Uuid) -> StoreResult<String>;
    /// A player's balances as they were at `at`, from the entries written
    /// then (`created_at <= at`): the newest one's balance, lifetime points
    /// and tier, and the sum of their escrow changes. `None` if the player
    /// had no entry yet.
    fn balances_as_of(
        &mut self,
        player_id: Uuid,
        at: jiff::Timestamp,
    ) -> StoreResult<Option<BalancesAsOf>>;
    /// A page of ledger entries, newest first.
    fn entries(&mut self, query: &EntryQuery) -> StoreResult<Vec<LedgerEntry>>;

    /// Appends an event to the outbox. Its sequence number is assigned in
    /// commit order (PostgreSQL assigns it as the transaction commits, so
    /// that the sequence lock is always the last lock a transaction takes).
    fn append_event(&mut self, event: NewEvent) -> StoreResult<()>;
    /// Events after a sequence number, in order.
    fn events(
        &mut self,
        after_seq: i64,
        limit: u32,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<EventRecord>>;

    /// A stored idempotent response.
    fn idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Stores an idempotent response.
    fn insert_idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> StoreResult<()>;
    /// Deletes idempotency records created before `before`; returns how many.
    fn purge_idempotency_records(&mut self, before: jiff::Timestamp) -> StoreResult<u64>;

    /// Opens a nested savepoint.
    fn savepoint(&mut self) -> StoreResult<()>;
    /// Rolls back to and releases the innermost savepoint.
    fn rollback_savepoint(&mut self) -> StoreResult<()>;
    /// Releases (keeps) the innermost savepoint.
    fn release_savepoint(&mut self) -> StoreResult<()>;

    /// Checks every account against its ledger, streaming; calls `drift` for
    /// each disagreement and returns the number of accounts checked.
    fn verify_accounts(&mut self, drift: &mut dyn FnMut(Drift)) -> StoreResult<u64>;

    // ------------------------------------------------------------ event dispatch

    /// The highest outbox sequence number committed (0 when empty).
    fn outbox_head(&mut self) -> StoreResult<i64>;
    /// [`Tx::outbox_head`], or `None` while committed events still wait
    /// for their numbers (PostgreSQL's sequencer has not moved them yet):
    /// a reader that must have seen every committed event cannot tell from
    /// the head alone then.
    fn settled_outbox_head(&mut self) -> StoreResult<Option<i64>> {
        self.outbox_head().map(Some)
    }
    /// A subscriber's (or relay's) checkpoint: the last seq it fully handled.
    fn checkpoint(&mut self, subscriber: &str) -> StoreResult<Option<i64>>;
    /// The archive files events have moved to, oldest first.
    fn event_archives(&mut self) -> StoreResult<Vec<EventArchive>>;
    /// Records an archive file of the events `first_seq..=last_seq`; it must
    /// continue the last one (`first_seq` one past its `last_seq`, or 1).
    /// From then on those events may be deleted from the outbox.
    fn insert_event_archive(&mut self, a: &EventArchive) -> StoreResult<()>;
    /// Deletes the archived events `first..=last` from the outbox, and the
    /// activity-feed items (player, seq) that point at them. Refused (by the
    /// schema) for an event no archive covers. Returns events deleted.
    fn delete_archived_events(
        &mut self,
        first: i64,
        last: i64,
        activity: &[(Uuid, i64)],
    ) -> StoreResult<u64>;
    /// The oldest event still in the outbox, if any.
    fn first_outbox_seq(&mut self) -> StoreResult<Option<i64>>;
    /// The subscribers' checkpoints by name.
    fn checkpoints(&mut self) -> StoreResult<Vec<(String, i64)>>;
    /// The lowest event seq a dead letter waiting for a replay (status DEAD
    /// or REPLAY_REQUESTED) names, if any.
    fn oldest_unreplayed_dead_letter(&mut self) -> StoreResult<Option<i64>>;
    /// Moves a checkpoint forward to `seq` (never back), creating it if needed.
    fn set_checkpoint(
        &mut self,
        subscriber: &str,
        seq: i64,
        at: jiff::Timestamp,
    ) -> StoreResult<()>;
    /// Records (or re-records, as DEAD) a dead letter; returns its id.
    fn upsert_dead_letter(&mut self, dead: &NewDeadLetter) -> StoreResult<i64>;
    /// Dead letters, oldest first.
    fn dead_letters(&mut self, query: &DeadLetterQuery) -> StoreResult<Vec<DeadLetter>>;
    /// One dead letter.
    fn dead_letter(&mut self, id: i64) -> StoreResult<Option<DeadLetter>>;
    /// Changes a dead letter's status (and, if given, its error and attempts).
    fn update_dead_letter(
        &mut self,
        id: i64,
        status: DeadLetterStatus,
        error: Option<&str>,
        attempts: Option<u32>,
        at: jiff::Timestamp,
    ) -> StoreResult<()>;
    /// Takes or renews the lease `name` for `holder` for `ttl_ms` by the
    /// database's clock; false if another holder's lease has not expired.
    fn try_lease(&mut self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool>;
    /// Gives the lease up if `holder` has it.
    fn release_lease(&mut self, name: &str, holder: &str) -> StoreResult<()>;
    /// Adds a feed item; false if the feed already has this event.
    fn insert_feed_item(&mut self, item: &FeedItem) -> StoreResult<bool>;
    /// A player's feed, newest first, items with `event_seq < before_seq`.
    fn feed_items(
        &mut self,
        feed: &str,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<FeedItem>>;
    /// Adds an event to a player's activity feed; false if it is there already.
    fn insert_activity_item(&mut self, player_id: Uuid, event_seq: i64) -> StoreResult<bool>;
    /// Adds many events to players' activity feeds (those already there
    /// stay as they are): one statement on PostgreSQL, where a round trip
    /// per item was most of their cost.
    fn insert_activity_items(&mut self, items: &[(Uuid, i64)]) -> StoreResult<()> {
        items
            .iter()
            .try_for_each(|(player, seq)| self.insert_activity_item(*player, *seq).map(|_| ()))
    }
    /// A player's activity feed: its events, newest first, with
    /// `seq < before_seq`.
    fn activity_events(
        &mut self,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Manual rewards and adjustments by `staff_id` created in
    /// `(after, up_to]` with ledger seq at most `up_to_seq`.
    fn count_manual_rewards(
        &mut self,
        staff_id: Uuid,
        after: jiff::Timestamp,
        up_to: jiff::Timestamp,
        up_to_seq: i64,
    ) -> StoreResult<i64>;
    /// Requests for dual control made by `staff_id` in `(after, up_to]`.
    fn count_approval_requests(
        &mut self,
        staff_id: Uuid,
        after: jiff::Timestamp,
        up_to: jiff::Timestamp,
    ) -> StoreResult<i64>;
    /// Records a new approval request.
    fn insert_approval(&mut self, a: &Approval) -> StoreResult<()>;
    /// An approval by id (locked until commit in a write transaction, on
    /// backends that lock rows).
    fn approval(&mut self, id: Uuid) -> StoreResult<Option<Approval>>;
    /// The approval request with this reward key.
    fn approval_by_key(&mut self, key: &str) -> StoreResult<Option<Approval>>;
    /// Overwrites an approval's decision fields and status.
    fn update_approval(&mut self, a: &Approval) -> StoreResult<()>;
    /// Approvals, newest first, before the cursor: with `status`, only those
    /// in it at `now` (a PENDING one past `expires_at` counts as EXPIRED).
    fn approvals(
        &mut self,
        status: Option<&str>,
        now: jiff::Timestamp,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Approval>>;
    /// Records an alert; false if one exists for its triggering event.
    fn insert_alert(&mut self, alert: &Alert) -> StoreResult<bool>;
    /// The most recent alert of `kind` for a staff member.
    fn latest_alert(&mut self, kind: &str, staff_id: Uuid) -> StoreResult<Option<Alert>>;
    /// Alerts, newest first, those recorded before the cursor `before_seq`;
    /// each with its paging position.
    fn alerts(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<(i64, Alert)>>;

    // ------------------------------------------------------------ webhooks

    /// Registers a webhook endpoint.
    fn insert_webhook(&mut self, w: &Webhook) -> StoreResult<()>;
    /// A webhook endpoint, deleted or not.
    fn webhook(&mut self, id: Uuid) -> StoreResult<Option<Webhook>>;
    /// The endpoints not deleted, in registration order.
    fn webhooks(&mut self) -> StoreResult<Vec<Webhook>>;
    /// Marks an endpoint deleted; false if it was not live.
    fn delete_webhook(&mut self, id: Uuid, at: jiff::Timestamp) -> StoreResult<bool>;
    /// Records one delivery attempt.
    fn insert_webhook_delivery(&mut self, d: &WebhookDelivery) -> StoreResult<()>;
    /// An endpoint's delivery attempts, newest first, with ids below
    /// `before_id`.
    fn webhook_deliveries(
        &mut self,
        webhook_id: Uuid,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;

    /// The database's clock, and the shared test clock if one was set —
    /// `None` for a backend with no clock shared between nodes (SQLite).
    fn db_clock(&mut self) -> StoreResult<Option<DbClock>>;
    /// Shares a test-mode clock setting with every node (no-op for SQLite).
    fn set_test_clock(&mut self, to: jiff::Timestamp) -> StoreResult<()>;

    // ------------------------------------------------------------ wallet

    /// Inserts a merchant.
    fn insert_merchant(&mut self, merchant: &Merchant) -> StoreResult<()>;
    /// A merchant by id (locked for update where the backend needs it).
    fn merchant(&mut self, id: Uuid) -> StoreResult<Option<Merchant>>;
    /// Overwrites a merchant's earnings and update time.
    fn update_merchant(&mut self, merchant: &Merchant) -> StoreResult<()>;
    /// Merchants, newest first, those before `before_seq`.
    fn merchants(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<Merchant>>;
    /// Inserts an escrow; returns its position.
    fn insert_escrow(&mut self, escrow: &Escrow) -> StoreResult<i64>;
    /// An escrow by id (locked for update where the backend needs it).
    fn escrow(&mut self, id: Uuid) -> StoreResult<Option<Escrow>>;
    /// Overwrites an escrow's amounts, status, update time and version.
    fn update_escrow(&mut self, escrow: &Escrow) -> StoreResult<()>;
    /// Escrows, newest first.
    fn escrows(&mut self, query: &EscrowQuery) -> StoreResult<Vec<Escrow>>;
    /// Ids of HELD escrows whose `expires_at` is at or before `now`.
    fn due_escrows(&mut self, now: jiff::Timestamp, limit: u32) -> StoreResult<Vec<Uuid>>;
    /// Runs one of the wallet's verification queries ([`ops::wallet`]):
    /// every column is text or a 64-bit integer.
    fn wallet_rows(&mut self, sql: &'static str) -> StoreResult<Vec<Vec<Cell>>> {
        self.shared_rows(sql, &[])
    }
    /// Runs a query whose text is the same on every backend (verification,
    /// reports): integer parameters `$1`, `$2`, … each first mentioned in
    /// that order; every column text or a 64-bit integer.
    fn shared_rows(&mut self, sql: &'static str, params: &[i64]) -> StoreResult<Vec<Vec<Cell>>>;

    // ------------------------------------------------------------ reads

    /// Players whose card number starts with `q` or whose name contains it
    /// (case-insensitive); every player without `q`. Newest first, those
    /// with an id below `before_id`.
    fn search_players(
        &mut self,
        q: Option<&str>,
        before_id: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Player>>;
    /// Tables, newest first, those with an id below `before_id`.
    fn tables(&mut self, before_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<GameTable>>;
    /// Rating slips, newest first.
    fn slips(&mut self, query: &SlipQuery) -> StoreResult<Vec<RatingSlip>>;
    /// Manual rewards and adjustments created in `[from, to)`, counted per
    /// staff member and bucket of `bucket_us` microseconds (from the epoch).
    fn reward_buckets(
        &mut self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        bucket_us: i64,
    ) -> StoreResult<Vec<RewardBucket>>;

    /// The newest ledger entry's sequence number (0 if none).
    fn last_entry_seq(&mut self) -> StoreResult<i64>;
    /// Ledger entries with `after_seq < seq <= up_to_seq`, oldest first,
    /// optionally only those created in `[from, to)` — the export's pages.
    fn entries_ascending(
        &mut self,
        after_seq: i64,
        up_to_seq: i64,
        from: Option<jiff::Timestamp>,
        to: Option<jiff::Timestamp>,
        limit: u32,
    ) -> StoreResult<Vec<LedgerEntry>>;
}

/// `q` as a LIKE pattern matching itself literally (`\` escapes).
pub fn like_literal(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One value of a verification query's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Text (ids are read as text on every backend).
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// NULL.
    Null,
}

impl Cell {
    /// The integer (0 for NULL or text).
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(v) => *v,
            _ => 0,
        }
    }
    /// The id in a text cell.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Cell::Text(s) => Uuid::parse_str(s).ok(),
            _ => None,
        }
    }
    /// The text (empty for anything else).
    pub fn text(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            _ => "",
        }
    }
}

/// A reading of the database clock shared by every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbClock {
    /// The database's current time.
    pub now: jiff::Timestamp,
    /// Test mode: (the instant set, the database time when it was set).
    pub test_clock: Option<(jiff::Timestamp, jiff::Timestamp)>,
}

/// A handle to the configured backend. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(Arc<sqlite::SqliteStore>),
    /// PostgreSQL, shared by several nodes.
    Postgres(Arc<postgres::PgStore>),
}

impl Store {
    /// Runs `op` in one durable transaction. `op`'s writes are committed (and
    /// on disk) before this returns `Ok`; if `op` fails nothing it wrote remains.
    pub async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.write(op).await,
            Store::Postgres(s) => s.write(op).await,
        }
    }

    /// The embedded backend's in-memory hand-over of the events its writer
    /// commits (None on PostgreSQL, where other nodes write too).
    pub fn committed_events(&self) -> Option<Arc<sqlite::CommittedEvents>> {
        match self {
            Store::Sqlite(s) => Some(s.committed_events()),
            Store::Postgres(_) => None,
        }
    }

    /// Like [`Store::write`], for background work (event subscribers): the
    /// embedded writer adds at most one such operation to each commit of
    /// waiting requests, so it shares their fsync instead of costing one.
    pub async fn write_background<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.write_background(op).await,
            Store::Postgres(s) => s.write(op).await,
        }
    }

    /// Runs `op` over a read-only snapshot.
    pub async fn read<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.read(op).await,
            Store::Postgres(s) => s.read(op).await,
        }
    }

    /// Runs `op` over a read-only snapshot on the calling thread, for reads
    /// an index bounds: a point lookup, or a page of at most a few hundred
    /// rows found by one index range ([`EntryQuery::index_bounded`]). On
    /// the embedded store such a read takes 10–150 µs, less than handing it
    /// to the blocking pool costs (a context switch each way: a 50-entry
    /// ledger page took 190 µs of server CPU through the pool and 148 µs in
    /// place, a balance 38 and 18). Anything that may scan — exports,
    /// searches, reports, verification — must use [`Store::read`], which
    /// keeps the async workers free. On PostgreSQL this is [`Store::read`].
    pub async fn read_short<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.read_in_place(op).await,
            Store::Postgres(s) => s.read(op).await,
        }
    }

    /// Whether the storage answers.
    pub async fn ping(&self) -> StoreResult<()> {
        self.read(|tx| tx.token("ping").map(|_| ())).await
    }

    /// A short description for logs (never a password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => format!("sqlite:{}", s.path().display()),
            Store::Postgres(s) => s.describe().to_string(),
        }
    }
}
