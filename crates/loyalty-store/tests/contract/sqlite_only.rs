//! SQLite-specific checks that need raw SQL access to the database file. The
//! PostgreSQL backend needs its own equivalents (e.g. the same statements
//! through its own connection); they are not part of the generic suite.

use std::sync::Arc;

use loyalty_core::TransactionType;
use loyalty_store::Store;
use loyalty_store::sqlite::SqliteStore;
use rusqlite::Connection;
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ledger_rows_refuse_raw_update_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(SqliteStore::open(dir.path()).expect("open"));
    let store = Store::Sqlite(sqlite.clone());
    let pid = new_player(&store, at(0)).await.id;
    let staff = Uuid::now_v7();
    reward(&store, &ctx(at(1)), pid, 500, "k1", staff)
        .await
        .expect("reward");
    apply(
        &store,
        &ctx(at(2)),
        spec(pid, TransactionType::Adjustment, -200),
    )
    .await
    .expect("adjust");
    let before = ledger(&store, pid).await;
    let events_before = events(&store).await;
    assert_eq!(before.len(), 2);

    let conn = Connection::open(sqlite.path()).expect("open the database file directly");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    let refused = |sql: &str| {
        let err = conn
            .execute(sql, [])
            .expect_err(&format!("must be refused: {sql}"));
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    };
    refused(
        "UPDATE ledger_entries SET points_change = 1000000, balance_after = balance_before + 1000000",
    );
    refused(
        "UPDATE ledger_entries SET reason = 'edited' WHERE seq = (SELECT MAX(seq) FROM ledger_entries)",
    );
    refused("DELETE FROM ledger_entries");
    refused("DELETE FROM ledger_entries WHERE seq = (SELECT MIN(seq) FROM ledger_entries)");
    refused("UPDATE outbox SET payload = '{}'");
    // Also inside an explicit transaction.
    conn.execute_batch("BEGIN").expect("begin");
    refused("DELETE FROM ledger_entries");
    conn.execute_batch("ROLLBACK").expect("rollback");
    drop(conn);

    assert_eq!(ledger(&store, pid).await, before, "ledger unchanged");
    assert_eq!(events(&store).await, events_before, "outbox unchanged");
    let (_, drift, _) = store
        .read(|tx| loyalty_store::ops::verify(tx, 10))
        .await
        .expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
}
