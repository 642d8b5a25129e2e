//! Faults and hostile data aimed at the store: an upstream reporting an absurd token
//! count, rows with such counts already stored (by an older version), and a master key
//! file gone missing; none of them may break usage reports or a restart, or make the
//! gateway replace a key it cannot replace.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::gateway::TOLLGATE;
use common::mock::scripted::{Reply, Scripted};
use common::{Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::Value;

/// 2^63: one more than SQLite's largest integer.
const ABSURD: &str = "9223372036854775808";

/// A chat completion whose usage reports [`ABSURD`] prompt tokens.
fn absurd_completion() -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello there, how can I help?"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{ABSURD},"completion_tokens":5}}}}"#
    )
}

/// `tollgate usage --json` (which must succeed), parsed.
fn cli_usage(gw: &Gateway) -> Value {
    serde_json::from_str(&gw.cli_ok(&["usage", "--json"])).unwrap()
}

/// The id of a `tg_<id>_<secret>` key.
fn key_id(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

/// Rows as an older Tollgate stored them for absurd reports: every count and the cost
/// at SQLite's largest integer.
fn store_saturated_rows(gw: &Gateway, key: &str, n: usize) {
    let db = rusqlite::Connection::open(gw.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    for i in 0..n {
        db.execute(
            "INSERT INTO usage_events (request_id, ts, key_id, dialect, endpoint, streamed, status, \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
             estimated, cost_nanos, total_ms, model_served) \
             VALUES (?1, unixepoch() * 1000, ?2, 'openai', 'chat_completions', 0, 200, \
             ?3, ?3, ?3, ?3, ?3, 0, ?3, 1, 'gpt-4o-mini')",
            rusqlite::params![format!("old-{i}"), key_id(key), i64::MAX],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn an_absurd_usage_report_is_recorded_as_an_estimate_and_breaks_nothing() {
    let upstream = Scripted::start(|_| Reply::json(200, absurd_completion())).await;
    let mut gw = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &upstream).keys(&["sk-o"]))
        .price("gpt-4o-mini*", "{ input: 0.15, output: 0.60 }")
        .user("root", "admin")
        .start_with_user("alice");
    let (key, admin) = (gw.create_key("alice", &[]), gw.create_key("root", &[]));
    for _ in 0..2 {
        let r = gw.chat(&key, CHAT).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // The client gets the upstream's answer as it was.
        assert!(r.text().contains(ABSURD));
    }
    let doc = gw.usage_after(&admin, "model", 2).await;
    let row = &doc["rows"][0];
    assert_eq!(row["requests"], 2);
    assert_eq!(row["estimated_requests"], 2, "{doc}");
    let input = row["input_tokens"].as_u64().unwrap();
    assert!(
        input > 0 && input < 1_000,
        "an estimate from the request: {doc}"
    );
    assert!(row["cost_usd"].as_f64().unwrap() < 0.01, "{doc}");
    assert!(
        gw.wait_for_log(&format!("{ABSURD} input tokens"), Duration::from_secs(5)),
        "no warning names the absurd figure:\n{}",
        gw.logs()
    );
    assert_eq!(cli_usage(&gw), doc);

    // Rows stored before this bound existed are summed without overflow, the same way
    // by the CLI, the admin API and the budget tracker a restart seeds.
    store_saturated_rows(&gw, &key, 3);
    let cli = cli_usage(&gw);
    let api = gw.admin_as(&admin).usage("model").await;
    assert_eq!(cli, api);
    assert_eq!(api["rows"][0]["requests"], 5);
    assert_eq!(api["rows"][0]["input_tokens"].as_u64(), Some(u64::MAX));
    assert_eq!(
        api["rows"][0]["cost_usd"].as_f64(),
        Some(u64::MAX as f64 / 1e9)
    );
    gw.cli_ok(&["usage", "--by", "key"]);
    gw.cli_ok(&["check"]);
    gw.terminate();
    assert!(gw.exit_status(Duration::from_secs(20)).await.success());
    gw.start();
    let r = gw.chat(&key, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Waits for `cmd` (which must exit by itself within 20 s): its status and stderr.
fn run_to_exit(mut cmd: Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines `tollgate` printed as its own errors (not log lines).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("tollgate: "))
        .collect()
}

#[tokio::test]
async fn a_missing_master_key_is_reported_and_never_replaced() {
    let mock = MockUpstream::start().await;
    let (mut gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock))
        .start_with_key("alice");
    gw.terminate();
    assert!(gw.exit_status(Duration::from_secs(20)).await.success());
    let key_file = gw.dir().join("master.key");
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let named = |err: &str| {
        let lines = error_lines(err);
        assert_eq!(lines.len(), 1, "one clear line: {err}");
        assert!(
            lines[0].contains(&key_file.display().to_string())
                && lines[0].contains("missing")
                && lines[0].contains("TOLLGATE_MASTER_KEY"),
            "{err}"
        );
    };

    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1), "check must fail");
    named(&String::from_utf8_lossy(&out.stderr));
    let (status, err) = run_to_exit(gw.command(&["serve"]));
    assert_eq!(status.code(), Some(1), "{err}");
    named(&err);
    assert!(!key_file.exists(), "serve wrote a new master key");
    let out = gw.cli(&["key", "create", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    named(&String::from_utf8_lossy(&out.stderr));
    assert!(!key_file.exists(), "the CLI wrote a new master key");

    // With the file back, everything is as it was.
    std::fs::write(&key_file, saved).unwrap();
    gw.cli_ok(&["check"]);
    gw.start();
    let r = gw.chat(&key, CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `tollgate -c <config> ARGS` as a process that file permissions apply to: as root,
/// without the capabilities that override them.
fn unprivileged(gw: &Gateway, args: &[&str]) -> Command {
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            TOLLGATE,
        ]);
        c
    } else {
        Command::new(TOLLGATE)
    };
    cmd.arg("-c")
        .arg(gw.config_path())
        .args(args)
        .current_dir(gw.dir())
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_MASTER_KEY")
        .env_remove("RUST_LOG");
    cmd
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn check_flags_a_read_only_store_that_serve_cannot_use() {
    let gw = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", "http://127.0.0.1:9"))
        .build();
    gw.add_user("alice", "member");
    gw.create_key("alice", &[]);
    let (status, err) = run_to_exit(unprivileged(&gw, &["check"]));
    assert!(status.success(), "{err}");
    set_mode(&gw.db_path(), 0o444);
    let (status, err) = run_to_exit(unprivileged(&gw, &["check"]));
    assert_eq!(status.code(), Some(1), "check must fail: {err}");
    let lines = error_lines(&err);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&gw.db_path().display().to_string())
                && l.contains("read-only")
                && l.contains("serve")),
        "{err}"
    );
    // What check warns of is so.
    let (status, err) = run_to_exit(unprivileged(&gw, &["serve"]));
    assert_eq!(status.code(), Some(1), "{err}");
    set_mode(&gw.db_path(), 0o600);
}

#[test]
fn check_warns_that_a_config_without_routes_serves_nothing() {
    let gw = GatewayBuilder::new().build();
    let out = gw.cli(&["check"]);
    assert!(out.status.success(), "a warning, not an error");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: no routes") && stdout.contains("404"),
        "{stdout}"
    );
    let gw = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", "http://127.0.0.1:9"))
        .build();
    let out = gw.cli_ok(&["check"]);
    assert!(!out.contains("warning"), "{out}");
}

/// Rows in `usage_events`, read beside the running gateway.
fn stored_events(gw: &Gateway) -> i64 {
    let db = rusqlite::Connection::open(gw.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row("SELECT COUNT(*) FROM usage_events", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn usage_that_could_not_be_written_is_retried_without_new_traffic() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock))
        .start_with_key("alice");
    // The store refuses usage rows, as a full disk would.
    let db = rusqlite::Connection::open(gw.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full BEFORE INSERT ON usage_events BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    for _ in 0..5 {
        let r = gw.chat(&key, CHAT).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        gw.wait_for_log_async("usage writer: could not write", Duration::from_secs(10))
            .await,
        "{}",
        gw.logs()
    );
    let failures = gw
        .metrics()
        .await
        .sum("tollgate_usage_write_failures_total", &[]);
    assert!(failures >= 1.0, "failed writes are counted");
    assert_eq!(stored_events(&gw), 0);
    // The disk frees up; no request arrives after this.
    db.execute_batch("DROP TRIGGER full;").unwrap();
    common::eventually(
        "the queued events to be written",
        Duration::from_secs(20),
        async || match stored_events(&gw) {
            5 => Ok(()),
            n => Err(format!("{n} stored")),
        },
    )
    .await;
    assert_eq!(mock.request_count(), 5);
}
