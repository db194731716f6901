//! JSON shapes of the API (DESIGN §5). Field names are the contract.

use jiff::Timestamp;
use loyalty_core::TierTable;
use loyalty_store::{Account, RatingSlip};
use serde_json::{Value, json};

/// A rating slip as the API shows it, with time played up to `now`.
pub fn slip(s: &RatingSlip, now: Timestamp) -> Value {
    json!({
        "id": s.id,
        "player_id": s.player_id,
        "table_id": s.table_id,
        "seat_number": s.seat_number,
        "status": s.status,
        "average_bet": s.average_bet,
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "accumulated_seconds": s.played_us_at(now) / 1_000_000,
        "game_settings": s.game_settings,
        "loyalty_status": s.loyalty_status,
        "ledger_entry_id": s.ledger_entry_id,
        "corrections": s.corrections,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// A loyalty summary.
pub fn loyalty(a: &Account, tiers: &TierTable) -> Value {
    json!({
        "player_id": a.player_id,
        "current_balance": a.current_balance,
        "escrow_balance": a.escrow_balance,
        "lifetime_points": a.lifetime_points,
        "tier": a.tier,
        "tier_progress": tiers.progress(a.lifetime_points),
        "updated_at": a.updated_at,
    })
}
