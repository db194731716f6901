//! What a subscriber is: a name, an event-type filter, a priority and a
//! handler, durable (database effects inside the dispatcher's transaction)
//! or local (in-memory effects). This is the whole surface a subscriber
//! implements; how events reach it is the rest of the dispatcher's business.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use loyalty_store::{EventRecord, Tx};

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

    /// Handles a batch in one go, in one transaction: what [`Self::handle`]
    /// does for each event in order, which is the default. A handler that
    /// can write a batch in fewer statements overrides it. `Err` rolls the
    /// transaction back and the batch is run again one event at a time.
    fn handle_all(
        &self,
        tx: &mut dyn Tx,
        events: &[&EventRecord],
        ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        let mut deferred = Vec::new();
        for ev in events {
            deferred.extend(self.handle(tx, ev, ctx)?);
        }
        Ok(deferred)
    }
}

/// A subscriber whose state is in this process's memory.
pub trait LocalHandler: Send + Sync + 'static {
    /// Handles one event; `Err` is retried later.
    fn handle<'a>(&'a self, event: &'a EventRecord) -> BoxFuture<'a, Result<(), String>>;

    /// Called when `event` became a dead letter: state that depends on
    /// seeing every event must not pretend it did.
    fn on_dead_letter(&self, _event: &EventRecord) {}
}

/// A subscriber whose effect is outside this system (a webhook call): it
/// runs outside any transaction, and the checkpoint past the event is stored
/// after it succeeds or is dead-lettered — at least once, in order, one node
/// at a time.
pub trait RemoteHandler: Send + Sync + 'static {
    /// Delivers one event (`attempt` counts from 1); `Err` is retried later.
    fn deliver<'a>(
        &'a self,
        event: &'a EventRecord,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// True once the subscriber is gone (a webhook deleted): its task ends.
    fn retired(&self) -> bool {
        false
    }
}

/// How a subscriber handles events.
#[derive(Clone)]
pub enum Handler {
    /// Database effects, committed with the checkpoint; one node at a time.
    Durable(Arc<dyn DurableHandler>),
    /// In-memory effects on every node.
    Local(Arc<dyn LocalHandler>),
    /// Effects elsewhere, checkpoint stored after each; one node at a time.
    Remote(Arc<dyn RemoteHandler>),
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

/// Whether a subscriber with filter `types` wants events of `event_type`.
pub(super) fn wants(types: Option<&'static [&'static str]>, event_type: &str) -> bool {
    types.is_none_or(|t| t.contains(&event_type))
}
