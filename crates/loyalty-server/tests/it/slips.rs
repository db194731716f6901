//! Rating slips over HTTP: open, pause/resume, bet changes, snapshots,
//! explicit times, completion and its replay, tiers (DESIGN §3.1–§3.3).
//!
//! The default test table is 2.7 % house edge, 60 rounds/h, conversion 10,
//! multiplier 1, 7 seats, so points = bet × rounds × 0.27 × tier multiplier.

use jiff::SignedDuration;
use serde_json::json;

use crate::common::TestApp;
use crate::support::{T0, assert_error, at, min, play, s, ts};

#[tokio::test]
async fn opening_without_started_at_starts_the_slip_now_on_the_server_clock() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;

    let slip = app.open_slip(&player, &table, "100", None).await;

    assert_eq!(slip["status"], "OPEN");
    assert_eq!(slip["player_id"], player.as_str());
    assert_eq!(slip["table_id"], table.as_str());
    assert_eq!(slip["average_bet"], "100");
    assert_eq!(slip["accumulated_seconds"], 0);
    assert_eq!(slip["loyalty_status"], "NONE");
    let started = ts(&slip["started_at"]);
    let t0 = ts(&json!(T0));
    assert!(
        started >= t0 && started.duration_since(t0) < SignedDuration::from_mins(1),
        "started_at {started} is not the set clock"
    );
    assert_eq!(
        slip["game_settings"],
        json!({"house_edge": "2.7", "average_rounds_per_hour": 60, "points_conversion_rate": "10",
               "point_multiplier": "1", "seats_available": 7})
    );
    assert_eq!(app.slip(s(&slip, "id")).await["id"], slip["id"]);
}

#[tokio::test]
async fn opening_with_a_past_started_at_keeps_that_start() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let start = at(T0, -min(90));

    let slip = app.open_slip(&player, &table, "100", Some(&start)).await;

    assert_eq!(ts(&slip["started_at"]), ts(&json!(start)));
    let done = app
        .complete_slip(&app.admin_token, s(&slip, "id"), json!({"ended_at": T0}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["rating_slip"]["accumulated_seconds"], 5400);
    // 90 rounds > 60/h → ×1.1: 100 × 90 × 0.27 × 1.1 = 2673
    assert_eq!(done.body["loyalty"]["points_earned"], 2673);
}

#[tokio::test]
async fn paused_time_is_not_counted() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app.open_slip(&player, &table, "100", Some(T0)).await;
    let id = s(&slip, "id");

    // Play 20 minutes, pause.
    app.set_clock(&at(T0, min(20))).await;
    let paused = app.pause_slip(&app.admin_token, id).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    assert_eq!(paused.body["status"], "PAUSED");
    assert_eq!(paused.body["accumulated_seconds"], 1200);

    // Ten minutes pass while paused: nothing accrues. The resume happens half
    // a second early so the running test clock cannot tip the total over.
    app.set_clock(&at(T0, min(29))).await;
    assert_eq!(app.slip(id).await["accumulated_seconds"], 1200);
    app.set_clock(&at(T0, min(30) - 500)).await;
    let resumed = app.resume_slip(&app.admin_token, id).await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(resumed.body["status"], "OPEN");

    // Play 15 more minutes, complete at T0 + 45 min.
    let end = at(T0, min(45));
    app.set_clock(&end).await;
    let done = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": end}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);

    // 20 + 15 minutes = 2100 s → 35 rounds → 100 × 35 × 0.27 = 945.
    let rs = &done.body["rating_slip"];
    assert_eq!(rs["status"], "CLOSED");
    assert_eq!(rs["accumulated_seconds"], 2100);
    assert_eq!(ts(&rs["ended_at"]), ts(&json!(end)));
    assert_eq!(done.body["loyalty"]["points_earned"], 945);
    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["points_change"], 945);
}

#[tokio::test]
async fn the_final_average_bet_decides_the_points() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");

    for bet in ["50", "250"] {
        let r = app
            .patch_slip(&app.admin_token, id, json!({"average_bet": bet}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["average_bet"], bet);
    }
    let done = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .await;

    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["rating_slip"]["average_bet"], "250");
    // 250 × 60 rounds × 0.27 = 4050
    assert_eq!(done.body["loyalty"]["points_earned"], 4050);
}

#[tokio::test]
async fn the_bet_may_change_while_paused() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    assert_eq!(app.pause_slip(&app.admin_token, id).await.status, 200);

    let r = app
        .patch_slip(&app.admin_token, id, json!({"average_bet": "20"}))
        .await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PAUSED");
    assert_eq!(r.body["average_bet"], "20");
}

#[tokio::test]
async fn patching_the_table_after_opening_leaves_the_slips_snapshot_and_points() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");

    let patched = app
        .patch_table(
            &app.admin_token,
            &table,
            json!({"house_edge": "5", "seats_available": 3, "point_multiplier": "2"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["house_edge"], "5");
    assert_eq!(patched.body["seats_available"], 3);

    assert_eq!(app.slip(id).await["game_settings"], slip["game_settings"]);
    let done = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(
        done.body["rating_slip"]["game_settings"]["house_edge"],
        "2.7"
    );
    // The snapshot: 100 × 60 × 0.27 = 1620.
    assert_eq!(done.body["loyalty"]["points_earned"], 1620);

    // A slip opened after the patch uses the new settings:
    // 100 × 5 % × 60 × 10 × 2 × (1 + 0.05 × 4) = 7200.
    let other = app.player().await;
    let later = play(&app, &other, &table, "100", &at(T0, -min(60)), T0).await;
    assert_eq!(later["rating_slip"]["game_settings"]["house_edge"], "5");
    assert_eq!(later["loyalty"]["points_earned"], 7200);
}

#[tokio::test]
async fn explicit_times_in_the_future_before_the_start_or_over_24_hours_are_refused() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let open = |started_at: String| {
        let body = json!({"player_id": player, "table_id": table, "average_bet": "10", "started_at": started_at});
        app.create_slip(&app.admin_token, body)
    };

    // started_at in the future, or more than 24 h ago.
    for started_at in [at(T0, min(60)), at(T0, -min(25 * 60))] {
        let r = open(started_at).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], "started_at");
    }

    // ended_at in the future, or before started_at; the slip stays open.
    let slip = app
        .open_slip(&player, &table, "10", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    for ended_at in [at(T0, min(60)), at(T0, -min(120))] {
        let r = app
            .complete_slip(&app.admin_token, id, json!({"ended_at": ended_at}))
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], "ended_at");
    }
    assert_eq!(app.slip(id).await["status"], "OPEN");

    // A slip started 23 h ago and completed 2 h later would last 25 h.
    let long = app
        .open_slip(&player, &table, "10", Some(&at(T0, -min(23 * 60))))
        .await;
    let long_id = s(&long, "id");
    app.set_clock(&at(T0, min(120))).await;
    let r = app
        .complete_slip(&app.admin_token, long_id, json!({}))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "ended_at");
    assert_eq!(app.slip(long_id).await["status"], "OPEN");

    assert!(app.ledger(&player).await.is_empty());
}

#[tokio::test]
async fn a_session_just_under_24_hours_is_accepted() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;

    let done = play(&app, &player, &table, "1", &at(T0, -min(24 * 60 - 1)), T0).await;

    // 86340 s → 1439 rounds (> 60/h → ×1.1): 1 × 1439 × 0.27 × 1.1 = 427.383 → 427
    assert_eq!(done["rating_slip"]["accumulated_seconds"], 86_340);
    assert_eq!(done["loyalty"]["points_earned"], 427);
}

#[tokio::test]
async fn completing_twice_replays_the_first_result_and_writes_one_entry() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "150", Some(&at(T0, -min(3))))
        .await;
    let id = s(&slip, "id");

    let first = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": T0}))
        .await;
    let second = app.complete_slip(&app.admin_token, id, json!({})).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(first.body["loyalty"]["idempotent_replay"], false);
    assert_eq!(second.body["loyalty"]["idempotent_replay"], true);
    let (mut a, mut b) = (
        first.body["loyalty"].clone(),
        second.body["loyalty"].clone(),
    );
    a["idempotent_replay"] = json!(null);
    b["idempotent_replay"] = json!(null);
    assert_eq!(a, b, "the replay must carry the first result's numbers");
    assert_eq!(
        first.body["rating_slip"]["ended_at"],
        second.body["rating_slip"]["ended_at"]
    );
    assert_eq!(first.body["loyalty"]["points_earned"], 122);

    let entries = app.ledger(&player).await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    let l = &first.body["loyalty"];
    assert_eq!(e["id"], l["ledger_entry_id"]);
    assert_eq!(e["points_change"], l["points_earned"]);
    assert_eq!(e["balance_before"], l["balance_before"]);
    assert_eq!(e["balance_after"], l["balance_after"]);
    assert_eq!(e["tier_before"], l["tier_before"]);
    assert_eq!(e["tier_after"], l["tier_after"]);
    assert_eq!(e["rating_slip_id"], id);
    assert_eq!(app.loyalty(&player).await["current_balance"], 122);
}

#[tokio::test]
async fn a_closed_slip_cannot_be_paused_resumed_or_changed() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let done = play(&app, &player, &table, "10", &at(T0, -min(10)), T0).await;
    let id = s(&done["rating_slip"], "id");

    for action in ["pause", "resume"] {
        assert_error(
            &app.slip_action(&app.admin_token, id, action, None).await,
            409,
            "SLIP_NOT_OPEN",
        );
    }
    let r = app
        .patch_slip(&app.admin_token, id, json!({"average_bet": "99"}))
        .await;
    assert_error(&r, 409, "SLIP_NOT_OPEN");

    let slip = app.slip(id).await;
    assert_eq!(slip["status"], "CLOSED");
    assert_eq!(slip["average_bet"], "10");
    assert_eq!(app.ledger(&player).await.len(), 1);
}

#[tokio::test]
async fn pausing_a_paused_slip_or_resuming_an_open_one_is_a_conflict() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let slip = app.open_slip(&player, &table, "10", None).await;
    let id = s(&slip, "id");

    assert_error(
        &app.resume_slip(&app.admin_token, id).await,
        409,
        "CONFLICT",
    );
    assert_eq!(app.pause_slip(&app.admin_token, id).await.status, 200);
    assert_error(&app.pause_slip(&app.admin_token, id).await, 409, "CONFLICT");
    assert_eq!(app.slip(id).await["status"], "PAUSED");
}

#[tokio::test]
async fn a_paused_slip_can_be_completed() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(30))))
        .await;
    let id = s(&slip, "id");
    let paused = app.pause_slip(&app.admin_token, id).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    app.set_clock(&at(T0, min(60))).await;

    let done = app.complete_slip(&app.admin_token, id, json!({})).await;

    // Only the 30 minutes before the pause count: 100 × 30 × 0.27 = 810.
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["rating_slip"]["accumulated_seconds"], 1800);
    assert_eq!(done.body["loyalty"]["points_earned"], 810);
}

#[tokio::test]
async fn a_paused_slip_cannot_end_before_it_was_paused() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    // Entered after the fact: play from T0 − 1 h, paused now (T0).
    let slip = app
        .open_slip(&player, &table, "100", Some(&at(T0, -min(60))))
        .await;
    let id = s(&slip, "id");
    assert_eq!(app.pause_slip(&app.admin_token, id).await.status, 200);

    // Ending half an hour in would credit the hour banked by the pause.
    let r = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": at(T0, -min(30))}))
        .await;

    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "ended_at");
    assert_eq!(app.slip(id).await["status"], "PAUSED");
    assert!(app.ledger(&player).await.is_empty());
    app.set_clock(&at(T0, min(10))).await;
    let done = app
        .complete_slip(&app.admin_token, id, json!({"ended_at": at(T0, min(5))}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["rating_slip"]["accumulated_seconds"], 3600);
    assert_eq!(done.body["loyalty"]["points_earned"], 1620);
}

#[tokio::test]
async fn crossing_1000_lifetime_points_moves_the_player_to_silver() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;

    let fresh = app.loyalty(&player).await;
    assert_eq!(fresh["tier"], "BRONZE");
    assert_eq!(fresh["current_balance"], 0);
    assert_eq!(fresh["tier_progress"], 0);

    // 30 minutes at 100: 810 points each while BRONZE.
    let half_hour = |i: i64| (at(T0, -min(30 * (i + 1))), at(T0, -min(30 * i)));
    let (start, end) = half_hour(2);
    let first = play(&app, &player, &table, "100", &start, &end).await;
    assert_eq!(first["loyalty"]["points_earned"], 810);
    assert_eq!(first["loyalty"]["tier_before"], "BRONZE");
    assert_eq!(first["loyalty"]["tier_after"], "BRONZE");
    assert_eq!(first["loyalty"]["tier_progress"], 81);

    let (start, end) = half_hour(1);
    let second = play(&app, &player, &table, "100", &start, &end).await;
    let l = &second["loyalty"];
    assert_eq!(
        l["points_earned"], 810,
        "earned at the tier before the accrual"
    );
    assert_eq!(
        (l["balance_before"].as_i64(), l["balance_after"].as_i64()),
        (Some(810), Some(1620))
    );
    assert_eq!(l["tier_before"], "BRONZE");
    assert_eq!(l["tier_after"], "SILVER");
    assert_eq!(l["lifetime_points"], 1620);
    // (1620 − 1000) / 4000 = 15.5 % → 16 (halves away from zero)
    assert_eq!(l["tier_progress"], 16);
    let entries = app.ledger(&player).await;
    assert_eq!(entries[0]["id"], l["ledger_entry_id"]);
    assert_eq!(entries[0]["tier_before"], "BRONZE");
    assert_eq!(entries[0]["tier_after"], "SILVER");

    // Now SILVER (×1.25): 810 × 1.25 = 1012.5 → 1013.
    let (start, end) = half_hour(0);
    let third = play(&app, &player, &table, "100", &start, &end).await;
    assert_eq!(third["loyalty"]["points_earned"], 1013);
    assert_eq!(third["loyalty"]["tier_before"], "SILVER");
    assert_eq!(third["loyalty"]["tier_after"], "SILVER");

    let summary = app.loyalty(&player).await;
    assert_eq!(summary["player_id"], player.as_str());
    assert_eq!(summary["current_balance"], 2633);
    assert_eq!(summary["escrow_balance"], 0);
    assert_eq!(summary["lifetime_points"], 2633);
    assert_eq!(summary["tier"], "SILVER");
    // (2633 − 1000) / 4000 = 40.825 % → 41
    assert_eq!(summary["tier_progress"], 41);
    assert_eq!(summary["tier_progress"], third["loyalty"]["tier_progress"]);
    assert_eq!(
        ts(&summary["updated_at"]),
        ts(&app.ledger(&player).await[0]["created_at"])
    );
}

#[tokio::test]
async fn unknown_slips_answer_not_found() {
    let app = TestApp::spawn().await;
    let id = "0196a4d8-0000-7000-8000-000000000000";

    let r = app.get_slip(&app.admin_token, id).await;
    assert_error(&r, 404, "NOT_FOUND");
    for action in ["pause", "resume", "complete", "recover-loyalty"] {
        assert_error(
            &app.slip_action(&app.admin_token, id, action, None).await,
            404,
            "NOT_FOUND",
        );
    }
}
