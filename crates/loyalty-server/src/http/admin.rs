//! Verification and the test-mode controls (clock and faults).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use loyalty_core::Permission;
use loyalty_store::ops;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;

/// Most drift rows returned by one verification (the count is exact).
pub const DRIFT_REPORT_MAX: usize = 1000;

pub(super) async fn verify(State(st): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let (checked, drift, total) = st
        .store
        .read(|tx| ops::verify(tx, DRIFT_REPORT_MAX))
        .await?;
    if total > 0 {
        tracing::error!(
            drift_count = total,
            accounts_checked = checked,
            "ledger_drift_detected"
        );
    }
    Ok(axum::Json(json!({
        "accounts_checked": checked,
        "drift": drift,
        "drift_count": total,
        "ok": total == 0,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct ClockBody {
    now: Timestamp,
}

pub(super) async fn set_clock(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ClockBody>,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let to = body.now;
    st.store
        .write(move |tx| tx.set_test_clock(to))
        .await
        .map_err(ApiError::from)?;
    st.clock.set(body.now);
    tracing::warn!(now = %body.now, "test mode: clock set");
    Ok(axum::Json(json!({"now": st.clock.now()})).into_response())
}

#[derive(Deserialize)]
pub(super) struct FaultsBody {
    loyalty_accrual: Option<String>,
    /// Names of the subscribers whose deliveries fail (replaces the set).
    failing_subscribers: Option<Vec<String>>,
}

pub(super) async fn set_faults(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<FaultsBody>,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    if body.loyalty_accrual.is_none() && body.failing_subscribers.is_none() {
        return Err(ApiError::validation(
            "loyalty_accrual",
            "give loyalty_accrual and/or failing_subscribers",
        ));
    }
    let fail = match body.loyalty_accrual.as_deref() {
        None => None,
        Some("fail") => Some(true),
        Some("ok") => Some(false),
        Some(_) => {
            return Err(ApiError::validation(
                "loyalty_accrual",
                "must be \"fail\" or \"ok\"",
            ));
        }
    };
    if let Some(names) = &body.failing_subscribers
        && let Some(unknown) = names.iter().find(|n| !st.events.registry.knows(n))
    {
        return Err(ApiError::validation(
            "failing_subscribers",
            format!("no subscriber named {unknown:?} runs here"),
        ));
    }
    if let Some(fail) = fail {
        st.faults
            .loyalty_accrual_fail
            .store(fail, Ordering::Relaxed);
    }
    if let Some(names) = body.failing_subscribers
        && let Ok(mut set) = st.faults.failing_subscribers.lock()
    {
        *set = names.into_iter().collect();
    }
    let accrual = if st.faults.loyalty_accrual_fail.load(Ordering::Relaxed) {
        "fail"
    } else {
        "ok"
    };
    let mut failing: Vec<String> = st
        .faults
        .failing_subscribers
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    failing.sort();
    tracing::warn!(loyalty_accrual = accrual, failing_subscribers = ?failing, "test mode: faults set");
    Ok(
        axum::Json(json!({"loyalty_accrual": accrual, "failing_subscribers": failing}))
            .into_response(),
    )
}
