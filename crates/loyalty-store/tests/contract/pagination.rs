//! `Tx::entries`: newest first, a `before_seq` cursor that walks every page
//! without gaps or duplicates, and filters that combine.

use loyalty_core::TransactionType;
use loyalty_store::{EntryQuery, LedgerEntry, Store};
use uuid::Uuid;

use crate::support::*;

struct Fixture {
    players: Vec<Uuid>,
    staff: Vec<Uuid>,
    /// Oldest first, as returned by `apply_entry`.
    entries: Vec<LedgerEntry>,
}

const N: usize = 36;

fn corr(i: usize) -> String {
    format!("corr-{}", i % 5)
}

async fn fixture(store: &Store) -> Fixture {
    let mut players = Vec::new();
    for _ in 0..3 {
        players.push(new_player(store, at(0)).await.id);
    }
    let staff = vec![Uuid::now_v7(), Uuid::now_v7()];
    let types = [
        TransactionType::ManualBonus,
        TransactionType::Gameplay,
        TransactionType::Adjustment,
        TransactionType::EscrowRefund,
    ];
    let mut entries = Vec::new();
    for i in 0..N {
        let mut c = ctx(at(100 + (i as i64 / 2) * 10));
        c.correlation_id = corr(i);
        let mut sp = spec(players[(i / 3) % 3], types[i % 4], 10 + i as i64);
        sp.staff_id = match i % 3 {
            0 => None,
            1 => Some(staff[0]),
            _ => Some(staff[1]),
        };
        entries.push(apply(store, &c, sp).await.expect("apply"));
    }
    Fixture {
        players,
        staff,
        entries,
    }
}

fn newest_first(entries: &[LedgerEntry], keep: impl Fn(&LedgerEntry) -> bool) -> Vec<LedgerEntry> {
    entries.iter().rev().filter(|e| keep(e)).cloned().collect()
}

fn assert_newest_first(page: &[LedgerEntry]) {
    assert!(
        page.windows(2).all(|w| w[0].seq > w[1].seq),
        "not strictly newest first"
    );
}

pub async fn entry_pages_walk_newest_first_without_gaps_or_duplicates(store: Store) {
    let f = fixture(&store).await;
    let want = newest_first(&f.entries, |_| true);
    assert_eq!(want.len(), N);

    for limit in [1, 4, 7, N as u32 - 1, N as u32, N as u32 + 1, 1000] {
        let got = walk(
            &store,
            EntryQuery {
                limit,
                ..EntryQuery::default()
            },
        )
        .await;
        assert_newest_first(&got);
        assert_eq!(got, want, "page size {limit}");
    }

    // Explicit pages: each starts right after the previous one's last entry.
    let mut cursor = None;
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let q = EntryQuery {
            before_seq: cursor,
            limit: 5,
            ..EntryQuery::default()
        };
        let page = look(&store, move |tx| tx.entries(&q)).await;
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 5);
        if let (Some(c), Some(first)) = (cursor, page.first()) {
            assert!(first.seq < c);
            // Nothing between the cursor and the page's first entry.
            assert!(!want.iter().any(|e| e.seq < c && e.seq > first.seq));
        }
        cursor = page.last().map(|e| e.seq);
        seen.extend(page);
    }
    assert_eq!(pages, N.div_ceil(5));
    assert_eq!(seen, want);

    // A cursor from the middle.
    let mid = want[10].seq;
    let got = walk(
        &store,
        EntryQuery {
            before_seq: Some(mid),
            limit: 6,
            ..EntryQuery::default()
        },
    )
    .await;
    assert_eq!(got, want[11..].to_vec());
    // A cursor at the oldest entry: nothing older.
    let oldest = want.last().unwrap().seq;
    let q = EntryQuery {
        before_seq: Some(oldest),
        limit: 10,
        ..EntryQuery::default()
    };
    assert!(look(&store, move |tx| tx.entries(&q)).await.is_empty());
}

pub async fn entries_filter_by_player_staff_correlation_type_and_time(store: Store) {
    let f = fixture(&store).await;
    let (p0, p1) = (f.players[0], f.players[1]);
    let (s0, s1) = (f.staff[0], f.staff[1]);
    let from = at(150);
    let to = at(250);

    type Pred = Box<dyn Fn(&LedgerEntry) -> bool>;
    let cases: Vec<(&str, EntryQuery, Pred)> = vec![
        (
            "player",
            EntryQuery {
                player_id: Some(p0),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.player_id == p0),
        ),
        (
            "staff",
            EntryQuery {
                staff_id: Some(s0),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.staff_id == Some(s0)),
        ),
        (
            "correlation",
            EntryQuery {
                correlation_id: Some(corr(2)),
                ..EntryQuery::default()
            },
            Box::new(|e| e.correlation_id == corr(2)),
        ),
        (
            "type",
            EntryQuery {
                transaction_type: Some(TransactionType::Gameplay),
                ..EntryQuery::default()
            },
            Box::new(|e| e.transaction_type == TransactionType::Gameplay),
        ),
        (
            "time window (from inclusive, to exclusive)",
            EntryQuery {
                from: Some(from),
                to: Some(to),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.created_at >= from && e.created_at < to),
        ),
        (
            "from only",
            EntryQuery {
                from: Some(to),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.created_at >= to),
        ),
        (
            "to only",
            EntryQuery {
                to: Some(from),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.created_at < from),
        ),
        (
            "player + type + from",
            EntryQuery {
                player_id: Some(p1),
                transaction_type: Some(TransactionType::ManualBonus),
                from: Some(from),
                ..EntryQuery::default()
            },
            Box::new(move |e| {
                e.player_id == p1
                    && e.transaction_type == TransactionType::ManualBonus
                    && e.created_at >= from
            }),
        ),
        (
            "staff + correlation + to",
            EntryQuery {
                staff_id: Some(s1),
                correlation_id: Some(corr(4)),
                to: Some(to),
                ..EntryQuery::default()
            },
            Box::new(move |e| {
                e.staff_id == Some(s1) && e.correlation_id == corr(4) && e.created_at < to
            }),
        ),
        (
            "player + staff",
            EntryQuery {
                player_id: Some(p0),
                staff_id: Some(s1),
                ..EntryQuery::default()
            },
            Box::new(move |e| e.player_id == p0 && e.staff_id == Some(s1)),
        ),
        (
            "no match",
            EntryQuery {
                player_id: Some(p0),
                correlation_id: Some("corr-none".into()),
                ..EntryQuery::default()
            },
            Box::new(|_| false),
        ),
        (
            "unknown player",
            EntryQuery {
                player_id: Some(Uuid::now_v7()),
                ..EntryQuery::default()
            },
            Box::new(|_| false),
        ),
    ];

    let mut non_trivial = 0;
    for (name, query, keep) in cases {
        let want = newest_first(&f.entries, keep);
        if !want.is_empty() && want.len() < N {
            non_trivial += 1;
        }
        for limit in [3, 1000] {
            let got = walk(
                &store,
                EntryQuery {
                    limit,
                    ..query.clone()
                },
            )
            .await;
            assert_newest_first(&got);
            assert_eq!(got, want, "{name}, page size {limit}");
        }
    }
    assert_eq!(non_trivial, 10, "the fixture exercises every filter");
}
