//! The dispatcher: in-process subscribers fed from the outbox.
//!
//! Each subscriber runs in its own task with its own position, so a failing
//! or slow one never holds up another, nor the write path (writers only
//! [`super::EventHub::poke`]). A subscriber reads the outbox after its
//! position in batches of at most [`super::BATCH_EVENTS_MAX`], skips events
//! its type filter does not want, and handles the rest in seq order:
//!
//! * **Durable** subscribers ([`DurableHandler`]) write to the database. The
//!   dispatcher runs a whole batch in **one transaction together with the
//!   checkpoint** (each event in a savepoint), so an event's effects and the
//!   checkpoint past it commit together: after a crash nothing is skipped and
//!   nothing is applied twice. Their checkpoint lives in
//!   `subscriber_checkpoints`; with several nodes one node at a time runs each
//!   (a lease row, `subscriber:{name}`).
//! * **Local** subscribers ([`LocalHandler`]) keep state in this process's
//!   memory (the balance cache). Their position is in memory too and starts
//!   at the outbox head: their state starts empty with the process.
//!
//! A failed delivery is retried with exponential backoff (`retry_base_ms`
//! doubling up to `retry_max_ms`) up to `attempts_max` attempts in all; then
//! the event becomes a dead letter for that subscriber (with the error and
//! attempts, in the same transaction as the checkpoint for durable ones) and
//! the subscriber moves on. Dead letters are replayed on request (status
//! REPLAY_REQUESTED → REPLAYED, or DEAD again with the new error).
//!
//! Delivery is at least once and in seq order per subscriber. Duplicates are
//! suppressed per subscriber by event id: the checkpoint, a bounded set of
//! recently handled ids, and unique `(…, event_id)` keys on what the
//! shipped durable subscribers write.
//!
//! **Priority**: for the same event, a subscriber waits until every
//! subscriber of lower priority on this node that wants the event has handled
//! it — unless that one is failing (in backoff), not running here (no
//! lease), or has not finished within [`PRIORITY_WAIT_MS_MAX`]; then it
//! stops waiting for it until it catches up. Order among healthy subscribers
//! is strict; a stuck one delays the others once, by a bounded time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use loyalty_core::Backoff;
use loyalty_store::{DeadLetterQuery, EventRecord, NewDeadLetter, StoreError, Tx, dispatch as dl};
use serde::Serialize;
use uuid::Uuid;

use crate::app::AppState;

/// Longest a subscriber waits for a lower-priority one on one event.
pub const PRIORITY_WAIT_MS_MAX: u64 = 2_000;
/// How long a lease lasts without renewal.
pub const LEASE_TTL_MS_DEFAULT: i64 = 15_000;
/// Event ids remembered per subscriber for duplicate suppression.
pub const RECENT_IDS_MAX: usize = 8_192;
/// How long a durable subscriber lets new events gather after waking, so
/// that under load one transaction carries many events.
pub const DURABLE_LINGER_MS: u64 = 50;
/// A durable subscriber whose batch holds no event it wants moves its
/// checkpoint in memory only, and stores it at most this often while events
/// keep coming (and as soon as it is idle): a commit per batch of skipped
/// events would cost the writer an fsync for nothing. After a crash it
/// re-reads, and skips again, at most this much of the outbox.
pub const SKIPPED_CHECKPOINT_MS: u64 = 1_000;
/// Dead letters replayed per pass.
pub const REPLAY_BATCH_MAX: u32 = 100;

/// Work to do after the transaction commits (e.g. a log line).
pub type Deferred = Box<dyn FnOnce() + Send>;

/// What a durable handler may know besides the event.
#[derive(Debug, Clone)]
pub struct HandleCtx {
    /// The server clock when the transaction started.
    pub now: Timestamp,
}

/// A subscriber that writes to the database, inside the dispatcher's
/// transaction. Must be quick (it runs while the transaction is open).
pub trait DurableHandler: Send + Sync + 'static {
    /// Handles one event; `Err` is retried later.
    fn handle(
        &self,
        tx: &mut dyn Tx,
        event: &EventRecord,
        ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String>;
}

/// A subscriber whose state is in this process's memory.
pub trait LocalHandler: Send + Sync + 'static {
    /// Handles one event; `Err` is retried later.
    fn handle<'a>(&'a self, event: &'a EventRecord) -> BoxFuture<'a, Result<(), String>>;

    /// Called when `event` became a dead letter: state that depends on
    /// seeing every event must not pretend it did.
    fn on_dead_letter(&self, _event: &EventRecord) {}
}

/// How a subscriber handles events.
#[derive(Clone)]
pub enum Handler {
    /// Database effects, committed with the checkpoint; one node at a time.
    Durable(Arc<dyn DurableHandler>),
    /// In-memory effects on every node.
    Local(Arc<dyn LocalHandler>),
}

/// A subscriber: name, event-type filter, priority and handler.
#[derive(Clone)]
pub struct Subscription {
    /// Unique name (checkpoint, dead letters, metrics).
    pub name: &'static str,
    /// Event types wanted; `None` for all.
    pub event_types: Option<&'static [&'static str]>,
    /// Lower runs first for the same event.
    pub priority: i32,
    /// The handler.
    pub handler: Handler,
}

fn wants(types: Option<&'static [&'static str]>, event_type: &str) -> bool {
    types.is_none_or(|t| t.contains(&event_type))
}

/// One subscriber's progress on this node, shared with its peers (priority)
/// and the API (`GET /v1/subscribers`).
#[derive(Debug)]
pub struct Progress {
    /// Name.
    pub name: &'static str,
    /// Priority.
    pub priority: i32,
    /// Filter.
    pub event_types: Option<&'static [&'static str]>,
    /// Whether durable.
    pub durable: bool,
    position: AtomicI64,
    healthy: AtomicBool,
    active: AtomicBool,
    replay_hint: AtomicBool,
}

impl Progress {
    /// The last seq fully handled here (delivered, skipped or dead-lettered).
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::SeqCst)
    }
    /// False while retrying a failed delivery.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }
    /// False while another node runs it (durable, no lease).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }
}

/// The subscribers of this node.
#[derive(Debug, Default)]
pub struct Registry {
    subs: RwLock<Vec<Arc<Progress>>>,
    changed: tokio::sync::Notify,
}

/// A subscriber's state for the API.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberView {
    /// Name.
    pub name: &'static str,
    /// `durable` or `local`.
    pub kind: &'static str,
    /// Priority.
    pub priority: i32,
    /// Filter (`null` = all).
    pub event_types: Option<&'static [&'static str]>,
    /// Last seq handled here.
    pub position: i64,
    /// Running on this node.
    pub active: bool,
    /// Not retrying a failure.
    pub healthy: bool,
}

impl Registry {
    /// Every subscriber, by priority.
    pub fn list(&self) -> Vec<SubscriberView> {
        let subs = self.subs.read().map(|s| s.clone()).unwrap_or_default();
        subs.iter()
            .map(|p| SubscriberView {
                name: p.name,
                kind: if p.durable { "durable" } else { "local" },
                priority: p.priority,
                event_types: p.event_types,
                position: p.position(),
                active: p.active(),
                healthy: p.healthy(),
            })
            .collect()
    }

    /// Whether a subscriber of that name runs here.
    pub fn knows(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<Arc<Progress>> {
        self.subs
            .read()
            .ok()?
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Asks a subscriber to look for replay requests now.
    pub fn hint_replay(&self, name: &str) {
        if let Some(p) = self.get(name) {
            p.replay_hint.store(true, Ordering::SeqCst);
            self.changed.notify_waiters();
        }
    }

    /// Position of a subscriber on this node.
    pub fn position(&self, name: &str) -> Option<i64> {
        self.get(name).map(|p| p.position())
    }
}

/// Starts one task per subscription. `head` is where local subscribers start.
pub fn start(state: &AppState, subs: Vec<Subscription>, head: i64) {
    let registry = state.events.registry.clone();
    let mut progress = Vec::with_capacity(subs.len());
    let mut names = HashSet::new();
    for s in &subs {
        assert!(names.insert(s.name), "two subscribers named {}", s.name);
        progress.push(Arc::new(Progress {
            name: s.name,
            priority: s.priority,
            event_types: s.event_types,
            durable: matches!(s.handler, Handler::Durable(_)),
            position: AtomicI64::new(head),
            healthy: AtomicBool::new(true),
            active: AtomicBool::new(false),
            replay_hint: AtomicBool::new(true),
        }));
    }
    progress.sort_by_key(|p| p.priority);
    if let Ok(mut r) = registry.subs.write() {
        r.extend(progress.iter().cloned());
    }
    for sub in subs {
        let me = progress
            .iter()
            .find(|p| p.name == sub.name)
            .cloned()
            .expect("registered");
        let peers = progress
            .iter()
            .filter(|p| p.priority < sub.priority)
            .cloned()
            .collect();
        let name = sub.name;
        let runner = Runner {
            state: state.clone(),
            delivered_total: metrics::counter!(
                "loyalty_subscriber_delivered_total", "subscriber" => name),
            latency: metrics::histogram!(
                "loyalty_dispatch_latency_seconds", "subscriber" => name),
            sub,
            me,
            peers,
            gave_up: HashMap::new(),
            recent: RecentIds::default(),
            last_replay_scan: None,
            stored: None,
        };
        tokio::spawn(runner.run());
    }
}

/// A bounded set of recently handled event ids.
#[derive(Default)]
struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    fn contains(&self, id: &Uuid) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > RECENT_IDS_MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

struct Runner {
    state: AppState,
    sub: Subscription,
    me: Arc<Progress>,
    peers: Vec<Arc<Progress>>,
    gave_up: HashMap<&'static str, i64>,
    recent: RecentIds,
    last_replay_scan: Option<Instant>,
    /// Durable subscribers: the checkpoint as stored, and when this node
    /// stored (or read) it.
    stored: Option<(i64, Instant)>,
    /// Per-event metrics, looked up once.
    delivered_total: metrics::Counter,
    latency: metrics::Histogram,
}

#[derive(Default)]
struct BatchOutcome {
    last: Option<i64>,
    delivered: Vec<(Uuid, Timestamp)>,
    deferred: Vec<Deferred>,
    failure: Option<(Arc<EventRecord>, String)>,
}

/// Why a durable batch's transaction did not commit.
enum BatchError {
    /// The store failed.
    Store(StoreError),
    /// A handler failed while the batch ran without per-event savepoints.
    Handler,
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Store(e)
    }
}

/// One durable batch inside the dispatcher's transaction: the wanted events
/// through the handler, then the checkpoint past the last one handled. With
/// `per_event` each event runs in a savepoint and a failure stops the batch
/// after the events before it; without, a failure fails the transaction.
#[allow(clippy::too_many_arguments)]
fn durable_tx(
    tx: &mut dyn Tx,
    h: &dyn DurableHandler,
    ctx: &HandleCtx,
    name: &str,
    batch: Vec<Arc<EventRecord>>,
    wanted: Vec<bool>,
    fault: Option<String>,
    per_event: bool,
) -> Result<BatchOutcome, BatchError> {
    let mut out = BatchOutcome::default();
    for (ev, want) in batch.into_iter().zip(wanted) {
        if !want {
            out.last = Some(ev.seq);
            continue;
        }
        if let Some(e) = &fault {
            out.failure = Some((ev, e.clone()));
            break;
        }
        if !per_event {
            let d = h.handle(tx, &ev, ctx).map_err(|_| BatchError::Handler)?;
            out.deferred.extend(d);
            out.delivered.push((ev.event_id, ev.occurred_at));
            out.last = Some(ev.seq);
            continue;
        }
        tx.savepoint()?;
        match h.handle(tx, &ev, ctx) {
            Ok(d) => {
                tx.release_savepoint()?;
                out.deferred.extend(d);
                out.delivered.push((ev.event_id, ev.occurred_at));
                out.last = Some(ev.seq);
            }
            Err(e) => {
                tx.rollback_savepoint()?;
                out.failure = Some((ev, e));
                break;
            }
        }
    }
    if let Some(last) = out.last {
        tx.set_checkpoint(name, last, ctx.now)?;
    }
    Ok(out)
}

impl Runner {
    fn name(&self) -> &'static str {
        self.sub.name
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.state.events.config;
        // The dispatcher stops doubling after 20 doublings (attempt 21), even
        // when `retry_max_ms` is larger still.
        Backoff::new(c.retry_base_ms, c.retry_max_ms).delay(attempt.min(21))
    }

    fn injected_fault(&self) -> Option<String> {
        self.state
            .faults
            .subscriber_fails(self.name())
            .then(|| format!("fault injected (test mode) in subscriber {}", self.name()))
    }

    fn advance(&self, seq: i64) {
        self.me.position.fetch_max(seq, Ordering::SeqCst);
        let name = self.name();
        let head = self.state.events.head().max(seq);
        metrics::gauge!("loyalty_subscriber_checkpoint", "subscriber" => name).set(seq as f64);
        metrics::gauge!("loyalty_subscriber_lag_events", "subscriber" => name)
            .set((head - self.me.position()) as f64);
        self.state.events.registry.changed.notify_waiters();
    }

    fn delivered(&mut self, id: Uuid, occurred_at: Timestamp) {
        self.recent.insert(id);
        self.delivered_total.increment(1);
        let lag = self.state.clock.now().duration_since(occurred_at);
        self.latency.record(lag.as_secs_f64().max(0.0));
    }

    fn failed(&self) {
        metrics::counter!("loyalty_subscriber_failed_total", "subscriber" => self.name())
            .increment(1);
    }

    fn set_healthy(&self, healthy: bool) {
        self.me.healthy.store(healthy, Ordering::SeqCst);
        self.state.events.registry.changed.notify_waiters();
    }

    async fn wait_for_events(&self, seen_head: i64) {
        let mut rx = self.state.events.watch_head();
        let poll = self.state.events.poll_interval();
        if *rx.borrow_and_update() > seen_head {
            return;
        }
        let _ = tokio::time::timeout(poll, async {
            tokio::select! {
                _ = rx.changed() => {},
                _ = self.state.events.registry.changed.notified() => {
                    // A replay hint: return to look for it.
                    if !self.me.replay_hint.load(Ordering::SeqCst) {
                        let _ = rx.changed().await;
                    }
                },
            }
        })
        .await;
    }

    /// The next events after `after`: from the tail's in-memory window when
    /// it covers them, else from the outbox.
    async fn read_batch(&self, after: i64) -> Result<Vec<Arc<EventRecord>>, StoreError> {
        if let Some(batch) = self.state.events.recent_after(after) {
            return Ok(batch);
        }
        let batch = self
            .state
            .store
            .read(move |tx| tx.events(after, super::BATCH_EVENTS_MAX, None))
            .await?;
        Ok(batch.into_iter().map(Arc::new).collect())
    }

    async fn run(self) {
        match self.sub.handler.clone() {
            Handler::Local(h) => self.run_local(h).await,
            Handler::Durable(h) => self.run_durable(h).await,
        }
    }

    // ------------------------------------------------------------ priority

    async fn await_peers(&mut self, seq: i64, types: &[&str]) {
        let deadline = Instant::now() + Duration::from_millis(PRIORITY_WAIT_MS_MAX);
        let registry = self.state.events.registry.clone();
        for peer in self.peers.clone() {
            if !types.iter().any(|t| wants(peer.event_types, t)) {
                continue;
            }
            if let Some(&g) = self.gave_up.get(peer.name) {
                if peer.position() < g {
                    continue;
                }
                self.gave_up.remove(peer.name);
            }
            loop {
                let notified = registry.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if peer.position() >= seq || !peer.healthy() || !peer.active() {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    tracing::warn!(
                        subscriber = self.name(),
                        waiting_for = peer.name,
                        seq,
                        "lower-priority subscriber is slow; not waiting for it until it catches up"
                    );
                    self.gave_up.insert(peer.name, seq);
                    break;
                }
                let _ = tokio::time::timeout(
                    (deadline - now).min(Duration::from_millis(100)),
                    notified,
                )
                .await;
            }
        }
    }

    // ------------------------------------------------------------ local

    async fn run_local(mut self, handler: Arc<dyn LocalHandler>) {
        self.me.active.store(true, Ordering::SeqCst);
        loop {
            self.replays(&Handler::Local(handler.clone())).await;
            let after = self.me.position();
            let batch = match self.read_batch(after).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(subscriber = self.name(), error = %e, "reading the outbox failed");
                    tokio::time::sleep(self.state.events.poll_interval()).await;
                    continue;
                }
            };
            if batch.is_empty() {
                self.wait_for_events(after).await;
                continue;
            }
            for ev in batch {
                if wants(self.sub.event_types, &ev.event_type)
                    && !self.recent.contains(&ev.event_id)
                {
                    self.await_peers(ev.seq, &[ev.event_type.as_str()]).await;
                    metrics::counter!("loyalty_subscriber_published_total", "subscriber" => self.name())
                        .increment(1);
                    self.deliver_local(&handler, &ev).await;
                }
                self.advance(ev.seq);
            }
        }
    }

    async fn deliver_local(&mut self, handler: &Arc<dyn LocalHandler>, ev: &EventRecord) {
        let attempts_max = self.state.events.config.attempts_max.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.injected_fault() {
                Some(e) => Err(e),
                None => handler.handle(ev).await,
            };
            match result {
                Ok(()) => {
                    self.set_healthy(true);
                    self.delivered(ev.event_id, ev.occurred_at);
                    return;
                }
                Err(error) => {
                    self.failed();
                    if attempt >= attempts_max {
                        handler.on_dead_letter(ev);
                        self.dead_letter(ev, &error, attempt).await;
                        self.set_healthy(true);
                        return;
                    }
                    tracing::warn!(subscriber = self.name(), seq = ev.seq, attempt, error = %error,
                        "event delivery failed; retrying");
                    self.set_healthy(false);
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
            }
        }
    }

    /// Records a dead letter (local subscribers); retries until stored.
    async fn dead_letter(&self, ev: &EventRecord, error: &str, attempts: u32) {
        let dead = NewDeadLetter {
            subscriber: self.name().to_string(),
            event_seq: ev.seq,
            event_id: ev.event_id,
            event_type: ev.event_type.clone(),
            error: error.to_string(),
            attempts,
            at: self.state.clock.now(),
        };
        let mut n = 0;
        loop {
            let d = dead.clone();
            match self
                .state
                .store
                .write(move |tx| tx.upsert_dead_letter(&d))
                .await
            {
                Ok(id) => {
                    self.log_dead_letter(ev, error, attempts, id);
                    return;
                }
                Err(e) => {
                    n += 1;
                    tracing::warn!(subscriber = self.name(), error = %e, "cannot store a dead letter; retrying");
                    tokio::time::sleep(self.backoff(n)).await;
                }
            }
        }
    }

    fn log_dead_letter(&self, ev: &EventRecord, error: &str, attempts: u32, id: i64) {
        metrics::counter!("loyalty_subscriber_dead_lettered_total", "subscriber" => self.name())
            .increment(1);
        tracing::error!(
            correlation_id = %ev.correlation_id,
            subscriber = self.name(),
            dead_letter_id = id,
            seq = ev.seq,
            event_id = %ev.event_id,
            event_type = %ev.event_type,
            attempts,
            error,
            "event_dead_lettered"
        );
    }

    // ------------------------------------------------------------ durable

    async fn run_durable(mut self, handler: Arc<dyn DurableHandler>) {
        let mut lease = Lease::new(format!("subscriber:{}", self.name()));
        // The checkpoint as this node last committed it; re-read from the
        // database whenever the lease is (re)taken.
        let mut known: Option<i64> = None;
        loop {
            let held = lease.hold(&self.state).await;
            if held != self.me.active() {
                self.me.active.store(held, Ordering::SeqCst);
                self.state.events.registry.changed.notify_waiters();
                known = None;
            }
            if !held {
                tokio::time::sleep(self.state.events.poll_interval()).await;
                continue;
            }
            self.replays(&Handler::Durable(handler.clone())).await;
            let name = self.name();
            let checkpoint = match known {
                Some(c) => c,
                None => match self.state.store.read(move |tx| tx.checkpoint(name)).await {
                    Ok(c) => {
                        let c = c.unwrap_or(0);
                        self.stored = Some((c, Instant::now()));
                        c
                    }
                    Err(e) => {
                        tracing::warn!(subscriber = name, error = %e, "reading the checkpoint failed");
                        tokio::time::sleep(self.state.events.poll_interval()).await;
                        continue;
                    }
                },
            };
            self.me.position.store(checkpoint, Ordering::SeqCst);
            let batch = match self.read_batch(checkpoint).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(subscriber = name, error = %e, "reading the outbox failed");
                    tokio::time::sleep(self.state.events.poll_interval()).await;
                    continue;
                }
            };
            if batch.is_empty() {
                known = Some(checkpoint);
                self.advance(checkpoint);
                if self.stored.is_some_and(|(c, _)| c < checkpoint)
                    && !self.store_checkpoint(checkpoint).await
                {
                    continue;
                }
                self.wait_for_events(checkpoint).await;
                tokio::time::sleep(Duration::from_millis(DURABLE_LINGER_MS)).await;
                continue;
            }
            self.durable_batch(&handler, batch, 1).await;
            known = Some(self.me.position());
        }
    }

    /// Runs `batch` in one transaction; on a failure, retries the failing
    /// event alone with backoff and finally dead-letters it.
    async fn durable_batch(
        &mut self,
        handler: &Arc<dyn DurableHandler>,
        batch: Vec<Arc<EventRecord>>,
        attempt: u32,
    ) {
        let types = self.sub.event_types;
        let wanted: Vec<bool> = batch
            .iter()
            .map(|e| wants(types, &e.event_type) && !self.recent.contains(&e.event_id))
            .collect();
        let stored_recently = self
            .stored
            .is_some_and(|(_, at)| at.elapsed() < Duration::from_millis(SKIPPED_CHECKPOINT_MS));
        if !wanted.contains(&true)
            && stored_recently
            && let Some(last) = batch.last()
        {
            self.advance(last.seq);
            return;
        }
        let matching: Vec<&str> = batch
            .iter()
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| e.event_type.as_str())
            .collect();
        if let Some(max) = batch
            .iter()
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| e.seq)
            .max()
        {
            let types: Vec<String> = matching.iter().map(|s| s.to_string()).collect();
            let refs: Vec<&str> = types.iter().map(String::as_str).collect();
            self.await_peers(max, &refs).await;
            if attempt == 1 {
                metrics::counter!("loyalty_subscriber_published_total", "subscriber" => self.name())
                    .increment(matching.len() as u64);
            }
        }
        let fault = self.injected_fault();
        let (name, now) = (self.name(), self.state.clock.now());
        // First without a savepoint per event (each costs the writer two
        // statements and page copies). If a handler fails, that transaction
        // rolls back whole and the batch runs again with a savepoint per
        // event, which keeps what the events before the failure did.
        let mut per_event = attempt > 1 || fault.is_some();
        let result = loop {
            let (h, batch, wanted, fault) = (
                handler.clone(),
                batch.clone(),
                wanted.clone(),
                fault.clone(),
            );
            let ctx = HandleCtx { now };
            let r = self
                .state
                .store
                .write_background(move |tx| {
                    durable_tx(tx, &*h, &ctx, name, batch, wanted, fault, per_event)
                })
                .await;
            match r {
                Err(BatchError::Handler) if !per_event => per_event = true,
                Err(BatchError::Handler) => {
                    break Err(StoreError::Internal(
                        "a handler failed inside per-event savepoints".into(),
                    ));
                }
                Err(BatchError::Store(e)) => break Err(e),
                Ok(o) => break Ok(o),
            }
        };
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                // Storage trouble is not the subscriber's fault: no attempt
                // is used; the batch is read again.
                tracing::warn!(subscriber = name, error = %e, "dispatch transaction failed");
                self.set_healthy(false);
                tokio::time::sleep(self.backoff(attempt)).await;
                return;
            }
        };
        if !out.deferred.is_empty() || !out.delivered.is_empty() {
            // A handler may have appended events (an alert).
            self.state.events.poke();
        }
        for d in out.deferred {
            d();
        }
        for (id, at) in out.delivered {
            self.delivered(id, at);
        }
        if let Some(last) = out.last {
            self.stored = Some((last, Instant::now()));
            self.advance(last);
        }
        let Some((ev, error)) = out.failure else {
            self.set_healthy(true);
            return;
        };
        self.failed();
        let attempts_max = self.state.events.config.attempts_max.max(1);
        if attempt >= attempts_max {
            self.durable_dead_letter(ev, error, attempt).await;
            self.set_healthy(true);
            return;
        }
        tracing::warn!(subscriber = name, seq = ev.seq, attempt, error = %error,
            "event delivery failed; retrying");
        self.set_healthy(false);
        tokio::time::sleep(self.backoff(attempt)).await;
        Box::pin(self.durable_batch(handler, vec![ev], attempt + 1)).await;
    }

    /// Stores a checkpoint that only skipped events moved; false (after a
    /// pause) if the store refused.
    async fn store_checkpoint(&mut self, seq: i64) -> bool {
        let (name, now) = (self.name(), self.state.clock.now());
        let result = self
            .state
            .store
            .write_background(move |tx| tx.set_checkpoint(name, seq, now))
            .await;
        match result {
            Ok(()) => {
                self.stored = Some((seq, Instant::now()));
                true
            }
            Err(e) => {
                tracing::warn!(subscriber = name, error = %e, "storing the checkpoint failed");
                tokio::time::sleep(self.state.events.poll_interval()).await;
                false
            }
        }
    }

    /// The dead letter and the checkpoint past it, in one transaction.
    async fn durable_dead_letter(&mut self, ev: Arc<EventRecord>, error: String, attempts: u32) {
        let name = self.name();
        let mut n = 0;
        loop {
            let dead = NewDeadLetter {
                subscriber: name.to_string(),
                event_seq: ev.seq,
                event_id: ev.event_id,
                event_type: ev.event_type.clone(),
                error: error.clone(),
                attempts,
                at: self.state.clock.now(),
            };
            let result = self
                .state
                .store
                .write(move |tx| -> Result<i64, StoreError> {
                    let id = tx.upsert_dead_letter(&dead)?;
                    tx.set_checkpoint(name, dead.event_seq, dead.at)?;
                    Ok(id)
                })
                .await;
            match result {
                Ok(id) => {
                    self.log_dead_letter(&ev, &error, attempts, id);
                    self.stored = Some((ev.seq, Instant::now()));
                    self.advance(ev.seq);
                    return;
                }
                Err(e) => {
                    n += 1;
                    tracing::warn!(subscriber = name, error = %e, "cannot store a dead letter; retrying");
                    tokio::time::sleep(self.backoff(n)).await;
                }
            }
        }
    }

    // ------------------------------------------------------------ replays

    /// Delivers dead letters an operator asked to replay (one attempt each).
    async fn replays(&mut self, handler: &Handler) {
        let hinted = self.me.replay_hint.swap(false, Ordering::SeqCst);
        let due = self
            .last_replay_scan
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if !hinted && !due {
            return;
        }
        self.last_replay_scan = Some(Instant::now());
        let q = DeadLetterQuery {
            subscriber: Some(self.name().to_string()),
            status: Some(dl::REPLAY_REQUESTED.into()),
            after_id: 0,
            limit: REPLAY_BATCH_MAX,
        };
        let Ok(list) = self.state.store.read(move |tx| tx.dead_letters(&q)).await else {
            return;
        };
        for dead in list {
            let seq = dead.event_seq;
            let event = match self
                .state
                .store
                .read(move |tx| tx.events(seq - 1, 1, None))
                .await
            {
                Ok(mut v) if v.first().is_some_and(|e| e.seq == seq) => v.remove(0),
                _ => continue,
            };
            let attempts = dead.attempts.saturating_add(1);
            let now = self.state.clock.now();
            let fault = self.injected_fault();
            let id = dead.id;
            let result: Result<Result<Vec<Deferred>, String>, StoreError> = match handler {
                Handler::Local(h) => {
                    let r = match fault {
                        Some(e) => Err(e),
                        None => h.handle(&event).await,
                    };
                    let status = if r.is_ok() { dl::REPLAYED } else { dl::DEAD };
                    let err = r.as_ref().err().cloned();
                    self.state
                        .store
                        .write(move |tx| {
                            tx.update_dead_letter(id, status, err.as_deref(), Some(attempts), now)
                        })
                        .await
                        .map(|()| r.map(|()| Vec::new()))
                }
                Handler::Durable(h) => {
                    let (h, ev) = (h.clone(), event.clone());
                    self.state
                        .store
                        .write(
                            move |tx| -> Result<Result<Vec<Deferred>, String>, StoreError> {
                                // Another node may have replayed it meanwhile.
                                if tx
                                    .dead_letter(id)?
                                    .is_none_or(|d| d.status != dl::REPLAY_REQUESTED)
                                {
                                    return Ok(Ok(Vec::new()));
                                }
                                let r = match fault {
                                    Some(e) => Err(e),
                                    None => {
                                        tx.savepoint()?;
                                        let r = h.handle(tx, &ev, &HandleCtx { now });
                                        if r.is_ok() {
                                            tx.release_savepoint()?;
                                        } else {
                                            tx.rollback_savepoint()?;
                                        }
                                        r
                                    }
                                };
                                let status = if r.is_ok() { dl::REPLAYED } else { dl::DEAD };
                                let err = r.as_ref().err().cloned();
                                tx.update_dead_letter(
                                    id,
                                    status,
                                    err.as_deref(),
                                    Some(attempts),
                                    now,
                                )?;
                                Ok(r)
                            },
                        )
                        .await
                }
            };
            match result {
                Ok(Ok(deferred)) => {
                    for d in deferred {
                        d();
                    }
                    self.delivered(event.event_id, event.occurred_at);
                    tracing::info!(subscriber = self.name(), dead_letter_id = id, seq,
                        correlation_id = %event.correlation_id, "dead_letter_replayed");
                }
                Ok(Err(e)) => {
                    self.failed();
                    tracing::warn!(subscriber = self.name(), dead_letter_id = id, seq, error = %e,
                        "dead letter replay failed; it is DEAD again");
                }
                Err(e) => {
                    tracing::warn!(subscriber = self.name(), error = %e, "dead letter replay could not run");
                }
            }
        }
    }
}

/// A lease on a cluster-wide task, renewed every third of its lifetime.
pub struct Lease {
    name: String,
    renewed: Option<Instant>,
    held: bool,
}

impl Lease {
    /// A lease not yet taken.
    pub fn new(name: String) -> Self {
        Lease {
            name,
            renewed: None,
            held: false,
        }
    }

    /// Whether this node holds the lease now (taking or renewing it as due).
    pub async fn hold(&mut self, state: &AppState) -> bool {
        let ttl = state.events.lease_ttl_ms();
        let renew_every = Duration::from_millis(u64::try_from(ttl / 3).unwrap_or(1000));
        if self.held && self.renewed.is_some_and(|t| t.elapsed() < renew_every) {
            return true;
        }
        let (n, holder) = (self.name.clone(), state.events.node_id.clone());
        let held = state
            .store
            .write(move |tx| tx.try_lease(&n, &holder, ttl))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(lease = %self.name, error = %e, "lease renewal failed");
                false
            });
        if held {
            self.renewed = Some(Instant::now());
        }
        if held != self.held {
            tracing::info!(lease = %self.name, held, node = %state.events.node_id, "lease_changed");
        }
        self.held = held;
        held
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;

    use loyalty_store::NewEvent;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::app::Settings;
    use crate::events::EventsConfig;
    use crate::ratelimit::{Limit, MemoryLimiter};
    use crate::serve::{StorageConfig, open_store};

    type Log = Arc<Mutex<Vec<(&'static str, i64)>>>;

    fn state(dir: &tempfile::TempDir) -> AppState {
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

    async fn append(st: &AppState, n: usize) {
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
                        payload: serde_json::json!({"i": i}),
                    })
                })
                .await
                .unwrap();
        }
    }

    async fn dead_letters(st: &AppState) -> Vec<loyalty_store::DeadLetter> {
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

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records each event; optionally waits for a permit first, or fails the
    /// first `fail_first` attempts of every event.
    struct Recorder {
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

    fn sub(
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lower_priority_runs_first_for_each_event_and_filters_apply() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(&dir);
        let log: Log = Arc::default();
        // Registered out of order on purpose.
        let subs = vec![
            sub("third", 30, None, &log, None, 0),
            sub("first", 10, None, &log, None, 0),
            sub("evens", 20, Some(&["EVEN_HAPPENED"]), &log, None, 0),
        ];
        start(&st, subs, 0);
        append(&st, 40).await;
        let reg = st.events.registry.clone();
        until("all handled", || {
            ["first", "evens", "third"]
                .iter()
                .all(|n| reg.position(n) == Some(40))
        })
        .await;
        let log = log.lock().unwrap().clone();
        let at = |name: &str, seq: i64| log.iter().position(|e| *e == (name, seq));
        for seq in 1..=40 {
            let first = at("first", seq).expect("first saw every event");
            let third = at("third", seq).expect("third saw every event");
            assert!(first < third, "seq {seq}: {log:?}");
            match at("evens", seq) {
                Some(e) => {
                    assert_eq!(seq % 2, 1, "evens got an odd event {seq}");
                    assert!(first < e && e < third, "seq {seq}: {log:?}");
                }
                None => assert_eq!(seq % 2, 0, "evens missed {seq}"),
            }
        }
        // Each subscriber saw its events once, in seq order.
        for name in ["first", "evens", "third"] {
            let seqs: Vec<i64> = log.iter().filter(|e| e.0 == name).map(|e| e.1).collect();
            let mut sorted = seqs.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(seqs, sorted, "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_subscriber_holds_up_neither_the_others_nor_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(&dir);
        let log: Log = Arc::default();
        let gate = Arc::new(Semaphore::new(0));
        let subs = vec![
            sub("stuck", 1, None, &log, Some(gate.clone()), 0),
            sub("free", 2, None, &log, None, 0),
        ];
        start(&st, subs, 0);
        // Writes complete although "stuck" never finishes an event.
        append(&st, 30).await;
        let reg = st.events.registry.clone();
        until("the free subscriber to finish", || {
            reg.position("free") == Some(30)
        })
        .await;
        assert_eq!(reg.position("stuck"), Some(0));
        // Released, the stuck one catches up, in order, missing nothing.
        gate.add_permits(1000);
        until("the stuck subscriber to catch up", || {
            reg.position("stuck") == Some(30)
        })
        .await;
        let stuck: Vec<i64> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == "stuck")
            .map(|e| e.1)
            .collect();
        assert_eq!(stuck, (1..=30).collect::<Vec<_>>());
    }

    /// Writes an activity item per event; the first `fail_calls` calls for
    /// `fail_seq` fail. Counts items that were already there.
    struct Writer {
        player: Uuid,
        fail_seq: i64,
        fail_calls: u32,
        calls: AtomicU32,
        duplicates: Arc<AtomicU32>,
    }

    impl DurableHandler for Writer {
        fn handle(
            &self,
            tx: &mut dyn Tx,
            ev: &EventRecord,
            _ctx: &HandleCtx,
        ) -> Result<Vec<Deferred>, String> {
            if !tx
                .insert_activity_item(self.player, ev.seq)
                .map_err(|e| e.to_string())?
            {
                self.duplicates.fetch_add(1, Ordering::SeqCst);
            }
            if ev.seq == self.fail_seq
                && self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_calls
            {
                return Err("fails after writing".into());
            }
            Ok(Vec::new())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_mid_batch_keeps_the_events_before_it_and_applies_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(&dir);
        append(&st, 20).await;
        let (player, duplicates) = (Uuid::now_v7(), Arc::new(AtomicU32::new(0)));
        // The batch first runs without per-event savepoints: event 7 fails
        // there (all of it rolls back) and again in the per-event rerun
        // (1–6 commit), then succeeds on the retry.
        let writer = Writer {
            player,
            fail_seq: 7,
            fail_calls: 2,
            calls: AtomicU32::new(0),
            duplicates: duplicates.clone(),
        };
        let subs = vec![Subscription {
            name: "writer",
            event_types: None,
            priority: 0,
            handler: Handler::Durable(Arc::new(writer)),
        }];
        start(&st, subs, 0);
        let reg = st.events.registry.clone();
        until("every event handled", || reg.position("writer") == Some(20)).await;
        let items = st
            .store
            .read(move |tx| tx.activity_events(player, None, 100))
            .await
            .unwrap();
        let mut seqs: Vec<i64> = items.iter().map(|e| e.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
        assert_eq!(
            duplicates.load(Ordering::SeqCst),
            0,
            "a rolled-back write was kept"
        );
        let dead = dead_letters(&st).await;
        assert!(dead.is_empty(), "{dead:?}");
        let checkpoint = st.store.read(|tx| tx.checkpoint("writer")).await.unwrap();
        assert_eq!(checkpoint, Some(20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_retried_up_to_the_attempt_limit_then_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(&dir);
        let log: Log = Arc::default();
        let subs = vec![
            // Fails twice per event, succeeds on the third (last) attempt.
            sub("flaky", 1, Some(&["EVEN_HAPPENED"]), &log, None, 2),
            // Always fails.
            sub("broken", 2, Some(&["ODD_HAPPENED"]), &log, None, u32::MAX),
        ];
        start(&st, subs, 0);
        append(&st, 4).await;
        let reg = st.events.registry.clone();
        until("both to move past every event", || {
            reg.position("flaky") == Some(4) && reg.position("broken") == Some(4)
        })
        .await;
        let flaky: Vec<i64> = log.lock().unwrap().iter().map(|e| e.1).collect();
        assert_eq!(
            flaky,
            vec![1, 3],
            "the flaky one delivered every even event"
        );
        let dead = dead_letters(&st).await;
        let got: Vec<(String, i64, u32)> = dead
            .iter()
            .map(|d| (d.subscriber.clone(), d.event_seq, d.attempts))
            .collect();
        assert_eq!(
            got,
            vec![("broken".into(), 2, 3), ("broken".into(), 4, 3)],
            "only the broken one's events, after 3 attempts each"
        );
        assert!(
            dead.iter()
                .all(|d| d.status == dl::DEAD && d.error.contains("fails"))
        );
    }
}
