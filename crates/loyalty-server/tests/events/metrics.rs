//! `GET /metrics`: Prometheus text with the dispatcher's and the HTTP
//! layer's numbers.

use serde_json::json;

use crate::common::TestApp;
use crate::support::*;

#[tokio::test]
async fn metrics_report_subscribers_lag_latency_and_http_by_route_template() {
    let app = TestApp::spawn().await;
    let player = app.player().await;
    let r = app.get_player(&app.admin_token, &player).await;
    assert_eq!(r.status, 200);
    let r = app.get_player(&app.admin_token, "not-an-id").await;
    assert_eq!(r.status, 404);
    let r = app.create_player(&app.admin_token, json!({})).await;
    assert_eq!(r.status, 400);
    let head = caught_up(&app, 30).await;

    let r = app
        .send(reqwest::Method::GET, None, "/metrics", None, &[])
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    let m = r.text;
    let has = |series: &str| metric(&m, series).unwrap_or_else(|| panic!("no {series} in\n{m}"));
    // HTTP: by route template (never the raw id) and status.
    assert_eq!(
        has(
            "loyalty_http_requests_total{method=\"GET\",route=\"/v1/players/{id}\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        has(
            "loyalty_http_requests_total{method=\"GET\",route=\"/v1/players/{id}\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        has("loyalty_http_requests_total{method=\"POST\",route=\"/v1/players\",status=\"400\"}"),
        1.0
    );
    assert!(!m.contains(&player), "a raw path leaked into a label");
    assert!(
        has(
            "loyalty_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/players\",status=\"201\"}"
        ) >= 1.0
    );
    // Dispatcher: per subscriber.
    for s in [
        "activity_feed",
        "tier_notifications",
        "manual_reward_alerts",
        "balance_cache",
    ] {
        assert_eq!(
            has(&format!(
                "loyalty_subscriber_lag_events{{subscriber=\"{s}\"}}"
            )),
            0.0,
            "{s}"
        );
        assert_eq!(
            has(&format!(
                "loyalty_subscriber_checkpoint{{subscriber=\"{s}\"}}"
            )),
            head as f64,
            "{s}"
        );
    }
    assert!(has("loyalty_subscriber_published_total{subscriber=\"activity_feed\"}") >= 1.0);
    assert!(has("loyalty_subscriber_delivered_total{subscriber=\"activity_feed\"}") >= 1.0);
    assert!(has("loyalty_dispatch_latency_seconds_count{subscriber=\"activity_feed\"}") >= 1.0);
    assert_eq!(has("loyalty_outbox_head"), head as f64);
}
