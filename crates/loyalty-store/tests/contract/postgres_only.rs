//! PostgreSQL-specific checks of the commit path: no lock is shared by every
//! write, and events numbered after commit keep every promise of the event
//! stream (ARCHITECTURE.md, "Event numbering on PostgreSQL"). They reach
//! into the backend (`PgStore::set_before_commit`) to hold or fail a
//! transaction after its events are written and before it commits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loyalty_store::postgres::PgStore;
use loyalty_store::{EventRecord, Store, StoreError};
use uuid::Uuid;

use crate::support::*;

fn pg(store: &Store) -> Arc<PgStore> {
    match store {
        Store::Postgres(p) => p.clone(),
        Store::Sqlite(_) => panic!("a PostgreSQL test got another backend"),
    }
}

/// A gate the hook waits at: `hold` makes the next commit wait until
/// `release`; `held` waits until a commit is waiting.
#[derive(Default)]
struct Gate {
    armed: AtomicBool,
    held: Mutex<bool>,
    open: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn hook(self: &Arc<Self>) -> loyalty_store::postgres::BeforeCommitHook {
        let gate = self.clone();
        Arc::new(move || {
            if gate.armed.swap(false, Ordering::SeqCst) {
                *gate.held.lock().unwrap() = true;
                gate.cv.notify_all();
                let mut open = gate.open.lock().unwrap();
                while !*open {
                    open = gate.cv.wait(open).unwrap();
                }
            }
            Ok(())
        })
    }

    fn wait_held(&self) {
        let mut held = self.held.lock().unwrap();
        while !*held {
            let (h, t) = self.cv.wait_timeout(held, Duration::from_secs(10)).unwrap();
            assert!(!t.timed_out(), "the held transaction never reached commit");
            held = h;
        }
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Opens the gate when dropped: a test that fails while a transaction is
/// held at the gate ends instead of hanging on it.
struct Opener(Arc<Gate>);

impl Drop for Opener {
    fn drop(&mut self) {
        self.0.release();
    }
}

type Rewarded = Result<(loyalty_store::LedgerEntry, bool), loyalty_store::ops::OpError>;

/// A reward of 100 points for `player`, held at a new gate after writing
/// everything it writes and before it commits. The gate opens when the
/// returned [`Opener`] is released or dropped.
async fn held_reward(
    store: &Store,
    player: Uuid,
    key: &'static str,
    staff: Uuid,
) -> (Opener, tokio::task::JoinHandle<Rewarded>) {
    let gate = Arc::new(Gate::default());
    pg(store).set_before_commit(Some(gate.hook()));
    gate.armed.store(true, Ordering::SeqCst);
    let held = {
        let store = store.clone();
        tokio::spawn(async move { reward(&store, &ctx(at(1)), player, 100, key, staff).await })
    };
    let g = gate.clone();
    tokio::task::spawn_blocking(move || g.wait_held())
        .await
        .unwrap();
    (Opener(gate), held)
}

/// Committed events that no sequencer pass has numbered yet.
async fn pending_rows(pg: &Arc<PgStore>) -> i64 {
    let pg = pg.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = pg.raw_client().unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM outbox_pending", &[])
            .unwrap()
            .get(0);
        drop(c);
        n
    })
    .await
    .unwrap()
}

fn of_player(events: &[EventRecord], player: Uuid) -> Vec<&EventRecord> {
    events
        .iter()
        .filter(|e| e.payload.value()["player_id"] == serde_json::json!(player))
        .collect()
}

/// A transaction that has written its entry, its account and its events and
/// is about to commit holds nothing another player's write needs: that
/// write commits and its events are numbered meanwhile; the held one's
/// events follow after it commits, with no gap. (The held transaction also
/// counts as a running write, which a sequencer pass waits for: only for a
/// bounded moment, or the other write's acknowledgement would never come.)
pub async fn postgres_a_transaction_about_to_commit_blocks_no_other_player(store: Store) {
    let pg = pg(&store);
    let staff = Uuid::now_v7();
    let a = new_player(&store, at(0)).await.id;
    let b = new_player(&store, at(0)).await.id;
    let (gate, held) = held_reward(&store, a, "held-a", staff).await;

    // A's transaction is open after writing everything it writes.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        reward(&store, &ctx(at(2)), b, 50, "free-b", staff),
    )
    .await
    .expect("another player's write must not wait for the held transaction")
    .expect("reward for b");
    assert_eq!(other.0.balance_after, 50);
    let meanwhile = events(&store).await;
    assert_gap_free(&meanwhile);
    assert!(
        !of_player(&meanwhile, b).is_empty(),
        "b's events are numbered while a's transaction is open"
    );
    assert!(
        of_player(&meanwhile, a)
            .iter()
            .all(|e| e.event_type == "PLAYER_CREATED"),
        "nothing of a's uncommitted reward is visible"
    );

    gate.0.release();
    held.await.unwrap().expect("the held reward commits");
    pg.set_before_commit(None);
    let after = events(&store).await;
    assert_gap_free(&after);
    assert_eq!(
        &after[..meanwhile.len()],
        &meanwhile[..],
        "history unchanged"
    );
    let a_events: Vec<&str> = after[meanwhile.len()..]
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(
        a_events.contains(&"LEDGER_ENTRY_CREATED") && a_events.contains(&"BALANCE_UPDATED"),
        "a's events follow: {a_events:?}"
    );
}

/// A sequencer pass waits for the writes still running on its node, so one
/// pass numbers them all (ARCHITECTURE.md, "Event numbering on
/// PostgreSQL", point 5), and the last of them to end starts it. The bound
/// is raised to 30 s here, so the waiting shows; a write with nothing else
/// running is still answered at once.
pub async fn postgres_a_pass_waits_for_the_writes_running_on_its_node(store: Store) {
    let pg = pg(&store);
    let staff = Uuid::now_v7();
    let a = new_player(&store, at(0)).await.id;
    let b = new_player(&store, at(0)).await.id;
    pg.set_sequencer_gather(Duration::from_secs(30));
    let (gate, held) = held_reward(&store, a, "gather-a", staff).await;
    let passes = pg.sequencer_moving_passes();

    // b commits while a's transaction is still running.
    let other = {
        let store = store.clone();
        tokio::spawn(async move { reward(&store, &ctx(at(2)), b, 50, "gather-b", staff).await })
    };
    let mut committed = 0;
    for _ in 0..200 {
        committed = pending_rows(&pg).await;
        if committed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(committed > 0, "b's reward commits while a's is held");
    // Without gathering, a pass (or the 25 ms idle poll) would number b's
    // events within milliseconds; here it waits for a.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pending_rows(&pg).await,
        committed,
        "b's events wait for the pass"
    );
    assert!(
        !other.is_finished(),
        "b is answered only once they are numbered"
    );

    gate.0.release();
    let both = tokio::time::timeout(Duration::from_secs(10), async {
        (held.await.unwrap(), other.await.unwrap())
    })
    .await
    .expect("a's end starts the pass: nobody waits for the 30 s bound");
    both.0.expect("a's reward");
    both.1.expect("b's reward");
    pg.set_before_commit(None);
    assert_eq!(
        pg.sequencer_moving_passes() - passes,
        1,
        "one pass numbered both rewards' events"
    );
    let numbered = events(&store).await;
    assert_gap_free(&numbered);
    for p in [a, b] {
        assert!(
            of_player(&numbered, p)
                .iter()
                .any(|e| e.event_type == "BALANCE_UPDATED"),
            "{p}'s reward is on the stream"
        );
    }

    // Nothing else running: a write is answered without waiting.
    tokio::time::timeout(
        Duration::from_secs(10),
        reward(&store, &ctx(at(3)), b, 5, "alone", staff),
    )
    .await
    .expect("a lone write never waits for the bound")
    .expect("reward");
    pg.set_sequencer_gather(Duration::from_millis(4));
}

/// A transaction that fails after its events are written leaves no event
/// and no hole: the next commit's events continue the sequence.
pub async fn postgres_a_transaction_rolled_back_after_writing_events_leaves_no_trace(store: Store) {
    let pg = pg(&store);
    let staff = Uuid::now_v7();
    let a = new_player(&store, at(0)).await.id;
    let before = events(&store).await;
    let fail_once = Arc::new(AtomicBool::new(true));
    let f = fail_once.clone();
    pg.set_before_commit(Some(Arc::new(move || {
        if f.swap(false, Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "failed on purpose before commit".into(),
            ))
        } else {
            Ok(())
        }
    })));
    let failed = reward(&store, &ctx(at(1)), a, 100, "rolled-back", staff).await;
    assert!(failed.is_err(), "the hook's error fails the operation");
    assert_eq!(account(&store, a).await.current_balance, 0);
    let pending = pending_rows(&pg).await;
    assert_eq!(pending, 0, "no pending event survives the rollback");
    assert_eq!(events(&store).await, before, "no event, no number");

    reward(&store, &ctx(at(2)), a, 70, "committed", staff)
        .await
        .expect("the next reward commits");
    pg.set_before_commit(None);
    let after = events(&store).await;
    assert_gap_free(&after);
    assert_eq!(after[before.len()].seq, before.last().unwrap().seq + 1);
    assert!(
        after[before.len()..]
            .iter()
            .all(|e| e.payload.value()["points_change"] != serde_json::json!(100)),
        "the rolled-back reward has no event"
    );
}

/// Schema 16: a sequencer pass asked about rows that a committed pass has
/// already numbered returns at once, without the sequencers' lock; asked
/// about a row still pending, it needs the lock (and numbers the row once
/// the lock is free).
pub async fn postgres_a_pass_whose_rows_are_numbered_skips_the_lock(store: Store) {
    let pg = pg(&store);
    let a = new_player(&store, at(0)).await.id;
    let before = events(&store).await;
    let pending_id = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            let mut holder = pg.raw_client().unwrap();
            let mut c = pg.raw_client().unwrap();
            // The player's events were numbered before the write answered.
            let pending: i64 = c
                .query_one("SELECT count(*) FROM outbox_pending", &[])
                .unwrap()
                .get(0);
            assert_eq!(pending, 0);
            // Hold the sequencers' lock: a pass that needs it waits.
            holder
                .execute("SELECT pg_advisory_lock(7411002)", &[])
                .unwrap();
            c.batch_execute("SET statement_timeout = '2s'").unwrap();
            let pass = |c: &mut postgres::Client, upto: i64| {
                c.query_one("SELECT moved_count FROM outbox_sequence_pass($1)", &[&upto])
                    .map(|r| r.get::<_, i64>(0))
            };
            assert_eq!(pass(&mut c, i64::MAX).unwrap(), 0, "nothing pending");
            // A committed row that no pass has moved yet.
            let id: i64 = c
                .query_one(
                    "INSERT INTO outbox_pending (event_id, event_type, version, occurred_at,
                         correlation_id, idempotency_key, source, payload)
                     VALUES ($1, 'PLAYER_CREATED', 1, 0, 'skip-test', NULL, 'players',
                             jsonb_build_object('player_id', $2::text, 'card_number', NULL))
                     RETURNING id",
                    &[&Uuid::now_v7(), &a.to_string()],
                )
                .unwrap()
                .get(0);
            assert_eq!(
                pass(&mut c, id - 1).unwrap(),
                0,
                "nothing at or below id - 1"
            );
            c.batch_execute("SET statement_timeout = '300ms'").unwrap();
            let blocked = pass(&mut c, id);
            assert!(
                blocked.is_err(),
                "a pass with a pending row to move waits for the lock: {blocked:?}"
            );
            holder
                .execute("SELECT pg_advisory_unlock(7411002)", &[])
                .unwrap();
            id
        })
        .await
        .unwrap()
    };
    // Once the lock is free, the row is numbered (by this node's sequencer,
    // which also polls), right after the events before it.
    let mut after = events(&store).await;
    for _ in 0..100 {
        if after.len() > before.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = events(&store).await;
    }
    assert_eq!(after.len(), before.len() + 1, "row {pending_id} numbered");
    assert_gap_free(&after);
    assert_eq!(after.last().unwrap().correlation_id, "skip-test");
}

/// Many writers (several players, some shared) and readers polling the
/// outbox all at once: every reader sees every event exactly once, in one
/// order, without gaps, never finding later an event at or below a seq it
/// has passed; each player's events are in the order of its ledger.
pub async fn postgres_concurrent_writers_and_readers_agree_on_one_gap_free_order(store: Store) {
    let staff = Uuid::now_v7();
    let mut players = Vec::new();
    for _ in 0..6 {
        players.push(new_player(&store, at(0)).await.id);
    }
    let start = events(&store).await.last().map(|e| e.seq).unwrap_or(0);
    let writing = Arc::new(AtomicBool::new(true));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, writing) = (store.clone(), writing.clone());
        readers.push(tokio::spawn(async move {
            let mut seen: Vec<EventRecord> = Vec::new();
            loop {
                let done = !writing.load(Ordering::SeqCst);
                let after = seen.last().map(|e| e.seq).unwrap_or(start);
                let page = look(&store, move |tx| tx.events(after, 200, None)).await;
                for e in &page {
                    assert_eq!(e.seq, seen.last().map(|l| l.seq).unwrap_or(start) + 1);
                    seen.push(e.clone());
                }
                if page.is_empty() {
                    if done {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    let n = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..24 {
        let (store, players, n) = (store.clone(), players.clone(), n.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..15 {
                let p = players[(w + i) % players.len()];
                let k = n.fetch_add(1, Ordering::SeqCst);
                reward(
                    &store,
                    &ctx(at(1)),
                    p,
                    1 + (k % 9) as i64,
                    &format!("w{k}"),
                    staff,
                )
                .await
                .expect("reward");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let all = events(&store).await;
    assert_gap_free(&all);
    let tail: Vec<EventRecord> = all.into_iter().filter(|e| e.seq > start).collect();
    for r in readers {
        let seen = r.await.unwrap();
        assert_eq!(
            seen, tail,
            "every reader saw every event once, in one order"
        );
    }
    let ids: HashSet<Uuid> = tail.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), tail.len());
    // Each player's LEDGER_ENTRY_CREATED events follow its ledger's order.
    let mut by_player: HashMap<Uuid, Vec<String>> = HashMap::new();
    for e in tail
        .iter()
        .filter(|e| e.event_type == "LEDGER_ENTRY_CREATED")
    {
        let p: Uuid = serde_json::from_value(e.payload.value()["player_id"].clone()).unwrap();
        by_player.entry(p).or_default().push(
            e.payload.value()["ledger_entry_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(by_player.values().map(Vec::len).sum::<usize>(), 24 * 15);
    for p in &players {
        let ledger_order: Vec<String> = ledger(&store, *p)
            .await
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(
            by_player[p], ledger_order,
            "player {p}: events in commit order"
        );
    }
}

/// Schema 10 on an existing installation: every wallet entry gets the
/// escrow change it made, captures from their events; verify is clean.
pub async fn postgres_migration_gives_existing_wallet_entries_their_escrow_changes(store: Store) {
    use crate::wallet::{SCRIPTED_ESCROW_CHANGES, escrow_changes, scripted_wallet_history};
    let pid = scripted_wallet_history(&store).await;
    assert_eq!(escrow_changes(&store, pid).await, SCRIPTED_ESCROW_CHANGES);
    let pg = pg(&store);
    let url = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pg.raw_client().unwrap();
            c.batch_execute(
                "DROP FUNCTION outbox_sequence_pass(BIGINT);
                 ALTER TABLE loyalty_accounts DROP COLUMN chain_head;
                 DROP FUNCTION outbox_sequence_pass();
                 DROP TABLE event_archives;
                 ALTER TABLE activity_items ADD CONSTRAINT activity_items_event_seq_fkey
                     FOREIGN KEY (event_seq) REFERENCES outbox(seq);
                 DROP TRIGGER outbox_no_update ON outbox;
                 CREATE TRIGGER outbox_no_update BEFORE UPDATE OR DELETE ON outbox
                     FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
                 DROP FUNCTION outbox_archived_only();
                 DROP FUNCTION event_archives_append_only();
                 DROP TABLE webhook_deliveries;
                 DROP TABLE webhooks;
                 DROP TABLE approvals;
                 ALTER TABLE ledger_entries DROP COLUMN approved_by;
                 ALTER TABLE ledger_entries DROP COLUMN escrow_change;
                 DELETE FROM schema_migrations WHERE version >= 10;",
            )
            .unwrap();
            let db: String = c
                .query_one("SELECT current_database()", &[])
                .unwrap()
                .get(0);
            drop(c);
            db
        })
        .await
        .unwrap()
    };
    // Opening the store again migrates the database to schema 10.
    let base = std::env::var("LOYALTY_TEST_PG_URL").expect("postgres url");
    let url = crate::backends::with_database(&base, &url);
    let reopened = tokio::task::spawn_blocking(move || PgStore::open(&url, 2).expect("migrate"))
        .await
        .unwrap();
    let store2 = Store::Postgres(Arc::new(reopened));
    assert_eq!(escrow_changes(&store2, pid).await, SCRIPTED_ESCROW_CHANGES);
    let (_, drift, _) = store2
        .read(|tx| loyalty_store::ops::verify(tx, 100))
        .await
        .expect("verify");
    assert!(drift.is_empty(), "{drift:?}");
    let _ = std::thread::spawn(move || drop(store2)).join();
}
