//! Every record type survives a round trip through the `Tx` trait unchanged.

use jiff::SignedDuration;
use loyalty_core::{GameSettings, LoyaltyStatus, Role, SlipStatus, Tier, TransactionType};
use loyalty_store::ops::{self, OpError};
use loyalty_store::{
    EventArchive, IdempotencyRecord, LedgerEntry, NewEvent, Player, RatingSlip, Staff, Store,
    StoreError, TokenSubject,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

pub async fn staff_and_tokens_round_trip(store: Store) {
    let staff = Staff {
        id: Uuid::now_v7(),
        name: "Ana Pit Boss".into(),
        role: Role::PitBoss,
        created_at: at(0),
        disabled_at: None,
    };
    let player_id = Uuid::now_v7();
    let (s, sid) = (staff.clone(), staff.id);
    store
        .write(move |tx| {
            tx.insert_staff(&s)?;
            tx.insert_token("hash-staff", TokenSubject::Staff(sid), at(1))?;
            tx.insert_token("hash-player", TokenSubject::Player(player_id), at(2))
        })
        .await
        .expect("insert staff and tokens");

    let (got, missing, t1, t2, t3) = look(&store, move |tx| {
        Ok((
            tx.staff(sid)?,
            tx.staff(Uuid::now_v7())?,
            tx.token("hash-staff")?,
            tx.token("hash-player")?,
            tx.token("hash-unknown")?,
        ))
    })
    .await;
    assert_eq!(got, Some(staff));
    assert_eq!(missing, None);
    assert_eq!(t1, Some(TokenSubject::Staff(sid)));
    assert_eq!(t2, Some(TokenSubject::Player(player_id)));
    assert_eq!(t3, None);

    // A token hash is unique.
    let dup = store
        .write(move |tx| tx.insert_token("hash-staff", TokenSubject::Staff(Uuid::now_v7()), at(3)))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    barrier(&store).await;
    let still = look(&store, |tx| tx.token("hash-staff")).await;
    assert_eq!(still, Some(TokenSubject::Staff(sid)));

    // The operation stores the staff member, the token and an event together.
    let c = ctx(at(10));
    let created = op(&store, move |tx| {
        ops::create_staff(tx, &c, name("Sam Supervisor"), Role::Supervisor, "hash-sam")
    })
    .await
    .expect("create staff");
    let cid = created.id;
    let (got, token) = look(&store, move |tx| {
        Ok((tx.staff(cid)?, tx.token("hash-sam")?))
    })
    .await;
    assert_eq!(got, Some(created));
    assert_eq!(token, Some(TokenSubject::Staff(cid)));
    let evs = events(&store).await;
    assert!(
        evs.iter()
            .any(|e| e.event_type == "STAFF_CREATED" && e.payload.value()["staff_id"] == json!(cid))
    );
}

pub async fn players_round_trip_and_card_numbers_are_unique(store: Store) {
    let c = ctx(at(0));
    let c1 = c.clone();
    let alice = op(&store, move |tx| {
        ops::create_player(tx, &c1, name("Alice Ünïcödé 🂡"), Some(card("C-1001")))
    })
    .await
    .expect("create alice");
    assert_eq!(alice.card_number.as_deref(), Some("C-1001"));
    assert_eq!(alice.status.as_str(), "ACTIVE");
    assert_eq!(alice.created_at, at(0));

    let aid = alice.id;
    let (got, acc) = look(&store, move |tx| Ok((tx.player(aid)?, tx.account(aid)?))).await;
    assert_eq!(got, Some(alice.clone()));
    let acc = acc.expect("account created with the player");
    assert_eq!(
        (
            acc.current_balance,
            acc.escrow_balance,
            acc.lifetime_points,
            acc.tier,
            acc.entry_count
        ),
        (0, 0, 0, Tier::Bronze, 0)
    );
    assert_eq!(acc.updated_at, at(0));

    // The same card number again: OpError::Conflict, and nothing is created.
    let before = events(&store).await.len();
    let c2 = c.clone();
    let dup = op(&store, move |tx| {
        ops::create_player(tx, &c2, name("Mallory"), Some(card("C-1001")))
    })
    .await;
    assert!(matches!(dup, Err(OpError::Conflict(_))), "{dup:?}");
    assert_eq!(events(&store).await.len(), before);

    // The raw primitive reports StoreError::Conflict.
    let raw = Player {
        id: Uuid::now_v7(),
        display_name: "Mallory".into(),
        card_number: Some("C-1001".into()),
        status: loyalty_core::PlayerStatus::Active,
        created_at: at(1),
    };
    let rid = raw.id;
    let dup = store.write(move |tx| tx.insert_player(&raw)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    barrier(&store).await;
    assert_eq!(look(&store, move |tx| tx.player(rid)).await, None);

    // Players without a card number do not conflict with each other.
    let p1 = new_player(&store, at(2)).await;
    let p2 = new_player(&store, at(2)).await;
    assert_ne!(p1.id, p2.id);
    assert_eq!(p1.card_number, None);
    let (id1, id2) = (p1.id, p2.id);
    let (g1, g2) = look(&store, move |tx| Ok((tx.player(id1)?, tx.player(id2)?))).await;
    assert_eq!((g1, g2), (Some(p1), Some(p2)));

    // Exactly three accounts exist.
    let (checked, drift, _) = store.read(|tx| ops::verify(tx, 10)).await.expect("verify");
    assert_eq!(checked, 3);
    assert!(drift.is_empty(), "{drift:?}");
    assert_eq!(look(&store, |tx| tx.player(Uuid::now_v7())).await, None);
}

pub async fn tables_round_trip_with_exact_decimals(store: Store) {
    let settings = GameSettings {
        house_edge: dec("2.7"),
        average_rounds_per_hour: 1000,
        points_conversion_rate: dec("0.0001"),
        point_multiplier: dec("1.25"),
        seats_available: 3,
    };
    let table = new_table(&store, at(0), settings.clone()).await;
    let tid = table.id;
    let got = look(&store, move |tx| tx.table(tid)).await.expect("table");
    assert_eq!(got, table);
    assert_eq!(got.settings, settings);
    assert_eq!(got.settings.house_edge.to_string(), "2.7");
    assert_eq!(got.settings.points_conversion_rate.to_string(), "0.0001");
    assert_eq!(got.settings.point_multiplier.to_string(), "1.25");

    let c = ctx(at(60));
    let patched = op(&store, move |tx| {
        ops::patch_table(tx, &c, loyalty_core::TableId::of(tid), |t| {
            t.name = "BJ-2".into();
            t.settings.house_edge = dec("0.0001");
            t.settings.seats_available = 0;
        })
    })
    .await
    .expect("patch table");
    let got = look(&store, move |tx| tx.table(tid)).await.expect("table");
    assert_eq!(got, patched);
    assert_eq!(got.name, "BJ-2");
    assert_eq!(got.settings.house_edge.to_string(), "0.0001");
    assert_eq!(got.created_at, at(0));
    assert_eq!(got.updated_at, at(60));
    assert_eq!(look(&store, |tx| tx.table(Uuid::now_v7())).await, None);
}

pub async fn slips_round_trip_with_exact_game_settings(store: Store) {
    let player = new_player(&store, at(0)).await;
    let settings = GameSettings {
        house_edge: dec("2.7"),
        average_rounds_per_hour: 60,
        points_conversion_rate: dec("0.0001"),
        point_multiplier: dec("1.5"),
        seats_available: 5,
    };
    let table = new_table(&store, at(0), settings.clone()).await;

    // Every field set, through the raw primitive.
    let slip = RatingSlip {
        id: Uuid::now_v7(),
        player_id: player.id,
        table_id: table.id,
        seat_number: Some(4),
        status: SlipStatus::Closed,
        average_bet: dec("12.3456"),
        started_at: at(100),
        ended_at: Some(at(3700)),
        accumulated_us: 3_599_999_999,
        segment_started_at: Some(at(200) + SignedDuration::from_micros(7)),
        game_settings: settings.clone(),
        loyalty_status: LoyaltyStatus::Pending,
        ledger_entry_id: Some(Uuid::now_v7()),
        accrual_attempts: 3,
        next_retry_at: Some(at(3800)),
        opened_by: Some(Uuid::now_v7()),
        closed_correlation_id: Some("corr-close".into()),
        corrections: vec![loyalty_store::SlipCorrection {
            kind: "CORRECT".into(),
            reason: "average bet was misread".into(),
            staff_id: Some(Uuid::now_v7()),
            at: at(3750),
            correlation_id: "corr-fix".into(),
            average_bet_before: dec("10"),
            started_at_before: at(90),
            ended_at_before: Some(at(3690)),
            average_bet_after: dec("12.3456"),
            started_at_after: at(100),
            ended_at_after: Some(at(3700)),
            points_reversed: 17,
            points_accrued: Some(21),
            reversal_entry_id: Some(Uuid::now_v7()),
            accrual_entry_id: Some(Uuid::now_v7()),
        }],
        created_at: at(100),
        updated_at: at(3700),
    };
    let s = slip.clone();
    store
        .write(move |tx| tx.insert_slip(&s))
        .await
        .expect("insert slip");
    let sid = slip.id;
    let got = look(&store, move |tx| tx.slip(sid)).await.expect("slip");
    assert_eq!(got, slip);
    assert_eq!(got.average_bet.to_string(), "12.3456");
    assert_eq!(got.game_settings.house_edge.to_string(), "2.7");
    assert_eq!(
        got.game_settings.points_conversion_rate.to_string(),
        "0.0001"
    );

    // update_slip stores the mutable fields.
    let mut changed = got.clone();
    changed.loyalty_status = LoyaltyStatus::Accrued;
    changed.next_retry_at = None;
    changed.average_bet = dec("0.0001");
    changed.accrual_attempts = 4;
    changed.updated_at = at(4000);
    let c2 = changed.clone();
    store
        .write(move |tx| tx.update_slip(&c2))
        .await
        .expect("update slip");
    assert_eq!(look(&store, move |tx| tx.slip(sid)).await, Some(changed));

    // open_slip snapshots the table's settings; later table changes do not
    // reach the slip.
    let c = ctx(at(5000));
    let input = ops::OpenSlip {
        player_id: loyalty_core::PlayerId::of(player.id),
        table_id: loyalty_core::TableId::of(table.id),
        average_bet: bet("25.50"),
        seat_number: None,
        started_at: None,
    };
    let opened = op(&store, move |tx| ops::open_slip(tx, &c, input))
        .await
        .expect("open slip");
    let tid = table.id;
    let c = ctx(at(5001));
    op(&store, move |tx| {
        ops::patch_table(tx, &c, loyalty_core::TableId::of(tid), |t| {
            t.settings.house_edge = dec("50")
        })
    })
    .await
    .expect("patch table");
    let oid = opened.id;
    let got = look(&store, move |tx| tx.slip(oid)).await.expect("slip");
    assert_eq!(got, opened);
    assert_eq!(got.game_settings, settings);
    assert_eq!(got.average_bet.to_string(), "25.50");
    assert_eq!(got.status, SlipStatus::Open);
    assert_eq!(got.loyalty_status, LoyaltyStatus::None);
    assert_eq!(got.segment_started_at, Some(at(5000)));
    assert_eq!(look(&store, |tx| tx.slip(Uuid::now_v7())).await, None);
}

fn full_entry(player_id: Uuid, slip_id: Uuid, key: &str, tt: TransactionType) -> LedgerEntry {
    LedgerEntry {
        seq: 0,
        id: Uuid::now_v7(),
        player_id,
        transaction_type: tt,
        event_type: "RATING_SLIP_COMPLETED".into(),
        points_change: 25,
        reason: Some("a reason with ünïcode".into()),
        source: "rating_slip".into(),
        staff_id: Some(Uuid::now_v7()),
        rating_slip_id: Some(slip_id),
        idempotency_key: Some(key.into()),
        balance_before: 100,
        balance_after: 125,
        tier_before: Tier::Silver,
        tier_after: Tier::Gold,
        lifetime_after: 5_010,
        escrow_id: Some(Uuid::now_v7()),
        correlation_id: "corr-entry".into(),
        created_at: at(42) + SignedDuration::from_micros(123_456),
        prev_hash: loyalty_store::chain::GENESIS.into(),
        hash: "ab".repeat(32),
        escrow_change: -7,
        approved_by: Some(Uuid::now_v7()),
    }
}

pub async fn ledger_entries_round_trip_and_keys_are_unique(store: Store) {
    let player = new_player(&store, at(0)).await;
    let slip_id = Uuid::now_v7();
    let mut first = full_entry(player.id, slip_id, "key-1", TransactionType::Gameplay);
    let e = first.clone();
    first.seq = store
        .write(move |tx| tx.insert_entry(&e))
        .await
        .expect("insert entry");
    assert!(first.seq > 0);

    let (id, pid) = (first.id, player.id);
    let (by_id, by_key, missing, page) = look(&store, move |tx| {
        Ok((
            tx.entry(id)?,
            tx.entry_by_key("key-1")?,
            tx.entry_by_key("key-unknown")?,
            tx.entries(&loyalty_store::EntryQuery {
                player_id: Some(pid),
                limit: 10,
                ..Default::default()
            })?,
        ))
    })
    .await;
    assert_eq!(by_id.as_ref(), Some(&first));
    assert_eq!(by_key.as_ref(), Some(&first));
    assert_eq!(missing, None);
    assert_eq!(page, vec![first.clone()]);

    // The idempotency key is unique.
    let mut dup = full_entry(
        player.id,
        Uuid::now_v7(),
        "key-1",
        TransactionType::ManualBonus,
    );
    dup.rating_slip_id = None;
    let r = store.write(move |tx| tx.insert_entry(&dup)).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");

    // A slip has at most one GAMEPLAY entry, whatever its key.
    let second_gameplay = full_entry(player.id, slip_id, "key-2", TransactionType::Gameplay);
    let r = store
        .write(move |tx| tx.insert_entry(&second_gameplay))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");

    // Other types may refer to the same slip; entries without a key coexist.
    let mut adj = full_entry(player.id, slip_id, "unused", TransactionType::Adjustment);
    adj.idempotency_key = None;
    adj.staff_id = None;
    adj.escrow_id = None;
    adj.reason = None;
    let mut adj2 = adj.clone();
    adj2.id = Uuid::now_v7();
    let (a1, a2) = (adj.clone(), adj2.clone());
    let (s1, s2) = store
        .write(move |tx| Ok::<_, StoreError>((tx.insert_entry(&a1)?, tx.insert_entry(&a2)?)))
        .await
        .expect("insert entries without keys");
    assert!(first.seq < s1 && s1 < s2, "sequence increases");
    adj.seq = s1;
    adj2.seq = s2;
    let (id1, id2) = (adj.id, adj2.id);
    let (g1, g2) = look(&store, move |tx| Ok((tx.entry(id1)?, tx.entry(id2)?))).await;
    assert_eq!((g1, g2), (Some(adj), Some(adj2)));
    assert_eq!(look(&store, |tx| tx.entry(Uuid::now_v7())).await, None);
}

pub async fn events_round_trip_in_sequence(store: Store) {
    let new = |t: &'static str, key: Option<&str>, n: i64| NewEvent {
        event_id: Uuid::now_v7(),
        event_type: t,
        version: 1,
        occurred_at: at(n) + SignedDuration::from_micros(n),
        correlation_id: format!("corr-{n}"),
        idempotency_key: key.map(str::to_string),
        source: "contract_test",
        payload: loyalty_core::events::Payload::of(
            &json!({"n": n, "nested": {"list": [1, 2, 3]}, "text": "ü", "none": null}),
        ),
    };
    let written = vec![
        new("A_HAPPENED", None, 1),
        new("B_HAPPENED", Some("idem-1"), 2),
        new("A_HAPPENED", Some("idem-2"), 3),
    ];
    let w = written.clone();
    store
        .write(move |tx| {
            w.iter()
                .map(|e| tx.append_event(e.clone()))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("append events");

    let all = look(&store, |tx| tx.events(0, 100, None)).await;
    assert_eq!(all.len(), 3);
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1), "{seqs:?}");
    for ((got, want), seq) in all.iter().zip(&written).zip(&seqs) {
        assert_eq!(got.seq, *seq);
        assert_eq!(got.event_id, want.event_id);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(got.version, want.version);
        assert_eq!(got.occurred_at, want.occurred_at);
        assert_eq!(got.correlation_id, want.correlation_id);
        assert_eq!(got.idempotency_key, want.idempotency_key);
        assert_eq!(got.source, want.source);
        assert_eq!(got.payload, want.payload);
    }

    let first = seqs[0];
    let after = look(&store, move |tx| tx.events(first, 100, None)).await;
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[1..]);
    let limited = look(&store, |tx| tx.events(0, 2, None)).await;
    assert_eq!(limited.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[..2]);
    let only_a = look(&store, |tx| tx.events(0, 100, Some("A_HAPPENED"))).await;
    assert_eq!(
        only_a.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[0], seqs[2]]
    );
    let last = seqs[2];
    assert!(
        look(&store, move |tx| tx.events(last, 100, None))
            .await
            .is_empty()
    );
}

pub async fn activity_items_reference_outbox_events_once_each(store: Store) {
    let (ana, bo) = (Uuid::now_v7(), Uuid::now_v7());
    store
        .write(move |tx| (0..5).try_for_each(|n| tx.append_event(plain_event(n))))
        .await
        .expect("append events");
    let seqs: Vec<i64> = events(&store).await.iter().map(|e| e.seq).collect();
    let s = seqs.clone();
    let firsts = store
        .write(move |tx| {
            // Ana sees events 0, 2, 3, 4; Bo sees event 1. Event 3 twice.
            [(ana, 0), (bo, 1), (ana, 2), (ana, 3), (ana, 3), (ana, 4)]
                .into_iter()
                .map(|(p, i)| tx.insert_activity_item(p, s[i]))
                .collect::<Result<Vec<bool>, _>>()
        })
        .await
        .expect("insert activity items");
    assert_eq!(firsts, vec![true, true, true, true, false, true]);

    let s = seqs.clone();
    let (all, page, after_page, bo_items, nobody) = look(&store, move |tx| {
        Ok((
            tx.activity_events(ana, None, 100)?,
            tx.activity_events(ana, None, 2)?,
            tx.activity_events(ana, Some(s[3]), 100)?,
            tx.activity_events(bo, None, 100)?,
            tx.activity_events(Uuid::now_v7(), None, 100)?,
        ))
    })
    .await;
    let ns = |evs: &[loyalty_store::EventRecord]| -> Vec<i64> {
        evs.iter()
            .map(|e| e.payload.value()["n"].as_i64().unwrap())
            .collect()
    };
    // Newest first, each event once, with the outbox's own record.
    assert_eq!(ns(&all), vec![4, 3, 2, 0]);
    assert_eq!(all[0].seq, seqs[4]);
    assert_eq!(all[0].correlation_id, "corr-4");
    assert_eq!(ns(&page), vec![4, 3]);
    assert_eq!(ns(&after_page), vec![2, 0]);
    assert_eq!(ns(&bo_items), vec![1]);
    assert!(nobody.is_empty());

    // Many at once: new ones added, one given twice added once, ones
    // already there left as they are.
    store
        .write(move |tx| (5..8).try_for_each(|n| tx.append_event(plain_event(n))))
        .await
        .expect("append more events");
    let seqs: Vec<i64> = events(&store).await.iter().map(|e| e.seq).collect();
    let s = seqs.clone();
    store
        .write(move |tx| {
            tx.insert_activity_items(&[
                (bo, s[5]),
                (bo, s[6]),
                (bo, s[6]),
                (ana, s[4]),
                (bo, s[1]),
                (ana, s[7]),
            ])
        })
        .await
        .expect("insert activity items at once");
    let (ana_items, bo_items) = look(&store, move |tx| {
        Ok((
            tx.activity_events(ana, None, 100)?,
            tx.activity_events(bo, None, 100)?,
        ))
    })
    .await;
    assert_eq!(ns(&ana_items), vec![7, 4, 3, 2, 0]);
    assert_eq!(ns(&bo_items), vec![6, 5, 1]);
    store
        .write(|tx| tx.insert_activity_items(&[]))
        .await
        .expect("nothing to insert");
}

/// Schema 13: an event leaves the outbox only once an archive covering it
/// is recorded; archives are recorded only in order; the activity items of
/// archived events go with them; numbering goes on after the head.
pub async fn archived_events_leave_the_outbox_only_when_recorded(store: Store) {
    let ana = Uuid::now_v7();
    store
        .write(move |tx| (0..6).try_for_each(|n| tx.append_event(plain_event(n))))
        .await
        .expect("append events");
    let seqs: Vec<i64> = events(&store).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 6);
    let archive = |first: i64, last: i64| EventArchive {
        first_seq: first,
        last_seq: last,
        file: format!("events-{first}-{last}.jsonl"),
        sha256: "00".repeat(32),
        bytes: 10,
        archived_at: at(100),
    };

    // Nothing recorded: no event may be deleted.
    let (first, third) = (seqs[0], seqs[2]);
    let refused = store
        .write(move |tx| tx.delete_archived_events(first, first, &[]))
        .await;
    assert!(
        refused.is_err(),
        "deleting an unarchived event: {refused:?}"
    );

    // An archive must start right after the last one (here: at seq 1).
    let skip = archive(first + 1, third);
    let out_of_order = store.write(move |tx| tx.insert_event_archive(&skip)).await;
    assert!(
        matches!(out_of_order, Err(StoreError::Conflict(_))),
        "{out_of_order:?}"
    );
    let a1 = archive(first, third);
    store
        .write(move |tx| tx.insert_event_archive(&a1))
        .await
        .expect("record the first archive");
    let again = archive(first, third);
    let twice = store.write(move |tx| tx.insert_event_archive(&again)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");

    // Past the archive: still refused, and the whole delete rolls back.
    let fourth = seqs[3];
    let past = store
        .write(move |tx| tx.delete_archived_events(first, fourth, &[]))
        .await;
    assert!(past.is_err(), "deleting past the archive: {past:?}");
    assert_eq!(events(&store).await.len(), 6);

    // Covered: the events and their activity items go.
    let s = seqs.clone();
    store
        .write(move |tx| {
            s.iter()
                .try_for_each(|q| tx.insert_activity_item(ana, *q).map(|_| ()))
        })
        .await
        .expect("activity items");
    let keys: Vec<(Uuid, i64)> = seqs[..3].iter().map(|q| (ana, *q)).collect();
    let deleted = store
        .write(move |tx| tx.delete_archived_events(first, third, &keys))
        .await
        .expect("delete archived events");
    assert_eq!(deleted, 3);
    // The items of the archived events are gone: inserting them again
    // counts as new (and they are deleted again).
    let s = seqs.clone();
    let again = store
        .write(move |tx| {
            s.iter()
                .map(|q| tx.insert_activity_item(ana, *q))
                .collect::<Result<Vec<bool>, _>>()
        })
        .await
        .expect("activity items again");
    assert_eq!(again, vec![true, true, true, false, false, false]);
    let keys: Vec<(Uuid, i64)> = seqs[..3].iter().map(|q| (ana, *q)).collect();
    store
        .write(move |tx| tx.delete_archived_events(first, third, &keys))
        .await
        .expect("delete the items again");
    let (left, archives, oldest, head, feed) = look(&store, move |tx| {
        Ok((
            tx.events(0, 100, None)?,
            tx.event_archives()?,
            tx.first_outbox_seq()?,
            tx.outbox_head()?,
            tx.activity_events(ana, None, 100)?,
        ))
    })
    .await;
    assert_eq!(
        left.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seqs[3..].to_vec()
    );
    assert_eq!(archives, vec![archive(first, third)]);
    assert_eq!(archives[0].events(), 3);
    assert_eq!(oldest, Some(seqs[3]));
    assert_eq!(head, seqs[5]);
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[5], seqs[4], seqs[3]]
    );

    // Numbering goes on after the head, not after what is left.
    store
        .write(move |tx| tx.append_event(plain_event(6)))
        .await
        .expect("append after archiving");
    let after = events(&store).await;
    assert_eq!(after.last().map(|e| e.seq), Some(seqs[5] + 1));
}

pub async fn idempotency_records_round_trip_and_purge(store: Store) {
    let rec = |n: i64| IdempotencyRecord {
        fingerprint: format!("sha256:{n:064}"),
        status: 201,
        body: vec![0, 159, 146, 150, 255, b'{', b'}', n as u8],
        created_at: at(n),
    };
    let (r1, r2, r3) = (rec(1), rec(2), rec(3));
    let (w1, w2, w3) = (r1.clone(), r2.clone(), r3.clone());
    store
        .write(move |tx| {
            tx.insert_idempotency_record("staff:a:POST /v1/x", "k1", &w1)?;
            tx.insert_idempotency_record("staff:b:POST /v1/x", "k1", &w2)?;
            tx.insert_idempotency_record("staff:a:POST /v1/x", "k2", &w3)
        })
        .await
        .expect("insert records");

    let got = look(&store, |tx| {
        Ok((
            tx.idempotency_record("staff:a:POST /v1/x", "k1")?,
            tx.idempotency_record("staff:b:POST /v1/x", "k1")?,
            tx.idempotency_record("staff:a:POST /v1/x", "k2")?,
            tx.idempotency_record("staff:c:POST /v1/x", "k1")?,
        ))
    })
    .await;
    assert_eq!(got, (Some(r1.clone()), Some(r2), Some(r3.clone()), None));

    // (scope, key) is unique.
    let again = rec(9);
    let dup = store
        .write(move |tx| tx.insert_idempotency_record("staff:a:POST /v1/x", "k1", &again))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    barrier(&store).await;
    assert_eq!(
        look(&store, |tx| tx
            .idempotency_record("staff:a:POST /v1/x", "k1"))
        .await,
        Some(r1)
    );

    // Purging removes exactly the records created before the instant.
    let purged = store
        .write(|tx| tx.purge_idempotency_records(at(3)))
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let got = look(&store, |tx| {
        Ok((
            tx.idempotency_record("staff:a:POST /v1/x", "k1")?,
            tx.idempotency_record("staff:b:POST /v1/x", "k1")?,
            tx.idempotency_record("staff:a:POST /v1/x", "k2")?,
        ))
    })
    .await;
    assert_eq!(got, (None, None, Some(r3)));
    let purged = store
        .write(|tx| tx.purge_idempotency_records(at(3)))
        .await
        .expect("purge again");
    assert_eq!(purged, 0);
}
