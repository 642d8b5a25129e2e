//! Dialect translation end to end (CONTRACT section 7, issue 12): clients of each dialect
//! served by upstreams of every other kind through the real gateway and the mocks, whole
//! and streamed. For each pair: the upstream received a request in its own dialect, on
//! its path, with its credential; the client received the upstream's text and usage in
//! its own dialect (streams event by event in its SDK's order); the usage event holds,
//! bucket by bucket, what the upstream reported, not estimated, with the client dialect
//! and the upstream kind. Also tool calls both ways, errors in the client's envelope
//! with `retry-after`, refusals naming the field, fallback across kinds, bodies over
//! 64 KiB, count_tokens estimated here, and the model listings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::{request, request_streaming, Response};
use common::mock::scripted::{Reply, Scripted};
use common::mock::{event_data, event_name, fixture, sse_events};
use common::{Gateway, GatewayBuilder, MockUpstream, Scenario, Upstream};
use serde_json::{json, Value};

/// A client dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W {
    Chat,
    Responses,
    Messages,
    Gemini,
}

/// A model served by each upstream of [`scenario`]: `o` (openai), `oc` (openai without
/// `/v1/responses`), `a` (anthropic), `g` (gemini).
const GPT: &str = "gpt-4o-mini";
const CHAT_ONLY: &str = "chatonly-model";
const CLAUDE: &str = "claude-sonnet-4-5";
const GEMINI: &str = "gemini-2.5-flash";

/// The three-dialect scenario (tests/common/scenario.rs) plus `oc`: an OpenAI-kind
/// upstream on the OpenAI mock with `responses_api: false`, for `chatonly-*`.
async fn scenario() -> Scenario {
    let openai = MockUpstream::start().await;
    let anthropic = MockUpstream::start().await;
    let gemini = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .upstream(Upstream::openai("o", &openai).keys(&["sk-o"]))
        .upstream(Upstream::anthropic("a", &anthropic).keys(&["sk-a"]))
        .upstream(Upstream::gemini("g", &gemini).keys(&["sk-g"]))
        .upstream(
            Upstream::openai("oc", &openai)
                .keys(&["sk-oc"])
                .set("responses_api", false),
        )
        .route(&["claude-*"], &["a"])
        .route(&["gemini-*"], &["g"])
        .route(&["gpt-*"], &["o"])
        .route(&["chatonly-*"], &["oc"])
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    Scenario {
        openai,
        anthropic,
        gemini,
        gw,
        key,
    }
}

/// The request a client of `w` sends for `model` (a system prompt and one user turn).
fn client_request(w: W, model: &str, stream: bool) -> (String, Vec<(&'static str, String)>, Value) {
    match w {
        W::Chat => {
            let mut b = json!({"model": model, "max_tokens": 100, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"}]});
            if stream {
                b["stream"] = json!(true);
                b["stream_options"] = json!({"include_usage": true});
            }
            ("/v1/chat/completions".into(), vec![], b)
        }
        W::Responses => {
            let b = json!({"model": model, "instructions": "Be brief.", "input": "hi",
                "stream": stream, "max_output_tokens": 100});
            ("/v1/responses".into(), vec![], b)
        }
        W::Messages => {
            let b = json!({"model": model, "max_tokens": 100, "system": "Be brief.",
                "messages": [{"role": "user", "content": "hi"}], "stream": stream});
            let h = vec![("anthropic-version", "2023-06-01".to_owned())];
            ("/v1/messages".into(), h, b)
        }
        W::Gemini => {
            let b = json!({"systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
            let path = if stream {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{model}:generateContent")
            };
            (path, vec![], b)
        }
    }
}

/// Sends `body` to `path` as a client of `w` with the scenario's key in that dialect's
/// credential.
async fn send(
    s: &Scenario,
    w: W,
    path: &str,
    extra: &[(&'static str, String)],
    body: &Value,
) -> Response {
    send_to(&s.gw, &s.key, w, path, extra, body).await
}

async fn send_to(
    gw: &Gateway,
    key: &str,
    w: W,
    path: &str,
    extra: &[(&'static str, String)],
    body: &Value,
) -> Response {
    let cred = match w {
        W::Chat | W::Responses => ("authorization", format!("Bearer {key}")),
        W::Messages => ("x-api-key", key.to_owned()),
        W::Gemini => ("x-goog-api-key", key.to_owned()),
    };
    let mut headers: Vec<(&str, &str)> = vec![(cred.0, cred.1.as_str())];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    let bytes = serde_json::to_vec(body).unwrap();
    request(gw.proxy_addr, "POST", path, &headers, &bytes).await
}

async fn call(s: &Scenario, w: W, model: &str, stream: bool) -> Response {
    let (path, extra, body) = client_request(w, model, stream);
    send(s, w, &path, &extra, &body).await
}

/// Usage as (prompt tokens in total, cache reads, output tokens), read from a response
/// object (or the usage-carrying event of a stream) of dialect `w`.
fn usage_of(w: W, v: &Value) -> Option<(u64, u64, u64)> {
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    match w {
        W::Chat => v.get("usage").filter(|u| !u.is_null()).map(|_| {
            (
                n("/usage/prompt_tokens"),
                n("/usage/prompt_tokens_details/cached_tokens"),
                n("/usage/completion_tokens"),
            )
        }),
        W::Responses => v.get("usage").filter(|u| !u.is_null()).map(|_| {
            (
                n("/usage/input_tokens"),
                n("/usage/input_tokens_details/cached_tokens"),
                n("/usage/output_tokens"),
            )
        }),
        W::Messages => v.get("usage").map(|_| {
            (
                n("/usage/input_tokens")
                    + n("/usage/cache_read_input_tokens")
                    + n("/usage/cache_creation_input_tokens"),
                n("/usage/cache_read_input_tokens"),
                n("/usage/output_tokens"),
            )
        }),
        W::Gemini => v.get("usageMetadata").map(|_| {
            (
                n("/usageMetadata/promptTokenCount"),
                n("/usageMetadata/cachedContentTokenCount"),
                n("/usageMetadata/candidatesTokenCount") + n("/usageMetadata/thoughtsTokenCount"),
            )
        }),
    }
}

/// The answer text (no thinking) of a whole response of dialect `w`.
fn text_of(w: W, v: &Value) -> String {
    let strings = |items: Option<&Value>, keep: &dyn Fn(&Value) -> Option<String>| {
        items
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(keep).collect::<String>())
            .unwrap_or_default()
    };
    match w {
        W::Chat => v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        W::Messages => strings(v.get("content"), &|b| {
            (b["type"] == "text").then(|| b["text"].as_str().unwrap().to_owned())
        }),
        W::Gemini => strings(v.pointer("/candidates/0/content/parts"), &|p| {
            (p.get("thought") != Some(&json!(true)))
                .then(|| p["text"].as_str().map(str::to_owned))
                .flatten()
        }),
        W::Responses => strings(v.get("output"), &|item| {
            (item["type"] == "message").then(|| {
                strings(item.get("content"), &|c| {
                    (c["type"] == "output_text").then(|| c["text"].as_str().unwrap().to_owned())
                })
            })
        }),
    }
}

/// A stream of dialect `w` as its events: (event name, JSON data).
fn events(body: &[u8]) -> Vec<(Option<String>, Value)> {
    sse_events(body)
        .iter()
        .filter_map(|e| {
            let data = event_data(e)?;
            let v = if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(&data).unwrap_or_else(|err| panic!("{err}: {data}"))
            };
            Some((event_name(e), v))
        })
        .collect()
}

/// The answer text of a stream of dialect `w` (no thinking), and the last usage it
/// carried.
fn stream_text_usage(w: W, body: &[u8]) -> (String, Option<(u64, u64, u64)>) {
    let mut text = String::new();
    let mut usage = None;
    for (_, v) in events(body) {
        match w {
            W::Chat => {
                if let Some(t) = v
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                {
                    text.push_str(t);
                }
                usage = usage_of(w, &v).or(usage);
            }
            W::Messages => {
                if v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta" {
                    text.push_str(v["delta"]["text"].as_str().unwrap());
                }
                if v["type"] == "message_delta" {
                    usage = usage_of(w, &v);
                }
            }
            W::Gemini => {
                text.push_str(&text_of(w, &v));
                usage = usage_of(w, &v).or(usage);
            }
            W::Responses => {
                if v["type"] == "response.output_text.delta" {
                    text.push_str(v["delta"].as_str().unwrap());
                }
                if v["type"] == "response.completed" {
                    usage = usage_of(w, &v["response"]);
                }
            }
        }
    }
    (text, usage)
}

/// Asserts the order of events the client's SDK requires.
fn assert_stream_order(w: W, body: &[u8]) {
    let evs = events(body);
    assert!(!evs.is_empty(), "an empty stream");
    match w {
        W::Chat => {
            assert_eq!(evs.last().unwrap().1, json!("[DONE]"));
            assert_eq!(
                evs[0].1.pointer("/choices/0/delta/role"),
                Some(&json!("assistant"))
            );
            let finish = evs
                .iter()
                .position(|(_, v)| {
                    v.pointer("/choices/0/finish_reason")
                        .is_some_and(|f| !f.is_null())
                })
                .expect("a finish chunk");
            let usage = evs
                .iter()
                .position(|(_, v)| usage_of(w, v).is_some())
                .expect("usage");
            assert!(finish <= usage, "usage after the finish chunk");
        }
        W::Messages => {
            let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
            assert_eq!(names[0], "message_start");
            assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
            let mut open: Option<u64> = None;
            for (name, v) in &evs {
                assert_eq!(name.as_deref(), v["type"].as_str(), "event name = type");
                match v["type"].as_str().unwrap() {
                    "content_block_start" => {
                        assert!(open.is_none(), "a block started inside another");
                        open = v["index"].as_u64();
                    }
                    "content_block_delta" => assert_eq!(open, v["index"].as_u64(), "{names:?}"),
                    "content_block_stop" => {
                        assert_eq!(open, v["index"].as_u64());
                        open = None;
                    }
                    "message_delta" => assert!(open.is_none(), "message_delta inside a block"),
                    _ => {}
                }
            }
        }
        W::Responses => {
            let types: Vec<&str> = evs
                .iter()
                .map(|(_, v)| v["type"].as_str().unwrap())
                .collect();
            assert_eq!(types[0], "response.created");
            assert_eq!(*types.last().unwrap(), "response.completed");
            for (name, v) in &evs {
                assert_eq!(name.as_deref(), v["type"].as_str());
            }
        }
        W::Gemini => {
            for (_, v) in &evs {
                assert!(
                    v.get("candidates").is_some() || v.get("usageMetadata").is_some(),
                    "{v}"
                );
            }
        }
    }
}

/// What the upstream kind's fixture says: its wire, fixture file, and buckets (input,
/// cache_read, cache_write, output, reasoning) per tests/fixtures/README.md.
fn upstream_fixture(kind: &str, stream: bool) -> (W, &'static str, [u64; 5]) {
    match (kind, stream) {
        ("openai", false) => (W::Chat, "openai/chat.json", [93, 1024, 0, 246, 192]),
        ("openai", true) => (W::Chat, "openai/chat.sse", [53, 1152, 0, 138, 128]),
        ("anthropic", false) => (
            W::Messages,
            "anthropic/messages.json",
            [21, 2048, 1536, 187, 0],
        ),
        ("anthropic", true) => (W::Messages, "anthropic/messages.sse", [472, 1024, 0, 89, 0]),
        ("gemini", false) => (W::Gemini, "gemini/generate.json", [13, 2048, 0, 376, 324]),
        ("gemini", true) => (W::Gemini, "gemini/stream.sse", [283, 1024, 0, 250, 211]),
        _ => unreachable!(),
    }
}

fn dialect_name(w: W) -> &'static str {
    match w {
        W::Chat | W::Responses => "openai",
        W::Messages => "anthropic",
        W::Gemini => "gemini",
    }
}

/// One translated pair: the client side, the upstream side, the stored usage.
async fn check_pair(s: &Scenario, w: W, model: &str, kind: &str, stream: bool, n: usize) {
    let label = format!("{w:?} -> {kind} ({model}, stream {stream})");
    let r = call(s, w, model, stream).await;
    assert_eq!(r.status, 200, "{label}: {}", r.text());
    let (up_wire, rel, b) = upstream_fixture(kind, stream);
    let fx = fixture(rel);
    let (want_text, _) = if stream {
        stream_text_usage(up_wire, &fx)
    } else {
        (
            text_of(up_wire, &serde_json::from_slice(&fx).unwrap()),
            None,
        )
    };
    let want_usage = (b[0] + b[1] + b[2], b[1], b[3]);
    let (text, usage) = if stream {
        let ct = r.header("content-type").unwrap();
        assert!(ct.starts_with("text/event-stream"), "{label}: {ct}");
        assert_stream_order(w, &r.body);
        stream_text_usage(w, &r.body)
    } else {
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let v = r.json();
        (text_of(w, &v), usage_of(w, &v))
    };
    assert!(!want_text.is_empty());
    assert_eq!(text, want_text, "{label}: the upstream's text");
    assert_eq!(
        usage,
        Some(want_usage),
        "{label}: the upstream's usage, in the client's dialect"
    );

    // the upstream got its own dialect
    let (mock, path, cred, value) = match kind {
        "openai" => {
            let k = if model == CHAT_ONLY { "sk-oc" } else { "sk-o" };
            (
                &s.openai,
                "/v1/chat/completions".to_owned(),
                "authorization",
                format!("Bearer {k}"),
            )
        }
        "anthropic" => (
            &s.anthropic,
            "/v1/messages".to_owned(),
            "x-api-key",
            "sk-a".to_owned(),
        ),
        _ => {
            let p = if stream {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{model}:generateContent")
            };
            (&s.gemini, p, "x-goog-api-key", "sk-g".to_owned())
        }
    };
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path_and_query, path, "{label}");
    assert_eq!(
        seen.header(cred),
        Some(value.as_str()),
        "{label}: the upstream's credential"
    );
    let up = seen.json();
    match kind {
        "openai" => {
            assert_eq!(
                up["messages"][0],
                json!({"role": "system", "content": "Be brief."})
            );
            assert_eq!(up["model"], model);
            if stream {
                assert_eq!(up["stream_options"]["include_usage"], true, "billable");
            }
        }
        "anthropic" => {
            assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
            assert!(up["system"].to_string().contains("Be brief."));
            assert_eq!(up["messages"][0]["role"], "user");
            assert!(up["max_tokens"].as_u64().is_some());
        }
        _ => {
            assert_eq!(up["systemInstruction"]["parts"][0]["text"], "Be brief.");
            assert_eq!(up["contents"][0]["parts"][0]["text"], "hi");
        }
    }

    // metered from the upstream's own report
    let ev = s.gw.usage_events_after(n).await;
    let e = ev
        .iter()
        .find(|e| {
            e["upstream_kind"] == kind
                && e["dialect"] == dialect_name(w)
                && e["streamed"] == i64::from(stream)
                && e["model_requested"] == model
        })
        .unwrap_or_else(|| panic!("{label}: no event in {ev:?}"));
    let got = [
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
    ]
    .map(|c| e[c].as_u64().unwrap());
    assert_eq!(got, b, "{label}: stored buckets");
    assert_eq!(e["estimated"], 0, "{label}");
    assert_eq!(e["status"], 200);
}

const PAIRS: [(W, &str, &str); 9] = [
    (W::Chat, CLAUDE, "anthropic"),
    (W::Chat, GEMINI, "gemini"),
    (W::Messages, GPT, "openai"),
    (W::Messages, GEMINI, "gemini"),
    (W::Gemini, GPT, "openai"),
    (W::Gemini, CLAUDE, "anthropic"),
    (W::Responses, CHAT_ONLY, "openai"),
    (W::Responses, CLAUDE, "anthropic"),
    (W::Responses, GEMINI, "gemini"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_whole_and_streamed_keeps_text_and_bills_the_upstreams_usage() {
    let s = scenario().await;
    let mut n = 0;
    for (w, model, kind) in PAIRS {
        for stream in [false, true] {
            n += 1;
            check_pair(&s, w, model, kind, stream, n).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_dialect_traffic_is_untouched_and_responses_go_to_openai_as_they_are() {
    let s = scenario().await;
    let r = call(&s, W::Responses, GPT, false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture("openai/responses.json"), "byte for byte");
    assert_eq!(
        s.openai.requests().pop().unwrap().path_and_query,
        "/v1/responses"
    );
    let r = call(&s, W::Messages, CLAUDE, true).await;
    assert_eq!(r.body, fixture("anthropic/messages.sse"), "byte for byte");
    let ev = s.gw.usage_events_after(2).await;
    assert_eq!(ev[1]["upstream_kind"], "anthropic");
    assert_eq!(ev[1]["dialect"], "anthropic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_translated_stream_flows_as_the_upstream_sends_it() {
    let s = scenario().await;
    let (path, extra, body) = client_request(W::Chat, "claude-held-stream", true);
    let auth = format!("Bearer {}", s.key);
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut r = request_streaming(s.gw.proxy_addr, "POST", &path, &headers, &bytes).await;
    assert_eq!(r.status, 200);
    // The upstream holds the rest of its stream until the client has a first chunk.
    let first = tokio::time::timeout(Duration::from_secs(10), r.next_chunk())
        .await
        .expect("no chunk before the upstream finished: the stream was buffered")
        .unwrap();
    assert!(
        first.starts_with(b"data: {"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    s.anthropic.release_held(1);
    let rest = r.read_to_end().await;
    assert!(rest.ends_with(b"data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_reach_the_client_in_its_envelope_with_retry_after() {
    let s = scenario().await;
    let r = call(&s, W::Chat, "claude-error-429", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let v = r.json();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));

    let r = call(&s, W::Gemini, "gpt-error-400", false).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], 400, "{v}");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");

    let r = call(&s, W::Messages, "gemini-error-429", true).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let ev = s.gw.usage_events_after(3).await;
    assert!(ev
        .iter()
        .all(|e| e["input_tokens"] == 0 && e["output_tokens"] == 0));
}

/// A field with no counterpart upstream is OpenAI's `unsupported_parameter`, a
/// conversation no provider takes `invalid_request`; each names its field, and nothing
/// reaches an upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_with_no_counterpart_is_refused_naming_it() {
    let s = scenario().await;
    let body = json!({"model": CLAUDE, "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    let r = send(&s, W::Chat, "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "n");
    assert_eq!(r.json()["error"]["code"], "unsupported_parameter");
    // Not a valid request of its own dialect (a call answered twice): `invalid_request`.
    let call =
        json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let result = json!({"role": "tool", "tool_call_id": "call_1", "content": "x"});
    let body = json!({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [call]}, result, result]});
    let r = send(&s, W::Chat, "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["param"].as_str()),
        (Some("invalid_request"), Some("messages")),
        "{v}"
    );
    let body = json!({"model": GPT, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    let r = send(&s, W::Messages, "/v1/messages", &[], &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tools"),
        "{v}"
    );
    assert_eq!(s.anthropic.request_count() + s.openai.request_count(), 0);
}

/// `null` reads as absent on both sides, as the providers read it. An OpenAI SDK app
/// feeds the SDK's answer back with `message.model_dump()`, which carries
/// `"tool_calls": null` (and `function_call`, `audio`, `refusal`), and sends unset
/// parameters as `null`: on Claude it is translated, not refused. An OpenAI-compatible
/// host that answers with `null` lists is read the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_members_read_as_absent_ones_both_ways() {
    let s = scenario().await;
    let body = json!({"model": CLAUDE, "max_tokens": 100, "tools": null, "tool_choice": null,
        "stop": null, "temperature": null, "functions": null, "service_tier": null,
        "messages": [
            {"role": "user", "content": "hi", "name": null},
            {"role": "assistant", "content": "Hello!", "tool_calls": null, "function_call": null,
             "audio": null, "refusal": null, "annotations": []},
            {"role": "user", "content": "again"}]});
    let r = send(&s, W::Chat, "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    let sent = s.anthropic.requests().pop().unwrap().json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "again"}]}]),
        "{sent}"
    );
    assert!(
        sent.get("tools").is_none() && sent.get("stop_sequences").is_none(),
        "{sent}"
    );

    let host = Scripted::start(|_| {
        Reply::json(
            200,
            r#"{"id":null,"object":"chat.completion","created":null,"model":"qwen3","choices":[{"index":0,"message":{"role":"assistant","content":"Hi.","tool_calls":null,"reasoning_content":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":null}}"#,
        )
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("vllm", &host).keys(&["sk-v"]))
        .route(&["qwen*"], &["vllm"])
        .start_with_key("carol");
    let (path, extra, body) = client_request(W::Messages, "qwen3", false);
    let r = send_to(&gw, &key, W::Messages, &path, &extra, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hi."}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        (
            v["usage"]["input_tokens"].as_u64(),
            v["usage"]["output_tokens"].as_u64()
        ),
        (Some(9), Some(2))
    );
    let ev = gw.usage_events_after(1).await;
    assert_eq!(
        (
            ev[0]["input_tokens"].as_u64(),
            ev[0]["output_tokens"].as_u64()
        ),
        (Some(9), Some(2))
    );
    assert_eq!(ev[0]["estimated"], 0);
}

/// Some OpenAI-compatible hosts answer a tool call's `arguments` as the object itself,
/// not its JSON text: a Claude Code on such a model gets the call, whole or streamed,
/// instead of a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_arguments_answered_as_an_object_are_read_as_that_object() {
    let host = Scripted::start(|req| {
        if serde_json::from_slice::<Value>(&req.body).unwrap()["stream"] == true {
            Reply::sse(concat!(
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":[1,2]}}}]},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":7,\"total_tokens\":27}}\n\n",
                "data: [DONE]\n\n"
            ))
        } else {
            Reply::json(
                200,
                r#"{"id":"c1","object":"chat.completion","created":1,"model":"qwen3","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris","days":[1,2]}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27}}"#,
            )
        }
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("vllm", &host).keys(&["sk-v"]))
        .route(&["qwen*"], &["vllm"])
        .start_with_key("carol");
    let schema: Value = serde_json::from_str(TOOL).unwrap();
    let want = json!({"city": "Paris", "days": [1, 2]});
    for stream in [false, true] {
        let body = json!({"model": "qwen3", "max_tokens": 100, "stream": stream,
            "tools": [{"name": "get_weather", "input_schema": schema}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        let extra = [("anthropic-version", "2023-06-01".to_owned())];
        let r = send_to(&gw, &key, W::Messages, "/v1/messages", &extra, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let (id, name, input, stop) = if stream {
            assert_stream_order(W::Messages, &r.body);
            let evs = events(&r.body);
            let start = &evs
                .iter()
                .find(|(_, v)| v["type"] == "content_block_start")
                .unwrap()
                .1["content_block"];
            let args: String = evs
                .iter()
                .filter(|(_, v)| v["delta"]["type"] == "input_json_delta")
                .map(|(_, v)| v["delta"]["partial_json"].as_str().unwrap())
                .collect();
            let stop = &evs
                .iter()
                .find(|(_, v)| v["type"] == "message_delta")
                .unwrap()
                .1["delta"]["stop_reason"];
            (
                start["id"].clone(),
                start["name"].clone(),
                serde_json::from_str::<Value>(&args).unwrap(),
                stop.clone(),
            )
        } else {
            let v = r.json();
            let block = &v["content"][0];
            assert_eq!(block["type"], "tool_use", "{v}");
            (
                block["id"].clone(),
                block["name"].clone(),
                block["input"].clone(),
                v["stop_reason"].clone(),
            )
        };
        assert_eq!(
            (id, name, input, stop),
            (
                json!("call_9"),
                json!("get_weather"),
                want.clone(),
                json!("tool_use")
            ),
            "stream: {stream}"
        );
    }
    let ev = gw.usage_events_after(2).await;
    for e in &ev {
        assert_eq!(
            (e["input_tokens"].as_u64(), e["output_tokens"].as_u64()),
            (Some(20), Some(7))
        );
        assert_eq!(e["estimated"], 0);
    }
}

/// Claude Code on a Mistral reasoning model: Mistral answers its thinking as typed
/// `thinking` chunks in `content` (whole, and streamed while it thinks). The client gets
/// a thinking block before the text and the call, and the usage Mistral reported is
/// recorded as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistral_reasoning_models_thinking_reaches_claude_code() {
    const STREAM: &str =
        include_str!("../filters/tests/fixtures/translate/openai/mistral_reasoning.sse");
    const WHOLE: &str =
        include_str!("../filters/tests/fixtures/translate/openai/mistral_reasoning.json");
    const THOUGHT: &str = "The user wants the weather in Paris. I call the tool.";
    // Mistral refuses a member it does not document, as this host does.
    let host = Scripted::start(|req| {
        let body = serde_json::from_slice::<Value>(&req.body).unwrap();
        for extra in ["stream_options", "user", "max_completion_tokens"] {
            if body.get(extra).is_some() {
                return Reply::json(
                    422,
                    json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden",
                        "loc": ["body", extra], "msg": "Extra inputs are not permitted"}]},
                        "type": "invalid_request_error", "param": null, "code": null})
                    .to_string(),
                );
            }
        }
        // And it takes only tool-call ids of its own form.
        let mistral_form = |id: &Value| {
            id.as_str()
                .is_some_and(|id| id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        };
        for m in body["messages"].as_array().unwrap() {
            let ids = m["tool_calls"].as_array().into_iter().flatten().map(|c| &c["id"]);
            for id in ids.chain(m.get("tool_call_id")) {
                if !mistral_form(id) {
                    return Reply::json(
                        400,
                        json!({"object": "error", "message": format!("Tool call id was {} but must be a-z, A-Z, 0-9, with a length of 9.", id.as_str().unwrap_or("")),
                            "type": "invalid_request_error", "param": null, "code": "3280"})
                        .to_string(),
                    );
                }
            }
        }
        if body["stream"] == true {
            Reply::sse(STREAM)
        } else {
            Reply::json(200, WHOLE)
        }
    })
    .await;
    let schema: Value = serde_json::from_str(TOOL).unwrap();
    let ask = |stream: bool| {
        json!({"model": "magistral-medium-2509", "max_tokens": 1000, "stream": stream,
            "metadata": {"user_id": "user_7f3a"},
            "tools": [{"name": "get_weather", "input_schema": schema}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    };
    let extra = [("anthropic-version", "2023-06-01".to_owned())];

    // As an OpenAI upstream is configured by default, the host refuses the request: the
    // client gets its status and its reason, naming the member, in its own envelope.
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("mistral", &host).keys(&["sk-m"]))
        .route(&["magistral-*"], &["mistral"])
        .start_with_key("carol");
    let r = send_to(&gw, &key, W::Messages, "/v1/messages", &extra, &ask(true)).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(
        v["error"]["message"],
        "body.stream_options: Extra inputs are not permitted"
    );
    drop(gw);

    // Configured for Mistral: no stream_options (it reports usage unasked), the legacy
    // max_tokens, no user.
    let (gw, key) = GatewayBuilder::new()
        .upstream(
            Upstream::openai("mistral", &host)
                .keys(&["sk-m"])
                .set("stream_include_usage", false)
                .set(
                    "translation",
                    "{ openai_legacy_max_tokens: true, omit: [user], mistral_tool_call_ids: true }",
                ),
        )
        .route(&["magistral-*"], &["mistral"])
        .start_with_key("carol");
    for stream in [false, true] {
        let r = send_to(&gw, &key, W::Messages, "/v1/messages", &extra, &ask(stream)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let seen: Value = serde_json::from_slice(&host.requests().last().unwrap().body).unwrap();
        assert_eq!(seen["max_tokens"], 1000, "{seen}");
        let (blocks, stop) = if stream {
            assert_stream_order(W::Messages, &r.body);
            let evs = events(&r.body);
            let mut blocks: Vec<Value> = Vec::new();
            let mut stop = Value::Null;
            for (_, v) in evs {
                match v["type"].as_str().unwrap() {
                    "content_block_start" => blocks.push(v["content_block"].clone()),
                    "content_block_delta" => {
                        let b = blocks.last_mut().unwrap();
                        let (key, piece) = match v["delta"]["type"].as_str().unwrap() {
                            "thinking_delta" => ("thinking", "thinking"),
                            "text_delta" => ("text", "text"),
                            "input_json_delta" => ("partial", "partial_json"),
                            _ => continue,
                        };
                        let so_far = b[key].as_str().unwrap_or("").to_owned();
                        b[key] = json!(so_far + v["delta"][piece].as_str().unwrap());
                    }
                    "message_delta" => stop = v["delta"]["stop_reason"].clone(),
                    _ => {}
                }
            }
            (blocks, stop)
        } else {
            let v = r.json();
            (
                v["content"].as_array().unwrap().clone(),
                v["stop_reason"].clone(),
            )
        };
        let kinds: Vec<_> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        let texts = if stream { 1 } else { 2 };
        assert_eq!(kinds.len(), 2 + texts, "stream {stream}: {blocks:?}");
        assert_eq!(kinds[0], "thinking", "stream {stream}: {blocks:?}");
        assert!(kinds[1..=texts].iter().all(|k| *k == "text"), "{blocks:?}");
        assert_eq!(kinds[texts + 1], "tool_use", "{blocks:?}");
        assert_eq!(blocks[0]["thinking"], THOUGHT, "stream {stream}");
        assert_eq!(blocks[texts + 1]["name"], "get_weather");
        assert_eq!(stop, "tool_use", "stream {stream}");
    }
    let ev = gw.usage_events_after(2).await;
    for e in &ev {
        assert_eq!(
            (e["input_tokens"].as_u64(), e["output_tokens"].as_u64()),
            (Some(182), Some(65))
        );
        assert_eq!(e["estimated"], 0);
    }

    // A conversation begun on Claude (its `toolu_` id) and continued on Mistral: the id
    // goes as an alias Mistral takes, the same on the call and on its result.
    let mut history = ask(false);
    history["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C"}]}]);
    let r = send_to(&gw, &key, W::Messages, "/v1/messages", &extra, &history).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Value = serde_json::from_slice(&host.requests().last().unwrap().body).unwrap();
    let alias = &seen["messages"][1]["tool_calls"][0]["id"];
    assert_ne!(alias, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(&seen["messages"][2]["tool_call_id"], alias, "{seen}");
}

/// Claude Code's tool loop on a host that thinks between tool calls (Kimi, GLM, DeepSeek
/// in thinking mode): the host refuses a tool-call turn sent back without its
/// `reasoning_content`. With `translation.send_reasoning_content` the thinking block
/// Claude Code replays goes back as that member and the loop goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_tool_loop_on_a_host_that_wants_its_reasoning_back() {
    let host = Scripted::start(|req| {
        let body = serde_json::from_slice::<Value>(&req.body).unwrap();
        let msgs = body["messages"].as_array().unwrap();
        for (i, m) in msgs.iter().enumerate() {
            if m["role"] == "assistant" && m.get("tool_calls").is_some() && m.get("reasoning_content").is_none() {
                return Reply::json(
                    400,
                    json!({"error": {"message": format!("thinking is enabled but reasoning_content is missing in assistant tool call message at index {i}"), "type": "invalid_request_error"}}).to_string(),
                );
            }
        }
        let answer = if msgs.iter().any(|m| m["role"] == "tool") {
            json!({"role": "assistant", "content": "It is 18C in Paris.", "reasoning_content": "The tool said 18C."})
        } else {
            json!({"role": "assistant", "content": null, "reasoning_content": "I need the weather tool.",
                "tool_calls": [{"id": "get_weather:0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]})
        };
        let finish = if answer.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
        Reply::json(
            200,
            json!({"id": "k1", "object": "chat.completion", "created": 1, "model": "kimi-k2.5",
                "choices": [{"index": 0, "message": answer, "finish_reason": finish}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}})
            .to_string(),
        )
    })
    .await;
    let schema: Value = serde_json::from_str(TOOL).unwrap();
    let extra = [("anthropic-version", "2023-06-01".to_owned())];
    let turn = |history: &[Value]| {
        json!({"model": "kimi-k2.5", "max_tokens": 1000,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "tools": [{"name": "get_weather", "input_schema": schema}],
            "messages": history})
    };
    // The client's loop: ask, run the tool it is given, send the answer back with the
    // assistant's turn as it came.
    async fn tool_loop(
        gw: &Gateway,
        key: &str,
        turn: &dyn Fn(&[Value]) -> Value,
        extra: &[(&'static str, String)],
    ) -> Response {
        let mut history = vec![json!({"role": "user", "content": "Weather in Paris?"})];
        let r = send_to(gw, key, W::Messages, "/v1/messages", extra, &turn(&history)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let first = r.json();
        assert_eq!(first["stop_reason"], "tool_use", "{first}");
        assert_eq!(first["content"][0]["type"], "thinking", "{first}");
        let call = first["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap()
            .clone();
        history.push(json!({"role": "assistant", "content": first["content"]}));
        history.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18C"}]}));
        send_to(gw, key, W::Messages, "/v1/messages", extra, &turn(&history)).await
    }

    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("kimi", &host).keys(&["sk-k"]))
        .route(&["kimi-*"], &["kimi"])
        .start_with_key("carol");
    let r = tool_loop(&gw, &key, &turn, &extra).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("reasoning_content is missing"),
        "{}",
        r.text()
    );
    drop(gw);

    let (gw, key) = GatewayBuilder::new()
        .upstream(
            Upstream::openai("kimi", &host)
                .keys(&["sk-k"])
                .set("translation", "{ send_reasoning_content: true }"),
        )
        .route(&["kimi-*"], &["kimi"])
        .start_with_key("carol");
    let r = tool_loop(&gw, &key, &turn, &extra).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["content"][1]["text"], "It is 18C in Paris.", "{v}");
    let sent: Value = serde_json::from_slice(&host.requests().last().unwrap().body).unwrap();
    let assistant = &sent["messages"][1];
    assert_eq!(
        assistant["reasoning_content"], "I need the weather tool.",
        "{sent}"
    );
    assert_eq!(assistant["tool_calls"][0]["id"], "get_weather:0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_64_kib_is_translated_too() {
    let s = scenario().await;
    let text = "a".repeat(70_000);
    let body = json!({"model": CLAUDE, "messages": [{"role": "user", "content": text}]});
    let r = send(&s, W::Chat, "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    let seen = s.anthropic.requests().pop().unwrap();
    assert_eq!(seen.path_and_query, "/v1/messages");
    assert!(seen.json()["messages"][0]["content"].to_string().len() > 70_000);
    assert_eq!(
        seen.header("content-length"),
        Some(seen.body.len().to_string().as_str())
    );
}

/// An upstream answering every request with the fixture `rel` (two parallel tool calls).
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

const TOOL: &str =
    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_and_results_cross_dialects_with_ids_and_order() {
    let ant = tool_upstream("anthropic/tool_use.json").await;
    let oai = tool_upstream("openai/tool_calls.sse").await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::anthropic("sa", &ant).keys(&["sk-sa"]))
        .upstream(Upstream::openai("so", &oai).keys(&["sk-so"]))
        .route(&["claude-*"], &["sa"])
        .route(&["gpt-*"], &["so"])
        .start_with_key("bob");
    let send = |w, path, body| {
        let (gw, key) = (&gw, key.as_str());
        async move { send_to(gw, key, w, path, &[], &body).await }
    };

    // OpenAI client, Anthropic upstream, whole: a tool loop's second turn
    let schema: Value = serde_json::from_str(TOOL).unwrap();
    let body = json!({"model": "claude-sonnet-4-5", "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"}]});
    let r = send(W::Chat, "/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0]["id"].as_str(), calls[1]["id"].as_str()),
        (Some("toolu_A"), Some("toolu_B"))
    );
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Rome"}));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 60);
    let up: Value = serde_json::from_slice(&ant.requests()[0].body).unwrap();
    assert_eq!(up["tools"][0]["input_schema"], schema);
    assert_eq!(up["tool_choice"]["type"], "any");
    let turns = up["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{up}");
    let uses: Vec<&str> = turns[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(uses, ["call_1", "call_2"]);
    let results: Vec<(&str, &str)> = turns[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["tool_use_id"].as_str().unwrap(),
                b["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [("call_1", "tool_result"), ("call_2", "tool_result")]
    );

    // Anthropic client, OpenAI upstream, streamed: two tool_use blocks in order
    let body = json!({"model": "gpt-4o", "max_tokens": 100, "stream": true,
        "tools": [{"name": "get_weather", "input_schema": schema}],
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]});
    let r = send(W::Messages, "/v1/messages", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_stream_order(W::Messages, &r.body);
    let evs = events(&r.body);
    let starts: Vec<(&str, &str)> = evs
        .iter()
        .filter(|(_, v)| v["type"] == "content_block_start")
        .map(|(_, v)| {
            (
                v["content_block"]["id"].as_str().unwrap(),
                v["content_block"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        starts,
        [("call_A", "get_weather"), ("call_B", "get_weather")]
    );
    let mut args = [String::new(), String::new()];
    for (_, v) in &evs {
        if v["delta"]["type"] == "input_json_delta" {
            args[v["index"].as_u64().unwrap() as usize]
                .push_str(v["delta"]["partial_json"].as_str().unwrap());
        }
    }
    assert_eq!(
        args.map(|a| serde_json::from_str::<Value>(&a).unwrap()),
        [json!({"city": "Paris"}), json!({"city": "Rome"})]
    );
    let delta = &evs
        .iter()
        .find(|(_, v)| v["type"] == "message_delta")
        .unwrap()
        .1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    let up: Value = serde_json::from_slice(&oai.requests()[0].body).unwrap();
    assert_eq!(up["tools"][0]["function"]["parameters"], schema);

    // billed from the upstreams' reports, bucket by bucket
    let ev = gw.usage_events_after(2).await;
    let buckets = |e: &Value| {
        [
            "input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "output_tokens",
        ]
        .map(|c| e[c].as_u64().unwrap())
    };
    assert_eq!(buckets(&ev[0]), [50, 7, 3, 40]);
    assert_eq!(buckets(&ev[1]), [56, 64, 0, 30]);
    assert!(ev.iter().all(|e| e["estimated"] == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_to_another_kind_is_translated_for_that_attempt() {
    let down = Scripted::start(|_| {
        Reply::json(503, r#"{"error":{"message":"busy","type":"server_error"}}"#)
    })
    .await;
    let anthropic = common::MockUpstream::start().await;
    let openai = common::MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("down", &down).keys(&["sk-d"]))
        .upstream(Upstream::anthropic("a", &anthropic).keys(&["sk-a"]))
        .upstream(Upstream::openai("o", &openai).keys(&["sk-o"]))
        .route(&["fb-claude"], &["down", "a"])
        .route(&["fb-back"], &["a-bad", "o"])
        .upstream(Upstream::anthropic("a-bad", &down).keys(&["sk-b"]))
        .start_with_key("bob");
    let auth = format!("Bearer {key}");
    let chat = |m: &str| {
        serde_json::to_vec(&json!({"model": m, "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap()
    };
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &chat("fb-claude"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    let first: Value = serde_json::from_slice(&down.requests()[0].body).unwrap();
    assert_eq!(
        first["messages"][0]["content"], "hi",
        "native to the OpenAI-kind first"
    );
    let second = anthropic.requests().pop().unwrap();
    assert_eq!(second.path_and_query, "/v1/messages");
    assert_eq!(second.header("x-api-key"), Some("sk-a"));
    assert!(
        second.json()["max_tokens"].as_u64().is_some(),
        "translated for the fallback"
    );

    // and back: translated first, native after
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &chat("fb-back"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tried: Value = serde_json::from_slice(&down.requests()[1].body).unwrap();
    assert!(
        tried["max_tokens"].as_u64().is_some(),
        "translated for the anthropic attempt"
    );
    assert_eq!(down.requests()[1].path, "/v1/messages");
    let native = openai.requests().pop().unwrap();
    assert_eq!(native.path_and_query, "/v1/chat/completions");
    assert_eq!(
        native.json(),
        serde_json::from_slice::<Value>(&chat("fb-back")).unwrap(),
        "byte for byte JSON"
    );
    assert_eq!(r.body, fixture("openai/chat.json"));

    let ev = gw.usage_events_after(2).await;
    assert_eq!(
        (ev[0]["upstream"].as_str(), ev[0]["upstream_kind"].as_str()),
        (Some("a"), Some("anthropic"))
    );
    assert_eq!(ev[0]["input_tokens"], 21);
    assert_eq!(ev[0]["cache_write_tokens"], 1536);
    assert_eq!(ev[1]["upstream_kind"], "openai");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_for_other_kinds_is_estimated_here_and_listings_show_every_kind() {
    let s = Scenario::start_with(|c| {
        c.route(&["my-claude"], &["a"])
            .route(&["my-gpt"], &["o"])
            .route(&["my-gemini"], &["g"])
    })
    .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello world, how are you today?"}]});
    let r = send(&s, W::Messages, "/v1/messages/count_tokens", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-estimated"), Some("true"));
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!((5..=20).contains(&n), "{n}");
    assert_eq!(s.openai.request_count(), 0);
    // on an Anthropic upstream the upstream counts
    let body = json!({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]});
    let r = send(&s, W::Messages, "/v1/messages/count_tokens", &[], &body).await;
    assert_eq!(r.json()["input_tokens"], 2095);
    assert_eq!(r.header("x-tollgate-estimated"), None);
    // Gemini's countTokens for a Claude model
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hello world, how are you today?"}]}]});
    let r = send(
        &s,
        W::Gemini,
        "/v1beta/models/claude-sonnet-4-5:countTokens",
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-estimated"), Some("true"));
    assert!(r.json()["totalTokens"].as_u64().unwrap() > 0);
    assert_eq!(s.anthropic.request_count(), 1);

    let auth = format!("Bearer {}", s.key);
    let r = request(
        s.gw.proxy_addr,
        "GET",
        "/v1/models",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    for m in ["my-claude", "my-gpt", "my-gemini"] {
        assert!(ids.iter().any(|i| i == m), "{m} in {ids:?}");
    }
    let r = request(
        s.gw.proxy_addr,
        "GET",
        "/v1beta/models",
        &[("x-goog-api-key", &s.key)],
        b"",
    )
    .await;
    let names = r.json()["models"].to_string();
    for m in ["models/my-claude", "models/my-gpt", "models/my-gemini"] {
        assert!(names.contains(m), "{m} in {names}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_translation_options_apply_to_requests_translated_for_it() {
    let anthropic = MockUpstream::start().await;
    let openai = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(
            Upstream::anthropic("a", &anthropic)
                .keys(&["sk-a"])
                .set("translation", "{ default_max_tokens: 77 }"),
        )
        .upstream(
            Upstream::openai("o", &openai)
                .keys(&["sk-o"])
                .set("translation", "{ openai_legacy_max_tokens: true }"),
        )
        .route(&["claude-*"], &["a"])
        .route(&["gpt-*"], &["o"])
        .start_with_key("bob");
    let chat = json!({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]});
    let r = send_to(&gw, &key, W::Chat, "/v1/chat/completions", &[], &chat).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(anthropic.requests()[0].json()["max_tokens"], 77);
    let (path, extra, body) = client_request(W::Messages, GPT, false);
    let r = send_to(&gw, &key, W::Messages, &path, &extra, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = openai.requests()[0].json();
    assert_eq!(up["max_tokens"], 100);
    assert!(up.get("max_completion_tokens").is_none(), "{up}");
}
