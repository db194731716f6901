//! Reading the ledger (DESIGN §5): a player's entries newest first with an
//! opaque cursor and filters, the audit search, and the shape of an entry.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::{ENTRY_FIELDS, T0, assert_error, at, min, play, s};

/// Completes `n` half-hour slips for `player` (bets 10, 11, …); returns the
/// ledger entry ids in the order they were written.
async fn earn(app: &TestApp, player: &str, table: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let bet = (10 + i).to_string();
        let done = play(app, player, table, &bet, &at(T0, -min(30)), T0).await;
        ids.push(s(&done["loyalty"], "ledger_entry_id").to_string());
    }
    ids
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| s(e, "id").to_string()).collect()
}

/// Walks every page of `path` (which already has a query) with `limit`.
async fn walk(app: &TestApp, player: &str, limit: u32) -> (Vec<String>, Vec<usize>) {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let r = app.player_ledger(&app.admin_token, player).query(q).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.body["entries"].as_array().unwrap();
        sizes.push(page.len());
        all.extend(ids(page));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(sizes.len() <= 100, "the cursor never ends");
    }
    (all, sizes)
}

#[tokio::test]
async fn a_players_ledger_is_newest_first() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let written = earn(&app, &player, &table, 4).await;

    let r = app.player_ledger(&app.admin_token, &player).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["next_cursor"].is_null());
    let entries = r.body["entries"].as_array().unwrap();
    let newest_first: Vec<String> = written.iter().rev().cloned().collect();
    assert_eq!(ids(entries), newest_first);
    for pair in entries.windows(2) {
        assert_eq!(pair[0]["balance_before"], pair[1]["balance_after"]);
    }
}

#[tokio::test]
async fn paging_with_a_cursor_visits_every_entry_once_in_order() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    let written = earn(&app, &player, &table, 7).await;
    let newest_first: Vec<String> = written.iter().rev().cloned().collect();

    for (limit, sizes) in [
        (3, vec![3, 3, 1]),
        (1, vec![1; 7]),
        (6, vec![6, 1]),
        (7, vec![7]),
        (1000, vec![7]),
    ] {
        let (seen, got_sizes) = walk(&app, &player, limit).await;
        assert_eq!(got_sizes, sizes, "page sizes at limit {limit}");
        assert_eq!(
            seen, newest_first,
            "no gaps, no duplicates, newest first at limit {limit}"
        );
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    }
}

#[tokio::test]
async fn the_default_page_is_50_entries() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    earn(&app, &player, &table, 51).await;

    let r = app.player_ledger(&app.admin_token, &player).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 50);
    let cursor = r.body["next_cursor"].as_str().expect("a next page");
    let rest = app
        .player_ledger(&app.admin_token, &player)
        .query(format!("cursor={cursor}"))
        .await;
    assert_eq!(rest.body["entries"].as_array().unwrap().len(), 1);
    assert!(rest.body["next_cursor"].is_null());
}

#[tokio::test]
async fn filters_narrow_the_ledger_by_type_and_time() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let (staff_id, staff_token) = app.staff("supervisor").await;
    let t1 = T0.to_string();
    let t2 = at(T0, min(60));

    // Two slips at T0, then one slip and a manual bonus at T0 + 1 h.
    app.set_clock(&t1).await;
    let early = earn(&app, &player, &table, 2).await;
    app.set_clock(&t2).await;
    let late_slip = play(&app, &player, &table, "10", &at(&t2, -min(30)), &t2).await;
    let bonus = app
        .manual_reward(&staff_token, json!({"player_id": player, "points": 50, "reason": "birthday bonus for a regular", "staff_id": staff_id}))
        .await;
    assert_eq!(bonus.status, 201, "{}", bonus.text);
    let late_slip = s(&late_slip["loyalty"], "ledger_entry_id").to_string();
    let bonus = s(&bonus.body, "id").to_string();

    let app = &app;
    let query = |q: &str| {
        let call = app.player_ledger(&app.admin_token, &player).query(q);
        async move {
            let r = call.await;
            assert_eq!(r.status, 200, "{}", r.text);
            ids(r.body["entries"].as_array().unwrap())
        }
    };
    let gameplay = vec![late_slip.clone(), early[1].clone(), early[0].clone()];
    assert_eq!(query("transaction_type=GAMEPLAY").await, gameplay);
    assert_eq!(
        query("transaction_type=MANUAL_BONUS").await,
        vec![bonus.clone()]
    );
    assert!(query("transaction_type=ADJUSTMENT").await.is_empty());
    assert_eq!(
        query(&format!("from={t2}")).await,
        vec![bonus.clone(), late_slip.clone()]
    );
    assert_eq!(
        query(&format!("to={t2}")).await,
        vec![early[1].clone(), early[0].clone()]
    );
    assert_eq!(
        query(&format!("from={t2}&transaction_type=GAMEPLAY")).await,
        vec![late_slip.clone()]
    );
    assert!(
        query(&format!("from={}&to={t2}", at(T0, min(1))))
            .await
            .is_empty()
    );
    assert_eq!(
        query("transaction_type=GAMEPLAY&limit=1").await,
        vec![late_slip]
    );
}

#[tokio::test]
async fn page_size_and_cursor_are_validated() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock(T0).await;
    earn(&app, &player, &table, 3).await;
    let base = || app.player_ledger(&app.admin_token, &player);
    let first = base().query("limit=1").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let last = cursor.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &cursor[..cursor.len() - 1],
        if last == '0' { '1' } else { '0' }
    );

    for (query, field) in [
        ("limit=0".to_string(), "limit"),
        ("limit=1001".to_string(), "limit"),
        ("cursor=bogus".to_string(), "cursor"),
        (format!("cursor={tampered}"), "cursor"),
        ("cursor=".to_string(), "cursor"),
    ] {
        for call in [
            base().query(&query),
            app.audit_ledger(&app.admin_token).query(&query),
        ] {
            let what = call.to_string();
            let r = call.await;
            assert_error(&r, 400, "VALIDATION_ERROR");
            assert_eq!(r.body["error"]["details"]["field"], field, "{what}");
        }
    }
    let max = base().query("limit=1000").await;
    assert_eq!(max.status, 200, "{}", max.text);
    let next = base().query(format!("limit=1&cursor={cursor}")).await;
    assert_eq!(next.status, 200, "{}", next.text);
}

#[tokio::test]
async fn the_audit_search_finds_entries_by_correlation_id_staff_and_player() {
    let app = TestApp::spawn().await;
    let table = app.table().await;
    let (alice, alice_token) = app.staff("pit_boss").await;
    let (carol, carol_token) = app.staff("supervisor").await;
    let (p1, p2) = (app.player().await, app.player().await);
    app.set_clock(T0).await;

    // Alice rates p1 twice; Carol rates p2 once, under a known correlation id.
    let mut by_alice = Vec::new();
    for _ in 0..2 {
        let slip = app
            .open_slip(&p1, &table, "25", Some(&at(T0, -min(30))))
            .await;
        let r = app
            .complete_slip(&alice_token, s(&slip, "id"), json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        by_alice.push(s(&r.body["loyalty"], "ledger_entry_id").to_string());
    }
    let cid = "audit-search-find-me";
    let slip = app
        .open_slip(&p2, &table, "25", Some(&at(T0, -min(30))))
        .await;
    let r = app
        .complete_slip(&carol_token, s(&slip, "id"), json!({}))
        .headers(&[("X-Correlation-Id", cid)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let carols = s(&r.body["loyalty"], "ledger_entry_id").to_string();

    let app = &app;
    let search = |q: String| async move {
        let r = app.audit_ledger(&app.admin_token).query(&q).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["entries"].as_array().unwrap().clone()
    };
    let found = search(format!("correlation_id={cid}")).await;
    assert_eq!(ids(&found), vec![carols.clone()]);
    assert_eq!(found[0]["correlation_id"], cid);
    assert_eq!(found[0]["staff_id"], carol.as_str());

    let alices: Vec<String> = by_alice.iter().rev().cloned().collect();
    assert_eq!(ids(&search(format!("staff_id={alice}")).await), alices);
    assert_eq!(
        ids(&search(format!("staff_id={carol}")).await),
        vec![carols.clone()]
    );
    assert_eq!(ids(&search(format!("player_id={p1}")).await), alices);
    assert_eq!(
        ids(&search(format!("player_id={p2}")).await),
        vec![carols.clone()]
    );
    assert!(
        search(format!("player_id={p1}&staff_id={carol}"))
            .await
            .is_empty()
    );
    assert!(
        search("correlation_id=nobody-sent-this".to_string())
            .await
            .is_empty()
    );
    assert_eq!(ids(&search(format!("from={T0}")).await).len(), 3);
    assert!(search(format!("to={T0}")).await.is_empty());
    let all = search(String::new()).await;
    assert_eq!(
        ids(&all),
        vec![carols, alices[0].clone(), alices[1].clone()]
    );
}

#[tokio::test]
async fn every_ledger_entry_carries_every_design_field() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    let (staff_id, staff_token) = app.staff("supervisor").await;
    app.set_clock(T0).await;
    earn(&app, &player, &table, 1).await;
    let bonus = app
        .manual_reward(&staff_token, json!({"player_id": player, "points": 25, "reason": "made up for a slow table", "staff_id": staff_id})).headers(&[("X-Correlation-Id", "bonus-entry-1")])
        .await;
    assert_eq!(bonus.status, 201, "{}", bonus.text);

    let entries = app.ledger(&player).await;

    assert_eq!(entries.len(), 2);
    for e in &entries {
        for field in ENTRY_FIELDS {
            assert!(e.get(field).is_some(), "entry lacks {field}: {e}");
        }
        for field in [
            "id",
            "player_id",
            "transaction_type",
            "event_type",
            "source",
            "correlation_id",
            "created_at",
        ] {
            assert!(
                e[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} is not a string: {e}"
            );
        }
        for field in ["points_change", "balance_before", "balance_after"] {
            assert!(e[field].is_i64(), "{field} is not an integer: {e}");
        }
        let (before, change) = (
            e["balance_before"].as_i64().unwrap(),
            e["points_change"].as_i64().unwrap(),
        );
        assert_eq!(e["balance_after"].as_i64().unwrap(), before + change);
        assert_eq!(e["player_id"], player.as_str());
        assert!(e["idempotency_key"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(s(e, "created_at").parse::<jiff::Timestamp>().is_ok());
    }
    let (b, g) = (&entries[0], &entries[1]);
    assert_eq!(b["transaction_type"], "MANUAL_BONUS");
    assert_eq!(b["reason"], "made up for a slow table");
    assert_eq!(b["staff_id"], staff_id.as_str());
    assert_eq!(b["correlation_id"], "bonus-entry-1");
    assert!(b["rating_slip_id"].is_null());
    assert_eq!(g["transaction_type"], "GAMEPLAY");
    assert_eq!(g["event_type"], "RATING_SLIP_COMPLETED");
    assert_eq!(g["source"], "rating_slip");
    assert!(g["rating_slip_id"].is_string());
    assert!(
        g["staff_id"].is_string(),
        "the completing staff member is recorded"
    );
}

/// `as_of` (DESIGN §9): the summary as it was at an instant, from the
/// entries — before the first entry, between entries, after a hold and a
/// capture, and in the future — on a history scripted with the test clock.
#[tokio::test]
async fn the_loyalty_summary_as_of_an_instant_comes_from_the_entries() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let (staff, supervisor) = app.staff("supervisor").await;
    let reward = |points: i64, n: u32| {
        json!({"player_id": player, "points": points, "staff_id": staff,
               "reason": format!("scripted reward number {n}")})
    };
    app.set_clock(T0).await;
    let r = app.manual_reward(&supervisor, reward(100, 1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.set_clock(&at(T0, min(10))).await;
    let r = app.manual_reward(&supervisor, reward(2_000, 2)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.set_clock(&at(T0, min(20))).await;
    let m = app
        .create_merchant(&app.admin_token, json!({"name": "As-of grill"}))
        .await;
    assert_eq!(m.status, 201, "{}", m.text);
    let e = app
        .hold(
            &app.admin_token,
            json!({"player_id": player, "merchant_id": m.body["id"], "amount": 300,
                   "reason": "dinner"}),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.text);
    app.set_clock(&at(T0, min(30))).await;
    let settle = app
        .settle(
            &app.admin_token,
            e.body["id"].as_str().unwrap(),
            json!({"amount": 120, "final": false}),
        )
        .await;
    assert_eq!(settle.status, 200, "{}", settle.text);

    let as_of = |t: String| {
        let app = &app;
        let player = player.clone();
        async move {
            let r = app
                .player_loyalty(&app.admin_token, &player)
                .query(format!("as_of={}", t.replace('+', "%2B")))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            (
                r.body["current_balance"].as_i64().unwrap(),
                r.body["escrow_balance"].as_i64().unwrap(),
                r.body["lifetime_points"].as_i64().unwrap(),
                r.body["tier"].as_str().unwrap().to_string(),
            )
        }
    };
    let t = |v: (i64, i64, i64, &str)| (v.0, v.1, v.2, v.3.to_string());
    assert_eq!(as_of(at(T0, -1_000)).await, t((0, 0, 0, "BRONZE")));
    // (The test clock runs on from each instant it is set to.)
    assert_eq!(as_of(at(T0, min(5))).await, t((100, 0, 100, "BRONZE")));
    assert_eq!(as_of(at(T0, min(15))).await, t((2_100, 0, 2_100, "SILVER")));
    assert_eq!(
        as_of(at(T0, min(25))).await,
        t((1_800, 300, 2_100, "SILVER"))
    );
    assert_eq!(
        as_of(at(T0, min(35))).await,
        t((1_800, 180, 2_100, "SILVER"))
    );
    // The future: today's summary.
    let now = app.player_loyalty(&app.admin_token, &player).await;
    let later = as_of("2099-01-01T00:00:00Z".to_string()).await;
    assert_eq!(later.0, now.body["current_balance"].as_i64().unwrap());
    assert_eq!(later.1, now.body["escrow_balance"].as_i64().unwrap());
    assert_eq!(later, t((1_800, 180, 2_100, "SILVER")));

    let bad = app
        .player_loyalty(&app.admin_token, &player)
        .query("as_of=yesterday")
        .await;
    assert_error(&bad, 400, "VALIDATION_ERROR");
    let nobody = app
        .player_loyalty(&app.admin_token, &uuid::Uuid::now_v7().to_string())
        .query(format!("as_of={T0}"))
        .await;
    assert_error(&nobody, 404, "NOT_FOUND");
}
