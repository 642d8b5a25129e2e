//! Round trips: a request goes from a client dialect to a foreign upstream, the
//! recorded answer comes back translated, and the client's next request (built from
//! that answer as its SDK echoes it) goes upstream again with every signature intact
//! (checklist item 1, TRANSLATION_NOTES 4.6).

// Helpers outside `#[test]` functions may panic too: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::*;
use tollgate_filters::translate::{translate_request, ClientRequest, Options, Pair, Wire};

const GEM_SIG: &str = "CiQB0e2Kb7xQ1mW3nYv8tZ4rLp6sHd9cFg2jKa5uEi0oBqXyTlM=";
const ANT_SIG: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds9lAWs0xRt6rKjHxLQnBzUWkZEFYb4xl7qZVQJz0a7gX3cM";

fn upstream_body(client: Wire, upstream: Wire, body: &Value) -> (Value, Vec<&'static str>) {
    let bytes = body.to_string();
    let req = ClientRequest {
        body: bytes.as_bytes(),
        query: Some("alt=sse"),
        gemini_stream: true,
        served_model: "gemini-3-pro-preview",
        now: 1,
    };
    let t = translate_request(Pair { client, upstream }, req, &Options::default())
        .unwrap_or_else(|e| panic!("{e}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.notes.dropped)
}

fn weather_tool_oai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}}])
}

/// The model turn of a Gemini request: its function calls carry the signature Gemini
/// minted, on the first call only.
fn assert_gemini_signature_back(req: &Value) {
    let model = req["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "model")
        .expect("a model turn");
    let calls: Vec<&Value> = model["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("functionCall").is_some())
        .collect();
    assert_eq!(calls.len(), 2, "{model}");
    assert_eq!(calls[0]["thoughtSignature"], GEM_SIG, "{model}");
    assert!(calls[1].get("thoughtSignature").is_none());
    assert_eq!(
        calls[1]["functionCall"]["args"],
        json!({"city": "Tokyo", "unit": "c"})
    );
    let user = req["contents"].as_array().unwrap().last().unwrap();
    let names: Vec<&str> = user["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["functionResponse"]["name"].as_str())
        .collect();
    assert_eq!(names, ["get_weather", "get_weather"]);
}

/// An OpenAI client on Gemini 3: the signature rides in the tool-call id and goes back.
#[test]
fn gemini_signature_round_trips_through_an_openai_client() {
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris and Tokyo?"})];
    let first =
        json!({"model": "m", "messages": messages, "tools": weather_tool_oai(), "stream": true});
    let (r1, _) = upstream_body(Wire::Chat, Wire::Gemini, &first);
    assert_eq!(
        r1["contents"][0]["parts"][0]["text"],
        "Weather in Paris and Tokyo?"
    );
    let out = run(
        &exchange(Wire::Chat, Wire::Gemini, true),
        &fixture("gemini/thinking_tools.sse"),
        &[],
        false,
    );
    let s = openai_stream(&sse(&out));
    let calls: Vec<Value> = s.calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect();
    messages.push(json!({"role": "assistant", "content": s.text, "tool_calls": calls}));
    for (id, _, _) in &s.calls {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": "18C"}));
    }
    let second = json!({"model": "m", "messages": messages, "tools": weather_tool_oai()});
    let (r2, _) = upstream_body(Wire::Chat, Wire::Gemini, &second);
    assert_gemini_signature_back(&r2);
}

/// An Anthropic client (Claude Code) on Gemini 3: the signature rides in a thinking
/// block before the call, and the unsigned thought is not sent back.
#[test]
fn gemini_signature_round_trips_through_an_anthropic_client() {
    let out = run(
        &exchange(Wire::Messages, Wire::Gemini, true),
        &fixture("gemini/thinking_tools.sse"),
        &[],
        false,
    );
    let blocks = anthropic_blocks(&sse(&out));
    let results: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| json!({"type": "tool_result", "tool_use_id": b["id"], "content": "18C"}))
        .collect();
    let second = json!({"model": "m", "max_tokens": 1000, "messages": [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": results}]});
    let (r2, dropped) = upstream_body(Wire::Messages, Wire::Gemini, &second);
    assert_gemini_signature_back(&r2);
    assert_eq!(dropped, ["thinking"], "the unsigned thought summary");
}

/// A Responses client (Codex) on Gemini 3: the signature rides in a reasoning item's
/// `encrypted_content`.
#[test]
fn gemini_signature_round_trips_through_a_responses_client() {
    let out = run(
        &exchange(Wire::Responses, Wire::Gemini, true),
        &fixture("gemini/thinking_tools.sse"),
        &[],
        false,
    );
    let (items, _) = responses_items(&sse(&out));
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris and Tokyo?"})];
    input.extend(items.iter().cloned());
    for item in items.iter().filter(|i| i["type"] == "function_call") {
        input.push(
            json!({"type": "function_call_output", "call_id": item["call_id"], "output": "18C"}),
        );
    }
    let second = json!({"model": "m", "input": input});
    let (r2, _) = upstream_body(Wire::Responses, Wire::Gemini, &second);
    assert_gemini_signature_back(&r2);
}

/// The same through whole (non-streamed) answers.
#[test]
fn gemini_signature_round_trips_through_whole_answers() {
    let t = tollgate_filters::translate::response::ResponseTranslator::new(exchange(
        Wire::Chat,
        Wire::Gemini,
        false,
    ));
    let v: Value =
        serde_json::from_slice(&t.whole(&fixture("gemini/thinking_tools.json"))).unwrap();
    let msg = v["choices"][0]["message"].clone();
    let mut messages = vec![json!({"role": "user", "content": "Weather?"}), msg.clone()];
    for c in msg["tool_calls"].as_array().unwrap() {
        messages.push(json!({"role": "tool", "tool_call_id": c["id"], "content": "18C"}));
    }
    let (r2, _) = upstream_body(
        Wire::Chat,
        Wire::Gemini,
        &json!({"model": "m", "messages": messages}),
    );
    assert_gemini_signature_back(&r2);
}

/// The Anthropic thinking block that preceded the tool use: signature and text as
/// Anthropic minted them, with thinking still on.
fn assert_anthropic_thinking_back(req: &Value, text: &str) {
    let assistant = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(
        assistant["content"][0],
        json!({"type": "thinking", "thinking": text, "signature": ANT_SIG})
    );
    assert!(
        req["thinking"]["budget_tokens"].as_u64().is_some(),
        "thinking stays on: {req}"
    );
    let uses: Vec<&str> = assistant["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    let results: Vec<&str> = req["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["tool_use_id"].as_str())
        .collect();
    assert_eq!(uses, results);
    assert_eq!(uses.len(), 2);
}

/// A Gemini client on Claude: the thinking signature rides in a thought part and goes
/// back to Anthropic as it was minted.
#[test]
fn anthropic_signature_round_trips_through_a_gemini_client() {
    let out = run(
        &exchange(Wire::Gemini, Wire::Messages, true),
        &fixture("anthropic/thinking_tools.sse"),
        &[],
        false,
    );
    let parts = gemini_parts(&gemini_chunks(&out, true));
    let responses: Vec<Value> = parts
        .iter()
        .filter_map(|p| p.get("functionCall"))
        .map(|c| json!({"functionResponse": {"id": c["id"], "name": c["name"], "response": {"result": "18C"}}}))
        .collect();
    let second = json!({"contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris and Tokyo?"}]},
        {"role": "model", "parts": parts},
        {"role": "user", "parts": responses}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}, "maxOutputTokens": 4096}});
    let (r2, _) = upstream_body(Wire::Gemini, Wire::Messages, &second);
    assert_anthropic_thinking_back(
        &r2,
        "The user wants the weather in two cities. I will call the tool for both at once.",
    );
}

/// A Responses client on Claude: the thinking signature rides in `encrypted_content`.
#[test]
fn anthropic_signature_round_trips_through_a_responses_client() {
    let out = run(
        &exchange(Wire::Responses, Wire::Messages, true),
        &fixture("anthropic/thinking_tools.sse"),
        &[],
        false,
    );
    let (items, _) = responses_items(&sse(&out));
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris and Tokyo?"})];
    input.extend(items.iter().cloned());
    for item in items.iter().filter(|i| i["type"] == "function_call") {
        input.push(
            json!({"type": "function_call_output", "call_id": item["call_id"], "output": "18C"}),
        );
    }
    let second =
        json!({"model": "m", "input": input, "reasoning": {"effort": "medium", "summary": "auto"}});
    let (r2, _) = upstream_body(Wire::Responses, Wire::Messages, &second);
    assert_anthropic_thinking_back(
        &r2,
        "The user wants the weather in two cities. I will call the tool for both at once.",
    );
}

/// An OpenAI client on Claude has nowhere to keep the signature: the next request
/// turns thinking off rather than sending a tool use Anthropic would refuse.
#[test]
fn anthropic_signature_lost_in_openai_turns_thinking_off() {
    let out = run(
        &exchange(Wire::Chat, Wire::Messages, true),
        &fixture("anthropic/thinking_tools.sse"),
        &[],
        false,
    );
    let s = openai_stream(&sse(&out));
    let calls: Vec<Value> = s.calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect();
    let mut messages = vec![
        json!({"role": "user", "content": "Weather?"}),
        json!({"role": "assistant", "content": s.text, "reasoning_content": s.reasoning, "tool_calls": calls}),
    ];
    for (id, _, _) in &s.calls {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": "18C"}));
    }
    let second = json!({"model": "m", "messages": messages, "reasoning_effort": "medium", "max_completion_tokens": 8000});
    let (r2, dropped) = upstream_body(Wire::Chat, Wire::Messages, &second);
    assert!(r2.get("thinking").is_none());
    let blocks = r2["messages"][1]["content"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] != "thinking"));
    assert_eq!(dropped.iter().filter(|d| **d == "thinking").count(), 2);
}

/// Ids an Anthropic client could not accept are carried in ones it does on the way out,
/// and go back to the upstream as it gave them, paired (Kimi reads its own
/// `functions.Bash:0`).
#[test]
fn odd_upstream_ids_stay_paired_through_an_anthropic_client() {
    let upstream = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "kimi-k2",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
    let t = tollgate_filters::translate::response::ResponseTranslator::new(exchange(
        Wire::Messages,
        Wire::Chat,
        false,
    ));
    let v: Value = serde_json::from_slice(&t.whole(upstream.to_string().as_bytes())).unwrap();
    let id = v["content"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{id}"
    );
    let second = json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": v["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "a b"}]}]});
    let (r2, _) = upstream_body(Wire::Messages, Wire::Chat, &second);
    assert_ne!(id, "functions.Bash:0");
    assert_eq!(r2["messages"][1]["tool_calls"][0]["id"], "functions.Bash:0");
    assert_eq!(r2["messages"][2]["tool_call_id"], "functions.Bash:0");
}
