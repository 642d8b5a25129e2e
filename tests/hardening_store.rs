//! Faults and hostile data aimed at the store: an upstream reporting an absurd token
//! count, rows with such counts already stored (by an older version), and a master key
//! file gone missing; none of them may break usage reports or a restart, or make the
//! gateway replace a key it cannot replace.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::mock::scripted::{Reply, Scripted};
use common::{Gateway, GatewayBuilder, Upstream, CHAT};
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
