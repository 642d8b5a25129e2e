//! The kit of the coding-agent CLI tests (`cli_claude_code.rs`, `cli_codex.rs`): the
//! file the agents are asked to read and the word only its tool result can reveal, how a
//! CLI is run and reported, and scripted upstreams of each kind: replies in the Chat
//! Completions, Anthropic Messages and Gemini wire formats, and readers of what each was
//! sent.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use super::mock::scripted::{Reply, Scripted, Seen};
use super::Gateway;

/// The word the file holds: only the tool's result can tell the upstream about it.
pub const SECRET: &str = "PELICAN-4711";

/// What the script of [`code_mode`] tells Codex to send at once, as a second output of
/// the call.
pub const NOTE: &str = "reading the file now";

/// The text of an OpenAI message's content (a string or text parts).
pub fn content_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// The call that reads `path` with the read tool the agent offered, by its name.
pub fn read_call(tools: &[String], path: &str) -> Option<(String, Value)> {
    let name = tools
        .iter()
        .find(|t| ["Read", "shell", "shell_command", "exec_command"].contains(&t.as_str()))?;
    let args = match name.as_str() {
        "Read" => json!({"file_path": path}),
        "shell" => json!({"command": ["cat", path]}),
        "shell_command" => json!({"command": format!("cat {path}")}),
        _ => json!({"cmd": format!("cat {path}")}),
    };
    Some((name.clone(), args))
}

/// A chat completion (SSE when `stream`) holding `text`, or tool calls (their ids named
/// after the tool: Claude Code drops a call whose id an earlier one had).
pub fn chat_reply(stream: bool, text: Option<&str>, calls: &[(String, Value)]) -> Reply {
    let (delta, message, finish) = match calls {
        [_, ..] => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"index": i, "id": format!("call_{name}_{i}"), "type": "function",
                        "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
            (
                json!({"role": "assistant", "tool_calls": calls}),
                json!({"role": "assistant", "content": null, "tool_calls": calls}),
                "tool_calls",
            )
        }
        [] => (
            json!({"role": "assistant", "content": text}),
            json!({"role": "assistant", "content": text}),
            "stop",
        ),
    };
    let usage = json!({"prompt_tokens": 120, "completion_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 64}});
    let head = json!({"id": "chatcmpl-1", "created": 1, "model": "agent-model"});
    if !stream {
        let mut v = head.clone();
        v["object"] = json!("chat.completion");
        v["choices"] = json!([{"index": 0, "message": message, "finish_reason": finish}]);
        v["usage"] = usage;
        return Reply::json(200, v.to_string());
    }
    let chunk = |choices: Value, usage: Value| {
        let mut v = head.clone();
        v["object"] = json!("chat.completion.chunk");
        v["choices"] = choices;
        if !usage.is_null() {
            v["usage"] = usage;
        }
        format!("data: {v}\n\n")
    };
    let mut body = chunk(
        json!([{"index": 0, "delta": delta, "finish_reason": null}]),
        Value::Null,
    );
    body += &chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
        Value::Null,
    );
    body += &chunk(json!([]), usage);
    body += "data: [DONE]\n\n";
    Reply::sse(body)
}

/// The upstream's last answer: what the tools' `results` told it of the file.
pub fn file_says(results: &str) -> String {
    let word = if results.contains(SECRET) {
        SECRET
    } else {
        "nothing"
    };
    format!("The file says {word}.")
}

/// [`file_says`] as a chat completion.
pub fn said(stream: bool, results: &str) -> Reply {
    chat_reply(stream, Some(&file_says(results)), &[])
}

/// Claude Code in print mode on `prompt` through `gw` (its Anthropic base URL) with
/// `key`, on `claude-sonnet-4-5`, its home in `home`; callers add tools and settings.
pub fn claude_code(gw: &Gateway, key: &str, home: &Path, prompt: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["180", "claude", "-p", prompt])
        .args(["--model", "claude-sonnet-4-5", "--output-format", "text"])
        .current_dir(home)
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", gw.proxy_url())
        .env("ANTHROPIC_API_KEY", key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN");
    cmd
}

/// What a Chat Completions upstream was sent: the body, whether it asked for a stream,
/// and the text of the tool results that end its conversation.
pub fn chat_seen(seen: &Seen) -> (Value, bool, String) {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    let results = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .map(content_text)
        .collect();
    (body, stream, results)
}

/// The upstream: after tool results, says what it read; when a read tool is offered,
/// calls it on `path` (and Codex's `wait_agent`, when offered, beside it); otherwise (the
/// agents' side requests) answers "ok".
pub fn agent(path: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| {
        let (body, stream, results) = chat_seen(seen);
        if !results.is_empty() {
            return said(stream, &results);
        }
        let tools: Vec<String> = body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        match read_call(&tools, &path) {
            Some(call) => {
                let mut calls = vec![call];
                if tools.iter().any(|t| t == "wait_agent") {
                    let args = json!({"targets": ["no-such-agent"], "timeout_ms": 1000});
                    calls.push(("wait_agent".to_owned(), args));
                }
                chat_reply(stream, None, &calls)
            }
            None => chat_reply(stream, Some("ok"), &[]),
        }
    }
}

/// Runs `cmd` (bounded by `timeout`, seconds) off the async runtime.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("not runnable ({e}): run .ci/setup"))
}

/// What the upstream learnt from the agent's tool result.
pub fn tool_results(up: &Scripted) -> Vec<String> {
    up.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .map(|m| content_text(&m))
        .collect()
}

pub fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, format!("The secret word is {SECRET}.\n")).unwrap();
    (dir, file.to_string_lossy().into_owned())
}

/// What a failed CLI run said, with the gateway's log.
pub fn report(out: &Output, gw: &Gateway) -> String {
    format!(
        "({:?}):\n{}\n{}\n--- gateway log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    )
}

/// The tools offered to the upstream, over all its requests.
pub fn offered(up: &Scripted) -> Vec<Value> {
    up.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["tools"].as_array().cloned())
        .flatten()
        .collect()
}

/// An Anthropic Messages stream holding `text`, or a call of `tool` with `input` (its
/// JSON in two deltas), as Claude sends them.
pub fn claude_stream(text: Option<&str>, tool: Option<(&str, Value)>) -> Reply {
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut body = ev(
        json!({"type": "message_start", "message": {"id": "msg_01", "type": "message",
        "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 56, "cache_read_input_tokens": 64,
        "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
    );
    let stop = match (text, tool) {
        (_, Some((name, input))) => {
            body += &ev(
                json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": "toolu_01Exec", "name": name, "input": {}}}),
            );
            let json = input.to_string();
            let (a, b) = json.split_at(json.len() / 2);
            for part in [a, b] {
                body += &ev(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
            "tool_use"
        }
        (text, None) => {
            body += &ev(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}));
            body += &ev(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text.unwrap_or("ok")}}));
            "end_turn"
        }
    };
    body += &ev(json!({"type": "content_block_stop", "index": 0}));
    body += &ev(
        json!({"type": "message_delta", "delta": {"stop_reason": stop,
        "stop_sequence": null}, "usage": {"output_tokens": 12}}),
    );
    body += &ev(json!({"type": "message_stop"}));
    Reply::sse(body)
}

/// The text of the `tool_result` blocks an Anthropic upstream was sent.
pub fn claude_tool_results(up: &Scripted) -> Vec<String> {
    up.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["type"] == "tool_result")
        .map(|c| match &c["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
            _ => String::new(),
        })
        .collect()
}

/// A Gemini `streamGenerateContent` SSE stream holding `text`, or a call of `tool` with
/// `args`, with usage (120 prompt tokens, 64 of them cached, 12 out).
pub fn gemini_stream(text: Option<&str>, tool: Option<(&str, Value)>) -> Reply {
    let part = match tool {
        Some((name, args)) => json!({"functionCall": {"name": name, "args": args}}),
        None => json!({"text": text.unwrap_or("ok")}),
    };
    let chunk = json!({"candidates": [{"content": {"role": "model", "parts": [part]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 64,
            "candidatesTokenCount": 12, "totalTokenCount": 132},
        "modelVersion": "gemini-3-pro"});
    Reply::sse(format!("data: {chunk}\r\n\r\n"))
}

/// What a Gemini upstream was sent: its function declarations' names, and the text of
/// the function responses of its last request's conversation.
pub fn gemini_seen(seen: &Seen) -> (Vec<String>, String) {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let names = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    let responses = body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p.get("functionResponse").is_some())
        .map(|p| p["functionResponse"]["response"].to_string())
        .collect();
    (names, responses)
}

/// Every request Gemini answered went to its streaming path with its own key and was
/// metered from Gemini's usage.
pub async fn assert_metered_on_gemini(gw: &Gateway, up: &Scripted, endpoint: &str) {
    for r in up.requests() {
        assert!(
            r.path.ends_with(":streamGenerateContent?alt=sse"),
            "{}",
            r.path
        );
        assert_eq!(r.header("x-goog-api-key"), Some("gk-test"));
    }
    let n = up.hits();
    let events = gw.usage_events_after(n).await;
    let served: Vec<&Value> = events.iter().filter(|e| e["upstream"] == "gem").collect();
    assert_eq!(served.len(), n, "{events:?}");
    for e in served {
        assert_eq!(e["endpoint"], endpoint);
        assert_eq!(e["upstream_kind"], "gemini");
        assert_eq!(e["estimated"], 0, "{e}");
        assert_eq!(
            (e["input_tokens"].as_u64(), e["cache_read_tokens"].as_u64()),
            (Some(56), Some(64)),
            "{e}"
        );
    }
}
