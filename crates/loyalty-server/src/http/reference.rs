//! `GET /openapi.json` and `GET /docs`: the API description and a reference
//! page for it. The page is Redoc's standalone bundle, vendored under
//! `vendor/redoc/` with its license and version, so it works with no
//! network (no CDN, nothing downloaded at build time).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

/// Redoc 3.0.1's standalone bundle (MIT; `vendor/redoc/LICENSE`).
const REDOC_JS: &[u8] = include_bytes!("../../vendor/redoc/redoc.standalone.js");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Loyalty Ledger API</title>
</head>
<body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<script src="/docs/redoc.js"></script>
</body>
</html>
"#;

/// The page's policy: scripts only from this server; Redoc injects its
/// styles and runs its search in a worker it builds from a blob.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /openapi.json`.
pub(super) async fn openapi(State(st): State<AppState>) -> Response {
    let doc = super::openapi::document(st.settings.test_mode, st.settings.metrics_on_main);
    axum::Json(doc).into_response()
}

/// `GET /docs`.
pub(super) async fn page() -> Response {
    with_headers(PAGE.as_bytes(), "text/html; charset=utf-8")
}

/// `GET /docs/redoc.js`.
pub(super) async fn redoc() -> Response {
    with_headers(REDOC_JS, "text/javascript; charset=utf-8")
}

fn with_headers(body: &'static [u8], content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
