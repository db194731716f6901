//! The stored events keep their published shape (docs/events.md): one
//! scenario drives every operation that emits, with a fixed clock, and the
//! outbox it leaves — type, source, version and payload of each event, in
//! order, with ids replaced by `<id N>` in order of first appearance — must
//! equal `tests/fixtures/event_payloads.jsonl` byte for byte. Every stored
//! event also reads back as a typed [`Event`] that writes the same JSON.
//!
//! To accept a deliberate change of a payload (a new version of a type, and a
//! line in docs/events.md), run this test with `LOYALTY_BLESS=1` and review
//! the fixture's diff.

use std::collections::HashMap;
use std::path::PathBuf;

use loyalty_core::Role;
use loyalty_core::events::Event;
use loyalty_store::ops::wallet::{self, Capture, Hold};
use loyalty_store::ops::{self, OpenSlip, SlipChange, approvals};
use loyalty_store::{EventRecord, Store, TokenSubject};
use serde_json::Value;
use uuid::Uuid;

use crate::support::*;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/event_payloads.jsonl")
}

/// Replaces every UUID string in `v` by `<id N>`, numbering ids in order of
/// first appearance across the whole outbox.
fn normalise(v: &mut Value, ids: &mut HashMap<Uuid, usize>) {
    match v {
        Value::String(s) => {
            if let Ok(id) = Uuid::parse_str(s) {
                let n = ids.len() + 1;
                let n = *ids.entry(id).or_insert(n);
                *s = format!("<id {n}>");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalise(i, ids)),
        Value::Object(map) => map.values_mut().for_each(|i| normalise(i, ids)),
        _ => {}
    }
}

fn lines(events: &[EventRecord]) -> String {
    let mut ids = HashMap::new();
    let mut out = String::new();
    for e in events {
        let mut payload = e.payload.value();
        normalise(&mut payload, &mut ids);
        let line = serde_json::json!({
            "event_type": e.event_type,
            "source": e.source,
            "version": e.version,
            "payload": payload,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

pub async fn every_event_keeps_its_documented_payload_byte_for_byte(store: Store) {
    let checker = {
        let c = ctx(at(0));
        op(&store, move |tx| {
            ops::create_staff(tx, &c, name("Checker"), Role::Supervisor, "hash-checker")
        })
        .await
        .expect("create checker")
        .id
    };
    let c0 = as_staff(at(1), checker);
    let maker = op(&store, move |tx| {
        ops::create_staff(tx, &c0, name("Maker"), Role::PitBoss, "hash-maker")
    })
    .await
    .expect("create maker")
    .id;
    let s = move |secs: i64| as_staff(at(secs), maker);

    let c = s(2);
    let player = op(&store, move |tx| {
        ops::create_player(tx, &c, name("Ada"), Some(card("CARD-0001")))
    })
    .await
    .expect("create player")
    .id;
    let c = s(3);
    op(&store, move |tx| {
        ops::create_player_token(tx, &c, loyalty_core::PlayerId::of(player), "hash-player-1")
    })
    .await
    .expect("issue token");
    let c = s(4);
    op(&store, move |tx| {
        ops::revoke_token(tx, &c, "hash-player-1", TokenSubject::Player(player))
    })
    .await
    .expect("revoke token");
    let c = s(5);
    op(&store, move |tx| {
        ops::revoke_player_tokens(tx, &c, loyalty_core::PlayerId::of(player))
    })
    .await
    .expect("revoke player tokens");
    let c = s(6);
    let table = op(&store, move |tx| {
        ops::create_table(tx, &c, name("BJ-1"), name("blackjack"), blackjack())
    })
    .await
    .expect("create table")
    .id;
    let c = s(7);
    op(&store, move |tx| {
        ops::patch_table(tx, &c, loyalty_core::TableId::of(table), |t| {
            t.settings.seats_available = 6
        })
    })
    .await
    .expect("patch table");

    // A slip through every state, completed, corrected; a second voided; a
    // third whose accrual fails.
    let open = |secs: i64| {
        let c = s(secs);
        let store = store.clone();
        async move {
            op(&store, move |tx| {
                ops::open_slip(
                    tx,
                    &c,
                    OpenSlip {
                        player_id: loyalty_core::PlayerId::of(player),
                        table_id: loyalty_core::TableId::of(table),
                        average_bet: bet("100"),
                        seat_number: Some(3),
                        started_at: None,
                    },
                )
            })
            .await
            .expect("open slip")
            .id
        }
    };
    let slip = open(100).await;
    let c = s(200);
    op(&store, move |tx| {
        ops::set_average_bet(tx, &c, loyalty_core::SlipId::of(slip), bet("150.50"))
    })
    .await
    .expect("set bet");
    let c = s(300);
    op(&store, move |tx| {
        ops::pause_slip(tx, &c, loyalty_core::SlipId::of(slip))
    })
    .await
    .expect("pause");
    let c = s(400);
    op(&store, move |tx| {
        ops::resume_slip(tx, &c, loyalty_core::SlipId::of(slip))
    })
    .await
    .expect("resume");
    let c = s(3_700);
    op(&store, move |tx| {
        ops::complete_slip(tx, &c, loyalty_core::SlipId::of(slip), None)
    })
    .await
    .expect("complete");
    let c = s(3_800);
    op(&store, move |tx| {
        ops::correct_slip(
            tx,
            &c,
            loyalty_core::SlipId::of(slip),
            &SlipChange {
                reason: reason("bet was misread at the table"),
                average_bet: Some(bet("120")),
                started_at: None,
                ended_at: None,
            },
        )
    })
    .await
    .expect("correct");
    let voided = open(4_000).await;
    let c = s(5_000);
    op(&store, move |tx| {
        ops::complete_slip(tx, &c, loyalty_core::SlipId::of(voided), None)
    })
    .await
    .expect("complete second");
    let c = s(5_100);
    op(&store, move |tx| {
        ops::void_slip(
            tx,
            &c,
            loyalty_core::SlipId::of(voided),
            &SlipChange {
                reason: reason("player was not at the table"),
                average_bet: None,
                started_at: None,
                ended_at: None,
            },
        )
    })
    .await
    .expect("void");
    let failing = open(6_000).await;
    let mut c = s(6_600);
    c.fail_accrual = true;
    op(&store, move |tx| {
        ops::complete_slip(tx, &c, loyalty_core::SlipId::of(failing), None)
    })
    .await
    .expect("complete with a failing accrual");

    // A reward that crosses a tier; dual control approved and rejected.
    let c = s(7_000);
    let input = reward_input(player, 6_000, "reward-1", maker);
    op(&store, move |tx| ops::manual_reward(tx, &c, input))
        .await
        .expect("reward");
    let c = s(7_100);
    let input = reward_input(player, -250, "adjust-1", maker);
    op(&store, move |tx| ops::manual_reward(tx, &c, input))
        .await
        .expect("adjustment");
    let c = s(7_200);
    let input = reward_input(player, 15_000, "dual-1", maker);
    let (approval, _) = op(&store, move |tx| approvals::request(tx, &c, input))
        .await
        .expect("request");
    let c = as_staff(at(7_300), checker);
    op(&store, move |tx| {
        approvals::approve(
            tx,
            &c,
            loyalty_core::ApprovalId::of(approval.id),
            loyalty_core::StaffId::of(checker),
        )
    })
    .await
    .expect("approve");
    let c = s(7_400);
    let input = reward_input(player, 12_000, "dual-2", maker);
    let (approval, _) = op(&store, move |tx| approvals::request(tx, &c, input))
        .await
        .expect("request");
    let c = as_staff(at(7_500), checker);
    op(&store, move |tx| {
        approvals::reject(
            tx,
            &c,
            loyalty_core::ApprovalId::of(approval.id),
            loyalty_core::StaffId::of(checker),
            "no play to justify it".into(),
        )
    })
    .await
    .expect("reject");

    // The wallet: hold, capture part, refund the rest; a final partial
    // capture; an expired hold.
    let c = s(8_000);
    let merchant = op(&store, move |tx| {
        wallet::create_merchant(tx, &c, name("Steakhouse"))
    })
    .await
    .expect("merchant")
    .id;
    let hold = |secs: i64, amount: i64, expires_at| {
        let c = s(secs);
        let store = store.clone();
        async move {
            op(&store, move |tx| {
                wallet::hold(
                    tx,
                    &c,
                    Hold {
                        player_id: loyalty_core::PlayerId::of(player),
                        merchant_id: loyalty_core::MerchantId::of(merchant),
                        amount,
                        reason: reason("dinner for two"),
                        reference: Some("CHK-1".into()),
                        expires_at,
                    },
                )
            })
            .await
            .expect("hold")
        }
    };
    let capture = |secs: i64, escrow_id, amount, final_capture| {
        let c = s(secs);
        let store = store.clone();
        async move {
            op(&store, move |tx| {
                wallet::settle(
                    tx,
                    &c,
                    Capture {
                        escrow_id,
                        amount,
                        final_capture,
                        expected_version: None,
                    },
                )
            })
            .await
            .expect("capture")
        }
    };
    let e1 = hold(8_100, 900, None).await;
    capture(8_200, loyalty_core::EscrowId::of(e1.id), Some(400), false).await;
    let c = s(8_300);
    op(&store, move |tx| {
        wallet::refund(tx, &c, loyalty_core::EscrowId::of(e1.id), None)
    })
    .await
    .expect("refund");
    let e2 = hold(8_400, 500, None).await;
    capture(8_500, loyalty_core::EscrowId::of(e2.id), Some(200), true).await;
    let e3 = hold(8_600, 300, Some(at(9_000))).await;
    let c = ctx(at(9_100));
    op(&store, move |tx| {
        wallet::expire(tx, &c, loyalty_core::EscrowId::of(e3.id))
    })
    .await
    .expect("expire")
    .expect("the hold was due");

    let c = as_staff(at(9_200), checker);
    op(&store, move |tx| {
        ops::disable_staff(tx, &c, loyalty_core::StaffId::of(maker))
    })
    .await
    .expect("disable");

    barrier(&store).await;
    let events = look(&store, |tx| tx.events(0, 1_000, None)).await;

    // Each stored event reads back as its typed variant, which writes the
    // very same type, source, version and payload.
    for e in &events {
        let typed = Event::from_stored(&e.event_type, e.version, &e.payload)
            .unwrap_or_else(|err| panic!("event {} does not parse: {err}", e.seq));
        assert_eq!(typed.event_type().as_str(), e.event_type);
        assert_eq!(typed.event_type().source(), e.source);
        assert_eq!(typed.version(), e.version);
        assert_eq!(typed.payload(), e.payload, "{}", e.event_type);
    }

    let got = lines(&events);
    let path = fixture_path();
    if std::env::var("LOYALTY_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &got).expect("write the fixture");
    }
    let want = std::fs::read_to_string(&path).expect("read the fixture");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "event {} differs from the fixture", i + 1);
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "a different number of events than the fixture"
    );
}

fn as_staff(now: jiff::Timestamp, staff: Uuid) -> ops::OpCtx {
    let mut c = ctx(now);
    c.staff_id = Some(staff);
    c
}
