//! Auditors' reports (DESIGN §9) on a history scripted with the test clock,
//! in a gaming day of Los Angeles starting at 06:00 (UTC−8 in March 2026
//! before daylight saving: gaming day 2026-03-01 is 14:00Z to 14:00Z).

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::support::{assert_error, s};

const DAY: &str = "2026-03-01";

struct History {
    a: String,
    b: String,
    p1: String,
    p2: String,
}

async fn at(app: &TestApp, t: &str) {
    app.set_clock(t).await;
}

async fn reward(app: &TestApp, token: &str, staff: &str, player: &str, points: i64, why: &str) {
    let r = app
        .manual_reward(
            token,
            json!({"player_id": player, "points": points, "staff_id": staff, "reason": why}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn script(app: &TestApp) -> History {
    at(app, "2026-03-01T11:00:00Z").await;
    let (a, ta) = app.staff("supervisor").await;
    let (b, tb) = app.staff("supervisor").await;
    let p1 = app.player().await;
    let p2 = app.player().await;
    // The gaming day before (04:00 local).
    at(app, "2026-03-01T12:00:00Z").await;
    reward(app, &ta, &a, &p1, 500, "birthday comp for a regular").await;
    // Gaming day 2026-03-01.
    at(app, "2026-03-01T15:00:00Z").await;
    reward(app, &ta, &a, &p2, 50, "small goodwill gesture here").await;
    at(app, "2026-03-01T16:00:00Z").await;
    reward(app, &tb, &b, &p1, 200, "dinner voucher for two guests").await;
    at(app, "2026-03-01T17:00:00Z").await;
    reward(app, &tb, &b, &p1, -100, "correction of a double entry").await;
    at(app, "2026-03-01T18:00:00Z").await;
    let m = app
        .create_merchant(&app.admin_token, json!({"name": "Steakhouse"}))
        .await;
    assert_eq!(m.status, 201, "{}", m.text);
    let hold = app
        .hold(&ta, json!({"player_id": p1, "merchant_id": m.body["id"], "amount": 300, "reason": "steak dinner"}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.text);
    let escrow = s(&hold.body, "id").to_string();
    at(app, "2026-03-01T19:00:00Z").await;
    let r = app
        .settle(&ta, &escrow, json!({"amount": 120, "final": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    at(app, "2026-03-01T20:00:00Z").await;
    let r = app
        .settle(&tb, &escrow, json!({"amount": 30, "final": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PARTIALLY_SETTLED", "{}", r.text);
    // A slip of P2, completed, then voided by A.
    let table = app.table().await;
    let slip = app
        .open_slip(&p2, &table, "100", Some("2026-03-01T19:00:00Z"))
        .await;
    let slip = s(&slip, "id").to_string();
    let r = app.complete_slip(&app.admin_token, &slip, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    at(app, "2026-03-01T21:00:00Z").await;
    let r = app
        .void_slip(&ta, &slip, json!({"reason": "rated at the wrong table"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The next gaming day, out of range.
    at(app, "2026-03-02T15:00:00Z").await;
    reward(app, &ta, &a, &p1, 900, "next day comp, out of range").await;
    History { a, b, p1, p2 }
}

fn row<'a>(rows: &'a [Value], key: &str, id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[key] == id)
        .unwrap_or_else(|| panic!("no row for {id} in {rows:?}"))
}

#[tokio::test]
async fn comps_and_staff_activity_report_exact_figures_for_a_gaming_day() {
    let app = TestApp::spawn_with(&[
        "--test-mode",
        "--gaming-day-tz",
        "America/Los_Angeles",
        "--gaming-day-start-hour",
        "6",
    ])
    .await;
    let h = script(&app).await;
    let (_, auditor) = app.staff("auditor").await;

    // Comps of at least 100 points in gaming day 2026-03-01.
    let r = app
        .comps_report(&auditor)
        .query(format!("from={DAY}&to=2026-03-02&threshold=100"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["from"], "2026-03-01T14:00:00Z");
    assert_eq!(r.body["to"], "2026-03-02T14:00:00Z");
    assert_eq!(r.body["time_zone"], "America/Los_Angeles");
    let comps = r.body["comps"].as_array().unwrap();
    let got: Vec<(String, String, i64, String)> = comps
        .iter()
        .map(|c| {
            (
                c["issuer_id"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
                c["points"].as_i64().unwrap(),
                c["gaming_day"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (h.b.clone(), "MANUAL_BONUS".into(), 200, DAY.into()),
            (h.a.clone(), "ESCROW_SETTLE".into(), 120, DAY.into()),
        ]
    );
    assert_eq!(comps[0]["player_id"], h.p1.as_str());
    assert_eq!(comps[0]["reason"], "dinner voucher for two guests");
    assert_eq!(comps[0]["local_time"], "2026-03-01T08:00:00");
    assert_eq!(comps[1]["reason"], "steak dinner");

    // A lower threshold takes in the smaller ones; an instant range the
    // gaming day before.
    let r = app
        .comps_report(&auditor)
        .query(format!("from={DAY}&to=2026-03-02&threshold=30"))
        .await;
    let points: Vec<i64> = r.body["comps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["points"].as_i64().unwrap())
        .collect();
    assert_eq!(points, vec![50, 200, 120, 30]);
    let r = app
        .comps_report(&auditor)
        .query("from=2026-03-01T11:30:00Z&to=2026-03-01T13:00:00Z&threshold=100")
        .await;
    let early = r.body["comps"].as_array().unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0]["points"], 500);
    assert_eq!(early[0]["gaming_day"], "2026-02-28");

    // The same as CSV.
    let r = app
        .comps_report(&auditor)
        .query(format!("from={DAY}&to=2026-03-02&threshold=100&format=csv"))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.text);
    assert!(lines[0].starts_with("gaming_day,created_at,player_id,player_name"));
    assert!(
        lines[1].starts_with(&format!("{DAY},2026-03-01T16:00:")),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(&format!(",{},", h.b)), "{}", lines[1]);
    assert!(lines[1].contains(",MANUAL_BONUS,200,dinner voucher for two guests,"));
    assert!(
        lines[2].contains(",ESCROW_SETTLE,120,steak dinner,"),
        "{}",
        lines[2]
    );

    // Staff activity in the same gaming day.
    let r = app
        .staff_activity_report(&auditor)
        .query(format!("from={DAY}&to=2026-03-02"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let staff = r.body["staff"].as_array().unwrap();
    let a = row(staff, "staff_id", &h.a);
    assert_eq!(a["rewards"], json!({"count": 1, "points": 50}));
    assert_eq!(a["adjustments"], json!({"count": 0, "points": 0}));
    assert_eq!(
        (a["voids"].as_i64(), a["corrections"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(a["escrow_holds"], json!({"count": 1, "points": 300}));
    assert_eq!(a["escrow_captures"], json!({"count": 1, "points": 120}));
    assert_eq!(a["escrow_refunds"], 0);
    assert_eq!(a["alerts"], 0);
    assert_eq!(a["role"], "supervisor");
    let b = row(staff, "staff_id", &h.b);
    assert_eq!(b["rewards"], json!({"count": 1, "points": 200}));
    assert_eq!(b["adjustments"], json!({"count": 1, "points": -100}));
    assert_eq!(b["escrow_captures"], json!({"count": 1, "points": 30}));
    assert_eq!(b["escrow_refunds"], 1);
    assert_eq!(b["voids"], 0);
    let csv = app
        .staff_activity_report(&auditor)
        .query(format!("from={DAY}&to=2026-03-02&format=csv"))
        .await;
    let line = csv
        .text
        .lines()
        .find(|l| l.starts_with(&h.b))
        .expect("b's line");
    assert!(
        line.contains(",supervisor,1,200,1,-100,0,0,0,0,1,30,1,0,"),
        "{line}"
    );
    let _ = h.p2;

    // Bad ranges and formats are refused.
    for (q, field) in [
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("to=2026-03-01", "from"),
        ("from=yesterday&to=2026-03-01", "from"),
        ("from=2026-03-01&to=2026-03-02&format=xml", "format"),
        ("from=2026-01-01&to=2027-06-01", "to"),
    ] {
        let r = app.comps_report(&auditor).query(q).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(
            r.body["error"]["details"]["field"], field,
            "{q}: {}",
            r.text
        );
    }
    let r = app
        .comps_report(&auditor)
        .query("from=2026-03-01&to=2026-03-02&threshold=0")
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
}
