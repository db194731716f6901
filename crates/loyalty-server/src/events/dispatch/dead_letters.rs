//! Dead letters: replaying them on an operator's request (one attempt each;
//! REPLAY_REQUESTED → REPLAYED, or DEAD again with the new error).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loyalty_store::{DeadLetterQuery, StoreError, dispatch as dl};

use super::runner::Runner;
use super::{Deferred, HandleCtx, Handler, REPLAY_BATCH_MAX};

impl Runner {
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
