//! Dead letters: the path an event takes when a subscriber keeps failing on
//! it, and replaying dead letters on request.
//!
//! Local and durable subscribers differ in how they make an attempt (a call
//! in memory; a batch in a transaction), not in what follows a failed one,
//! so that is written once here, for both: count the failure, then either
//! wait out the backoff and try again, or — `attempts_max` attempts used —
//! record the dead letter (a durable subscriber's in one transaction with
//! the checkpoint past the event, so the event is neither lost nor handled
//! again) and move on.
//!
//! Replay runs a dead letter once more when an operator asks
//! (REPLAY_REQUESTED → REPLAYED, or DEAD again with the new error).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loyalty_store::{DeadLetterQuery, DeadLetterStatus, EventRecord, NewDeadLetter, StoreError};

use super::durable::handle_in_savepoint;
use super::runner::Runner;
use super::{Deferred, HandleCtx, Handler, REPLAY_BATCH_MAX};

/// What follows a failed delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Attempts remain and the backoff has been waited out: try again.
    Retry,
    /// The attempts are used up and the event is a dead letter now.
    DeadLettered,
}

/// The status and error a replay leaves on the dead letter.
fn replay_outcome<T>(r: &Result<T, String>) -> (DeadLetterStatus, Option<String>) {
    match r {
        Ok(_) => (DeadLetterStatus::Replayed, None),
        Err(e) => (DeadLetterStatus::Dead, Some(e.clone())),
    }
}

impl Runner {
    /// After failed attempt number `attempt` at `ev`: counts the failure,
    /// then either logs it and waits out the backoff (`Retry`), or, with
    /// `attempts_max` attempts used, tells a local handler and records the
    /// dead letter (`DeadLettered`).
    pub(super) async fn after_failure(
        &mut self,
        ev: &EventRecord,
        attempt: u32,
        error: &str,
    ) -> AfterFailure {
        self.failed();
        let attempts_max = self.state.events.config.attempts_max.max(1);
        if attempt < attempts_max {
            tracing::warn!(subscriber = self.name(), seq = ev.seq, attempt, error = %error,
                "event delivery failed; retrying");
            self.set_healthy(false);
            tokio::time::sleep(self.backoff(attempt)).await;
            return AfterFailure::Retry;
        }
        if let Handler::Local(h) = &self.sub.handler {
            h.on_dead_letter(ev);
        }
        self.dead_letter(ev, error, attempt).await;
        self.set_healthy(true);
        AfterFailure::DeadLettered
    }

    /// Records `ev` as a dead letter, retrying until it is stored. A durable
    /// subscriber stores the checkpoint past the event in the same
    /// transaction and moves its position there; a local one's loop moves
    /// its position itself.
    async fn dead_letter(&mut self, ev: &EventRecord, error: &str, attempts: u32) {
        let name = self.name();
        let durable = !matches!(self.sub.handler, Handler::Local(_));
        // A durable dead letter is stamped at each try, as is the checkpoint
        // stored with it; a local one keeps the time of the first try.
        let first_try = (!durable).then(|| self.state.clock.now());
        let mut n = 0;
        loop {
            let dead = NewDeadLetter {
                subscriber: name.to_string(),
                event_seq: ev.seq,
                event_id: ev.event_id,
                event_type: ev.event_type.clone(),
                error: error.to_string(),
                attempts,
                at: first_try.unwrap_or_else(|| self.state.clock.now()),
            };
            let result = self
                .state
                .store
                .write(move |tx| -> Result<i64, StoreError> {
                    let id = tx.upsert_dead_letter(&dead)?;
                    if durable {
                        tx.set_checkpoint(name, dead.event_seq, dead.at)?;
                    }
                    Ok(id)
                })
                .await;
            match result {
                Ok(id) => {
                    self.log_dead_letter(ev, error, attempts, id);
                    if durable {
                        self.stored = Some((ev.seq, Instant::now()));
                        self.advance(ev.seq);
                    }
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

    /// Delivers dead letters an operator asked to replay (one attempt each).
    pub(super) async fn replays(&mut self, handler: &Handler) {
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
            status: Some(DeadLetterStatus::ReplayRequested),
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
            let (now, id) = (self.state.clock.now(), dead.id);
            let result: Result<Result<Vec<Deferred>, String>, StoreError> = match handler {
                // Effects outside the database: the attempt, then its outcome.
                Handler::Local(_) | Handler::Remote(_) => {
                    let r = match handler {
                        Handler::Local(h) => self.try_local(&**h, &event).await,
                        Handler::Remote(h) => match self.injected_fault() {
                            Some(e) => Err(e),
                            None => h.deliver(&event, attempts).await,
                        },
                        Handler::Durable(_) => unreachable!("matched above"),
                    };
                    let (status, err) = replay_outcome(&r);
                    self.state
                        .store
                        .write(move |tx| {
                            tx.update_dead_letter(id, status, err.as_deref(), Some(attempts), now)
                        })
                        .await
                        .map(|()| r.map(|()| Vec::new()))
                }
                Handler::Durable(h) => {
                    let (h, ev, fault) = (h.clone(), event.clone(), self.injected_fault());
                    self.state
                        .store
                        .write(
                            move |tx| -> Result<Result<Vec<Deferred>, String>, StoreError> {
                                // Another node may have replayed it meanwhile.
                                if tx
                                    .dead_letter(id)?
                                    .is_none_or(|d| d.status != DeadLetterStatus::ReplayRequested)
                                {
                                    return Ok(Ok(Vec::new()));
                                }
                                let r = match fault {
                                    Some(e) => Err(e),
                                    None => handle_in_savepoint(tx, &*h, &ev, &HandleCtx { now })?,
                                };
                                let (status, err) = replay_outcome(&r);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loyalty_store::DeadLetterStatus;

    use super::super::start;
    use super::super::test_support::{Log, append, dead_letters, state, sub, until};

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
                .all(|d| d.status == DeadLetterStatus::Dead && d.error.contains("fails"))
        );
    }
}
