//! Webhook endpoints (DESIGN §6): registering and deleting them. Delivery
//! is the server's (a dispatcher subscriber per endpoint); this is what is
//! stored.

use loyalty_core::events::{self as ev, Event};
use uuid::Uuid;

use super::{OpCtx, OpError};
use crate::{Tx, Webhook};

/// The dispatcher subscriber that delivers to endpoint `id`.
pub fn subscriber_name(id: Uuid) -> String {
    format!("webhook:{id}")
}

/// Registers `w` and starts its deliveries at the current outbox head: an
/// endpoint receives the events that happen after it was registered.
pub fn register(tx: &mut dyn Tx, ctx: &OpCtx, w: Webhook) -> Result<Webhook, OpError> {
    tx.insert_webhook(&w)?;
    let head = tx.outbox_head()?;
    tx.set_checkpoint(&subscriber_name(w.id), head, ctx.now)?;
    ctx.emit(
        tx,
        Event::WebhookCreated(ev::WebhookCreated {
            webhook_id: w.id,
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            created_by: w.created_by,
        }),
    )?;
    Ok(w)
}

/// Deletes endpoint `id`; its deliveries stop. `NotFound` if it is not live.
pub fn delete(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<(), OpError> {
    if tx.delete_webhook(id, ctx.now)? {
        ctx.emit(
            tx,
            Event::WebhookDeleted(ev::WebhookDeleted {
                webhook_id: id,
                deleted_by: ctx.staff_id,
            }),
        )?;
        Ok(())
    } else {
        Err(OpError::NotFound("webhook"))
    }
}
