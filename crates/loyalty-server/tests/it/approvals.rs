//! Dual control over HTTP (DESIGN §9): 202 with a PENDING approval and
//! nothing in the ledger; 403 SELF_APPROVAL; approval by a second
//! supervisor writes the entry with both ids; repeats answer the first
//! result; rejections, lapses (test clock); the rate limit and the
//! frequency alert count requests when they are made.

use serde_json::{Value, json};

use crate::common::{Resp, TestApp};
use crate::support::{T0, assert_error, at, eventually, min};

fn body(player: &str, staff: &str, points: i64, n: u32) -> Value {
    json!({"player_id": player, "staff_id": staff, "points": points,
           "reason": format!("dual control request number {n}")})
}

async fn ask(app: &TestApp, token: &str, b: Value) -> Resp {
    app.manual_reward(token, b).await
}

async fn decide(app: &TestApp, token: &str, id: &str, action: &str, b: Value) -> Resp {
    app.decide_approval(token, id, action, b).await
}

#[tokio::test]
async fn large_rewards_wait_for_a_second_supervisor() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--dual-control-threshold",
        "500",
        "--reward-rate-limit",
        "100",
    ])
    .await;
    app.set_clock(T0).await;
    let player = app.player().await;
    let (maker, maker_token) = app.staff("supervisor").await;
    let (checker, checker_token) = app.staff("supervisor").await;
    let (_, cashier) = app.staff("cashier").await;

    // Below the threshold: written at once.
    let r = ask(&app, &maker_token, body(&player, &maker, 499, 1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // At or above it: waits.
    let r = ask(&app, &maker_token, body(&player, &maker, 500, 2)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let approval = r.body["approval"].clone();
    let id = approval["id"].as_str().unwrap().to_string();
    assert_eq!(approval["status"], "PENDING");
    assert_eq!(approval["requested_by"], maker.as_str());
    assert_eq!(app.ledger(&player).await.len(), 1, "nothing written yet");
    let again = ask(&app, &maker_token, body(&player, &maker, 500, 2)).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["approval"]["id"], id.as_str());
    assert_eq!(again.body["idempotent_replay"], true);

    let r = decide(&app, &maker_token, &id, "approve", json!({})).await;
    assert_error(&r, 403, "SELF_APPROVAL");
    let r = decide(&app, &cashier, &id, "approve", json!({})).await;
    assert_error(&r, 403, "FORBIDDEN");
    let pending = app.approvals(&checker_token).query("status=PENDING").await;
    assert_eq!(pending.body["approvals"][0]["id"], id.as_str());

    let r = decide(&app, &checker_token, &id, "approve", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["approval"]["status"], "APPROVED");
    let entry = &r.body["ledger_entry"];
    assert_eq!(entry["staff_id"], maker.as_str());
    assert_eq!(entry["approved_by"], checker.as_str());
    assert_eq!(entry["points_change"], 500);
    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["approved_by"], checker.as_str());
    assert!(
        entries[1].get("approved_by").is_none(),
        "only approved entries carry it"
    );
    let twice = decide(&app, &checker_token, &id, "approve", json!({})).await;
    assert_eq!(twice.status, 200, "{}", twice.text);
    assert_eq!(twice.body["idempotent_replay"], true);
    assert_eq!(app.ledger(&player).await.len(), 2);
    // The approved request sent again replays its entry.
    let r = ask(&app, &maker_token, body(&player, &maker, 500, 2)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], entry["id"]);

    // Rejected, then too late to approve.
    let r = ask(&app, &maker_token, body(&player, &maker, -700, 3)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id2 = r.body["approval"]["id"].as_str().unwrap().to_string();
    let r = decide(
        &app,
        &checker_token,
        &id2,
        "reject",
        json!({"reason": "no"}),
    )
    .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = decide(
        &app,
        &checker_token,
        &id2,
        "reject",
        json!({"reason": "no reason to adjust"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["approval"]["status"], "REJECTED");
    let r = decide(&app, &checker_token, &id2, "approve", json!({})).await;
    assert_error(&r, 409, "APPROVAL_NOT_PENDING");
    assert_eq!(r.body["approval"]["status"], "REJECTED");

    // Lapsed after 24 hours.
    let r = ask(&app, &maker_token, body(&player, &maker, 600, 4)).await;
    let id3 = r.body["approval"]["id"].as_str().unwrap().to_string();
    app.set_clock(&at(T0, min(24 * 60 + 1))).await;
    let expired = app.approvals(&checker_token).query("status=EXPIRED").await;
    assert_eq!(expired.body["approvals"][0]["id"], id3.as_str());
    let r = decide(&app, &checker_token, &id3, "approve", json!({})).await;
    assert_error(&r, 409, "APPROVAL_NOT_PENDING");
    assert_eq!(r.body["approval"]["status"], "EXPIRED");
    assert_eq!(app.ledger(&player).await.len(), 2);

    let decided = app
        .events(&app.admin_token)
        .query("event_type=APPROVAL_DECIDED")
        .await;
    let statuses: Vec<&str> = decided.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["APPROVED", "REJECTED", "EXPIRED"]);
    assert!(
        app.logs()
            .iter()
            .any(|l| l["message"] == "approval_decided" && l["status"] == "APPROVED")
    );
}

#[tokio::test]
async fn requests_count_against_the_rate_limit_and_the_alert_when_made() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--dual-control-threshold",
        "100",
        "--reward-rate-limit",
        "21",
    ])
    .await;
    app.set_clock(T0).await;
    let player = app.player().await;
    let (maker, token) = app.staff("supervisor").await;
    for n in 0..21 {
        let r = ask(&app, &token, body(&player, &maker, 100, n)).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // The 22nd in the minute is over the limit, though nothing was written.
    let r = ask(&app, &token, body(&player, &maker, 5, 99)).await;
    assert_error(&r, 429, "RATE_LIMIT_EXCEEDED");
    assert!(app.ledger(&player).await.is_empty());
    // 21 requests in an hour: the frequency alert, from requests alone.
    let alert = eventually(std::time::Duration::from_secs(10), "an alert", || async {
        let r = app.alerts(&app.admin_token).await;
        r.body["alerts"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(alert["staff_id"], maker.as_str());
    assert_eq!(alert["count"], 21);
}
