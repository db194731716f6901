//! Gaming tables and their settings.

use super::*;

/// Creates a table.
pub fn create_table(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    name: Name,
    game_type: Name,
    settings: GameSettings,
) -> Result<GameTable, OpError> {
    let table = GameTable {
        id: ctx.new_id(),
        name: name.into_string(),
        game_type: game_type.into_string(),
        settings,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.insert_table(&table)?;
    ctx.emit(
        tx,
        Event::TableCreated(ev::TableChanged {
            table_id: table.id,
            settings: table.settings.clone(),
        }),
    )?;
    Ok(table)
}

/// Changes a table; `change` edits a copy that is then stored. Open slips keep
/// their snapshot.
pub fn patch_table(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: TableId,
    change: impl FnOnce(&mut GameTable),
) -> Result<GameTable, OpError> {
    let id = id.uuid();
    let mut table = tx.table(id)?.ok_or(OpError::NotFound("table"))?;
    change(&mut table);
    table.updated_at = ctx.now;
    tx.update_table(&table)?;
    ctx.emit(
        tx,
        Event::TableUpdated(ev::TableChanged {
            table_id: table.id,
            settings: table.settings.clone(),
        }),
    )?;
    Ok(table)
}
