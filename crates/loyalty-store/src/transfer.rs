//! Moving an embedded installation to PostgreSQL: every row of every table,
//! in order, in one PostgreSQL transaction, into an empty migrated database.
//! Values are converted by the target column's type; sequence counters are
//! set past the copied rows. The caller proves the move with `verify` and by
//! comparing balances.

use std::path::Path;
use std::str::FromStr;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use crate::{StoreError, StoreResult};

/// Tables in dependency order; tables not named here follow, by name.
const ORDER: &[&str] = &[
    "staff",
    "tokens",
    "players",
    "loyalty_accounts",
    "game_tables",
    "rating_slips",
    "merchants",
    "escrows",
    "ledger_entries",
    "outbox",
    "idempotency_records",
];

/// Tables that describe running processes, not data: never copied.
const NOT_COPIED: &[&str] = &["leases"];

/// Prefixes of SQLite-only index tables (the name search's full-text index
/// and its shadow tables): PostgreSQL keeps its own index, built from the
/// copied rows.
const INDEX_TABLES: &[&str] = &["players_name_fts"];

/// Rows copied per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, u64)>,
}

fn pg_err(e: postgres::Error) -> StoreError {
    crate::postgres::tx_map_err(&e)
}

fn lite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("reading the embedded database: {e}"))
}

/// Copies the embedded database in `data_dir` into the empty PostgreSQL
/// database at `url` (migrating both first).
pub fn sqlite_to_postgres(data_dir: &Path, url: &str) -> StoreResult<TransferReport> {
    sqlite_to_postgres_with_progress(data_dir, url, &mut |_, _| {})
}

/// [`sqlite_to_postgres`], telling `progress` the total number of rows to
/// copy (`progress(Some(total), 0)`) and then how many are copied so far
/// (`progress(None, n)`).
pub fn sqlite_to_postgres_with_progress(
    data_dir: &Path,
    url: &str,
    progress: &mut dyn FnMut(Option<u64>, u64),
) -> StoreResult<TransferReport> {
    // Bring both schemas to this binary's version.
    drop(crate::sqlite::SqliteStore::open(data_dir)?);
    let target = crate::postgres::PgStore::open(url, 1)?;
    let mut pg = target.raw_client()?;
    let lite = rusqlite::Connection::open_with_flags(
        data_dir.join("loyalty.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(lite_err)?;

    let occupied: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM staff) + (SELECT count(*) FROM players)
                  + (SELECT count(*) FROM ledger_entries) + (SELECT count(*) FROM outbox)",
            &[],
        )
        .map_err(pg_err)?
        .get(0);
    if occupied > 0 {
        return Err(StoreError::Conflict(
            "the target database is not empty; migrate into a new database".into(),
        ));
    }

    let mut tables: Vec<String> = lite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .map_err(lite_err)?
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(lite_err)?
        .collect::<Result<_, _>>()
        .map_err(lite_err)?;
    tables.sort_by_key(|t| {
        (
            ORDER.iter().position(|o| o == t).unwrap_or(ORDER.len()),
            t.clone(),
        )
    });

    // Leases name the processes of the old installation; copied, they would
    // keep the new one's subscribers and relay waiting until they expire.
    tables.retain(|t| {
        !NOT_COPIED.contains(&t.as_str()) && !INDEX_TABLES.iter().any(|p| t.starts_with(p))
    });
    let mut total = 0u64;
    for table in &tables {
        let n: i64 = lite
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(lite_err)?;
        total += u64::try_from(n).unwrap_or(0);
    }
    progress(Some(total), 0);
    let mut tx = pg.transaction().map_err(pg_err)?;
    let mut report = TransferReport { tables: Vec::new() };
    let mut done = 0u64;
    for table in &tables {
        let n = copy_table(&lite, &mut tx, table, &mut |k| progress(None, done + k))?;
        done += n;
        report.tables.push((table.clone(), n));
    }
    // Every serial column (ledger seq, dead letter and feed ids, alerts)
    // continues after the copied rows, and so does the outbox counter.
    let serials: Vec<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'",
            &[],
        )
        .map_err(pg_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, column) in serials {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2),
                               GREATEST((SELECT max({column}) FROM {table}), 1),
                               (SELECT max({column}) FROM {table}) IS NOT NULL)"
            ),
            &[&table, &column],
        )
        .map_err(pg_err)?;
    }
    tx.batch_execute(
        "UPDATE outbox_sequence SET last = (SELECT coalesce(max(seq), 0) FROM outbox) WHERE id = 1;",
    )
    .map_err(pg_err)?;
    tx.commit().map_err(pg_err)?;
    // Close the blocking client here, on this (blocking) thread.
    drop(pg);
    drop(target);
    Ok(report)
}

fn copy_table(
    lite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    copied_so_far: &mut dyn FnMut(u64),
) -> StoreResult<u64> {
    let columns: Vec<(String, String)> = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .map_err(pg_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if columns.is_empty() {
        return Err(StoreError::Internal(format!(
            "table {table} has no counterpart in PostgreSQL"
        )));
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let list = names.join(", ");
    let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {table} ({list}) VALUES ({})",
            params.join(", ")
        ))
        .map_err(pg_err)?;
    let mut select = lite
        .prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))
        .or_else(|_| lite.prepare(&format!("SELECT {list} FROM {table}")))
        .map_err(lite_err)?;
    let mut rows = select.query([]).map_err(lite_err)?;
    let mut copied = 0u64;
    while let Some(row) = rows.next().map_err(lite_err)? {
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (i, (name, ty)) in columns.iter().enumerate() {
            let v = row.get_ref(i).map_err(lite_err)?;
            values.push(convert(table, name, ty, v)?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
        tx.execute(&insert, &refs).map_err(pg_err)?;
        copied += 1;
        if copied.is_multiple_of(1_000) {
            copied_so_far(copied);
        }
    }
    copied_so_far(copied);
    Ok(copied)
}

fn convert(
    table: &str,
    column: &str,
    ty: &str,
    v: ValueRef<'_>,
) -> StoreResult<Box<dyn ToSql + Sync>> {
    let bad = || StoreError::Internal(format!("{table}.{column}: cannot convert {v:?} to {ty}"));
    let text = || -> StoreResult<String> {
        match v {
            ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
            _ => Err(bad()),
        }
    };
    let null = matches!(v, ValueRef::Null);
    Ok(match ty {
        "uuid" if null => Box::new(None::<uuid::Uuid>),
        "uuid" => Box::new(uuid::Uuid::from_str(&text()?).map_err(|_| bad())?),
        "bigint" if null => Box::new(None::<i64>),
        "bigint" => Box::new(v.as_i64().map_err(|_| bad())?),
        "integer" if null => Box::new(None::<i32>),
        "integer" => Box::new(i32::try_from(v.as_i64().map_err(|_| bad())?).map_err(|_| bad())?),
        "boolean" if null => Box::new(None::<bool>),
        "boolean" => Box::new(v.as_i64().map_err(|_| bad())? != 0),
        "jsonb" | "json" if null => Box::new(None::<serde_json::Value>),
        "jsonb" | "json" => {
            Box::new(serde_json::from_str::<serde_json::Value>(&text()?).map_err(|_| bad())?)
        }
        "bytea" if null => Box::new(None::<Vec<u8>>),
        "bytea" => Box::new(v.as_blob().map_err(|_| bad())?.to_vec()),
        "text" | "character varying" if null => Box::new(None::<String>),
        "text" | "character varying" => Box::new(text()?),
        _ => return Err(bad()),
    })
}
