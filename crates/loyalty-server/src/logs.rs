//! The business log lines of outcomes that more than one caller reports
//! (docs/runbook.md lists every line): a slip's completion is logged the same
//! way whether a request or the background retry settled it.

use std::time::Instant;

use loyalty_store::ops::{self, Completion};
use uuid::Uuid;

/// Writes the canonical log line of a completion or recovery.
pub fn log_completion(c: &Completion, action: &str, staff_id: Option<Uuid>, started: Instant) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let correlation_id = crate::correlation::current();
    match c {
        Completion::Accrued {
            slip,
            loyalty,
            entry,
        } => {
            tracing::info!(
                correlation_id = %correlation_id,
                action,
                player_id = %slip.player_id,
                rating_slip_id = %slip.id,
                staff_id = staff_id.map(tracing::field::display),
                ledger_entry_id = %entry.id,
                points = loyalty.points_earned,
                balance_before = loyalty.balance_before,
                balance_after = loyalty.balance_after,
                tier_before = loyalty.tier_before.as_str(),
                tier_after = loyalty.tier_after.as_str(),
                idempotency_key = entry.idempotency_key.as_deref().unwrap_or(""),
                idempotent_replay = loyalty.idempotent_replay,
                duration_ms,
                "loyalty_accrual_completed"
            );
            if loyalty.tier_before != loyalty.tier_after && !loyalty.idempotent_replay {
                tracing::info!(
                    correlation_id = %correlation_id,
                    player_id = %slip.player_id,
                    tier_before = loyalty.tier_before.as_str(),
                    tier_after = loyalty.tier_after.as_str(),
                    lifetime_points = loyalty.lifetime_points,
                    "loyalty_tier_changed"
                );
            }
        }
        Completion::Pending { slip, error } => {
            tracing::error!(
                correlation_id = %correlation_id,
                action,
                player_id = %slip.player_id,
                rating_slip_id = %slip.id,
                staff_id = staff_id.map(tracing::field::display),
                error = %error,
                attempts = slip.accrual_attempts,
                idempotency_key = %ops::gameplay_key(slip.id),
                recovery_needed = true,
                duration_ms,
                "loyalty_accrual_failed"
            );
        }
    }
}
