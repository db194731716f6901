//! Manual rewards (DESIGN §3.4). Checks run in the documented order:
//! 401 → 403 FORBIDDEN → 403 INVALID_STAFF_ID → 400 VALIDATION_ERROR →
//! 422 REWARD_EXCEEDS_LIMIT → 404 / 422 INSUFFICIENT_BALANCE → 429 rate limit.
//! A refused request writes nothing and uses no quota; replays use none.

use loyalty_core::{IdempotencyKey, Points, Reason};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use loyalty_core::Permission;
use loyalty_core::limits::{REWARD_POINTS_MAX, REWARD_REASON_CHARS_MIN};
use loyalty_store::LedgerEntry;
use loyalty_store::ops::{self, OpError};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::validate::field;
use crate::app::AppState;
use crate::auth::{Caller, hex};
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{RawBody, parse_json};
use crate::idem::{self, Outcome, run_write};
use crate::ratelimit::Decision;

#[derive(Deserialize)]
struct RewardInput {
    player_id: Uuid,
    points: i64,
    reason: String,
    #[allow(dead_code)]
    staff_id: Uuid,
    rating_slip_id: Option<Uuid>,
    reward_id: Option<String>,
}

fn entry_body(entry: &LedgerEntry, replay: bool) -> Value {
    let mut v = json!(entry);
    v["idempotent_replay"] = json!(replay);
    v
}

/// The deterministic key of a reward without `reward_id`: a hash of player,
/// staff, points, reason, rating slip and gaming day (DESIGN §3.3), so the
/// same reward for two slips on one gaming day is two rewards.
fn derived_key(
    player: Uuid,
    staff: Uuid,
    points: i64,
    reason: &str,
    slip: Option<Uuid>,
    day: jiff::civil::Date,
) -> String {
    let mut h = Sha256::new();
    for part in [
        player.to_string(),
        staff.to_string(),
        points.to_string(),
        reason.to_string(),
        day.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    // Rewards without a slip keep the key they always had.
    if let Some(slip) = slip {
        h.update(b"slip:");
        h.update(slip.to_string().as_bytes());
        h.update([0x1f]);
    }
    format!("manual:{}", hex(&h.finalize()))
}

pub(super) async fn manual_reward(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let started = Instant::now();
    let staff = caller.require(Permission::LoyaltyAward)?.clone();
    let raw: Value = parse_json(&body)?;
    if raw
        .get("points")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < 0.0)
    {
        caller.require(Permission::LoyaltyAdjust)?;
    }
    match raw.get("staff_id") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_str().and_then(|s| Uuid::parse_str(s).ok()) == Some(staff.id) => {}
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidStaffId,
                "staff_id must be the authenticated staff member",
            ));
        }
    }
    let input: RewardInput = parse_json(&body)?;
    if input.points == 0 {
        return Err(ApiError::validation("points", "must not be zero"));
    }
    let reason = field(
        "reason",
        Reason::new(&input.reason, REWARD_REASON_CHARS_MIN),
    )?;
    let reward_id = input
        .reward_id
        .as_deref()
        .map(|r| field("reward_id", IdempotencyKey::new(r)))
        .transpose()?;
    // A malformed Idempotency-Key is invalid input too (rule 4).
    let header_key = idem::parse(
        &headers,
        &caller,
        "manual_reward",
        "/v1/loyalty/manual-rewards",
        &body,
    )?;
    if input.points.unsigned_abs() > REWARD_POINTS_MAX.unsigned_abs() {
        return Err(ApiError::new(
            Code::RewardExceedsLimit,
            format!("a manual reward is at most {REWARD_POINTS_MAX} points either way"),
        )
        .with_details(json!({"points": input.points, "limit": REWARD_POINTS_MAX})));
    }

    let now = st.clock.now();
    let key = match &reward_id {
        Some(r) => format!("reward:{r}"),
        None => derived_key(
            input.player_id,
            staff.id,
            input.points,
            reason.as_str(),
            input.rating_slip_id,
            st.gaming_day(now),
        ),
    };

    let cmd = ops::ManualReward {
        player_id: loyalty_core::PlayerId::of(input.player_id),
        points: field("points", Points::new(input.points))?,
        reason,
        staff_id: loyalty_core::StaffId::of(staff.id),
        rating_slip_id: input.rating_slip_id.map(loyalty_core::SlipId::of),
        key,
    };
    // The operation's own checks, read-only and in rule order, before the
    // rate limiter: a replay (of the Idempotency-Key or the reward key)
    // uses no quota and a refusal takes none. The transaction checks again.
    let (hk, check) = (header_key.clone(), cmd.clone());
    let replay = st
        .store
        .read(move |tx| -> Result<bool, OpError> {
            if let Some(h) = &hk
                && tx.idempotency_record(&h.scope, &h.key)?.is_some()
            {
                return Ok(true);
            }
            Ok(ops::check_manual_reward(tx, &check)?.is_some())
        })
        .await?;
    let ticket = if !replay {
        match st.limiter.acquire(staff.id, now).await {
            Ok(Decision::Granted(t)) => Some(t),
            Ok(Decision::Limited { retry_after_s }) => {
                let mut e = ApiError::new(
                    Code::RateLimitExceeded,
                    "too many manual rewards by this staff member; retry later",
                )
                .with_details(json!({"retry_after_seconds": retry_after_s}));
                e.retry_after_s = Some(retry_after_s);
                return Err(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "rate limiter unavailable");
                return Err(ApiError::new(
                    Code::RateLimitUnavailable,
                    "the rate limiter is unavailable; the reward was not issued",
                ));
            }
        }
    } else {
        None
    };

    let mut ctx = st.op_ctx(Some(&caller), Some(cmd.key.clone()));
    ctx.now = now;
    if let Some(threshold) = st.settings.dual_control_threshold
        && input.points.unsigned_abs() >= threshold.unsigned_abs()
    {
        // Dual control: nothing is written to the ledger until another
        // staff member approves. The request counted against the rate
        // limit now, when it was made.
        let result = run_write(
            &st,
            ctx,
            header_key,
            move |tx, ctx| {
                // An identical request already written as an entry replays it.
                if tx.entry_by_key(&cmd.key)?.is_some() {
                    let (entry, _) = ops::manual_reward(tx, ctx, cmd)?;
                    return Ok(Requested::Written(entry));
                }
                let (approval, replay) = ops::approvals::request(tx, ctx, cmd)?;
                Ok(Requested::Waiting(approval, replay))
            },
            |r, _| match r {
                Requested::Written(entry) => (StatusCode::OK, entry_body(entry, true)),
                Requested::Waiting(approval, replay) => (
                    StatusCode::ACCEPTED,
                    json!({"approval": approval, "idempotent_replay": replay}),
                ),
            },
        )
        .await;
        let fresh = matches!(
            &result,
            Ok(Outcome::Fresh(_, _, Requested::Waiting(_, false)))
        );
        if let (Some(t), false) = (ticket, fresh) {
            st.limiter.release(t).await;
        }
        let out = result?;
        if let Outcome::Fresh(_, _, Requested::Waiting(a, false)) = &out {
            tracing::info!(
                correlation_id = %crate::correlation::current(),
                approval_id = %a.id,
                player_id = %a.player_id,
                staff_id = %a.requested_by,
                points = a.points,
                expires_at = %a.expires_at,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "approval_requested"
            );
        }
        return Ok(out.into_response());
    }
    let result = run_write(
        &st,
        ctx,
        header_key,
        move |tx, ctx| ops::manual_reward(tx, ctx, cmd),
        |(entry, replay), _| {
            let status = if *replay {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, entry_body(entry, *replay))
        },
    )
    .await;
    let fresh_write = matches!(&result, Ok(Outcome::Fresh(_, _, (_, false))));
    if let (Some(t), false) = (ticket, fresh_write) {
        st.limiter.release(t).await;
    }
    let out = result?;
    if let Outcome::Fresh(_, _, (entry, replay)) = &out {
        log_reward(entry, *replay, started);
    }
    Ok(out.into_response())
}

/// What a reward under dual control did.
enum Requested {
    /// The same request had already been approved and written: its entry.
    Written(LedgerEntry),
    /// The request waits for a second staff member (`true`: a replay).
    Waiting(loyalty_store::Approval, bool),
}

fn log_reward(e: &LedgerEntry, replay: bool, started: Instant) {
    tracing::info!(
        correlation_id = %e.correlation_id,
        player_id = %e.player_id,
        staff_id = e.staff_id.map(tracing::field::display),
        ledger_entry_id = %e.id,
        points = e.points_change,
        transaction_type = e.transaction_type.as_str(),
        reason = e.reason.as_deref().unwrap_or(""),
        idempotency_key = e.idempotency_key.as_deref().unwrap_or(""),
        balance_before = e.balance_before,
        balance_after = e.balance_after,
        tier_before = e.tier_before.as_str(),
        tier_after = e.tier_after.as_str(),
        idempotent_replay = replay,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "manual_reward_issued"
    );
    if e.tier_before != e.tier_after && !replay {
        tracing::info!(
            correlation_id = %e.correlation_id,
            player_id = %e.player_id,
            tier_before = e.tier_before.as_str(),
            tier_after = e.tier_after.as_str(),
            lifetime_points = e.lifetime_after,
            "loyalty_tier_changed"
        );
    }
}
