//! Numbering events after commit (schema 8).
//!
//! A writing transaction appends its events to `outbox_pending`, ordered
//! only by a bigserial id, and commits without touching any shared row. Each
//! node runs one sequencer thread that moves committed pending rows into
//! `outbox`, giving them the public, gap-free `seq` in id order, in one
//! short transaction of its own. Sequencers of all nodes serialise on one
//! advisory lock; writers never take it. Why the result keeps every promise
//! of the event stream is argued in ARCHITECTURE.md ("Event numbering on
//! PostgreSQL"); the short version:
//!
//! * gap-free and never revised: only a sequencer assigns `seq`, one at a
//!   time, taking the batch's numbers from the `outbox_sequence` counter
//!   (which nodes of the previous version also use, so a rolling upgrade
//!   numbers consistently) and committing the rows with their numbers
//!   atomically; an aborted writer's pending rows never become visible, so
//!   they never get a number;
//! * per player in commit order: two writers of one player serialise on the
//!   player's row lock, and events are written at the end of the
//!   transaction, so the later writer's pending ids are larger; a snapshot
//!   that sees the later commit sees the earlier one too, and rows are
//!   numbered in id order.
//!
//! A write is acknowledged only after a sequencer pass that began after its
//! commit has finished (or, since schema 16, after a check that began after
//! its commit found its rows already moved by a committed pass), so a
//! client that reads the event stream after its write finds its events
//! there, as it did when numbers were taken inside the transaction.
//!
//! Passes are gathered the way PostgreSQL's `commit_delay` gathers commits
//! when `commit_siblings` transactions are running: while other writes on
//! this node are still in their transaction, a pass waits for them, up to
//! [`GATHER_MAX`] after the previous pass began, so one pass numbers all of
//! their events. A write with no other write running never waits.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use tokio::sync::watch;

use super::map_err;
use crate::StoreResult;

/// Pending rows moved per sequencer transaction: the LIMIT in
/// `outbox_sequence_pass` (migrations/postgres/0014).
const BATCH_ROWS: i64 = 5_000;
/// How often an idle sequencer looks for rows committed by nodes that died
/// before numbering them.
const IDLE_POLL: Duration = Duration::from_millis(25);
/// The longest a writer waits for its events to be numbered before it
/// answers anyway (its events are committed and will be numbered).
const ACK_WAIT: Duration = Duration::from_secs(2);
/// The longest a pass waits, counted from when the previous one began, for
/// writes still running on this node to commit (see the module docs). Every
/// pass costs PostgreSQL a lock, a counter update and a durable commit;
/// under load (2-core machine, 16 clients) gathering for up to 4 ms cut
/// PostgreSQL's CPU per completion by ~10 % and raised completions/s by
/// 4–5 % on one node and 9–11 % on two, with p99 no higher. 8 ms began to
/// lose throughput at 16 clients: the writers wait longer than they save.
pub(crate) const GATHER_MAX: Duration = Duration::from_millis(4);
/// One sequencer transaction, sent as one simple-protocol message (one
/// round trip): `outbox_sequence_pass(upto)` (schema 16) first looks for a
/// pending row with an id at or below `upto` (the newest id this node's
/// waiting writers committed) and, if there is none, returns at once: every
/// such row was moved by a pass that has committed, which on several nodes
/// is often another node's. Otherwise it runs the schema-14 pass: take the
/// sequencers' lock, move up to [`BATCH_ROWS`] committed pending rows into
/// `outbox`, numbered in id order from the counter row, and report how many
/// moved and the oldest one's age. The functions are VOLATILE PL/pgSQL, so
/// each statement takes a fresh READ COMMITTED snapshot (the check and the
/// move see every batch committed before they run), and their plans are kept
/// for the session: sent as statements, the pass was planned again every
/// time, which cost as much as the move. An empty pass writes nothing (no
/// counter update), so an idle sequencer's polls cost no WAL and no fsync.
fn move_batch_sql(upto: i64) -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT moved_count, oldest_age_s FROM outbox_sequence_pass({upto}::BIGINT);
COMMIT;"
    )
}

struct Shared {
    /// Tickets handed to writers after their commit.
    requested: AtomicU64,
    /// The largest `outbox_pending` id of any writer that took a ticket
    /// (raised before the ticket is taken).
    newest_pending: AtomicI64,
    /// The highest ticket whose pass has finished.
    completed: watch::Sender<u64>,
    /// Write transactions of this node that have not yet ended.
    writing: AtomicUsize,
    /// Set while a pass waits for them ([`gather`]).
    gathering: AtomicBool,
    /// How long a pass may wait for them, µs ([`GATHER_MAX`] unless a test
    /// changes it).
    gather_max_us: AtomicU64,
    /// Passes run for writers' tickets that numbered at least one event.
    moving_passes: AtomicU64,
    wake: Mutex<bool>,
    woken: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        if let Ok(mut w) = self.wake.lock() {
            *w = true;
        }
        self.woken.notify_one();
    }
}

/// This node's sequencer; stops when dropped.
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
}

impl Sequencer {
    /// Starts the sequencer thread (it connects on its own, and reconnects).
    pub(crate) fn start(db: super::tls::Target) -> Sequencer {
        let (completed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            requested: AtomicU64::new(0),
            newest_pending: AtomicI64::new(0),
            completed,
            writing: AtomicUsize::new(0),
            gathering: AtomicBool::new(false),
            gather_max_us: AtomicU64::new(
                u64::try_from(GATHER_MAX.as_micros()).unwrap_or(u64::MAX),
            ),
            moving_passes: AtomicU64::new(0),
            wake: Mutex::new(false),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("outbox-sequencer".into())
            .spawn(move || run(&worker, &db));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the outbox sequencer thread");
        }
        Sequencer { shared }
    }

    /// Sets how long a pass may wait for running writes (tests).
    pub(crate) fn set_gather_max(&self, max: Duration) {
        let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        self.shared.gather_max_us.store(us, Ordering::SeqCst);
    }

    /// Passes run for writers' tickets that numbered at least one event.
    pub(crate) fn moving_passes(&self) -> u64 {
        self.shared.moving_passes.load(Ordering::SeqCst)
    }

    /// Counts a write transaction of this node as running until the guard
    /// is dropped (after its COMMIT or ROLLBACK): passes wait for it.
    pub(crate) fn writing(&self) -> Writing {
        self.shared.writing.fetch_add(1, Ordering::SeqCst);
        Writing {
            shared: self.shared.clone(),
        }
    }

    /// Waits until a pass that began after this call has numbered every
    /// committed pending event up to `newest`, the largest pending id the
    /// writer committed (bounded by [`ACK_WAIT`]). Call after COMMIT.
    pub(crate) async fn committed(&self, newest: i64) {
        // Before the ticket: a pass that reads the ticket reads this too.
        self.shared
            .newest_pending
            .fetch_max(newest, Ordering::SeqCst);
        let ticket = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.shared.completed.subscribe();
        self.shared.wake();
        let waited = tokio::time::timeout(ACK_WAIT, done.wait_for(|c| *c >= ticket)).await;
        if waited.is_err() {
            metrics::counter!("loyalty_outbox_sequencer_ack_timeouts_total").increment(1);
            tracing::warn!("events committed but not yet numbered; answering anyway");
        }
    }
}

/// A running write transaction (see [`Sequencer::writing`]).
pub(crate) struct Writing {
    shared: Arc<Shared>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let last = self.shared.writing.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && self.shared.gathering.load(Ordering::SeqCst) {
            self.shared.wake();
        }
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
    }
}

fn run(shared: &Shared, db: &super::tls::Target) {
    let mut client: Option<Client> = None;
    let mut failures = 0u32;
    let mut last_pass = Instant::now();
    loop {
        if let Ok(mut w) = shared.wake.lock() {
            if !*w {
                w = match shared.woken.wait_timeout(w, IDLE_POLL) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            *w = false;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let ticketed = shared.requested.load(Ordering::SeqCst) > *shared.completed.borrow();
        if ticketed {
            let max = Duration::from_micros(shared.gather_max_us.load(Ordering::SeqCst));
            gather(shared, last_pass + max);
        }
        last_pass = Instant::now();
        // Read the tickets before the pass begins: every writer holding
        // one of them has committed, so the pass's snapshot sees its rows.
        let target = shared.requested.load(Ordering::SeqCst);
        // Every writer holding one of those tickets raised this first. With
        // no new ticket (an idle poll), look at every pending row: a node
        // that died may have left some.
        let upto = if target > *shared.completed.borrow() {
            shared.newest_pending.load(Ordering::SeqCst)
        } else {
            i64::MAX
        };
        let result = match client.as_mut() {
            Some(c) => pass(c, upto),
            None => match db.connect() {
                Ok(c) => pass(client.insert(c), upto),
                Err(e) => Err(crate::StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL: {e}"
                ))),
            },
        };
        match result {
            Ok(moved) => {
                failures = 0;
                if ticketed && moved > 0 {
                    shared.moving_passes.fetch_add(1, Ordering::SeqCst);
                }
                shared.completed.send_if_modified(|c| {
                    let advanced = target > *c;
                    if advanced {
                        *c = target;
                    }
                    advanced
                });
            }
            Err(e) => {
                failures += 1;
                if client.as_ref().is_some_and(|c| c.is_closed()) {
                    client = None;
                }
                tracing::warn!(error = %e, failures, "outbox sequencer: pass failed");
                std::thread::sleep(Duration::from_millis((10u64 << failures.min(7)).min(1_000)));
            }
        }
    }
}

/// Waits while writes of this node are still running, until `until` at the
/// latest. The last of them to end wakes the sequencer; so does every
/// writer that takes a ticket.
fn gather(shared: &Shared, until: Instant) {
    let Ok(mut woken) = shared.wake.lock() else {
        return;
    };
    shared.gathering.store(true, Ordering::SeqCst);
    loop {
        let now = Instant::now();
        if shared.writing.load(Ordering::SeqCst) == 0 || now >= until {
            break;
        }
        if *woken {
            // Consumed here: the pass about to run covers whoever woke us.
            *woken = false;
            continue;
        }
        woken = match shared.woken.wait_timeout(woken, until - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    shared.gathering.store(false, Ordering::SeqCst);
}

/// Numbers every committed pending event, in batches, unless none is left
/// at or below `upto`. Returns how many.
fn pass(client: &mut Client, upto: i64) -> StoreResult<u64> {
    let mut total = 0u64;
    let sql = move_batch_sql(upto);
    loop {
        let messages = match client.simple_query(&sql) {
            Ok(m) => m,
            Err(e) => {
                // A failure mid-message leaves the transaction aborted.
                let _ = client.batch_execute("ROLLBACK");
                return Err(map_err(e));
            }
        };
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) if r.len() == 2 => Some(r),
            _ => None,
        });
        let moved: i64 = row
            .and_then(|r| r.get(0))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if let Some(delay) = row
            .and_then(|r| r.get(1))
            .and_then(|v| v.parse::<f64>().ok())
        {
            metrics::histogram!("loyalty_outbox_sequencing_delay_seconds").record(delay);
        }
        total += u64::try_from(moved).unwrap_or(0);
        if moved < BATCH_ROWS {
            return Ok(total);
        }
    }
}
