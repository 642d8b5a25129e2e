//! The google-genai Python SDK against the real gateway and the Gemini mock, with the
//! SDK's default API version (`v1`): `tests/sdk/google_genai.py` generates, streams,
//! counts tokens, lists and gets models, and calls an unrouted model; this test checks
//! what the SDK returned, what reached the upstream, and what was recorded.
//!
//! The SDK is installed by `.ci/setup` (pinned); a missing SDK fails this test rather
//! than skipping it, so CI can never pass without running it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use common::mock::{event_data, fixture, sse_events};
use common::Scenario;
use serde_json::Value;

/// The interpreter the SDK is installed for (`.ci/setup` installs into `python3`).
const PYTHON: &str = "python3";
/// The version `.ci/setup` pins.
const SDK_VERSION: &str = "3.6.1";

/// The SDK's version, or a failure saying how to install it.
fn sdk_version() -> String {
    let out = Command::new(PYTHON)
        .args(["-c", "import google.genai as g; print(g.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON} is not runnable ({e}): run .ci/setup"));
    assert!(
        out.status.success(),
        "the google-genai SDK is missing: run .ci/setup (pip install google-genai=={SDK_VERSION})\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The text of every event of a Gemini SSE fixture, in order.
fn stream_text(rel: &str) -> String {
    sse_events(&fixture(rel))
        .iter()
        .filter_map(|e| event_data(e))
        .map(|d| {
            let v: Value = serde_json::from_str(&d).unwrap();
            v.pointer("/candidates/0/content/parts/0/text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_with_its_default_api_version_works_through_the_gateway() {
    assert_eq!(sdk_version(), SDK_VERSION, "run .ci/setup");
    let s = Scenario::start_with(|c| c.alias("flash", "gemini-2.5-flash")).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/google_genai.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script)
        .env("TOLLGATE_URL", s.gw.proxy_url())
        .env("TOLLGATE_KEY", &s.key)
        .env("MODEL", "gemini-2.5-flash")
        .env("ALIAS", "flash")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_GENAI_API_VERSION")
        .env_remove("GOOGLE_GENAI_USE_VERTEXAI");
    // Blocking: on a thread of its own, so the in-process mock keeps serving.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}\n--- gateway log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.gw.logs()
    );
    let got: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(got["api_version"], "v1", "the SDK's default changed: {got}");

    // What the SDK returned: the upstream's answers, untouched.
    let generate: Value = serde_json::from_slice(&fixture("gemini/generate.json")).unwrap();
    assert_eq!(
        got["generate"]["text"],
        generate["candidates"][0]["content"]["parts"][0]["text"]
    );
    assert_eq!(
        got["generate"]["usage"],
        serde_json::json!({"prompt": 2061, "candidates": 52, "cached": 2048, "thoughts": 324})
    );
    assert_eq!(got["stream"]["chunks"], 4);
    assert_eq!(got["stream"]["text"], stream_text("gemini/stream.sse"));
    assert_eq!(got["stream"]["usage"]["prompt"], 1307);
    assert_eq!(got["count_tokens"], 31);
    assert_eq!(got["list"], serde_json::json!(["models/flash"]));
    assert_eq!(got["get"]["name"], "models/flash");
    assert_eq!(got["unrouted"]["code"], 404, "{got}");
    assert_eq!(got["unrouted"]["status"], "NOT_FOUND");
    assert!(got["unrouted"]["message"]
        .as_str()
        .unwrap()
        .contains("llama-3"));

    // What reached the upstream: v1 paths, the provider's key, never the gateway key.
    let paths: Vec<String> = s
        .gemini
        .requests()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/models/gemini-2.5-flash:generateContent",
            "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "/v1/models/gemini-2.5-flash:countTokens",
        ]
    );
    for r in s.gemini.requests() {
        assert_eq!(r.header("x-goog-api-key"), Some("sk-g"));
        assert!(!r.raw_head.contains(&s.key[16..]), "{}", r.raw_head);
    }

    // What was recorded, to the token: generate, stream, count, and the unrouted refusal.
    let events = s.gw.usage_events_after(4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let tokens = |e: &Value| {
        [
            "input_tokens",
            "cache_read_tokens",
            "output_tokens",
            "reasoning_tokens",
            "estimated",
        ]
        .map(|c| e[c].as_u64().unwrap())
    };
    let by_endpoint = |name: &str| {
        events
            .iter()
            .find(|e| e["endpoint"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
    };
    assert_eq!(
        tokens(by_endpoint("generate_content")),
        [13, 2048, 376, 324, 0]
    );
    let stream = by_endpoint("stream_generate_content");
    assert_eq!(tokens(stream), [283, 1024, 250, 211, 0]);
    assert_eq!(stream["streamed"], 1);
    assert_eq!(tokens(by_endpoint("count_tokens")), [0, 0, 0, 0, 0]);
    let refused = events.iter().find(|e| e["status"] == 404).unwrap();
    assert_eq!(refused["model_requested"], "llama-3");
    assert!(events.iter().all(|e| e["dialect"] == "gemini"));
}
