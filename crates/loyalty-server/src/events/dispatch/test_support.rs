//! What the dispatcher's unit tests share: an embedded store in a temporary
//! directory with short retry delays, events to feed it, and a local
//! subscriber that records what it sees and can be made slow or failing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use loyalty_store::{DeadLetterQuery, EventRecord, NewEvent};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{Handler, LocalHandler, Subscription};
use crate::app::{AppState, Settings};
use crate::events::EventsConfig;
use crate::ratelimit::{Limit, MemoryLimiter};
use crate::serve::{StorageConfig, open_store};

pub(super) type Log = Arc<Mutex<Vec<(&'static str, i64)>>>;

pub(super) fn state(dir: &tempfile::TempDir) -> AppState {
    let store = open_store(&StorageConfig::DataDir(dir.path().join("data"))).unwrap();
    let cfg = EventsConfig {
        poll_interval_ms: 20,
        retry_base_ms: 5,
        retry_max_ms: 20,
        attempts_max: 3,
        ..EventsConfig::default()
    };
    let limiter = Arc::new(MemoryLimiter::new(Limit::default()));
    AppState::with_events(store, Settings::default(), limiter, cfg)
}

pub(super) async fn append(st: &AppState, n: usize) {
    for i in 0..n {
        st.store
            .write(move |tx| {
                tx.append_event(NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: if i % 2 == 0 {
                        "EVEN_HAPPENED"
                    } else {
                        "ODD_HAPPENED"
                    },
                    version: 1,
                    occurred_at: Timestamp::now(),
                    correlation_id: "test".into(),
                    idempotency_key: None,
                    source: "test",
                    payload: loyalty_core::events::Payload::of(&serde_json::json!({"i": i})),
                })
            })
            .await
            .unwrap();
    }
}

pub(super) async fn dead_letters(st: &AppState) -> Vec<loyalty_store::DeadLetter> {
    st.store
        .read(|tx| {
            tx.dead_letters(&DeadLetterQuery {
                limit: 10,
                ..Default::default()
            })
        })
        .await
        .unwrap()
}

pub(super) async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records each event; optionally waits for a permit first, or fails the
/// first `fail_first` attempts of every event.
pub(super) struct Recorder {
    name: &'static str,
    log: Log,
    gate: Option<Arc<Semaphore>>,
    fail_first: u32,
    attempts: AtomicU32,
}

impl LocalHandler for Recorder {
    fn handle<'a>(&'a self, ev: &'a EventRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(g) = &self.gate {
                g.acquire().await.map_err(|e| e.to_string())?.forget();
            }
            let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= self.fail_first {
                return Err(format!("attempt {n} fails"));
            }
            self.attempts.store(0, Ordering::SeqCst);
            self.log.lock().unwrap().push((self.name, ev.seq));
            Ok(())
        })
    }
}

pub(super) fn sub(
    name: &'static str,
    priority: i32,
    types: Option<&'static [&'static str]>,
    log: &Log,
    gate: Option<Arc<Semaphore>>,
    fail_first: u32,
) -> Subscription {
    Subscription {
        name,
        event_types: types,
        priority,
        handler: Handler::Local(Arc::new(Recorder {
            name,
            log: log.clone(),
            gate,
            fail_first,
            attempts: AtomicU32::new(0),
        })),
    }
}
