//! `GET /openapi.json` and `GET /docs` (issue 13, points 1 and 2): every
//! operation the document describes is served by the router (none is
//! documented that does not exist; the unit test in `http::openapi` checks
//! the other direction against the route registry), and the reference page
//! renders the document with a script this server serves, nothing fetched
//! from elsewhere.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert_eq!(doc.body["openapi"], "3.1.0");
    // Revoking one's own token is checked with a token of its own.
    let spare = app
        .create_staff(
            &app.admin_token,
            json!({"name": "Spare", "role": "auditor"}),
        )
        .await
        .body["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("an operation map") {
            let concrete = path
                .replace(
                    "{id}",
                    if path.starts_with("/v1/dead-letters") {
                        "1"
                    } else {
                        "00000000-0000-7000-8000-000000000000"
                    },
                )
                .replace("{file}", "console.js");
            let concrete = if path == "/v1/events/stream" {
                format!("{concrete}?follow=false")
            } else {
                concrete
            };
            let token = if path == "/v1/me/token" {
                &spare
            } else {
                &app.admin_token
            };
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let body = op.get("requestBody").map(|_| "{}");
            let r = if path == "/" {
                // The console's redirect, seen as it is sent.
                let plain = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("a client");
                TestApp::resp(
                    plain
                        .get(format!("{}/", app.base))
                        .send()
                        .await
                        .expect("request"),
                )
                .await
            } else {
                app.raw(method.clone(), Some(token), &concrete, body, &[])
                    .await
            };
            assert_ne!(
                r.status, 405,
                "{method} {path} is documented but not routed"
            );
            let unrouted = r.status == 404 && r.body["error"]["message"] == "no such route";
            assert!(!unrouted, "{method} {path} is documented but not routed");
            let documented: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            assert!(
                documented.iter().any(|s| **s == r.status.as_str()),
                "{method} {path} answered {} which is not documented ({documented:?}): {}",
                r.status,
                r.text
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} operations documented");
}

#[tokio::test]
async fn the_reference_page_renders_the_document_from_this_server_only() {
    let app = TestApp::spawn().await;
    let page = app.docs().await;
    assert_eq!(page.status, 200);
    let content_type = page.headers["content-type"].to_str().unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        page.text.contains(r#"spec-url="/openapi.json""#),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(r#"<script src="/docs/redoc.js">"#),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "the page loads nothing from elsewhere: {}",
        page.text
    );
    let csp = page.headers["content-security-policy"]
        .to_str()
        .unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    let script = app.docs_script().await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/javascript"),
        "{:?}",
        script.headers
    );
    assert!(script.text.len() > 1_000_000, "the whole standalone bundle");
    assert!(script.text.contains("Redoc"), "it is Redoc");
    let _: Value = app.openapi().await.body;
}
