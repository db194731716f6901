//! The console is served by the binary, whole and offline: every file the
//! page references comes from this server, with the policy that forbids
//! anything else (no browser needed).

use serde_json::Value;

use crate::common::TestApp;

/// The values of `attr="…"` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_console_file_comes_from_this_server_and_the_page_is_small() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(format!("{}/", app.base)).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/console/");

    let page = client
        .get(format!("{}/console/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "inline script or style"
    );

    let mut referenced: Vec<String> = attr_values(&html, "src");
    referenced.extend(
        attr_values(&html, "href")
            .into_iter()
            .filter(|h| !h.starts_with('#')),
    );
    assert!(referenced.len() >= 3, "{referenced:?}");
    let mut total = html.len();
    for r in &referenced {
        assert!(
            !r.contains("//") && !r.starts_with('/'),
            "an asset from elsewhere: {r}"
        );
        let resp = client
            .get(format!("{}/console/{r}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{r}");
        assert!(
            resp.headers().get("content-security-policy").is_some(),
            "{r}"
        );
        let body = resp.text().await.unwrap();
        // Nothing the files load points elsewhere: no external URL in a
        // stylesheet, no fetch of another origin in the script.
        assert!(
            !body.contains("url(http") && !body.contains("@import"),
            "{r}"
        );
        assert!(
            !body.contains("fetch('http")
                && !body.contains("fetch(\"http")
                && !body.contains("fetch(`http"),
            "{r}"
        );
        total += body.len();
    }
    assert!(total < 200 * 1024, "first load is {total} bytes");
    // Everything served is in the binary's list, and nothing else is served.
    let missing = client
        .get(format!("{}/console/../Cargo.toml", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let v: Value = client
        .get(format!("{}/console/nothing.js", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND");
}
