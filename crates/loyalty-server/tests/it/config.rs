//! `loyalty serve --config FILE` (issue 13 point 5): flags beat environment
//! variables beat the file beat the defaults; unknown keys and bad values
//! are refused with one line naming the key; `loyalty config print` shows
//! the effective settings with secrets masked.

use std::process::Command;

use serde_json::json;

use crate::common::{TestApp, bin};
use crate::support::*;

fn print(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = Command::new(bin());
    c.args(["config", "print"]).args(args);
    for var in [
        "LOYALTY_REWARD_RATE_LIMIT",
        "LOYALTY_LISTEN",
        "LOYALTY_CONFIG",
        "LOYALTY_TEST_MODE",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {printed}"))
}

#[test]
fn flags_beat_environment_beat_the_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loyalty.toml");
    std::fs::write(
        &file,
        "reward-rate-limit = 2\nlisten = \"127.0.0.1:9001\"\ngaming-day-tz = \"America/Las_Vegas\"\n\
         test-mode = true\ndatabase-url = \"postgres://loyalty:s3cret-pw@db.internal:5432/loyalty\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let only_file = print(&["--config", f], &[]);
    assert_eq!(
        line(&only_file, "reward-rate-limit"),
        "reward-rate-limit = 2  # file"
    );
    assert_eq!(
        line(&only_file, "gaming-day-tz"),
        "gaming-day-tz = \"America/Las_Vegas\"  # file"
    );
    assert_eq!(line(&only_file, "test-mode"), "test-mode = true  # file");
    assert_eq!(
        line(&only_file, "idle-timeout-ms"),
        "idle-timeout-ms = 60000  # default"
    );
    // Secrets are masked.
    assert!(!only_file.contains("s3cret-pw"), "{only_file}");
    assert!(line(&only_file, "database-url").contains("loyalty:***@db.internal"));

    let with_env = print(&["--config", f], &[("LOYALTY_REWARD_RATE_LIMIT", "3")]);
    assert_eq!(
        line(&with_env, "reward-rate-limit"),
        "reward-rate-limit = 3  # environment"
    );
    let with_flag = print(
        &["--config", f, "--reward-rate-limit", "4"],
        &[("LOYALTY_REWARD_RATE_LIMIT", "3")],
    );
    assert_eq!(
        line(&with_flag, "reward-rate-limit"),
        "reward-rate-limit = 4  # flag"
    );
    // The file named by the environment works too.
    let by_env = print(&[], &[("LOYALTY_CONFIG", f)]);
    assert_eq!(
        line(&by_env, "listen"),
        "listen = \"127.0.0.1:9001\"  # file"
    );
    let none = print(&[], &[]);
    assert_eq!(
        line(&none, "reward-rate-limit"),
        "reward-rate-limit = 10  # default"
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (content, needle) in [
        ("colour = \"green\"\n", "unknown setting `colour`"),
        (
            "reward-rate-limit = \"many\"\n",
            "setting `reward-rate-limit`",
        ),
        (
            "gaming-day-start-hour = 24\n",
            "setting `gaming-day-start-hour`",
        ),
        ("test-mode = \"yes\"\n", "setting `test-mode`"),
        ("listen = [1, 2]\n", "setting `listen`"),
        ("reward-rate-limit = \n", "not valid TOML"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, content).unwrap();
        let out = Command::new(bin())
            .args(["serve", "--config", file.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("LOYALTY_REWARD_RATE_LIMIT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{content}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{content}: {err}");
        assert!(err.contains(needle), "{content}: {err}");
        assert!(err.contains("bad.toml"), "{err}");
    }
}

#[tokio::test]
async fn a_server_runs_with_the_settings_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loyalty.toml");
    std::fs::write(&file, "reward-rate-limit = 2\ntest-mode = true\n").unwrap();
    let app = TestApp::spawn_with(&["--config", file.to_str().unwrap()]).await;
    app.set_clock(T0).await;
    let (id, token) = app.staff("pit_boss").await;
    let player = app.player().await;
    for n in 0..3 {
        let r = app
            .manual_reward(&token, json!({"player_id": player, "staff_id": id, "points": 5, "reason": format!("config file reward {n}")}))
            .await;
        if n < 2 {
            assert_eq!(r.status, 201, "{}", r.text);
        } else {
            assert_error(&r, 429, "RATE_LIMIT_EXCEEDED");
        }
    }
}

#[test]
fn the_version_names_the_schema_it_migrates_to() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("(schema {})", loyalty_store::SCHEMA_VERSION)),
        "{text}"
    );
}
