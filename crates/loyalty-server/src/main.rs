//! The `loyalty` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod commands;
mod config_file;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use loyalty_server::serve::StorageConfig;

/// mimalloc instead of glibc's malloc: see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Write the ledger (optionally a date range) to stdout as CSV or JSON
    /// lines; with `--events`, every event instead (archived ones too).
    Export {
        #[command(flatten)]
        storage: StorageArgs,
        /// Only entries created at or after this instant (RFC 3339).
        #[arg(long)]
        from: Option<jiff::Timestamp>,
        /// Only entries created before this instant (RFC 3339).
        #[arg(long)]
        to: Option<jiff::Timestamp>,
        /// Every event, oldest first, as JSON lines (the envelope of `GET
        /// /v1/events`): the archive files, checked, then the outbox.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        events: bool,
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
    /// Where archived events are kept (docs/events.md, "Retention");
    /// default `event-archive` in the data directory. Needed on PostgreSQL
    /// once events are archived.
    #[arg(long, env = "LOYALTY_EVENT_ARCHIVE_DIR")]
    event_archive_dir: Option<PathBuf>,
}

impl StorageArgs {
    fn config(&self) -> StorageConfig {
        match &self.database_url {
            Some(url) => StorageConfig::Url(url.clone(), self.db_pool_size as usize),
            None => StorageConfig::DataDir(self.data_dir.clone()),
        }
    }

    /// The event archive directory: the one named, else the embedded
    /// store's own; none on PostgreSQL unless named.
    fn archive_dir(&self) -> Option<PathBuf> {
        match (&self.event_archive_dir, &self.database_url) {
            (Some(dir), _) => Some(dir.clone()),
            (None, None) => Some(self.data_dir.join("event-archive")),
            (None, Some(_)) => None,
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
    /// Failed bearer tokens from one client address per minute before every
    /// token it presents is refused (429) for the rest of the minute.
    #[arg(long, env = "LOYALTY_AUTH_FAILURES_MAX", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    auth_failures_max: u32,
    /// Hosts webhook endpoints may name, comma-separated (e.g.
    /// `hooks.example.com,127.0.0.1`); unset: any host whose addresses are
    /// public (no loopback, private or link-local addresses).
    #[arg(long, env = "LOYALTY_WEBHOOK_ALLOW_HOSTS", value_delimiter = ',')]
    webhook_allow_hosts: Vec<String>,
    /// How long one webhook delivery may take, milliseconds.
    #[arg(long, env = "LOYALTY_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    webhook_timeout_ms: u64,
    /// How long Idempotency-Key responses are kept, hours (at least 24).
    #[arg(long, env = "LOYALTY_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u32).range(24..))]
    idempotency_retention_hours: u32,
    /// Redis URL for the rate limiter shared by several nodes (in memory if unset).
    #[arg(long, env = "LOYALTY_REDIS_URL")]
    redis_url: Option<String>,
    /// PEM file of the CA certificates that sign the Redis server's certificate (with a rediss:// URL).
    #[arg(long, env = "LOYALTY_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a Redis server that verifies its clients; with --redis-key-file.
    #[arg(long, env = "LOYALTY_REDIS_CERT_FILE", requires = "redis_key_file")]
    redis_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); with --redis-cert-file.
    #[arg(long, env = "LOYALTY_REDIS_KEY_FILE", requires = "redis_cert_file")]
    redis_key_file: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "LOYALTY_LOG", default_value = "info")]
    log: String,
    /// NATS server for the JetStream event relay (nats://host:port); no relay if unset.
    #[arg(long, env = "LOYALTY_NATS_URL")]
    nats_url: Option<String>,
    /// PEM file of the CA certificates that sign the NATS server's certificate; the relay then requires TLS.
    #[arg(long, env = "LOYALTY_NATS_CA_FILE")]
    nats_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a NATS server that verifies its clients; with --nats-key-file.
    #[arg(long, env = "LOYALTY_NATS_CERT_FILE", requires = "nats_key_file")]
    nats_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); with --nats-cert-file.
    #[arg(long, env = "LOYALTY_NATS_KEY_FILE", requires = "nats_cert_file")]
    nats_key_file: Option<PathBuf>,
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
    /// Events older than this many days that every subscriber, webhook and
    /// the relay have passed move to archive files (0: keep every event in
    /// the database).
    #[arg(long, env = "LOYALTY_EVENT_RETENTION_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    event_retention_days: u32,
    /// How often old events are looked for, ms.
    #[arg(long, env = "LOYALTY_EVENT_ARCHIVE_INTERVAL_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    event_archive_interval_ms: u64,
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
    /// (manual rewards; needs an admin token and a high --reward-rate-limit),
    /// `redeem` (hold one point and capture it; needs an admin token), or a
    /// read over existing data (`loyalty seed`): `balance`, `ledger` (a
    /// 50-entry page), `audit` (a 50-entry search by staff member),
    /// `search` (players by name), or `read` for all four.
    #[arg(long, default_value = "complete", value_parser = ["complete", "reward", "redeem", "read", "balance", "ledger", "audit", "search"])]
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
        Command::Serve(a) => commands::serve_command(a),
        Command::Staff {
            command:
                StaffCommand::Create {
                    name,
                    role,
                    storage,
                },
        } => commands::staff_create(name, role, storage),
        Command::Verify {
            storage,
            checkpoint,
        } => commands::verify(storage, checkpoint),
        Command::Migrate(storage) => commands::migrate(storage),
        Command::Export {
            storage,
            from,
            to,
            format,
            events,
        } => {
            if events {
                commands::export_events(storage, format)
            } else {
                commands::export(storage, from, to, format)
            }
        }
        Command::MigrateTo { data_dir, to } => commands::migrate_to(data_dir, to),
        // Answered in `main`, before the command line becomes a `Cli`.
        Command::Config { .. } => Ok(ExitCode::SUCCESS),
        Command::Seed {
            storage,
            players,
            entries,
        } => commands::seed_command(storage, players, entries),
        Command::Bench(a) => commands::bench(a),
    }
}
