//! Signed webhooks (DESIGN §6): each live endpoint is a remote subscriber of
//! the dispatcher (`webhook:{id}`), so deliveries are at least once, in
//! sequence order per endpoint, retried with the dispatcher's backoff,
//! dead-lettered after its last attempt and replayable like any other
//! subscriber's — and an endpoint that is down holds up no other.
//!
//! A delivery is one event per request, following the Standard Webhooks
//! convention: the body is the event's envelope as `GET /v1/events` shows
//! it; `webhook-id` is the event id (receivers deduplicate by it),
//! `webhook-timestamp` the wall clock in seconds (even in test mode:
//! receivers compare it with their own), and `webhook-signature` is
//! `v1,` and the base64 HMAC-SHA-256 of `id.timestamp.body` under the
//! secret's bytes. The secret (`whsec_` and 32 random bytes in base64) is
//! shown once; stored, it is sealed with the server key.
//!
//! Every node runs [`sync`], which starts a subscriber for each endpoint
//! registered (on any node) and retires the deleted ones; the lease lets one
//! node at a time deliver to each endpoint.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use loyalty_store::ops::webhooks::subscriber_name;
use loyalty_store::{EventRecord, Webhook, WebhookDelivery};
use sha2::Sha256;
use uuid::Uuid;

use crate::app::AppState;
use crate::events::dispatch::{Handler, RemoteHandler, Subscription};

/// Priority of webhook subscribers: after every shipped one.
pub const PRIORITY: i32 = 100;
/// How often each node looks for endpoints registered or deleted elsewhere.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Most live endpoints.
pub const ENDPOINTS_MAX: usize = 100;
/// Longest endpoint URL.
pub const URL_CHARS_MAX: usize = 2_000;
/// Prefix of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a secret.
pub const SECRET_BYTES: usize = 32;

const SEAL_TAG: &[u8] = b"loyalty-webhook-secret-v1";

/// A new secret: its bytes, and the text shown to the admin once.
pub fn new_secret() -> Result<([u8; SECRET_BYTES], String), String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let text = format!("{SECRET_PREFIX}{}", B64.encode(bytes));
    Ok((bytes, text))
}

fn keystream(server_key: &[u8], id: Uuid) -> [u8; SECRET_BYTES] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(server_key).expect("HMAC takes any key length");
    mac.update(SEAL_TAG);
    mac.update(id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The stored form of endpoint `id`'s secret: its bytes XORed with a
/// keystream unique to the endpoint (HMAC of its id under the server key).
pub fn seal(server_key: &[u8], id: Uuid, secret: &[u8; SECRET_BYTES]) -> String {
    let ks = keystream(server_key, id);
    let sealed: Vec<u8> = secret.iter().zip(ks).map(|(s, k)| s ^ k).collect();
    crate::auth::hex(&sealed)
}

/// The secret's bytes from its stored form.
pub fn unseal(server_key: &[u8], id: Uuid, sealed: &str) -> Result<[u8; SECRET_BYTES], String> {
    if sealed.len() != SECRET_BYTES * 2 {
        return Err("a sealed secret of the wrong length".into());
    }
    let ks = keystream(server_key, id);
    let mut out = [0u8; SECRET_BYTES];
    for (i, k) in ks.iter().enumerate() {
        let byte = u8::from_str_radix(&sealed[2 * i..2 * i + 2], 16)
            .map_err(|_| "a sealed secret that is not hex".to_string())?;
        out[i] = byte ^ k;
    }
    Ok(out)
}

/// The `webhook-signature` of a message: `v1,` and the base64 HMAC-SHA-256
/// of `{id}.{timestamp}.{body}` under the secret's bytes.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Whether `ip` is one no endpoint may reach unless its host is allowed by
/// name: loopback, private, link-local, unspecified, multicast, shared or
/// documentation ranges.
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

/// Checks an endpoint URL: http(s), a host, no credentials, and a host the
/// operator allows — when `allow` is empty, any host but `localhost` and
/// internal addresses (checked again at each delivery, after resolution).
pub fn check_url(url: &str, allow: &[String]) -> Result<reqwest::Url, String> {
    if url.chars().count() > URL_CHARS_MAX {
        return Err(format!("must be at most {URL_CHARS_MAX} characters"));
    }
    let u = reqwest::Url::parse(url).map_err(|_| "must be an absolute http(s) URL".to_string())?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = u
        .host_str()
        .ok_or_else(|| "must name a host".to_string())?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    if !allow.is_empty() {
        if !allow.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
            return Err(format!(
                "host {host} is not allowed (--webhook-allow-hosts)"
            ));
        }
        return Ok(u);
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err("must not point at this machine".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && internal(ip)
    {
        return Err("must not point at an internal address".into());
    }
    Ok(u)
}

/// One endpoint as a remote subscriber of the dispatcher.
pub struct Endpoint {
    state: AppState,
    id: Uuid,
    url: reqwest::Url,
    secret: [u8; SECRET_BYTES],
    client: reqwest::Client,
    retired: AtomicBool,
}

impl Endpoint {
    /// Resolves the host and refuses internal addresses unless it is
    /// allowed by name.
    async fn check_resolution(&self) -> Result<(), String> {
        let allow = &self.state.settings.webhook_allow_hosts;
        let host = self
            .url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        if allow.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Ok(());
        }
        let port = self.url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        for a in addrs {
            if internal(a.ip()) {
                return Err(format!("{host} resolves to an internal address"));
            }
        }
        Ok(())
    }

    async fn attempt(&self, ev: &EventRecord) -> (Option<u16>, Result<(), String>) {
        if let Err(e) = self.check_resolution().await {
            return (None, Err(e));
        }
        let body = match serde_json::to_vec(ev) {
            Ok(b) => b,
            Err(e) => return (None, Err(e.to_string())),
        };
        let id = ev.event_id.to_string();
        // The wall clock, even in test mode: receivers compare it with theirs.
        let ts = jiff::Timestamp::now().as_second();
        let signature = sign(&self.secret, &id, ts, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("loyalty-ledger/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                // Read (and bound) the body so the connection can be reused.
                let _ = resp.bytes().await;
                if status.is_success() {
                    (Some(status.as_u16()), Ok(()))
                } else {
                    (
                        Some(status.as_u16()),
                        Err(format!("the receiver answered {}", status.as_u16())),
                    )
                }
            }
            Err(e) => (None, Err(format!("delivery failed: {e}"))),
        }
    }
}

impl RemoteHandler for Endpoint {
    fn deliver<'a>(
        &'a self,
        ev: &'a EventRecord,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let started = Instant::now();
            let (status_code, result) = self.attempt(ev).await;
            let record = WebhookDelivery {
                id: 0,
                webhook_id: self.id,
                event_seq: ev.seq,
                event_id: ev.event_id,
                attempt,
                status_code,
                ok: result.is_ok(),
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                error: result.as_ref().err().cloned(),
                at: self.state.clock.now(),
            };
            if let Err(e) = self
                .state
                .store
                .write_background(move |tx| tx.insert_webhook_delivery(&record))
                .await
            {
                tracing::warn!(webhook_id = %self.id, error = %e, "cannot record a webhook delivery");
            }
            metrics::counter!("loyalty_webhook_deliveries_total",
                "outcome" => if result.is_ok() { "ok" } else { "failed" })
            .increment(1);
            result
        })
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }
}

/// A `&'static str` for a name made at run time, made once per distinct
/// name (subscriber names and filters are `'static`; endpoints are few, at
/// most [`ENDPOINTS_MAX`] live, and each id is interned once).
fn intern(s: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let set = NAMES.get_or_init(|| Mutex::new(HashSet::new()));
    let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = set.get(s.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    set.insert(leaked);
    leaked
}

fn start_endpoint(state: &AppState, w: &Webhook, key: &[u8]) -> Result<Arc<Endpoint>, String> {
    let secret = unseal(key, w.id, &w.secret_sealed)?;
    let url = reqwest::Url::parse(&w.url).map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .timeout(state.settings.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = Arc::new(Endpoint {
        state: state.clone(),
        id: w.id,
        url,
        secret,
        client,
        retired: AtomicBool::new(false),
    });
    let types: Option<&'static [&'static str]> = w.event_types.as_ref().map(|t| {
        let v: Vec<&'static str> = t.iter().map(|s| intern(s.clone())).collect();
        &*Box::leak(v.into_boxed_slice())
    });
    let sub = Subscription {
        name: intern(subscriber_name(w.id)),
        event_types: types,
        priority: PRIORITY,
        handler: Handler::Remote(endpoint.clone()),
    };
    crate::events::dispatch::start(state, vec![sub], 0);
    Ok(endpoint)
}

/// Keeps this node's webhook subscribers in step with the stored endpoints,
/// until the server stops.
pub async fn sync(state: AppState, key: Vec<u8>) {
    let mut running: HashMap<Uuid, Arc<Endpoint>> = HashMap::new();
    let mut shutdown = state.shutdown.subscribe();
    loop {
        match state.store.read(|tx| tx.webhooks()).await {
            Ok(live) => {
                let ids: HashSet<Uuid> = live.iter().map(|w| w.id).collect();
                running.retain(|id, e| {
                    let keep = ids.contains(id);
                    if !keep {
                        e.retired.store(true, Ordering::SeqCst);
                        state.events.poke();
                    }
                    keep
                });
                for w in &live {
                    if running.contains_key(&w.id) {
                        continue;
                    }
                    match start_endpoint(&state, w, &key) {
                        Ok(e) => {
                            tracing::info!(webhook_id = %w.id, url = %w.url, "webhook_started");
                            running.insert(w.id, e);
                        }
                        Err(e) => {
                            tracing::error!(webhook_id = %w.id, error = %e, "cannot start a webhook")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read webhooks"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SYNC_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_id() {
        let (bytes, text) = new_secret().expect("randomness");
        assert!(text.starts_with(SECRET_PREFIX));
        let (key, id) = (b"server key".to_vec(), Uuid::now_v7());
        let sealed = seal(&key, id, &bytes);
        assert!(!sealed.contains(&crate::auth::hex(&bytes)), "not plaintext");
        assert_eq!(unseal(&key, id, &sealed), Ok(bytes));
        assert_ne!(unseal(b"other key", id, &sealed), Ok(bytes));
        assert_ne!(unseal(&key, Uuid::now_v7(), &sealed), Ok(bytes));
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The Standard Webhooks reference vector.
        let secret = B64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn urls_must_be_http_on_an_allowed_public_host() {
        let none: Vec<String> = Vec::new();
        assert!(check_url("https://hooks.example.org/loyalty", &none).is_ok());
        for bad in [
            "ftp://example.org/x",
            "not a url",
            "https://user:pw@example.org/",
            "http://localhost:8080/",
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
        ] {
            assert!(check_url(bad, &none).is_err(), "{bad}");
        }
        let loopback = vec!["127.0.0.1".to_string()];
        assert!(check_url("http://127.0.0.1:9000/hook", &loopback).is_ok());
        assert!(check_url("https://hooks.example.org/", &loopback).is_err());
    }
}
