//! Test harness: starts the real `loyalty` binary on port 0 with a fresh
//! data directory and drives it over HTTP (zero2prod's `spawn_app`).
#![allow(dead_code)]

pub mod certs;
mod client;

#[allow(unused_imports)]
pub use client::Call;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loyalty"))
}

/// A response: status, JSON body (Null if not JSON) and headers.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Where a test server keeps its data: the embedded default, or a fresh
/// PostgreSQL database when `LOYALTY_TEST_BACKEND=postgres` (then
/// `LOYALTY_TEST_PG_URL` names the server, e.g. `postgres://postgres@127.0.0.1:5432`).
#[derive(Debug, Clone)]
pub enum Storage {
    /// `--data-dir`.
    Dir(PathBuf),
    /// `--database-url`, with the maintenance URL and database name.
    Pg {
        url: String,
        admin_url: String,
        db: String,
    },
}

/// Whether the suite runs against PostgreSQL.
pub fn postgres_backend() -> bool {
    std::env::var("LOYALTY_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL server URL for tests, if configured.
pub fn pg_server_url() -> Option<String> {
    std::env::var("LOYALTY_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn pg_blocking<T: Send + 'static>(
    url: String,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    // The sync client runs its own runtime: keep it off the test's.
    std::thread::spawn(move || {
        let mut c =
            postgres::Client::connect(&url, postgres::NoTls).expect("connect to PostgreSQL");
        f(&mut c)
    })
    .join()
    .expect("postgres helper thread")
}

impl Storage {
    /// Storage for a new test server under `dir`.
    pub fn fresh(dir: &Path) -> Storage {
        if !postgres_backend() {
            return Storage::Dir(dir.join("data"));
        }
        let server = pg_server_url()
            .expect("LOYALTY_TEST_BACKEND=postgres needs LOYALTY_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432)");
        Storage::fresh_pg(&server)
    }

    /// A fresh database on the PostgreSQL server at `server`.
    pub fn fresh_pg(server: &str) -> Storage {
        let db = format!("t_{}", uuid_like());
        let admin_url = format!("{}/postgres", server.trim_end_matches('/'));
        let create = format!("CREATE DATABASE {db}");
        pg_blocking(admin_url.clone(), move |c| {
            c.batch_execute(&create).expect("create test database")
        });
        Storage::Pg {
            url: format!("{}/{db}", server.trim_end_matches('/')),
            admin_url,
            db,
        }
    }

    /// The CLI arguments that select this storage.
    pub fn args(&self) -> Vec<String> {
        match self {
            Storage::Dir(d) => vec!["--data-dir".into(), d.display().to_string()],
            Storage::Pg { url, .. } => vec!["--database-url".into(), url.clone()],
        }
    }

    /// Runs one SQL statement directly on the database (behind the server's
    /// back); returns rows changed or the database's error text.
    pub fn exec(&self, sql: &str) -> Result<u64, String> {
        let sql = sql.to_string();
        match self {
            Storage::Dir(d) => {
                let db =
                    rusqlite::Connection::open(d.join("loyalty.db")).map_err(|e| e.to_string())?;
                db.execute(&sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
            Storage::Pg { url, .. } => pg_blocking(url.clone(), move |c| {
                c.execute(sql.as_str(), &[]).map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string())
                })
            }),
        }
    }

    /// One integer from a query.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let sql = sql.to_string();
        match self {
            Storage::Dir(d) => {
                let db = rusqlite::Connection::open(d.join("loyalty.db")).unwrap();
                db.query_row(&sql, [], |r| r.get(0)).unwrap()
            }
            Storage::Pg { url, .. } => pg_blocking(url.clone(), move |c| {
                c.query_one(sql.as_str(), &[]).unwrap().get(0)
            }),
        }
    }

    /// Everything stored, as text (to prove a secret is not in it).
    pub fn dump(&self) -> String {
        match self {
            Storage::Dir(d) => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(d).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_file() {
                        bytes.extend(std::fs::read(path).unwrap());
                    }
                }
                String::from_utf8_lossy(&bytes).to_string()
            }
            Storage::Pg { url, .. } => pg_blocking(url.clone(), |c| {
                let tables: Vec<String> = c
                    .query(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let mut out = String::new();
                for t in tables {
                    let sql = format!("SELECT coalesce(string_agg(x::text, ' '), '') FROM {t} x");
                    let text: String = c.query_one(sql.as_str(), &[]).unwrap().get(0);
                    out.push_str(&text);
                }
                out
            }),
        }
    }

    fn drop_database(&self) {
        if let Storage::Pg { admin_url, db, .. } = self {
            let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
            let url = admin_url.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
                    let _ = c.batch_execute(&sql);
                }
            })
            .join();
        }
    }
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.storage.drop_database();
    }
}

/// Runs `loyalty staff create` against a storage and returns the token.
pub fn cli_staff_create(storage: &Storage, name: &str, role: &str) -> String {
    let out = Command::new(bin())
        .args(["staff", "create", "--name", name, "--role", role])
        .args(storage.args())
        .output()
        .expect("run loyalty staff create");
    assert!(
        out.status.success(),
        "staff create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl TestApp {
    /// A server in test mode.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&["--test-mode"]).await
    }

    /// A server with extra `serve` arguments (add `--test-mode` yourself).
    pub async fn spawn_with(extra: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::fresh(dir.path());
        let admin_token = cli_staff_create(&storage, "admin", "admin");
        TestApp::start(dir, storage, admin_token, extra).await
    }

    /// Starts the binary on an existing storage.
    pub async fn start(
        dir: tempfile::TempDir,
        storage: Storage,
        admin_token: String,
        extra: &[&str],
    ) -> TestApp {
        TestApp::start_wrapped(dir, storage, admin_token, extra, &[]).await
    }

    /// Like [`TestApp::start`], under a wrapper command such as `faketime`.
    pub async fn start_wrapped(
        dir: tempfile::TempDir,
        storage: Storage,
        admin_token: String,
        extra: &[&str],
        wrapper: &[&str],
    ) -> TestApp {
        let data_dir = dir.path().join("data");
        let (child, log_path, addr) = launch_with(dir.path(), &storage, extra, wrapper);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        TestApp {
            base: format!("http://{addr}"),
            admin_token,
            client,
            data_dir,
            storage,
            log_path,
            _dir: dir,
            child,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the server to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the server process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server and starts it again on the same data dir (new port,
    /// new log file) with extra `serve` arguments.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        let (child, log_path, addr) = launch(self._dir.path(), &self.storage, extra);
        self.child = child;
        self.log_path = log_path;
        self.base = format!("http://{addr}");
    }

    /// Sends a request. `token` None sends no Authorization header.
    pub async fn send(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        Self::resp(r).await
    }

    /// Sends a raw body with a content type of JSON.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        raw: &str,
    ) -> Resp {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(raw.to_string());
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        Self::resp(rb.send().await.expect("request")).await
    }

    /// Sends `method path` with an optional raw JSON body and headers of any
    /// bytes: the escape hatch for requests malformed on purpose.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, reqwest::header::HeaderValue)],
    ) -> Resp {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
            rb = rb.header(name, v.clone());
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        Self::resp(rb.send().await.expect("request")).await
    }

    /// Reads a response into a [`Resp`].
    pub async fn resp(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            headers,
            text,
        }
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, Some(token), path, Some(body), &[])
            .await
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.send(reqwest::Method::GET, Some(token), path, None, &[])
            .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PATCH, Some(token), path, Some(body), &[])
            .await
    }

    /// Creates a staff member with `role` through the API; returns (id, token).
    pub async fn staff(&self, role: &str) -> (String, String) {
        let r = self
            .create_staff(
                &self.admin_token,
                json!({"name": format!("{role} user"), "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["id"].as_str().unwrap().to_string(),
            r.body["token"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a player; returns its id.
    pub async fn player(&self) -> String {
        let r = self
            .create_player(&self.admin_token, json!({"display_name": "Test Player"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a table (house edge 2.7 %, 60 rounds/h, defaults otherwise).
    pub async fn table(&self) -> String {
        self.table_with(json!({"name": "BJ 1", "game_type": "blackjack", "house_edge": "2.7", "average_rounds_per_hour": 60}))
            .await
    }

    /// Creates a table from a body; returns its id.
    pub async fn table_with(&self, body: Value) -> String {
        let r = self.create_table(&self.admin_token, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Opens a slip as the admin, which must succeed; returns the slip.
    /// `started_at` None lets the server use its clock.
    pub async fn open_slip(
        &self,
        player: &str,
        table: &str,
        bet: &str,
        started_at: Option<&str>,
    ) -> Value {
        let mut body = json!({"player_id": player, "table_id": table, "average_bet": bet});
        if let Some(s) = started_at {
            body["started_at"] = json!(s);
        }
        let r = self.create_slip(&self.admin_token, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// Sets the test clock.
    pub async fn set_clock(&self, rfc3339: &str) {
        let r = self
            .put_clock(&self.admin_token, json!({"now": rfc3339}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// Sets the accrual fault: "fail" or "ok".
    pub async fn set_accrual_fault(&self, v: &str) {
        self.set_faults(json!({"loyalty_accrual": v})).await;
    }

    /// Sets test-mode faults from a body.
    pub async fn set_faults(&self, body: Value) {
        let r = self.put_faults(&self.admin_token, body).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// The server's JSON log lines so far.
    pub fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Spawns `loyalty serve` on port 0; returns the child, its log and address.
fn launch(dir: &Path, storage: &Storage, extra: &[&str]) -> (Child, PathBuf, String) {
    launch_with(dir, storage, extra, &[])
}

/// Starts the binary, optionally under a wrapper command (e.g. `faketime`).
pub fn launch_with(
    dir: &Path,
    storage: &Storage,
    extra: &[&str],
    wrapper: &[&str],
) -> (Child, PathBuf, String) {
    let log_path = dir.join(format!("server-{}.log", uuid_like()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(if extra.contains(&"--accrual-retry-interval-ms") {
            &[][..]
        } else {
            // Pending accruals are retried soon, unless a test says otherwise.
            &["--accrual-retry-interval-ms", "200"][..]
        })
        .args(storage.args())
        .args(match storage {
            // Many test servers share one PostgreSQL: keep each pool small.
            Storage::Pg { .. } if !extra.contains(&"--db-pool-size") => {
                &["--db-pool-size", "6"][..]
            }
            _ => &[][..],
        })
        .args(extra)
        .env("LOYALTY_LOG", "info")
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .spawn()
        .expect("start loyalty serve");
    let addr = wait_for_addr(&log_path);
    (child, log_path, addr)
}

/// A name unique across the test processes running at once.
pub fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:x}_{}_{n}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        std::process::id()
    )
}

fn wait_for_addr(log_path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(log_path) {
            for line in s.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line)
                    && v["message"] == "listening"
                {
                    return v["addr"].as_str().unwrap().to_string();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "server did not start; log: {}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    );
}

/// The fields DESIGN §5 names for a ledger entry.
pub const ENTRY_FIELDS: [&str; 16] = [
    "id",
    "player_id",
    "transaction_type",
    "event_type",
    "points_change",
    "reason",
    "source",
    "staff_id",
    "rating_slip_id",
    "idempotency_key",
    "balance_before",
    "balance_after",
    "tier_before",
    "tier_after",
    "correlation_id",
    "created_at",
];

/// `base` shifted by `ms` milliseconds, as RFC 3339.
pub fn at(base: &str, ms: i64) -> String {
    let t: jiff::Timestamp = base.parse().expect("RFC 3339 instant");
    (t + jiff::SignedDuration::from_millis(ms)).to_string()
}

/// A server-sent events reader over a streaming response.
pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub async fn open(app: &TestApp, token: &str, path: &str, last_id: Option<i64>) -> SseReader {
        let mut rb = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(token);
        if let Some(id) = last_id {
            rb = rb.header("Last-Event-ID", id.to_string());
        }
        let resp = rb.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (id, data), or None when the stream ends.
    pub async fn next(&mut self) -> Option<(i64, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                match id {
                    Some(id) => return Some((id, serde_json::from_str(&data).unwrap())),
                    None => continue, // a keep-alive comment
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("no event within 30 s")
                .expect("stream read");
            match chunk {
                Some(c) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                None => return None,
            }
        }
    }
}

/// Polls `check` until it yields a value, or panics naming `what` once
/// `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
