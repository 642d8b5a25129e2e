//! The Claude Code CLI (Anthropic Messages, print mode) and the Codex CLI (Responses API,
//! exec mode) through the real gateway against an OpenAI-kind upstream speaking only Chat
//! Completions, each through one turn of a tool loop: the upstream asks the CLI to read a
//! file with its own read tool, the CLI runs it and sends the result back, the upstream
//! answers with what the file said. Both directions of the translation, tool calls
//! included, are exercised by the agents their users run.
//!
//! Codex runs with its defaults: OpenAI's hosted `web_search` (dropped) and its sub-agent
//! tools in a `namespace` group (flattened). Beside the read, the upstream calls one of
//! those (`wait_agent`), which Codex runs only when the call names its namespace again.
//! On `gpt-5.5` Codex also declares its freeform `apply_patch` and its own `tool_search`
//! (the upstream searches, then writes a file), and with its default model it sends its
//! tools in an `additional_tools` item and runs commands through its freeform code-mode
//! `exec` (the upstream reads the file with a script), on a Chat Completions server and on
//! Claude. Claude Code with tool search on finds an MCP server's tool (a stdio server in
//! `tests/fixtures/mcp/`, run with `python3`) and calls it.
//!
//! The CLIs are installed from the npm registry by `.ci/setup` (pinned); a missing CLI
//! fails this test rather than skipping it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::mock::scripted::{Reply, Scripted, Seen};
use common::{Gateway, GatewayBuilder, Upstream};
use serde_json::{json, Value};

/// The word the file holds: only the tool's result can tell the upstream about it.
const SECRET: &str = "PELICAN-4711";

/// The text of an OpenAI message's content (a string or text parts).
fn content_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// The call that reads `path` with the read tool the agent offered, by its name.
fn read_call(tools: &[String], path: &str) -> Option<(String, Value)> {
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
fn chat_reply(stream: bool, text: Option<&str>, calls: &[(String, Value)]) -> Reply {
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
fn said(stream: bool, results: &str) -> Reply {
    let word = if results.contains(SECRET) {
        SECRET
    } else {
        "nothing"
    };
    chat_reply(stream, Some(&format!("The file says {word}.")), &[])
}

/// The upstream: after tool results, says what it read; when a read tool is offered,
/// calls it on `path` (and Codex's `wait_agent`, when offered, beside it); otherwise (the
/// agents' side requests) answers "ok".
fn agent(path: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let stream = body["stream"] == true;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let results: String = messages
            .iter()
            .rev()
            .take_while(|m| m["role"] == "tool")
            .map(content_text)
            .collect();
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
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("not runnable ({e}): run .ci/setup"))
}

/// What the upstream learnt from the agent's tool result.
fn tool_results(up: &Scripted) -> Vec<String> {
    up.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .map(|m| content_text(&m))
        .collect()
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, format!("The secret word is {SECRET}.\n")).unwrap();
    (dir, file.to_string_lossy().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_a_tool_loop_on_a_chat_completions_model() {
    let (dir, file) = setup();
    let up = Scripted::start(agent(file.clone())).await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("chat", &up).keys(&["sk-chat"]))
        .route(&["claude-*"], &["chat"])
        .start_with_key("alice");
    let mut cmd = Command::new("timeout");
    cmd.args(["180", "claude", "-p", "--model", "claude-sonnet-4-5"])
        .args(["--allowedTools", "Read", "--output-format", "text"])
        .arg(format!("Read the file {file} and tell me the secret word."))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ANTHROPIC_BASE_URL", gw.proxy_url())
        .env("ANTHROPIC_API_KEY", &key)
        .env("ANTHROPIC_SMALL_FAST_MODEL", "claude-haiku-4-5")
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "claude-haiku-4-5")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN");
    let out = run(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(SECRET),
        "claude failed ({:?}):\n{stdout}\n{}\n--- gateway log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
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

/// A gateway serving `patterns` from `up`, an OpenAI-kind upstream without the Responses
/// API (vLLM and most compatible servers), and a key of `alice`.
fn chat_only_gateway(up: &Scripted, patterns: &[&str]) -> (Gateway, String) {
    GatewayBuilder::new()
        .upstream(
            Upstream::openai("vllm", up)
                .keys(&["sk-vllm"])
                .set("responses_api", false),
        )
        .route(patterns, &["vllm"])
        .start_with_key("alice")
}

/// Codex in exec mode on `prompt` through `gw` (a provider of the Responses API, as
/// Codex's docs configure one), in `cwd`, with its home in `home`: on `model`, or its own
/// default with `None`.
fn codex(
    gw: &Gateway,
    key: &str,
    (home, cwd): (&Path, &Path),
    model: Option<&str>,
    sandbox: &str,
    prompt: &str,
) -> Command {
    let provider = format!(
        "model_providers.tg={{name=\"tg\",base_url=\"{}/v1\",env_key=\"TG_KEY\",wire_api=\"responses\"}}",
        gw.proxy_url()
    );
    let codex_home = home.join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let mut cmd = Command::new("timeout");
    cmd.args(["180", "codex", "exec", "--skip-git-repo-check"])
        .args(["--sandbox", sandbox])
        .args(["-c", "model_provider=tg", "-c", &provider])
        .args(model.map(|m| ["-m", m]).into_iter().flatten())
        .arg(prompt)
        .current_dir(cwd)
        .env("HOME", home)
        .env("CODEX_HOME", &codex_home)
        .env("TG_KEY", key)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    cmd
}

/// What a failed CLI run said, with the gateway's log.
fn report(out: &Output, gw: &Gateway) -> String {
    format!(
        "({:?}):\n{}\n{}\n--- gateway log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    )
}

/// The tools offered to the upstream, over all its requests.
fn offered(up: &Scripted) -> Vec<Value> {
    up.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["tools"].as_array().cloned())
        .flatten()
        .collect()
}

/// Every request the Chat Completions server answered went there with its own key and
/// was metered, once, from the usage it reported, as a Responses request.
async fn assert_metered(gw: &Gateway, up: &Scripted) {
    for r in up.requests() {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some("Bearer sk-vllm"));
    }
    let n = up.hits();
    let events = gw.usage_events_after(n).await;
    let served: Vec<&Value> = events.iter().filter(|e| e["upstream"] == "vllm").collect();
    assert_eq!(served.len(), n, "{events:?}");
    for e in served {
        assert_eq!(e["endpoint"], "responses");
        assert_eq!(e["upstream_kind"], "openai");
        assert_eq!(e["estimated"], 0, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_tool_loop_on_a_chat_completions_only_server() {
    let (dir, file) = setup();
    let up = Scripted::start(agent(file.clone())).await;
    let (gw, key) = chat_only_gateway(&up, &["agent-*"]);
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let dirs = (dir.path(), dir.path());
    let out = run(codex(
        &gw,
        &key,
        dirs,
        Some("agent-model"),
        "read-only",
        &prompt,
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(SECRET),
        "codex failed {}",
        report(&out, &gw)
    );
    let results = tool_results(&up);
    assert!(
        results.iter().any(|r| r.contains(SECRET)),
        "the command's output reached the upstream as a tool message"
    );
    // Codex ran the namespaced tool (its own error for the made-up agent) instead of
    // answering that it knows no such call.
    assert!(
        results.iter().any(|r| r.contains("no-such-agent"))
            && !results.iter().any(|r| r.contains("unsupported call")),
        "{results:?}"
    );
    let offered = offered(&up);
    assert!(offered
        .iter()
        .any(|t| t["function"]["name"] == "wait_agent"));
    assert!(
        offered.iter().all(|t| t["type"] == "function"),
        "{offered:?}"
    );
    assert_metered(&gw, &up).await;
}

/// The file Codex is asked to create, and the patch the upstream model writes for it.
const NEW_FILE: &str = "hello.txt";
const PATCH: &str =
    "*** Begin Patch\n*** Add File: hello.txt\n+Hello from \"the model\"\n*** End Patch\n";

/// The upstream for Codex's edit, one step per tool result so far: first a search with
/// Codex's own `tool_search` (a function upstream), then, when offered `apply_patch` (a
/// function of one string, as Tollgate sends Codex's freeform tool), the patch; after
/// its result, says so.
fn patcher(seen: &Seen) -> Reply {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let results = messages.iter().filter(|m| m["role"] == "tool").count();
    let offered = |name: &str, param: &str| {
        body["tools"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["function"]["name"] == name
                    && t["function"]["parameters"]["required"]
                        .as_array()
                        .is_some_and(|r| r.contains(&json!(param)))
            })
        })
    };
    match results {
        0 if offered("tool_search", "query") => {
            let call = (
                "tool_search".to_owned(),
                json!({"query": "calendar", "limit": 2}),
            );
            chat_reply(stream, None, &[call])
        }
        0 | 1 if offered("apply_patch", "input") => {
            let call = ("apply_patch".to_owned(), json!({ "input": PATCH }));
            chat_reply(stream, None, &[call])
        }
        0 | 1 => chat_reply(stream, Some("ok"), &[]),
        _ => chat_reply(stream, Some("Created hello.txt."), &[]),
    }
}

/// Codex on a GPT-5 model declares `apply_patch` freeform (a `custom` tool with a
/// grammar) and runs its own `tool_search`, neither of which a Chat Completions server
/// knows. Through Tollgate the server sees two functions. Codex gets the search back as
/// its `tool_search_call`, runs it and sends what it found (no deferred tools here);
/// then it gets its `custom_tool_call` with the raw patch, applies it (the file exists
/// with the patch's line), and the result reaches the server as the call's tool message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_edits_a_file_with_its_freeform_apply_patch_on_a_chat_completions_server() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start(patcher).await;
    let (gw, key) = chat_only_gateway(&up, &["gpt-*"]);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let prompt = format!("Create {NEW_FILE} saying hello.");
    let dirs = (dir.path(), work.as_path());
    let cmd = codex(
        &gw,
        &key,
        dirs,
        Some("gpt-5.5"),
        "danger-full-access",
        &prompt,
    );
    let out = run(cmd).await;
    assert!(out.status.success(), "codex failed {}", report(&out, &gw));
    assert_eq!(
        std::fs::read_to_string(work.join(NEW_FILE)).ok().as_deref(),
        Some("Hello from \"the model\"\n"),
        "{}",
        report(&out, &gw)
    );
    let results = tool_results(&up);
    assert!(
        results.len() >= 2 && results[0] == r#"{"loaded_tools":[]}"#,
        "the search's result reached the server: {results:?}"
    );
    assert!(
        results.iter().any(|r| r.contains(NEW_FILE)),
        "apply_patch's result reached the server: {results:?}"
    );
    let offered = offered(&up);
    assert!(
        offered.iter().all(|t| t["type"] == "function"),
        "{offered:?}"
    );
    assert_metered(&gw, &up).await;
}

/// What the script of [`code_mode`] tells Codex to send at once, as a second output of
/// the call.
const NOTE: &str = "reading the file now";

/// The upstream for Codex's default model, whose only tool for commands is its
/// code-mode `exec` (freeform JavaScript, declared in an `additional_tools` item inside
/// the `functions` namespace): reads the file through `exec`'s nested `exec_command`
/// (after a `notify`), then says what the result held.
fn code_mode(path: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let stream = body["stream"] == true;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let results: String = messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(content_text)
            .collect();
        if !results.is_empty() {
            return said(stream, &results);
        }
        let offered = body["tools"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["function"]["name"] == "exec"
                    && t["function"]["parameters"]["required"] == json!(["input"])
            })
        });
        if !offered {
            return chat_reply(stream, Some("ok"), &[]);
        }
        let script =
            format!("notify(\"{NOTE}\");\nconst r = await tools.exec_command({{cmd: \"cat {path}\"}});\ntext(r);\n");
        chat_reply(
            stream,
            None,
            &[("exec".to_owned(), json!({ "input": script }))],
        )
    }
}

/// Codex with its default model declares no `tools` at all: they come in an
/// `additional_tools` input item, grouped in namespaces, and commands run only through
/// its freeform code-mode `exec`. Through Tollgate a Chat Completions server is offered
/// them as functions; Codex gets its `custom_tool_call` back naming the namespace, runs
/// the script (which reads the file), and its two outputs (the script's `notify`, then
/// its result) reach the server as the call's one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_its_default_model_runs_code_mode_exec_on_a_chat_completions_server() {
    let (dir, file) = setup();
    let up = Scripted::start(code_mode(file.clone())).await;
    let (gw, key) = chat_only_gateway(&up, &["*"]);
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let dirs = (dir.path(), dir.path());
    let out = run(codex(&gw, &key, dirs, None, "danger-full-access", &prompt)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(SECRET),
        "codex failed {}",
        report(&out, &gw)
    );
    let results = tool_results(&up);
    assert!(
        results
            .iter()
            .any(|r| r.contains(SECRET) && r.contains(NOTE)),
        "the script's output and its notice reached the upstream as one tool message: {results:?}"
    );
    let first: Value = serde_json::from_slice(&up.requests()[0].body).unwrap();
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"exec") && tools.contains(&"wait"),
        "{tools:?}"
    );
    assert_metered(&gw, &up).await;
}

/// An Anthropic Messages stream holding `text`, or a call of `tool` with `input` (its
/// JSON in two deltas), as Claude sends them.
fn claude_stream(text: Option<&str>, tool: Option<(&str, Value)>) -> Reply {
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
fn claude_tool_results(up: &Scripted) -> Vec<String> {
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

/// Codex with its default model on Claude: the same code-mode loop as on a Chat
/// Completions server, through Anthropic Messages. Claude is offered `exec` as a tool
/// whose `input_schema` takes the script as `input`; its streamed `tool_use` reaches
/// Codex as the `custom_tool_call` holding the script, and the script's outputs reach
/// Claude as the call's one `tool_result`. Usage is Claude's own, cache reads included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_its_default_model_runs_code_mode_exec_on_claude() {
    let (dir, file) = setup();
    let script = format!(
        "notify(\"{NOTE}\");\nconst r = await tools.exec_command({{cmd: \"cat {file}\"}});\ntext(r);\n"
    );
    let up = Scripted::start(move |seen: &Seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let blocks: Vec<Value> = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .collect();
        if let Some(r) = blocks.iter().find(|b| b["type"] == "tool_result") {
            let word = if r.to_string().contains(SECRET) {
                SECRET
            } else {
                "nothing"
            };
            return claude_stream(Some(&format!("The file says {word}.")), None);
        }
        let offered = body["tools"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == "exec" && t["input_schema"]["required"] == json!(["input"]))
        });
        match offered {
            true => claude_stream(None, Some(("exec", json!({ "input": script })))),
            false => claude_stream(Some("ok"), None),
        }
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::anthropic("claude", &up).keys(&["sk-ant-test"]))
        .route(&["*"], &["claude"])
        .start_with_key("alice");
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let dirs = (dir.path(), dir.path());
    let out = run(codex(&gw, &key, dirs, None, "danger-full-access", &prompt)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(SECRET),
        "codex failed {}",
        report(&out, &gw)
    );
    let results = claude_tool_results(&up);
    assert!(
        results
            .iter()
            .any(|r| r.contains(SECRET) && r.contains(NOTE)),
        "{results:?}"
    );
    for r in up.requests() {
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-test"));
    }
    let n = up.hits();
    let events = gw.usage_events_after(n).await;
    let served: Vec<&Value> = events
        .iter()
        .filter(|e| e["upstream"] == "claude")
        .collect();
    assert_eq!(served.len(), n, "{events:?}");
    for e in served {
        assert_eq!(e["endpoint"], "responses");
        assert_eq!(e["upstream_kind"], "anthropic");
        assert_eq!(e["estimated"], 0, "{e}");
        assert_eq!(
            (e["input_tokens"].as_u64(), e["cache_read_tokens"].as_u64()),
            (Some(56), Some(64)),
            "{e}"
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
    let mut cmd = Command::new("timeout");
    cmd.args(["180", "claude", "-p", "Add a standup to my calendar."])
        .args(["--model", "claude-sonnet-4-5", "--output-format", "text"])
        .arg("--mcp-config")
        .arg(&config_path)
        .args(["--allowedTools", "mcp__calendar__create_event"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ENABLE_TOOL_SEARCH", "true")
        .env("ANTHROPIC_BASE_URL", gw.proxy_url())
        .env("ANTHROPIC_API_KEY", &key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN");
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
