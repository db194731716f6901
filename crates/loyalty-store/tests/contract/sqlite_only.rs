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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hands_over_exactly_the_committed_events_in_seq_order() {
    use loyalty_store::ops::{self, OpError, OpenSlip};
    use loyalty_store::{NewEvent, StoreError};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Sqlite(Arc::new(SqliteStore::open(dir.path()).expect("open")));
    let handover = store
        .committed_events()
        .expect("the embedded store hands over");
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    assert!(
        handover.take().is_empty(),
        "nothing is kept before a reader enables the hand-over"
    );
    let head = events(&store).await.last().map(|e| e.seq).unwrap_or(0);
    handover.enable();

    let event = |n: i64| NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "HANDOVER_TEST",
        version: 1,
        occurred_at: at(n),
        correlation_id: format!("corr-{n}"),
        idempotency_key: None,
        source: "contract_test",
        payload: loyalty_core::events::Payload::of(&serde_json::json!({"n": n, "text": "ü"})),
    };
    // Many writers at once, so operations share group commits: rewards and
    // completions that commit, completions whose accrual is rolled back to a
    // savepoint (PARTIAL), operations that append and then fail, and
    // operations that roll their own savepoint back before appending again.
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let s = store.clone();
        let (pid, tid) = (player.id, table.id);
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => {
                    let c = ctx(at(10 + i));
                    reward(&s, &c, pid, 10 + i, &format!("key-{i}"), Uuid::now_v7())
                        .await
                        .map(|_| ())
                        .expect("reward");
                }
                1 => {
                    let c = ctx(at(100));
                    let slip = op(&s, move |tx| {
                        ops::open_slip(
                            tx,
                            &c,
                            OpenSlip {
                                player_id: loyalty_core::PlayerId::of(pid),
                                table_id: loyalty_core::TableId::of(tid),
                                average_bet: bet("25"),
                                seat_number: None,
                                started_at: Some(at(50)),
                            },
                        )
                    })
                    .await
                    .expect("open");
                    let mut c = ctx(at(200));
                    c.fail_accrual = i % 8 == 1;
                    op(&s, move |tx| {
                        ops::complete_slip(tx, &c, loyalty_core::SlipId::of(slip.id), None)
                    })
                    .await
                    .expect("complete");
                }
                2 => {
                    let failed = s
                        .write(move |tx| -> Result<(), OpError> {
                            tx.append_event(event(i))?;
                            Err(OpError::Conflict("refused after appending".into()))
                        })
                        .await;
                    assert!(failed.is_err());
                }
                _ => {
                    s.write(move |tx| -> Result<(), StoreError> {
                        tx.savepoint()?;
                        tx.append_event(event(1_000 + i))?;
                        tx.rollback_savepoint()?;
                        tx.savepoint()?;
                        tx.append_event(event(2_000 + i))?;
                        tx.release_savepoint()
                    })
                    .await
                    .expect("savepoints");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    barrier(&store).await;

    let handed = handover.take();
    let stored: Vec<_> = events(&store)
        .await
        .into_iter()
        .filter(|e| e.seq > head)
        .collect();
    assert!(!stored.is_empty());
    assert_eq!(
        handed, stored,
        "the hand-over is the outbox, record for record"
    );
    let ns: Vec<i64> = handed
        .iter()
        .filter(|e| e.event_type == "HANDOVER_TEST")
        .filter_map(|e| e.payload.value()["n"].as_i64())
        .collect();
    assert!(ns.iter().all(|n| *n >= 2_000), "rolled-back events: {ns:?}");
    assert_eq!(ns.len(), 10);
    assert!(
        handed
            .iter()
            .any(|e| e.event_type == "LOYALTY_ACCRUAL_FAILED"),
        "a PARTIAL completion keeps its failure event"
    );
    assert!(handover.take().is_empty(), "each event is handed over once");
}

/// An installation from before the hash chain: opening it with this binary
/// computes every existing entry's chain, and new entries continue it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_computes_the_chains_of_existing_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path;
    let (p1, p2) = {
        let sqlite = Arc::new(SqliteStore::open(dir.path()).expect("open"));
        path = sqlite.path().to_path_buf();
        let store = Store::Sqlite(sqlite);
        let p1 = new_player(&store, at(0)).await.id;
        let p2 = new_player(&store, at(0)).await.id;
        for (i, pid) in [p1, p2, p1, p1, p2].into_iter().enumerate() {
            apply(
                &store,
                &ctx(at(i as i64 + 1)),
                spec(pid, TransactionType::ManualBonus, 10 + i as i64),
            )
            .await
            .expect("credit");
        }
        barrier(&store).await;
        let _ = std::thread::spawn(move || drop(store)).join();
        (p1, p2)
    };
    // Back to schema 6: no approvals (schema 11), no escrow changes (schema
    // 10), no slip corrections (schema 9), no chain columns.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute_batch(
        "ALTER TABLE loyalty_accounts DROP COLUMN chain_head;
         DROP TRIGGER outbox_no_delete;
         DROP TABLE event_archives;
         DROP TABLE webhook_deliveries;
         DROP TABLE webhooks;
         DROP TABLE approvals;
         ALTER TABLE ledger_entries DROP COLUMN approved_by;
         ALTER TABLE ledger_entries DROP COLUMN escrow_change;
         ALTER TABLE rating_slips DROP COLUMN corrections;
         DROP INDEX ledger_one_gameplay_per_slip;
         CREATE UNIQUE INDEX ledger_one_gameplay_per_slip
             ON ledger_entries(rating_slip_id) WHERE transaction_type = 'GAMEPLAY';
         ALTER TABLE ledger_entries DROP COLUMN hash;
         ALTER TABLE ledger_entries DROP COLUMN prev_hash;
         PRAGMA user_version = 6;",
    )
    .expect("downgrade");
    drop(conn);

    let store = Store::Sqlite(Arc::new(SqliteStore::open(dir.path()).expect("migrate")));
    for pid in [p1, p2] {
        let entries = ledger(&store, pid).await;
        let mut prev = loyalty_store::chain::GENESIS.to_string();
        for e in &entries {
            assert_eq!(e.prev_hash, prev);
            assert_eq!(e.hash, loyalty_store::chain::entry_hash(e));
            prev = e.hash.clone();
        }
    }
    apply(
        &store,
        &ctx(at(10)),
        spec(p1, TransactionType::ManualBonus, 5),
    )
    .await
    .expect("a new entry");
    let (_, drift, total) = store
        .read(|tx| loyalty_store::ops::verify(tx, 10))
        .await
        .expect("verify");
    assert_eq!(total, 0, "{drift:?}");
    // The append-only guard is back.
    let conn = Connection::open(&path).expect("open the file");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let err = conn
        .execute("UPDATE ledger_entries SET reason = 'x'", [])
        .expect_err("refused");
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// Schema 10 on an existing installation: every wallet entry gets the
/// escrow change it made, captures from their events; verify is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_gives_existing_wallet_entries_their_escrow_changes() {
    use crate::wallet::{SCRIPTED_ESCROW_CHANGES, escrow_changes, scripted_wallet_history};
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, pid) = {
        let sqlite = Arc::new(SqliteStore::open(dir.path()).expect("open"));
        let path = sqlite.path().to_path_buf();
        let store = Store::Sqlite(sqlite);
        let pid = scripted_wallet_history(&store).await;
        assert_eq!(escrow_changes(&store, pid).await, SCRIPTED_ESCROW_CHANGES);
        barrier(&store).await;
        let _ = std::thread::spawn(move || drop(store)).join();
        (path, pid)
    };
    // Back to schema 9: no approvals (schema 11), no escrow_change column.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute_batch(
        "ALTER TABLE loyalty_accounts DROP COLUMN chain_head;
         DROP TRIGGER outbox_no_delete;
         DROP TABLE event_archives;
         DROP TABLE webhook_deliveries;
         DROP TABLE webhooks;
         DROP TABLE approvals;
         ALTER TABLE ledger_entries DROP COLUMN approved_by;
         ALTER TABLE ledger_entries DROP COLUMN escrow_change;
         PRAGMA user_version = 9;",
    )
    .expect("downgrade");
    drop(conn);

    let store = Store::Sqlite(Arc::new(SqliteStore::open(dir.path()).expect("migrate")));
    assert_eq!(escrow_changes(&store, pid).await, SCRIPTED_ESCROW_CHANGES);
    let (_, drift, _) = store
        .read(|tx| loyalty_store::ops::verify(tx, 100))
        .await
        .expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
    let _ = std::thread::spawn(move || drop(store)).join();
}

/// Issue 16 point 1: under sustained writes the write-ahead log stays below
/// its bound (here 16 MiB) because the checkpointer lets it start over; a
/// reader holding a snapshot only delays that until it lets go; once writes
/// stop, the log is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_wal_stays_bounded_under_load_and_empties_when_it_stops() {
    use loyalty_store::sqlite::SqliteOptions;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const BOUND: u64 = 16 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(
        SqliteStore::open_with(
            dir.path(),
            SqliteOptions {
                wal_max_bytes: BOUND,
                ..SqliteOptions::default()
            },
        )
        .expect("open"),
    );
    let wal_path = {
        let mut p = sqlite.path().to_path_buf().into_os_string();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let store = Store::Sqlite(sqlite.clone());
    let staff = Uuid::now_v7();
    let mut players = Vec::new();
    for _ in 0..8 {
        players.push(new_player(&store, at(0)).await.id);
    }
    let wal_size = move || std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
    let largest = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (largest, sampling, wal_size) = (largest.clone(), sampling.clone(), wal_size.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                largest.fetch_max(wal_size(), Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    };
    // Readers always about, as the server's requests, tail and subscribers
    // are: some reader is nearly always inside the log.
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (store, players, sampling) = (store.clone(), players.clone(), sampling.clone());
            tokio::spawn(async move {
                let mut i = r;
                while sampling.load(Ordering::SeqCst) {
                    let p = players[i % players.len()];
                    look(&store, move |tx| tx.account(p)).await;
                    i += 1;
                }
            })
        })
        .collect();
    let load = |from: usize, n: usize| {
        let (store, players) = (store.clone(), players.clone());
        async move {
            let mut tasks = Vec::new();
            for w in 0..32 {
                let (store, players) = (store.clone(), players.clone());
                tasks.push(tokio::spawn(async move {
                    for i in (from + w..from + n).step_by(32) {
                        let reason = format!("wal load reward {i} {}", "x".repeat(200));
                        let mut input =
                            reward_input(players[i % players.len()], 3, &format!("wal-{i}"), staff);
                        input.reason = crate::support::reason(&reason);
                        let c = ctx(at(1));
                        op(&store, move |tx| {
                            loyalty_store::ops::manual_reward(tx, &c, input)
                        })
                        .await
                        .expect("reward");
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };

    // Sustained writes: the log starts over again and again, within bound.
    load(0, 12_000).await;
    let (longest_us, resets) = sqlite.wal_stats();
    eprintln!(
        "log starts over: {resets}; longest writer wait {longest_us} µs; largest log {} bytes",
        largest.load(Ordering::SeqCst)
    );
    assert!(resets > 0, "the checkpointer never had the log start over");
    assert!(
        largest.load(Ordering::SeqCst) <= BOUND,
        "the log reached {} bytes",
        largest.load(Ordering::SeqCst)
    );

    // A reader holding a snapshot pins the log; writes go on regardless,
    // and once it lets go the log starts over again.
    let reader = rusqlite::Connection::open(sqlite.path()).expect("reader");
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM ledger_entries;")
        .expect("a snapshot");
    load(12_000, 3_000).await;
    let pinned = wal_size();
    assert!(
        pinned > BOUND / 4,
        "the snapshot should have pinned the log ({pinned} bytes)"
    );
    reader.execute_batch("COMMIT").expect("let go");
    drop(reader);
    // Writes go on; the log starts over and is cut back to its reset size.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut from = 15_000;
    while wal_size() > BOUND {
        assert!(
            std::time::Instant::now() < deadline,
            "the log stayed at {} bytes after the reader let go",
            wal_size()
        );
        load(from, 500).await;
        from += 500;
    }
    largest.store(0, Ordering::SeqCst);
    load(from, 6_000).await;
    assert!(
        largest.load(Ordering::SeqCst) <= BOUND,
        "after the reader let go the log still reached {} bytes",
        largest.load(Ordering::SeqCst)
    );

    // Writes stop: the log is emptied.
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wal_size() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle log was never emptied ({} bytes)",
            wal_size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, drift, _) = store
        .read(|tx| loyalty_store::ops::verify(tx, 10))
        .await
        .expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
    let _ = std::thread::spawn(move || drop(store)).join();
}

/// The writer runs the first operation of a batch without a savepoint of
/// its own: when that one fails or panics, the transaction starts over and
/// the operations queued behind it still commit, each exactly as it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_batch_whose_first_operation_fails_keeps_the_rest() {
    use loyalty_store::ops::OpError;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Sqlite(Arc::new(SqliteStore::open(dir.path()).expect("open")));
    // What each queued operation does after writing a player.
    #[derive(Clone, Copy, Debug)]
    enum Then {
        Fail,
        Panic,
        Keep,
    }
    let script = [
        Then::Fail,
        Then::Keep,
        Then::Panic,
        Then::Keep,
        // The writer is held again before these: a new batch led by a panic.
        Then::Panic,
        Then::Keep,
        Then::Fail,
    ];
    let mut tasks = Vec::new();
    let mut players = Vec::new();
    for (i, then) in script.into_iter().enumerate() {
        if i == 0 || i == 4 {
            // Hold the writer so that what follows queues up as one batch.
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                op(&s, |_| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
                .map(|_| None)
            }));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let p = new_player_record(i);
        players.push((p.id, then));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            op(&s, move |tx| {
                tx.insert_player(&p)?;
                match then {
                    Then::Fail => Err(OpError::Conflict(format!("forced failure {i}"))),
                    Then::Panic => panic!("forced panic {i}"),
                    Then::Keep => Ok(Some(i)),
                }
            })
            .await
        }));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let kept: Vec<usize> = outcomes
        .iter()
        .filter_map(|r| r.as_ref().ok().copied().flatten())
        .collect();
    assert_eq!(kept, vec![1, 3, 5], "{outcomes:?}");
    barrier(&store).await;
    let ids: Vec<Uuid> = players.iter().map(|(id, _)| *id).collect();
    let stored = look(&store, move |tx| {
        ids.iter()
            .map(|id| Ok(tx.player(*id)?.is_some()))
            .collect::<Result<Vec<bool>, loyalty_store::StoreError>>()
    })
    .await;
    let want: Vec<bool> = players
        .iter()
        .map(|(_, then)| matches!(then, Then::Keep))
        .collect();
    assert_eq!(stored, want);
    let _ = std::thread::spawn(move || drop(store)).join();
}

fn new_player_record(i: usize) -> loyalty_store::Player {
    loyalty_store::Player {
        id: Uuid::now_v7(),
        display_name: format!("Batch player {i}"),
        card_number: None,
        status: loyalty_core::PlayerStatus::Active,
        created_at: at(0),
    }
}
