//! The Claude Code CLI (Anthropic Messages, print mode) through the real gateway against
//! upstreams of other kinds, each through a tool loop: the upstream asks Claude Code to
//! read a file with its `Read` tool (or to call an MCP server's tool), Claude Code runs
//! it and sends the result back, and the upstream answers with what the result said.
//!
//! - On a Chat Completions model and on Gemini: the read.
//! - With tool search on (`ENABLE_TOOL_SEARCH=true`), on a Chat Completions model: Claude
//!   Code finds an MCP server's deferred tool (a stdio server in `tests/fixtures/mcp/`, run
//!   with `python3`) and calls it.
//!
//! Claude Code is installed from the npm registry by `.ci/setup` (pinned); a missing CLI
//! fails these tests rather than skipping them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::agents::{
    agent, assert_metered_on_gemini, chat_reply, claude_code, file_says, gemini_seen,
    gemini_stream, report, run, setup, tool_results, SECRET,
};
use common::mock::scripted::{Reply, Scripted, Seen};
use common::{GatewayBuilder, Upstream};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_a_tool_loop_on_a_chat_completions_model() {
    let (dir, file) = setup();
    let up = Scripted::start(agent(file.clone())).await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("chat", &up).keys(&["sk-chat"]))
        .route(&["claude-*"], &["chat"])
        .start_with_key("alice");
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let mut cmd = claude_code(&gw, &key, dir.path(), &prompt);
    cmd.args(["--allowedTools", "Read"])
        .env("ANTHROPIC_SMALL_FAST_MODEL", "claude-haiku-4-5")
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "claude-haiku-4-5");
    let out = run(cmd).await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(SECRET),
        "claude failed {}",
        report(&out, &gw)
    );
    assert!(
        tool_results(&up).iter().any(|r| r.contains(SECRET)),
        "the Read result reached the upstream as a tool message"
    );
    for r in up.requests() {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some("Bearer sk-chat"));
        assert!(r.header("anthropic-beta").is_none());
    }
    let n = up.hits();
    let events = gw.usage_events_after(n).await;
    let served: Vec<&Value> = events.iter().filter(|e| e["upstream"] == "chat").collect();
    assert_eq!(served.len(), n, "{events:?}");
    for e in served {
        assert_eq!(
            (e["dialect"].as_str(), e["upstream_kind"].as_str()),
            (Some("anthropic"), Some("openai"))
        );
        assert_eq!(e["estimated"], 0, "{e}");
        assert_eq!(
            (e["input_tokens"].as_u64(), e["cache_read_tokens"].as_u64()),
            (Some(56), Some(64))
        );
    }
}

/// The upstream for Claude Code with tool search on, one step per tool result so far:
/// a search (`ToolSearch`) for the calendar tool Claude Code defers, then, once offered,
/// a call of that MCP tool, then what it created.
fn searcher(seen: &Seen) -> Reply {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    let call = |name: &str, args: Value| chat_reply(stream, None, &[(name.to_owned(), args)]);
    match results {
        0 if tools.contains(&"ToolSearch") => call(
            "ToolSearch",
            json!({"query": "select:mcp__calendar__create_event"}),
        ),
        1 if tools.contains(&"mcp__calendar__create_event") => {
            call("mcp__calendar__create_event", json!({"title": "standup"}))
        }
        0 | 1 => chat_reply(stream, Some("ok"), &[]),
        _ => chat_reply(stream, Some("Created the standup."), &[]),
    }
}

/// Claude Code with tool search on (`ENABLE_TOOL_SEARCH=true`) defers its MCP tools:
/// its `ToolSearch` answers with a `tool_reference`, and only then declares the tool
/// (marked `defer_loading`). A Chat Completions model gets the reference as text and the
/// tool as an ordinary function on the next request, calls it, and the MCP server's
/// answer comes back as the call's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_finds_and_calls_a_deferred_mcp_tool_on_a_chat_completions_model() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp/calendar.py");
    let config = json!({"mcpServers": {"calendar": {"command": "python3", "args": [server]}}});
    let config_path = dir.path().join("mcp.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let up = Scripted::start(searcher).await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("chat", &up).keys(&["sk-chat"]))
        .route(&["claude-*"], &["chat"])
        .start_with_key("alice");
    let mut cmd = claude_code(&gw, &key, dir.path(), "Add a standup to my calendar.");
    cmd.arg("--mcp-config")
        .arg(&config_path)
        .args(["--allowedTools", "mcp__calendar__create_event"])
        .env("ENABLE_TOOL_SEARCH", "true");
    let out = run(cmd).await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("standup"),
        "claude failed {}",
        report(&out, &gw)
    );
    let results = tool_results(&up);
    assert_eq!(
        results.first().map(String::as_str),
        Some("Tool found: mcp__calendar__create_event"),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| r.contains(r#"created event {"title": "standup"}"#)),
        "the MCP server's answer reached the model: {results:?}"
    );
    let n = up.hits();
    let events = gw.usage_events_after(n).await;
    let served: Vec<&Value> = events.iter().filter(|e| e["upstream"] == "chat").collect();
    assert_eq!(served.len(), n, "{events:?}");
}

/// Claude Code on a Gemini model: its `Read` tool is offered as a function declaration,
/// Gemini's `functionCall` reaches Claude Code as a `tool_use`, and the file's text goes
/// back as the call's `functionResponse`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_a_tool_loop_on_gemini() {
    let (dir, file) = setup();
    let path = file.clone();
    let up = Scripted::start(move |seen: &Seen| {
        let (tools, responses) = gemini_seen(seen);
        if !responses.is_empty() {
            return gemini_stream(Some(&file_says(&responses)), None);
        }
        match tools.iter().any(|t| t == "Read") {
            true => gemini_stream(None, Some(("Read", json!({ "file_path": path })))),
            false => gemini_stream(Some("ok"), None),
        }
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::gemini("gem", &up).keys(&["gk-test"]))
        .route(&["claude-*"], &["gem"])
        .start_with_key("alice");
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let mut cmd = claude_code(&gw, &key, dir.path(), &prompt);
    cmd.args(["--allowedTools", "Read"]);
    let out = run(cmd).await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(SECRET),
        "claude failed {}",
        report(&out, &gw)
    );
    let read = up
        .requests()
        .iter()
        .any(|r| gemini_seen(r).1.contains(SECRET));
    assert!(
        read,
        "the file's text reached Gemini as a function response"
    );
    assert_metered_on_gemini(&gw, &up, "messages").await;
}
