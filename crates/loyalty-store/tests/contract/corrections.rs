//! Voids and corrections of closed slips (DESIGN §3.2): a reversal takes
//! back exactly what the slip earned, lifetime points and tier go down with
//! it, a correction re-accrues with the slip's snapshot, the tier of its
//! original accrual and its recorded pauses; both keep the slip's history,
//! replay when repeated, and refuse points already spent.

use jiff::Timestamp;
use loyalty_core::{LoyaltyStatus, SlipStatus, Tier, TransactionType};
use loyalty_store::ops::{self, OpError, SlipChange, SlipCorrected};
use loyalty_store::{LedgerEntry, RatingSlip, Store};
use uuid::Uuid;

use crate::slips::{complete, open_slip_at};
use crate::support::*;

fn change(reason: &str) -> SlipChange {
    SlipChange {
        reason: crate::support::reason(reason),
        average_bet: None,
        started_at: None,
        ended_at: None,
    }
}

async fn void(
    store: &Store,
    now: Timestamp,
    id: Uuid,
    reason: &str,
) -> Result<SlipCorrected, OpError> {
    let (c, ch) = (ctx(now), change(reason));
    op(store, move |tx| {
        ops::void_slip(tx, &c, loyalty_core::SlipId::of(id), &ch)
    })
    .await
}

async fn correct(
    store: &Store,
    now: Timestamp,
    id: Uuid,
    ch: SlipChange,
) -> Result<SlipCorrected, OpError> {
    let c = ctx(now);
    op(store, move |tx| {
        ops::correct_slip(tx, &c, loyalty_core::SlipId::of(id), &ch)
    })
    .await
}

async fn slip_of(store: &Store, id: Uuid) -> RatingSlip {
    barrier(store).await;
    look(store, move |tx| tx.slip(id)).await.expect("slip")
}

async fn verify_clean(store: &Store) {
    let (_, drift, _) = store.read(|tx| ops::verify(tx, 100)).await.expect("verify");
    assert!(drift.is_empty(), "verify found drift: {drift:?}");
}

/// A slip of 1 h at 100 earning 1,620 (BRONZE → SILVER); returns it.
async fn earned_slip(store: &Store, player: Uuid) -> (RatingSlip, LedgerEntry) {
    let table = new_table(store, at(0), blackjack()).await;
    let slip = open_slip_at(store, player, table.id, "100", at(0), None).await;
    match complete(store, &ctx(at(3600)), slip.id, None).await {
        Ok(ops::Completion::Accrued { slip, entry, .. }) => (slip, entry),
        other => panic!("expected an accrual, got {other:?}"),
    }
}

pub async fn a_void_takes_back_what_the_slip_earned_with_lifetime_and_tier(store: Store) {
    let player = new_player(&store, at(0)).await.id;
    let (slip, earned) = earned_slip(&store, player).await;
    assert_eq!(earned.points_change, 1_620);
    assert_eq!(account(&store, player).await.tier, Tier::Silver);

    let v = void(&store, at(3700), slip.id, "rated at the wrong table")
        .await
        .expect("void");
    assert!(!v.replay);
    let rev = v.reversal.clone().expect("a reversal entry");
    assert_eq!(rev.transaction_type, TransactionType::GameplayReversal);
    assert_eq!(rev.points_change, -1_620);
    assert_eq!((rev.balance_before, rev.balance_after), (1_620, 0));
    assert_eq!(
        (rev.tier_before, rev.tier_after),
        (Tier::Silver, Tier::Bronze)
    );
    assert_eq!(rev.lifetime_after, 0);
    assert_eq!(rev.event_type, "RATING_SLIP_VOIDED");
    assert_eq!(rev.rating_slip_id, Some(slip.id));
    assert_eq!(rev.reason.as_deref(), Some("rated at the wrong table"));
    let acc = account(&store, player).await;
    assert_eq!(
        (acc.current_balance, acc.lifetime_points, acc.tier),
        (0, 0, Tier::Bronze)
    );

    let stored = slip_of(&store, slip.id).await;
    assert_eq!(stored.status, SlipStatus::Voided);
    assert_eq!(stored.loyalty_status, LoyaltyStatus::None);
    assert_eq!(stored.corrections.len(), 1);
    let h = &stored.corrections[0];
    assert_eq!((h.kind.as_str(), h.points_reversed), ("VOID", 1_620));
    assert_eq!(h.reversal_entry_id, Some(rev.id));
    assert_eq!(
        h.average_bet_before, slip.average_bet,
        "history keeps the slip as it was"
    );
    assert_eq!(stored, v.slip, "stored as returned");

    // Again: the void stands, nothing new is written.
    let again = void(&store, at(3800), slip.id, "rated at the wrong table")
        .await
        .expect("replay");
    assert!(again.replay);
    assert_eq!(again.reversal.map(|e| e.id), Some(rev.id));
    assert_eq!(ledger(&store, player).await.len(), 2);
    // A voided slip is over: no completion, no correction.
    assert!(matches!(
        complete(&store, &ctx(at(3900)), slip.id, None).await,
        Err(OpError::SlipNotOpen)
    ));
    let mut ch = change("a correction after the void");
    ch.average_bet = Some(bet("50"));
    assert!(matches!(
        correct(&store, at(3900), slip.id, ch).await,
        Err(OpError::Conflict(_))
    ));

    let evs = events(&store).await;
    let voided: Vec<_> = evs
        .iter()
        .filter(|e| e.event_type == "RATING_SLIP_VOIDED")
        .collect();
    assert_eq!(voided.len(), 1, "one RATING_SLIP_VOIDED event");
    assert_eq!(voided[0].payload.value()["points_reversed"], 1_620);
    verify_clean(&store).await;
}

pub async fn a_correction_reaccrues_at_the_original_tier_and_keeps_pauses(store: Store) {
    let player = new_player(&store, at(0)).await.id;
    let table = new_table(&store, at(0), blackjack()).await;
    let slip = open_slip_at(&store, player, table.id, "100", at(0), None).await;
    let c = ctx(at(1800));
    let id = slip.id;
    op(&store, move |tx| {
        ops::pause_slip(tx, &c, loyalty_core::SlipId::of(id))
    })
    .await
    .expect("pause");
    let c = ctx(at(2400));
    op(&store, move |tx| {
        ops::resume_slip(tx, &c, loyalty_core::SlipId::of(id))
    })
    .await
    .expect("resume");
    // 3,600 s played of 4,200: 1,620 points at BRONZE, the player turns SILVER.
    let done = complete(&store, &ctx(at(4200)), id, None)
        .await
        .expect("complete");
    assert!(
        matches!(done, ops::Completion::Accrued { ref entry, .. } if entry.points_change == 1_620)
    );

    // The bet was 50: re-accrued at BRONZE (the original accrual's tier),
    // although the player is SILVER until the reversal.
    let mut ch = change("average bet keyed wrongly");
    ch.average_bet = Some(bet("50"));
    let first = correct(&store, at(5000), id, ch).await.expect("correct");
    let (rev, acc) = (
        first.reversal.clone().unwrap(),
        first.accrual.clone().unwrap(),
    );
    assert_eq!(rev.points_change, -1_620);
    assert_eq!(rev.transaction_type, TransactionType::GameplayReversal);
    assert_eq!(acc.transaction_type, TransactionType::Gameplay);
    assert_eq!(acc.points_change, 810);
    assert_eq!(acc.event_type, "RATING_SLIP_CORRECTED");
    assert_eq!(first.slip.average_bet, dec("50"));
    assert_eq!(first.slip.ledger_entry_id, Some(acc.id));

    // Ended 10 minutes earlier: the 10-minute pause still does not count,
    // so 3,000 s are played.
    let mut ch = change("the player left at three");
    ch.ended_at = Some(at(3600));
    let second = correct(&store, at(5100), id, ch.clone())
        .await
        .expect("correct");
    assert_eq!(second.accrual.as_ref().unwrap().points_change, 675);
    assert_eq!(second.slip.accumulated_us, 3_000_000_000);
    assert_eq!(second.slip.ended_at, Some(at(3600)));
    assert_eq!(second.slip.status, SlipStatus::Closed);
    // The same correction again replays.
    let again = correct(&store, at(5200), id, ch).await.expect("replay");
    assert!(again.replay);
    assert_eq!(
        again.accrual.map(|e| e.id),
        second.accrual.as_ref().map(|e| e.id)
    );

    let entries = ledger(&store, player).await;
    let points: Vec<(TransactionType, i64)> = entries
        .iter()
        .map(|e| (e.transaction_type, e.points_change))
        .collect();
    assert_eq!(
        points,
        vec![
            (TransactionType::Gameplay, 1_620),
            (TransactionType::GameplayReversal, -1_620),
            (TransactionType::Gameplay, 810),
            (TransactionType::GameplayReversal, -810),
            (TransactionType::Gameplay, 675),
        ]
    );
    let a = account(&store, player).await;
    assert_eq!(
        (a.current_balance, a.lifetime_points, a.tier),
        (675, 675, Tier::Bronze)
    );
    let stored = slip_of(&store, id).await;
    assert_eq!(stored.corrections.len(), 2);
    assert_eq!(stored.corrections[1].points_accrued, Some(675));
    assert_eq!(stored.corrections[1].ended_at_before, Some(at(4200)));
    // Completing the corrected slip again answers with its current entry.
    match complete(&store, &ctx(at(5300)), id, None).await {
        Ok(ops::Completion::Accrued { entry, loyalty, .. }) => {
            assert_eq!(Some(entry.id), stored.ledger_entry_id);
            assert!(loyalty.idempotent_replay);
        }
        other => panic!("{other:?}"),
    }
    let corrected = events(&store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "RATING_SLIP_CORRECTED")
        .count();
    assert_eq!(corrected, 2);
    verify_clean(&store).await;
}

pub async fn spent_points_refuse_a_void_or_correction_and_change_nothing(store: Store) {
    let player = new_player(&store, at(0)).await.id;
    let (slip, _) = earned_slip(&store, player).await;
    reward(
        &store,
        &ctx(at(3650)),
        player,
        -1_000,
        "spent",
        Uuid::now_v7(),
    )
    .await
    .expect("points spent");
    let before = ledger(&store, player).await;
    assert!(matches!(
        void(&store, at(3700), slip.id, "rated at the wrong table").await,
        Err(OpError::InsufficientBalance {
            available: 620,
            requested: 1_620
        })
    ));
    let mut ch = change("average bet keyed wrongly");
    ch.average_bet = Some(bet("50"));
    assert!(matches!(
        correct(&store, at(3700), slip.id, ch).await,
        Err(OpError::InsufficientBalance { .. })
    ));
    assert_eq!(ledger(&store, player).await, before);
    let stored = slip_of(&store, slip.id).await;
    assert_eq!(stored.status, SlipStatus::Closed);
    assert!(stored.corrections.is_empty());

    // An open slip is not corrected or voided.
    let table = new_table(&store, at(0), blackjack()).await;
    let open = open_slip_at(&store, player, table.id, "25", at(3000), None).await;
    assert!(matches!(
        void(&store, at(3700), open.id, "not even finished yet").await,
        Err(OpError::SlipNotClosed)
    ));
    assert!(matches!(
        void(&store, at(3700), Uuid::now_v7(), "no such slip at all").await,
        Err(OpError::NotFound(_))
    ));
    verify_clean(&store).await;
}
