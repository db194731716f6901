//! Real servers started by the tests: Redis, and a private PostgreSQL
//! instance for tests that stop it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a requirement is met; if not, skip loudly — or fail under CI.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("LOYALTY_CI").is_ok_and(|v| v == "1") {
        panic!("{what} is required under CI (LOYALTY_CI=1) but is not available");
    }
    eprintln!("\n*** SKIPPED: {what} is not available; this test did not run ***\n");
    false
}

/// The shared PostgreSQL server for tests, if configured.
pub fn pg_url() -> Option<String> {
    crate::common::pg_server_url()
}

/// Whether a program is on PATH.
pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let is_up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if is_up == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "port {port} did not become {}",
        if up { "reachable" } else { "free" }
    );
}

/// A redis-server on loopback.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// With TLS: the directory of `make_certs`; the port takes only TLS
    /// from clients with a certificate signed by its CA.
    tls: Option<PathBuf>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// A TLS-only Redis that verifies its clients' certificates.
    pub fn start_tls(certs: &Path) -> Redis {
        Redis::start_with(Some(certs.to_path_buf()))
    }

    fn start_with(tls: Option<PathBuf>) -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
            tls,
        };
        r.up();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port.
    pub fn up(&mut self) {
        let port = self.port.to_string();
        let mut listen = vec!["--port".to_string(), port.clone()];
        if let Some(c) = &self.tls {
            let f = |name: &str| c.join(name).display().to_string();
            listen = vec!["--port".into(), "0".into(), "--tls-port".into(), port];
            for (flag, file) in [
                ("--tls-cert-file", "server.crt"),
                ("--tls-key-file", "server.key"),
                ("--tls-ca-cert-file", "ca.crt"),
            ] {
                listen.extend([flag.to_string(), f(file)]);
            }
            listen.extend(["--tls-auth-clients".into(), "yes".into()]);
        }
        let child = Command::new("redis-server")
            .args(&listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_port(self.port, true);
    }

    /// Stops it hard.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_port(self.port, false);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The directory of the PostgreSQL server binaries, if installed.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("LOYALTY_TEST_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A private PostgreSQL instance (initdb in a temp dir, loopback only) that a
/// test may stop and start.
pub struct PgInstance {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl PgInstance {
    pub fn start(bin: &Path) -> PgInstance {
        let pg = PgInstance::init(bin);
        pg.up();
        pg
    }

    /// A private instance that takes TCP connections only over TLS
    /// (`hostssl`), with `server.crt`, `server.key` and `ca.crt` from
    /// `certs`; the role `certuser` must log in with a client certificate
    /// signed by that CA (`cert`). Unix-socket connections need nothing
    /// ([`PgInstance::socket_url`]).
    pub fn start_tls(bin: &Path, certs: &Path) -> PgInstance {
        let pg = PgInstance::init(bin);
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(certs.join(f), pg.data.join(f)).unwrap();
        }
        std::fs::write(
            pg.data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl all all ::1/128 trust\n",
        )
        .unwrap();
        let mut conf = std::fs::read_to_string(pg.data.join("postgresql.conf")).unwrap();
        conf.push_str(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
        );
        std::fs::write(pg.data.join("postgresql.conf"), conf).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&pg.data)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            pg.data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        pg.up();
        pg
    }

    /// A libpq key=value string for the Unix socket, as `postgres`.
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.data.display(),
            self.port
        )
    }

    fn init(bin: &Path) -> PgInstance {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pgdata");
        if is_root() {
            // initdb refuses to run as root: hand the directory to postgres.
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pg = PgInstance {
            port: free_port(),
            bin: bin.to_path_buf(),
            data,
            _dir: dir,
        };
        let out = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&pg.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data.display()
        );
        let log = self.data.with_file_name("pg.log");
        let out = self
            .command("pg_ctl")
            .args(["-w", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &opts, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_port(self.port, true);
    }

    pub fn down(&self) {
        let out = self
            .command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// Two nodes on one fresh PostgreSQL database, each with `extra` serve
/// flags; `None` (reported as skipped, a failure under CI) without
/// PostgreSQL.
pub async fn two_nodes(extra: &[&str]) -> Option<(crate::common::TestApp, crate::common::TestApp)> {
    use crate::common::{Storage, TestApp, cli_staff_create};
    let server = pg_url();
    if !require("PostgreSQL (LOYALTY_TEST_PG_URL)", server.is_some()) {
        return None;
    }
    let storage = Storage::fresh_pg(&server.unwrap());
    let admin = cli_staff_create(&storage, "admin", "admin");
    let a = TestApp::start(
        tempfile::tempdir().unwrap(),
        storage.clone(),
        admin.clone(),
        extra,
    )
    .await;
    let b = TestApp::start(tempfile::tempdir().unwrap(), storage, admin, extra).await;
    Some((a, b))
}
