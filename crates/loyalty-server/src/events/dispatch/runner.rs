//! One task per subscriber: starting them, and what every delivery loop
//! needs — reading the outbox, moving the position, metrics and health,
//! waiting for new events, and waiting for lower-priority peers (priority
//! order). The loops themselves are in `local` and `durable`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use loyalty_core::Backoff;
use loyalty_store::{EventRecord, StoreError};
use uuid::Uuid;

use super::subscription::wants;
use super::{Handler, PRIORITY_WAIT_MS_MAX, Progress, RECENT_IDS_MAX, Subscription};
use crate::app::AppState;
use crate::events::BATCH_EVENTS_MAX;

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
            durable: !matches!(s.handler, Handler::Local(_)),
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
pub(super) struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    pub(super) fn contains(&self, id: &Uuid) -> bool {
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

/// One subscriber's task: its subscription, progress and peers.
pub(super) struct Runner {
    pub(super) state: AppState,
    pub(super) sub: Subscription,
    pub(super) me: Arc<Progress>,
    pub(super) peers: Vec<Arc<Progress>>,
    pub(super) gave_up: HashMap<&'static str, i64>,
    pub(super) recent: RecentIds,
    pub(super) last_replay_scan: Option<Instant>,
    /// Durable subscribers: the checkpoint as stored, and when this node
    /// stored (or read) it.
    pub(super) stored: Option<(i64, Instant)>,
    /// Per-event metrics, looked up once.
    pub(super) delivered_total: metrics::Counter,
    pub(super) latency: metrics::Histogram,
}

impl Runner {
    pub(super) fn name(&self) -> &'static str {
        self.sub.name
    }

    /// The step every cluster-wide subscriber (durable or remote) begins its
    /// loop with: holds (or waits for) its lease, and reads its checkpoint
    /// whenever the lease is (re)taken (`known` is forgotten then). `None`:
    /// not this node's turn, or the store failed; the caller loops again
    /// after the pause this already took.
    pub(super) async fn leased_checkpoint(
        &mut self,
        lease: &mut super::lease::Lease,
        known: &mut Option<i64>,
    ) -> Option<i64> {
        let held = lease.hold(&self.state).await;
        if held != self.me.active() {
            self.me.active.store(held, Ordering::SeqCst);
            self.state.events.registry.changed.notify_waiters();
            *known = None;
        }
        if !held {
            tokio::time::sleep(self.state.events.poll_interval()).await;
            return None;
        }
        if let Some(c) = *known {
            return Some(c);
        }
        let name = self.name();
        match self
            .state
            .store
            .read_short(move |tx| tx.checkpoint(name))
            .await
        {
            Ok(c) => {
                let c = c.unwrap_or(0);
                self.stored = Some((c, Instant::now()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(subscriber = name, error = %e, "reading the checkpoint failed");
                tokio::time::sleep(self.state.events.poll_interval()).await;
                None
            }
        }
    }

    /// A cluster-wide subscriber's turn up to its next batch: the lease and
    /// checkpoint ([`Runner::leased_checkpoint`]), the replays that are due,
    /// then the events after the checkpoint. `None`: nothing to do this turn
    /// (not this node's, or the store failed; the pause is already taken).
    pub(super) async fn next_batch(
        &mut self,
        lease: &mut super::lease::Lease,
        known: &mut Option<i64>,
        handler: &Handler,
    ) -> Option<(i64, Vec<Arc<EventRecord>>)> {
        let checkpoint = self.leased_checkpoint(lease, known).await?;
        self.replays(handler).await;
        self.me.position.store(checkpoint, Ordering::SeqCst);
        match self.read_batch(checkpoint).await {
            Ok(batch) => Some((checkpoint, batch)),
            Err(e) => {
                tracing::warn!(subscriber = self.name(), error = %e, "reading the outbox failed");
                tokio::time::sleep(self.state.events.poll_interval()).await;
                None
            }
        }
    }

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.state.events.config;
        // The dispatcher stops doubling after 20 doublings (attempt 21), even
        // when `retry_max_ms` is larger still.
        Backoff::new(c.retry_base_ms, c.retry_max_ms).delay(attempt.min(21))
    }

    pub(super) fn injected_fault(&self) -> Option<String> {
        self.state
            .faults
            .subscriber_fails(self.name())
            .then(|| format!("fault injected (test mode) in subscriber {}", self.name()))
    }

    pub(super) fn advance(&self, seq: i64) {
        self.me.position.fetch_max(seq, Ordering::SeqCst);
        let name = self.name();
        let head = self.state.events.head().max(seq);
        metrics::gauge!("loyalty_subscriber_checkpoint", "subscriber" => name).set(seq as f64);
        metrics::gauge!("loyalty_subscriber_lag_events", "subscriber" => name)
            .set((head - self.me.position()) as f64);
        self.state.events.registry.changed.notify_waiters();
    }

    pub(super) fn delivered(&mut self, id: Uuid, occurred_at: Timestamp) {
        self.recent.insert(id);
        self.delivered_total.increment(1);
        let lag = self.state.clock.now().duration_since(occurred_at);
        self.latency.record(lag.as_secs_f64().max(0.0));
    }

    pub(super) fn failed(&self) {
        metrics::counter!("loyalty_subscriber_failed_total", "subscriber" => self.name())
            .increment(1);
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.me.healthy.store(healthy, Ordering::SeqCst);
        self.state.events.registry.changed.notify_waiters();
    }

    pub(super) async fn wait_for_events(&self, seen_head: i64) {
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
    pub(super) async fn read_batch(&self, after: i64) -> Result<Vec<Arc<EventRecord>>, StoreError> {
        if let Some(batch) = self.state.events.recent_after(after) {
            return Ok(batch);
        }
        let batch = self
            .state
            .store
            .read_short(move |tx| tx.events(after, BATCH_EVENTS_MAX, None))
            .await?;
        Ok(batch.into_iter().map(Arc::new).collect())
    }

    async fn run(self) {
        match self.sub.handler.clone() {
            Handler::Local(h) => self.run_local(h).await,
            Handler::Durable(h) => self.run_durable(h).await,
            Handler::Remote(h) => self.run_remote(h).await,
        }
    }

    // ------------------------------------------------------------ priority

    pub(super) async fn await_peers(&mut self, seq: i64, types: &[&str]) {
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
}

#[cfg(test)]
mod tests {
    use tokio::sync::Semaphore;

    use super::super::test_support::{Log, append, state, sub, until};
    use super::*;

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
}
