//! The embedded store's write-ahead log: the checkpointer thread that
//! keeps it bounded, and what it shares with the writer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::open_conn;

/// What the writer and the checkpointer share about the write-ahead log.
#[derive(Debug, Default)]
pub(super) struct WalState {
    /// Held by the writer for each batch, and by the checkpointer for the
    /// moment it needs the log to stand still.
    pub(super) gate: Mutex<()>,
    /// Taken by the checkpointer before the gate, and passed through by the
    /// writer before each batch: a busy writer takes the gate again the
    /// moment it lets go, and without this the checkpointer could wait for
    /// it through many batches while the log grew.
    pub(super) turnstile: Mutex<()>,
    /// When the writer last committed, ms since the Unix epoch.
    pub(super) last_commit_ms: std::sync::atomic::AtomicU64,
    /// The longest the checkpointer has held the gate, µs (for reports).
    pub(super) longest_hold_us: std::sync::atomic::AtomicU64,
    /// Times the checkpointer held the writer to copy the log's tail so
    /// that the log could start over.
    pub(super) resets: std::sync::atomic::AtomicU64,
    /// Frames in the log after the writer's last commit (SQLite's WAL hook,
    /// [`WalState::committed`]).
    log_frames: std::sync::atomic::AtomicU64,
    /// Frames at which the writer wakes the checkpointer (0: not yet set).
    wake_frames: std::sync::atomic::AtomicU64,
    /// The checkpointer thread, once it runs.
    checkpointer: std::sync::OnceLock<std::thread::Thread>,
}

impl WalState {
    /// The writer's WAL hook: called after every commit with the frames in
    /// the log. Once they reach the reset point the checkpointer is woken
    /// at once instead of at its next look, so a writer faster than the
    /// look interval cannot carry the log past its bound in between.
    pub(super) fn committed(&self, frames: u64) {
        self.log_frames.store(frames, Ordering::Relaxed);
        let wake = self.wake_frames.load(Ordering::Relaxed);
        if wake > 0
            && frames >= wake
            && let Some(t) = self.checkpointer.get()
        {
            t.unpark();
        }
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How often the checkpointer folds the WAL back into the database file.
pub const CHECKPOINT_INTERVAL_MS: u64 = 100;
/// How long a gated checkpoint waits for readers that started before it,
/// ms (the writer waits meanwhile).
const RESET_WAIT_MS: u64 = 5;
/// The first retry of a reset that a reader held up, ms.
const RESET_RETRY_MS: u64 = 10;
/// The writer counts as idle after this long without a commit: the
/// checkpointer then truncates the log to nothing.
pub const WAL_IDLE_MS: u64 = 2_000;

/// `(completed, log frames, frames checkpointed)` after a checkpoint in
/// `mode` (`completed` is false when it met a reader it could not wait for).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? == 0, r.get(1)?, r.get(2)?))
    })
}

/// Frames of the log left uncopied below which catching up stops.
const CATCH_UP_FRAMES: i64 = 64;

/// PASSIVE checkpoints back to back (two at most) until no more than
/// [`CATCH_UP_FRAMES`] frames of the log are left uncopied. Under a steady
/// load each pass ends a little behind the writer again, so this mostly
/// bounds what the gated checkpoint after it has to copy. It also stops
/// once the log holds `stop_frames`: a writer faster than the copies would
/// otherwise grow the log past its bound while this runs.
fn catch_up(conn: &Connection, stop_frames: i64) {
    for _ in 0..2 {
        match checkpoint(conn, "PASSIVE") {
            Ok((_, log, copied)) if log - copied > CATCH_UP_FRAMES && log < stop_frames => {}
            _ => return,
        }
    }
}

/// Checkpoints the WAL from its own connection, so the writer never pays
/// for a checkpoint inside a commit (SQLite's automatic checkpoint would
/// copy pages and fsync the database file on the commit path).
///
/// Every [`CHECKPOINT_INTERVAL_MS`] a PASSIVE checkpoint copies what it can
/// without blocking anyone. Under sustained writes that never catches up
/// with the end of the log, and SQLite starts a log over only when a writer
/// begins while everything in it is copied and no reader still reads from
/// it — with readers always about, the log would grow as long as the load
/// lasts. Once the log holds a quarter of [`super::SqliteOptions::wal_max_bytes`]
/// — which the writer's WAL hook reports the moment it happens
/// ([`WalState::committed`]; a release build's writer can append 15 MB of
/// log in one 100 ms interval) — the checkpointer catches up with at most
/// two PASSIVE checkpoints ([`catch_up`]; none past half the bound), then
/// takes the writer's gate between two batches (the turnstile makes the
/// writer let it in) and runs a RESTART checkpoint: it copies what is left
/// and waits at most 5 ms for readers that started before to finish
/// (readers that start meanwhile read the database file, not the log), then
/// lets go. The writer's next transaction starts the log over, truncated
/// to half the bound (`journal_size_limit`, see [`super::WAL_RESET_BYTES`]).
/// If a reader outlasts the 5 ms, the next try comes 10 ms later, then
/// 20, 40, up to the interval while a reader keeps its snapshot. When the
/// writer has been idle for [`WAL_IDLE_MS`], a TRUNCATE checkpoint (also
/// under the gate) empties the log.
pub(super) fn checkpointer_loop(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    wal: Arc<WalState>,
    max_bytes: u64,
) {
    let conn = match open_conn(&path, false) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "sqlite checkpointer could not open the database");
            return;
        }
    };
    // A TRUNCATE checkpoint waits for readers to leave the log; under the
    // writer's gate it must give up quickly instead (it is retried later).
    if let Err(e) = conn.busy_timeout(Duration::from_millis(RESET_WAIT_MS)) {
        tracing::warn!(error = %e, "sqlite checkpointer: cannot set its busy timeout");
    }
    let page_bytes: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .map(|p| u64::try_from(p).unwrap_or(4096))
        .unwrap_or(4096);
    let frame_bytes = page_bytes + 24;
    let reset_at = (max_bytes / 4).max(frame_bytes * 64);
    let wal_path = {
        let mut p = path.clone().into_os_string();
        p.push("-wal");
        PathBuf::from(p)
    };
    let gated = |mode: &str| -> rusqlite::Result<(bool, i64, i64)> {
        let _turn = wal.turnstile.lock();
        let Ok(_gate) = wal.gate.lock() else {
            return checkpoint(&conn, mode);
        };
        let started = std::time::Instant::now();
        let r = checkpoint(&conn, mode);
        let held = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        wal.longest_hold_us.fetch_max(held, Ordering::Relaxed);
        metrics::histogram!("loyalty_sqlite_checkpoint_gate_seconds").record(held as f64 / 1e6);
        r
    };
    // Half the bound: past it there is no catching up without the gate (a
    // writer faster than the copies would carry the log past the bound
    // meanwhile); the gated checkpoint copies the rest while the writer
    // waits. The bound is the promise; the short wait is the aim.
    let hard_bytes = max_bytes / 2;
    let stop_frames = i64::try_from(hard_bytes / frame_bytes).unwrap_or(i64::MAX);
    let reset_frames = reset_at / frame_bytes;
    let _ = wal.checkpointer.set(std::thread::current());
    wal.wake_frames
        .store(reset_frames.max(1), Ordering::Relaxed);
    // After a reset that a reader held up, the next try waits (the
    // writer's wakes are ignored meanwhile): each try holds the writer up
    // to 5 ms. 10 ms after the first failure, doubling up to the interval
    // while a reader keeps its snapshot (an export can read for minutes).
    let mut backoff_ms = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if backoff_ms > 0 {
            std::thread::sleep(Duration::from_millis(backoff_ms));
        } else if wal.log_frames.load(Ordering::Relaxed) < reset_frames {
            // Woken early by the writer's hook when the log reaches the
            // reset point.
            std::thread::park_timeout(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
        }
        let (_, log, _) = match checkpoint(&conn, "PASSIVE") {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite checkpoint failed");
                std::thread::sleep(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
                continue;
            }
        };
        // The hook's figure, refreshed from the checkpoint's own (a log
        // emptied while idle must not look long to the wait above).
        wal.log_frames
            .store(u64::try_from(log).unwrap_or(0), Ordering::Relaxed);
        let log_bytes = u64::try_from(log).unwrap_or(0) * frame_bytes;
        let idle =
            now_ms().saturating_sub(wal.last_commit_ms.load(Ordering::Relaxed)) >= WAL_IDLE_MS;
        let file_bytes = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        metrics::gauge!("loyalty_sqlite_wal_bytes").set(file_bytes as f64);
        let result = if idle && file_bytes > 0 {
            // No writer to start the log over: empty it now (a reader in
            // the way: again after an interval).
            let r = gated("TRUNCATE");
            let emptied = matches!(r, Ok((true, _, _)));
            backoff_ms = if emptied { 0 } else { CHECKPOINT_INTERVAL_MS };
            if emptied {
                wal.log_frames.store(0, Ordering::Relaxed);
            }
            r.map(|_| false)
        } else if log_bytes >= reset_at && !idle {
            // Catch up without the gate first, so that less is left to copy
            // (and fsync) while the writer waits.
            if log_bytes < hard_bytes {
                catch_up(&conn, stop_frames);
            }
            // Let the log stand still for the copy of its tail and the wait
            // for earlier readers: the next write starts it over.
            let r = gated("RESTART").map(|(completed, _, _)| completed);
            backoff_ms = match r {
                Ok(true) => 0,
                _ => (backoff_ms * 2).clamp(RESET_RETRY_MS, CHECKPOINT_INTERVAL_MS),
            };
            r
        } else {
            backoff_ms = 0;
            Ok(false)
        };
        match result {
            Ok(true) => {
                wal.resets.fetch_add(1, Ordering::Relaxed);
                // The writer's next transaction starts the log over.
                wal.log_frames.store(0, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "sqlite checkpoint did not complete"),
        }
    }
}
