//! The delivery loop of local subscribers: in-memory state, a position
//! that lives in memory and starts at the outbox head, every node running
//! its own copy. Each wanted event is delivered in seq order, retried, and
//! finally dead-lettered.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use loyalty_store::{EventRecord, NewDeadLetter};

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

    pub(super) fn log_dead_letter(&self, ev: &EventRecord, error: &str, attempts: u32, id: i64) {
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
}

#[cfg(test)]
mod tests {
    use loyalty_store::dispatch as dl;

    use super::super::start;
    use super::super::test_support::{Log, append, dead_letters, state, sub, until};
    use super::*;

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
