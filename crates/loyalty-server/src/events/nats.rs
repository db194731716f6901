//! The NATS JetStream relay (`--nats-url`).
//!
//! Publishes every outbox event, in seq order, to the JetStream stream
//! `LOYALTY_EVENTS` (file storage) on the subject
//! `loyalty.events.{EVENT_TYPE}`, with the envelope as JSON and the event id
//! as `Nats-Msg-Id`. Its checkpoint (`subscriber_checkpoints`, name
//! `nats_relay`) moves only past events JetStream has acknowledged; until an
//! event is acknowledged the relay retries it with capped backoff, forever.
//! A republish after a crash or a lost ack is harmless: JetStream drops a
//! message whose `Nats-Msg-Id` it has seen within the stream's duplicate
//! window ([`DUPLICATE_WINDOW`]), so every event is in the stream once.
//!
//! With several nodes, one relays at a time: the lease row `relay:nats`
//! (renewed every third of `--lease-ttl-ms`). If a node stalls past its
//! lease and another takes over, both may publish the same events for a
//! moment; the dedup window makes that harmless too.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use loyalty_core::Backoff;
use loyalty_store::EventRecord;

use super::BATCH_EVENTS_MAX;
use super::dispatch::Lease;
use crate::app::AppState;

/// Checkpoint name of the relay.
pub const RELAY: &str = "nats_relay";
/// Lease name of the relay.
pub const LEASE: &str = "relay:nats";
/// How long JetStream remembers message ids for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Longest wait for one publish acknowledgement.
pub const ACK_WAIT: Duration = Duration::from_secs(5);
/// Retry delay: 100 ms doubling up to 5 s. (It used to stop doubling after
/// ten doublings too, but the 5 s cap is reached after six.)
const RETRY: Backoff = Backoff::new(100, 5_000);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_millis(RETRY.max_ms);

/// The subject of an event type.
pub fn subject(prefix: &str, event_type: &str) -> String {
    format!("{prefix}.{event_type}")
}

/// The relay's TLS settings on top of `opts` (a `tls://` URL alone
/// requires TLS too, checked against the system's roots): a CA file makes
/// TLS required.
fn with_tls(
    mut opts: async_nats::ConnectOptions,
    tls: &crate::tls::TlsFiles,
) -> async_nats::ConnectOptions {
    if let Some(ca) = &tls.ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &tls.client {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    opts
}

/// Runs the relay forever.
pub async fn relay(state: AppState, url: String) {
    let cfg = state.events.config.clone();
    let client = loop {
        let opts = async_nats::ConnectOptions::new()
            .name("loyalty-relay")
            .retry_on_initial_connect()
            .max_reconnects(None);
        match with_tls(opts, &cfg.nats_tls).connect(url.as_str()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "nats: cannot connect; retrying");
                tokio::time::sleep(RETRY_MAX).await;
            }
        }
    };
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_WAIT);
    let mut failures = 0u32;
    loop {
        let created = js
            .get_or_create_stream(stream::Config {
                name: cfg.nats_stream.clone(),
                subjects: vec![format!("{}.>", cfg.nats_subject_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "nats: cannot create the stream; retrying");
                tokio::time::sleep(RETRY.delay(failures)).await;
            }
        }
    }
    tracing::info!(stream = %cfg.nats_stream, "nats relay ready");
    let mut lease = Lease::new(LEASE.to_string());
    failures = 0;
    loop {
        let leader = lease.hold(&state).await;
        metrics::gauge!("loyalty_nats_relay_leader").set(if leader { 1.0 } else { 0.0 });
        if !leader {
            tokio::time::sleep(state.events.poll_interval()).await;
            continue;
        }
        match relay_batch(&state, &js, &cfg.nats_subject_prefix).await {
            Ok(0) => {
                failures = 0;
                let head = state.events.head();
                let mut rx = state.events.watch_head();
                if *rx.borrow_and_update() <= head {
                    let _ = tokio::time::timeout(state.events.poll_interval(), rx.changed()).await;
                }
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "nats: publish not acknowledged; retrying");
                metrics::counter!("loyalty_subscriber_failed_total", "subscriber" => RELAY)
                    .increment(1);
                tokio::time::sleep(RETRY.delay(failures)).await;
            }
        }
    }
}

/// Publishes the next batch after the checkpoint; moves the checkpoint past
/// the acknowledged prefix. Returns how many were acknowledged.
async fn relay_batch(
    state: &AppState,
    js: &jetstream::Context,
    prefix: &str,
) -> anyhow::Result<usize> {
    let checkpoint = state
        .store
        .read(|tx| tx.checkpoint(RELAY))
        .await?
        .unwrap_or(0);
    let batch: Vec<EventRecord> = state
        .store
        .read(move |tx| tx.events(checkpoint, BATCH_EVENTS_MAX, None))
        .await?;
    if batch.is_empty() {
        metrics::gauge!("loyalty_subscriber_lag_events", "subscriber" => RELAY).set(0.0);
        return Ok(0);
    }
    // Pipelined: send the whole batch, then take the acks in order.
    let mut pending = Vec::with_capacity(batch.len());
    let mut send_error = None;
    for ev in &batch {
        let body = serde_json::to_vec(ev)?;
        let msg = PublishMessage::build()
            .payload(body.into())
            .message_id(ev.event_id.to_string());
        match js.send_publish(subject(prefix, &ev.event_type), msg).await {
            Ok(ack) => pending.push((ev, ack)),
            Err(e) => {
                send_error = Some(e);
                break;
            }
        }
    }
    let mut acked = None;
    let mut ack_error = None;
    for (ev, ack) in pending {
        if ack_error.is_some() {
            // Drop the rest: they are republished (and deduplicated) later.
            continue;
        }
        match ack.await {
            Ok(a) => {
                acked = Some(ev.seq);
                metrics::counter!("loyalty_subscriber_published_total", "subscriber" => RELAY)
                    .increment(1);
                if a.duplicate {
                    metrics::counter!("loyalty_nats_duplicates_total").increment(1);
                }
            }
            Err(e) => ack_error = Some(e),
        }
    }
    let n = match acked {
        Some(last) => {
            let now = state.clock.now();
            state
                .store
                .write(move |tx| tx.set_checkpoint(RELAY, last, now))
                .await?;
            let head = state.events.head().max(last);
            metrics::gauge!("loyalty_subscriber_checkpoint", "subscriber" => RELAY)
                .set(last as f64);
            metrics::gauge!("loyalty_subscriber_lag_events", "subscriber" => RELAY)
                .set((head - last) as f64);
            batch.iter().filter(|e| e.seq <= last).count()
        }
        None => 0,
    };
    if let Some(e) = ack_error {
        anyhow::bail!("after {n} acknowledged: {e}");
    }
    if let Some(e) = send_error {
        anyhow::bail!("after {n} acknowledged: {e}");
    }
    Ok(n)
}
