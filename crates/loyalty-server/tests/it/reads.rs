//! The read API the console needs (issue 12 point 1; DESIGN §5): finding
//! players, lists of tables and slips, the points preview, the manual-reward
//! frequency report.

use serde_json::{Value, json};

use crate::common::{Call, Resp, TestApp};
use crate::support::*;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "id").to_string())
        .collect()
}

/// Every page of `path` (which has a `?`), collecting the `key` lists.
async fn all_pages(first: Call<'_>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut page = first.clone();
    loop {
        let r = page.await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(ids(&r.body[key]));
        match r.body["next_cursor"].as_str() {
            Some(c) => page = first.clone().query(format!("cursor={c}")),
            None => return out,
        }
    }
}

async fn new_player(app: &TestApp, name: &str, card: Option<&str>) -> String {
    let mut body = json!({"display_name": name});
    if let Some(c) = card {
        body["card_number"] = json!(c);
    }
    let r = app.create_player(&app.admin_token, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    s(&r.body, "id").to_string()
}

#[tokio::test]
async fn players_are_found_by_card_prefix_or_name_and_paged() {
    let app = TestApp::spawn().await;
    let ann = new_player(&app, "Ann Lee", Some("C-1001")).await;
    let anna = new_player(&app, "Anna Marlowe", Some("C-1002")).await;
    let bob = new_player(&app, "Bob Leeson", Some("D-2001")).await;
    let zoe = new_player(&app, "Zoë Ångström", None).await;
    let found = |r: &Resp| {
        let mut v = ids(&r.body["players"]);
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    let app = &app;
    let get = |q: &str| app.list_players(&app.admin_token).query(format!("q={q}"));
    assert_eq!(found(&get("C-100").await), sorted(vec![&ann, &anna]));
    assert_eq!(found(&get("D-2").await), vec![bob.clone()]);
    // Case-insensitive name substring, short and long.
    assert_eq!(found(&get("lee").await), sorted(vec![&ann, &bob]));
    assert_eq!(found(&get("LEESON").await), vec![bob.clone()]);
    assert_eq!(found(&get("an").await), sorted(vec![&ann, &anna]));
    assert_eq!(found(&get("%C3%85NGSTR").await), vec![zoe.clone()]);
    // A card prefix is not a substring; wildcards are literal.
    assert!(found(&get("1001").await).is_empty());
    assert!(found(&get("%25").await).is_empty());
    assert!(found(&get("_").await).is_empty());
    // Every player, newest first, over pages of two.
    let every = all_pages(
        app.list_players(&app.admin_token).query("limit=2"),
        "players",
    )
    .await;
    assert_eq!(every, vec![zoe, bob, anna, ann]);
    // Bad input.
    for (q, field) in [
        ("q=".to_string() + &"x".repeat(201), "q"),
        ("limit=0".into(), "limit"),
        ("limit=1001".into(), "limit"),
        ("cursor=00ff".into(), "cursor"),
    ] {
        let r = app.list_players(&app.admin_token).query(&q).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], field, "{}", r.text);
    }
}

#[tokio::test]
async fn tables_and_slips_list_newest_first_with_filters() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let t1 = app.table().await;
    let t2 = app.table().await;
    let all_tables = all_pages(app.list_tables(&app.admin_token).query("limit=1"), "tables").await;
    assert_eq!(all_tables, vec![t2.clone(), t1.clone()]);
    let p1 = app.player().await;
    let p2 = app.player().await;
    let mut slips = Vec::new();
    for (p, t) in [(&p1, &t1), (&p2, &t1), (&p1, &t2), (&p2, &t2)] {
        slips.push(s(&app.open_slip(p, t, "25", None).await, "id").to_string());
    }
    let r = app
        .complete_slip(&app.admin_token, &slips[0], json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.pause_slip(&app.admin_token, &slips[3]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let app = &app;
    let list = |q: String| async move {
        all_pages(
            app.list_slips(&app.admin_token)
                .query(format!("limit=2{q}")),
            "rating_slips",
        )
        .await
    };
    let rev = |v: Vec<&String>| v.into_iter().rev().cloned().collect::<Vec<_>>();
    assert_eq!(list(String::new()).await, rev(slips.iter().collect()));
    assert_eq!(
        list(format!("&table_id={t1}")).await,
        rev(vec![&slips[0], &slips[1]])
    );
    assert_eq!(
        list(format!("&player_id={p2}")).await,
        rev(vec![&slips[1], &slips[3]])
    );
    assert_eq!(
        list("&status=OPEN".into()).await,
        rev(vec![&slips[1], &slips[2]])
    );
    assert_eq!(list("&status=CLOSED".into()).await, vec![slips[0].clone()]);
    assert_eq!(
        list(format!("&status=PAUSED&table_id={t2}")).await,
        vec![slips[3].clone()]
    );
    for q in ["status=DONE", "table_id=12", "player_id=x"] {
        let r = app.list_slips(&app.admin_token).query(q).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn the_preview_is_what_completion_accrues_at_the_same_instant_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app
        .table_with(
            json!({"name": "Short table", "game_type": "baccarat", "house_edge": "1.2",
                           "average_rounds_per_hour": 70, "seats_available": 4}),
        )
        .await;
    app.set_clock(T0).await;
    let slip = app
        .open_slip(&player, &table, "37.5", Some(&at(T0, -min(95))))
        .await;
    let id = s(&slip, "id").to_string();

    let before = app.all_events().await.len();
    app.set_clock(T0).await;
    let preview = app.slip_preview(&app.admin_token, &id).await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    for field in [
        "points",
        "theo",
        "rounds",
        "seconds_played",
        "tier_multiplier",
        "bonuses",
    ] {
        assert!(
            preview.body.get(field).is_some(),
            "preview without {field}: {}",
            preview.text
        );
    }
    assert_eq!(preview.body["seconds_played"], 95 * 60);
    let bonuses: Vec<&str> = preview.body["bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| s(b, "name"))
        .collect();
    assert_eq!(bonuses, ["empty_seats", "long_session"]);
    assert_eq!(
        app.all_events().await.len(),
        before,
        "the preview wrote something"
    );
    assert_eq!(app.loyalty(&player).await["current_balance"], 0);

    app.set_clock(T0).await;
    let done = app.complete_slip(&app.admin_token, &id, json!({})).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(
        done.body["loyalty"]["points_earned"],
        preview.body["points"]
    );
    assert!(preview.body["points"].as_i64().unwrap() > 0);

    let closed = app.slip_preview(&app.admin_token, &id).await;
    assert_error(&closed, 409, "SLIP_NOT_OPEN");
    let nobody = app
        .slip_preview(&app.admin_token, &uuid::Uuid::now_v7().to_string())
        .await;
    assert_error(&nobody, 404, "NOT_FOUND");
}

#[tokio::test]
async fn the_manual_reward_report_counts_per_staff_member_and_bucket() {
    let app = TestApp::spawn().await;
    app.set_clock(T0).await;
    let (a_id, a) = app.staff("pit_boss").await;
    let (b_id, b) = app.staff("supervisor").await;
    let player = app.player().await;
    let reward = |token: String, staff: String, points: i64, n: usize| {
        let player = player.clone();
        let app = &app;
        async move {
            let r = app
                .manual_reward(
                    &token,
                    json!({"player_id": player, "staff_id": staff, "points": points,
                             "reason": format!("report test reward {n}")}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    };
    // 12:00–12:59: a ×3 (10 each), b ×1 (50); 14:xx: a ×1 (7), b −5.
    for n in 0..3 {
        reward(a.clone(), a_id.clone(), 10, n).await;
    }
    reward(b.clone(), b_id.clone(), 50, 3).await;
    app.set_clock(&at(T0, min(125))).await;
    reward(a.clone(), a_id.clone(), 7, 4).await;
    reward(b.clone(), b_id.clone(), -5, 5).await;

    let hours = app
        .manual_rewards_report(&app.admin_token)
        .query(format!(
            "from={}&to={}&bucket=hour",
            at(T0, -min(60)),
            at(T0, min(240))
        ))
        .await;
    assert_eq!(hours.status, 200, "{}", hours.text);
    let rows: Vec<(String, String, i64, i64)> = hours.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                s(r, "staff_id").to_string(),
                s(r, "bucket_start").to_string(),
                r["count"].as_i64().unwrap(),
                r["points"].as_i64().unwrap(),
            )
        })
        .collect();
    let h = |m: i64| at(T0, min(m));
    let mut want = vec![
        (a_id.clone(), h(0), 3, 30),
        (b_id.clone(), h(0), 1, 50),
        (a_id.clone(), h(120), 1, 7),
        (b_id.clone(), h(120), 1, -5),
    ];
    let mut got = rows.clone();
    for v in [&mut want, &mut got] {
        v.sort();
    }
    let norm = |v: Vec<(String, String, i64, i64)>| {
        v.into_iter()
            .map(|(s, t, c, p)| (s, t.parse::<jiff::Timestamp>().unwrap(), c, p))
            .collect::<Vec<_>>()
    };
    assert_eq!(norm(got), norm(want));
    assert_eq!(hours.body["alert"]["threshold"], 20);

    let days = app
        .manual_rewards_report(&app.admin_token)
        .query(format!(
            "from={}&to={}&bucket=day",
            at(T0, -min(720)),
            at(T0, min(720))
        ))
        .await;
    let per_staff: Vec<i64> = days.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .collect();
    assert_eq!(per_staff.iter().sum::<i64>(), 6);
    assert_eq!(per_staff.len(), 2, "{}", days.text);

    for q in [
        format!("to={}", at(T0, 0)),
        format!("from={}", at(T0, 0)),
        format!("from={}&to={}", at(T0, 0), at(T0, 0)),
        format!("from={}&to={}&bucket=week", at(T0, 0), at(T0, min(60))),
        format!(
            "from={}&to={}&bucket=hour",
            at(T0, 0),
            at(T0, min(60 * 24 * 32))
        ),
        format!("from=yesterday&to={}", at(T0, 0)),
    ] {
        let r = app.manual_rewards_report(&app.admin_token).query(&q).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let r = app
        .manual_rewards_report(&a)
        .query(format!("from={}&to={}", at(T0, 0), at(T0, min(60))))
        .await;
    assert_error(&r, 403, "FORBIDDEN");
}
