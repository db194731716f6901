//! One function per `loyalty` command; `main` parses the command line and
//! calls one of them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use loyalty_core::Role;
use loyalty_server::app::Settings;
use loyalty_server::auth::{hash_token, new_token};
use loyalty_server::ratelimit::Limit;
use loyalty_server::serve::{ServeConfig, StorageConfig, open_store, serve};
use loyalty_server::tls::TlsFiles;
use loyalty_store::ops::{self, OpCtx};

use super::{BenchArgs, ServeArgs, StorageArgs, init_logs, runtime};

/// `loyalty serve`: the HTTP server until it is stopped.
pub(crate) fn serve_command(a: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(&a.log, true);
    let tz = jiff::tz::TimeZone::get(&a.gaming_day_tz)
        .with_context(|| format!("unknown time zone {:?}", a.gaming_day_tz))?;
    let settings = Settings {
        test_mode: a.test_mode,
        gaming_day_tz: tz,
        gaming_day_start_hour: a.gaming_day_start_hour,
        gaming_day_start_minute: a.gaming_day_start_minute,
        accrual_retry_interval_ms: a.accrual_retry_interval_ms,
        idempotency_retention_hours: a.idempotency_retention_hours,
        body_timeout: Duration::from_millis(a.body_timeout_ms),
        escrow_sweep_interval_ms: a.escrow_sweep_interval_ms,
        streams_per_token: usize::try_from(a.streams_per_token).unwrap_or(1),
        dual_control_threshold: a.dual_control_threshold,
        auth_failures_max: usize::try_from(a.auth_failures_max).unwrap_or(usize::MAX),
        webhook_allow_hosts: a
            .webhook_allow_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        webhook_timeout: Duration::from_millis(a.webhook_timeout_ms),
        ..Settings::default()
    };
    let cfg = ServeConfig {
        listen: a.listen,
        storage: a.storage.config(),
        settings,
        reward_limit: Limit {
            max: a.reward_rate_limit.max(1),
            ..Limit::default()
        },
        redis_url: a.redis_url,
        redis_tls: TlsFiles::checked(
            "redis",
            a.redis_ca_file,
            a.redis_cert_file,
            a.redis_key_file,
        )?,
        events: loyalty_server::events::EventsConfig {
            enabled: !a.no_dispatcher,
            retry_base_ms: a.dispatch_retry_base_ms,
            attempts_max: a.dispatch_attempts_max,
            lease_ttl_ms: a.lease_ttl_ms,
            balance_cache_entries: usize::try_from(a.balance_cache_entries).unwrap_or(100_000),
            stream_buffer_events: usize::try_from(a.stream_buffer_events).unwrap_or(1024),
            nats_url: a.nats_url,
            nats_tls: TlsFiles::checked("nats", a.nats_ca_file, a.nats_cert_file, a.nats_key_file)?,
            retention: retention(
                &a.storage,
                a.event_retention_days,
                a.event_archive_interval_ms,
            )?,
            ..loyalty_server::events::EventsConfig::default()
        },
        conn_limits: loyalty_server::listen::ConnLimits {
            header_timeout: Duration::from_millis(a.header_timeout_ms),
            idle_timeout: Duration::from_millis(a.idle_timeout_ms),
            max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_millis(a.shutdown_grace_ms),
        },
        metrics_listen: a.metrics_listen,
        sqlite: loyalty_store::sqlite::SqliteOptions {
            wal_max_bytes: a.sqlite_wal_max_mb << 20,
            reader_cache_bytes: SERVER_READER_CACHE_BYTES,
        },
    };
    // Run the server as a task so every part of it is polled by the
    // worker threads, not by the thread blocked in `block_on`.
    runtime()?.block_on(async { tokio::spawn(serve(cfg)).await })??;
    Ok(ExitCode::SUCCESS)
}

/// The retention settings; an archive directory is needed on PostgreSQL.
fn retention(
    storage: &StorageArgs,
    days: u32,
    interval_ms: u64,
) -> anyhow::Result<Option<loyalty_server::events::archive::RetentionConfig>> {
    if days == 0 {
        return Ok(None);
    }
    let dir = storage.archive_dir().context(
        "--event-retention-days on PostgreSQL needs --event-archive-dir (a directory every node shares)",
    )?;
    Ok(Some(loyalty_server::events::archive::RetentionConfig {
        retention_days: days,
        dir,
        interval: Duration::from_millis(interval_ms),
    }))
}

/// `loyalty staff create`: a staff member; prints their first token once.
pub(crate) fn staff_create(
    name: String,
    role: String,
    storage: StorageArgs,
) -> anyhow::Result<ExitCode> {
    init_logs("warn", false);
    let role = Role::parse(&role).with_context(|| {
        format!("unknown role {role:?}: expected admin, supervisor, pit_boss, cashier or auditor")
    })?;
    let name = loyalty_core::Name::new(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
    let store = open_store(&storage.config())?;
    let token = new_token().map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = hash_token(&token);
    let ctx = cli_ctx();
    runtime()?
        .block_on(store.write(move |tx| ops::create_staff(tx, &ctx, name, role, &hash)))
        .context("cannot create the staff member")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `loyalty verify`: every account against its ledger, and the ledger
/// against a recorded checkpoint; exit 1 on any finding.
pub(crate) fn verify(
    storage: StorageArgs,
    checkpoint: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    init_logs("warn", false);
    let recorded = checkpoint
        .map(|path| -> anyhow::Result<serde_json::Value> {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a checkpoint", path.display()))
        })
        .transpose()?;
    let store = open_store(&storage.config())?;
    let rt = runtime()?;
    let entries = rt
        .block_on(store.read(|tx| tx.last_entry_seq()))
        .context("verification failed to run")?;
    let pb =
        loyalty_server::progress::bar(u64::try_from(entries).unwrap_or(0), "verifying", "entries");
    let bar = pb.clone();
    let (checked, drift, total) = rt
        .block_on(
            store.read(move |tx| ops::verify_with_progress(tx, 1000, &mut |n| bar.set_position(n))),
        )
        .context("verification failed to run")?;
    pb.finish_and_clear();
    let mut report =
        serde_json::json!({"accounts_checked": checked, "drift": drift, "drift_count": total});
    // Archived events: every recorded file present and unchanged.
    let archives = rt
        .block_on(store.read(|tx| tx.event_archives()))
        .context("verification failed to run")?;
    let mut archive_problems = Vec::new();
    if !archives.is_empty() {
        match storage.archive_dir() {
            None => archive_problems.push(
                "events are archived: name the archive directory (--event-archive-dir)".to_string(),
            ),
            Some(dir) => {
                for a in &archives {
                    if let Err(e) =
                        loyalty_server::events::archive::check_file(&dir.join(&a.file), a)
                    {
                        archive_problems.push(format!("{e:#}"));
                    }
                }
            }
        }
    }
    report["event_archives"] = serde_json::json!({
        "files": archives.len(),
        "events": archives.iter().map(|a| a.events()).sum::<i64>(),
        "problems": archive_problems,
    });
    let mut changed = Vec::new();
    if let Some(cp) = &recorded {
        let seq = cp["seq"].as_i64().context("the checkpoint has no seq")?;
        let root = cp["root"]
            .as_str()
            .context("the checkpoint has no root")?
            .to_string();
        let mut then: std::collections::HashMap<String, String> = cp["heads"]
            .as_array()
            .map(|heads| {
                heads
                    .iter()
                    .filter_map(|h| {
                        Some((
                            h["player_id"].as_str()?.to_string(),
                            h["head"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let named = !then.is_empty();
        let (now, now_changed) = rt
            .block_on(
                store.read(move |tx| -> Result<_, loyalty_store::StoreError> {
                    let mut changed = Vec::new();
                    let now = loyalty_store::chain::checkpoint(tx, seq, &mut |player, head| {
                        let key = player.to_string();
                        match then.remove(&key) {
                            Some(h) if h == head => {}
                            _ if named => changed.push(key),
                            _ => {}
                        }
                    })?;
                    // Players recorded then but gone now.
                    changed.extend(then.into_keys());
                    Ok((now, changed))
                }),
            )
            .context("the checkpoint check failed to run")?;
        changed = now_changed;
        changed.sort();
        let ok = now.root == root;
        report["checkpoint"] = serde_json::json!({"seq": seq, "root": root, "root_now": now.root,
                "extends": ok, "changed_players": changed});
        if !ok && changed.is_empty() {
            changed.push("(unnamed: the checkpoint has no heads)".into());
        }
        if ok {
            changed.clear();
        }
    }
    println!("{report}");
    close(rt, store);
    if !changed.is_empty() {
        eprintln!(
            "error: the ledger no longer extends the checkpoint: history changed for {}",
            changed.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    if !archive_problems.is_empty() {
        eprintln!("error: {}", archive_problems.join("; "));
        return Ok(ExitCode::from(1));
    }
    if total == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {total} drift finding(s) in {checked} accounts");
        Ok(ExitCode::from(1))
    }
}

/// `loyalty migrate`: brings the schema up to date.
pub(crate) fn migrate(storage: StorageArgs) -> anyhow::Result<ExitCode> {
    init_logs("info", false);
    let store = open_store(&storage.config())?;
    eprintln!("migrated {}", store.describe());
    Ok(ExitCode::SUCCESS)
}

/// `loyalty export`: the ledger to stdout as CSV or JSON lines.
pub(crate) fn export(
    storage: StorageArgs,
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    format: String,
) -> anyhow::Result<ExitCode> {
    use futures_util::StreamExt;
    use std::io::Write;
    init_logs("warn", false);
    let format: loyalty_server::export::Format = format.parse()?;
    let store = open_store(&storage.config())?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        let up_to = store.read(|tx| tx.last_entry_seq()).await?;
        let pb = loyalty_server::progress::bar(
            u64::try_from(up_to).unwrap_or(0),
            "exporting",
            "entries",
        );
        let chunks = loyalty_server::export::stream(store.clone(), format, up_to, from, to);
        let mut chunks = Box::pin(chunks);
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            pb.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
            out.write_all(&chunk)?;
        }
        out.flush()?;
        pb.finish_and_clear();
        anyhow::Ok(())
    });
    close(rt, store);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `loyalty export --events`: every event there is, archived ones first.
pub(crate) fn export_events(storage: StorageArgs, format: String) -> anyhow::Result<ExitCode> {
    init_logs("warn", false);
    anyhow::ensure!(
        format == "jsonl",
        "--events exports JSON lines only (--format jsonl)"
    );
    let store = open_store(&storage.config())?;
    let dir = storage.archive_dir();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let head = store.read(|tx| tx.outbox_head()).await?;
        let pb =
            loyalty_server::progress::bar(u64::try_from(head).unwrap_or(0), "exporting", "events");
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        loyalty_server::events::archive::export_events(&store, dir.as_deref(), &mut out, &|n| {
            pb.set_position(n)
        })
        .await?;
        pb.finish_and_clear();
        anyhow::Ok(())
    });
    close(rt, store);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `loyalty migrate-to`: copies an embedded data directory into
/// PostgreSQL and verifies the copy.
pub(crate) fn migrate_to(data_dir: PathBuf, to: String) -> anyhow::Result<ExitCode> {
    init_logs("warn", false);
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    let pb = loyalty_server::progress::bar(0, "copying", "rows");
    let report = loyalty_store::transfer::sqlite_to_postgres_with_progress(
        &data_dir,
        &to,
        &mut |total, done| match total {
            Some(t) => pb.set_length(t),
            None => pb.set_position(done),
        },
    )
    .with_context(|| {
        format!(
            "cannot copy {} into {}",
            data_dir.display(),
            loyalty_store::postgres::redact(&to)
        )
    })?;
    pb.finish_and_clear();
    let store = open_store(&StorageConfig::Url(to.clone(), 2))?;
    let (checked, _, drift) = runtime()?
        .block_on(store.read(|tx| ops::verify(tx, 10)))
        .context("verification of the copy failed to run")?;
    let tables: serde_json::Map<String, serde_json::Value> = report
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), serde_json::json!(n)))
        .collect();
    println!(
        "{}",
        serde_json::json!({"rows_copied": tables, "accounts_checked": checked, "drift_count": drift})
    );
    // Close the blocking client off the runtime.
    std::thread::spawn(move || drop(store)).join().ok();
    if drift == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: the copy has {drift} drift finding(s)");
        Ok(ExitCode::from(1))
    }
}

/// Page cache of each of the server's read connections (at most
/// `loyalty_store::sqlite::READERS_MAX` of them): 64 MiB holds the interior
/// pages of a 10-million-entry ledger, so a ledger page reads only its rows
/// (server CPU per page at 10 M entries 298 -> 270 us).
const SERVER_READER_CACHE_BYTES: u64 = 64 << 20;

/// `loyalty seed`: fills a data directory through the real operations.
pub(crate) fn seed_command(
    storage: StorageArgs,
    players: u64,
    entries: u64,
) -> anyhow::Result<ExitCode> {
    init_logs("warn", false);
    let store = open_store(&storage.config())?;
    let rt = runtime()?;
    let started = std::time::Instant::now();
    let report = rt.block_on(seed(&store, players, entries));
    close(rt, store);
    let (players, entries) = report.context("seeding failed")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"players": players, "entries": entries,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "entries_per_second": (entries as f64 / seconds).round()})
    );
    Ok(ExitCode::SUCCESS)
}

/// `loyalty bench`: a load generator against a running server.
pub(crate) fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let cfg = loyalty_server::bench::BenchConfig {
        url: a.url.trim_end_matches('/').to_string(),
        token: a.token,
        clients: a.clients,
        duration: Duration::from_secs(a.seconds),
        workload: a.workload,
        players: a.players,
    };
    runtime()?.block_on(loyalty_server::bench::run(cfg))?;
    Ok(ExitCode::SUCCESS)
}

/// Rows written per transaction by `loyalty seed`.
const SEED_BATCH: u64 = 5_000;

/// `loyalty seed`: players, then manual rewards spread over them, each
/// through `ops` (balances, tiers, hash chain, events), thousands per
/// transaction. Returns what was written.
async fn seed(
    store: &loyalty_store::Store,
    players: u64,
    entries: u64,
) -> anyhow::Result<(u64, u64)> {
    let staff = uuid::Uuid::now_v7();
    let pb = loyalty_server::progress::bar(players, "players", "players");
    let mut ids: Vec<uuid::Uuid> = Vec::with_capacity(usize::try_from(players).unwrap_or(0));
    let mut made = 0u64;
    while made < players {
        let n = SEED_BATCH.min(players - made);
        let ctx = cli_ctx();
        let batch = store
            .write(move |tx| -> Result<Vec<uuid::Uuid>, ops::OpError> {
                (made..made + n)
                    .map(|i| {
                        let name = loyalty_core::Name::new(&format!("Seeded player {i}")).map_err(
                            |e| ops::OpError::Validation {
                                field: "display_name",
                                message: e.0,
                            },
                        )?;
                        ops::create_player(tx, &ctx, name, None).map(|p| p.id)
                    })
                    .collect()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ids.extend(batch);
        made += n;
        pb.set_position(made);
    }
    pb.finish_and_clear();
    let ids = Arc::new(ids);
    let pb = loyalty_server::progress::bar(entries, "entries", "entries");
    let mut written = 0u64;
    while written < entries {
        let n = SEED_BATCH.min(entries - written);
        let (ctx, ids) = (cli_ctx(), ids.clone());
        store
            .write(move |tx| -> Result<(), ops::OpError> {
                let mut ctx = ctx;
                ctx.staff_id = Some(staff);
                for i in written..written + n {
                    let player_id = ids[(i % ids.len() as u64) as usize];
                    let invalid = |field: &'static str| {
                        move |e: loyalty_core::ValueError| ops::OpError::Validation {
                            field,
                            message: e.0,
                        }
                    };
                    ops::manual_reward(
                        tx,
                        &ctx,
                        ops::ManualReward {
                            player_id: loyalty_core::PlayerId::of(player_id),
                            points: loyalty_core::Points::new(1 + (i % 97) as i64)
                                .map_err(invalid("points"))?,
                            reason: loyalty_core::Reason::new(&format!("seeded reward {i}"), 1)
                                .map_err(invalid("reason"))?,
                            staff_id: loyalty_core::StaffId::of(staff),
                            rating_slip_id: None,
                            key: format!("seed:{staff}:{i}"),
                        },
                    )?;
                }
                Ok(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        written += n;
        pb.set_position(written);
    }
    pb.finish_and_clear();
    Ok((players, entries))
}

fn cli_ctx() -> OpCtx {
    OpCtx {
        now: loyalty_server::clock::Clock::default().now(),
        correlation_id: format!("cli-{}", uuid::Uuid::new_v4().simple()),
        idempotency_key: None,
        staff_id: None,
        tiers: Arc::new(loyalty_core::TierTable::default()),
        fail_accrual: false,
    }
}

/// Stops a command's runtime, then closes its store on a plain thread (the
/// PostgreSQL pool's blocking client must not be dropped inside a runtime).
fn close(rt: tokio::runtime::Runtime, store: loyalty_store::Store) {
    drop(rt);
    std::thread::spawn(move || drop(store)).join().ok();
}
