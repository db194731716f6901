//! Background work: retrying pending accruals and purging old idempotency
//! records.

use std::time::{Duration, Instant};

use loyalty_store::ops::{self, Completion};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::ApiError;

/// Most pending slips retried per pass.
pub const RETRY_BATCH_MAX: u32 = 100;

/// Retries pending accruals forever, every `accrual_retry_interval_ms`.
/// Each slip's own backoff (`next_retry_at`) decides whether it is due.
pub async fn retry_pending_accruals(state: AppState) {
    let interval = Duration::from_millis(state.settings.accrual_retry_interval_ms.max(50));
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = retry_pass(&state).await {
            tracing::warn!(error = %e.message, "pending accrual retry pass failed");
        }
    }
}

/// One pass: every due pending slip gets one attempt.
pub async fn retry_pass(state: &AppState) -> Result<usize, ApiError> {
    let now = state.clock.now();
    let due = state
        .store
        .read(move |tx| tx.pending_slips(now, RETRY_BATCH_MAX))
        .await?;
    let n = due.len();
    for slip_id in due {
        let cid = format!("retry-{}", uuid::Uuid::new_v4().simple());
        let span = tracing::info_span!("accrual_retry", correlation_id = %cid);
        let st = state.clone();
        crate::correlation::scope(cid, async move {
            let started = Instant::now();
            let ctx = st.op_ctx(None, None);
            let result = st
                .store
                .write(move |tx| ops::recover_slip(tx, &ctx, loyalty_core::SlipId::of(slip_id)))
                .await;
            match result {
                Ok(c @ Completion::Accrued { .. }) => {
                    crate::logs::log_completion(&c, "background_retry", None, started)
                }
                Ok(c @ Completion::Pending { .. }) => {
                    crate::logs::log_completion(&c, "background_retry", None, started)
                }
                Err(e) => {
                    tracing::warn!(rating_slip_id = %slip_id, error = %e, "accrual retry failed")
                }
            }
        })
        .instrument(span)
        .await;
    }
    Ok(n)
}

/// Deletes idempotency records past retention, hourly.
pub async fn purge_idempotency_records(state: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let before = state.clock.now()
            - jiff::SignedDuration::from_hours(i64::from(
                state.settings.idempotency_retention_hours.max(24),
            ));
        match state
            .store
            .write(move |tx| tx.purge_idempotency_records(before))
            .await
        {
            Ok(n) => tracing::info!(purged = n, "idempotency records purged"),
            Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
        }
    }
}

/// Most due escrows expired per sweep.
pub const EXPIRY_BATCH_MAX: u32 = 200;

/// Refunds every HELD escrow past its expiry, every
/// `escrow_sweep_interval_ms` (by the server clock, so the test clock in
/// test mode). Several nodes may sweep at once: each expiry locks its escrow
/// and re-checks that it is still HELD and due, so each hold is refunded
/// once; a capture racing the sweep is refused (a hold past its expiry is
/// never captured) or, if it committed first, leaves nothing to expire.
pub async fn expire_escrows(state: AppState) {
    let interval = Duration::from_millis(state.settings.escrow_sweep_interval_ms.max(20));
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = expiry_pass(&state).await {
            tracing::warn!(error = %e.message, "escrow expiry pass failed");
        }
    }
}

/// One sweep: every due escrow gets one attempt; returns how many expired.
pub async fn expiry_pass(state: &AppState) -> Result<usize, ApiError> {
    let now = state.clock.now();
    let due = state
        .store
        .read(move |tx| tx.due_escrows(now, EXPIRY_BATCH_MAX))
        .await?;
    let mut expired = 0;
    for escrow_id in due {
        let cid = format!("expiry-{}", uuid::Uuid::new_v4().simple());
        let st = state.clone();
        let done = crate::correlation::scope(cid, async move {
            let ctx = st.op_ctx(None, None);
            let r = st
                .store
                .write(move |tx| {
                    ops::wallet::expire(tx, &ctx, loyalty_core::EscrowId::of(escrow_id))
                })
                .await;
            st.events.poke();
            r
        })
        .await;
        match done {
            Ok(Some(e)) => {
                expired += 1;
                tracing::info!(escrow_id = %e.id, player_id = %e.player_id,
                    refunded = e.refunded_amount, "escrow_expired");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(escrow_id = %escrow_id, error = %e, "escrow expiry failed"),
        }
    }
    Ok(expired)
}
