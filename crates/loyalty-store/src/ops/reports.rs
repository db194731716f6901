//! Auditors' reports (DESIGN §9), from the ledger alone, with one SQL text
//! for every backend ([`Tx::shared_rows`]).
//!
//! * **Comps** at or above a threshold, in the shape of 25 CFR 542.17's
//!   monthly comp report: a comp is a discretionary award (`MANUAL_BONUS`)
//!   or a settled redemption (`ESCROW_SETTLE`, whose points are the amount
//!   captured). Read in pages by ledger position.
//! * **Staff activity**: per staff member, what they wrote in the period.

use jiff::Timestamp;
use loyalty_core::TransactionType;
use serde::Serialize;
use uuid::Uuid;

use super::OpError;
use crate::{Cell, StoreError, Tx};

const COMPS: &str = "SELECT l.seq, CAST(l.id AS TEXT), l.created_at, CAST(l.player_id AS TEXT),
        p.display_name, p.card_number, CAST(l.staff_id AS TEXT), s.name, l.transaction_type,
        CASE WHEN l.transaction_type = 'ESCROW_SETTLE' THEN -l.escrow_change
             ELSE l.points_change END,
        l.reason
    FROM ledger_entries l
    JOIN players p ON p.id = l.player_id
    LEFT JOIN staff s ON s.id = l.staff_id
    WHERE l.seq > $1 AND l.created_at >= $2 AND l.created_at < $3
      AND ((l.transaction_type = 'MANUAL_BONUS' AND l.points_change >= $4)
        OR (l.transaction_type = 'ESCROW_SETTLE' AND -l.escrow_change >= $4))
    ORDER BY l.seq
    LIMIT $5";

/// One comp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comp {
    /// Ledger position (the page cursor).
    #[serde(skip)]
    pub seq: i64,
    /// The ledger entry.
    pub ledger_entry_id: Uuid,
    /// When it was written.
    pub created_at: Timestamp,
    /// Who received it.
    pub player_id: Uuid,
    /// Their name.
    pub player_name: String,
    /// Their card number, if any.
    pub card_number: Option<String>,
    /// Who issued it (granted the award, or settled the redemption).
    pub issuer_id: Option<Uuid>,
    /// The issuer's name.
    pub issuer_name: Option<String>,
    /// `MANUAL_BONUS` (discretionary award) or `ESCROW_SETTLE` (redemption).
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    /// Points awarded or redeemed.
    pub points: i64,
    /// The entry's reason.
    pub reason: Option<String>,
}

fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn ts(v: i64) -> Result<Timestamp, OpError> {
    Timestamp::from_microsecond(v).map_err(|e| StoreError::Internal(e.to_string()).into())
}

fn id(c: &Cell) -> Result<Uuid, OpError> {
    c.id()
        .ok_or_else(|| StoreError::Internal("report row without an id".into()).into())
}

/// Comps of at least `threshold` points written in `[from, to)`, after
/// ledger position `after_seq`, oldest first, at most `limit`.
pub fn comps(
    tx: &mut dyn Tx,
    from: Timestamp,
    to: Timestamp,
    threshold: i64,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<Comp>, OpError> {
    let rows = tx.shared_rows(
        COMPS,
        &[
            after_seq,
            from.as_microsecond(),
            to.as_microsecond(),
            threshold,
            i64::from(limit),
        ],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Comp {
                seq: r[0].int(),
                ledger_entry_id: id(&r[1])?,
                created_at: ts(r[2].int())?,
                player_id: id(&r[3])?,
                player_name: r[4].text().to_string(),
                card_number: text(&r[5]),
                issuer_id: r[6].id(),
                issuer_name: text(&r[7]),
                transaction_type: TransactionType::parse(r[8].text())
                    .ok_or_else(|| StoreError::Internal(format!("unknown type {}", r[8].text())))?,
                points: r[9].int(),
                reason: text(&r[10]),
            })
        })
        .collect()
}

const STAFF_ACTIVITY: &str = "SELECT CAST(l.staff_id AS TEXT), s.name, s.role,
        CAST(SUM(CASE WHEN l.transaction_type = 'MANUAL_BONUS' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'MANUAL_BONUS' THEN l.points_change ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ADJUSTMENT' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ADJUSTMENT' THEN l.points_change ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'GAMEPLAY_REVERSAL'
                       AND l.event_type = 'RATING_SLIP_VOIDED' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'GAMEPLAY_REVERSAL'
                       AND l.event_type = 'RATING_SLIP_CORRECTED' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ESCROW_HOLD' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ESCROW_HOLD' THEN l.escrow_change ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ESCROW_SETTLE' THEN 1 ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ESCROW_SETTLE' THEN -l.escrow_change ELSE 0 END) AS BIGINT),
        CAST(SUM(CASE WHEN l.transaction_type = 'ESCROW_REFUND' THEN 1 ELSE 0 END) AS BIGINT),
        CAST((SELECT COUNT(*) FROM alerts a WHERE a.staff_id = l.staff_id
              AND a.created_at >= $1 AND a.created_at < $2) AS BIGINT)
    FROM ledger_entries l
    LEFT JOIN staff s ON s.id = l.staff_id
    WHERE l.created_at >= $1 AND l.created_at < $2 AND l.staff_id IS NOT NULL
    GROUP BY l.staff_id, s.name, s.role
    ORDER BY 2, 1";

/// A count and its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// How many.
    pub count: i64,
    /// Their points (signed as written).
    pub points: i64,
}

/// What one staff member wrote in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffActivity {
    /// Who.
    pub staff_id: Uuid,
    /// Their name.
    pub name: Option<String>,
    /// Their role.
    pub role: Option<String>,
    /// Manual rewards (MANUAL_BONUS).
    pub rewards: Tally,
    /// Adjustments (negative manual entries).
    pub adjustments: Tally,
    /// Slips voided.
    pub voids: i64,
    /// Slips corrected.
    pub corrections: i64,
    /// Holds placed (points held).
    pub escrow_holds: Tally,
    /// Captures made (points captured).
    pub escrow_captures: Tally,
    /// Refunds made (by hand or by expiry sweeps the staff member ran).
    pub escrow_refunds: i64,
    /// Manual-reward frequency alerts raised about them.
    pub alerts: i64,
}

/// Staff activity in `[from, to)`, by name.
pub fn staff_activity(
    tx: &mut dyn Tx,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<StaffActivity>, OpError> {
    let rows = tx.shared_rows(
        STAFF_ACTIVITY,
        &[from.as_microsecond(), to.as_microsecond()],
    )?;
    rows.iter()
        .map(|r| {
            Ok(StaffActivity {
                staff_id: id(&r[0])?,
                name: text(&r[1]),
                role: text(&r[2]),
                rewards: Tally {
                    count: r[3].int(),
                    points: r[4].int(),
                },
                adjustments: Tally {
                    count: r[5].int(),
                    points: r[6].int(),
                },
                voids: r[7].int(),
                corrections: r[8].int(),
                escrow_holds: Tally {
                    count: r[9].int(),
                    points: r[10].int(),
                },
                escrow_captures: Tally {
                    count: r[11].int(),
                    points: r[12].int(),
                },
                escrow_refunds: r[13].int(),
                alerts: r[14].int(),
            })
        })
        .collect()
}
