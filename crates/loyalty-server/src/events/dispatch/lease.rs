//! Leases on cluster-wide tasks: a row per task naming the node that runs
//! it, taken and renewed through the store, so that with several nodes one
//! at a time runs each durable subscriber and the NATS relay.

use std::time::{Duration, Instant};

use crate::app::AppState;

/// A lease on a cluster-wide task, renewed every third of its lifetime.
pub struct Lease {
    name: String,
    renewed: Option<Instant>,
    held: bool,
}

impl Lease {
    /// A lease not yet taken.
    pub fn new(name: String) -> Self {
        Lease {
            name,
            renewed: None,
            held: false,
        }
    }

    /// Whether this node holds the lease now (taking or renewing it as due).
    pub async fn hold(&mut self, state: &AppState) -> bool {
        let ttl = state.events.lease_ttl_ms();
        let renew_every = Duration::from_millis(u64::try_from(ttl / 3).unwrap_or(1000));
        if self.held && self.renewed.is_some_and(|t| t.elapsed() < renew_every) {
            return true;
        }
        let (n, holder) = (self.name.clone(), state.events.node_id.clone());
        let held = state
            .store
            .write(move |tx| tx.try_lease(&n, &holder, ttl))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(lease = %self.name, error = %e, "lease renewal failed");
                false
            });
        if held {
            self.renewed = Some(Instant::now());
        }
        if held != self.held {
            tracing::info!(lease = %self.name, held, node = %state.events.node_id, "lease_changed");
        }
        self.held = held;
        held
    }
}
