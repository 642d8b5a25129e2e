//! The official openai, anthropic and google-genai Python SDKs against translated pairs
//! over the real gateway (CONTRACT section 7): `tests/sdk/translated.py` drives OpenAI
//! Chat and Responses on Claude and Gemini, Anthropic Messages on GPT and Gemini (with a
//! streamed tool loop turn and count_tokens), and google-genai on Claude and GPT; this
//! test checks what each SDK parsed (text, tool calls, usage), what reached the
//! upstreams, and what was recorded.
//!
//! The SDKs are installed by `.ci/setup` (pinned); a missing SDK fails this test rather
//! than skipping it, so CI can never pass without running it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use common::mock::scripted::{Reply, Scripted};
use common::mock::{event_data, fixture, sse_events};
use common::{GatewayBuilder, MockUpstream, Upstream};
use serde_json::{json, Value};

const PYTHON: &str = "python3";
/// The versions `.ci/setup` pins.
const OPENAI_VERSION: &str = "3.63.0";
const ANTHROPIC_VERSION: &str = "2.17.0";

fn versions() -> (String, String) {
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import openai, anthropic; print(openai.__version__, anthropic.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON} is not runnable ({e}): run .ci/setup"));
    assert!(
        out.status.success(),
        "the openai / anthropic SDKs are missing: run .ci/setup\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (o, a) = text.split_once(' ').unwrap();
    (o.to_owned(), a.to_owned())
}

/// The text of a whole Anthropic / OpenAI / Gemini fixture.
fn fixture_text(rel: &str) -> String {
    let v: Value = serde_json::from_slice(&fixture(rel)).unwrap();
    let p = [
        "/content/0/text",
        "/choices/0/message/content",
        "/candidates/0/content/parts/0/text",
    ];
    p.iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str))
        .unwrap()
        .to_owned()
}

/// The text deltas of a Gemini or OpenAI SSE fixture, joined.
fn stream_fixture_text(rel: &str) -> String {
    sse_events(&fixture(rel))
        .iter()
        .filter_map(|e| event_data(e))
        .filter(|d| d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(&d).unwrap();
            let p = [
                "/candidates/0/content/parts/0/text",
                "/choices/0/delta/content",
            ];
            p.iter()
                .find_map(|p| v.pointer(p).and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn tool_upstream(rel: &'static str) -> Scripted {
    Scripted::start(move |_| {
        let body = String::from_utf8(fixture(rel)).unwrap();
        if rel.ends_with(".sse") {
            Reply::sse(body)
        } else {
            Reply::json(200, body)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_work_on_translated_pairs() {
    assert_eq!(
        versions(),
        (OPENAI_VERSION.to_owned(), ANTHROPIC_VERSION.to_owned()),
        "run .ci/setup"
    );
    let openai = MockUpstream::start().await;
    let anthropic = MockUpstream::start().await;
    let gemini = MockUpstream::start().await;
    let tool_ant = tool_upstream("anthropic/tool_use.json").await;
    let tool_oai = tool_upstream("openai/tool_calls.sse").await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("o", &openai).keys(&["sk-o"]))
        .upstream(Upstream::anthropic("a", &anthropic).keys(&["sk-a"]))
        .upstream(Upstream::gemini("g", &gemini).keys(&["sk-g"]))
        .upstream(Upstream::anthropic("ta", &tool_ant).keys(&["sk-ta"]))
        .upstream(Upstream::openai("to", &tool_oai).keys(&["sk-to"]))
        .route(&["claude-*"], &["a"])
        .route(&["gemini-*"], &["g"])
        .route(&["gpt-*"], &["o"])
        .route(&["tool-claude"], &["ta"])
        .route(&["tool-gpt"], &["to"])
        .start_with_key("alice");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/translated.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script)
        .env("TOLLGATE_URL", gw.proxy_url())
        .env("TOLLGATE_KEY", &key)
        .env("GPT", "gpt-4o-mini")
        .env("CLAUDE", "claude-sonnet-4-5")
        .env("GEMINI", "gemini-2.5-flash")
        .env("TOOL_CLAUDE", "tool-claude")
        .env("TOOL_GPT", "tool-gpt");
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
    ] {
        cmd.env_remove(var);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}\n--- gateway log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    );
    let got: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));

    // OpenAI SDK on Claude and Gemini
    let ant_text = fixture_text("anthropic/messages.json");
    assert_eq!(got["chat_claude"]["text"], ant_text.as_str());
    assert_eq!(
        got["chat_claude"]["usage"],
        json!({"prompt": 21 + 2048 + 1536, "cached": 2048, "output": 187})
    );
    let gem_stream = stream_fixture_text("gemini/stream.sse");
    assert_eq!(got["chat_gemini_stream"]["text"], gem_stream.as_str());
    assert_eq!(
        got["chat_gemini_stream"]["usage"],
        json!({"prompt": 1307, "cached": 1024, "output": 250})
    );
    assert_eq!(got["responses_claude"]["text"], ant_text.as_str());
    assert_eq!(
        got["responses_claude"]["usage"],
        json!({"input": 3605, "output": 187, "cached": 2048})
    );
    let rs = &got["responses_gemini_stream"];
    assert_eq!(
        (rs["first"].as_str(), rs["last"].as_str()),
        (Some("response.created"), Some("response.completed"))
    );
    assert_eq!(rs["text"], gem_stream.as_str());
    assert_eq!(rs["final_text"], gem_stream.as_str());
    assert_eq!(rs["output"], 250);
    assert_eq!(
        got["chat_tools"],
        json!({"finish": "tool_calls", "calls": [
            ["toolu_A", "get_weather", {"city": "Paris"}],
            ["toolu_B", "get_weather", {"city": "Rome"}]]})
    );
    assert_eq!(got["chat_error"]["status"], 429, "{got}");

    // Anthropic SDK on GPT and Gemini
    assert_eq!(
        got["messages_gpt"]["text"],
        fixture_text("openai/chat.json").as_str()
    );
    assert_eq!(got["messages_gpt"]["stop"], "end_turn");
    assert_eq!(
        got["messages_gpt"]["usage"],
        json!({"input": 93, "cache_read": 1024, "cache_write": 0, "output": 246})
    );
    assert_eq!(got["messages_gemini_stream"]["text"], gem_stream.as_str());
    assert_eq!(
        got["messages_gemini_stream"]["usage"],
        json!({"input": 283, "cache_read": 1024, "cache_write": 0, "output": 250})
    );
    assert_eq!(
        got["messages_tools_stream"],
        json!({"stop": "tool_use", "calls": [
            ["call_A", "get_weather", {"city": "Paris"}],
            ["call_B", "get_weather", {"city": "Rome"}]]})
    );
    assert!(got["count_gpt"].as_u64().is_some_and(|n| n > 0), "{got}");

    // google-genai on Claude and GPT
    assert_eq!(got["genai_claude"]["text"], ant_text.as_str());
    assert_eq!(got["genai_claude"]["prompt"], 3605);
    assert_eq!(got["genai_claude"]["cached"], 2048);
    assert_eq!(
        got["genai_gpt_stream"]["text"],
        stream_fixture_text("openai/chat.sse").as_str()
    );
    assert_eq!(got["genai_gpt_stream"]["prompt"], 1205);

    // the upstreams got their own dialects
    for r in anthropic.requests() {
        assert_eq!(r.path_and_query, "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some("sk-a"));
    }
    for r in openai.requests() {
        assert_eq!(r.path_and_query, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some("Bearer sk-o"));
    }
    for r in gemini.requests() {
        assert!(r
            .path_and_query
            .starts_with("/v1beta/models/gemini-2.5-flash:"));
        assert_eq!(r.header("x-goog-api-key"), Some("sk-g"));
    }

    // recorded from the upstreams' reports (the 429 and the estimated count cost nothing)
    let events = gw.usage_events_after(12).await;
    assert_eq!(events.len(), 12, "{events:?}");
    let generated: Vec<&Value> = events
        .iter()
        .filter(|e| e["status"] == 200 && e["endpoint"] != "count_tokens")
        .collect();
    assert_eq!(generated.len(), 10);
    assert!(generated.iter().all(|e| e["estimated"] == 0), "{events:?}");
    assert!(generated.iter().all(|e| e["dialect"] != e["upstream_kind"]));
}
