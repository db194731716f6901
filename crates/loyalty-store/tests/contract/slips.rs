//! Rating slips (DESIGN §3.2): completion closes and accrues in one
//! transaction, once; a failed accrual leaves the slip closed and pending
//! until recovery accrues it, once.

use jiff::{SignedDuration, Timestamp};
use loyalty_core::{LoyaltyStatus, SlipStatus, Tier, TierTable, TransactionType};
use loyalty_store::ops::{self, Completion, LoyaltyResult, OpCtx, OpError, OpenSlip};
use loyalty_store::{LedgerEntry, RatingSlip, Store};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

pub async fn open_slip_at(
    store: &Store,
    player_id: Uuid,
    table_id: Uuid,
    bet: &str,
    now: Timestamp,
    started_at: Option<Timestamp>,
) -> RatingSlip {
    let c = ctx(now);
    let input = OpenSlip {
        player_id: loyalty_core::PlayerId::of(player_id),
        table_id: loyalty_core::TableId::of(table_id),
        average_bet: crate::support::bet(bet),
        seat_number: Some(2),
        started_at,
    };
    op(store, move |tx| ops::open_slip(tx, &c, input))
        .await
        .expect("open slip")
}

pub async fn complete(
    store: &Store,
    c: &OpCtx,
    id: Uuid,
    ended_at: Option<Timestamp>,
) -> Result<Completion, OpError> {
    let c = c.clone();
    op(store, move |tx| {
        ops::complete_slip(tx, &c, loyalty_core::SlipId::of(id), ended_at)
    })
    .await
}

pub async fn recover(store: &Store, c: &OpCtx, id: Uuid) -> Result<Completion, OpError> {
    let c = c.clone();
    op(store, move |tx| {
        ops::recover_slip(tx, &c, loyalty_core::SlipId::of(id))
    })
    .await
}

async fn slip(store: &Store, id: Uuid) -> RatingSlip {
    barrier(store).await;
    look(store, move |tx| tx.slip(id))
        .await
        .expect("slip exists")
}

fn accrued(c: Result<Completion, OpError>) -> (RatingSlip, LoyaltyResult, LedgerEntry) {
    match c {
        Ok(Completion::Accrued {
            slip,
            loyalty,
            entry,
        }) => (slip, loyalty, entry),
        other => panic!("expected Accrued, got {other:?}"),
    }
}

fn pending(c: Result<Completion, OpError>) -> (RatingSlip, String) {
    match c {
        Ok(Completion::Pending { slip, error }) => (slip, error),
        other => panic!("expected Pending, got {other:?}"),
    }
}

async fn slip_op(
    store: &Store,
    now: Timestamp,
    id: Uuid,
    what: &'static str,
) -> Result<RatingSlip, OpError> {
    let c = ctx(now);
    op(store, move |tx| match what {
        "pause" => ops::pause_slip(tx, &c, loyalty_core::SlipId::of(id)),
        "resume" => ops::resume_slip(tx, &c, loyalty_core::SlipId::of(id)),
        "bet" => ops::set_average_bet(tx, &c, loyalty_core::SlipId::of(id), bet("100")),
        _ => unreachable!(),
    })
    .await
}

pub async fn complete_slip_closes_and_accrues_exactly_once(store: Store) {
    let tiers = TierTable::default();
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let opened = open_slip_at(&store, player.id, table.id, "100", at(0), None).await;
    let sid = opened.id;

    let c = ctx(at(3600));
    let (closed, loyalty, entry) = accrued(complete(&store, &c, sid, None).await);
    // 100 × 2.7 % × 60 rounds × 10 × 1.0 (BRONZE) = 1,620.
    assert_eq!(entry.points_change, 1_620);
    assert_eq!(entry.transaction_type, TransactionType::Gameplay);
    assert_eq!(entry.event_type, "RATING_SLIP_COMPLETED");
    assert_eq!(entry.source, "rating_slip");
    assert_eq!(entry.rating_slip_id, Some(sid));
    assert_eq!(entry.idempotency_key, Some(ops::gameplay_key(sid)));
    assert_eq!((entry.balance_before, entry.balance_after), (0, 1_620));
    assert_eq!(
        (entry.tier_before, entry.tier_after),
        (Tier::Bronze, Tier::Silver)
    );
    assert_eq!(entry.lifetime_after, 1_620);
    assert_eq!(entry.correlation_id, c.correlation_id);
    assert_eq!(loyalty, LoyaltyResult::from_entry(&entry, &tiers, false));
    assert_eq!(
        loyalty.tier_progress, 16,
        "(1620-1000)/(5000-1000) = 15.5 % → 16"
    );

    assert_eq!(closed.status, SlipStatus::Closed);
    assert_eq!(closed.loyalty_status, LoyaltyStatus::Accrued);
    assert_eq!(closed.ledger_entry_id, Some(entry.id));
    assert_eq!(closed.ended_at, Some(at(3600)));
    assert_eq!(closed.accumulated_us, 3_600_000_000);
    assert_eq!(closed.segment_started_at, None);
    assert_eq!(closed.next_retry_at, None);
    assert_eq!(closed.closed_correlation_id, Some(c.correlation_id.clone()));
    assert_eq!(slip(&store, sid).await, closed, "stored as returned");
    assert_eq!(ledger(&store, player.id).await, vec![entry.clone()]);
    let acc = account(&store, player.id).await;
    assert_eq!(
        (acc.current_balance, acc.lifetime_points, acc.tier),
        (1_620, 1_620, Tier::Silver)
    );

    let evs = events(&store).await;
    assert_gap_free(&evs);
    let types: Vec<&str> = evs
        .iter()
        .filter(|e| e.correlation_id == c.correlation_id)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "RATING_SLIP_COMPLETED",
            "LEDGER_ENTRY_CREATED",
            "BALANCE_UPDATED",
            "TIER_CHANGED"
        ]
    );
    let completed = evs
        .iter()
        .find(|e| e.event_type == "RATING_SLIP_COMPLETED")
        .unwrap();
    assert_eq!(completed.payload.value()["rating_slip_id"], json!(sid));
    assert_eq!(completed.payload.value()["seconds_played"], json!(3600));

    // Completing again replays the first result and writes nothing.
    for fail_accrual in [false, true] {
        let mut again = ctx(at(4000));
        again.fail_accrual = fail_accrual;
        let (s2, l2, e2) = accrued(complete(&store, &again, sid, None).await);
        assert!(l2.idempotent_replay);
        assert_eq!(l2, LoyaltyResult::from_entry(&entry, &tiers, true));
        assert_eq!(e2, entry);
        assert_eq!(s2, closed);
    }
    assert_eq!(ledger(&store, player.id).await.len(), 1);
    assert_eq!(
        events(&store).await.len(),
        evs.len(),
        "a replay emits nothing"
    );
    assert_eq!(account(&store, player.id).await.current_balance, 1_620);

    // Another slip after the fact: explicit times, and the tier before the
    // accrual (SILVER, ×1.25) applies: 100 × 2.7 % × 30 × 10 × 1.25 = 1,012.5 → 1,013.
    let late = open_slip_at(&store, player.id, table.id, "100", at(5000), Some(at(4000))).await;
    assert_eq!(late.started_at, at(4000));
    let c = ctx(at(9000));
    let (closed, _, e) = accrued(complete(&store, &c, late.id, Some(at(5800))).await);
    assert_eq!(e.points_change, 1_013);
    assert_eq!(closed.ended_at, Some(at(5800)));
    assert_eq!(closed.accumulated_us, 1_800_000_000);
    assert_eq!((e.balance_before, e.balance_after), (1_620, 2_633));
}

pub async fn paused_time_does_not_count_and_the_final_bet_is_used(store: Store) {
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let sid = open_slip_at(&store, player.id, table.id, "50", at(0), None)
        .await
        .id;

    let paused = slip_op(&store, at(1800), sid, "pause")
        .await
        .expect("pause");
    assert_eq!(paused.status, SlipStatus::Paused);
    assert_eq!(paused.accumulated_us, 1_800_000_000);
    assert_eq!(paused.segment_started_at, None);
    assert_eq!(slip(&store, sid).await, paused);
    let again = slip_op(&store, at(1900), sid, "pause").await;
    assert!(matches!(again, Err(OpError::Conflict(_))), "{again:?}");

    let bet = slip_op(&store, at(2000), sid, "bet")
        .await
        .expect("set bet");
    assert_eq!(bet.average_bet, Decimal::from(100));
    assert_eq!(bet.status, SlipStatus::Paused);
    assert_eq!(slip(&store, sid).await, bet);

    let resumed = slip_op(&store, at(3600), sid, "resume")
        .await
        .expect("resume");
    assert_eq!(resumed.status, SlipStatus::Open);
    assert_eq!(resumed.segment_started_at, Some(at(3600)));
    assert_eq!(resumed.accumulated_us, 1_800_000_000);
    let again = slip_op(&store, at(3601), sid, "resume").await;
    assert!(matches!(again, Err(OpError::Conflict(_))), "{again:?}");

    // 1,800 s before the pause + 1,800 s after the resume, at the final bet.
    let (closed, _, e) = accrued(complete(&store, &ctx(at(5400)), sid, None).await);
    assert_eq!(closed.accumulated_us, 3_600_000_000);
    assert_eq!(e.points_change, 1_620);

    let types: Vec<String> = events(&store)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .filter(|t| t.starts_with("RATING_SLIP_"))
        .collect();
    assert_eq!(
        types,
        [
            "RATING_SLIP_OPENED",
            "RATING_SLIP_PAUSED",
            "RATING_SLIP_UPDATED",
            "RATING_SLIP_RESUMED",
            "RATING_SLIP_COMPLETED"
        ]
    );
}

pub async fn closed_slips_refuse_changes(store: Store) {
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let sid = open_slip_at(&store, player.id, table.id, "10", at(0), None)
        .await
        .id;
    accrued(complete(&store, &ctx(at(600)), sid, None).await);
    let closed = slip(&store, sid).await;
    let n_events = events(&store).await.len();
    for what in ["pause", "resume", "bet"] {
        let r = slip_op(&store, at(700), sid, what).await;
        assert!(matches!(r, Err(OpError::SlipNotOpen)), "{what}: {r:?}");
    }
    assert_eq!(slip(&store, sid).await, closed);
    assert_eq!(events(&store).await.len(), n_events);

    let unknown = Uuid::now_v7();
    for what in ["pause", "resume", "bet"] {
        let r = slip_op(&store, at(700), unknown, what).await;
        assert!(
            matches!(r, Err(OpError::NotFound("rating slip"))),
            "{what}: {r:?}"
        );
    }
    let r = complete(&store, &ctx(at(700)), unknown, None).await;
    assert!(matches!(r, Err(OpError::NotFound("rating slip"))), "{r:?}");

    // Opening a slip needs an existing player and table.
    let c = ctx(at(800));
    let bad_player = OpenSlip {
        player_id: loyalty_core::PlayerId::of(Uuid::now_v7()),
        table_id: loyalty_core::TableId::of(table.id),
        average_bet: bet("1"),
        seat_number: None,
        started_at: None,
    };
    let r = op(&store, move |tx| ops::open_slip(tx, &c, bad_player)).await;
    assert!(matches!(r, Err(OpError::NotFound("player"))), "{r:?}");
    let c = ctx(at(800));
    let bad_table = OpenSlip {
        player_id: loyalty_core::PlayerId::of(player.id),
        table_id: loyalty_core::TableId::of(Uuid::now_v7()),
        average_bet: bet("1"),
        seat_number: None,
        started_at: None,
    };
    let r = op(&store, move |tx| ops::open_slip(tx, &c, bad_table)).await;
    assert!(matches!(r, Err(OpError::NotFound("table"))), "{r:?}");
    // Neither exists: the player is reported first.
    let c = ctx(at(800));
    let neither = OpenSlip {
        player_id: loyalty_core::PlayerId::of(Uuid::now_v7()),
        table_id: loyalty_core::TableId::of(Uuid::now_v7()),
        average_bet: bet("1"),
        seat_number: None,
        started_at: None,
    };
    let r = op(&store, move |tx| ops::open_slip(tx, &c, neither)).await;
    assert!(matches!(r, Err(OpError::NotFound("player"))), "{r:?}");
}

pub async fn a_failed_accrual_closes_the_slip_pending_and_recovery_accrues_once(store: Store) {
    let tiers = TierTable::default();
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let sid = open_slip_at(&store, player.id, table.id, "100", at(0), None)
        .await
        .id;

    let mut failing = ctx(at(3600));
    failing.fail_accrual = true;
    let (closed, error) = pending(complete(&store, &failing, sid, None).await);
    assert!(!error.is_empty());
    assert_eq!(closed.status, SlipStatus::Closed);
    assert_eq!(closed.loyalty_status, LoyaltyStatus::Pending);
    assert_eq!(closed.ended_at, Some(at(3600)));
    assert_eq!(closed.accrual_attempts, 1);
    assert_eq!(
        closed.next_retry_at,
        Some(at(3600) + SignedDuration::from_millis(ops::ACCRUAL_RETRY_BASE_MS))
    );
    assert_eq!(closed.ledger_entry_id, None);
    assert_eq!(slip(&store, sid).await, closed, "stored as returned");
    assert!(ledger(&store, player.id).await.is_empty(), "no entry");
    assert_eq!(account(&store, player.id).await.current_balance, 0);

    let evs = events(&store).await;
    assert_gap_free(&evs);
    let types: Vec<&str> = evs
        .iter()
        .filter(|e| e.correlation_id == failing.correlation_id)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["RATING_SLIP_COMPLETED", "LOYALTY_ACCRUAL_FAILED"]);
    let failed = evs
        .iter()
        .find(|e| e.event_type == "LOYALTY_ACCRUAL_FAILED")
        .unwrap();
    assert_eq!(failed.payload.value()["rating_slip_id"], json!(sid));
    assert_eq!(failed.payload.value()["player_id"], json!(player.id));
    assert_eq!(failed.payload.value()["recovery_needed"], json!(true));
    assert_eq!(failed.payload.value()["attempts"], json!(1));

    // Due for a retry only from next_retry_at on.
    let due = closed.next_retry_at.unwrap();
    let before_due = due - SignedDuration::from_micros(1);
    assert!(
        look(&store, move |tx| tx.pending_slips(before_due, 10))
            .await
            .is_empty()
    );
    assert_eq!(
        look(&store, move |tx| tx.pending_slips(due, 10)).await,
        vec![sid]
    );

    // Recovery that fails again: still pending, backed off.
    let mut failing = ctx(at(3700));
    failing.fail_accrual = true;
    let (still, _) = pending(recover(&store, &failing, sid).await);
    assert_eq!(still.accrual_attempts, 2);
    assert_eq!(
        still.next_retry_at,
        Some(at(3700) + SignedDuration::from_millis(2 * ops::ACCRUAL_RETRY_BASE_MS))
    );
    assert_eq!(still.ended_at, Some(at(3600)));
    assert!(ledger(&store, player.id).await.is_empty());

    // Recovery accrues once, for the time played (not the recovery time).
    let c = ctx(at(7200));
    let (recovered, loyalty, entry) = accrued(recover(&store, &c, sid).await);
    assert!(!loyalty.idempotent_replay);
    assert_eq!(entry.points_change, 1_620);
    assert_eq!(entry.rating_slip_id, Some(sid));
    assert_eq!(entry.correlation_id, c.correlation_id);
    assert_eq!(recovered.loyalty_status, LoyaltyStatus::Accrued);
    assert_eq!(recovered.ledger_entry_id, Some(entry.id));
    assert_eq!(recovered.next_retry_at, None);
    assert_eq!(slip(&store, sid).await, recovered);
    assert!(
        look(&store, move |tx| tx.pending_slips(at(1_000_000), 10))
            .await
            .is_empty()
    );

    // However often it runs again (recover or complete), it earns once.
    let n_events = events(&store).await.len();
    for i in 0..3 {
        let c = ctx(at(8000 + i));
        let (_, l, e) = accrued(recover(&store, &c, sid).await);
        assert!(l.idempotent_replay);
        assert_eq!(e, entry);
        assert_eq!(l, LoyaltyResult::from_entry(&entry, &tiers, true));
        let (_, l, e) = accrued(complete(&store, &c, sid, None).await);
        assert!(l.idempotent_replay);
        assert_eq!(e, entry);
    }
    assert_eq!(ledger(&store, player.id).await, vec![entry]);
    assert_eq!(events(&store).await.len(), n_events);
    assert_eq!(account(&store, player.id).await.current_balance, 1_620);
}

pub async fn recover_slip_refuses_slips_that_are_not_closed(store: Store) {
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let sid = open_slip_at(&store, player.id, table.id, "10", at(0), None)
        .await
        .id;
    let n_events = events(&store).await.len();
    let r = recover(&store, &ctx(at(10)), sid).await;
    assert!(matches!(r, Err(OpError::SlipNotClosed)), "open: {r:?}");
    slip_op(&store, at(20), sid, "pause").await.expect("pause");
    let r = recover(&store, &ctx(at(30)), sid).await;
    assert!(matches!(r, Err(OpError::SlipNotClosed)), "paused: {r:?}");
    let r = recover(&store, &ctx(at(30)), Uuid::now_v7()).await;
    assert!(matches!(r, Err(OpError::NotFound("rating slip"))), "{r:?}");
    assert_eq!(slip(&store, sid).await.status, SlipStatus::Paused);
    assert_eq!(slip(&store, sid).await.loyalty_status, LoyaltyStatus::None);
    assert_eq!(events(&store).await.len(), n_events + 1, "only the pause");
    assert!(ledger(&store, player.id).await.is_empty());
}

pub async fn completion_with_bad_times_is_refused_and_changes_nothing(store: Store) {
    let player = new_player(&store, at(0)).await;
    let table = new_table(&store, at(0), blackjack()).await;
    let opened = open_slip_at(&store, player.id, table.id, "10", at(1000), Some(at(500))).await;
    let sid = opened.id;
    slip_op(&store, at(600), sid, "pause").await.expect("pause");
    let resumed = slip_op(&store, at(700), sid, "resume")
        .await
        .expect("resume");
    let n_events = events(&store).await.len();

    let cases = [
        (at(2000), Some(at(2001)), "in the future"),
        (at(2000), Some(at(499)), "before the start"),
        (at(2000), Some(at(650)), "before the last resume"),
        (at(500 + 86_401), None, "longer than 24 h"),
    ];
    for (now, ended_at, why) in cases {
        let r = complete(&store, &ctx(now), sid, ended_at).await;
        assert!(
            matches!(r, Err(OpError::Validation { field, .. }) if field == "ended_at"),
            "{why}: {r:?}"
        );
    }
    assert_eq!(slip(&store, sid).await, resumed);
    assert_eq!(events(&store).await.len(), n_events);
    assert!(ledger(&store, player.id).await.is_empty());

    // started_at: never in the future, at most 24 h ago.
    for (started, why) in [(at(3001), "future"), (at(3000 - 86_401), "too old")] {
        let c = ctx(at(3000));
        let input = OpenSlip {
            player_id: loyalty_core::PlayerId::of(player.id),
            table_id: loyalty_core::TableId::of(table.id),
            average_bet: bet("10"),
            seat_number: None,
            started_at: Some(started),
        };
        let r = op(&store, move |tx| ops::open_slip(tx, &c, input)).await;
        assert!(
            matches!(r, Err(OpError::Validation { field, .. }) if field == "started_at"),
            "{why}: {r:?}"
        );
    }
    assert_eq!(events(&store).await.len(), n_events);

    // Exactly 24 h is accepted.
    let (closed, _, _) = accrued(complete(&store, &ctx(at(500 + 86_400)), sid, None).await);
    assert_eq!(closed.ended_at, Some(at(500 + 86_400)));
    assert_eq!(closed.accumulated_us, (100 + 86_400 - 200) * 1_000_000);
}
