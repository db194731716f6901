//! The delivery loop of local subscribers: in-memory state, a position
//! that lives in memory and starts at the outbox head, every node running
//! its own copy. Each wanted event is delivered in seq order; a failing one
//! is retried and finally dead-lettered by the path both loops share
//! (`dead_letters`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use loyalty_store::EventRecord;

use super::dead_letters::AfterFailure;
use super::runner::Runner;
use super::subscription::wants;
use super::{Handler, LocalHandler};

impl Runner {
    pub(super) async fn run_local(mut self, handler: Arc<dyn LocalHandler>) {
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

    /// Delivers `ev`, retrying with backoff and finally dead-lettering it.
    async fn deliver_local(&mut self, handler: &Arc<dyn LocalHandler>, ev: &EventRecord) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.try_local(&**handler, ev).await {
                Ok(()) => {
                    self.set_healthy(true);
                    self.delivered(ev.event_id, ev.occurred_at);
                    return;
                }
                Err(e) => e,
            };
            if self.after_failure(ev, attempt, &error).await == AfterFailure::DeadLettered {
                return;
            }
        }
    }

    /// One attempt at `ev`: the handler, or the injected fault (test mode).
    pub(super) async fn try_local(
        &self,
        handler: &dyn LocalHandler,
        ev: &EventRecord,
    ) -> Result<(), String> {
        match self.injected_fault() {
            Some(e) => Err(e),
            None => handler.handle(ev).await,
        }
    }
}
