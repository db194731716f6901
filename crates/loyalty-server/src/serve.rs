//! Opening storage and running the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use loyalty_store::Store;
use loyalty_store::postgres::PgStore;
use loyalty_store::sqlite::{SqliteOptions, SqliteStore};

use crate::app::{AppState, Settings};
use crate::ratelimit::{Limit, MemoryLimiter, RateLimiter, RedisLimiter};

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Embedded SQLite in this directory.
    DataDir(PathBuf),
    /// A database URL, and the connection pool size for PostgreSQL.
    Url(String, usize),
}

/// Opens the configured storage.
pub fn open_store(cfg: &StorageConfig) -> anyhow::Result<Store> {
    open_store_with(cfg, &SqliteOptions::default())
}

/// [`open_store`] with the embedded store's options.
pub fn open_store_with(cfg: &StorageConfig, sqlite: &SqliteOptions) -> anyhow::Result<Store> {
    match cfg {
        StorageConfig::DataDir(dir) => {
            let s = SqliteStore::open_with(dir, sqlite.clone())
                .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
            Ok(Store::Sqlite(Arc::new(s)))
        }
        StorageConfig::Url(url, pool_size) => {
            let pool_size = *pool_size;
            if let Some(path) = url.strip_prefix("sqlite://") {
                let s = SqliteStore::open_with(&PathBuf::from(path), sqlite.clone())
                    .with_context(|| format!("cannot open the data directory {path}"))?;
                return Ok(Store::Sqlite(Arc::new(s)));
            }
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                let s = PgStore::open(url, pool_size).with_context(|| {
                    format!("cannot open {}", loyalty_store::postgres::redact(url))
                })?;
                return Ok(Store::Postgres(Arc::new(s)));
            }
            let scheme = url.split("://").next().unwrap_or("");
            bail!("unsupported database URL scheme {scheme:?}: use postgres://… or sqlite://DIR")
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Storage.
    pub storage: StorageConfig,
    /// Behaviour.
    pub settings: Settings,
    /// Manual-reward limit.
    pub reward_limit: Limit,
    /// Redis for the shared rate limiter (several nodes); in memory if None.
    pub redis_url: Option<String>,
    /// TLS files for Redis (with a `rediss://` URL).
    pub redis_tls: crate::tls::TlsFiles,
    /// Event dispatch, live stream and NATS relay.
    pub events: crate::events::EventsConfig,
    /// Bounds of every connection.
    pub conn_limits: crate::listen::ConnLimits,
    /// A separate listener for `/metrics` (then the main one answers 404 there).
    pub metrics_listen: Option<SocketAddr>,
    /// The embedded store's options (the write-ahead log's bound).
    pub sqlite: SqliteOptions,
}

/// Runs the server until Ctrl-C / SIGTERM.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    // Opening may block (connecting, migrating): keep it off the async threads.
    let (storage, sqlite) = (cfg.storage.clone(), cfg.sqlite.clone());
    let store = tokio::task::spawn_blocking(move || open_store_with(&storage, &sqlite))
        .await
        .context("opening storage panicked")??;
    if cfg.settings.test_mode {
        eprintln!("**************************************************************");
        eprintln!("*  TEST MODE: /v1/test/clock and /v1/test/faults are enabled  *");
        eprintln!("*  never run test mode in production                         *");
        eprintln!("**************************************************************");
        tracing::warn!("test_mode_enabled");
    }
    let limiter: Arc<dyn RateLimiter> = match &cfg.redis_url {
        Some(url) => Arc::new(
            RedisLimiter::connect(url, &cfg.redis_tls, cfg.reward_limit)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Redis: {}", e.0))?,
        ),
        None => Arc::new(MemoryLimiter::new(cfg.reward_limit)),
    };
    crate::metrics::install();
    let mut settings = cfg.settings.clone();
    settings.metrics_on_main = cfg.metrics_listen.is_none();
    let state = AppState::with_events(store.clone(), settings, limiter, cfg.events.clone());
    // The key that signs paging cursors, shared by every node on the database.
    let mut candidate = [0u8; 32];
    getrandom::fill(&mut candidate).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let candidate = crate::auth::hex(&candidate);
    let now = state.clock.now();
    let key = store
        .write(move |tx| tx.server_key("cursor_hmac", &candidate, now))
        .await
        .context("cannot read the server key")?;
    let _ = state.cursor_key.set(key.into_bytes());
    // The key that seals webhook secrets at rest, shared the same way.
    let mut candidate = [0u8; 32];
    getrandom::fill(&mut candidate).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let candidate = crate::auth::hex(&candidate);
    let webhook_key = store
        .write(move |tx| tx.server_key("webhook_seal", &candidate, now))
        .await
        .context("cannot read the server key")?;
    let _ = state.webhook_key.set(webhook_key.clone().into_bytes());
    let app = crate::http::router(state.clone());
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if let Some(metrics_addr) = cfg.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        let bound = metrics_listener.local_addr()?;
        tracing::info!(addr = %bound, "metrics_listening");
        tokio::spawn(crate::listen::serve(
            metrics_listener,
            crate::http::metrics_router(state.clone()),
            cfg.conn_limits,
            stopping(&state),
        ));
    }
    tracing::info!(addr = %addr, storage = %store.describe(), test_mode = cfg.settings.test_mode, "listening");
    // Follow the shared database clock before serving (no-op for SQLite).
    if let Err(e) = crate::clock::sync_once(&state.clock, &state.store).await {
        tracing::warn!(error = %e, "initial database clock sync failed");
    }
    let sync_every = if cfg.settings.test_mode { 100 } else { 1000 };
    tokio::spawn(crate::clock::sync(
        state.clone(),
        std::time::Duration::from_millis(sync_every),
    ));
    crate::events::start(&state)
        .await
        .context("cannot start event dispatch")?;
    tokio::spawn(crate::background::retry_pending_accruals(state.clone()));
    tokio::spawn(crate::background::purge_idempotency_records(state.clone()));
    tokio::spawn(crate::background::expire_escrows(state.clone()));
    if cfg.events.enabled {
        tokio::spawn(crate::webhooks::sync(
            state.clone(),
            webhook_key.into_bytes(),
        ));
    }
    // SIGTERM or Ctrl-C: every listener stops accepting and live streams end.
    let signalled = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signalled.shutdown.send_replace(true);
    });
    crate::listen::serve(listener, app, cfg.conn_limits, stopping(&state)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when the server starts shutting down.
fn stopping(state: &AppState) -> impl std::future::Future<Output = ()> + use<> {
    let mut rx = state.shutdown.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
