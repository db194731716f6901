//! Manual rewards and adjustments.

use super::*;

/// Input of [`manual_reward`], already validated at the edge.
#[derive(Debug, Clone)]
pub struct ManualReward {
    /// Player rewarded.
    pub player_id: PlayerId,
    /// Signed points, 1 ≤ |points| ≤ 10,000.
    pub points: Points,
    /// Why, 10–500 characters.
    pub reason: Reason,
    /// Staff member granting it (the authenticated one).
    pub staff_id: StaffId,
    /// Rating slip it belongs to, if any (must be the player's).
    pub rating_slip_id: Option<SlipId>,
    /// Deterministic idempotency key.
    pub key: String,
}

/// The checks of a manual reward before anything is written, in rule
/// order: the same key again is a replay (`Some` with the entry it wrote)
/// or, with other content, a reuse; then the player, its rating slip and the
/// balance. Read-only: a caller that must decide before the write (the rate
/// limiter takes quota only for a reward that will be written) runs it in a
/// read, and [`manual_reward`] runs it again in its transaction.
pub fn check_manual_reward(
    tx: &mut dyn Tx,
    input: &ManualReward,
) -> Result<Option<LedgerEntry>, OpError> {
    Ok(match check(tx, input)? {
        Checked::Replay(entry) => Some(*entry),
        Checked::Write(_) => None,
    })
}

/// What [`check`] found.
enum Checked {
    /// The key's earlier entry, to answer again.
    Replay(Box<LedgerEntry>),
    /// The player's account (locked in a write), to write the entry on.
    Write(Account),
}

fn check(tx: &mut dyn Tx, input: &ManualReward) -> Result<Checked, OpError> {
    if let Some(existing) = tx.entry_by_key(&input.key)? {
        // A key replays only the request that wrote it; anything else is a
        // reuse, answered without revealing the original entry.
        let same = existing.player_id == input.player_id.uuid()
            && existing.staff_id == Some(input.staff_id.uuid())
            && existing.points_change == input.points.get()
            && existing.reason.as_deref() == Some(input.reason.as_str())
            && existing.rating_slip_id == input.rating_slip_id.map(SlipId::uuid)
            && matches!(
                existing.transaction_type,
                TransactionType::ManualBonus | TransactionType::Adjustment
            );
        if !same {
            return Err(OpError::IdempotencyKeyReused);
        }
        return Ok(Checked::Replay(Box::new(existing)));
    }
    if let Some(slip_id) = input.rating_slip_id.map(SlipId::uuid) {
        // An unknown player is reported before anything about the slip;
        // without a slip, the account's read below tells it.
        tx.player(input.player_id.uuid())?
            .ok_or(OpError::NotFound("player"))?;
        match tx.slip(slip_id)? {
            Some(slip) if slip.player_id == input.player_id.uuid() => {}
            Some(_) => {
                return Err(validation(
                    "rating_slip_id",
                    "rating slip belongs to another player",
                ));
            }
            None => return Err(validation("rating_slip_id", "rating slip does not exist")),
        }
    }
    // Locks in the order every write takes them: slip, then account.
    let account = tx
        .account(input.player_id.uuid())?
        .ok_or(OpError::NotFound("player"))?;
    if account.current_balance.saturating_add(input.points.get()) < 0 {
        return Err(OpError::InsufficientBalance {
            available: account.current_balance,
            requested: -input.points.get(),
        });
    }
    Ok(Checked::Write(account))
}

/// Grants a manual reward (MANUAL_BONUS) or adjustment (ADJUSTMENT). Returns
/// the entry and whether it is a replay of an earlier one with the same key.
pub fn manual_reward(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    input: ManualReward,
) -> Result<(LedgerEntry, bool), OpError> {
    manual_reward_by(tx, ctx, input, None)
}

/// [`manual_reward`], approved by a second staff member under dual control
/// when `approved_by` is set (the entry carries both ids).
pub(crate) fn manual_reward_by(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    input: ManualReward,
    approved_by: Option<Uuid>,
) -> Result<(LedgerEntry, bool), OpError> {
    let account = match check(tx, &input)? {
        Checked::Replay(existing) => return Ok((*existing, true)),
        Checked::Write(account) => account,
    };
    let transaction_type = if input.points.get() > 0 {
        TransactionType::ManualBonus
    } else {
        TransactionType::Adjustment
    };
    let entry = apply_entry_to(
        tx,
        ctx,
        account,
        EntrySpec {
            player_id: input.player_id.uuid(),
            transaction_type,
            event_type: EventType::PointsUpdateRequested,
            points_change: input.points.get(),
            reason: Some(input.reason.into_string()),
            staff_id: Some(input.staff_id.uuid()),
            rating_slip_id: input.rating_slip_id.map(SlipId::uuid),
            idempotency_key: Some(input.key),
            escrow_id: None,
            escrow_change: 0,
            approved_by,
        },
    )?;
    ctx.emit(
        tx,
        Event::PointsUpdateRequested(ev::PointsUpdateRequested {
            player_id: entry.player_id,
            staff_id: entry.staff_id,
            points: entry.points_change,
            reason: entry.reason.clone(),
            ledger_entry_id: entry.id,
            rating_slip_id: entry.rating_slip_id,
            approved_by: entry.approved_by,
        }),
    )?;
    Ok((entry, false))
}
