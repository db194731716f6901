//! The subscribers of this node and how far each has got. Their peers read
//! it to keep priority order, the API to show it (`GET /v1/subscribers`),
//! and operators poke it to ask for a dead-letter replay now.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// One subscriber's progress on this node, shared with its peers (priority)
/// and the API (`GET /v1/subscribers`).
#[derive(Debug)]
pub struct Progress {
    /// Name.
    pub name: &'static str,
    /// Priority.
    pub priority: i32,
    /// Filter.
    pub event_types: Option<&'static [&'static str]>,
    /// Whether durable.
    pub durable: bool,
    pub(super) position: AtomicI64,
    pub(super) healthy: AtomicBool,
    pub(super) active: AtomicBool,
    pub(super) replay_hint: AtomicBool,
}

impl Progress {
    /// The last seq fully handled here (delivered, skipped or dead-lettered).
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::SeqCst)
    }
    /// False while retrying a failed delivery.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }
    /// False while another node runs it (durable, no lease).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }
}

/// The subscribers of this node.
#[derive(Debug, Default)]
pub struct Registry {
    pub(super) subs: RwLock<Vec<Arc<Progress>>>,
    pub(super) changed: tokio::sync::Notify,
}

/// A subscriber's state for the API.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberView {
    /// Name.
    pub name: &'static str,
    /// `durable` or `local`.
    pub kind: &'static str,
    /// Priority.
    pub priority: i32,
    /// Filter (`null` = all).
    pub event_types: Option<&'static [&'static str]>,
    /// Last seq handled here.
    pub position: i64,
    /// Running on this node.
    pub active: bool,
    /// Not retrying a failure.
    pub healthy: bool,
}

impl Registry {
    /// Every subscriber, by priority.
    pub fn list(&self) -> Vec<SubscriberView> {
        let subs = self.subs.read().map(|s| s.clone()).unwrap_or_default();
        subs.iter()
            .map(|p| SubscriberView {
                name: p.name,
                kind: if p.durable { "durable" } else { "local" },
                priority: p.priority,
                event_types: p.event_types,
                position: p.position(),
                active: p.active(),
                healthy: p.healthy(),
            })
            .collect()
    }

    /// Forgets a subscriber that ended (a deleted webhook).
    pub(super) fn remove(&self, name: &str) {
        if let Ok(mut subs) = self.subs.write() {
            subs.retain(|p| p.name != name);
        }
        self.changed.notify_waiters();
    }

    /// Whether a subscriber of that name runs here.
    pub fn knows(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(super) fn get(&self, name: &str) -> Option<Arc<Progress>> {
        self.subs
            .read()
            .ok()?
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Asks a subscriber to look for replay requests now.
    pub fn hint_replay(&self, name: &str) {
        if let Some(p) = self.get(name) {
            p.replay_hint.store(true, Ordering::SeqCst);
            self.changed.notify_waiters();
        }
    }

    /// Position of a subscriber on this node.
    pub fn position(&self, name: &str) -> Option<i64> {
        self.get(name).map(|p| p.position())
    }
}
