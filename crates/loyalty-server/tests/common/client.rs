//! The typed test client: one method per route of `http::ROUTES`, so a test
//! names the endpoint it calls instead of spelling its path (zero2prod's
//! `tests/api/helpers.rs`). Each method returns a [`Call`], which sends when
//! awaited and gives the usual [`Resp`]; `.query(..)` and `.header(..)` add
//! to it first. Below the endpoints are a few reads as the admin that assert
//! success and return the parsed body.
//!
//! Tests about the raw request itself (malformed paths, bodies or headers)
//! use [`TestApp::send`], [`TestApp::send_raw`], [`TestApp::get`] and
//! friends instead.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{Resp, SseReader, TestApp};

/// One request to the server, sent when awaited.
#[must_use = "a Call does nothing until awaited"]
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    token: Option<String>,
    path: String,
    body: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The request in flight, once first polled.
    sending: Option<Pin<Box<dyn Future<Output = Resp> + Send + 'a>>>,
}

impl Clone for Call<'_> {
    /// The same request, not yet sent.
    fn clone(&self) -> Self {
        Call {
            app: self.app,
            method: self.method.clone(),
            token: self.token.clone(),
            path: self.path.clone(),
            body: self.body.clone(),
            headers: self.headers.clone(),
            sending: None,
        }
    }
}

impl<'a> Call<'a> {
    fn new(app: &'a TestApp, method: Method, token: &str, path: String) -> Call<'a> {
        Call {
            app,
            method,
            token: Some(token.to_string()),
            path,
            body: None,
            headers: Vec::new(),
            sending: None,
        }
    }

    /// Sends `body` as JSON (in place of the endpoint's usual body).
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Adds a query string (`a=1&b=2`, without the `?`); empty adds nothing.
    pub fn query(mut self, q: impl AsRef<str>) -> Self {
        let q = q.as_ref();
        if !q.is_empty() {
            let sep = if self.path.contains('?') { '&' } else { '?' };
            self.path = format!("{}{sep}{q}", self.path);
        }
        self
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_value(name, HeaderValue::from_str(value).expect("a header value"))
    }

    /// Adds a header whose value may be any bytes reqwest can send.
    pub fn header_value(mut self, name: &str, value: HeaderValue) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        self.headers.push((name, value));
        self
    }

    /// Adds several headers whose values may be any bytes.
    pub fn header_values(self, headers: &[(&str, HeaderValue)]) -> Self {
        headers
            .iter()
            .fold(self, |call, (k, v)| call.header_value(k, v.clone()))
    }

    /// Adds several headers.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers.iter().fold(self, |call, (k, v)| call.header(k, v))
    }

    /// Sends no body at all.
    pub fn no_body(mut self) -> Self {
        self.body = None;
        self
    }

    /// Sends no `Authorization` header.
    pub fn anonymous(mut self) -> Self {
        self.token = None;
        self
    }

    /// The path and query this call goes to.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// `METHOD /path?query`, for assertion messages.
impl std::fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl<'a> Call<'a> {
    fn start(&self) -> Pin<Box<dyn Future<Output = Resp> + Send + 'a>> {
        let app = self.app;
        let mut rb = app
            .client
            .request(self.method.clone(), format!("{}{}", app.base, self.path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in &self.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        if let Some(b) = &self.body {
            rb = rb.json(b);
        }
        Box::pin(async move { TestApp::resp(rb.send().await.expect("request")).await })
    }
}

/// A call is a future: awaiting it (or joining several) sends it.
impl Future for Call<'_> {
    type Output = Resp;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resp> {
        if self.sending.is_none() {
            let fut = self.start();
            self.sending = Some(fut);
        }
        self.sending.as_mut().unwrap().as_mut().poll(cx)
    }
}

/// The endpoints, in the order of `http::ROUTES`.
impl TestApp {
    fn call(&self, method: Method, token: &str, path: String) -> Call<'_> {
        Call::new(self, method, token, path)
    }

    /// `POST /v1/staff`.
    pub fn create_staff(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/staff".into())
            .body(body)
    }

    /// `POST /v1/players`.
    pub fn create_player(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/players".into())
            .body(body)
    }

    /// `GET /v1/players/{id}`.
    pub fn get_player(&self, token: &str, player: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/players/{player}"))
    }

    /// `POST /v1/players/{id}/tokens`.
    pub fn create_player_token(&self, token: &str, player: &str) -> Call<'_> {
        self.call(Method::POST, token, format!("/v1/players/{player}/tokens"))
            .body(json!({}))
    }

    /// `GET /v1/players/{id}/loyalty`.
    pub fn player_loyalty(&self, token: &str, player: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/players/{player}/loyalty"))
    }

    /// `GET /v1/players/{id}/ledger`.
    pub fn player_ledger(&self, token: &str, player: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/players/{player}/ledger"))
    }

    /// `POST /v1/tables`.
    pub fn create_table(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/tables".into())
            .body(body)
    }

    /// `GET /v1/tables/{id}`.
    pub fn get_table(&self, token: &str, table: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/tables/{table}"))
    }

    /// `PATCH /v1/tables/{id}`.
    pub fn patch_table(&self, token: &str, table: &str, body: Value) -> Call<'_> {
        self.call(Method::PATCH, token, format!("/v1/tables/{table}"))
            .body(body)
    }

    /// `POST /v1/rating-slips`.
    pub fn create_slip(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/rating-slips".into())
            .body(body)
    }

    /// `GET /v1/rating-slips/{id}`.
    pub fn get_slip(&self, token: &str, slip: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/rating-slips/{slip}"))
    }

    /// `PATCH /v1/rating-slips/{id}`.
    pub fn patch_slip(&self, token: &str, slip: &str, body: Value) -> Call<'_> {
        self.call(Method::PATCH, token, format!("/v1/rating-slips/{slip}"))
            .body(body)
    }

    /// `POST /v1/rating-slips/{id}/{action}` for `pause`, `resume`,
    /// `complete`, `recover-loyalty`, `void` or `correct`; `body` None sends
    /// no body.
    pub fn slip_action(
        &self,
        token: &str,
        slip: &str,
        action: &str,
        body: Option<Value>,
    ) -> Call<'_> {
        assert!(
            [
                "pause",
                "resume",
                "complete",
                "recover-loyalty",
                "void",
                "correct"
            ]
            .contains(&action),
            "no slip action {action}"
        );
        let mut call = self.call(
            Method::POST,
            token,
            format!("/v1/rating-slips/{slip}/{action}"),
        );
        call.body = body;
        call
    }

    /// `POST /v1/rating-slips/{id}/pause` (no body).
    pub fn pause_slip(&self, token: &str, slip: &str) -> Call<'_> {
        self.slip_action(token, slip, "pause", None)
    }

    /// `POST /v1/rating-slips/{id}/resume` (no body).
    pub fn resume_slip(&self, token: &str, slip: &str) -> Call<'_> {
        self.slip_action(token, slip, "resume", None)
    }

    /// `POST /v1/rating-slips/{id}/complete`.
    pub fn complete_slip(&self, token: &str, slip: &str, body: Value) -> Call<'_> {
        self.slip_action(token, slip, "complete", Some(body))
    }

    /// `POST /v1/rating-slips/{id}/recover-loyalty` (no body).
    pub fn recover_loyalty(&self, token: &str, slip: &str) -> Call<'_> {
        self.slip_action(token, slip, "recover-loyalty", None)
    }

    /// `POST /v1/rating-slips/{id}/void`.
    pub fn void_slip(&self, token: &str, slip: &str, body: Value) -> Call<'_> {
        self.slip_action(token, slip, "void", Some(body))
    }

    /// `POST /v1/rating-slips/{id}/correct`.
    pub fn correct_slip(&self, token: &str, slip: &str, body: Value) -> Call<'_> {
        self.slip_action(token, slip, "correct", Some(body))
    }

    /// `POST /v1/loyalty/manual-rewards`.
    pub fn manual_reward(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/loyalty/manual-rewards".into())
            .body(body)
    }

    /// `GET /v1/ledger` (the audit search).
    pub fn audit_ledger(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/ledger".into())
    }

    /// `GET /v1/ledger/checkpoint`.
    pub fn ledger_checkpoint(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/ledger/checkpoint".into())
    }

    /// `GET /v1/events`.
    pub fn events(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/events".into())
    }

    /// `GET /v1/events/stream`, read whole (for refusals and
    /// `follow=false`); see [`TestApp::open_stream`] to read it live.
    pub fn events_stream(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/events/stream".into())
    }

    /// `GET /v1/events/stream?{query}` as a live reader, resuming after
    /// `last_id` when given; asserts it opened.
    pub async fn open_stream(&self, token: &str, query: &str, last_id: Option<i64>) -> SseReader {
        let path = self.events_stream(token).query(query).path().to_string();
        SseReader::open(self, token, &path, last_id).await
    }

    /// `GET /v1/dead-letters`.
    pub fn dead_letters(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/dead-letters".into())
    }

    /// `POST /v1/dead-letters/{id}/replay` with `{}`.
    pub fn replay_dead_letter(&self, token: &str, id: impl std::fmt::Display) -> Call<'_> {
        self.call(Method::POST, token, format!("/v1/dead-letters/{id}/replay"))
            .body(json!({}))
    }

    /// `GET /v1/alerts`.
    pub fn alerts(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/alerts".into())
    }

    /// `GET /v1/subscribers`.
    pub fn subscribers(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/subscribers".into())
    }

    /// `GET /v1/players/{id}/notifications`.
    pub fn player_notifications(&self, token: &str, player: &str) -> Call<'_> {
        self.player_feed(token, player, "notifications")
    }

    /// `GET /v1/players/{id}/activity`.
    pub fn player_activity(&self, token: &str, player: &str) -> Call<'_> {
        self.player_feed(token, player, "activity")
    }

    /// `GET /v1/players/{id}/{feed}` for `activity` or `notifications`.
    pub fn player_feed(&self, token: &str, player: &str, feed: &str) -> Call<'_> {
        assert!(
            ["activity", "notifications"].contains(&feed),
            "no feed {feed}"
        );
        self.call(Method::GET, token, format!("/v1/players/{player}/{feed}"))
    }

    /// `GET /metrics` (no token).
    pub fn metrics(&self) -> Call<'_> {
        self.call(Method::GET, "", "/metrics".into()).anonymous()
    }

    /// `POST /v1/admin/verify` with `{}`.
    pub fn verify(&self, token: &str) -> Call<'_> {
        self.call(Method::POST, token, "/v1/admin/verify".into())
            .body(json!({}))
    }

    /// `GET /v1/exports/ledger`.
    pub fn export_ledger(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/exports/ledger".into())
    }

    /// `GET /healthz` (no token).
    pub fn healthz(&self) -> Call<'_> {
        self.call(Method::GET, "", "/healthz".into()).anonymous()
    }

    /// `GET /readyz` (no token).
    pub fn readyz(&self) -> Call<'_> {
        self.call(Method::GET, "", "/readyz".into()).anonymous()
    }

    /// `POST /v1/webhooks`.
    pub fn create_webhook(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/webhooks".into())
            .body(body)
    }

    /// `GET /v1/webhooks`.
    pub fn webhooks(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/webhooks".into())
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub fn delete_webhook(&self, token: &str, id: &str) -> Call<'_> {
        self.call(Method::DELETE, token, format!("/v1/webhooks/{id}"))
    }

    /// `GET /v1/webhooks/{id}/deliveries`.
    pub fn webhook_deliveries(&self, token: &str, id: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/webhooks/{id}/deliveries"))
    }

    /// `GET /openapi.json` (no token).
    pub fn openapi(&self) -> Call<'_> {
        self.call(Method::GET, "", "/openapi.json".into())
            .anonymous()
    }

    /// `GET /docs` (no token).
    pub fn docs(&self) -> Call<'_> {
        self.call(Method::GET, "", "/docs".into()).anonymous()
    }

    /// `GET /docs/redoc.js` (no token).
    pub fn docs_script(&self) -> Call<'_> {
        self.call(Method::GET, "", "/docs/redoc.js".into())
            .anonymous()
    }

    /// `GET /v1/players` (search and list).
    pub fn list_players(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/players".into())
    }

    /// `GET /v1/tables`.
    pub fn list_tables(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/tables".into())
    }

    /// `GET /v1/rating-slips`.
    pub fn list_slips(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/rating-slips".into())
    }

    /// `GET /v1/rating-slips/{id}/preview`.
    pub fn slip_preview(&self, token: &str, slip: &str) -> Call<'_> {
        self.call(
            Method::GET,
            token,
            format!("/v1/rating-slips/{slip}/preview"),
        )
    }

    /// `GET /v1/reports/manual-rewards`.
    pub fn manual_rewards_report(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/reports/manual-rewards".into())
    }

    /// `GET /v1/reports/comps`.
    pub fn comps_report(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/reports/comps".into())
    }

    /// `GET /v1/reports/staff-activity`.
    pub fn staff_activity_report(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/reports/staff-activity".into())
    }

    /// `GET /v1/approvals`.
    pub fn approvals(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/approvals".into())
    }

    /// `POST /v1/approvals/{id}/{decision}` for `approve` or `reject`.
    pub fn decide_approval(
        &self,
        token: &str,
        approval: &str,
        decision: &str,
        body: Value,
    ) -> Call<'_> {
        assert!(
            ["approve", "reject"].contains(&decision),
            "no decision {decision}"
        );
        self.call(
            Method::POST,
            token,
            format!("/v1/approvals/{approval}/{decision}"),
        )
        .body(body)
    }

    /// `POST /v1/approvals/{id}/approve`.
    pub fn approve(&self, token: &str, approval: &str, body: Value) -> Call<'_> {
        self.decide_approval(token, approval, "approve", body)
    }

    /// `POST /v1/approvals/{id}/reject`.
    pub fn reject(&self, token: &str, approval: &str, body: Value) -> Call<'_> {
        self.decide_approval(token, approval, "reject", body)
    }

    /// `POST /v1/merchants`.
    pub fn create_merchant(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/merchants".into())
            .body(body)
    }

    /// `GET /v1/merchants`.
    pub fn merchants(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/merchants".into())
    }

    /// `GET /v1/merchants/{id}`.
    pub fn merchant(&self, token: &str, merchant: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/merchants/{merchant}"))
    }

    /// `POST /v1/escrows` (a wallet hold).
    pub fn hold(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, token, "/v1/escrows".into())
            .body(body)
    }

    /// `GET /v1/escrows/{id}`.
    pub fn escrow(&self, token: &str, escrow: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/escrows/{escrow}"))
    }

    /// `GET /v1/players/{id}/escrows`.
    pub fn player_escrows(&self, token: &str, player: &str) -> Call<'_> {
        self.call(Method::GET, token, format!("/v1/players/{player}/escrows"))
    }

    /// `POST /v1/escrows/{id}/{action}` for `settle` or `refund`.
    pub fn escrow_action(&self, token: &str, escrow: &str, action: &str, body: Value) -> Call<'_> {
        assert!(
            ["settle", "refund"].contains(&action),
            "no escrow action {action}"
        );
        self.call(
            Method::POST,
            token,
            format!("/v1/escrows/{escrow}/{action}"),
        )
        .body(body)
    }

    /// `POST /v1/escrows/{id}/settle` (a capture, whole or partial).
    pub fn settle(&self, token: &str, escrow: &str, body: Value) -> Call<'_> {
        self.escrow_action(token, escrow, "settle", body)
    }

    /// `POST /v1/escrows/{id}/refund`.
    pub fn refund(&self, token: &str, escrow: &str, body: Value) -> Call<'_> {
        self.escrow_action(token, escrow, "refund", body)
    }

    /// `GET /v1/me`.
    pub fn me(&self, token: &str) -> Call<'_> {
        self.call(Method::GET, token, "/v1/me".into())
    }

    /// `DELETE /v1/me/token`.
    pub fn revoke_own_token(&self, token: &str) -> Call<'_> {
        self.call(Method::DELETE, token, "/v1/me/token".into())
    }

    /// `POST /v1/staff/{id}/disable`.
    pub fn disable_staff(&self, token: &str, staff: &str) -> Call<'_> {
        self.call(Method::POST, token, format!("/v1/staff/{staff}/disable"))
            .body(json!({}))
    }

    /// `DELETE /v1/players/{id}/tokens`.
    pub fn revoke_player_tokens(&self, token: &str, player: &str) -> Call<'_> {
        self.call(
            Method::DELETE,
            token,
            format!("/v1/players/{player}/tokens"),
        )
    }

    /// `PUT /v1/test/clock`.
    pub fn put_clock(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::PUT, token, "/v1/test/clock".into())
            .body(body)
    }

    /// `PUT /v1/test/faults`.
    pub fn put_faults(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::PUT, token, "/v1/test/faults".into())
            .body(body)
    }
}

/// Reads as the admin that must succeed, returning the parsed body.
impl TestApp {
    /// The admin's own staff id (`GET /v1/me`).
    pub async fn admin_id(&self) -> String {
        let r = self.me(&self.admin_token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// A player's loyalty summary.
    pub async fn loyalty(&self, player: &str) -> Value {
        let r = self.player_loyalty(&self.admin_token, player).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// A player's current balance.
    pub async fn balance(&self, player: &str) -> i64 {
        self.loyalty(player).await["current_balance"]
            .as_i64()
            .unwrap()
    }

    /// A player's whole ledger, newest first (as the server lists it), read
    /// as one page of at most 1000.
    pub async fn ledger(&self, player: &str) -> Vec<Value> {
        let r = self
            .player_ledger(&self.admin_token, player)
            .query("limit=1000")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.body["next_cursor"].is_null(),
            "ledger larger than one page"
        );
        r.body["entries"].as_array().unwrap().clone()
    }

    /// A player's whole ledger, oldest first.
    pub async fn ledger_oldest_first(&self, player: &str) -> Vec<Value> {
        let mut entries = self.ledger(player).await;
        entries.reverse();
        entries
    }

    /// One page (at most 1000) of the outbox after sequence `after`.
    pub async fn events_after(&self, after: i64) -> Vec<Value> {
        let r = self
            .events(&self.admin_token)
            .query(format!("limit=1000&after={after}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["events"].as_array().unwrap().clone()
    }

    /// Every event in the outbox, in sequence order.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.events_after(after).await;
            let Some(last) = page.last() else { break };
            after = last["seq"].as_i64().unwrap();
            all.extend(page);
        }
        all
    }

    /// A rating slip.
    pub async fn slip(&self, slip: &str) -> Value {
        let r = self.get_slip(&self.admin_token, slip).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// `GET /v1/subscribers`.
    pub async fn subscriber_status(&self) -> Value {
        let r = self.subscribers(&self.admin_token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// A player's whole feed (`activity` or `notifications`), newest first,
    /// following cursors.
    pub async fn feed(&self, player: &str, feed: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = "limit=1000".to_string();
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let r = self
                .player_feed(&self.admin_token, player, feed)
                .query(q)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            all.extend(r.body[feed].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        all
    }

    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        let r = self.metrics().await;
        assert_eq!(r.status, 200);
        r.text
    }

    /// `POST /v1/admin/verify` as the admin, which must answer 200; returns
    /// the report.
    pub async fn verify_report(&self) -> Value {
        let r = self.verify(&self.admin_token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }
}
