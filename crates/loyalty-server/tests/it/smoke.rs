use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn completing_a_slip_writes_one_gameplay_entry_matching_the_response() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let table = app.table().await;
    app.set_clock("2026-03-01T12:00:00Z").await;
    let slip = app
        .open_slip(&player, &table, "150", Some("2026-03-01T11:57:00Z"))
        .await;
    let id = slip["id"].as_str().unwrap();
    let r = app.complete_slip(&app.admin_token, id, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["loyalty"]["points_earned"], 122);
    let ledger = app.player_ledger(&app.admin_token, &player).await;
    let entries = ledger.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], r.body["loyalty"]["ledger_entry_id"]);
    assert_eq!(entries[0]["points_change"], 122);
    assert_eq!(entries[0]["transaction_type"], "GAMEPLAY");
}
