//! The wallet (DESIGN §3.5): points held for a merchant (an escrow), then
//! captured to the merchant's earnings or returned to the player.
//!
//! Every change is one transaction that moves the player's account through
//! [`apply_entry_to`](super::apply_entry_to) — a hold is a negative entry on
//! the available balance and a positive change of the escrow balance, a
//! refund the reverse, a capture a zero entry that moves escrow to the
//! merchant — so at every commit, per player and in total,
//!
//! * `current_balance` = Σ of the player's entries,
//! * `escrow_balance` = Σ still held on the player's HELD escrows,
//! * a merchant's `earnings` = Σ captured to it,
//! * Σ earned − Σ adjusted = Σ available + Σ escrow + Σ merchant earnings.
//!
//! [`verify`] proves each of these from the stored rows.
//!
//! Locks are taken in one order — escrow, then account, then merchant — so
//! writers to one escrow and one player serialise without deadlocking.
//! Every ledger entry of an escrow carries a key unique to its step
//! (`escrow:{id}:hold`, `escrow:{id}:capture:{version}`, `escrow:{id}:refund`),
//! so no step can be written twice, whatever a client retries.

use jiff::{SignedDuration, Timestamp};
use loyalty_core::EscrowId;
use loyalty_core::events::{self as ev, Event, EventType};
use loyalty_core::limits::{ESCROW_AMOUNT_MAX, ESCROW_EXPIRY_DAYS_MAX};
use loyalty_core::{EscrowStatus, MerchantId, Name, PlayerId, Reason, TransactionType};
use uuid::Uuid;

use super::{EntrySpec, OpCtx, OpError, apply_entry_to, points_in_range, validation};
use crate::records::*;
use crate::{Cell, StoreError, Tx};

/// Input of [`hold`], its text already checked at the edge.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Whose points.
    pub player_id: PlayerId,
    /// For which merchant.
    pub merchant_id: MerchantId,
    /// Points to hold, 1–1,000,000.
    pub amount: i64,
    /// Why, 1–500 characters.
    pub reason: Reason,
    /// The outlet's reference, at most 200 characters.
    pub reference: Option<String>,
    /// When the hold is refunded if still held: in the future, at most 90
    /// days ahead.
    pub expires_at: Option<Timestamp>,
}

/// Input of [`settle`].
#[derive(Debug, Clone)]
pub struct Capture {
    /// The escrow.
    pub escrow_id: EscrowId,
    /// Points to capture (default: everything still held).
    pub amount: Option<i64>,
    /// Whether the capture closes the escrow, refunding the rest.
    pub final_capture: bool,
    /// The version the caller last saw, if it wants the write to fail when
    /// someone else changed the escrow since.
    pub expected_version: Option<i64>,
}

/// Creates a merchant with no earnings.
pub fn create_merchant(tx: &mut dyn Tx, ctx: &OpCtx, name: Name) -> Result<Merchant, OpError> {
    let mut merchant = Merchant {
        seq: 0,
        id: ctx.new_id(),
        name: name.into_string(),
        earnings: 0,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.insert_merchant(&merchant)?;
    merchant.seq = tx
        .merchant(merchant.id)?
        .map(|m| m.seq)
        .ok_or_else(|| StoreError::Internal("merchant vanished after insert".into()))?;
    ctx.emit(
        tx,
        Event::MerchantCreated(ev::MerchantCreated {
            merchant_id: merchant.id,
            name: merchant.name.clone(),
            created_by: ctx.staff_id,
        }),
    )?;
    Ok(merchant)
}

/// Holds points of a player for a merchant: available → escrow, in one
/// transaction with its ESCROW_HOLD entry and ESCROW_HELD event.
pub fn hold(tx: &mut dyn Tx, ctx: &OpCtx, input: Hold) -> Result<Escrow, OpError> {
    if !(1..=ESCROW_AMOUNT_MAX).contains(&input.amount) {
        return Err(validation(
            "amount",
            format!("must be an integer from 1 to {ESCROW_AMOUNT_MAX}"),
        ));
    }
    if let Some(at) = input.expires_at {
        if at <= ctx.now {
            return Err(validation("expires_at", "must be in the future"));
        }
        if at.duration_since(ctx.now) > SignedDuration::from_hours(24 * ESCROW_EXPIRY_DAYS_MAX) {
            return Err(validation(
                "expires_at",
                format!("must be at most {ESCROW_EXPIRY_DAYS_MAX} days ahead"),
            ));
        }
    }
    let account = tx
        .account(input.player_id.uuid())?
        .ok_or(OpError::NotFound("player"))?;
    tx.merchant(input.merchant_id.uuid())?
        .ok_or(OpError::NotFound("merchant"))?;
    if account.current_balance < input.amount {
        return Err(OpError::InsufficientBalance {
            available: account.current_balance,
            requested: input.amount,
        });
    }
    let mut escrow = Escrow {
        seq: 0,
        id: ctx.new_id(),
        player_id: input.player_id.uuid(),
        merchant_id: input.merchant_id.uuid(),
        amount: input.amount,
        settled_amount: 0,
        refunded_amount: 0,
        status: EscrowStatus::Held,
        reason: input.reason.into_string(),
        reference: input.reference,
        expires_at: input.expires_at,
        created_by: ctx.staff_id,
        created_at: ctx.now,
        updated_at: ctx.now,
        version: 1,
    };
    escrow.seq = tx.insert_escrow(&escrow)?;
    let entry = apply_entry_to(
        tx,
        ctx,
        account,
        step(
            &escrow,
            TransactionType::EscrowHold,
            EventType::EscrowHeld,
            -escrow.amount,
            escrow.amount,
            format!("escrow:{}:hold", escrow.id),
            escrow.reason.clone(),
            ctx,
        ),
    )?;
    let escrow_state = state(tx, ctx, &escrow, &entry)?;
    ctx.emit(
        tx,
        Event::EscrowHeld(ev::EscrowHeld {
            escrow: escrow_state,
        }),
    )?;
    Ok(escrow)
}

/// Captures points of a HELD escrow to its merchant; with `final_capture`
/// the rest is refunded in the same transaction (DESIGN §3.5).
pub fn settle(tx: &mut dyn Tx, ctx: &OpCtx, input: Capture) -> Result<Escrow, OpError> {
    let mut escrow = held_escrow(tx, ctx, input.escrow_id.uuid(), input.expected_version)?;
    let held = escrow.held_amount();
    let amount = input.amount.unwrap_or(held);
    if amount < 1 {
        return Err(validation("amount", "must be at least 1"));
    }
    if amount > held {
        return Err(OpError::EscrowAmountExceeded {
            held,
            requested: amount,
        });
    }
    let account = tx
        .account(escrow.player_id)?
        .ok_or_else(|| StoreError::Internal("escrow of a player without an account".into()))?;
    let capture = apply_entry_to(
        tx,
        ctx,
        account,
        step(
            &escrow,
            TransactionType::EscrowSettle,
            EventType::EscrowSettled,
            0,
            -amount,
            format!("escrow:{}:capture:{}", escrow.id, escrow.version),
            escrow.reason.clone(),
            ctx,
        ),
    )?;
    let mut merchant = tx
        .merchant(escrow.merchant_id)?
        .ok_or_else(|| StoreError::Internal("escrow of an unknown merchant".into()))?;
    merchant.earnings = points_in_range("earnings", merchant.earnings.saturating_add(amount))?;
    merchant.updated_at = ctx.now;
    tx.update_merchant(&merchant)?;
    escrow.settled_amount += amount;
    let rest = escrow.held_amount();
    let mut last = capture.clone();
    let partial = rest > 0 && input.final_capture;
    if rest == 0 {
        escrow.status = EscrowStatus::Settled;
    } else if partial {
        last = refund_rest(tx, ctx, &mut escrow, EventType::EscrowPartialSettled, None)?;
        escrow.status = EscrowStatus::PartiallySettled;
    }
    bump(tx, ctx, &mut escrow)?;
    let settled = ev::EscrowSettled {
        escrow: state(tx, ctx, &escrow, &last)?,
        captured: amount,
        capture_entry_id: capture.id,
        merchant_earnings: merchant.earnings,
    };
    ctx.emit(
        tx,
        if partial {
            Event::EscrowPartialSettled(settled)
        } else {
            Event::EscrowSettled(settled)
        },
    )?;
    Ok(escrow)
}

/// Refunds what a HELD escrow still holds to the player: REFUNDED.
pub fn refund(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    escrow_id: EscrowId,
    expected_version: Option<i64>,
) -> Result<Escrow, OpError> {
    let escrow_id = escrow_id.uuid();
    let mut escrow = held_escrow(tx, ctx, escrow_id, expected_version)?;
    let refunded = escrow.held_amount();
    let entry = refund_rest(tx, ctx, &mut escrow, EventType::EscrowRefunded, None)?;
    escrow.status = EscrowStatus::Refunded;
    bump(tx, ctx, &mut escrow)?;
    let escrow_state = state(tx, ctx, &escrow, &entry)?;
    ctx.emit(
        tx,
        Event::EscrowRefunded(ev::EscrowRefunded {
            escrow: escrow_state,
            refunded,
        }),
    )?;
    Ok(escrow)
}

/// Refunds a HELD escrow whose expiry has passed: EXPIRED. `None` when it
/// is not (or no longer) due — another sweeper or a capture got there first.
pub fn expire(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    escrow_id: EscrowId,
) -> Result<Option<Escrow>, OpError> {
    let escrow_id = escrow_id.uuid();
    let Some(mut escrow) = tx.escrow(escrow_id)? else {
        return Ok(None);
    };
    let due = escrow.expires_at.is_some_and(|at| at <= ctx.now);
    if escrow.status != EscrowStatus::Held || !due {
        return Ok(None);
    }
    let refunded = escrow.held_amount();
    let reason = format!(
        "expired at {}: {}",
        escrow.expires_at.map(|t| t.to_string()).unwrap_or_default(),
        escrow.reason
    );
    let entry = refund_rest(tx, ctx, &mut escrow, EventType::EscrowExpired, Some(reason))?;
    escrow.status = EscrowStatus::Expired;
    bump(tx, ctx, &mut escrow)?;
    let escrow_state = state(tx, ctx, &escrow, &entry)?;
    ctx.emit(
        tx,
        Event::EscrowExpired(ev::EscrowRefunded {
            escrow: escrow_state,
            refunded,
        }),
    )?;
    Ok(Some(escrow))
}

/// The escrow, locked, if the caller may change it: the version it expects
/// (409), HELD and not past its expiry (422 `ESCROW_NOT_HELD`).
fn held_escrow(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<Escrow, OpError> {
    let escrow = tx.escrow(id)?.ok_or(OpError::NotFound("escrow"))?;
    if let Some(v) = expected_version
        && v != escrow.version
    {
        return Err(OpError::VersionConflict {
            current: escrow.version,
        });
    }
    let expired = escrow.expires_at.is_some_and(|at| at <= ctx.now);
    if escrow.status != EscrowStatus::Held || expired {
        let status = if escrow.status == EscrowStatus::Held {
            EscrowStatus::Expired
        } else {
            escrow.status
        };
        return Err(OpError::EscrowNotHeld { status });
    }
    Ok(escrow)
}

/// Writes the ESCROW_REFUND entry returning everything still held.
fn refund_rest(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    escrow: &mut Escrow,
    event_type: EventType,
    reason: Option<String>,
) -> Result<LedgerEntry, OpError> {
    let rest = escrow.held_amount();
    let account = tx
        .account(escrow.player_id)?
        .ok_or_else(|| StoreError::Internal("escrow of a player without an account".into()))?;
    let entry = apply_entry_to(
        tx,
        ctx,
        account,
        step(
            escrow,
            TransactionType::EscrowRefund,
            event_type,
            rest,
            -rest,
            format!("escrow:{}:refund", escrow.id),
            reason.unwrap_or_else(|| escrow.reason.clone()),
            ctx,
        ),
    )?;
    escrow.refunded_amount += rest;
    Ok(entry)
}

/// The ledger entry of one step of an escrow.
#[allow(clippy::too_many_arguments)]
fn step(
    escrow: &Escrow,
    transaction_type: TransactionType,
    event_type: EventType,
    points_change: i64,
    escrow_change: i64,
    key: String,
    reason: String,
    ctx: &OpCtx,
) -> EntrySpec {
    EntrySpec {
        player_id: escrow.player_id,
        transaction_type,
        event_type,
        points_change,
        reason: Some(reason),
        staff_id: ctx.staff_id,
        rating_slip_id: None,
        idempotency_key: Some(key),
        escrow_id: Some(escrow.id),
        escrow_change,
        approved_by: None,
    }
}

fn bump(tx: &mut dyn Tx, ctx: &OpCtx, escrow: &mut Escrow) -> Result<(), OpError> {
    escrow.version += 1;
    escrow.updated_at = ctx.now;
    tx.update_escrow(escrow)?;
    Ok(())
}

/// The escrow fields of a step's wallet event: the escrow's ids and
/// amounts, and the player's balances after it.
fn state(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    escrow: &Escrow,
    entry: &LedgerEntry,
) -> Result<ev::EscrowState, OpError> {
    let account = tx
        .account(escrow.player_id)?
        .ok_or_else(|| StoreError::Internal("escrow of a player without an account".into()))?;
    Ok(ev::EscrowState {
        escrow_id: escrow.id,
        player_id: escrow.player_id,
        merchant_id: escrow.merchant_id,
        status: escrow.status,
        amount: escrow.amount,
        settled_amount: escrow.settled_amount,
        refunded_amount: escrow.refunded_amount,
        held_amount: escrow.held_amount(),
        current_balance: account.current_balance,
        escrow_balance: account.escrow_balance,
        ledger_entry_id: entry.id,
        reference: escrow.reference.clone(),
        expires_at: escrow.expires_at,
        staff_id: ctx.staff_id,
        version: escrow.version,
    })
}

// ---------------------------------------------------------------- verify

/// Accounts whose escrow balance is not Σ held on their HELD escrows.
const ESCROW_BALANCES: &str = "SELECT CAST(a.player_id AS TEXT), a.escrow_balance,
        CAST(COALESCE(h.held, 0) AS BIGINT)
    FROM loyalty_accounts a
    LEFT JOIN (SELECT player_id, SUM(amount - settled_amount - refunded_amount) AS held
               FROM escrows WHERE status = 'HELD' GROUP BY player_id) h
      ON h.player_id = a.player_id
    WHERE a.escrow_balance <> COALESCE(h.held, 0)
    ORDER BY 1";

/// Accounts whose escrow balance is not the sum of their entries' escrow
/// changes.
const ESCROW_ENTRY_SUMS: &str = "SELECT CAST(a.player_id AS TEXT), a.escrow_balance,
        CAST(COALESCE(l.moved, 0) AS BIGINT)
    FROM loyalty_accounts a
    LEFT JOIN (SELECT player_id, SUM(escrow_change) AS moved
               FROM ledger_entries GROUP BY player_id) l
      ON l.player_id = a.player_id
    WHERE a.escrow_balance <> COALESCE(l.moved, 0)
    ORDER BY 1";

/// Entries whose escrow change does not follow from their type: a hold or
/// refund moves escrow by minus its points, a non-wallet entry not at all.
const ESCROW_CHANGE_RULES: &str = "SELECT CAST(id AS TEXT), CAST(player_id AS TEXT),
        CAST(CASE WHEN transaction_type IN ('ESCROW_HOLD', 'ESCROW_REFUND') THEN -points_change
                  ELSE 0 END AS BIGINT), escrow_change
    FROM ledger_entries
    WHERE (transaction_type IN ('ESCROW_HOLD', 'ESCROW_REFUND') AND escrow_change <> -points_change)
       OR (transaction_type NOT IN ('ESCROW_HOLD', 'ESCROW_REFUND', 'ESCROW_SETTLE')
           AND escrow_change <> 0)
    ORDER BY seq";

/// Merchants whose earnings are not Σ captured to them.
const MERCHANT_EARNINGS: &str = "SELECT CAST(m.id AS TEXT), m.earnings,
        CAST(COALESCE(s.settled, 0) AS BIGINT)
    FROM merchants m
    LEFT JOIN (SELECT merchant_id, SUM(settled_amount) AS settled
               FROM escrows GROUP BY merchant_id) s
      ON s.merchant_id = m.id
    WHERE m.earnings <> COALESCE(s.settled, 0)
    ORDER BY 1";

/// Escrows that disagree with their own ledger entries or with their status.
const ESCROW_STEPS: &str = "SELECT CAST(e.id AS TEXT), CAST(e.player_id AS TEXT), e.status,
        e.amount, e.settled_amount, e.refunded_amount,
        CAST(COALESCE(l.held, 0) AS BIGINT), CAST(COALESCE(l.refunded, 0) AS BIGINT),
        CAST(COALESCE(l.captured, 0) AS BIGINT)
    FROM escrows e
    LEFT JOIN (SELECT escrow_id,
                      SUM(CASE WHEN transaction_type = 'ESCROW_HOLD' THEN -points_change ELSE 0 END) AS held,
                      SUM(CASE WHEN transaction_type = 'ESCROW_REFUND' THEN points_change ELSE 0 END) AS refunded,
                      SUM(CASE WHEN transaction_type = 'ESCROW_SETTLE' THEN -escrow_change ELSE 0 END) AS captured
               FROM ledger_entries WHERE escrow_id IS NOT NULL GROUP BY escrow_id) l
      ON l.escrow_id = e.id
    WHERE COALESCE(l.held, 0) <> e.amount
       OR COALESCE(l.refunded, 0) <> e.refunded_amount
       OR COALESCE(l.captured, 0) <> e.settled_amount
       OR (e.status = 'HELD' AND e.amount - e.settled_amount - e.refunded_amount <= 0)
       OR (e.status <> 'HELD' AND e.amount - e.settled_amount - e.refunded_amount <> 0)
    ORDER BY 1";

/// The totals of the conservation law.
const TOTALS: &str = "SELECT
        CAST(COALESCE((SELECT SUM(points_change) FROM ledger_entries
                       WHERE transaction_type IN ('GAMEPLAY', 'MANUAL_BONUS', 'ADJUSTMENT', 'GAMEPLAY_REVERSAL')), 0) AS BIGINT),
        CAST(COALESCE((SELECT SUM(current_balance) FROM loyalty_accounts), 0) AS BIGINT),
        CAST(COALESCE((SELECT SUM(escrow_balance) FROM loyalty_accounts), 0) AS BIGINT),
        CAST(COALESCE((SELECT SUM(earnings) FROM merchants), 0) AS BIGINT)";

fn drift(check: &str, expected: i64, actual: i64) -> Drift {
    Drift {
        player_id: Uuid::nil(),
        check: check.to_string(),
        expected,
        actual,
        entry_id: None,
        escrow_id: None,
        merchant_id: None,
    }
}

/// Proves the wallet's invariants from the stored rows; reports each
/// disagreement. (The SQL is the same on every backend.)
pub fn verify(tx: &mut dyn Tx, report: &mut dyn FnMut(Drift)) -> Result<(), OpError> {
    for row in tx.wallet_rows(ESCROW_BALANCES)? {
        report(Drift {
            player_id: row[0].id().unwrap_or_default(),
            ..drift("escrow_balance", row[1].int(), row[2].int())
        });
    }
    for row in tx.wallet_rows(ESCROW_ENTRY_SUMS)? {
        report(Drift {
            player_id: row[0].id().unwrap_or_default(),
            ..drift("escrow_entries", row[1].int(), row[2].int())
        });
    }
    for row in tx.wallet_rows(ESCROW_CHANGE_RULES)? {
        report(Drift {
            entry_id: row[0].id(),
            player_id: row[1].id().unwrap_or_default(),
            ..drift("escrow_change", row[2].int(), row[3].int())
        });
    }
    for row in tx.wallet_rows(MERCHANT_EARNINGS)? {
        report(Drift {
            merchant_id: row[0].id(),
            ..drift("merchant_earnings", row[1].int(), row[2].int())
        });
    }
    for row in tx.wallet_rows(ESCROW_STEPS)? {
        let (amount, settled, refunded) = (row[3].int(), row[4].int(), row[5].int());
        let (held_entries, refund_entries, captures) = (row[6].int(), row[7].int(), row[8].int());
        let named = |d: Drift| Drift {
            escrow_id: row[0].id(),
            player_id: row[1].id().unwrap_or_default(),
            ..d
        };
        if held_entries != amount {
            report(named(drift("escrow_hold_entries", amount, held_entries)));
        }
        if refund_entries != refunded {
            report(named(drift(
                "escrow_refund_entries",
                refunded,
                refund_entries,
            )));
        }
        if captures != settled {
            report(named(drift("escrow_capture_entries", settled, captures)));
        }
        let held = amount - settled - refunded;
        let is_held = row[2].text() == EscrowStatus::Held.as_str();
        if (is_held && held <= 0) || (!is_held && held != 0) {
            report(named(drift("escrow_status", amount, settled + refunded)));
        }
    }
    if let Some(row) = tx.wallet_rows(TOTALS)?.first() {
        let cells: Vec<i64> = row.iter().map(Cell::int).collect();
        let (earned, available, escrow, merchants) = (cells[0], cells[1], cells[2], cells[3]);
        let held_and_spent = available.saturating_add(escrow).saturating_add(merchants);
        if earned != held_and_spent {
            report(drift("conservation", held_and_spent, earned));
        }
    }
    Ok(())
}
