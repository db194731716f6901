//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`.
//!
//! All writes go through one writer thread. It takes every operation queued
//! while the previous commit was running (up to [`BATCH_OPS_MAX`]) and runs
//! them in one transaction, each inside its own savepoint: an operation that
//! fails is rolled back alone, the rest commit together with one fsync, and
//! only then does any caller hear success (group commit). Reads use a small
//! pool of read-only connections; WAL lets them run beside the writer.

mod prepared;
mod tx;
mod wal;

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{EventRecord, StoreError, StoreResult, Tx};
pub use tx::SqliteTx;
pub use wal::{CHECKPOINT_INTERVAL_MS, WAL_IDLE_MS};
use wal::{WalState, checkpointer_loop, now_ms};

/// Most operations committed by one transaction.
pub const BATCH_OPS_MAX: usize = 512;
/// Most operations waiting for the writer before callers wait to enqueue.
pub const QUEUE_OPS_MAX: usize = 8192;
/// Most concurrent read connections.
pub const READERS_MAX: usize = 8;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_events.sql")),
    (3, include_str!("../../migrations/sqlite/0003_activity.sql")),
    (4, include_str!("../../migrations/sqlite/0004_security.sql")),
    (5, include_str!("../../migrations/sqlite/0005_wallet.sql")),
    (6, include_str!("../../migrations/sqlite/0006_reads.sql")),
    (7, include_str!("../../migrations/sqlite/0007_chain.sql")),
    (
        8,
        include_str!("../../migrations/sqlite/0008_outbox_sequencer.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_slip_corrections.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_escrow_change.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_approvals.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_webhooks.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_event_archives.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_sequencer_function.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_account_chain_head.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_sequencer_skip.sql"),
    ),
];

type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Tx) -> (bool, Finisher) + Send>;

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    jobs: mpsc::Sender<(Priority, Job)>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
    reader_cache_kib: u64,
    stop_checkpointer: Arc<AtomicBool>,
    committed: Arc<CommittedEvents>,
    wal: Arc<WalState>,
}

/// Default of [`SqliteOptions::reader_cache_bytes`]: 16 MiB, what every
/// connection has (the commands that scan everything, export and verify,
/// keep to it; the server asks for more).
pub const READER_CACHE_BYTES_DEFAULT: u64 = 16 << 20;
/// Default of [`SqliteOptions::wal_max_bytes`]: 256 MiB.
pub const WAL_MAX_BYTES_DEFAULT: u64 = 256 << 20;
/// The least a reset write-ahead log is cut back to (`journal_size_limit`
/// is half of [`SqliteOptions::wal_max_bytes`], and at least this): a log
/// that starts over is written again in place, where cutting it to a few
/// MB made every reset's successor allocate (and zero) its blocks anew.
pub const WAL_RESET_BYTES: u64 = 4 << 20;

/// How the embedded store runs.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The write-ahead log is kept below this size under sustained load:
    /// once it holds a quarter of it, the checkpointer makes the writer's
    /// next transaction start the log over (see [`checkpointer_loop`]); the
    /// rest is headroom for the writes that land while a reader delays that.
    pub wal_max_bytes: u64,
    /// Page cache of each read connection, bytes (SQLite's own cache; the
    /// OS caches the file as well). A ledger page visits ~50 rows scattered
    /// over the table: at 10 million entries the B-tree's interior pages
    /// alone outgrow 16 MiB, and every visit then copies them in again.
    pub reader_cache_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            wal_max_bytes: WAL_MAX_BYTES_DEFAULT,
            reader_cache_bytes: READER_CACHE_BYTES_DEFAULT,
        }
    }
}

/// Most events [`CommittedEvents`] holds for its reader; older ones are
/// dropped (the reader notices the gap and reads the outbox).
pub const COMMITTED_EVENTS_MAX: usize = 16_384;

/// The events this process's writer has committed, handed over in memory
/// as each commit lands, in seq order — so the event tail need not read back
/// from the outbox what the writer has just written there. It is a shortcut,
/// not a source: events written by another process (the CLI) are not here,
/// and a reader that finds a gap before an event reads the outbox for it.
/// Nothing is kept until a reader [`CommittedEvents::enable`]s it.
#[derive(Debug, Default)]
pub struct CommittedEvents {
    enabled: AtomicBool,
    queue: Mutex<VecDeque<EventRecord>>,
    ready: tokio::sync::Notify,
}

impl CommittedEvents {
    /// Starts keeping committed events for the reader.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Everything committed since the last call, in seq order.
    pub fn take(&self) -> Vec<EventRecord> {
        match self.queue.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Resolves after the next commit that appended events (or at once if
    /// one landed since the last wait).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    fn push(&self, events: Vec<EventRecord>) {
        if events.is_empty() || !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut q) = self.queue.lock() {
            q.extend(events);
            let excess = q.len().saturating_sub(COMMITTED_EVENTS_MAX);
            q.drain(..excess);
        }
        self.ready.notify_one();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpointer.store(true, Ordering::Relaxed);
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file `loyalty.db` in
    /// `data_dir`, applies migrations and starts the writer thread.
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(data_dir, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with options.
    pub fn open_with(data_dir: &Path, options: SqliteOptions) -> StoreResult<SqliteStore> {
        create_private_dir(data_dir)?;
        let path = data_dir.join("loyalty.db");
        let mut conn = open_conn(&path, false)?;
        migrate(&mut conn)?;
        make_private(data_dir)?;
        let keep = (options.wal_max_bytes / 2).max(WAL_RESET_BYTES);
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {keep};"
        ))
        .map_err(tx::map_err)?;
        let stop_checkpointer = Arc::new(AtomicBool::new(false));
        let wal = Arc::new(WalState::default());
        wal.last_commit_ms.store(now_ms(), Ordering::Relaxed);
        // Set after `wal_autocheckpoint`, which replaces any WAL hook.
        let hook_wal = wal.clone();
        conn.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                hook_wal.committed(u64::try_from(frames).unwrap_or(0));
                Ok(())
            },
        ))
        .map_err(tx::map_err)?;
        let (cp_path, cp_stop, cp_wal) = (path.clone(), stop_checkpointer.clone(), wal.clone());
        let max_bytes = options.wal_max_bytes;
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || checkpointer_loop(cp_path, cp_stop, cp_wal, max_bytes))
            .map_err(|e| StoreError::Internal(format!("cannot start checkpointer: {e}")))?;
        let (jobs, rx) = mpsc::channel::<(Priority, Job)>(QUEUE_OPS_MAX);
        let committed = Arc::new(CommittedEvents::default());
        let writer_committed = committed.clone();
        let writer_wal = wal.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_committed, &writer_wal))
            .map_err(|e| StoreError::Internal(format!("cannot start writer: {e}")))?;
        Ok(SqliteStore {
            path,
            jobs,
            readers: Mutex::new(Vec::new()),
            reader_permits: Semaphore::new(READERS_MAX),
            reader_cache_kib: (options.reader_cache_bytes >> 10).max(1024),
            stop_checkpointer,
            committed,
            wal,
        })
    }

    /// The longest the checkpointer has held the writer's gate, µs, and how
    /// many times it did so to let the write-ahead log start over.
    pub fn wal_stats(&self) -> (u64, u64) {
        (
            self.wal.longest_hold_us.load(Ordering::Relaxed),
            self.wal.resets.load(Ordering::Relaxed),
        )
    }

    /// The in-memory hand-over of committed events (see [`CommittedEvents`]).
    pub fn committed_events(&self) -> Arc<CommittedEvents> {
        self.committed.clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.enqueue(Priority::Request, op).await
    }

    pub(crate) async fn write_background<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.enqueue(Priority::Background, op).await
    }

    async fn enqueue<T, E>(
        &self,
        priority: Priority,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |tx: &mut dyn Tx| {
            let result = op(tx);
            let keep = result.is_ok();
            let finish: Finisher = Box::new(move |commit: StoreResult<()>| {
                let out = match (result, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (Err(e), _) => Err(e),
                };
                let _ = reply.send(out);
            });
            (keep, finish)
        });
        self.jobs
            .send((priority, job))
            .await
            .map_err(|_| E::from(StoreError::Unavailable("the writer has stopped".into())))?;
        answer.await.map_err(|_| {
            E::from(StoreError::Unavailable(
                "the writer dropped an operation".into(),
            ))
        })?
    }

    pub(crate) async fn read<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (_permit, conn) = self.reader().await.map_err(E::from)?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = run_read(&conn, op);
            (conn, result)
        })
        .await
        .map_err(|e| E::from(StoreError::Internal(format!("read task failed: {e}"))))?;
        self.give_back(conn);
        result
    }

    /// [`crate::Store::read_short`]: the read runs on the caller's thread.
    pub(crate) async fn read_in_place<T, E>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let (_permit, conn) = self.reader().await.map_err(E::from)?;
        let result = run_read(&conn, op);
        self.give_back(conn);
        result
    }

    /// A read connection from the pool, or a new one, with the permit that
    /// holds its place among [`READERS_MAX`].
    async fn reader(&self) -> StoreResult<(tokio::sync::SemaphorePermit<'_>, Connection)> {
        let permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        if let Some(c) = self.readers.lock().map_err(poisoned)?.pop() {
            return Ok((permit, c));
        }
        let c = open_conn(&self.path, true)?;
        c.execute_batch(&format!("PRAGMA cache_size = -{};", self.reader_cache_kib))
            .map_err(tx::map_err)?;
        Ok((permit, c))
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Internal("reader pool lock poisoned".into())
}

fn run_read<T, E: From<StoreError>>(
    conn: &Connection,
    op: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
) -> Result<T, E> {
    exec_cached(conn, "BEGIN").map_err(|e| E::from(tx::map_err(e)))?;
    let mut tx = SqliteTx::new(conn);
    let result = op(&mut tx);
    let _ = exec_cached(conn, "COMMIT");
    result
}

/// Creates the data directory readable by its owner only (0700). An
/// existing directory keeps the mode its operator gave it.
fn create_private_dir(dir: &Path) -> StoreResult<()> {
    let cannot = |e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(cannot)?;
    // The mode passed to mkdir is masked by the umask; set it exactly.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(cannot)?;
    Ok(())
}

/// Makes the database files readable and writable by their owner only
/// (0600): the database, its write-ahead log and shared-memory index.
fn make_private(dir: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    for name in ["loyalty.db", "loyalty.db-wal", "loyalty.db-shm"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot restrict {}: {e}", path.display()))
                })?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn open_conn(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(tx::map_err)?;
    // WAL lets readers run beside the writer; FULL makes every commit fsync
    // the WAL before it returns, so an acknowledged write survives a crash.
    // temp_store = MEMORY keeps the savepoint journal (every operation in a
    // batch runs in a savepoint) in memory: on a file it spilled to a temp
    // file that every commit wrote, closed and deleted.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;",
    )
    .map_err(tx::map_err)?;
    // Plans must not depend on bound values: otherwise SQLite re-prepares a
    // statement whenever a parameter it compared with a partial index's
    // condition (or a LIKE pattern) changes — every lookup of an entry by
    // its idempotency key was parsed and planned again.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(tx::map_err)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(tx::map_err)?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this binary ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let t = conn.transaction().map_err(tx::map_err)?;
        t.execute_batch(sql).map_err(tx::map_err)?;
        if *version == 7 {
            backfill_chains(&t)?;
        }
        t.execute_batch(&format!("PRAGMA user_version = {version}"))
            .map_err(tx::map_err)?;
        t.commit().map_err(tx::map_err)?;
        tracing::info!(version, "applied sqlite migration");
    }
    Ok(())
}

/// Schema 7: computes the hash chain of every existing entry, oldest first,
/// with the code that hashes new ones (the append-only guard is lifted for
/// this one transaction and put back).
fn backfill_chains(t: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    use std::collections::HashMap;
    t.execute_batch("DROP TRIGGER ledger_entries_no_update;")
        .map_err(tx::map_err)?;
    let mut heads: HashMap<uuid::Uuid, String> = HashMap::new();
    let mut after = 0i64;
    let mut n = 0u64;
    loop {
        let page: Vec<crate::LedgerEntry> = {
            let mut st = t
                .prepare(&format!(
                    "SELECT {} FROM ledger_entries WHERE seq > ?1 ORDER BY seq LIMIT 10000",
                    crate::rows::ENTRY_COLS_V7
                ))
                .map_err(tx::map_err)?;
            st.query_map([after], tx::sq(crate::rows::entry))
                .map_err(tx::map_err)?
                .collect::<Result<_, _>>()
                .map_err(tx::map_err)?
        };
        if page.is_empty() {
            break;
        }
        let mut up = t
            .prepare("UPDATE ledger_entries SET prev_hash = ?2, hash = ?3 WHERE seq = ?1")
            .map_err(tx::map_err)?;
        for mut e in page {
            e.prev_hash = heads
                .get(&e.player_id)
                .cloned()
                .unwrap_or_else(|| crate::chain::GENESIS.to_string());
            e.hash = crate::chain::entry_hash(&e);
            up.execute(rusqlite::params![e.seq, e.prev_hash, e.hash])
                .map_err(tx::map_err)?;
            after = e.seq;
            n += 1;
            heads.insert(e.player_id, e.hash);
        }
    }
    t.execute_batch(
        "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
         BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
    )
    .map_err(tx::map_err)?;
    tracing::info!(
        entries = n,
        "hash chains computed for existing ledger entries"
    );
    Ok(())
}

/// Whom a write serves: a request waiting for its answer, or background
/// work (event subscribers) that only has to keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Request,
    Background,
}

fn writer_loop(
    conn: Connection,
    mut jobs: mpsc::Receiver<(Priority, Job)>,
    committed: &CommittedEvents,
    wal: &WalState,
) {
    let mut requests: VecDeque<Job> = VecDeque::new();
    let mut background: VecDeque<Job> = VecDeque::new();
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH_OPS_MAX);
    let prepared = prepared::Prepared::new(&conn);
    loop {
        if requests.is_empty() && background.is_empty() {
            match jobs.blocking_recv() {
                Some((p, job)) => queue(&mut requests, &mut background, p, job),
                None => return,
            }
        }
        // Take what is waiting, bounded so the channel keeps its backpressure.
        while requests.len() < BATCH_OPS_MAX && background.len() < BATCH_OPS_MAX {
            match jobs.try_recv() {
                Ok((p, job)) => queue(&mut requests, &mut background, p, job),
                Err(_) => break,
            }
        }
        let n = requests.len().min(BATCH_OPS_MAX);
        batch.extend(requests.drain(..n));
        // One background operation rides along with the requests: it shares
        // their commit (one fsync for both) and adds only its own work.
        if let Some(job) = background.pop_front() {
            batch.push(job);
        }
        // The checkpointer may hold the gate for a moment (see
        // `checkpointer_loop`), and it goes first once it waits (the
        // turnstile); a poisoned lock is no reason to stop writing.
        drop(wal.turnstile.lock());
        let _gate = wal.gate.lock().unwrap_or_else(|p| p.into_inner());
        run_batch(&prepared, &mut batch, committed);
        wal.last_commit_ms.store(now_ms(), Ordering::Relaxed);
    }
}

fn queue(requests: &mut VecDeque<Job>, background: &mut VecDeque<Job>, p: Priority, job: Job) {
    match p {
        Priority::Request => requests.push_back(job),
        Priority::Background => background.push_back(job),
    }
}

/// Savepoint of one operation inside a batch (see [`run_batch`]).
const OP_SAVEPOINT: &str = "SAVEPOINT loyalty_op";
const OP_RELEASE: &str = "RELEASE loyalty_op";
const OP_ROLLBACK: &str = "ROLLBACK TO loyalty_op; RELEASE loyalty_op";

fn run_batch(prepared: &prepared::Prepared<'_>, batch: &mut Vec<Job>, committed: &CommittedEvents) {
    let conn = prepared.conn();
    metrics::histogram!("loyalty_sqlite_batch_ops").record(batch.len() as f64);
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        let err = tx::map_err(e);
        for job in batch.drain(..) {
            // Let the operation see the failure through a failing finisher.
            fail_job(job, err.clone());
        }
        return;
    }
    let mut finishers: Vec<Finisher> = Vec::with_capacity(batch.len());
    let mut events: Vec<EventRecord> = Vec::new();
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        // The first operation of the transaction runs without a savepoint of
        // its own: undoing it is undoing the transaction, which costs
        // nothing beforehand, where a savepoint copies every page the
        // operation changes into its journal. If it fails, the transaction
        // starts over for the rest.
        if finishers.is_empty() && events.is_empty() {
            let mut tx = SqliteTx::on_writer(prepared);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
            match outcome {
                Ok((true, finish)) => {
                    events.extend(tx.into_appended());
                    finishers.push(finish);
                    continue;
                }
                Ok((false, finish)) => {
                    drop(tx);
                    let restarted = restart(conn);
                    finish(Ok(()));
                    if let Err(e) = restarted {
                        return fail_rest(jobs, e);
                    }
                    continue;
                }
                Err(_) => {
                    tracing::error!("a write operation panicked; it was rolled back");
                    drop(tx);
                    if let Err(e) = restart(conn) {
                        return fail_rest(jobs, e);
                    }
                    continue;
                }
            }
        }
        // Every later one has a savepoint with a name of its own, not one of
        // the `Tx` savepoints the operation may nest (and may leave
        // unbalanced if it fails or panics): rolling back to it undoes
        // everything the operation wrote, releasing it keeps everything.
        if exec_cached(conn, OP_SAVEPOINT).is_err() {
            finishers.push(fail_finisher(job));
            continue;
        }
        let mut tx = SqliteTx::on_writer(prepared);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
        match outcome {
            Ok((true, finish)) => match exec_cached(conn, OP_RELEASE) {
                Ok(()) => {
                    events.extend(tx.into_appended());
                    finishers.push(finish);
                }
                Err(e) => {
                    let _ = exec_cached(conn, OP_ROLLBACK);
                    finish(Err(tx::map_err(e)));
                }
            },
            Ok((false, finish)) => {
                let _ = exec_cached(conn, OP_ROLLBACK);
                finish(Ok(()));
            }
            Err(_) => {
                tracing::error!("a write operation panicked; it was rolled back");
                let _ = exec_cached(conn, OP_ROLLBACK);
            }
        }
    }
    let commit = exec_cached(conn, "COMMIT").map_err(tx::map_err);
    if commit.is_err() {
        let _ = exec_cached(conn, "ROLLBACK");
    } else {
        committed.push(events);
    }
    for finish in finishers {
        finish(commit.clone());
    }
}

/// Undoes everything the transaction wrote and begins it again.
fn restart(conn: &Connection) -> StoreResult<()> {
    let _ = exec_cached(conn, "ROLLBACK");
    exec_cached(conn, "BEGIN IMMEDIATE").map_err(tx::map_err)
}

/// The transaction could not begin again: every operation still waiting
/// fails (none of them has run).
fn fail_rest(jobs: impl Iterator<Item = Job>, err: StoreError) {
    for job in jobs {
        fail_job(job, err.clone());
    }
}

fn fail_finisher(job: Job) -> Finisher {
    drop(job);
    Box::new(|_| {})
}

fn fail_job(job: Job, _err: StoreError) {
    // Dropping the job drops its reply sender; the caller sees the writer
    // "dropped an operation" and gets an error, never a false success.
    drop(job);
}

/// Runs `;`-separated statements through the statement cache: the writer
/// runs the same few control statements (BEGIN, SAVEPOINT, RELEASE, COMMIT)
/// for every operation, and re-parsing them each time showed in profiles.
pub(crate) fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        conn.prepare_cached(statement)?.execute([])?;
    }
    Ok(())
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn both_backends_migrate_to_the_announced_schema_version() {
        assert_eq!(
            super::MIGRATIONS.last().map(|m| m.0),
            Some(crate::SCHEMA_VERSION)
        );
        let pg: Vec<i64> = crate::postgres::MIGRATION_VERSIONS.to_vec();
        let lite: Vec<i64> = super::MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(pg, lite);
    }
}
