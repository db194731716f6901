//! Rating slips: open, change the bet, pause, resume, complete (with the
//! gameplay accrual), preview and recover.

use super::*;

/// Input of [`open_slip`].
#[derive(Debug, Clone)]
pub struct OpenSlip {
    /// Player rated.
    pub player_id: PlayerId,
    /// Table.
    pub table_id: TableId,
    /// Average bet (validated range).
    pub average_bet: AverageBet,
    /// Seat, if recorded.
    pub seat_number: Option<u32>,
    /// Start of play for slips entered after the fact.
    pub started_at: Option<Timestamp>,
}

pub(super) fn session_max() -> SignedDuration {
    SignedDuration::from_secs(loyalty_core::limits::SESSION_SECONDS_MAX)
}

/// Opens a slip, snapshotting the table's game settings.
pub fn open_slip(tx: &mut dyn Tx, ctx: &OpCtx, input: OpenSlip) -> Result<RatingSlip, OpError> {
    let started = input.started_at.unwrap_or(ctx.now);
    if started > ctx.now {
        return Err(validation("started_at", "must not be in the future"));
    }
    if ctx.now.duration_since(started) > session_max() {
        return Err(validation("started_at", "must be at most 24 hours ago"));
    }
    let (player, table) = tx.slip_subjects(input.player_id.uuid(), input.table_id.uuid())?;
    if !player {
        return Err(OpError::NotFound("player"));
    }
    let table = table.ok_or(OpError::NotFound("table"))?;
    let slip = RatingSlip {
        id: ctx.new_id(),
        player_id: input.player_id.uuid(),
        table_id: input.table_id.uuid(),
        seat_number: input.seat_number,
        status: SlipStatus::Open,
        average_bet: input.average_bet.get(),
        started_at: started,
        ended_at: None,
        accumulated_us: 0,
        segment_started_at: Some(started),
        game_settings: table.settings,
        loyalty_status: LoyaltyStatus::None,
        ledger_entry_id: None,
        accrual_attempts: 0,
        next_retry_at: None,
        opened_by: ctx.staff_id,
        closed_correlation_id: None,
        corrections: Vec::new(),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.insert_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipOpened(ev::RatingSlipOpened {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            table_id: slip.table_id,
            average_bet: slip.average_bet,
            started_at: slip.started_at,
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(slip)
}

fn open_or_paused(tx: &mut dyn Tx, id: Uuid) -> Result<RatingSlip, OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if !matches!(slip.status, SlipStatus::Open | SlipStatus::Paused) {
        return Err(OpError::SlipNotOpen);
    }
    Ok(slip)
}

/// The payload of a slip's UPDATED, PAUSED or RESUMED event.
fn slip_changed(ctx: &OpCtx, slip: &RatingSlip) -> ev::RatingSlipChanged {
    ev::RatingSlipChanged {
        rating_slip_id: slip.id,
        player_id: slip.player_id,
        status: slip.status,
        average_bet: slip.average_bet,
        accumulated_seconds: slip.played_us_at(ctx.now) / 1_000_000,
        staff_id: ctx.staff_id,
    }
}

/// Changes the average bet of a slip that is not closed.
pub fn set_average_bet(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: SlipId,
    average_bet: AverageBet,
) -> Result<RatingSlip, OpError> {
    let id = id.uuid();
    let mut slip = open_or_paused(tx, id)?;
    slip.average_bet = average_bet.get();
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipUpdated(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// Pauses an open slip: the running segment's time is banked.
pub fn pause_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: SlipId) -> Result<RatingSlip, OpError> {
    let id = id.uuid();
    let mut slip = open_or_paused(tx, id)?;
    if slip.status != SlipStatus::Open {
        return Err(OpError::Conflict("rating slip is already paused".into()));
    }
    if slip.played_us_at(ctx.now) > loyalty_core::limits::SESSION_SECONDS_MAX * 1_000_000 {
        return Err(validation("rating_slip", "session would exceed 24 hours"));
    }
    slip.accumulated_us = slip.played_us_at(ctx.now);
    slip.segment_started_at = None;
    slip.status = SlipStatus::Paused;
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipPaused(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// Resumes a paused slip.
pub fn resume_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: SlipId) -> Result<RatingSlip, OpError> {
    let id = id.uuid();
    let mut slip = open_or_paused(tx, id)?;
    if slip.status != SlipStatus::Paused {
        return Err(OpError::Conflict("rating slip is not paused".into()));
    }
    slip.segment_started_at = Some(ctx.now);
    slip.status = SlipStatus::Open;
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipResumed(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// The `loyalty` object of completion and recovery responses: the numbers of
/// the GAMEPLAY ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoyaltyResult {
    /// The entry.
    pub ledger_entry_id: Uuid,
    /// Its `points_change`.
    pub points_earned: i64,
    /// Balance before.
    pub balance_before: i64,
    /// Balance after.
    pub balance_after: i64,
    /// Tier before.
    pub tier_before: Tier,
    /// Tier after.
    pub tier_after: Tier,
    /// Progress towards the next tier after the entry.
    pub tier_progress: u8,
    /// Lifetime points after the entry.
    pub lifetime_points: i64,
    /// Whether this is a repeat of an earlier result.
    pub idempotent_replay: bool,
}

impl LoyaltyResult {
    /// The result that `entry` represents.
    pub fn from_entry(entry: &LedgerEntry, tiers: &TierTable, replay: bool) -> Self {
        LoyaltyResult {
            ledger_entry_id: entry.id,
            points_earned: entry.points_change,
            balance_before: entry.balance_before,
            balance_after: entry.balance_after,
            tier_before: entry.tier_before,
            tier_after: entry.tier_after,
            tier_progress: tiers.progress(entry.lifetime_after),
            lifetime_points: entry.lifetime_after,
            idempotent_replay: replay,
        }
    }
}

/// How a completion or recovery ended.
// Short-lived and returned once per request; boxing buys nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Completion {
    /// Points are in the ledger (now or earlier, see `idempotent_replay`).
    Accrued {
        /// The closed slip.
        slip: RatingSlip,
        /// The GAMEPLAY entry's numbers.
        loyalty: LoyaltyResult,
        /// The entry itself.
        entry: LedgerEntry,
    },
    /// The slip is closed but its points are pending recovery.
    Pending {
        /// The closed slip.
        slip: RatingSlip,
        /// Why accrual failed.
        error: String,
    },
}

/// Idempotency key of a slip's GAMEPLAY entry.
pub fn gameplay_key(slip_id: Uuid) -> String {
    format!("gameplay:{slip_id}")
}

/// Completes a slip: closes it and accrues its points in one transaction. If
/// accrual fails for a reason other than bad input, the slip still closes
/// with its loyalty PENDING. Completing a closed slip replays (or, if pending,
/// retries) its accrual.
pub fn complete_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: SlipId,
    ended_at: Option<Timestamp>,
) -> Result<Completion, OpError> {
    let id = id.uuid();
    let mut slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    match slip.status {
        SlipStatus::Closed => return settle_closed(tx, ctx, slip),
        SlipStatus::Voided => return Err(OpError::SlipNotOpen),
        SlipStatus::Open | SlipStatus::Paused => {}
    }
    let ended = ended_at.unwrap_or(ctx.now);
    if ended > ctx.now {
        return Err(validation("ended_at", "must not be in the future"));
    }
    if ended < slip.started_at {
        return Err(validation("ended_at", "must not be before started_at"));
    }
    if let (SlipStatus::Open, Some(seg)) = (slip.status, slip.segment_started_at)
        && ended < seg
    {
        return Err(validation(
            "ended_at",
            "must not be before the slip was last resumed",
        ));
    }
    // A paused slip has banked its time up to the pause, which is at or
    // before its last change: ending it earlier would credit time played
    // after the end.
    if slip.status == SlipStatus::Paused && ended < slip.updated_at {
        return Err(validation(
            "ended_at",
            "must not be before the slip was paused",
        ));
    }
    if ended.duration_since(slip.started_at) > session_max() {
        return Err(validation("ended_at", "a session lasts at most 24 hours"));
    }
    slip.accumulated_us = slip.played_us_at(ended);
    slip.segment_started_at = None;
    slip.status = SlipStatus::Closed;
    slip.ended_at = Some(ended);
    slip.closed_correlation_id = Some(ctx.correlation_id.clone());
    slip.updated_at = ctx.now;
    // The closed slip is stored once, by `accrue_guarded`, with its loyalty
    // outcome (accrued or pending).
    ctx.emit(
        tx,
        Event::RatingSlipCompleted(ev::RatingSlipCompleted {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            table_id: slip.table_id,
            average_bet: slip.average_bet,
            seconds_played: slip.accumulated_us / 1_000_000,
            ended_at: ended,
            staff_id: ctx.staff_id,
        }),
    )?;
    accrue_guarded(tx, ctx, slip)
}

/// What completing an open or paused slip at `ctx.now` would accrue,
/// computed by the very code completion runs ([`loyalty_core::accrual`]);
/// writes nothing.
pub fn preview_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: SlipId,
) -> Result<(RatingSlip, loyalty_core::Accrual, Tier), OpError> {
    let id = id.uuid();
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if !matches!(slip.status, SlipStatus::Open | SlipStatus::Paused) {
        return Err(OpError::SlipNotOpen);
    }
    let account = tx
        .account(slip.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    let seconds = u64::try_from(slip.played_us_at(ctx.now) / 1_000_000).unwrap_or(0);
    let accrual = loyalty_core::accrual(
        &AccrualInput {
            average_bet: slip.average_bet,
            seconds_played: seconds,
            settings: &slip.game_settings,
            tier: account.tier,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;
    Ok((slip, accrual, account.tier))
}

/// Recovers a closed slip's pending accrual; a replay if already accrued.
pub fn recover_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: SlipId) -> Result<Completion, OpError> {
    let id = id.uuid();
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if slip.status != SlipStatus::Closed {
        return Err(OpError::SlipNotClosed);
    }
    settle_closed(tx, ctx, slip)
}

fn settle_closed(tx: &mut dyn Tx, ctx: &OpCtx, slip: RatingSlip) -> Result<Completion, OpError> {
    match slip.loyalty_status {
        LoyaltyStatus::Accrued => {
            // The slip's current GAMEPLAY entry: its first accrual, or the
            // latest correction's.
            let entry = match slip.ledger_entry_id {
                Some(id) => tx.entry(id)?,
                None => tx.entry_by_key(&gameplay_key(slip.id))?,
            }
            .ok_or_else(|| StoreError::Internal("accrued slip has no ledger entry".into()))?;
            Ok(Completion::Accrued {
                loyalty: LoyaltyResult::from_entry(&entry, &ctx.tiers, true),
                slip,
                entry,
            })
        }
        LoyaltyStatus::Pending | LoyaltyStatus::None => accrue_guarded(tx, ctx, slip),
    }
}

/// Runs the accrual in a savepoint; on a failure that is not bad input the
/// savepoint is rolled back and the slip is marked PENDING instead.
fn accrue_guarded(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    mut slip: RatingSlip,
) -> Result<Completion, OpError> {
    tx.savepoint()?;
    match accrue(tx, ctx, &mut slip) {
        Ok(entry) => {
            tx.release_savepoint()?;
            Ok(Completion::Accrued {
                loyalty: LoyaltyResult::from_entry(&entry, &ctx.tiers, false),
                slip,
                entry,
            })
        }
        Err(
            e @ (OpError::Validation { .. }
            | OpError::NotFound(_)
            | OpError::PointsOutOfRange { .. }),
        ) => {
            tx.rollback_savepoint()?;
            Err(e)
        }
        Err(e) => {
            tx.rollback_savepoint()?;
            let error = e.to_string();
            slip.loyalty_status = LoyaltyStatus::Pending;
            slip.accrual_attempts += 1;
            let retry = loyalty_core::Backoff::new(
                ACCRUAL_RETRY_BASE_MS.unsigned_abs(),
                ACCRUAL_RETRY_MAX_MS.unsigned_abs(),
            );
            let attempt = u32::try_from(slip.accrual_attempts.clamp(1, 20)).unwrap_or(1);
            let delay_ms = i64::try_from(retry.delay_ms(attempt)).unwrap_or(ACCRUAL_RETRY_MAX_MS);
            slip.next_retry_at = Some(ctx.now + SignedDuration::from_millis(delay_ms));
            slip.updated_at = ctx.now;
            tx.update_slip(&slip)?;
            ctx.emit(
                tx,
                Event::LoyaltyAccrualFailed(ev::LoyaltyAccrualFailed {
                    rating_slip_id: slip.id,
                    player_id: slip.player_id,
                    error: error.clone(),
                    attempts: slip.accrual_attempts,
                    recovery_needed: true,
                    next_retry_at: slip.next_retry_at,
                }),
            )?;
            Ok(Completion::Pending { slip, error })
        }
    }
}

fn accrue(tx: &mut dyn Tx, ctx: &OpCtx, slip: &mut RatingSlip) -> Result<LedgerEntry, OpError> {
    if ctx.fail_accrual {
        return Err(OpError::AccrualFailed(
            "accrual fault injected (test mode)".into(),
        ));
    }
    let account = tx
        .account(slip.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    let seconds = u64::try_from(slip.accumulated_us / 1_000_000).unwrap_or(0);
    let points = compute_points(
        &AccrualInput {
            average_bet: slip.average_bet,
            seconds_played: seconds,
            settings: &slip.game_settings,
            tier: account.tier,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;
    let entry = apply_entry_to(
        tx,
        ctx,
        account,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::Gameplay,
            event_type: EventType::RatingSlipCompleted,
            points_change: points,
            reason: None,
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(gameplay_key(slip.id)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )?;
    // `slip` changes only once the row is stored: on a failure the caller
    // stores it as PENDING, without this entry's id.
    let mut accrued = slip.clone();
    accrued.loyalty_status = LoyaltyStatus::Accrued;
    accrued.ledger_entry_id = Some(entry.id);
    accrued.next_retry_at = None;
    accrued.updated_at = ctx.now;
    tx.update_slip(&accrued)?;
    *slip = accrued;
    Ok(entry)
}
