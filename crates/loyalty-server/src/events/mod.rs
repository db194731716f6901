//! Events leaving the outbox: the dispatcher and its subscribers, the live
//! stream and the NATS JetStream relay (DESIGN §6).
//!
//! The outbox is the only source: every consumer keeps a position (a seq)
//! and reads `Tx::events` after it in bounded batches, so nothing depends on
//! in-memory delivery and a restart loses nothing. What lives in memory is
//! only how consumers learn early that there is something to read:
//!
//! * [`EventHub::poke`] — called after every successful write on this node;
//!   wakes the *tail* task, which reads new events once, publishes the new
//!   head on a `watch` channel (subscribers and the relay wake on it) and
//!   fans the events out on a bounded `broadcast` channel (the live stream).
//! * Every waiter also polls ([`EventsConfig::poll_interval_ms`]), which is
//!   how writes made by other nodes are noticed.
//!
//! Modules: [`dispatch`] (subscribers, retries, dead letters, checkpoints),
//! [`subscribers`] (the shipped ones), [`stream`] (`GET /v1/events/stream`),
//! [`nats`] (the relay), [`archive`] (retention: old events to files).

pub mod archive;
pub mod dispatch;
pub mod nats;
pub mod stream;
pub mod subscribers;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use loyalty_store::{EventRecord, Store};
use tokio::sync::{Notify, broadcast, watch};

use crate::app::AppState;

/// Most events read from the outbox in one batch.
pub const BATCH_EVENTS_MAX: u32 = 256;
/// Capacity of the live fan-out (events); a stream reader that falls this
/// far behind is disconnected.
pub const LIVE_BUFFER_EVENTS: usize = 4096;
/// How long the tail lets writes gather after a wake-up.
pub const TAIL_LINGER_MS: u64 = 10;
/// Events the tail keeps in memory for subscribers that are close behind
/// (they read the outbox only when they are further back).
pub const RECENT_EVENTS_MAX: usize = 8192;

/// Tunables of event dispatch.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Run the dispatcher, its subscribers and the tail (off only to
    /// measure the write path without them).
    pub enabled: bool,
    /// Longest wait before looking at the outbox again without a poke.
    pub poll_interval_ms: u64,
    /// First retry delay of a failed delivery; doubles per attempt.
    pub retry_base_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Delivery attempts before an event becomes a dead letter.
    pub attempts_max: u32,
    /// How long a lease (relay, durable subscriber) lasts unrenewed, ms.
    pub lease_ttl_ms: i64,
    /// Entries of the balance snapshot cache.
    pub balance_cache_entries: usize,
    /// Events buffered per live-stream connection before it counts as slow.
    pub stream_buffer_events: usize,
    /// NATS server for the JetStream relay; none, no relay.
    pub nats_url: Option<String>,
    /// TLS to the NATS server.
    pub nats_tls: crate::tls::TlsFiles,
    /// JetStream stream name.
    pub nats_stream: String,
    /// Subject prefix; the event type is appended.
    pub nats_subject_prefix: String,
    /// Event retention: archive events older than this (None: keep every
    /// event in the database).
    pub retention: Option<archive::RetentionConfig>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            poll_interval_ms: 500,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            attempts_max: 5,
            lease_ttl_ms: dispatch::LEASE_TTL_MS_DEFAULT,
            balance_cache_entries: 100_000,
            stream_buffer_events: stream::STREAM_BUFFER_EVENTS,
            nats_url: None,
            nats_tls: crate::tls::TlsFiles::default(),
            nats_stream: "LOYALTY_EVENTS".into(),
            nats_subject_prefix: "loyalty.events".into(),
            retention: None,
        }
    }
}

/// Shared by everything that consumes events on this node.
pub struct EventHub {
    /// Tunables.
    pub config: EventsConfig,
    /// This node's id, as lease holder.
    pub node_id: String,
    wake: Notify,
    head: watch::Sender<i64>,
    live: broadcast::Sender<Arc<EventRecord>>,
    /// The shipped balance snapshot cache (None when dispatch is off).
    pub balance_cache: Option<Arc<subscribers::BalanceCache>>,
    /// The subscribers' shared progress, for `GET /v1/subscribers`.
    pub registry: Arc<dispatch::Registry>,
    tail_position: AtomicI64,
    recent: std::sync::RwLock<std::collections::VecDeque<Arc<EventRecord>>>,
}

impl EventHub {
    /// A hub; nothing runs until [`start`].
    pub fn new(config: EventsConfig) -> Self {
        let (head, _) = watch::channel(0);
        let (live, _) = broadcast::channel(LIVE_BUFFER_EVENTS);
        let balance_cache = config
            .enabled
            .then(|| Arc::new(subscribers::BalanceCache::new(config.balance_cache_entries)));
        EventHub {
            config,
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            wake: Notify::new(),
            head,
            live,
            balance_cache,
            registry: Arc::new(dispatch::Registry::default()),
            tail_position: AtomicI64::new(0),
            recent: Default::default(),
        }
    }

    /// Tells the tail that something was written (cheap; coalesces).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The newest outbox seq this node has seen.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// Wakes on every new head.
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// The live fan-out of new events, in seq order.
    pub fn live(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.live.subscribe()
    }

    /// Lease lifetime, ms.
    pub fn lease_ttl_ms(&self) -> i64 {
        self.config.lease_ttl_ms.max(500)
    }

    /// Up to a batch of the events after `after` from the tail's window:
    /// `None` if the window does not reach back to `after + 1` (read the
    /// outbox), empty if `after` is at or past what the tail has read.
    pub fn recent_after(&self, after: i64) -> Option<Vec<Arc<EventRecord>>> {
        let recent = self.recent.read().ok()?;
        let first = recent.front()?.seq;
        let last = recent.back()?.seq;
        if after >= last {
            return Some(Vec::new());
        }
        if after + 1 < first {
            return None;
        }
        let start = usize::try_from(after + 1 - first).ok()?;
        Some(
            recent
                .range(start..)
                .take(BATCH_EVENTS_MAX as usize)
                .cloned()
                .collect(),
        )
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms.max(10))
    }
}

/// Starts the tail, the subscribers and (with a NATS URL) the relay.
pub async fn start(state: &AppState) -> anyhow::Result<()> {
    if !state.events.config.enabled {
        tracing::warn!("event dispatch is off (--no-dispatcher): no subscribers, stream or relay");
        return Ok(());
    }
    let head = state.store.read(|tx| tx.outbox_head()).await?;
    state.events.tail_position.store(head, Ordering::SeqCst);
    state.events.head.send_replace(head);
    metrics::gauge!("loyalty_outbox_head").set(head as f64);
    tokio::spawn(tail(state.store.clone(), state.clone()));
    dispatch::start(state, subscribers::shipped(state), head);
    if let Some(url) = state.events.config.nats_url.clone() {
        tokio::spawn(nats::relay(state.clone(), url));
    }
    if let Some(retention) = state.events.config.retention.clone()
        && retention.retention_days > 0
    {
        tokio::spawn(archive::run(state.clone(), retention));
    }
    Ok(())
}

/// The handed-over events after `after`, if they continue it without a gap;
/// None if there are none or a gap (an event of another process, or a
/// hand-over that overflowed) comes first: then the tail reads the outbox.
fn continuation(after: i64, mut handed: Vec<EventRecord>) -> Option<Vec<EventRecord>> {
    handed.retain(|e| e.seq > after);
    let continues = !handed.is_empty()
        && handed
            .iter()
            .zip(after + 1..)
            .all(|(e, expected)| e.seq == expected);
    continues.then_some(handed)
}

/// Reads each new event once, publishes the head and fans events out live.
///
/// On the embedded backend the writer hands each commit's events over in
/// memory ([`loyalty_store::sqlite::CommittedEvents`]); they are used when
/// they continue the tail's position without a gap ([`continuation`]).
/// Otherwise — events of another process (the CLI), a hand-over that
/// overflowed, PostgreSQL with its other nodes — the tail reads the outbox,
/// and it also reads it every poll interval while nothing is handed over.
async fn tail(store: Store, state: AppState) {
    let hub = &state.events;
    let handover = store.committed_events();
    if let Some(h) = &handover {
        h.enable();
    }
    let mut read_outbox = true;
    loop {
        let after = hub.tail_position.load(Ordering::SeqCst);
        let handed = handover.as_ref().map(|h| h.take()).unwrap_or_default();
        let handed_some = !handed.is_empty();
        let (batch, from_outbox) = match continuation(after, handed) {
            Some(events) => (Ok(events), false),
            None if read_outbox || handed_some => (
                store
                    .read_short(move |tx| tx.events(after, BATCH_EVENTS_MAX, None))
                    .await,
                true,
            ),
            None => (Ok(Vec::new()), false),
        };
        read_outbox = handover.is_none();
        match batch {
            Ok(batch) if !batch.is_empty() => {
                let full = from_outbox && batch.len() == BATCH_EVENTS_MAX as usize;
                let last = batch.last().map(|e| e.seq).unwrap_or(after);
                let batch: Vec<Arc<EventRecord>> = batch.into_iter().map(Arc::new).collect();
                if let Ok(mut recent) = hub.recent.write() {
                    for ev in &batch {
                        // Contiguous by construction: the tail reads in order.
                        recent.push_back(ev.clone());
                        if recent.len() > RECENT_EVENTS_MAX {
                            recent.pop_front();
                        }
                    }
                }
                for ev in batch {
                    // No receivers is fine: nobody is streaming.
                    let _ = hub.live.send(ev);
                }
                hub.tail_position.store(last, Ordering::SeqCst);
                hub.head.send_replace(last);
                metrics::gauge!("loyalty_outbox_head").set(last as f64);
                if full {
                    read_outbox = true;
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => {
                read_outbox = true;
                tracing::warn!(error = %e, "event tail: reading the outbox failed");
            }
        }
        let poll = hub.poll_interval();
        let woken = match &handover {
            Some(h) => tokio::time::timeout(poll, h.ready()).await.is_ok(),
            None => tokio::time::timeout(poll, hub.wake.notified())
                .await
                .is_ok(),
        };
        if woken {
            // Let the writes of the same moment gather so one round carries
            // them all.
            tokio::time::sleep(Duration::from_millis(TAIL_LINGER_MS)).await;
        } else {
            read_outbox = true;
        }
    }
}

/// The cached balance of a player, if the cache can vouch that it is current:
/// the cache has handled every event up to the outbox head read *after* the
/// snapshot was taken, so no committed change is missing from it. `None`:
/// ask the database.
pub async fn cached_balance(
    state: &AppState,
    player_id: uuid::Uuid,
) -> Result<Option<loyalty_store::Account>, loyalty_store::StoreError> {
    let Some(cache) = &state.events.balance_cache else {
        return Ok(None);
    };
    let Some(position) = state.events.registry.position(subscribers::BALANCE_CACHE) else {
        return Ok(None);
    };
    let Some(snapshot) = cache.get(player_id) else {
        metrics::counter!("loyalty_balance_cache_reads_total", "result" => "miss").increment(1);
        return Ok(None);
    };
    let Some(head) = state
        .store
        .read_short(|tx| tx.settled_outbox_head())
        .await?
    else {
        metrics::counter!("loyalty_balance_cache_reads_total", "result" => "behind").increment(1);
        return Ok(None);
    };
    if position < head {
        metrics::counter!("loyalty_balance_cache_reads_total", "result" => "behind").increment(1);
        return Ok(None);
    }
    metrics::counter!("loyalty_balance_cache_reads_total", "result" => "hit").increment(1);
    Ok(Some(snapshot.account))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64) -> EventRecord {
        EventRecord {
            seq,
            event_id: uuid::Uuid::now_v7(),
            event_type: "TEST".into(),
            version: 1,
            occurred_at: jiff::Timestamp::UNIX_EPOCH,
            correlation_id: "c".into(),
            idempotency_key: None,
            source: "test".into(),
            payload: loyalty_core::events::Payload::of(&serde_json::json!({})),
        }
    }

    fn seqs(v: Option<Vec<EventRecord>>) -> Option<Vec<i64>> {
        v.map(|v| v.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn handed_over_events_are_used_only_when_they_continue_the_position() {
        let c = |after, s: &[i64]| seqs(continuation(after, s.iter().map(|&n| ev(n)).collect()));
        assert_eq!(c(10, &[11, 12, 13]), Some(vec![11, 12, 13]));
        // Already seen (read from the outbox earlier): dropped, the rest used.
        assert_eq!(c(12, &[11, 12, 13]), Some(vec![13]));
        // Nothing new.
        assert_eq!(c(13, &[11, 12, 13]), None);
        assert_eq!(c(10, &[]), None);
        // A gap first (another process wrote 11): read the outbox.
        assert_eq!(c(10, &[12, 13]), None);
        // A gap inside: read the outbox.
        assert_eq!(c(10, &[11, 13]), None);
    }
}
