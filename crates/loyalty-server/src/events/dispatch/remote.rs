//! The delivery loop of remote subscribers (webhooks): one node at a time
//! (a lease), events in seq order after the stored checkpoint, each
//! delivered outside any transaction and the checkpoint stored past it once
//! it succeeded or became a dead letter. A crash between a delivery and its
//! checkpoint delivers that event again: at least once, as receivers expect
//! (they deduplicate by `webhook-id`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use loyalty_store::EventRecord;

use super::dead_letters::AfterFailure;
use super::lease::Lease;
use super::runner::Runner;
use super::subscription::wants;
use super::{Handler, RemoteHandler};

impl Runner {
    pub(super) async fn run_remote(mut self, handler: Arc<dyn RemoteHandler>) {
        let mut lease = Lease::new(format!("subscriber:{}", self.name()));
        let mut known: Option<i64> = None;
        while !handler.retired() {
            let turn = Handler::Remote(handler.clone());
            let Some((checkpoint, batch)) = self.next_batch(&mut lease, &mut known, &turn).await
            else {
                continue;
            };
            let name = self.name();
            if batch.is_empty() {
                known = Some(checkpoint);
                self.advance(checkpoint);
                self.wait_for_events(checkpoint).await;
                continue;
            }
            let mut last = checkpoint;
            for ev in batch {
                if handler.retired() {
                    break;
                }
                if wants(self.sub.event_types, &ev.event_type)
                    && !self.recent.contains(&ev.event_id)
                {
                    metrics::counter!("loyalty_subscriber_published_total", "subscriber" => name)
                        .increment(1);
                    if !self.deliver_remote(&handler, &ev).await {
                        // Dead-lettered: the checkpoint moved with it.
                        last = ev.seq;
                        continue;
                    }
                }
                last = ev.seq;
                if !self.store_remote_checkpoint(last).await {
                    break;
                }
            }
            known = Some(last.max(checkpoint));
        }
        self.me.active.store(false, Ordering::SeqCst);
        self.state.events.registry.remove(self.name());
        tracing::info!(subscriber = self.name(), "subscriber_retired");
    }

    /// Delivers `ev` with retries; true if it was delivered, false if it
    /// became a dead letter (whose transaction stored the checkpoint).
    async fn deliver_remote(&mut self, handler: &Arc<dyn RemoteHandler>, ev: &EventRecord) -> bool {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = match self.injected_fault() {
                Some(e) => Err(e),
                None => handler.deliver(ev, attempt).await,
            };
            match r {
                Ok(()) => {
                    self.set_healthy(true);
                    self.delivered(ev.event_id, ev.occurred_at);
                    return true;
                }
                Err(error) => {
                    if handler.retired() {
                        return false;
                    }
                    if self.after_failure(ev, attempt, &error).await == AfterFailure::DeadLettered {
                        return false;
                    }
                }
            }
        }
    }

    /// Stores the checkpoint past a delivered (or unwanted) event; false
    /// (after a pause) if the store refused, and the batch is read again.
    async fn store_remote_checkpoint(&mut self, seq: i64) -> bool {
        let (name, now) = (self.name(), self.state.clock.now());
        match self
            .state
            .store
            .write_background(move |tx| tx.set_checkpoint(name, seq, now))
            .await
        {
            Ok(()) => {
                self.stored = Some((seq, Instant::now()));
                self.advance(seq);
                true
            }
            Err(e) => {
                tracing::warn!(subscriber = name, error = %e, "storing the checkpoint failed");
                tokio::time::sleep(self.state.events.poll_interval()).await;
                false
            }
        }
    }
}
