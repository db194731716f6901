//! Prometheus metrics: one process-wide recorder, rendered by `GET /metrics`.
//!
//! Names (all prefixed `loyalty_`):
//!
//! * `http_requests_total{method,route,status}` and
//!   `http_request_duration_seconds{method,route,status}` — by route
//!   template, never the raw path, so cardinality stays bounded;
//! * `subscriber_published_total`, `subscriber_delivered_total`,
//!   `subscriber_failed_total`, `subscriber_dead_lettered_total`
//!   (`{subscriber}`) — events handed to a subscriber (for `nats_relay`:
//!   acknowledged by JetStream), handled, failed attempts, parked;
//! * `subscriber_checkpoint{subscriber}`, `subscriber_lag_events{subscriber}`
//!   (outbox head − checkpoint), `outbox_head`;
//! * `dispatch_latency_seconds{subscriber}` — from the event's `occurred_at`
//!   (server clock) to its delivery;
//! * `balance_cache_reads_total{result}`, `sse_clients`,
//!   `sse_disconnected_slow_total`, `nats_relay_leader`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, seconds: 0.5 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the recorder once per process (later calls reuse it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// Records one HTTP request.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("loyalty_http_requests_total", &labels).increment(1);
    metrics::histogram!("loyalty_http_request_duration_seconds", &labels).record(seconds);
}
