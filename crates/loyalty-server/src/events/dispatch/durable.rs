//! The delivery loop of durable subscribers: one node at a time (a lease),
//! a whole batch in one transaction with the checkpoint so that effects and
//! checkpoint commit together, first without savepoints and, if a handler
//! fails, again with a savepoint per event to keep the events before it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use loyalty_store::{EventRecord, StoreError, Tx};
use uuid::Uuid;

use super::dead_letters::AfterFailure;
use super::lease::Lease;
use super::runner::Runner;
use super::subscription::wants;
use super::{
    DURABLE_LINGER_MS, Deferred, DurableHandler, HandleCtx, Handler, SKIPPED_CHECKPOINT_MS,
};

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
/// after the events before it; without, they all go through the handler's
/// `handle_all` and a failure fails the transaction.
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
    if !per_event && fault.is_none() {
        // The whole batch through `handle_all`; a failure rolls it all back
        // and the caller runs it again an event at a time.
        let events: Vec<&EventRecord> = batch
            .iter()
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| &**e)
            .collect();
        out.deferred = h
            .handle_all(tx, &events, ctx)
            .map_err(|_| BatchError::Handler)?;
        out.delivered = events.iter().map(|e| (e.event_id, e.occurred_at)).collect();
        out.last = batch.last().map(|e| e.seq);
    } else {
        for (ev, want) in batch.into_iter().zip(wanted) {
            if !want {
                out.last = Some(ev.seq);
                continue;
            }
            let r = match &fault {
                Some(e) => Err(e.clone()),
                None => handle_in_savepoint(tx, h, &ev, ctx)?,
            };
            match r {
                Ok(d) => {
                    out.deferred.extend(d);
                    out.delivered.push((ev.event_id, ev.occurred_at));
                    out.last = Some(ev.seq);
                }
                Err(e) => {
                    out.failure = Some((ev, e));
                    break;
                }
            }
        }
    }
    if let Some(last) = out.last {
        tx.set_checkpoint(name, last, ctx.now)?;
    }
    Ok(out)
}

/// One event through the handler in a savepoint: kept if it succeeds, rolled
/// back if it fails (the transaction goes on either way).
pub(super) fn handle_in_savepoint(
    tx: &mut dyn Tx,
    h: &dyn DurableHandler,
    ev: &EventRecord,
    ctx: &HandleCtx,
) -> Result<Result<Vec<Deferred>, String>, StoreError> {
    tx.savepoint()?;
    let r = h.handle(tx, ev, ctx);
    if r.is_ok() {
        tx.release_savepoint()?;
    } else {
        tx.rollback_savepoint()?;
    }
    Ok(r)
}

impl Runner {
    pub(super) async fn run_durable(mut self, handler: Arc<dyn DurableHandler>) {
        let mut lease = Lease::new(format!("subscriber:{}", self.name()));
        // The checkpoint as this node last committed it; re-read from the
        // database whenever the lease is (re)taken.
        let mut known: Option<i64> = None;
        loop {
            let turn = Handler::Durable(handler.clone());
            let Some((checkpoint, batch)) = self.next_batch(&mut lease, &mut known, &turn).await
            else {
                continue;
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
        if self.after_failure(&ev, attempt, &error).await == AfterFailure::Retry {
            Box::pin(self.durable_batch(handler, vec![ev], attempt + 1)).await;
        }
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::super::test_support::{append, dead_letters, state, until};
    use super::super::{Subscription, start};
    use super::*;

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
}
