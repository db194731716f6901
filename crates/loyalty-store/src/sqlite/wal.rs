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
    /// When the writer last committed, ms since the Unix epoch.
    pub(super) last_commit_ms: std::sync::atomic::AtomicU64,
    /// The longest the checkpointer has held the gate, µs (for reports).
    pub(super) longest_hold_us: std::sync::atomic::AtomicU64,
    /// Times the checkpointer held the writer to copy the log's tail so
    /// that the log could start over.
    pub(super) resets: std::sync::atomic::AtomicU64,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How often the checkpointer folds the WAL back into the database file.
pub const CHECKPOINT_INTERVAL_MS: u64 = 100;
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

/// PASSIVE checkpoints back to back (eight at most) until no more than
/// [`CATCH_UP_FRAMES`] frames of the log are left uncopied. Under a steady
/// load each pass ends a little behind the writer again, so this mostly
/// bounds what the gated checkpoint after it has to copy.
fn catch_up(conn: &Connection) {
    for _ in 0..8 {
        match checkpoint(conn, "PASSIVE") {
            Ok((_, log, copied)) if log - copied > CATCH_UP_FRAMES => {}
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
/// lasts. Once the log holds a quarter of [`super::SqliteOptions::wal_max_bytes`],
/// the checkpointer catches up with back-to-back PASSIVE checkpoints
/// ([`catch_up`]), then takes the writer's gate between two batches and runs
/// a RESTART checkpoint: it copies the little written since its last pass and
/// waits at most 5 ms for readers that started before to finish (readers
/// that start meanwhile read the database file, not the log), then lets go.
/// The writer's next transaction starts the log over, truncated to
/// half the bound (`journal_size_limit`, see [`super::WAL_RESET_BYTES`]). If a reader outlasts the 5
/// ms, the next pass tries again. When the writer has been idle for
/// [`WAL_IDLE_MS`], a TRUNCATE checkpoint (also under the gate) empties the
/// log.
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
    if let Err(e) = conn.busy_timeout(Duration::from_millis(5)) {
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
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
        let (_, log, _) = match checkpoint(&conn, "PASSIVE") {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite checkpoint failed");
                continue;
            }
        };
        let log_bytes = u64::try_from(log).unwrap_or(0) * frame_bytes;
        let idle =
            now_ms().saturating_sub(wal.last_commit_ms.load(Ordering::Relaxed)) >= WAL_IDLE_MS;
        let file_bytes = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        metrics::gauge!("loyalty_sqlite_wal_bytes").set(file_bytes as f64);
        let result = if idle && file_bytes > 0 {
            // No writer to start the log over: empty it now.
            gated("TRUNCATE").map(|_| false)
        } else if log_bytes >= reset_at && !idle {
            // Catch up without the gate first, so that less is left to copy
            // (and fsync) while the writer waits.
            catch_up(&conn);
            // Let the log stand still for the copy of its tail and the wait
            // for earlier readers: the next write starts it over.
            gated("RESTART").map(|(completed, _, _)| completed)
        } else {
            Ok(false)
        };
        match result {
            Ok(true) => {
                wal.resets.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "sqlite checkpoint did not complete"),
        }
    }
}
