//! Players and their read tokens.

use super::*;

/// Creates a player and their loyalty account (BRONZE, 0).
pub fn create_player(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    display_name: Name,
    card_number: Option<CardNumber>,
) -> Result<Player, OpError> {
    let player = Player {
        id: ctx.new_id(),
        display_name: display_name.into_string(),
        card_number: card_number.map(CardNumber::into_string),
        status: loyalty_core::PlayerStatus::Active,
        created_at: ctx.now,
    };
    tx.insert_player(&player).map_err(|e| match e {
        StoreError::Conflict(_) => OpError::Conflict("card_number is already registered".into()),
        other => other.into(),
    })?;
    tx.insert_account(&Account {
        player_id: player.id,
        current_balance: 0,
        escrow_balance: 0,
        lifetime_points: 0,
        tier: Tier::Bronze,
        entry_count: 0,
        updated_at: ctx.now,
        chain_head: None,
    })?;
    ctx.emit(
        tx,
        Event::PlayerCreated(ev::PlayerCreated {
            player_id: player.id,
            card_number: player.card_number.clone(),
        }),
    )?;
    Ok(player)
}

/// Revokes every token of a player; returns how many were live.
pub fn revoke_player_tokens(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    player_id: PlayerId,
) -> Result<u64, OpError> {
    let player_id = player_id.uuid();
    tx.player(player_id)?.ok_or(OpError::NotFound("player"))?;
    let revoked = tx.revoke_subject_tokens(TokenSubject::Player(player_id), ctx.now)?;
    ctx.emit(
        tx,
        Event::PlayerTokensRevoked(ev::PlayerTokensRevoked {
            player_id,
            revoked_by: ctx.staff_id,
            tokens_revoked: revoked,
        }),
    )?;
    Ok(revoked)
}

/// Issues a player's read-only token (stores its hash).
pub fn create_player_token(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    player_id: PlayerId,
    token_hash: &str,
) -> Result<(), OpError> {
    let player_id = player_id.uuid();
    tx.player(player_id)?.ok_or(OpError::NotFound("player"))?;
    tx.insert_token(token_hash, TokenSubject::Player(player_id), ctx.now)?;
    ctx.emit(
        tx,
        Event::PlayerTokenIssued(ev::PlayerTokenIssued {
            player_id,
            issued_by: ctx.staff_id,
        }),
    )?;
    Ok(())
}
