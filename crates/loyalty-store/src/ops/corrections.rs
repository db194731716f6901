//! Voids and corrections of closed rating slips (DESIGN §3.2).

use super::*;

/// What a void or correction asks for (DESIGN §3.2), validated at the edge:
/// a reason of 10–500 characters; for a correction, at least one of the
/// new values.
#[derive(Debug, Clone, PartialEq)]
pub struct SlipChange {
    /// Why.
    pub reason: Reason,
    /// New average bet (corrections).
    pub average_bet: Option<AverageBet>,
    /// New start (corrections).
    pub started_at: Option<Timestamp>,
    /// New end (corrections).
    pub ended_at: Option<Timestamp>,
}

/// The result of [`void_slip`] or [`correct_slip`].
#[derive(Debug, Clone)]
pub struct SlipCorrected {
    /// The slip after the change.
    pub slip: RatingSlip,
    /// The slip's current GAMEPLAY entry (None once voided).
    pub accrual: Option<LedgerEntry>,
    /// The reversal entry written (or, on a replay, the one written then).
    pub reversal: Option<LedgerEntry>,
    /// Whether this repeats the slip's last change, which stands.
    pub replay: bool,
}

/// Key of the `n`th (1-based) correction's GAMEPLAY entry of a slip.
fn correction_key(slip_id: Uuid, n: usize) -> String {
    format!("gameplay:{slip_id}:correction:{n}")
}

/// Key of the `n`th (1-based) reversal of a slip's accrual.
fn reversal_key(slip_id: Uuid, n: usize) -> String {
    format!("reversal:{slip_id}:{n}")
}

/// A closed slip, locked, ready for a void or correction; `SlipNotClosed`
/// otherwise (a voided slip is answered by the caller first).
fn closed_slip(tx: &mut dyn Tx, id: Uuid) -> Result<RatingSlip, OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    match slip.status {
        SlipStatus::Closed | SlipStatus::Voided => Ok(slip),
        SlipStatus::Open | SlipStatus::Paused => Err(OpError::SlipNotClosed),
    }
}

/// Takes back what the slip's current GAMEPLAY entry earned, as entry `n`
/// of the slip's reversals. `INSUFFICIENT_BALANCE` if those points are no
/// longer available (spent or held).
fn reverse_accrual(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    slip: &RatingSlip,
    current: &LedgerEntry,
    reason: &str,
    event_type: EventType,
) -> Result<LedgerEntry, OpError> {
    apply_entry(
        tx,
        ctx,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::GameplayReversal,
            event_type,
            points_change: -current.points_change,
            reason: Some(reason.to_string()),
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(reversal_key(slip.id, slip.corrections.len() + 1)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )
}

fn current_accrual(tx: &mut dyn Tx, slip: &RatingSlip) -> Result<Option<LedgerEntry>, OpError> {
    if slip.loyalty_status != LoyaltyStatus::Accrued {
        return Ok(None);
    }
    let id = slip
        .ledger_entry_id
        .ok_or_else(|| StoreError::Internal("accrued slip has no ledger entry id".into()))?;
    Ok(Some(tx.entry(id)?.ok_or_else(|| {
        StoreError::Internal("accrued slip's ledger entry is missing".into())
    })?))
}

fn last_reversal(tx: &mut dyn Tx, slip: &RatingSlip) -> Result<Option<LedgerEntry>, OpError> {
    match slip.corrections.last().and_then(|c| c.reversal_entry_id) {
        Some(id) => Ok(tx.entry(id)?),
        None => Ok(None),
    }
}

fn record(
    ctx: &OpCtx,
    kind: &str,
    reason: &str,
    before: &RatingSlip,
    after: &RatingSlip,
    reversal: Option<&LedgerEntry>,
    accrual: Option<&LedgerEntry>,
) -> SlipCorrection {
    SlipCorrection {
        kind: kind.to_string(),
        reason: reason.to_string(),
        staff_id: ctx.staff_id,
        at: ctx.now,
        correlation_id: ctx.correlation_id.clone(),
        average_bet_before: before.average_bet,
        started_at_before: before.started_at,
        ended_at_before: before.ended_at,
        average_bet_after: after.average_bet,
        started_at_after: after.started_at,
        ended_at_after: after.ended_at,
        points_reversed: reversal.map(|e| -e.points_change).unwrap_or(0),
        points_accrued: accrual.map(|e| e.points_change),
        reversal_entry_id: reversal.map(|e| e.id),
        accrual_entry_id: accrual.map(|e| e.id),
    }
}

/// Voids a closed slip (DESIGN §3.2): a GAMEPLAY_REVERSAL entry takes back
/// exactly what it earned (lifetime points and tier go down with it) and
/// the slip becomes VOIDED, keeping its history. A pending accrual is
/// cancelled instead. Voiding a voided slip replays.
pub fn void_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: SlipId,
    change: &SlipChange,
) -> Result<SlipCorrected, OpError> {
    let id = id.uuid();
    let mut slip = closed_slip(tx, id)?;
    if slip.status == SlipStatus::Voided {
        let reversal = last_reversal(tx, &slip)?;
        return Ok(SlipCorrected {
            slip,
            accrual: None,
            reversal,
            replay: true,
        });
    }
    let before = slip.clone();
    let reversal = match current_accrual(tx, &slip)? {
        Some(current) => Some(reverse_accrual(
            tx,
            ctx,
            &slip,
            &current,
            change.reason.as_str(),
            EventType::RatingSlipVoided,
        )?),
        None => None,
    };
    slip.status = SlipStatus::Voided;
    slip.loyalty_status = LoyaltyStatus::None;
    slip.next_retry_at = None;
    slip.updated_at = ctx.now;
    let entry = record(
        ctx,
        "VOID",
        change.reason.as_str(),
        &before,
        &slip,
        reversal.as_ref(),
        None,
    );
    slip.corrections.push(entry);
    tx.update_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipVoided(ev::RatingSlipVoided {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            reason: change.reason.to_string(),
            points_reversed: reversal.as_ref().map(|e| -e.points_change).unwrap_or(0),
            reversal_entry_id: reversal.as_ref().map(|e| e.id),
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(SlipCorrected {
        slip,
        accrual: None,
        reversal,
        replay: false,
    })
}

/// Corrects a closed, accrued slip (DESIGN §3.2): new average bet and/or
/// times; a GAMEPLAY_REVERSAL of the current accrual and a new GAMEPLAY
/// entry computed with the slip's snapshotted settings, the tier multiplier
/// of its original accrual and its recorded pauses, in this transaction.
/// Repeating the last correction exactly replays it.
pub fn correct_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: SlipId,
    change: &SlipChange,
) -> Result<SlipCorrected, OpError> {
    let id = id.uuid();
    let mut slip = closed_slip(tx, id)?;
    if slip.status == SlipStatus::Voided {
        return Err(OpError::Conflict("rating slip is voided".into()));
    }
    if let Some(last) = slip.corrections.last()
        && last.kind == "CORRECT"
        && last.reason == change.reason.as_str()
        && change
            .average_bet
            .is_none_or(|b| b.get() == last.average_bet_after)
        && change.started_at.is_none_or(|t| t == last.started_at_after)
        && change
            .ended_at
            .is_none_or(|t| Some(t) == last.ended_at_after)
    {
        let reversal = last_reversal(tx, &slip)?;
        let accrual = current_accrual(tx, &slip)?;
        return Ok(SlipCorrected {
            slip,
            accrual,
            reversal,
            replay: true,
        });
    }
    let Some(current) = current_accrual(tx, &slip)? else {
        return Err(OpError::Conflict(
            "the slip's points are not accrued yet: recover it before correcting".into(),
        ));
    };
    let before = slip.clone();
    let ended_before = slip
        .ended_at
        .ok_or_else(|| StoreError::Internal("closed slip has no end".into()))?;
    let started = change.started_at.unwrap_or(slip.started_at);
    let ended = change.ended_at.unwrap_or(ended_before);
    if ended > ctx.now {
        return Err(validation("ended_at", "must not be in the future"));
    }
    if started > ended {
        return Err(validation("ended_at", "must not be before started_at"));
    }
    if ended.duration_since(started) > session_max() {
        return Err(validation("ended_at", "a session lasts at most 24 hours"));
    }
    // Keep the recorded pauses: the time not played stays not played.
    let paused_us = (ended_before.as_microsecond()
        - before.started_at.as_microsecond()
        - before.accumulated_us)
        .max(0);
    let span_us = ended.as_microsecond() - started.as_microsecond();
    let played_us = span_us - paused_us;
    if played_us < 0 {
        return Err(validation(
            "started_at",
            "the new times are shorter than the slip's recorded pauses",
        ));
    }
    let average_bet = change.average_bet.map_or(slip.average_bet, AverageBet::get);
    // The original accrual's tier sets the multiplier.
    let original = tx
        .entry_by_key(&gameplay_key(slip.id))?
        .ok_or_else(|| StoreError::Internal("accrued slip has no first accrual".into()))?;
    let points = compute_points(
        &AccrualInput {
            average_bet,
            seconds_played: u64::try_from(played_us / 1_000_000).unwrap_or(0),
            settings: &slip.game_settings,
            tier: original.tier_before,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;

    let reversal = reverse_accrual(
        tx,
        ctx,
        &slip,
        &current,
        change.reason.as_str(),
        EventType::RatingSlipCorrected,
    )?;
    let accrual = apply_entry(
        tx,
        ctx,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::Gameplay,
            event_type: EventType::RatingSlipCorrected,
            points_change: points,
            reason: Some(change.reason.to_string()),
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(correction_key(slip.id, slip.corrections.len() + 1)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )?;
    slip.average_bet = average_bet;
    slip.started_at = started;
    slip.ended_at = Some(ended);
    slip.accumulated_us = played_us;
    slip.ledger_entry_id = Some(accrual.id);
    slip.updated_at = ctx.now;
    let entry = record(
        ctx,
        "CORRECT",
        change.reason.as_str(),
        &before,
        &slip,
        Some(&reversal),
        Some(&accrual),
    );
    slip.corrections.push(entry);
    tx.update_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipCorrected(ev::RatingSlipCorrected {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            reason: change.reason.to_string(),
            average_bet: slip.average_bet,
            started_at: slip.started_at,
            ended_at: slip.ended_at,
            points_reversed: -reversal.points_change,
            points_accrued: accrual.points_change,
            reversal_entry_id: reversal.id,
            ledger_entry_id: accrual.id,
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(SlipCorrected {
        slip,
        accrual: Some(accrual),
        reversal: Some(reversal),
        replay: false,
    })
}
