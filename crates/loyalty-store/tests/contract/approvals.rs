//! Dual control (DESIGN §9): a request writes nothing to the ledger; a
//! second staff member approves it (the entry carries both ids) or rejects
//! it; the requester may withdraw it, never approve it; it lapses after
//! 24 hours; a decision repeated answers the first result.

use jiff::{SignedDuration, Timestamp};
use loyalty_store::ops::approvals::{self, Decision, status};
use loyalty_store::ops::{OpCtx, OpError};
use loyalty_store::{Approval, Store};
use uuid::Uuid;

use crate::support::*;

fn as_staff(now: Timestamp, staff: Uuid) -> OpCtx {
    let mut c = ctx(now);
    c.staff_id = Some(staff);
    c
}

async fn request(
    store: &Store,
    now: Timestamp,
    staff: Uuid,
    player: Uuid,
    points: i64,
    key: &str,
) -> (Approval, bool) {
    let c = as_staff(now, staff);
    let input = reward_input(player, points, key, staff);
    op(store, move |tx| approvals::request(tx, &c, input))
        .await
        .expect("request")
}

async fn approve(store: &Store, now: Timestamp, id: Uuid, by: Uuid) -> Result<Decision, OpError> {
    let c = as_staff(now, by);
    op(store, move |tx| {
        approvals::approve(
            tx,
            &c,
            loyalty_core::ApprovalId::of(id),
            loyalty_core::StaffId::of(by),
        )
    })
    .await
}

async fn reject(store: &Store, now: Timestamp, id: Uuid, by: Uuid) -> Result<Decision, OpError> {
    let c = as_staff(now, by);
    op(store, move |tx| {
        approvals::reject(
            tx,
            &c,
            loyalty_core::ApprovalId::of(id),
            loyalty_core::StaffId::of(by),
            "not justified by the play".into(),
        )
    })
    .await
}

async fn listed(store: &Store, now: Timestamp, s: Option<&'static str>) -> Vec<Uuid> {
    look(store, move |tx| tx.approvals(s, now, None, 100))
        .await
        .into_iter()
        .map(|a| a.id)
        .collect()
}

pub async fn a_request_waits_for_another_staff_members_approval(store: Store) {
    let (maker, checker) = (Uuid::now_v7(), Uuid::now_v7());
    let player = new_player(&store, at(0)).await.id;
    let (a, replay) = request(&store, at(10), maker, player, 5_000, "dual-1").await;
    assert!(!replay);
    assert_eq!(a.status, status::PENDING);
    assert_eq!(a.expires_at, at(10) + SignedDuration::from_hours(24));
    assert!(
        ledger(&store, player).await.is_empty(),
        "nothing written yet"
    );
    assert_eq!(account(&store, player).await.current_balance, 0);
    // The same request again answers the standing approval.
    let (again, replay) = request(&store, at(11), maker, player, 5_000, "dual-1").await;
    assert!(replay);
    assert_eq!(again.id, a.id);

    // Not by its maker.
    assert!(matches!(
        approve(&store, at(20), a.id, maker).await,
        Err(OpError::SelfApproval)
    ));
    assert!(ledger(&store, player).await.is_empty());

    let Ok(Decision::Made(done, Some(entry))) = approve(&store, at(30), a.id, checker).await else {
        panic!("approval by another staff member writes the entry");
    };
    assert_eq!(done.status, status::APPROVED);
    assert_eq!(
        (done.decided_by, done.ledger_entry_id),
        (Some(checker), Some(entry.id))
    );
    assert_eq!(entry.staff_id, Some(maker));
    assert_eq!(entry.approved_by, Some(checker));
    assert_eq!(entry.points_change, 5_000);
    assert_eq!(entry.created_at, at(30));
    assert_eq!(ledger(&store, player).await, vec![(*entry).clone()]);
    assert_eq!(account(&store, player).await.current_balance, 5_000);

    // A second approval answers the first result; a rejection is too late.
    assert!(matches!(
        approve(&store, at(40), a.id, Uuid::now_v7()).await,
        Ok(Decision::Repeated(ref r)) if r.ledger_entry_id == Some(entry.id)
    ));
    assert!(matches!(
        reject(&store, at(40), a.id, Uuid::now_v7()).await,
        Ok(Decision::NotPending(ref r)) if r.status == status::APPROVED
    ));
    assert_eq!(ledger(&store, player).await.len(), 1);

    let types: Vec<String> = events(&store)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .filter(|t| t.starts_with("APPROVAL_"))
        .collect();
    assert_eq!(types, ["APPROVAL_REQUESTED", "APPROVAL_DECIDED"]);
    assert_eq!(
        listed(&store, at(50), Some(status::APPROVED)).await,
        vec![a.id]
    );
    assert!(
        listed(&store, at(50), Some(status::PENDING))
            .await
            .is_empty()
    );
}

pub async fn requests_are_rejected_withdrawn_or_lapse_and_then_stay_so(store: Store) {
    let (maker, checker) = (Uuid::now_v7(), Uuid::now_v7());
    let player = new_player(&store, at(0)).await.id;
    let (r1, _) = request(&store, at(10), maker, player, 800, "dual-r1").await;
    let (r2, _) = request(&store, at(10), maker, player, 900, "dual-r2").await;
    let (r3, _) = request(&store, at(10), maker, player, 700, "dual-r3").await;

    let Ok(Decision::Made(rejected, None)) = reject(&store, at(20), r1.id, checker).await else {
        panic!("rejected");
    };
    assert_eq!(rejected.status, status::REJECTED);
    assert_eq!(
        rejected.decision_reason.as_deref(),
        Some("not justified by the play")
    );
    assert!(matches!(
        approve(&store, at(30), r1.id, checker).await,
        Ok(Decision::NotPending(ref r)) if r.status == status::REJECTED
    ));
    assert!(matches!(
        reject(&store, at(30), r1.id, checker).await,
        Ok(Decision::Repeated(_))
    ));

    // The maker withdraws their own.
    let Ok(Decision::Made(withdrawn, None)) = reject(&store, at(20), r2.id, maker).await else {
        panic!("withdrawn");
    };
    assert_eq!(withdrawn.status, status::WITHDRAWN);

    // A day later the third has lapsed: listed as expired before anyone
    // touches it, and written so when someone tries.
    let later = at(10) + SignedDuration::from_hours(24);
    assert_eq!(
        listed(&store, later, Some(status::EXPIRED)).await,
        vec![r3.id]
    );
    assert_eq!(
        listed(&store, at(20), Some(status::PENDING)).await,
        vec![r3.id]
    );
    assert!(matches!(
        approve(&store, later, r3.id, checker).await,
        Ok(Decision::NotPending(ref r)) if r.status == status::EXPIRED
    ));
    let stored = look(&store, move |tx| tx.approval(r3.id)).await.unwrap();
    assert_eq!(stored.status, status::EXPIRED);
    assert!(
        ledger(&store, player).await.is_empty(),
        "nothing was ever written"
    );
    assert!(matches!(
        approve(&store, at(5), Uuid::now_v7(), checker).await,
        Err(OpError::NotFound(_))
    ));
}

pub async fn an_approval_the_balance_cannot_cover_is_refused_and_stays_pending(store: Store) {
    let (maker, checker) = (Uuid::now_v7(), Uuid::now_v7());
    let player = new_player(&store, at(0)).await.id;
    let (a, _) = request(&store, at(10), maker, player, -600, "dual-adj").await;
    assert!(matches!(
        approve(&store, at(20), a.id, checker).await,
        Err(OpError::InsufficientBalance {
            available: 0,
            requested: 600
        })
    ));
    let stored = look(&store, move |tx| tx.approval(a.id)).await.unwrap();
    assert_eq!(
        stored.status,
        status::PENDING,
        "the failed approval changed nothing"
    );
    reward(&store, &ctx(at(30)), player, 1_000, "fund", checker)
        .await
        .expect("fund");
    let Ok(Decision::Made(_, Some(entry))) = approve(&store, at(40), a.id, checker).await else {
        panic!("approved once covered");
    };
    assert_eq!(entry.points_change, -600);
    assert_eq!(account(&store, player).await.current_balance, 400);
}
