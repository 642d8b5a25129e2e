//! The Codex CLI (Responses API, exec mode) through the real gateway against upstreams
//! that do not speak the Responses API, each through a tool loop: the upstream asks Codex
//! to run a tool, Codex runs it and sends the result back, and the upstream answers with
//! what the result said. Both directions of the translation, tool calls included, are
//! exercised by the agent its users run.
//!
//! - With its defaults on a made-up model, on a Chat Completions server: OpenAI's hosted
//!   `web_search` (dropped) and its sub-agent tools in a `namespace` group (flattened);
//!   beside the read, the upstream calls one of those (`wait_agent`), which Codex runs
//!   only when the call names its namespace again.
//! - On `gpt-5.5`: its freeform `apply_patch` and its own `tool_search` (the upstream
//!   searches, then writes a file).
//! - With its default model: its tools in an `additional_tools` item, commands run by
//!   its freeform code-mode `exec` (the upstream reads the file with a script), on a Chat
//!   Completions server, on Claude and on Gemini.
//!
//! Codex is installed from the npm registry by `.ci/setup` (pinned); a missing CLI fails
//! these tests rather than skipping them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use common::agents::{
    agent, assert_metered_on_gemini, chat_reply, chat_seen, claude_stream, claude_tool_results,
    file_says, gemini_seen, gemini_stream, offered, report, run, said, setup, tool_results, NOTE,
    SECRET,
};
use common::mock::scripted::{Reply, Scripted, Seen};
use common::{Gateway, GatewayBuilder, Upstream};
use serde_json::{json, Value};

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

/// Codex with its default model (and no sandbox) asked through `gw` to read `file` in
/// `dir`: it ends well, having told the secret word.
async fn read_with_its_default_model(gw: &Gateway, key: &str, dir: &Path, file: &str) {
    let prompt = format!("Read the file {file} and tell me the secret word.");
    let out = run(codex(
        gw,
        key,
        (dir, dir),
        None,
        "danger-full-access",
        &prompt,
    ))
    .await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(SECRET),
        "codex failed {}",
        report(&out, gw)
    );
}

/// The script the upstream has Codex's code-mode `exec` run: a `notify` of [`NOTE`],
/// then the file at `path` read by the nested `exec_command`.
fn code_mode_script(path: &str) -> String {
    format!(
        "notify(\"{NOTE}\");\nconst r = await tools.exec_command({{cmd: \"cat {path}\"}});\ntext(r);\n"
    )
}

/// The upstream for Codex's default model, whose only tool for commands is its
/// code-mode `exec` (freeform JavaScript, declared in an `additional_tools` item inside
/// the `functions` namespace): reads the file through `exec`'s nested `exec_command`
/// (after a `notify`), then says what the result held.
fn code_mode(path: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| {
        let (body, stream, results) = chat_seen(seen);
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
        let script = code_mode_script(&path);
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
    read_with_its_default_model(&gw, &key, dir.path(), &file).await;
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

/// Codex with its default model on Claude: the same code-mode loop as on a Chat
/// Completions server, through Anthropic Messages. Claude is offered `exec` as a tool
/// whose `input_schema` takes the script as `input`; its streamed `tool_use` reaches
/// Codex as the `custom_tool_call` holding the script, and the script's outputs reach
/// Claude as the call's one `tool_result`. Usage is Claude's own, cache reads included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_its_default_model_runs_code_mode_exec_on_claude() {
    let (dir, file) = setup();
    let script = code_mode_script(&file);
    let up = Scripted::start(move |seen: &Seen| {
        let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let blocks: Vec<Value> = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .collect();
        if let Some(r) = blocks.iter().find(|b| b["type"] == "tool_result") {
            return claude_stream(Some(&file_says(&r.to_string())), None);
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
    read_with_its_default_model(&gw, &key, dir.path(), &file).await;
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

/// Codex with its default model on Gemini: the code-mode loop once more, through
/// `generateContent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_its_default_model_runs_code_mode_exec_on_gemini() {
    let (dir, file) = setup();
    let script = code_mode_script(&file);
    let up = Scripted::start(move |seen: &Seen| {
        let (tools, responses) = gemini_seen(seen);
        if !responses.is_empty() {
            return gemini_stream(Some(&file_says(&responses)), None);
        }
        match tools.iter().any(|t| t == "exec") {
            true => gemini_stream(None, Some(("exec", json!({ "input": script })))),
            false => gemini_stream(Some("ok"), None),
        }
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::gemini("gem", &up).keys(&["gk-test"]))
        .route(&["*"], &["gem"])
        .start_with_key("alice");
    read_with_its_default_model(&gw, &key, dir.path(), &file).await;
    let both = up.requests().iter().any(|r| {
        let responses = gemini_seen(r).1;
        responses.contains(SECRET) && responses.contains(NOTE)
    });
    assert!(
        both,
        "the script's outputs reached Gemini as one function response"
    );
    assert_metered_on_gemini(&gw, &up, "responses").await;
}
