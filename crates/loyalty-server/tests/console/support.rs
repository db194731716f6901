//! A headless Chromium per test, one test at a time.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::TestApp;

/// Browsers are heavy on two cores: the tests take turns.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running chromedriver and its browser session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own, and the browser
        // it started is in it: ending the group ends both. Killing only
        // chromedriver left the browser running after the test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A fresh headless browser, or `None` (loudly; a failure under CI) when
/// chromium or chromedriver is missing.
pub async fn browser(width: u32, height: u32) -> Option<Browser> {
    let driver = find(&["chromedriver"]);
    let chromium = find(&["chromium", "chromium-browser"]);
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        if std::env::var("LOYALTY_CI").is_ok_and(|v| v == "1") {
            panic!(
                "chromium and chromedriver are needed (apt-get install chromium chromium-driver) but LOYALTY_CI=1 forbids skipping"
            );
        }
        eprintln!(
            "*** SKIPPED: chromium or chromedriver is not installed; the console's browser test did not run ***"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    Some(Browser {
        client,
        driver: child,
        _profile: profile,
    })
}

impl Browser {
    /// Waits for an element matching `css`.
    pub async fn el(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Waits until `css`'s text satisfies `ok`; returns the text.
    pub async fn text_until(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {what}; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.ok();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.el(css).await.click().await.unwrap();
    }

    /// Runs JavaScript in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The page met no error (uncaught exceptions, rejected promises).
    pub async fn assert_no_errors(&self) {
        let errors = self
            .js("return window.__consoleErrors || ['the console did not load']")
            .await;
        assert_eq!(errors, json!([]), "errors in the browser");
    }

    /// Signs in with `token` at the console of `app`.
    pub async fn sign_in(&self, app: &TestApp, token: &str) {
        self.client.goto(&format!("{}/", app.base)).await.unwrap();
        self.type_into("#token", token).await;
        self.click("#signin-button").await;
        self.el("#search").await;
    }

    /// Saves a screenshot when `LOYALTY_CONSOLE_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("LOYALTY_CONSOLE_SCREENSHOTS") else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }
}
