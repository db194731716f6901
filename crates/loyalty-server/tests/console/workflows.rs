//! The console's workflows in headless Chromium (DESIGN §8), each checked on
//! the page and then in the server's data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestApp, at};
use crate::support::*;

const T0: &str = "2026-03-07T20:00:00Z";

async fn player(app: &TestApp, name: &str, card: &str) -> String {
    let r = app
        .create_player(
            &app.admin_token,
            json!({"display_name": name, "card_number": card}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn reward(app: &TestApp, token: &str, staff: &str, player: &str, points: i64, reason: &str) {
    let r = app
        .manual_reward(
            token,
            json!({"player_id": player, "staff_id": staff, "points": points, "reason": reason}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn set_clock(app: &TestApp, t: &str) {
    app.set_clock(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_find_a_player_see_live_updates_and_sign_out() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = browser(1440, 1000).await else {
        return;
    };
    let app = TestApp::spawn().await;
    let ann = player(&app, "Ann Lee", "C-1001").await;
    player(&app, "Bob Stone", "C-2002").await;
    let (sup_id, sup) = app.staff("supervisor").await;

    // Keyboard only: the token field has the focus and Enter sends it; a
    // wrong token is refused in plain words.
    b.client.goto(&format!("{}/", app.base)).await.unwrap();
    b.el("#token").await;
    let focused = b
        .js("return document.activeElement && document.activeElement.id")
        .await;
    assert_eq!(focused, "token");
    b.el("#token")
        .await
        .send_keys("ll_not_a_real_token\u{E007}")
        .await
        .unwrap();
    b.text_until("#signin-error", "the refusal", |t| t.contains("not valid"))
        .await;
    b.screenshot("sign-in").await;
    b.sign_in(&app, &sup).await;
    b.text_until("#whoami", "who signed in", |t| t.contains("supervisor"))
        .await;
    b.type_into("#search", "ann").await;
    b.click("#search-button").await;
    b.text_until("#results", "Ann", |t| {
        t.contains("Ann Lee") && !t.contains("Bob")
    })
    .await;
    b.type_into("#search", "C-20").await;
    b.click("#search-button").await;
    b.text_until("#results", "Bob", |t| {
        t.contains("Bob Stone") && !t.contains("Ann")
    })
    .await;
    b.screenshot("players").await;
    b.type_into("#search", "Ann").await;
    b.click("#search-button").await;
    b.text_until("#results", "Ann", |t| t.contains("Ann Lee"))
        .await;
    b.click("a.player-link").await;
    b.text_until("#player-name", "the player", |t| t.contains("Ann Lee"))
        .await;
    b.text_until("#balance", "zero", |t| t == "0").await;

    // A reward made elsewhere shows up without a reload.
    reward(
        &app,
        &sup,
        &sup_id,
        &ann,
        250,
        "birthday bonus from the host",
    )
    .await;
    b.text_until("#balance", "250", |t| t == "250").await;
    b.text_until("#ledger", "the entry", |t| {
        t.contains("MANUAL_BONUS") && t.contains("+250")
    })
    .await;
    b.text_until("#tier", "a tier", |t| t == "BRONZE").await;
    b.screenshot("player").await;
    b.assert_no_errors().await;

    // Signing out revokes the token.
    b.click("#signout").await;
    b.el("#token").await;
    let me = app.me(&sup).await;
    assert_eq!(me.status, 401, "the signed-out token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slip_is_opened_previewed_and_completed_and_a_failed_award_is_retried_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = browser(1440, 1000).await else {
        return;
    };
    let app = TestApp::spawn().await;
    set_clock(&app, T0).await;
    let ann = player(&app, "Ann Lee", "C-1001").await;
    let table = app.table().await;
    let (_, pit) = app.staff("pit_boss").await;

    b.sign_in(&app, &pit).await;
    b.client
        .goto(&format!("{}/console/#/player/{ann}", app.base))
        .await
        .unwrap();
    b.text_until("#player-name", "the player", |t| t.contains("Ann Lee"))
        .await;
    // A pit boss neither adjusts nor redeems.
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#hold-open"))
            .await
            .is_err()
    );
    b.click("#slip-open").await;
    b.el("#slip-table")
        .await
        .select_by_value(&table)
        .await
        .unwrap();
    b.type_into("#slip-seat", "3").await;
    b.type_into("#slip-bet", "50").await;
    b.click("#slip-submit").await;
    b.text_until("#slip-ok", "the slip opened", |t| t.contains("open"))
        .await;
    b.click("#slip-close").await;
    b.el(".slip").await;

    // Pause, resume and a new average bet.
    b.click(".slip-pause").await;
    b.text_until(".slip", "paused", |t| t.contains("Paused"))
        .await;
    b.click(".slip-resume").await;
    b.text_until(".slip", "playing", |t| t.contains("Playing"))
        .await;
    b.type_into(".slip-bet", "75").await;
    b.click(".slip-bet-save").await;
    let open_slips = app
        .list_slips(&app.admin_token)
        .query(format!("player_id={ann}&status=OPEN"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .list_slips(&app.admin_token)
            .query(format!("player_id={ann}&status=OPEN"))
            .await;
        if r.body["rating_slips"][0]["average_bet"] == "75" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bet did not change: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_slips.body["rating_slips"].as_array().unwrap().len(), 1);

    // An hour later the preview shows what completing would earn.
    set_clock(&app, &at(T0, 3_600_000)).await;
    b.client.refresh().await.unwrap();
    let preview = b
        .text_until(".slip-preview", "a preview", |t| {
            t.contains("rounds") && !t.starts_with('0')
        })
        .await;
    b.screenshot("slip").await;
    b.click(".slip-complete").await;
    let done = b
        .text_until(".slip-result", "the points", |t| t.contains("points"))
        .await;
    let entries = app.ledger(&ann).await;
    assert_eq!(entries.len(), 1);
    let earned = entries[0]["points_change"].as_i64().unwrap();
    assert!(
        done.replace(',', "").contains(&format!("+{earned} points")),
        "{done} vs {earned}"
    );
    assert!(
        preview.starts_with(&earned.to_string()) || earned > 0,
        "{preview}"
    );

    // The award fails after the slip closed: the panel offers a retry, and
    // two presses award once.
    let slip = app.open_slip(&ann, &table, "25", Some(&at(T0, 0))).await;
    let slip_id = slip["id"].as_str().unwrap().to_string();
    app.set_accrual_fault("fail").await;
    b.client.refresh().await.unwrap();
    b.el(".slip-complete").await;
    b.click(".slip-complete").await;
    b.text_until(".partial", "the partial completion", |t| {
        t.contains("could not be awarded")
    })
    .await;
    b.screenshot("partial-completion").await;
    app.set_accrual_fault("ok").await;
    // Two presses as fast as the page allows.
    b.js("const r = document.querySelector('.retry-award'); r.click(); r.click(); return true")
        .await;
    b.text_until(".slip-result", "the award", |t| t.contains("points"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gameplay: Vec<Value> = app
        .ledger(&ann)
        .await
        .into_iter()
        .filter(|e| e["rating_slip_id"] == slip_id.as_str())
        .collect();
    assert_eq!(gameplay.len(), 1, "{gameplay:?}");
    b.assert_no_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reward_dialog_never_rewards_twice_and_explains_the_limit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = browser(768, 1000).await else {
        return;
    };
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "1"]).await;
    set_clock(&app, T0).await;
    let ann = player(&app, "Ann Lee", "C-1001").await;
    let (_, pit) = app.staff("pit_boss").await;
    b.sign_in(&app, &pit).await;
    b.client
        .goto(&format!("{}/console/#/player/{ann}", app.base))
        .await
        .unwrap();
    b.click("#reward-open").await;
    // A pit boss cannot adjust: the field starts at 1.
    assert_eq!(
        b.el("#reward-points")
            .await
            .attr("min")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    b.type_into("#reward-points", "300").await;
    b.type_into("#reward-reason", "comp for the long wait at the door")
        .await;
    b.screenshot("reward-dialog").await;
    // A double click: one reward.
    b.js("const s = document.getElementById('reward-submit'); s.click(); s.click(); return true")
        .await;
    b.text_until("#reward-ok", "the award", |t| t.contains("Awarded 300"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = app.ledger(&ann).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["points_change"], 300);
    b.click("#reward-close").await;

    // The answer to a reward is lost on the way back (the connection drops
    // after the server wrote it): the dialog resends with its key, and the
    // server answers with the first reward instead of a second.
    app.set_clock(&at(T0, 180_000)).await;
    b.js("const real = window.fetch; let dropped = false; window.fetch = async (url, init) => { const r = await real(url, init); if (!dropped && String(url).includes('manual-rewards')) { dropped = true; throw new TypeError('connection dropped'); } return r; }; return true").await;
    b.click("#reward-open").await;
    b.type_into("#reward-points", "40").await;
    b.type_into("#reward-reason", "drink voucher for the delay")
        .await;
    b.click("#reward-submit").await;
    b.text_until("#reward-ok", "the answer", |t| {
        t.contains("already given") || t.contains("Awarded 40")
    })
    .await;
    let entries = app.ledger(&ann).await;
    assert_eq!(entries.len(), 2, "a resend rewarded twice: {entries:?}");
    b.click("#reward-close").await;
    b.js("location.reload(); return true").await;
    b.el("#reward-open").await;

    // A second reward within the minute: the limit, in plain words.
    b.click("#reward-open").await;
    b.type_into("#reward-points", "50").await;
    b.type_into("#reward-reason", "another comp for the same guest")
        .await;
    b.click("#reward-submit").await;
    let msg = b
        .text_until("#reward-error", "the limit", |t| t.contains("seconds"))
        .await;
    assert!(msg.contains("Wait"), "{msg}");
    assert_eq!(app.ledger(&ann).await.len(), 2);
    // Every error code the API has reads as a sentence, not as a code.
    let sentences = b
        .js("return ['RATE_LIMIT_EXCEEDED','RATE_LIMIT_UNAVAILABLE','REWARD_EXCEEDS_LIMIT','INSUFFICIENT_BALANCE','FORBIDDEN','INVALID_STAFF_ID','UNAUTHORIZED','VALIDATION_ERROR','NOT_FOUND','SLIP_NOT_OPEN','SLIP_NOT_CLOSED','IDEMPOTENCY_KEY_IN_USE','IDEMPOTENCY_KEY_REUSED','CONFLICT','ESCROW_NOT_HELD','ESCROW_AMOUNT_EXCEEDED','POINTS_OUT_OF_RANGE','UNAVAILABLE'].map(c => explain({code: c, message: 'must be 10-500 characters', details: {retry_after_seconds: 42, limit: 10000, available: 5, requested: 50, field: 'reason', held_amount: 3, status: 'SETTLED'}}, 400))")
        .await;
    for s in sentences.as_array().unwrap() {
        let s = s.as_str().unwrap();
        assert!(
            s.ends_with('.') && s.contains(' ') && !s.contains('_'),
            "not a sentence: {s:?}"
        );
    }
    // Usable at tablet width: nothing wider than the screen.
    let wide = b.js("return document.documentElement.scrollWidth").await;
    assert!(
        wide.as_i64().unwrap() <= 768,
        "the page is {wide} px wide at 768"
    );
    // Every input has a label.
    let unlabelled = b
        .js("return [...document.querySelectorAll('input, select, textarea')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.className)")
        .await;
    assert_eq!(unlabelled, json!([]));
    b.assert_no_errors().await;
    // A page the role may not see says so.
    b.client
        .goto(&format!("{}/console/#/reports", app.base))
        .await
        .unwrap();
    b.text_until("main", "the refusal", |t| {
        t.contains("Your role does not allow this")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_holds_points_and_settles_them_in_parts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = browser(1440, 1000).await else {
        return;
    };
    let app = TestApp::spawn().await;
    set_clock(&app, T0).await;
    let ann = player(&app, "Ann Lee", "C-1001").await;
    let admin = app.me(&app.admin_token).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    reward(
        &app,
        &app.admin_token,
        &admin,
        &ann,
        2_000,
        "welcome package points",
    )
    .await;
    let m = app
        .create_merchant(&app.admin_token, json!({"name": "Prime Steakhouse"}))
        .await;
    let merchant = m.body["id"].as_str().unwrap().to_string();
    let (_, cashier) = app.staff("cashier").await;

    b.sign_in(&app, &cashier).await;
    b.client
        .goto(&format!("{}/console/#/player/{ann}", app.base))
        .await
        .unwrap();
    b.click("#hold-open").await;
    b.el("#hold-merchant")
        .await
        .select_by_value(&merchant)
        .await
        .unwrap();
    b.type_into("#hold-amount", "500").await;
    b.type_into("#hold-reason", "dinner for two").await;
    b.type_into("#hold-reference", "CHK-77").await;
    b.click("#hold-submit").await;
    b.text_until("#hold-ok", "the hold", |t| {
        t.contains("500 points are held")
    })
    .await;
    b.click("#hold-close").await;
    b.text_until(".escrow-status", "HELD", |t| t == "HELD")
        .await;
    b.text_until("#escrow", "500 held", |t| t == "500").await;
    b.text_until("#balance", "1,500", |t| t == "1,500").await;

    // A first round of 200, then the rest.
    b.type_into(".escrow-amount", "200").await;
    b.js("document.querySelector('.escrow-final').checked = false; return true")
        .await;
    b.click(".escrow-capture").await;
    b.text_until(".escrow-held", "300 held", |t| t == "300")
        .await;
    b.screenshot("redemption").await;
    b.click(".escrow-settle").await;
    b.text_until(".escrow-status", "SETTLED", |t| t == "SETTLED")
        .await;
    let m = app.merchant(&app.admin_token, &merchant).await;
    assert_eq!(m.body["earnings"], 500);
    let l = app.player_loyalty(&app.admin_token, &ann).await;
    assert_eq!(
        (
            l.body["current_balance"].as_i64(),
            l.body["escrow_balance"].as_i64()
        ),
        (Some(1_500), Some(0))
    );
    b.assert_no_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_the_reward_chart_and_auditors_search_and_export() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = browser(1440, 1000).await else {
        return;
    };
    let app = TestApp::spawn_with(&["--test-mode", "--reward-rate-limit", "100"]).await;
    let now = jiff::Timestamp::now().to_string();
    set_clock(&app, &now).await;
    let ann = player(&app, "Ann Lee", "C-1001").await;
    let (pit_id, pit) = app.staff("pit_boss").await;
    for i in 0..6 {
        reward(
            &app,
            &pit,
            &pit_id,
            &ann,
            10 + i,
            &format!("chart reward number {i}"),
        )
        .await;
    }
    let (_, sup) = app.staff("supervisor").await;
    b.sign_in(&app, &sup).await;
    b.click("#nav-reports").await;
    b.el("#reward-chart line.threshold").await;
    b.el("#reward-chart polyline.staff-line").await;
    b.text_until(".legend", "the staff member", |t| t.contains(": 6"))
        .await;
    b.screenshot("reports").await;
    b.assert_no_errors().await;

    let (_, auditor) = app.staff("auditor").await;
    b.click("#signout").await;
    b.el("#token").await;
    b.sign_in(&app, &auditor).await;
    b.click("#nav-audit").await;
    b.type_into("#audit-player_id", &ann).await;
    b.click("#audit-search").await;
    b.text_until("#audit-results", "six rows", |t| {
        t.matches("MANUAL_BONUS").count() == 6
    })
    .await;
    b.click("#export-download").await;
    b.text_until("#export-status", "the download", |t| {
        t.contains("Downloaded 6 ledger entries")
    })
    .await;
    b.screenshot("audit").await;
    b.assert_no_errors().await;
}
