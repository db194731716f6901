//! The HTTP API (DESIGN §5): the route registry, the router and its layers,
//! and the input validators every handler shares. Handlers live in one
//! module per resource (staff, players, tables, slips, rewards, ledger,
//! wallet, reads, events, export, admin).

mod admin;
mod approvals;
mod dead_letters;
mod export;
mod feeds;
mod health;
mod ledger;
mod openapi;
mod outbox;
mod paging;
mod players;
mod reads;
mod reference;
mod reports;
mod rewards;
mod slips;
mod staff;
mod tables;
mod validate;
mod wallet;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use loyalty_core::limits::BODY_BYTES_MAX;
use serde_json::json;

use crate::app::AppState;
use crate::error::{ApiError, Code};

/// Every route the server exposes, as (method, path template). `router()`
/// registers routes only through [`Routes::add`], which refuses a route
/// missing from this list and, at the end, checks that every entry was
/// registered (`/v1/test/*` only in test mode). The access-matrix test keeps
/// one row per entry, so a new route without a row fails it.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/staff"),
    ("POST", "/v1/players"),
    ("GET", "/v1/players/{id}"),
    ("POST", "/v1/players/{id}/tokens"),
    ("GET", "/v1/players/{id}/loyalty"),
    ("GET", "/v1/players/{id}/ledger"),
    ("POST", "/v1/tables"),
    ("GET", "/v1/tables/{id}"),
    ("PATCH", "/v1/tables/{id}"),
    ("POST", "/v1/rating-slips"),
    ("GET", "/v1/rating-slips/{id}"),
    ("PATCH", "/v1/rating-slips/{id}"),
    ("POST", "/v1/rating-slips/{id}/pause"),
    ("POST", "/v1/rating-slips/{id}/resume"),
    ("POST", "/v1/rating-slips/{id}/complete"),
    ("POST", "/v1/rating-slips/{id}/recover-loyalty"),
    ("POST", "/v1/rating-slips/{id}/void"),
    ("POST", "/v1/rating-slips/{id}/correct"),
    ("POST", "/v1/loyalty/manual-rewards"),
    ("GET", "/v1/ledger"),
    ("GET", "/v1/ledger/checkpoint"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/{id}/replay"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/subscribers"),
    ("GET", "/v1/players/{id}/notifications"),
    ("GET", "/v1/players/{id}/activity"),
    ("GET", "/metrics"),
    ("POST", "/v1/admin/verify"),
    ("GET", "/v1/exports/ledger"),
    ("GET", "/"),
    ("GET", "/console/"),
    ("GET", "/console/{file}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/players"),
    ("GET", "/v1/tables"),
    ("GET", "/v1/rating-slips"),
    ("GET", "/v1/rating-slips/{id}/preview"),
    ("GET", "/v1/reports/manual-rewards"),
    ("GET", "/v1/reports/comps"),
    ("GET", "/v1/reports/staff-activity"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/{id}/approve"),
    ("POST", "/v1/approvals/{id}/reject"),
    ("POST", "/v1/merchants"),
    ("GET", "/v1/merchants"),
    ("GET", "/v1/merchants/{id}"),
    ("POST", "/v1/escrows"),
    ("GET", "/v1/escrows/{id}"),
    ("GET", "/v1/players/{id}/escrows"),
    ("POST", "/v1/escrows/{id}/settle"),
    ("POST", "/v1/escrows/{id}/refund"),
    ("GET", "/v1/me"),
    ("DELETE", "/v1/me/token"),
    ("POST", "/v1/staff/{id}/disable"),
    ("DELETE", "/v1/players/{id}/tokens"),
    ("PUT", "/v1/test/clock"),
    ("PUT", "/v1/test/faults"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/redoc.js"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
];

/// Whether a route of [`ROUTES`] exists only with `--test-mode`.
pub fn is_test_mode_route(path: &str) -> bool {
    path.starts_with("/v1/test/")
}

/// Whether [`router`] registers `method path` of [`ROUTES`] on a server in
/// `test_mode` serving `/metrics` on the main listener or not.
pub fn registered(_method: &str, path: &str, test_mode: bool, metrics_on_main: bool) -> bool {
    (test_mode || !is_test_mode_route(path)) && (metrics_on_main || path != "/metrics")
}

/// Registers routes, each checked against [`ROUTES`].
struct Routes {
    router: Router<AppState>,
    added: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add<H, T>(mut self, method: &'static str, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        assert!(
            ROUTES.contains(&(method, path)),
            "route {method} {path} is not listed in http::ROUTES"
        );
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            "DELETE" => MethodFilter::DELETE,
            other => panic!("route {other} {path}: unsupported method"),
        };
        self.router = self.router.route(path, on(filter, handler));
        self.added.push((method, path));
        self
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let test_mode = state.settings.test_mode;
    let mut v1 = Routes {
        router: Router::new(),
        added: Vec::with_capacity(ROUTES.len()),
    }
    .add("POST", "/v1/staff", staff::create_staff)
    .add("POST", "/v1/players", players::create_player)
    .add("GET", "/v1/players/{id}", players::get_player)
    .add(
        "POST",
        "/v1/players/{id}/tokens",
        players::create_player_token,
    )
    .add("GET", "/v1/players/{id}/loyalty", ledger::player_loyalty)
    .add("GET", "/v1/players/{id}/ledger", ledger::player_ledger)
    .add("POST", "/v1/tables", tables::create_table)
    .add("GET", "/v1/tables/{id}", tables::get_table)
    .add("PATCH", "/v1/tables/{id}", tables::patch_table)
    .add("POST", "/v1/rating-slips", slips::open)
    .add("GET", "/v1/rating-slips/{id}", slips::get)
    .add("PATCH", "/v1/rating-slips/{id}", slips::patch)
    .add("POST", "/v1/rating-slips/{id}/pause", slips::pause)
    .add("POST", "/v1/rating-slips/{id}/resume", slips::resume)
    .add("POST", "/v1/rating-slips/{id}/complete", slips::complete)
    .add(
        "POST",
        "/v1/rating-slips/{id}/recover-loyalty",
        slips::recover,
    )
    .add("POST", "/v1/rating-slips/{id}/void", slips::void)
    .add("POST", "/v1/rating-slips/{id}/correct", slips::correct)
    .add("POST", "/v1/loyalty/manual-rewards", rewards::manual_reward)
    .add("GET", "/v1/ledger", ledger::audit_search)
    .add("GET", "/v1/ledger/checkpoint", ledger::checkpoint)
    .add("GET", "/v1/events", outbox::page)
    .add("GET", "/v1/events/stream", crate::events::stream::stream)
    .add("GET", "/v1/dead-letters", dead_letters::dead_letters)
    .add(
        "POST",
        "/v1/dead-letters/{id}/replay",
        dead_letters::replay_dead_letter,
    )
    .add("GET", "/v1/alerts", feeds::alerts)
    .add("GET", "/v1/subscribers", dead_letters::subscribers)
    .add(
        "GET",
        "/v1/players/{id}/notifications",
        feeds::notifications,
    )
    .add("GET", "/v1/players/{id}/activity", feeds::activity)
    .add("GET", "/v1/players", reads::players)
    .add("GET", "/v1/tables", reads::tables)
    .add("GET", "/v1/rating-slips", reads::slips)
    .add("GET", "/v1/rating-slips/{id}/preview", reads::preview)
    .add(
        "GET",
        "/v1/reports/manual-rewards",
        reads::manual_reward_report,
    )
    .add("GET", "/v1/reports/comps", reports::comps)
    .add("GET", "/v1/approvals", approvals::list)
    .add("POST", "/v1/approvals/{id}/approve", approvals::approve)
    .add("POST", "/v1/approvals/{id}/reject", approvals::reject)
    .add("GET", "/v1/reports/staff-activity", reports::staff_activity)
    .add("POST", "/v1/merchants", wallet::create_merchant)
    .add("GET", "/v1/merchants", wallet::merchants)
    .add("GET", "/v1/merchants/{id}", wallet::merchant)
    .add("POST", "/v1/escrows", wallet::create_escrow)
    .add("GET", "/v1/escrows/{id}", wallet::escrow)
    .add("GET", "/v1/players/{id}/escrows", wallet::player_escrows)
    .add("POST", "/v1/escrows/{id}/settle", wallet::settle)
    .add("POST", "/v1/escrows/{id}/refund", wallet::refund)
    .add("GET", "/v1/me", staff::me)
    .add("DELETE", "/v1/me/token", staff::revoke_own_token)
    .add("POST", "/v1/staff/{id}/disable", staff::disable_staff)
    .add(
        "DELETE",
        "/v1/players/{id}/tokens",
        players::revoke_player_tokens,
    )
    .add("POST", "/v1/admin/verify", admin::verify)
    .add("GET", "/v1/exports/ledger", export::ledger)
    .add("GET", "/", crate::console::root)
    .add("GET", "/console/", crate::console::index)
    .add("GET", "/console/{file}", crate::console::file)
    .add("GET", "/healthz", health::healthz)
    .add("GET", "/readyz", health::readyz)
    .add("GET", "/openapi.json", reference::openapi)
    .add("GET", "/docs", reference::page)
    .add("GET", "/docs/redoc.js", reference::redoc)
    .add("POST", "/v1/webhooks", webhooks::create)
    .add("GET", "/v1/webhooks", webhooks::list)
    .add("GET", "/v1/webhooks/{id}", webhooks::get)
    .add("DELETE", "/v1/webhooks/{id}", webhooks::delete)
    .add("GET", "/v1/webhooks/{id}/deliveries", webhooks::deliveries);
    let metrics_on_main = state.settings.metrics_on_main;
    if metrics_on_main {
        v1 = v1.add("GET", "/metrics", health::metrics);
    }
    if test_mode {
        v1 = v1.add("PUT", "/v1/test/clock", admin::set_clock).add(
            "PUT",
            "/v1/test/faults",
            admin::set_faults,
        );
    }
    for route in ROUTES {
        let expected = registered(route.0, route.1, test_mode, metrics_on_main);
        assert_eq!(
            v1.added.contains(route),
            expected,
            "route {} {} of http::ROUTES: registered must be {expected} (test mode {test_mode})",
            route.0,
            route.1
        );
    }
    v1.router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(header_limit))
        .layer(axum::middleware::from_fn(crate::correlation::layer))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Most bytes of request line and headers the application accepts; larger
/// requests get 431 with the envelope. (Beyond hyper's own buffer, about
/// 400 KiB, or 100 headers, hyper answers 431 itself, without a body.)
pub const HEADER_BYTES_MAX: usize = 16 * 1024;

async fn header_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let size = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > HEADER_BYTES_MAX {
        return ApiError::new(
            Code::HeadersTooLarge,
            format!("the request line and headers are at most {HEADER_BYTES_MAX} bytes"),
        )
        .with_details(json!({"limit_bytes": HEADER_BYTES_MAX}))
        .into_response();
    }
    next.run(req).await
}

/// The router of `--metrics-listen`: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(health::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::correlation::layer))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers on every response (DESIGN §5): no content sniffing anywhere, no
/// caching of anything under `/v1`.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let v1 = req.uri().path().starts_with("/v1/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    if v1 {
        h.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{ROUTES, router};
    use crate::app::{AppState, Settings};
    use crate::ratelimit::{Limit, MemoryLimiter};
    use crate::serve::{StorageConfig, open_store};

    fn state(test_mode: bool) -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&StorageConfig::DataDir(dir.path().join("data"))).unwrap();
        let settings = Settings {
            test_mode,
            ..Settings::default()
        };
        let limiter = Arc::new(MemoryLimiter::new(Limit::default()));
        (dir, AppState::new(store, settings, limiter))
    }

    #[tokio::test]
    async fn router_registers_exactly_the_listed_routes_in_both_modes() {
        // router() panics if it registers a route missing from ROUTES or
        // misses one that is listed.
        for test_mode in [false, true] {
            let (_dir, st) = state(test_mode);
            let _ = router(st);
        }
    }

    #[test]
    fn routes_are_listed_once_each() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert(r), "{} {} is listed twice", r.0, r.1);
        }
    }
}
