//! Staff members and signing out: creating and disabling staff, revoking
//! one's own token.

use super::*;

/// Creates a staff member and stores the hash of their first token.
pub fn create_staff(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    name: Name,
    role: Role,
    token_hash: &str,
) -> Result<Staff, OpError> {
    let staff = Staff {
        id: ctx.new_id(),
        name: name.into_string(),
        role,
        created_at: ctx.now,
        disabled_at: None,
    };
    tx.insert_staff(&staff)?;
    tx.insert_token(token_hash, TokenSubject::Staff(staff.id), ctx.now)?;
    ctx.emit(
        tx,
        Event::StaffCreated(ev::StaffCreated {
            staff_id: staff.id,
            role: staff.role,
            created_by: ctx.staff_id,
        }),
    )?;
    Ok(staff)
}

/// Disables a staff member: every token of theirs stops working; the record
/// stays (their ledger entries keep naming them). Disabling a disabled staff
/// member changes nothing and emits nothing.
pub fn disable_staff(tx: &mut dyn Tx, ctx: &OpCtx, id: StaffId) -> Result<Staff, OpError> {
    let id = id.uuid();
    let before = tx.staff(id)?.ok_or(OpError::NotFound("staff member"))?;
    if before.disabled_at.is_none() {
        tx.disable_staff(id, ctx.now)?;
        let revoked = tx.revoke_subject_tokens(TokenSubject::Staff(id), ctx.now)?;
        ctx.emit(
            tx,
            Event::StaffDisabled(ev::StaffDisabled {
                staff_id: id,
                role: before.role,
                disabled_by: ctx.staff_id,
                tokens_revoked: revoked,
            }),
        )?;
    }
    tx.staff(id)?
        .ok_or_else(|| StoreError::Internal("disabled staff member vanished".into()).into())
}

/// Revokes the token with this hash (its holder signing out); false if it
/// was not live.
pub fn revoke_token(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    token_hash: &str,
    subject: TokenSubject,
) -> Result<bool, OpError> {
    let revoked = tx.revoke_token(token_hash, ctx.now)?;
    if revoked {
        let (subject, subject_id) = match subject {
            TokenSubject::Staff(id) => (ev::TokenHolder::Staff, id),
            TokenSubject::Player(id) => (ev::TokenHolder::Player, id),
        };
        ctx.emit(
            tx,
            Event::TokenRevoked(ev::TokenRevoked {
                subject,
                subject_id,
            }),
        )?;
    }
    Ok(revoked)
}
