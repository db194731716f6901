//! `Idempotency-Key` on every mutating POST (DESIGN §3.3, issue 3 point 5):
//! same key + same body → the stored status and body byte for byte, marked
//! `idempotent-replayed: true`, and no second effect; same key + another
//! body → 422 IDEMPOTENCY_KEY_REUSED; keys are scoped per caller and
//! operation and bounded; concurrent duplicates have one effect.
//!
//! Effects are counted as outbox events: every state change writes at least
//! one, in the same transaction.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::json;

use crate::common::{Resp, TestApp};
use crate::support::*;

/// Every mutating POST of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateStaff,
    CreatePlayer,
    PlayerToken,
    CreateTable,
    OpenSlip,
    Pause,
    Resume,
    Complete,
    Recover,
    Void,
    Correct,
    Approve,
    Reject,
    ManualReward,
    DisableStaff,
    CreateMerchant,
    Hold,
    Settle,
    Refund,
    CreateWebhook,
}

const OPS: [Op; 20] = [
    Op::CreateStaff,
    Op::CreatePlayer,
    Op::PlayerToken,
    Op::CreateTable,
    Op::OpenSlip,
    Op::Pause,
    Op::Resume,
    Op::Complete,
    Op::Recover,
    Op::Void,
    Op::Correct,
    Op::Approve,
    Op::Reject,
    Op::ManualReward,
    Op::DisableStaff,
    Op::CreateMerchant,
    Op::Hold,
    Op::Settle,
    Op::Refund,
    Op::CreateWebhook,
];

/// POST routes that change nothing and so need no key.
const READ_ONLY_POSTS: [&str; 1] = ["/v1/admin/verify"];

/// Mutating POSTs that honour `Idempotency-Key` through the same
/// `run_write` path but need fixtures this table cannot make cheaply (a dead
/// letter exists only after a subscriber failed for good); the events suite
/// replays a dead letter twice and sees one effect.
const IDEMPOTENT_ELSEWHERE: [&str; 1] = ["/v1/dead-letters/{id}/replay"];

/// One request: where, what, and the same target with another body.
struct Req {
    path: String,
    body: String,
    other_body: String,
}

/// A caller with an id (for `staff_id`) and a token.
type Caller = (String, String);

const TABLE: &str =
    r#"{"name":"Idem BJ","game_type":"blackjack","house_edge":"2.7","average_rounds_per_hour":60}"#;

impl Op {
    fn template(self) -> &'static str {
        match self {
            Op::CreateStaff => "/v1/staff",
            Op::CreatePlayer => "/v1/players",
            Op::PlayerToken => "/v1/players/{id}/tokens",
            Op::CreateTable => "/v1/tables",
            Op::OpenSlip => "/v1/rating-slips",
            Op::Pause => "/v1/rating-slips/{id}/pause",
            Op::Resume => "/v1/rating-slips/{id}/resume",
            Op::Complete => "/v1/rating-slips/{id}/complete",
            Op::Recover => "/v1/rating-slips/{id}/recover-loyalty",
            Op::Void => "/v1/rating-slips/{id}/void",
            Op::Correct => "/v1/rating-slips/{id}/correct",
            Op::Approve => "/v1/approvals/{id}/approve",
            Op::Reject => "/v1/approvals/{id}/reject",
            Op::ManualReward => "/v1/loyalty/manual-rewards",
            Op::DisableStaff => "/v1/staff/{id}/disable",
            Op::CreateMerchant => "/v1/merchants",
            Op::Hold => "/v1/escrows",
            Op::Settle => "/v1/escrows/{id}/settle",
            Op::Refund => "/v1/escrows/{id}/refund",
            Op::CreateWebhook => "/v1/webhooks",
        }
    }

    fn success(self) -> u16 {
        match self {
            Op::CreateStaff
            | Op::CreatePlayer
            | Op::PlayerToken
            | Op::CreateTable
            | Op::OpenSlip
            | Op::CreateMerchant
            | Op::CreateWebhook
            | Op::Hold => 201,
            Op::ManualReward => 201,
            Op::Pause
            | Op::Resume
            | Op::Complete
            | Op::Recover
            | Op::Void
            | Op::Correct
            | Op::Approve
            | Op::Reject
            | Op::DisableStaff
            | Op::Settle
            | Op::Refund => 200,
        }
    }

    /// A fresh request for `caller` that will succeed. Bodies of the create
    /// routes are constant, so two callers can send the very same request.
    async fn prepare(self, app: &TestApp, caller: &Caller) -> Req {
        app.set_clock(T0).await;
        let slip = |body: serde_json::Value| body["id"].as_str().unwrap().to_string();
        let (path, body, other_body) = match self {
            Op::CreateStaff => (
                "/v1/staff".to_string(),
                r#"{"name":"Idem Staff","role":"cashier"}"#.to_string(),
                r#"{"name":"Idem Staff","role":"auditor"}"#.to_string(),
            ),
            Op::CreateWebhook => (
                "/v1/webhooks".to_string(),
                r#"{"url":"http://127.0.0.1:9/idem"}"#.to_string(),
                r#"{"url":"http://127.0.0.1:9/idem-2"}"#.to_string(),
            ),
            Op::CreateMerchant => (
                "/v1/merchants".to_string(),
                r#"{"name":"Idem Merchant"}"#.to_string(),
                r#"{"name":"Idem Merchant 2"}"#.to_string(),
            ),
            Op::Hold => {
                let (p, m) = funded_player_and_merchant(app, caller).await;
                let b =
                    json!({"player_id": p, "merchant_id": m, "amount": 100, "reason": "Idem hold"});
                let mut o = b.clone();
                o["amount"] = json!(101);
                ("/v1/escrows".to_string(), b.to_string(), o.to_string())
            }
            Op::Settle | Op::Refund => {
                let (p, m) = funded_player_and_merchant(app, caller).await;
                let r = post(
                    app,
                    caller,
                    "/v1/escrows",
                    &json!({"player_id": p, "merchant_id": m, "amount": 100, "reason": "Idem hold"})
                        .to_string(),
                    None,
                )
                .await;
                assert_eq!(r.status, 201, "{}", r.text);
                let id = r.body["id"].as_str().unwrap();
                let action = self.template().rsplit('/').next().unwrap();
                (
                    format!("/v1/escrows/{id}/{action}"),
                    "{}".to_string(),
                    r#"{"expected_version":1,"note":"x"}"#.to_string(),
                )
            }
            Op::DisableStaff => {
                let (id, _) = app.staff("cashier").await;
                (
                    format!("/v1/staff/{id}/disable"),
                    "{}".to_string(),
                    r#"{"note":"x"}"#.to_string(),
                )
            }
            Op::CreatePlayer => (
                "/v1/players".to_string(),
                r#"{"display_name":"Idem Player"}"#.to_string(),
                r#"{"display_name":"Idem Player 2"}"#.to_string(),
            ),
            Op::PlayerToken => {
                let p = app.player().await;
                (
                    format!("/v1/players/{p}/tokens"),
                    "{}".to_string(),
                    r#"{"note":"x"}"#.to_string(),
                )
            }
            Op::CreateTable => (
                "/v1/tables".to_string(),
                TABLE.to_string(),
                TABLE.replace("Idem BJ", "Idem BJ 2"),
            ),
            Op::OpenSlip => {
                let p = app.player().await;
                let t = app.table().await;
                let b = json!({"player_id": p, "table_id": t, "average_bet": "25"});
                let mut o = b.clone();
                o["average_bet"] = json!("30");
                ("/v1/rating-slips".to_string(), b.to_string(), o.to_string())
            }
            Op::Pause | Op::Resume | Op::Complete => {
                let p = app.player().await;
                let t = app.table().await;
                let id = slip(app.open_slip(&p, &t, "25", Some(&at(T0, -secs(600)))).await);
                if self == Op::Resume {
                    let r = app.pause_slip(&app.admin_token, &id).body(json!({})).await;
                    assert_eq!(r.status, 200, "{}", r.text);
                }
                let action = self.template().rsplit('/').next().unwrap();
                (
                    format!("/v1/rating-slips/{id}/{action}"),
                    "{}".to_string(),
                    r#"{"note":"x"}"#.to_string(),
                )
            }
            Op::Recover => {
                // A closed slip whose accrual is pending; the clock then moves
                // an hour back so the background retry leaves it to us.
                let p = app.player().await;
                let t = app.table().await;
                let id = slip(app.open_slip(&p, &t, "25", Some(&at(T0, -secs(600)))).await);
                app.set_accrual_fault("fail").await;
                let r = app.complete_slip(&app.admin_token, &id, json!({})).await;
                app.set_clock(&at(T0, -secs(3600))).await;
                app.set_accrual_fault("ok").await;
                assert_eq!(r.status, 202, "{}", r.text);
                (
                    format!("/v1/rating-slips/{id}/recover-loyalty"),
                    "{}".to_string(),
                    r#"{"note":"x"}"#.to_string(),
                )
            }
            Op::Void | Op::Correct => {
                // A slip of ten minutes, completed.
                let p = app.player().await;
                let t = app.table().await;
                let id = slip(app.open_slip(&p, &t, "25", Some(&at(T0, -secs(600)))).await);
                let r = app.complete_slip(&app.admin_token, &id, json!({})).await;
                assert_eq!(r.status, 200, "{}", r.text);
                let action = self.template().rsplit('/').next().unwrap();
                let (b, o) = if self == Op::Void {
                    (
                        json!({"reason": "Idem void: wrong seat"}),
                        json!({"reason": "Idem void: wrong table"}),
                    )
                } else {
                    (
                        json!({"reason": "Idem correction of the bet", "average_bet": "20"}),
                        json!({"reason": "Idem correction of the bet", "average_bet": "15"}),
                    )
                };
                (
                    format!("/v1/rating-slips/{id}/{action}"),
                    b.to_string(),
                    o.to_string(),
                )
            }
            Op::Approve | Op::Reject => {
                // A request of another supervisor, waiting under dual control.
                let p = app.player().await;
                let (maker, token) = app.staff("supervisor").await;
                let r = app
                    .manual_reward(
                        &token,
                        reward_body(&p, &maker, DUAL_CONTROL_THRESHOLD + 100, REASON),
                    )
                    .await;
                assert_eq!(r.status, 202, "{}", r.text);
                let id = r.body["approval"]["id"].as_str().unwrap().to_string();
                let action = self.template().rsplit('/').next().unwrap();
                let (b, o) = if self == Op::Approve {
                    ("{}".to_string(), r#"{"note":"x"}"#.to_string())
                } else {
                    (
                        json!({"reason": "Idem rejection reason"}).to_string(),
                        json!({"reason": "Idem rejection, another reason"}).to_string(),
                    )
                };
                (format!("/v1/approvals/{id}/{action}"), b, o)
            }
            Op::ManualReward => {
                let p = app.player().await;
                let b = reward_body(&p, &caller.0, 100, REASON);
                let o = reward_body(&p, &caller.0, 101, REASON);
                (REWARDS.to_string(), b.to_string(), o.to_string())
            }
        };
        Req {
            path,
            body,
            other_body,
        }
    }
}

async fn post(
    app: &TestApp,
    caller: &Caller,
    path: &str,
    body: &str,
    key: Option<HeaderValue>,
) -> Resp {
    let headers: Vec<(&str, HeaderValue)> =
        key.into_iter().map(|k| ("idempotency-key", k)).collect();
    app.raw(Method::POST, Some(&caller.1), path, Some(body), &headers)
        .await
}

/// What a replay answers for a first response `text`: the same bytes, except
/// that a token shown once is `null` with `token_redacted: true` (DESIGN §3.7).
fn stored_form(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut redacted = false;
    // Secrets shown once (a token, a webhook's secret) are never stored.
    for field in ["token", "secret"] {
        if v[field].is_string() {
            v[field] = serde_json::Value::Null;
            v[format!("{field}_redacted")] = json!(true);
            redacted = true;
        }
    }
    if redacted {
        v.to_string()
    } else {
        text.to_string()
    }
}

fn key(k: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(k).unwrap())
}

/// The server runs dual control at this threshold (its other rewards stay
/// below it).
const DUAL_CONTROL_THRESHOLD: i64 = 9_500;

/// A player with 9,000 points and a merchant, made by `caller`.
async fn funded_player_and_merchant(app: &TestApp, caller: &Caller) -> (String, String) {
    let p = app.player().await;
    let r = reward_ok(app, &caller.1, &reward_body(&p, &caller.0, 9_000, REASON)).await;
    assert_eq!(r["points_change"], 9_000);
    let m = post(
        app,
        caller,
        "/v1/merchants",
        r#"{"name":"Idem outlet"}"#,
        None,
    )
    .await;
    assert_eq!(m.status, 201, "{}", m.text);
    (p, m.body["id"].as_str().unwrap().to_string())
}

/// A server and two admins created through the API (ids known). Funding
/// the wallet's fixtures takes many rewards: the reward limit is lifted.
async fn setup() -> (TestApp, Caller, Caller) {
    let threshold = DUAL_CONTROL_THRESHOLD.to_string();
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--reward-rate-limit",
        "1000",
        "--dual-control-threshold",
        &threshold,
        "--webhook-allow-hosts",
        "127.0.0.1",
    ])
    .await;
    app.set_clock(T0).await;
    let a = app.staff("admin").await;
    let b = app.staff("admin").await;
    (app, a, b)
}

#[test]
fn every_mutating_post_route_of_the_server_has_a_row() {
    let served: BTreeSet<&str> = loyalty_server::http::ROUTES
        .iter()
        .filter(|(m, p)| {
            *m == "POST" && !READ_ONLY_POSTS.contains(p) && !IDEMPOTENT_ELSEWHERE.contains(p)
        })
        .map(|(_, p)| *p)
        .collect();
    let rows: BTreeSet<&str> = OPS.iter().map(|o| o.template()).collect();
    assert_eq!(
        rows, served,
        "Idempotency-Key rows and the server's mutating POST routes differ"
    );
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_stored_response_byte_for_byte_without_a_second_effect() {
    let (app, a, _) = setup().await;
    for op in OPS {
        let req = op.prepare(&app, &a).await;
        let k = format!("replay-{op:?}");
        let before = app.all_events().await.len();
        let first = post(&app, &a, &req.path, &req.body, key(&k)).await;
        assert_eq!(first.status, op.success(), "{op:?}: {}", first.text);
        assert!(
            !replayed(&first),
            "{op:?}: a first response is not a replay"
        );
        let after_first = app.all_events().await.len();
        assert!(after_first > before, "{op:?} changed nothing");

        for attempt in 0..2 {
            let again = post(&app, &a, &req.path, &req.body, key(&k)).await;
            assert_eq!(
                again.status, first.status,
                "{op:?} attempt {attempt}: {}",
                again.text
            );
            assert_eq!(
                again.text,
                stored_form(&first.text),
                "{op:?} attempt {attempt}: body differs"
            );
            assert!(
                replayed(&again),
                "{op:?}: no idempotent-replayed header: {:?}",
                again.headers
            );
            assert_eq!(
                again.headers["content-type"], first.headers["content-type"],
                "{op:?}"
            );
        }
        assert_eq!(
            app.all_events().await.len(),
            after_first,
            "{op:?}: a replay had an effect"
        );
    }
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_idempotency_key_reused_and_changes_nothing() {
    let (app, a, _) = setup().await;
    for op in OPS {
        let req = op.prepare(&app, &a).await;
        let k = format!("reused-{op:?}");
        let first = post(&app, &a, &req.path, &req.body, key(&k)).await;
        assert_eq!(first.status, op.success(), "{op:?}: {}", first.text);
        let after_first = app.all_events().await.len();

        let r = post(&app, &a, &req.path, &req.other_body, key(&k)).await;
        assert_eq!(r.code(), "IDEMPOTENCY_KEY_REUSED", "{op:?}: {}", r.text);
        assert_error(&r, 422, "IDEMPOTENCY_KEY_REUSED", None);
        assert_eq!(
            app.all_events().await.len(),
            after_first,
            "{op:?}: a refused request had an effect"
        );
        // The original request still replays.
        let again = post(&app, &a, &req.path, &req.body, key(&k)).await;
        assert!(
            replayed(&again) && again.text == stored_form(&first.text),
            "{op:?}: {}",
            again.text
        );
    }
}

#[tokio::test]
async fn the_same_key_from_another_caller_is_a_separate_request() {
    let (app, a, b) = setup().await;
    for op in OPS {
        let k = format!("shared-{op:?}");
        let req_a = op.prepare(&app, &a).await;
        let first = post(&app, &a, &req_a.path, &req_a.body, key(&k)).await;
        assert_eq!(first.status, op.success(), "{op:?}: {}", first.text);

        let req_b = op.prepare(&app, &b).await;
        let before = app.all_events().await.len();
        let r = post(&app, &b, &req_b.path, &req_b.body, key(&k)).await;
        assert_eq!(r.status, op.success(), "{op:?}: {}", r.text);
        assert!(
            !replayed(&r),
            "{op:?}: another caller got the first caller's stored response"
        );
        assert!(
            app.all_events().await.len() > before,
            "{op:?}: the second caller's request had no effect"
        );
        if req_a.body == req_b.body && req_a.path == req_b.path {
            assert_ne!(
                r.body["id"], first.body["id"],
                "{op:?}: same entity for two callers"
            );
        }
    }
}

#[tokio::test]
async fn the_same_key_for_another_operation_of_the_same_caller_is_a_separate_request() {
    let (app, a, _) = setup().await;
    for op in OPS {
        let req = op.prepare(&app, &a).await;
        let before = app.all_events().await.len();
        let r = post(
            &app,
            &a,
            &req.path,
            &req.body,
            key("one-key-for-everything"),
        )
        .await;
        assert_eq!(r.status, op.success(), "{op:?}: {}", r.text);
        assert!(
            !replayed(&r),
            "{op:?}: answered with another operation's response"
        );
        assert!(
            app.all_events().await.len() > before,
            "{op:?} had no effect"
        );
    }
}

#[tokio::test]
async fn an_over_long_or_non_visible_key_is_400_and_writes_nothing() {
    let (app, a, _) = setup().await;
    let bad: [(&str, HeaderValue); 5] = [
        ("129 characters", hv("k".repeat(129).as_bytes())),
        ("empty", hv(b"")),
        ("a space", hv(b"two words")),
        ("a tab", hv(b"tab\there")),
        ("non-ASCII", hv("cl\u{e9}".as_bytes())),
    ];
    for op in OPS {
        let req = op.prepare(&app, &a).await;
        let before = app.all_events().await.len();
        for (what, k) in &bad {
            let r = post(&app, &a, &req.path, &req.body, Some(k.clone())).await;
            assert_eq!(r.status, 400, "{op:?} with {what}: {}", r.text);
            assert_error(&r, 400, "VALIDATION_ERROR", Some("Idempotency-Key"));
        }
        assert_eq!(
            app.all_events().await.len(),
            before,
            "{op:?}: a refused key had an effect"
        );
        // 128 visible characters are fine.
        let r = post(&app, &a, &req.path, &req.body, key(&"K".repeat(128))).await;
        assert_eq!(r.status, op.success(), "{op:?}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_requests_with_one_key_have_exactly_one_effect() {
    let (app, a, _) = setup().await;
    for op in OPS {
        // What one request does, measured on a twin fixture.
        let twin = op.prepare(&app, &a).await;
        let before = app.all_events().await.len();
        let r = post(
            &app,
            &a,
            &twin.path,
            &twin.body,
            key(&format!("twin-{op:?}")),
        )
        .await;
        assert_eq!(r.status, op.success(), "{op:?}: {}", r.text);
        let one_effect = app.all_events().await.len() - before;

        let req = op.prepare(&app, &a).await;
        let k = format!("burst-{op:?}");
        let before = app.all_events().await.len();
        let responses =
            join_all((0..8).map(|_| post(&app, &a, &req.path, &req.body, key(&k)))).await;
        assert_eq!(
            app.all_events().await.len() - before,
            one_effect,
            "{op:?}: not exactly one effect"
        );

        let fresh: Vec<&Resp> = responses
            .iter()
            .filter(|r| r.status.as_u16() == op.success() && !replayed(r))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "{op:?}: {:?}",
            responses.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
        for r in &responses {
            let ok = if replayed(r) {
                r.status == fresh[0].status && r.text == stored_form(&fresh[0].text)
            } else if r.status == 409 {
                r.code() == "IDEMPOTENCY_KEY_IN_USE"
            } else {
                std::ptr::eq(r, fresh[0])
            };
            assert!(ok, "{op:?}: unexpected {} {}", r.status, r.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_rewards_with_one_key_write_exactly_one_ledger_entry() {
    let (app, a, _) = setup().await;
    let player = app.player().await;
    let body = reward_body(&player, &a.0, 250, REASON).to_string();
    let responses =
        join_all((0..8).map(|_| post(&app, &a, REWARDS, &body, key("double-click")))).await;
    for r in &responses {
        let ok = match r.status.as_u16() {
            201 => true,
            200 => replayed(r),
            409 => r.code() == "IDEMPOTENCY_KEY_IN_USE",
            _ => false,
        };
        assert!(ok, "unexpected {} {}", r.status, r.text);
    }
    assert_eq!(
        responses
            .iter()
            .filter(|r| r.status == 201 && !replayed(r))
            .count(),
        1
    );
    let entries = app.ledger_oldest_first(&player).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(app.balance(&player).await, 250);
    for r in responses.iter().filter(|r| r.status != 409) {
        assert_eq!(r.body["id"], entries[0]["id"], "{}", r.text);
    }
}
