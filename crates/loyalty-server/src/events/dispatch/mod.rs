//! The dispatcher: in-process subscribers fed from the outbox.
//!
//! Each subscriber runs in its own task with its own position, so a failing
//! or slow one never holds up another, nor the write path (writers only
//! [`super::EventHub::poke`]). A subscriber reads the outbox after its
//! position in batches of at most [`super::BATCH_EVENTS_MAX`], skips events
//! its type filter does not want, and handles the rest in seq order:
//!
//! * **Durable** subscribers ([`DurableHandler`]) write to the database. The
//!   dispatcher runs a whole batch in **one transaction together with the
//!   checkpoint** (each event in a savepoint), so an event's effects and the
//!   checkpoint past it commit together: after a crash nothing is skipped and
//!   nothing is applied twice. Their checkpoint lives in
//!   `subscriber_checkpoints`; with several nodes one node at a time runs each
//!   (a lease row, `subscriber:{name}`).
//! * **Local** subscribers ([`LocalHandler`]) keep state in this process's
//!   memory (the balance cache). Their position is in memory too and starts
//!   at the outbox head: their state starts empty with the process.
//!
//! A failed delivery is retried with exponential backoff (`retry_base_ms`
//! doubling up to `retry_max_ms`) up to `attempts_max` attempts in all; then
//! the event becomes a dead letter for that subscriber (with the error and
//! attempts, in the same transaction as the checkpoint for durable ones) and
//! the subscriber moves on. Dead letters are replayed on request (status
//! REPLAY_REQUESTED → REPLAYED, or DEAD again with the new error).
//!
//! Delivery is at least once and in seq order per subscriber. Duplicates are
//! suppressed per subscriber by event id: the checkpoint, a bounded set of
//! recently handled ids, and unique `(…, event_id)` keys on what the
//! shipped durable subscribers write.
//!
//! **Priority**: for the same event, a subscriber waits until every
//! subscriber of lower priority on this node that wants the event has handled
//! it — unless that one is failing (in backoff), not running here (no
//! lease), or has not finished within [`PRIORITY_WAIT_MS_MAX`]; then it
//! stops waiting for it until it catches up. Order among healthy subscribers
//! is strict; a stuck one delays the others once, by a bounded time.
//!
//! The module, one file per job:
//!
//! * `subscription` — what a subscriber is: the handler traits and
//!   [`Subscription`].
//! * `registry` — the subscribers of this node and their progress, shared
//!   with their peers and the API.
//! * `runner` — one task per subscriber: starting them, reading the outbox,
//!   waiting for lower-priority peers.
//! * `local` — the delivery loop of local subscribers.
//! * `durable` — the delivery loop of durable subscribers: a batch per
//!   transaction, with the per-event savepoint fallback.
//! * `dead_letters` — what follows a failed delivery, for both loops:
//!   retry with backoff, then the dead letter; and replay on request.
//! * `lease` — leases on cluster-wide tasks.

mod dead_letters;
mod durable;
mod lease;
mod local;
mod registry;
mod remote;
mod runner;
mod subscription;
#[cfg(test)]
mod test_support;

pub use lease::Lease;
pub use registry::{Progress, Registry, SubscriberView};
pub use runner::start;
pub use subscription::{
    Deferred, DurableHandler, HandleCtx, Handler, LocalHandler, RemoteHandler, Subscription,
};

/// Longest a subscriber waits for a lower-priority one on one event.
pub const PRIORITY_WAIT_MS_MAX: u64 = 2_000;
/// How long a lease lasts without renewal.
pub const LEASE_TTL_MS_DEFAULT: i64 = 15_000;
/// Event ids remembered per subscriber for duplicate suppression.
pub const RECENT_IDS_MAX: usize = 8_192;
/// How long a durable subscriber lets new events gather after waking, so
/// that under load one transaction carries many events.
pub const DURABLE_LINGER_MS: u64 = 50;
/// A durable subscriber whose batch holds no event it wants moves its
/// checkpoint in memory only, and stores it at most this often while events
/// keep coming (and as soon as it is idle): a commit per batch of skipped
/// events would cost the writer an fsync for nothing. After a crash it
/// re-reads, and skips again, at most this much of the outbox.
pub const SKIPPED_CHECKPOINT_MS: u64 = 1_000;
/// Dead letters replayed per pass.
pub const REPLAY_BATCH_MAX: u32 = 100;
