//! The production backend: PostgreSQL, shared by several stateless nodes.
//!
//! Each operation runs in its own READ COMMITTED transaction on a pooled
//! connection (in a blocking thread: the operations are synchronous code
//! written against [`Tx`]). Concurrency safety comes from locks taken by the
//! `Tx` primitives themselves when in a write transaction: `account`, `slip`
//! and `table` read with `FOR UPDATE`; `entry_by_key` and
//! `idempotency_record` first take a transaction-scoped advisory lock on the
//! key, so two nodes racing on one key serialise and the second sees the
//! first's committed result. No row or lock is shared by every write:
//! events are numbered after commit by the [`sequencer`]. Commits use
//! `synchronous_commit = on`.

mod sequencer;
mod tls;
mod tx;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::Client;
use tokio::sync::Semaphore;

use crate::{StoreError, StoreResult, Tx};
pub use tx::PgTx;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_events.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_activity.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_security.sql"),
    ),
    (5, include_str!("../../migrations/postgres/0005_wallet.sql")),
    (6, include_str!("../../migrations/postgres/0006_reads.sql")),
    (7, include_str!("../../migrations/postgres/0007_chain.sql")),
    (
        8,
        include_str!("../../migrations/postgres/0008_outbox_sequencer.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_slip_corrections.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_escrow_change.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_approvals.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_webhooks.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_event_archives.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_sequencer_function.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_account_chain_head.sql"),
    ),
    (
        16,
        include_str!("../../migrations/postgres/0016_sequencer_skip.sql"),
    ),
];

/// The versions of [`MIGRATIONS`], in order.
pub const MIGRATION_VERSIONS: [i64; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// Default number of pooled connections per node.
pub const POOL_SIZE_DEFAULT: usize = 16;

/// One pooled connection with its prepared statements.
pub struct PgConn {
    pub(crate) client: Client,
    pub(crate) statements: std::collections::HashMap<String, postgres::Statement>,
}

/// The PostgreSQL store.
pub struct PgStore {
    target: tls::Target,
    redacted: String,
    idle: Arc<Mutex<Vec<PgConn>>>,
    permits: Semaphore,
    sequencer: sequencer::Sequencer,
    before_commit: BeforeCommit,
}

/// A test's hook into the commit path (see [`PgStore::set_before_commit`]).
pub type BeforeCommitHook = Arc<dyn Fn() -> StoreResult<()> + Send + Sync>;

#[derive(Clone, Default)]
struct BeforeCommit(Arc<Mutex<Option<BeforeCommitHook>>>);

impl BeforeCommit {
    fn run(&self) -> StoreResult<()> {
        let hook = self.0.lock().ok().and_then(|h| h.clone());
        match hook {
            Some(h) => h(),
            None => Ok(()),
        }
    }
}

/// A failed connection attempt, with the driver's reason (and its source:
/// a TLS failure says which check failed).
fn connect_err(e: postgres::Error) -> StoreError {
    let mut message = format!("cannot connect to PostgreSQL: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(&format!(": {text}"));
        }
        source = s.source();
    }
    StoreError::Unavailable(message)
}

fn map_err(e: postgres::Error) -> StoreError {
    tx::map_err(&e)
}

/// Maps a driver error to a storage error (for other modules of this crate).
pub(crate) fn tx_map_err(e: &postgres::Error) -> StoreError {
    tx::map_err(e)
}

impl PgStore {
    /// Connects (checking the server answers) and applies migrations.
    pub fn open(url: &str, pool_size: usize) -> StoreResult<PgStore> {
        let mut target = tls::Target::parse(url)?;
        target.config.connect_timeout(Duration::from_secs(5));
        target
            .config
            .options("-c synchronous_commit=on -c statement_timeout=30000");
        target.config.application_name("loyalty");
        let redacted = redact(url);
        let mut conn = PgStore::connect_with(&target)?;
        migrate(&mut conn.client)?;
        let store = PgStore {
            sequencer: sequencer::Sequencer::start(target.clone()),
            target,
            redacted,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Semaphore::new(pool_size.max(1)),
            before_commit: BeforeCommit::default(),
        };
        store.put_back(conn);
        Ok(store)
    }

    /// The URL without its password.
    pub fn describe(&self) -> &str {
        &self.redacted
    }

    fn connect(&self) -> StoreResult<PgConn> {
        PgStore::connect_with(&self.target)
    }

    fn connect_with(target: &tls::Target) -> StoreResult<PgConn> {
        let client = target.connect().map_err(connect_err)?;
        Ok(PgConn {
            client,
            statements: Default::default(),
        })
    }

    fn take(&self) -> StoreResult<PgConn> {
        let idle = self
            .idle
            .lock()
            .map_err(|_| StoreError::Internal("pool lock poisoned".into()))?
            .pop();
        match idle {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => self.connect(),
        }
    }

    fn put_back(&self, conn: PgConn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    async fn run<T, E>(
        &self,
        write: bool,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| E::from(StoreError::Unavailable("store closed".into())))?;
        let (idle, target) = (self.idle.clone(), self.target.clone());
        let before_commit = self.before_commit.clone();
        // A write counts as running until its transaction has ended: the
        // sequencer's passes wait a moment for running writes (see
        // `sequencer::GATHER_MAX`).
        let writing = write.then(|| self.sequencer.writing());
        // Everything that touches a blocking client — connecting, running,
        // returning or dropping it — happens on a blocking thread: the
        // `postgres` client drives its own runtime and must not be dropped
        // on an async worker.
        let ran = tokio::task::spawn_blocking(move || {
            let pooled = idle.lock().ok().and_then(|mut v| v.pop());
            let mut conn = match pooled {
                Some(c) if !c.client.is_closed() => c,
                _ => {
                    let client = match target.connect() {
                        Ok(c) => c,
                        Err(e) => return (Err(E::from(connect_err(e))), None),
                    };
                    PgConn {
                        client,
                        statements: Default::default(),
                    }
                }
            };
            let result = run_in_tx(&mut conn, write, op, &before_commit);
            if !conn.client.is_closed()
                && let Ok(mut pool) = idle.lock()
            {
                pool.push(conn);
            }
            result
        })
        .await;
        drop(writing);
        let (result, newest_pending) =
            ran.map_err(|e| E::from(StoreError::Internal(format!("database task failed: {e}"))))?;
        if let Some(newest) = newest_pending {
            // Acknowledge only once the events have their public numbers.
            self.sequencer.committed(newest).await;
        }
        result
    }

    pub(crate) async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(true, op).await
    }

    pub(crate) async fn read<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(false, op).await
    }

    /// Blocking helper for tools and tests: one connection outside the pool.
    pub fn raw_client(&self) -> StoreResult<Client> {
        Ok(self.take()?.client)
    }

    /// Sets how long a sequencer pass may wait for this node's running
    /// writes (default `sequencer::GATHER_MAX`). For tests.
    #[doc(hidden)]
    pub fn set_sequencer_gather(&self, max: std::time::Duration) {
        self.sequencer.set_gather_max(max);
    }

    /// Sequencer passes run for writers that numbered at least one event.
    /// For tests.
    #[doc(hidden)]
    pub fn sequencer_moving_passes(&self) -> u64 {
        self.sequencer.moving_passes()
    }

    /// Runs `hook` in every write transaction after its events are written
    /// and before it commits; an error rolls the transaction back. For
    /// tests that hold a transaction at its most contended moment (or make
    /// it fail there); `None` removes the hook.
    #[doc(hidden)]
    pub fn set_before_commit(&self, hook: Option<BeforeCommitHook>) {
        if let Ok(mut h) = self.before_commit.0.lock() {
            *h = hook;
        }
    }
}

/// Runs `op` in a transaction; also gives the largest `outbox_pending` id
/// its commit wrote, if it wrote events.
fn run_in_tx<T, E: From<StoreError>>(
    conn: &mut PgConn,
    write: bool,
    op: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    before_commit: &BeforeCommit,
) -> (Result<T, E>, Option<i64>) {
    let begin = if write {
        "BEGIN ISOLATION LEVEL READ COMMITTED"
    } else {
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    };
    if let Err(e) = conn.client.batch_execute(begin) {
        return (Err(E::from(map_err(e))), None);
    }
    let mut tx = PgTx::new(conn, write);
    let result = op(&mut tx).and_then(|v| {
        let newest_pending = tx.flush_events().map_err(E::from)?;
        if write {
            before_commit.run().map_err(E::from)?;
        }
        Ok((v, newest_pending))
    });
    match result {
        Ok((v, newest_pending)) => match conn.client.batch_execute("COMMIT") {
            Ok(()) => (Ok(v), newest_pending),
            Err(e) => (Err(E::from(map_err(e))), None),
        },
        Err(e) => {
            let _ = conn.client.batch_execute("ROLLBACK");
            (Err(e), None)
        }
    }
}

fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut t = client.transaction().map_err(map_err)?;
    // Serialise nodes starting at once.
    t.batch_execute(
        "SELECT pg_advisory_xact_lock(7411001);
         CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
    )
    .map_err(map_err)?;
    let current: i64 = t
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .map_err(map_err)?
        .get(0);
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this binary ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        t.batch_execute(sql).map_err(map_err)?;
        if *version == 7 {
            backfill_chains(&mut t)?;
        }
        t.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(map_err)?;
        tracing::info!(version, "applied postgres migration");
    }
    t.commit().map_err(map_err)
}

/// Schema 7: computes the hash chain of every existing entry, oldest first,
/// with the code that hashes new ones (the append-only trigger is disabled
/// for this one transaction).
fn backfill_chains(t: &mut postgres::Transaction<'_>) -> StoreResult<()> {
    use std::collections::HashMap;
    t.batch_execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update")
        .map_err(map_err)?;
    let mut heads: HashMap<uuid::Uuid, String> = HashMap::new();
    let mut after = 0i64;
    let mut n = 0u64;
    let select = format!(
        "SELECT {} FROM ledger_entries WHERE seq > $1 ORDER BY seq LIMIT 10000",
        crate::rows::ENTRY_COLS_V7
    );
    loop {
        let rows = t.query(select.as_str(), &[&after]).map_err(map_err)?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let mut e = crate::rows::entry(&r)?;
            e.prev_hash = heads
                .get(&e.player_id)
                .cloned()
                .unwrap_or_else(|| crate::chain::GENESIS.to_string());
            e.hash = crate::chain::entry_hash(&e);
            t.execute(
                "UPDATE ledger_entries SET prev_hash = $2, hash = $3 WHERE seq = $1",
                &[&e.seq, &e.prev_hash, &e.hash],
            )
            .map_err(map_err)?;
            after = e.seq;
            n += 1;
            heads.insert(e.player_id, e.hash);
        }
    }
    t.batch_execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update")
        .map_err(map_err)?;
    tracing::info!(
        entries = n,
        "hash chains computed for existing ledger entries"
    );
    Ok(())
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Close idle connections off any async worker (see `run`).
        let idle = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_version_list_is_the_migrations() {
        let v: Vec<i64> = super::MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(v, super::MIGRATION_VERSIONS);
    }
}
