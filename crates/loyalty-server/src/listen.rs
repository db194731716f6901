//! The accept loop: every connection the server keeps is bounded.
//!
//! * at most `max_connections` at once; one more is answered `429` with the
//!   error envelope and closed;
//! * request headers (and the wait for the next request on a kept-alive
//!   connection) must arrive within `header_timeout` (hyper closes it);
//! * a connection on which no byte moves for `idle_timeout` while no handler
//!   is working is closed (a client that stopped reading a response);
//! * the body timeout is enforced where bodies are read ([`crate::extract`]).
//!
//! Each request carries the client's address ([`ClientAddr`]) for the
//! failed-authentication throttle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::auth::ClientAddr;

/// Default of `--header-timeout-ms`.
pub const HEADER_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default of `--idle-timeout-ms`.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Default of `--max-connections`.
pub const MAX_CONNECTIONS_DEFAULT: usize = 1024;
/// Connections over the cap answered at once (beyond: closed unanswered).
const REFUSALS_MAX: usize = 64;
/// Default of `--shutdown-grace-ms`.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 10_000;

/// Bounds of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Request headers must arrive within this (also the longest wait for
    /// the next request on a kept-alive connection).
    pub header_timeout: Duration,
    /// No byte moved for this long, with no handler working: closed.
    pub idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_millis(HEADER_TIMEOUT_MS_DEFAULT),
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
            max_connections: MAX_CONNECTIONS_DEFAULT,
            shutdown_grace: Duration::from_millis(SHUTDOWN_GRACE_MS_DEFAULT),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting (new connections are refused) and lets the requests in flight
/// finish, at most `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS_MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("loyalty_connections_refused_total").increment(1);
            if let Ok(r) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, peer).await;
                    drop(r);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let working = activity.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            let app = app.clone();
            let working = working.clone();
            async move {
                let _busy = working.busy();
                Ok::<_, Infallible>(
                    app.oneshot(req.map(Body::new))
                        .await
                        .unwrap_or_else(|never: Infallible| match never {}),
                )
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            loop {
                tokio::select! {
                    result = &mut conn => {
                        if let Err(e) = result {
                            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep(tick) => {
                        if activity.idle_for() >= idle {
                            tracing::info!(client = %peer, idle_ms = idle.as_millis() as u64, "connection_idle_closed");
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting_down");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
    }
}

/// Answers a connection over the cap with 429 and the envelope, then closes it.
async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    tracing::warn!(client = %peer, "connection refused: too many connections");
    // Read what the client sent first, so closing does not reset the
    // connection before it reads the answer.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let cid = crate::correlation::generate();
    let body = serde_json::json!({"error": {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "the server has too many open connections; retry later",
        "correlation_id": cid,
        "details": {"retry_after_seconds": 1},
    }})
    .to_string();
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\nx-correlation-id: {cid}\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// When a connection last moved a byte, and how many handlers work on it.
#[derive(Clone)]
struct Activity(Arc<ActivityInner>);

struct ActivityInner {
    epoch: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(ActivityInner {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }))
    }
    fn touch(&self) {
        let ms = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Relaxed);
    }
    /// How long nothing happened (zero while a handler works).
    fn idle_for(&self) -> Duration {
        if self.0.busy.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed));
        self.0.epoch.elapsed().saturating_sub(last)
    }
    fn busy(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A handler at work on the connection.
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A socket that records when it last moved a byte.
struct Tracked {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
