//! The `loyalty` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod config_file;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use loyalty_core::Role;
use loyalty_server::app::Settings;
use loyalty_server::auth::{hash_token, new_token};
use loyalty_server::ratelimit::Limit;
use loyalty_server::serve::{ServeConfig, StorageConfig, open_store, serve};
use loyalty_store::ops::{self, OpCtx};

/// `loyalty --version`: the release and the schema version it migrates to.
fn version_text() -> &'static str {
    Box::leak(
        format!(
            "{} (schema {})",
            env!("CARGO_PKG_VERSION"),
            loyalty_store::SCHEMA_VERSION
        )
        .into_boxed_str(),
    )
}

#[derive(Parser)]
#[command(
    name = "loyalty",
    version = version_text(),
    about = "Loyalty Ledger: casino table play to loyalty points, every point accounted for"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Staff administration.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Check every account against its ledger; exit 0 only if there is no drift.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// A checkpoint recorded earlier (`GET /v1/ledger/checkpoint`, with
        /// `heads=true` to name a changed player): fail unless today's
        /// ledger still extends it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Apply pending schema migrations and exit.
    Migrate(StorageArgs),
    /// Write the ledger (optionally a date range) to stdout as CSV or JSON lines.
    Export {
        #[command(flatten)]
        storage: StorageArgs,
        /// Only entries created at or after this instant (RFC 3339).
        #[arg(long)]
        from: Option<jiff::Timestamp>,
        /// Only entries created before this instant (RFC 3339).
        #[arg(long)]
        to: Option<jiff::Timestamp>,
        /// csv or jsonl.
        #[arg(long, default_value = "jsonl", value_parser = ["csv", "jsonl"])]
        format: String,
    },
    /// Copy an embedded installation (stopped) into an empty PostgreSQL
    /// database, then verify the copy.
    MigrateTo {
        /// The embedded data directory to copy from.
        #[arg(long, env = "LOYALTY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The PostgreSQL database to copy into (must be empty).
        #[arg(long)]
        to: String,
    },
    /// Drive a running server with concurrent clients and print latency.
    Bench(BenchArgs),
    /// Fill a database with players and manual rewards through the real
    /// operations (every balance, tier and hash as the server writes them),
    /// for trying reads and verification at scale.
    Seed {
        #[command(flatten)]
        storage: StorageArgs,
        /// Players to create.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        players: u64,
        /// Ledger entries to write, spread over the players.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
        entries: u64,
    },
    /// The server's configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings `loyalty serve` would run with (same flags,
    /// environment and --config file), where each comes from, secrets masked.
    Print(ServeArgs),
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Create a staff member and print their token alone on stdout.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// admin, supervisor, pit_boss, cashier or auditor.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Args, Clone)]
struct StorageArgs {
    /// Directory of the embedded database (created on first start).
    #[arg(
        long,
        env = "LOYALTY_DATA_DIR",
        default_value = "./data",
        conflicts_with = "database_url"
    )]
    data_dir: PathBuf,
    /// Database URL instead of the data directory (postgres://user:pass@host:port/db).
    #[arg(long, env = "LOYALTY_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL connections per node.
    #[arg(long, env = "LOYALTY_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    db_pool_size: u32,
}

impl StorageArgs {
    fn config(&self) -> StorageConfig {
        match &self.database_url {
            Some(url) => StorageConfig::Url(url.clone(), self.db_pool_size as usize),
            None => StorageConfig::DataDir(self.data_dir.clone()),
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file of settings, one key per long flag (`reward-rate-limit = 20`);
    /// flags and environment variables beat it.
    #[arg(long, env = "LOYALTY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LOYALTY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    storage: StorageArgs,
    /// Enable /v1/test/clock and /v1/test/faults. Never in production.
    #[arg(long, env = "LOYALTY_TEST_MODE")]
    test_mode: bool,
    /// IANA time zone of the gaming day.
    #[arg(long, env = "LOYALTY_GAMING_DAY_TZ", default_value = "UTC")]
    gaming_day_tz: String,
    /// Hour (0-23) at which the gaming day starts.
    #[arg(long, env = "LOYALTY_GAMING_DAY_START_HOUR", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..24))]
    gaming_day_start_hour: u8,
    /// Minute (0-59) of the start hour at which the gaming day starts.
    #[arg(long, env = "LOYALTY_GAMING_DAY_START_MINUTE", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..60))]
    gaming_day_start_minute: u8,
    /// How often pending accruals are looked for, milliseconds.
    #[arg(
        long,
        env = "LOYALTY_ACCRUAL_RETRY_INTERVAL_MS",
        default_value_t = 2000
    )]
    accrual_retry_interval_ms: u64,
    /// How often held escrows past their expiry are looked for and refunded, ms.
    #[arg(long, env = "LOYALTY_ESCROW_SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(20..=3_600_000))]
    escrow_sweep_interval_ms: u64,
    /// Manual rewards allowed per staff member per minute.
    #[arg(long, env = "LOYALTY_REWARD_RATE_LIMIT", default_value_t = 10)]
    reward_rate_limit: usize,
    /// Dual control: manual rewards and adjustments of at least this many
    /// points (either way) wait for a second staff member's approval (off if unset).
    #[arg(long, env = "LOYALTY_DUAL_CONTROL_THRESHOLD", value_parser = clap::value_parser!(i64).range(1..=10_000))]
    dual_control_threshold: Option<i64>,
    /// How long Idempotency-Key responses are kept, hours (at least 24).
    #[arg(long, env = "LOYALTY_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u32).range(24..))]
    idempotency_retention_hours: u32,
    /// Redis URL for the rate limiter shared by several nodes (in memory if unset).
    #[arg(long, env = "LOYALTY_REDIS_URL")]
    redis_url: Option<String>,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "LOYALTY_LOG", default_value = "info")]
    log: String,
    /// NATS server for the JetStream event relay (nats://host:port); no relay if unset.
    #[arg(long, env = "LOYALTY_NATS_URL")]
    nats_url: Option<String>,
    /// Run without the event dispatcher, subscribers, live stream and relay (benchmarking only).
    #[arg(long, env = "LOYALTY_NO_DISPATCHER")]
    no_dispatcher: bool,
    /// First retry delay of a failed event delivery, ms (doubles per attempt).
    #[arg(long, env = "LOYALTY_DISPATCH_RETRY_BASE_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    dispatch_retry_base_ms: u64,
    /// Delivery attempts before an event becomes a dead letter.
    #[arg(long, env = "LOYALTY_DISPATCH_ATTEMPTS_MAX", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    dispatch_attempts_max: u32,
    /// How long a node holds a lease (relay, durable subscriber) without renewing it, ms.
    #[arg(long, env = "LOYALTY_LEASE_TTL_MS", default_value_t = 15_000, value_parser = clap::value_parser!(i64).range(500..=600_000))]
    lease_ttl_ms: i64,
    /// Players kept in the balance snapshot cache.
    #[arg(long, env = "LOYALTY_BALANCE_CACHE_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    balance_cache_entries: u64,
    /// Request headers must arrive within this, ms (also the longest wait for the next request on a kept-alive connection).
    #[arg(long, env = "LOYALTY_HEADER_TIMEOUT_MS", default_value_t = loyalty_server::listen::HEADER_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    header_timeout_ms: u64,
    /// A request body must arrive within this, ms (else 408 and the connection closes).
    #[arg(long, env = "LOYALTY_BODY_TIMEOUT_MS", default_value_t = loyalty_server::app::BODY_TIMEOUT_S_DEFAULT * 1000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    body_timeout_ms: u64,
    /// A connection on which nothing moves for this long while no handler works is closed, ms.
    #[arg(long, env = "LOYALTY_IDLE_TIMEOUT_MS", default_value_t = loyalty_server::listen::IDLE_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    idle_timeout_ms: u64,
    /// Most open connections; one more is answered 429 and closed.
    #[arg(long, env = "LOYALTY_MAX_CONNECTIONS", default_value_t = loyalty_server::listen::MAX_CONNECTIONS_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Most live event streams (GET /v1/events/stream) one token may hold open.
    #[arg(long, env = "LOYALTY_STREAMS_PER_TOKEN", default_value_t = loyalty_server::app::STREAMS_PER_TOKEN_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    streams_per_token: u64,
    /// On SIGTERM or Ctrl-C, how long in-flight requests may take to finish, ms.
    #[arg(long, env = "LOYALTY_SHUTDOWN_GRACE_MS", default_value_t = loyalty_server::listen::SHUTDOWN_GRACE_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    shutdown_grace_ms: u64,
    /// Serve /metrics on this address instead of the main listener (which then answers 404 there).
    #[arg(long, env = "LOYALTY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// The embedded store's write-ahead log is kept below this size, MiB,
    /// however long a load lasts.
    #[arg(long, env = "LOYALTY_SQLITE_WAL_MAX_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(8..=65_536))]
    sqlite_wal_max_mb: u64,
    /// Events buffered per live-stream connection before a slow client is disconnected.
    #[arg(long, env = "LOYALTY_STREAM_BUFFER_EVENTS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    stream_buffer_events: u64,
}

#[derive(Args)]
struct BenchArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Token of a staff member allowed to create players, tables and slips.
    #[arg(long, env = "LOYALTY_TOKEN")]
    token: String,
    /// Comma-separated client counts.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    clients: Vec<usize>,
    /// What to drive: `complete` (open and complete slips), `reward`
    /// (manual rewards; needs an admin token and a high --reward-rate-limit)
    /// or `redeem` (hold one point and capture it; needs an admin token).
    #[arg(long, default_value = "complete", value_parser = ["complete", "reward", "redeem"])]
    workload: String,
    /// Seconds per client count.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Players the clients share (client i writes to player i mod N): a
    /// small number makes hot accounts. 0: one player per client.
    #[arg(long, default_value_t = 0)]
    players: usize,
}

fn init_logs(filter: &str, to_stdout: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter);
    if to_stdout {
        builder.init();
    } else {
        builder.with_writer(std::io::stderr).init();
    }
}

fn main() -> ExitCode {
    let mut command = Cli::command();
    let serve = command
        .find_subcommand_mut("serve")
        .expect("the serve subcommand")
        .clone();
    let (args, applied) = match config_file::apply(std::env::args_os().collect(), &serve) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = match command.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            // A bad value from the settings file: one line naming the key.
            if let (Some(file), Some(key)) = (&applied.file, config_file::error_key(&e))
                && applied.keys.contains(&key)
            {
                let msg = e.to_string();
                let first = msg
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                eprintln!("error: {file}: setting `{key}`: {first}");
                return ExitCode::from(2);
            }
            e.exit()
        }
    };
    if let Some(("config", sub)) = matches.subcommand()
        && let Some(("print", print)) = sub.subcommand()
    {
        print_config(&serve, print, &applied);
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `loyalty config print`: every setting of `serve`, where it comes from,
/// secrets masked, as TOML a --config file could hold.
fn print_config(serve: &clap::Command, m: &clap::ArgMatches, applied: &config_file::Applied) {
    use clap::parser::ValueSource;
    use std::fmt::Write as _;
    let mut out = String::from("# the settings `loyalty serve` would run with\n");
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | "config") {
            continue;
        }
        let values: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = if applied.keys.iter().any(|k| k == long) {
            "file"
        } else {
            match m.value_source(id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            }
        };
        let Some(value) = values.first() else {
            let _ = writeln!(out, "# {long} = (unset)");
            continue;
        };
        let value = if config_file::SECRET_KEYS.contains(&long) {
            config_file::mask(value)
        } else {
            value.clone()
        };
        let literal = if value.parse::<f64>().is_ok() || value == "true" || value == "false" {
            value
        } else {
            format!("{value:?}")
        };
        let _ = writeln!(out, "{long} = {literal}  # {source}");
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => {
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
                events: loyalty_server::events::EventsConfig {
                    enabled: !a.no_dispatcher,
                    retry_base_ms: a.dispatch_retry_base_ms,
                    attempts_max: a.dispatch_attempts_max,
                    lease_ttl_ms: a.lease_ttl_ms,
                    balance_cache_entries: usize::try_from(a.balance_cache_entries)
                        .unwrap_or(100_000),
                    stream_buffer_events: usize::try_from(a.stream_buffer_events).unwrap_or(1024),
                    nats_url: a.nats_url,
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
                },
            };
            // Run the server as a task so every part of it is polled by the
            // worker threads, not by the thread blocked in `block_on`.
            runtime()?.block_on(async { tokio::spawn(serve(cfg)).await })??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Staff {
            command:
                StaffCommand::Create {
                    name,
                    role,
                    storage,
                },
        } => {
            init_logs("warn", false);
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role {role:?}: expected admin, supervisor, pit_boss, cashier or auditor")
            })?;
            let name = name.trim().to_string();
            if !loyalty_core::chars_within(&name, 1, loyalty_core::limits::NAME_CHARS_MAX) {
                anyhow::bail!("--name must be 1-200 characters");
            }
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
        Command::Verify {
            storage,
            checkpoint,
        } => {
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
            let pb = loyalty_server::progress::bar(
                u64::try_from(entries).unwrap_or(0),
                "verifying",
                "entries",
            );
            let bar = pb.clone();
            let (checked, drift, total) = rt
                .block_on(store.read(move |tx| {
                    ops::verify_with_progress(tx, 1000, &mut |n| bar.set_position(n))
                }))
                .context("verification failed to run")?;
            pb.finish_and_clear();
            let mut report = serde_json::json!({"accounts_checked": checked, "drift": drift, "drift_count": total});
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
                            let now =
                                loyalty_store::chain::checkpoint(tx, seq, &mut |player, head| {
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
            drop(rt);
            std::thread::spawn(move || drop(store)).join().ok();
            if !changed.is_empty() {
                eprintln!(
                    "error: the ledger no longer extends the checkpoint: history changed for {}",
                    changed.join(", ")
                );
                return Ok(ExitCode::from(1));
            }
            if total == 0 {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: {total} drift finding(s) in {checked} accounts");
                Ok(ExitCode::from(1))
            }
        }
        Command::Migrate(storage) => {
            init_logs("info", false);
            let store = open_store(&storage.config())?;
            eprintln!("migrated {}", store.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            storage,
            from,
            to,
            format,
        } => {
            use futures_util::StreamExt;
            use std::io::Write;
            init_logs("warn", false);
            let format = loyalty_server::http::export::parse_format(Some(&format))
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let store = open_store(&storage.config())?;
            let rt = runtime()?;
            let result = rt.block_on(async {
                let up_to = store.read(|tx| tx.last_entry_seq()).await?;
                let pb = loyalty_server::progress::bar(
                    u64::try_from(up_to).unwrap_or(0),
                    "exporting",
                    "entries",
                );
                let chunks =
                    loyalty_server::http::export::stream(store.clone(), format, up_to, from, to);
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
            drop(rt);
            std::thread::spawn(move || drop(store)).join().ok();
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::MigrateTo { data_dir, to } => {
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
        // Answered in `main`, before the command line becomes a `Cli`.
        Command::Config { .. } => Ok(ExitCode::SUCCESS),
        Command::Seed {
            storage,
            players,
            entries,
        } => {
            init_logs("warn", false);
            let store = open_store(&storage.config())?;
            let rt = runtime()?;
            let started = std::time::Instant::now();
            let report = rt.block_on(seed(&store, players, entries));
            drop(rt);
            std::thread::spawn(move || drop(store)).join().ok();
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
        Command::Bench(a) => {
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
    }
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
                        ops::create_player(tx, &ctx, format!("Seeded player {i}"), None)
                            .map(|p| p.id)
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
                    ops::manual_reward(
                        tx,
                        &ctx,
                        ops::ManualReward {
                            player_id,
                            points: 1 + (i % 97) as i64,
                            reason: format!("seeded reward {i}"),
                            staff_id: staff,
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
