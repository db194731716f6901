//! Dual control (DESIGN §9): a manual reward or adjustment at or above the
//! configured threshold writes nothing to the ledger; it waits as a PENDING
//! approval until another staff member approves it — then the entry is
//! written in that transaction, carrying both staff ids — or rejects it, its
//! requester withdraws it, or it lapses after [`APPROVAL_TTL_HOURS`].

use jiff::SignedDuration;
use loyalty_core::events::{self as ev, Event};
use loyalty_core::{ApprovalId, PlayerId, SlipId, StaffId};
use uuid::Uuid;

use super::{ManualReward, OpCtx, OpError, manual_reward_by};
use crate::{Approval, LedgerEntry, StoreError, Tx};

/// How long a request waits for a decision.
pub const APPROVAL_TTL_HOURS: i64 = 24;

/// Status names.
pub mod status {
    /// Waiting for a decision.
    pub const PENDING: &str = "PENDING";
    /// Approved: the entry is written.
    pub const APPROVED: &str = "APPROVED";
    /// Rejected by another staff member.
    pub const REJECTED: &str = "REJECTED";
    /// Withdrawn by its requester.
    pub const WITHDRAWN: &str = "WITHDRAWN";
    /// Lapsed without a decision.
    pub const EXPIRED: &str = "EXPIRED";
}

fn decided(tx: &mut dyn Tx, ctx: &OpCtx, a: &Approval) -> Result<(), OpError> {
    ctx.emit(
        tx,
        Event::ApprovalDecided(ev::ApprovalDecided {
            approval_id: a.id,
            status: a.status.clone(),
            player_id: a.player_id,
            points: a.points,
            requested_by: a.requested_by,
            decided_by: a.decided_by,
            decision_reason: a.decision_reason.clone(),
            ledger_entry_id: a.ledger_entry_id,
        }),
    )
}

/// Records a request for approval of `input` (already validated and
/// checked like a reward). The same request again (same reward key)
/// answers the standing approval: `(approval, replay)`.
pub fn request(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    input: ManualReward,
) -> Result<(Approval, bool), OpError> {
    if let Some(existing) = tx.approval_by_key(&input.key)? {
        let same = existing.player_id == input.player_id.uuid()
            && existing.requested_by == input.staff_id.uuid()
            && existing.points == input.points.get()
            && existing.reason == input.reason.as_str()
            && existing.rating_slip_id == input.rating_slip_id.map(SlipId::uuid);
        if !same {
            return Err(OpError::IdempotencyKeyReused);
        }
        return Ok((existing, true));
    }
    tx.player(input.player_id.uuid())?
        .ok_or(OpError::NotFound("player"))?;
    let approval = Approval {
        seq: 0,
        id: ctx.new_id(),
        status: status::PENDING.into(),
        player_id: input.player_id.uuid(),
        points: input.points.get(),
        reason: input.reason.into_string(),
        rating_slip_id: input.rating_slip_id.map(SlipId::uuid),
        reward_key: input.key,
        requested_by: input.staff_id.uuid(),
        requested_at: ctx.now,
        expires_at: ctx.now + SignedDuration::from_hours(APPROVAL_TTL_HOURS),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        ledger_entry_id: None,
        correlation_id: ctx.correlation_id.clone(),
    };
    tx.insert_approval(&approval)?;
    ctx.emit(
        tx,
        Event::ApprovalRequested(ev::ApprovalRequested {
            approval_id: approval.id,
            player_id: approval.player_id,
            points: approval.points,
            reason: approval.reason.clone(),
            staff_id: approval.requested_by,
            rating_slip_id: approval.rating_slip_id,
            expires_at: approval.expires_at,
        }),
    )?;
    Ok((approval, false))
}

/// A pending approval, or its final state written as EXPIRED if it lapsed.
fn open_or_lapsed(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<Approval, OpError> {
    let mut a = tx.approval(id)?.ok_or(OpError::NotFound("approval"))?;
    if a.status == status::PENDING && a.expires_at <= ctx.now {
        a.status = status::EXPIRED.into();
        a.decided_at = Some(a.expires_at);
        tx.update_approval(&a)?;
        decided(tx, ctx, &a)?;
    }
    Ok(a)
}

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Decided now (with the entry, when approved).
    Made(Approval, Option<Box<LedgerEntry>>),
    /// The request was already decided this way: the first result.
    Repeated(Approval),
    /// The request is no longer pending (another decision, or it lapsed —
    /// a lapse found now is written before this is answered).
    NotPending(Approval),
}

/// Approves a pending request as `approver` (not its requester): writes
/// the entry (with `approved_by`) and answers it.
pub fn approve(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: ApprovalId,
    approver: StaffId,
) -> Result<Decision, OpError> {
    let id = id.uuid();
    let approver = approver.uuid();
    let mut a = open_or_lapsed(tx, ctx, id)?;
    if a.status == status::APPROVED {
        return Ok(Decision::Repeated(a));
    }
    if a.status != status::PENDING {
        return Ok(Decision::NotPending(a));
    }
    if approver == a.requested_by {
        return Err(OpError::SelfApproval);
    }
    // The request was parsed when it was made; its stored values are
    // parsed again on the way back in, and a refusal here is a bug.
    let stored = |e: loyalty_core::ValueError| {
        OpError::from(StoreError::Internal(format!(
            "stored approval {}: {e}",
            a.id
        )))
    };
    let input = ManualReward {
        player_id: PlayerId::of(a.player_id),
        points: loyalty_core::Points::new(a.points).map_err(stored)?,
        reason: loyalty_core::Reason::new(&a.reason, 1).map_err(stored)?,
        staff_id: StaffId::of(a.requested_by),
        rating_slip_id: a.rating_slip_id.map(SlipId::of),
        key: a.reward_key.clone(),
    };
    let (entry, replay) = manual_reward_by(tx, ctx, input, Some(approver))?;
    if replay {
        return Err(StoreError::Internal("an approval's reward was already written".into()).into());
    }
    a.status = status::APPROVED.into();
    a.decided_by = Some(approver);
    a.decided_at = Some(ctx.now);
    a.ledger_entry_id = Some(entry.id);
    tx.update_approval(&a)?;
    decided(tx, ctx, &a)?;
    Ok(Decision::Made(a, Some(Box::new(entry))))
}

/// Rejects a pending request (`by` another staff member) or withdraws it
/// (`by` its requester), with a reason.
pub fn reject(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: ApprovalId,
    by: StaffId,
    reason: String,
) -> Result<Decision, OpError> {
    let id = id.uuid();
    let by = by.uuid();
    let mut a = open_or_lapsed(tx, ctx, id)?;
    let wanted = if by == a.requested_by {
        status::WITHDRAWN
    } else {
        status::REJECTED
    };
    if a.status == wanted && a.decided_by == Some(by) {
        return Ok(Decision::Repeated(a));
    }
    if a.status != status::PENDING {
        return Ok(Decision::NotPending(a));
    }
    a.status = wanted.into();
    a.decided_by = Some(by);
    a.decided_at = Some(ctx.now);
    a.decision_reason = Some(reason);
    tx.update_approval(&a)?;
    decided(tx, ctx, &a)?;
    Ok(Decision::Made(a, None))
}
