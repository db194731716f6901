//! The ledger: [`apply_entry`], the one function that changes a balance,
//! and the range every number of points stays in.

use super::*;

/// What to write to the ledger; [`apply_entry`] fills in the balances.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    /// Whose balance changes.
    pub player_id: Uuid,
    /// Kind.
    pub transaction_type: TransactionType,
    /// Business event, e.g. `RATING_SLIP_COMPLETED`; its source is the
    /// entry's subsystem.
    pub event_type: EventType,
    /// Signed change of the available balance.
    pub points_change: i64,
    /// Why.
    pub reason: Option<String>,
    /// Staff member responsible.
    pub staff_id: Option<Uuid>,
    /// Rating slip concerned.
    pub rating_slip_id: Option<Uuid>,
    /// Idempotency key (unique across the ledger).
    pub idempotency_key: Option<String>,
    /// Escrow concerned.
    pub escrow_id: Option<Uuid>,
    /// Signed change of the escrow balance that goes with the entry (a hold
    /// moves points from available to escrow; a settle or refund out of it).
    pub escrow_change: i64,
    /// The approver under dual control.
    pub approved_by: Option<Uuid>,
}

pub use loyalty_core::POINTS_ABS_MAX;

/// `value` if within ±[`POINTS_ABS_MAX`], else `PointsOutOfRange`.
pub fn points_in_range(field: &'static str, value: i64) -> Result<i64, OpError> {
    if value.unsigned_abs() > POINTS_ABS_MAX.unsigned_abs() {
        return Err(OpError::PointsOutOfRange { field, value });
    }
    Ok(value)
}

/// Appends one ledger entry and moves the account with it: balance, lifetime
/// points, tier and entry count, plus the LEDGER_ENTRY_CREATED,
/// BALANCE_UPDATED and (if the tier moved) TIER_CHANGED events.
pub fn apply_entry(tx: &mut dyn Tx, ctx: &OpCtx, spec: EntrySpec) -> Result<LedgerEntry, OpError> {
    let account = tx
        .account(spec.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    apply_entry_to(tx, ctx, account, spec)
}

/// [`apply_entry`] on an account the caller has just read in this
/// transaction.
pub(crate) fn apply_entry_to(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    mut account: Account,
    spec: EntrySpec,
) -> Result<LedgerEntry, OpError> {
    let before = account.clone();
    points_in_range("points_change", spec.points_change)?;
    let balance_after = points_in_range(
        "current_balance",
        account.current_balance.saturating_add(spec.points_change),
    )?;
    if balance_after < 0 {
        return Err(OpError::InsufficientBalance {
            available: account.current_balance,
            requested: -spec.points_change,
        });
    }
    let lifetime_change = spec.transaction_type.lifetime_change(spec.points_change);
    if lifetime_change != 0 {
        account.lifetime_points = points_in_range(
            "lifetime_points",
            account.lifetime_points.saturating_add(lifetime_change),
        )?;
    }
    account.current_balance = balance_after;
    if spec.escrow_change != 0 {
        let escrow_after = points_in_range(
            "escrow_balance",
            account.escrow_balance.saturating_add(spec.escrow_change),
        )?;
        if escrow_after < 0 {
            return Err(StoreError::Internal("escrow balance would go below zero".into()).into());
        }
        account.escrow_balance = escrow_after;
    }
    // Lifetime points only grow, except by a reversal, which may also take
    // the tier down with them.
    account.tier = if lifetime_change < 0 {
        ctx.tiers.tier_for(account.lifetime_points)
    } else {
        ctx.tiers.tier_for(account.lifetime_points).max(before.tier)
    };
    // A player's entries are in time order: an entry is never dated before
    // the previous one (once the account has entries, its `updated_at` is
    // the newest one's time), even when two requests read the clock in one
    // order and reach the account in the other. Balances as of an instant
    // (`as_of`) rely on it.
    let written_at = if before.entry_count > 0 {
        ctx.now.max(before.updated_at)
    } else {
        ctx.now
    };
    account.entry_count += 1;
    account.updated_at = written_at;
    // A broken invariant is a bug: refuse to write it.
    if (lifetime_change >= 0 && account.lifetime_points < before.lifetime_points)
        || account.lifetime_points < 0
        || account.escrow_balance < 0
    {
        return Err(StoreError::Internal("ledger invariant would break".into()).into());
    }

    let mut entry = LedgerEntry {
        seq: 0,
        id: ctx.new_id(),
        player_id: spec.player_id,
        transaction_type: spec.transaction_type,
        event_type: spec.event_type.as_str().to_string(),
        points_change: spec.points_change,
        reason: spec.reason,
        source: spec.event_type.source().to_string(),
        staff_id: spec.staff_id,
        rating_slip_id: spec.rating_slip_id,
        idempotency_key: spec.idempotency_key,
        balance_before: before.current_balance,
        balance_after,
        tier_before: before.tier,
        tier_after: account.tier,
        lifetime_after: account.lifetime_points,
        escrow_id: spec.escrow_id,
        correlation_id: ctx.correlation_id.clone(),
        created_at: written_at,
        // The player's chain: the account row is locked (or the writer is
        // the only one), so no other entry of this player comes between.
        // The account carries the head since schema 15; an account not
        // written since reads it from the ledger once.
        prev_hash: match account.chain_head.take() {
            Some(head) => head,
            None => tx.chain_head(spec.player_id)?,
        },
        hash: String::new(),
        escrow_change: spec.escrow_change,
        approved_by: spec.approved_by,
    };
    entry.hash = crate::chain::entry_hash(&entry);
    entry.seq = tx.insert_entry(&entry)?;
    account.chain_head = Some(entry.hash.clone());
    tx.update_account(&account)?;

    ctx.emit(
        tx,
        Event::LedgerEntryCreated(ev::LedgerEntryCreated {
            ledger_entry_id: entry.id,
            player_id: entry.player_id,
            transaction_type: entry.transaction_type,
            points_change: entry.points_change,
            balance_before: entry.balance_before,
            balance_after: entry.balance_after,
            staff_id: entry.staff_id,
            rating_slip_id: entry.rating_slip_id,
            escrow_id: entry.escrow_id,
        }),
    )?;
    ctx.emit(
        tx,
        Event::BalanceUpdated(ev::BalanceUpdated {
            player_id: account.player_id,
            ledger_entry_id: entry.id,
            current_balance: account.current_balance,
            escrow_balance: account.escrow_balance,
            lifetime_points: account.lifetime_points,
            balance_before: before.current_balance,
            tier: account.tier,
        }),
    )?;
    if account.tier != before.tier {
        ctx.emit(
            tx,
            Event::TierChanged(ev::TierChanged {
                player_id: account.player_id,
                ledger_entry_id: entry.id,
                tier_before: before.tier,
                tier_after: account.tier,
                lifetime_points: account.lifetime_points,
            }),
        )?;
    }
    Ok(entry)
}
