//! Event retention (docs/events.md, "Retention"): events older than
//! `--event-retention-days` that every consumer this installation knows of
//! has passed move from the outbox into append-only archive files, so the
//! database does not grow without bound in events alone, while `loyalty
//! export --events` still reads every event there ever was.
//!
//! One node at a time archives (a lease). A pass:
//!
//! 1. finishes deleting events an earlier pass recorded but did not get to
//!    delete (a crash or a stop between the steps below);
//! 2. finds the *limit*: the lowest of every durable subscriber's, every
//!    live webhook's and (when configured) the NATS relay's checkpoint, one
//!    below the oldest dead letter still waiting for a replay, and one below
//!    the outbox head (the newest event always stays, so numbering goes on
//!    from it);
//! 3. writes the events after the last archive, oldest first, up to the
//!    limit and stopping at the first one younger than the retention, to
//!    `events-<first>-<last>.jsonl` in the archive directory (a temporary
//!    name first; fsync; rename; fsync the directory) — one envelope per
//!    line, exactly as `GET /v1/events` shows it;
//! 4. records the file (range, size, SHA-256) in `event_archives`, which
//!    accepts only a file that continues the last one;
//! 5. deletes those events (and the activity-feed items pointing at them)
//!    in small transactions; the schema refuses to delete an event no
//!    recorded archive covers.
//!
//! A crash before 4 leaves a file nobody recorded (the next pass writes it
//! again under the same name); after 4, step 1 of the next pass finishes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use loyalty_core::events::Event;
use loyalty_store::{EventArchive, EventRecord, Store};
use sha2::{Digest, Sha256};

use crate::app::AppState;

/// Most events in one archive file.
pub const ARCHIVE_FILE_EVENTS_MAX: i64 = 1_000_000;
/// Events read per page while writing a file.
pub const ARCHIVE_PAGE_EVENTS: u32 = 1000;
/// Events deleted per transaction (short, so writers barely notice).
pub const DELETE_CHUNK_EVENTS: u32 = 2000;
/// The lease that lets one node at a time archive.
pub const LEASE: &str = "event_archiver";

/// Retention settings (`--event-retention-days`, `--event-archive-dir`,
/// `--event-archive-interval-ms`).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Events older than this many days may be archived; 0 keeps every
    /// event in the database.
    pub retention_days: u32,
    /// Where archive files go.
    pub dir: PathBuf,
    /// Pause between passes.
    pub interval: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The file written and recorded, if any.
    pub archived: Option<EventArchive>,
    /// Events deleted from the outbox.
    pub deleted: u64,
}

/// The file name of the archive of `first..=last`.
pub fn file_name(first: i64, last: i64) -> String {
    format!("events-{first:012}-{last:012}.jsonl")
}

/// Runs a pass every interval while this node holds the lease.
pub async fn run(state: AppState, cfg: RetentionConfig) {
    let mut lease = crate::events::dispatch::Lease::new(LEASE.to_string());
    loop {
        tokio::time::sleep(cfg.interval).await;
        if !lease.hold(&state).await {
            continue;
        }
        match pass(&state, &cfg).await {
            Ok(r) => {
                if let Some(a) = &r.archived {
                    metrics::counter!("loyalty_events_archived_total").increment(a.events() as u64);
                    tracing::info!(first_seq = a.first_seq, last_seq = a.last_seq,
                        file = %a.file, bytes = a.bytes, deleted = r.deleted, "events_archived");
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "event archive pass failed"),
        }
    }
}

/// The names whose checkpoints bound what may be archived: the durable
/// subscribers of this node, every webhook not deleted and the relay when
/// one is configured.
async fn consumers(state: &AppState) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = state
        .events
        .registry
        .list()
        .into_iter()
        .filter(|s| s.kind == "durable")
        .map(|s| s.name.to_string())
        .collect();
    let hooks = state.store.read(|tx| tx.webhooks()).await?;
    names.extend(
        hooks
            .into_iter()
            .filter(|w| w.deleted_at.is_none())
            .map(|w| loyalty_store::ops::webhooks::subscriber_name(w.id)),
    );
    if state.events.config.nats_url.is_some() {
        names.push(crate::events::nats::RELAY.to_string());
    }
    Ok(names)
}

/// One pass (see the module's documentation).
pub async fn pass(state: &AppState, cfg: &RetentionConfig) -> anyhow::Result<PassReport> {
    let mut report = PassReport::default();
    let store = &state.store;
    let (archives, first_kept) = store
        .read(|tx| {
            Ok::<_, loyalty_store::StoreError>((tx.event_archives()?, tx.first_outbox_seq()?))
        })
        .await?;
    let horizon = archives.last().map(|a| a.last_seq).unwrap_or(0);
    if let Some(first) = first_kept.filter(|f| *f <= horizon) {
        report.deleted += delete_archived(store, first, horizon).await?;
    }
    if cfg.retention_days == 0 {
        return Ok(report);
    }
    let names = consumers(state).await?;
    let (checkpoints, dead, head) = store
        .read(|tx| {
            Ok::<_, loyalty_store::StoreError>((
                tx.checkpoints()?,
                tx.oldest_unreplayed_dead_letter()?,
                tx.outbox_head()?,
            ))
        })
        .await?;
    let checkpoints: HashMap<String, i64> = checkpoints.into_iter().collect();
    let mut limit = head - 1;
    for name in &names {
        limit = limit.min(checkpoints.get(name).copied().unwrap_or(0));
    }
    if let Some(d) = dead {
        limit = limit.min(d - 1);
    }
    limit = limit.min(horizon + ARCHIVE_FILE_EVENTS_MAX);
    if limit <= horizon {
        return Ok(report);
    }
    let cutoff =
        state.clock.now() - jiff::SignedDuration::from_hours(24 * i64::from(cfg.retention_days));
    let Some(archive) =
        write_file(store, &cfg.dir, horizon, limit, cutoff, state.clock.now()).await?
    else {
        return Ok(report);
    };
    let recorded = archive.clone();
    if let Err(e) = store
        .write(move |tx| tx.insert_event_archive(&recorded))
        .await
    {
        // Another node got there first (or the store failed): this file
        // was never recorded; the recorded one stands.
        let _ = std::fs::remove_file(cfg.dir.join(&archive.file));
        return Err(e).context("recording the archive");
    }
    report.deleted += delete_archived(store, archive.first_seq, archive.last_seq).await?;
    report.archived = Some(archive);
    Ok(report)
}

/// Writes the events after `horizon` up to `limit` that are older than
/// `cutoff` (stopping at the first that is not) to a new archive file;
/// `None` if there is no such event.
async fn write_file(
    store: &Store,
    dir: &Path,
    horizon: i64,
    limit: i64,
    cutoff: jiff::Timestamp,
    now: jiff::Timestamp,
) -> anyhow::Result<Option<EventArchive>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the archive directory {}", dir.display()))?;
    let tmp = dir.join(format!(".events-after-{horizon:012}.tmp"));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    let mut hash = Sha256::new();
    let mut bytes = 0i64;
    let mut last = horizon;
    'pages: while last < limit {
        let after = last;
        let page = store
            .read(move |tx| tx.events(after, ARCHIVE_PAGE_EVENTS, None))
            .await?;
        if page.is_empty() {
            break;
        }
        for ev in page {
            if ev.seq > limit || ev.occurred_at >= cutoff {
                break 'pages;
            }
            anyhow::ensure!(
                ev.seq == last + 1,
                "the outbox skips from {last} to {}: not archiving",
                ev.seq
            );
            let mut line = serde_json::to_vec(&ev)?;
            line.push(b'\n');
            hash.update(&line);
            out.write_all(&line)?;
            bytes += line.len() as i64;
            last = ev.seq;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if last == horizon {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Ok(None);
    }
    file.sync_all()?;
    drop(file);
    let name = file_name(horizon + 1, last);
    std::fs::rename(&tmp, dir.join(&name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Some(EventArchive {
        first_seq: horizon + 1,
        last_seq: last,
        file: name,
        sha256: crate::auth::hex(&hash.finalize()),
        bytes,
        archived_at: now,
    }))
}

/// The activity-feed keys `(player, seq)` of `events`: what the activity
/// feed subscriber inserted for them.
fn activity_keys(events: &[EventRecord]) -> Vec<(uuid::Uuid, i64)> {
    events
        .iter()
        .filter_map(|ev| {
            Event::from_stored(&ev.event_type, ev.version, &ev.payload)
                .ok()?
                .player_id()
                .map(|p| (p, ev.seq))
        })
        .collect()
}

/// Deletes the archived events `first..=last` from the outbox in short
/// transactions; returns how many.
async fn delete_archived(store: &Store, first: i64, last: i64) -> anyhow::Result<u64> {
    let mut deleted = 0;
    let mut after = first - 1;
    while after < last {
        let from = after;
        let chunk = store
            .read(move |tx| tx.events(from, DELETE_CHUNK_EVENTS, None))
            .await?;
        let chunk: Vec<EventRecord> = chunk.into_iter().filter(|e| e.seq <= last).collect();
        let Some(end) = chunk.last().map(|e| e.seq) else {
            break;
        };
        let keys = activity_keys(&chunk);
        deleted += store
            .write_background(move |tx| tx.delete_archived_events(from + 1, end, &keys))
            .await?;
        after = end;
    }
    Ok(deleted)
}

/// Every event there is, oldest first, as JSON lines: the archive files
/// (each checked against its recorded size and SHA-256 first) then the
/// outbox after the last archive, up to its head when this starts.
pub async fn export_events(
    store: &Store,
    dir: Option<&Path>,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    let (archives, head) = store
        .read(|tx| Ok::<_, loyalty_store::StoreError>((tx.event_archives()?, tx.outbox_head()?)))
        .await?;
    let mut written = 0u64;
    let mut last = 0i64;
    if !archives.is_empty() {
        let dir =
            dir.context("events are archived: name the archive directory (--event-archive-dir)")?;
        for a in &archives {
            let path = dir.join(&a.file);
            check_file(&path, a)?;
            let mut f = std::fs::File::open(&path)?;
            std::io::copy(&mut f, out)?;
            written += a.events() as u64;
            progress(written);
            last = a.last_seq;
        }
    }
    while last < head {
        let after = last;
        let page = store
            .read(move |tx| tx.events(after, ARCHIVE_PAGE_EVENTS, None))
            .await?;
        let Some(end) = page.last().map(|e| e.seq) else {
            break;
        };
        for ev in page.into_iter().filter(|e| e.seq <= head) {
            serde_json::to_writer(&mut *out, &ev)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        progress(written);
        last = end;
    }
    out.flush()?;
    Ok(written)
}

/// Checks an archive file against what was recorded of it.
pub fn check_file(path: &Path, a: &EventArchive) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("archive {} is missing", path.display()))?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha = crate::auth::hex(&hash.finalize());
    anyhow::ensure!(
        i64::try_from(bytes).ok() == Some(a.bytes) && sha == a.sha256,
        "archive {} does not match its record (size {bytes}, recorded {}; sha256 {sha}, recorded {})",
        path.display(),
        a.bytes,
        a.sha256
    );
    Ok(())
}
