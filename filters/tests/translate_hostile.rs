//! Hostile input through every translator. The recorded requests, answers, streams and
//! errors of the other translation tests are mutated node by node (a value replaced by
//! one of another type, a member or element dropped or repeated, a type tag or role
//! swapped for another dialect's, a member added) and, for streams, frame by frame
//! (dropped, repeated, swapped, garbage put in), then cut at random points.
//!
//! Whatever comes, a translator answers without panicking: a panic ends the request's
//! task, and with it the request's usage event. What it sends upstream is a request the
//! provider takes (each provider's 400 rules, checked on every translated request), or
//! it refuses the client's. And what the client gets is well-formed in its dialect: a
//! translated answer is one JSON object, every SSE `data:` line is JSON (or `[DONE]`),
//! each client's events come in the order its SDK needs, a Gemini array stream is one
//! JSON array, and an error keeps an error status.

// Helpers outside `#[test]` functions may panic too: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use support::{
    check_anthropic_structure, exchange, fixture, sse, ANSWERS, CLIENTS, REQUESTS, STREAMS,
};
use tollgate_filters::error::GatewayError;
use tollgate_filters::translate::response::ResponseTranslator;
use tollgate_filters::translate::{
    translate_request, ChatMember, ClientRequest, Options, Pair, Wire,
};

/// Words the readers look for: type tags, roles, finish reasons and event names of
/// every dialect, and strings that are not what their field expects.
const WORDS: &[&str] = &[
    "text",
    "image",
    "image_url",
    "input_audio",
    "file",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "input_text",
    "input_image",
    "output_text",
    "refusal",
    "function",
    "function_call",
    "function_call_output",
    "custom",
    "message",
    "reasoning",
    "summary_text",
    "base64",
    "url",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "model",
    "auto",
    "any",
    "none",
    "required",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "stop",
    "length",
    "tool_calls",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "ping",
    "error",
    "response.created",
    "response.output_item.added",
    "custom",
    "custom_tool_call",
    "custom_tool_call_output",
    "tool_search",
    "tool_search_call",
    "tool_search_output",
    "client",
    "[DONE]",
    "data:image/png;base64,iVBORw0KGgo=",
    "gs://b/o",
    "",
    "\u{0}",
    "é🙂",
    "{\"a\":",
    "[1,",
    "call_1",
    "toolu_1",
    "-1",
    "1e999",
];

/// Member names added to objects: what a reader of another dialect would look for.
const KEYS: &[&str] = &[
    "type",
    "role",
    "content",
    "text",
    "parts",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "id",
    "input",
    "output",
    "call_id",
    "tool_use_id",
    "signature",
    "thoughtSignature",
    "functionCall",
    "functionResponse",
    "inlineData",
    "fileData",
    "usage",
    "usageMetadata",
    "choices",
    "candidates",
    "delta",
    "index",
    "finish_reason",
    "stop_reason",
    "cache_control",
    "source",
    "image_url",
    "thinking",
    "system",
    "messages",
    "contents",
    "tools",
    "tool_choice",
    "stream",
    "n",
    "max_tokens",
    "generationConfig",
    "thinkingConfig",
    "reasoning",
    "namespace",
    "execution",
    "format",
    "error",
];

/// A value put in place of a node.
fn value() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(WORDS).prop_map(|w| json!(w));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        prop::sample::select(vec![0.5f64, -1.0, 1e300, -0.0]).prop_map(Value::from),
        word.clone(),
        word.clone(),
    ];
    leaf.prop_recursive(2, 8, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..3).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// One change to the node a mutation picks.
#[derive(Debug, Clone)]
enum Op {
    Replace(Value),
    /// Drops a member or element (the k-th, modulo their number).
    Drop(usize),
    /// Repeats an element (arrays), or copies a member under another name (objects).
    Repeat(usize, &'static str),
    /// Sets `type` (or, with no `type`, `role`) of an object; replaces a string.
    Retag(&'static str),
    Add(&'static str, Value),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => value().prop_map(Op::Replace),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), prop::sample::select(KEYS)).prop_map(|(k, n)| Op::Repeat(k, n)),
        3 => prop::sample::select(WORDS).prop_map(Op::Retag),
        2 => (prop::sample::select(KEYS), value()).prop_map(|(k, v)| Op::Add(k, v)),
    ]
}

/// Mutations: (which node, in pre-order, modulo their number; what to do there).
fn mutations() -> impl Strategy<Value = Vec<(usize, Op)>> {
    prop::collection::vec((any::<usize>(), op()), 1..5)
}

fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(o) => o.values().map(nodes).sum(),
        _ => 0,
    }
}

/// The `target`-th node of `v` in pre-order (counting from `*seen`).
fn node<'a>(v: &'a mut Value, target: usize, seen: &mut usize) -> Option<&'a mut Value> {
    if *seen == target {
        return Some(v);
    }
    *seen += 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| node(x, target, seen)),
        Value::Object(o) => o.values_mut().find_map(|x| node(x, target, seen)),
        _ => None,
    }
}

fn apply(v: &mut Value, op: &Op) {
    match (op, v) {
        (Op::Replace(new), v) => *v = new.clone(),
        (Op::Drop(k), Value::Array(a)) if !a.is_empty() => {
            a.remove(k % a.len());
        }
        (Op::Drop(k), Value::Object(o)) if !o.is_empty() => {
            let key = o.keys().nth(k % o.len()).cloned().unwrap();
            o.remove(&key);
        }
        (Op::Drop(_), v) => *v = Value::Null,
        (Op::Repeat(k, _), Value::Array(a)) if !a.is_empty() => {
            let x = a[k % a.len()].clone();
            a.insert(k % a.len(), x);
        }
        (Op::Repeat(k, name), Value::Object(o)) if !o.is_empty() => {
            let x = o.values().nth(k % o.len()).cloned().unwrap();
            o.insert((*name).to_owned(), x);
        }
        (Op::Repeat(..), _) => {}
        (Op::Retag(w), Value::Object(o)) => {
            let key = if o.contains_key("type") || !o.contains_key("role") {
                "type"
            } else {
                "role"
            };
            o.insert(key.to_owned(), json!(w));
        }
        (Op::Retag(w), v @ Value::String(_)) => *v = json!(w),
        (Op::Retag(_), _) => {}
        (Op::Add(k, new), Value::Object(o)) => {
            o.insert((*k).to_owned(), new.clone());
        }
        (Op::Add(_, new), v) => *v = new.clone(),
    }
}

fn mutate(v: &mut Value, muts: &[(usize, Op)]) {
    for (at, op) in muts {
        let target = at % nodes(v);
        if let Some(n) = node(v, target, &mut 0) {
            apply(n, op);
        }
    }
}

/// The request a provider of `upstream`'s dialect would accept: the rules each one
/// enforces with a 400 (TRANSLATION_NOTES 2), checked on what the translator sends, so
/// that an input the translator accepts never becomes a request the provider refuses.
fn check_upstream_request(upstream: Wire, body: &Value) -> Result<(), String> {
    match upstream {
        Wire::Chat | Wire::Responses => check_chat_request(body),
        Wire::Messages => check_messages_request(body),
        Wire::Gemini => check_gemini_request(body),
    }
}

fn name_ok(name: &Value, max: usize, first_letter: bool) -> bool {
    let Some(n) = name.as_str() else { return false };
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || c == '_'
            || c == '-'
            || (first_letter && (c == '.' || c == ':'))
    };
    !n.is_empty()
        && n.len() <= max
        && n.chars().all(allowed)
        && (!first_letter || n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} is not an array: {v}"))
}

/// OpenAI Chat Completions: every tool call answered by a `tool` message before the
/// next other message, every `tool` message answering a call; tool names as OpenAI
/// allows them; `tool_choice` only with tools.
fn check_chat_request(v: &Value) -> Result<(), String> {
    let msgs = array(&v["messages"], "messages")?;
    if msgs.is_empty() {
        return Err("no messages".into());
    }
    let mut pending: Vec<&str> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            let Some(at) = pending.iter().position(|p| *p == id) else {
                return Err(format!(
                    "messages[{i}]: a result for `{id}`, which no pending call has"
                ));
            };
            pending.remove(at);
            continue;
        }
        if !pending.is_empty() {
            return Err(format!(
                "messages[{i}]: {role} while calls {pending:?} are unanswered"
            ));
        }
        if !matches!(role, "system" | "developer" | "user" | "assistant") {
            return Err(format!("messages[{i}]: role `{role}`"));
        }
        let said = match &m["content"] {
            Value::String(t) => !t.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if !said && m["tool_calls"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("messages[{i}]: says nothing: {m}"));
        }
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            let id = c["id"]
                .as_str()
                .filter(|id| !id.is_empty())
                .ok_or(format!("messages[{i}]: a call without id"))?;
            if !name_ok(&c["function"]["name"], 64, false)
                || !c["function"]["arguments"].is_string()
            {
                return Err(format!("messages[{i}]: call {c}"));
            }
            pending.push(id);
        }
    }
    let tools = v["tools"].as_array().map_or(0, Vec::len);
    for t in v["tools"].as_array().into_iter().flatten() {
        if t["type"] != "function" || !name_ok(&t["function"]["name"], 64, false) {
            return Err(format!("tool {t}"));
        }
    }
    if v.get("tool_choice").is_some() && tools == 0 {
        return Err("tool_choice without tools".into());
    }
    Ok(())
}

/// Anthropic Messages: `max_tokens`; user and assistant turns with non-empty content
/// (but a final assistant one) and no empty text block; each `tool_result` first in its
/// user turn and answering a `tool_use` of the assistant turn just before, every
/// `tool_use` answered in the next turn; ids and names as Anthropic allows them; a
/// thinking budget of at least 1,024 below `max_tokens`, and only `auto` or `none` tool
/// choice with it.
fn check_messages_request(v: &Value) -> Result<(), String> {
    let max = v["max_tokens"]
        .as_u64()
        .filter(|&m| m >= 1)
        .ok_or("no max_tokens")?;
    let msgs = array(&v["messages"], "messages")?;
    if msgs.is_empty() {
        return Err("no messages".into());
    }
    let id_ok = |id: &Value| {
        id.as_str().is_some_and(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    };
    let mut calls: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(t) if t.is_empty() => return Err(format!("messages[{i}]: empty text")),
            Value::String(t) => vec![json!({"type": "text", "text": t})],
            Value::Array(a) => a.clone(),
            other => return Err(format!("messages[{i}]: content {other}")),
        };
        let last = i + 1 == msgs.len();
        if blocks.is_empty() && !(last && role == "assistant") {
            return Err(format!("messages[{i}]: no content"));
        }
        let results: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .filter_map(|b| b["tool_use_id"].as_str())
            .collect();
        match role {
            "user" => {
                let mut answered = calls.clone();
                answered.sort();
                let mut got: Vec<String> = results.iter().map(|s| (*s).to_owned()).collect();
                got.sort();
                if answered != got {
                    return Err(format!(
                        "messages[{i}]: results {got:?} for calls {answered:?}"
                    ));
                }
                let first_other = blocks
                    .iter()
                    .position(|b| b["type"] != "tool_result")
                    .unwrap_or(blocks.len());
                if blocks[first_other..]
                    .iter()
                    .any(|b| b["type"] == "tool_result")
                {
                    return Err(format!("messages[{i}]: a tool_result after other content"));
                }
                calls.clear();
            }
            "assistant" => {
                if !calls.is_empty() {
                    return Err(format!("messages[{i}]: calls {calls:?} unanswered"));
                }
                if !results.is_empty() {
                    return Err(format!("messages[{i}]: a tool_result in an assistant turn"));
                }
            }
            _ => return Err(format!("messages[{i}]: role `{role}`")),
        }
        for b in &blocks {
            match b["type"].as_str().unwrap_or("") {
                "text" if b["text"].as_str().is_none_or(str::is_empty) => {
                    return Err(format!("messages[{i}]: text block {b}"))
                }
                "tool_use" => {
                    if role != "assistant"
                        || !id_ok(&b["id"])
                        || !name_ok(&b["name"], 128, false)
                        || !b["input"].is_object()
                    {
                        return Err(format!("messages[{i}]: tool_use {b}"));
                    }
                    calls.push(b["id"].as_str().unwrap_or("").to_owned());
                }
                "tool_result" if !id_ok(&b["tool_use_id"]) => {
                    return Err(format!("messages[{i}]: {b}"))
                }
                _ => {}
            }
        }
    }
    for t in v["tools"].as_array().into_iter().flatten() {
        // (The schema itself is the caller's: a wrong one is refused upstream as the
        // caller's own provider would refuse it.)
        if !name_ok(&t["name"], 128, false) || !t["input_schema"].is_object() {
            return Err(format!("tool {t}"));
        }
    }
    if v["thinking"]["type"] == "enabled" {
        let budget = v["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
        if budget < 1024 || budget >= max {
            return Err(format!("thinking budget {budget} with max_tokens {max}"));
        }
        if !matches!(
            v["tool_choice"]["type"].as_str(),
            None | Some("auto" | "none")
        ) {
            return Err(format!("tool_choice {} with thinking", v["tool_choice"]));
        }
    }
    Ok(())
}

/// Gemini: user and model turns, each with parts of one kind of data; function names
/// as Gemini allows them; a turn of function responses answering, one for one by name,
/// the calls of the model turn just before.
fn check_gemini_request(v: &Value) -> Result<(), String> {
    let contents = array(&v["contents"], "contents")?;
    if contents.is_empty() {
        return Err("no contents".into());
    }
    let mut calls: Vec<String> = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let role = c["role"].as_str().unwrap_or("");
        let parts = array(&c["parts"], "parts")?;
        if parts.is_empty() {
            return Err(format!("contents[{i}]: no parts"));
        }
        let mut names = Vec::new();
        let mut answers = Vec::new();
        for p in parts {
            let data = [
                "text",
                "inlineData",
                "fileData",
                "functionCall",
                "functionResponse",
            ]
            .iter()
            .filter(|k| p.get(**k).is_some())
            .count();
            if data != 1 {
                return Err(format!("contents[{i}]: part {p}"));
            }
            if let Some(f) = p.get("functionCall") {
                if role != "model"
                    || !name_ok(&f["name"], 64, true)
                    || !(f["args"].is_object() || f.get("args").is_none())
                {
                    return Err(format!("contents[{i}]: call {p}"));
                }
                names.push(f["name"].as_str().unwrap_or("").to_owned());
            }
            if let Some(r) = p.get("functionResponse") {
                if role != "user" || !r["response"].is_object() {
                    return Err(format!("contents[{i}]: response {p}"));
                }
                answers.push(r["name"].as_str().unwrap_or("").to_owned());
            }
        }
        match role {
            "user" => {
                calls.sort();
                answers.sort();
                if !answers.is_empty() && answers != calls {
                    return Err(format!(
                        "contents[{i}]: responses {answers:?} to calls {calls:?}"
                    ));
                }
                calls.clear();
            }
            "model" => calls = names,
            _ => return Err(format!("contents[{i}]: role `{role}`")),
        }
    }
    for t in v["tools"].as_array().into_iter().flatten() {
        for f in t["functionDeclarations"].as_array().into_iter().flatten() {
            if !name_ok(&f["name"], 64, true) {
                return Err(format!("function {f}"));
            }
        }
    }
    Ok(())
}

/// Every upstream a `client` request is translated for.
fn upstreams(client: Wire) -> impl Iterator<Item = Wire> {
    [Wire::Chat, Wire::Messages, Wire::Gemini]
        .into_iter()
        .filter(move |u| *u != client)
}

/// Any choice of an upstream's translation options.
fn options() -> impl Strategy<Value = Options> {
    (
        prop::sample::select(vec![1u32, 4096, u32::MAX]),
        any::<[bool; 6]>(),
        prop::sample::subsequence(ChatMember::ALL.to_vec(), 0..=ChatMember::ALL.len()),
    )
        .prop_map(|(max, [a, b, c, d, e, f], omit)| Options {
            default_max_tokens: max,
            gemini_openapi_schema: a,
            reasoning_content: b,
            openai_legacy_max_tokens: c,
            stream_include_usage: d,
            omit: omit.into_iter().map(|(_, m)| m).collect(),
            send_reasoning_content: e,
            mistral_tool_call_ids: f,
        })
}

/// Where `bytes` (from `0..bytes.len()`) are cut.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..8)
}

/// The client bytes of a translated response: the upstream's `body` fed in pieces, or
/// (with `broken`) cut off after the pieces before the last, as a dropped connection.
fn feed(
    ex: &tollgate_filters::translate::response::Exchange,
    content_type: &str,
    body: &[u8],
    cuts: &[usize],
    broken: bool,
) -> Vec<u8> {
    let mut t = ResponseTranslator::new(ex.clone());
    t.head(200, Some(content_type));
    let mut at_cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    at_cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in at_cuts {
        t.body(&body[at..c], false, &mut out);
        at = c;
    }
    if broken {
        t.broken(&GatewayError::UpstreamStreamBroken("cut".into()), &mut out);
    } else {
        t.body(&body[at..], true, &mut out);
    }
    out
}

/// Every `data:` line of an SSE body is JSON or `[DONE]`.
fn check_sse(out: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data:") {
            let data = data.trim_start();
            if data != "[DONE]" && serde_json::from_str::<Value>(data).is_err() {
                return Err(format!("a data line is not JSON: {line}"));
            }
        }
    }
    Ok(())
}

/// How an OpenAI client stream ends, whatever the upstream sent: `[DONE]` after the
/// chunks, or an error event last.
fn check_chat_end(out: &[u8]) -> Result<(), String> {
    let last = sse(out).pop().map(|(_, v)| v);
    match last {
        Some(Value::String(done)) if done == "[DONE]" => Ok(()),
        Some(v) if v.get("error").is_some() => Ok(()),
        other => Err(format!("the stream ends with {other:?}")),
    }
}

/// A Responses client stream, whatever the upstream sent: `response.created` first,
/// `sequence_number`s counting from 0, and a terminal event last.
fn check_responses_order(out: &[u8]) -> Result<(), String> {
    let events = sse(out);
    for (i, (_, v)) in events.iter().enumerate() {
        if v["sequence_number"] != i {
            return Err(format!("event {i}: {v}"));
        }
    }
    let first = events.first().map(|(_, v)| v["type"].clone());
    let last = events.last().map(|(_, v)| v["type"].clone());
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
    ];
    match (first, last) {
        (Some(f), Some(l))
            if (f == "response.created" || events.len() == 1)
                && terminal.iter().any(|t| l == *t) =>
        {
            Ok(())
        }
        other => Err(format!("first and last: {other:?}")),
    }
}

/// The values a client's SDK takes where it parses into an enum (the OpenAI SDKs'
/// `Literal` finish reasons, Anthropic's stop reasons, Gemini's finish reasons, the
/// Responses statuses): an upstream's own value never leaks into another dialect.
fn check_client_enums(client: Wire, v: &Value) -> Result<(), String> {
    let bad = |what: &str, x: &Value| Err(format!("{what} {x} in {v}"));
    match client {
        Wire::Chat => {
            for c in v["choices"].as_array().into_iter().flatten() {
                let f = &c["finish_reason"];
                if !(f.is_null()
                    || matches!(
                        f.as_str(),
                        Some("stop" | "length" | "tool_calls" | "content_filter" | "function_call")
                    ))
                {
                    return bad("finish_reason", f);
                }
                let m = if c.get("delta").is_some() {
                    &c["delta"]
                } else {
                    &c["message"]
                };
                for t in m["tool_calls"].as_array().into_iter().flatten() {
                    if t["function"]["arguments"].as_str().is_none()
                        && t.get("function")
                            .is_some_and(|f| f.get("arguments").is_some())
                    {
                        return bad("arguments", &t["function"]["arguments"]);
                    }
                }
            }
        }
        Wire::Messages => {
            let m = if v["type"] == "message_start" {
                &v["message"]
            } else {
                v
            };
            let r = if v["type"] == "message_delta" {
                &v["delta"]["stop_reason"]
            } else {
                &m["stop_reason"]
            };
            if !(r.is_null()
                || matches!(
                    r.as_str(),
                    Some(
                        "end_turn"
                            | "max_tokens"
                            | "stop_sequence"
                            | "tool_use"
                            | "pause_turn"
                            | "refusal"
                    )
                ))
            {
                return bad("stop_reason", r);
            }
            let blocks = m["content"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(v.get("content_block"));
            for b in blocks {
                match b["type"].as_str() {
                    Some("text" | "thinking" | "redacted_thinking") => {}
                    Some("tool_use") if b["input"].is_object() => {}
                    _ => return bad("block", b),
                }
            }
        }
        Wire::Gemini => {
            for c in v["candidates"].as_array().into_iter().flatten() {
                let f = &c["finishReason"];
                let known = [
                    "STOP",
                    "MAX_TOKENS",
                    "SAFETY",
                    "RECITATION",
                    "LANGUAGE",
                    "OTHER",
                    "BLOCKLIST",
                    "PROHIBITED_CONTENT",
                    "SPII",
                    "MALFORMED_FUNCTION_CALL",
                    "IMAGE_SAFETY",
                    "UNEXPECTED_TOOL_CALL",
                    "FINISH_REASON_UNSPECIFIED",
                ];
                if !(f.is_null() || f.as_str().is_some_and(|s| known.contains(&s))) {
                    return bad("finishReason", f);
                }
                for p in c["content"]["parts"].as_array().into_iter().flatten() {
                    if p.get("functionCall")
                        .is_some_and(|f| !f["args"].is_object() && f.get("args").is_some())
                    {
                        return bad("functionCall", p);
                    }
                }
            }
        }
        Wire::Responses => {
            let r = if v.get("response").is_some() {
                &v["response"]
            } else {
                v
            };
            let status = &r["status"];
            if !(status.is_null()
                || matches!(
                    status.as_str(),
                    Some("completed" | "incomplete" | "failed" | "in_progress")
                ))
            {
                return bad("status", status);
            }
            let reason = &r["incomplete_details"]["reason"];
            if !(reason.is_null()
                || matches!(
                    reason.as_str(),
                    Some("max_output_tokens" | "content_filter")
                ))
            {
                return bad("incomplete_details", reason);
            }
        }
    }
    Ok(())
}

/// [`check_client_enums`] on every event of a client stream (or element of a Gemini
/// array), or on a whole answer.
fn check_client_output(client: Wire, out: &[u8], array: bool) -> Result<(), String> {
    if array || out.first() == Some(&b'{') {
        let v: Value = serde_json::from_slice(out).map_err(|e| e.to_string())?;
        return match v {
            Value::Array(items) => items.iter().try_for_each(|i| {
                check_client_enums(client, i)?;
                check_error_message(i)
            }),
            v => check_client_enums(client, &v),
        };
    }
    sse(out)
        .iter()
        .filter(|(_, v)| v.is_object())
        .try_for_each(|(_, v)| {
            check_client_enums(client, v)?;
            check_error_message(v)
        })
}

/// An error event's message, wherever the dialect puts it, is not empty (an SDK shows
/// it as the error).
fn check_error_message(v: &Value) -> Result<(), String> {
    let message = match v.get("error") {
        Some(e) => &e["message"],
        None if v["type"] == "error" => &v["message"],
        None if v["type"] == "response.failed" => &v["response"]["error"]["message"],
        None => return Ok(()),
    };
    match message.as_str() {
        Some(m) if !m.trim().is_empty() => Ok(()),
        _ => Err(format!("an error without a message: {v}")),
    }
}

fn is_json_object(bytes: &[u8]) -> bool {
    matches!(serde_json::from_slice::<Value>(bytes), Ok(Value::Object(_)))
}

/// Mutates a recorded SSE stream: the JSON of its events, and the frames themselves.
fn mutated_stream(body: &[u8], muts: &[(usize, Op)], frame_ops: &[(usize, u8)]) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut frames: Vec<String> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(str::to_owned)
        .collect();
    // The JSON of the events: each mutation goes to the event its node falls in.
    for (at, op) in muts {
        let n = frames.len().max(1);
        let Some(frame) = frames.get_mut(at % n) else {
            continue;
        };
        let mut lines: Vec<String> = frame.lines().map(str::to_owned).collect();
        for line in lines.iter_mut() {
            if let Some(data) = line.strip_prefix("data: ") {
                if let Ok(mut v) = serde_json::from_str::<Value>(data) {
                    mutate(&mut v, &[(at / n, op.clone())]);
                    *line = format!("data: {v}");
                }
            }
        }
        *frame = lines.join("\n");
    }
    for &(at, what) in frame_ops {
        let n = frames.len();
        match what % 5 {
            0 if n > 0 => {
                frames.remove(at % n);
            }
            1 if n > 0 => {
                let f = frames[at % n].clone();
                frames.insert(at % n, f);
            }
            2 if n > 1 => frames.swap(at % n, (at / n) % n),
            3 => frames.insert(at % (n + 1), "data: {\"choices\":[{\"delta\":".into()),
            4 => frames.insert(
                at % (n + 1),
                [
                    ": comment",
                    "event: ping",
                    "data: [DONE]",
                    "data:",
                    "retry: 1",
                ][at % 5]
                    .into(),
            ),
            _ => {}
        }
    }
    let mut out = frames.join("\n\n");
    out.push_str("\n\n");
    out.into_bytes()
}

/// Upstream error bodies, by upstream wire.
const ERRORS: &[(Wire, &str)] = &[
    (Wire::Chat, "root:openai/error_400.json"),
    (Wire::Chat, "root:openai/error_429.json"),
    (Wire::Messages, "root:anthropic/error_429.json"),
    (Wire::Messages, "anthropic/error_529.json"),
    (Wire::Gemini, "root:gemini/error_400.json"),
    (Wire::Gemini, "root:gemini/error_429.json"),
];

fn parsed(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    /// A mutated client request is translated or refused, for every upstream and every
    /// choice of the upstream's translation options; a translated one is a JSON object.
    #[test]
    fn hostile_requests_are_translated_or_refused(
        which in 0..REQUESTS.len(),
        muts in mutations(),
        query in prop::option::of(prop::sample::select(vec!["alt=sse", "alt=json", "", "%zz"])),
        opts in options(),
    ) {
        let (client, name) = REQUESTS[which];
        let mut v = parsed(name);
        mutate(&mut v, &muts);
        let body = v.to_string();
        for upstream in upstreams(client) {
            for gemini_stream in [false, true] {
                let req = ClientRequest {
                    body: body.as_bytes(),
                    query,
                    gemini_stream,
                    served_model: "served",
                    now: 1,
                };
                if let Ok(t) = translate_request(Pair { client, upstream }, req, &opts) {
                    let sent: Value = serde_json::from_slice(&t.body).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&t.body))))?;
                    prop_assert!(sent.is_object());
                    let valid = check_upstream_request(upstream, &sent);
                    prop_assert!(valid.is_ok(), "{:?} -> {:?}: {:?}\nfrom {}\nsent {}", client, upstream, valid, body, sent);
                }
            }
        }
    }

    /// A mutated whole answer becomes a JSON object for every client: the answer, or
    /// the client's error envelope when it cannot be read.
    #[test]
    fn hostile_answers_become_json_objects(
        which in 0..ANSWERS.len(),
        muts in mutations(),
        cuts in cuts(),
    ) {
        let (upstream, name) = ANSWERS[which];
        let mut v = parsed(name);
        mutate(&mut v, &muts);
        let body = v.to_string().into_bytes();
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let ex = exchange(client, upstream, false);
            let out = feed(&ex, "application/json", &body, &cuts, false);
            prop_assert!(is_json_object(&out), "{:?} -> {:?}: {}", upstream, client, String::from_utf8_lossy(&out));
            let enums = check_client_output(client, &out, false);
            prop_assert!(enums.is_ok(), "{:?} -> {:?}: {:?}", upstream, client, enums);
        }
    }

    /// A mutated stream, cut anywhere, ended or broken off: every client gets
    /// well-formed events (or, for a Gemini array, one JSON array).
    #[test]
    fn hostile_streams_give_well_formed_events(
        which in 0..STREAMS.len(),
        muts in mutations(),
        frame_ops in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cuts in cuts(),
        broken in any::<bool>(),
    ) {
        let (upstream, name, _, array) = STREAMS[which];
        let body = if array {
            let mut v = parsed(name);
            mutate(&mut v, &muts);
            v.to_string().into_bytes()
        } else {
            mutated_stream(&fixture(name), &muts, &frame_ops)
        };
        let ct = if array { "application/json" } else { "text/event-stream" };
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            for gemini_sse in [true, false] {
                if client != Wire::Gemini && !gemini_sse {
                    continue;
                }
                let mut ex = exchange(client, upstream, true);
                ex.gemini_sse = gemini_sse;
                let out = feed(&ex, ct, &body, &cuts, broken);
                if client == Wire::Gemini && !gemini_sse {
                    let parsed = serde_json::from_slice::<Value>(&out);
                    prop_assert!(matches!(parsed, Ok(Value::Array(_))), "{:?} -> Gemini array: {}", upstream, String::from_utf8_lossy(&out));
                } else {
                    let checked = check_sse(&out);
                    prop_assert!(checked.is_ok(), "{:?} -> {:?}: {:?}", upstream, client, checked);
                }
                let order = match client {
                    Wire::Messages => check_anthropic_structure(&sse(&out)),
                    Wire::Chat => check_chat_end(&out),
                    Wire::Responses => check_responses_order(&out),
                    Wire::Gemini => Ok(()),
                };
                prop_assert!(order.is_ok(), "{:?} -> {:?}: {:?}\n{}", upstream, client, order, String::from_utf8_lossy(&out));
                let enums = check_client_output(client, &out, client == Wire::Gemini && !gemini_sse);
                prop_assert!(enums.is_ok(), "{:?} -> {:?}: {:?}", upstream, client, enums);
            }
        }
    }

    /// A mutated upstream error keeps an error status, with the envelope the client's
    /// SDK reads (a message never empty), for every client; a `retry-after` is the
    /// upstream's own or Gemini's delay in seconds.
    #[test]
    fn hostile_errors_keep_an_error_status(
        which in 0..ERRORS.len(),
        muts in mutations(),
        status in 400u16..600,
        retry_after in prop::option::of(prop::sample::select(vec!["7", "", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "1e9", " 7 "])),
    ) {
        let (upstream, name) = ERRORS[which];
        let mut v = parsed(name);
        mutate(&mut v, &muts);
        let body = v.to_string().into_bytes();
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let t = ResponseTranslator::new(exchange(client, upstream, false));
            let e = t.error(status, retry_after, &body);
            prop_assert!((400..600).contains(&e.status), "{:?} -> {:?}: {}", upstream, client, e.status);
            let env: Value = serde_json::from_slice(&e.body).map_err(|x| TestCaseError::fail(x.to_string()))?;
            let shaped = check_error_envelope(client, &env);
            prop_assert!(shaped.is_ok(), "{:?} -> {:?}: {:?}", upstream, client, shaped);
            // The upstream's own header as it came, or Gemini's RetryInfo in seconds.
            if let Some(r) = &e.retry_after {
                prop_assert!(Some(r.as_str()) == retry_after || r.parse::<u64>().is_ok(), "retry-after {:?}", r);
            }
        }
    }
}

/// An error envelope as the client's SDK reads it: OpenAI's `error.message` and
/// `error.type`, Anthropic's `type: error` with `error.type` and `error.message`,
/// Gemini's `error.code`, `error.message` and `error.status`; each a non-empty string
/// (the code a number).
fn check_error_envelope(client: Wire, v: &Value) -> Result<(), String> {
    let text = |x: &Value| x.as_str().is_some_and(|s| !s.is_empty());
    let ok = match client {
        Wire::Chat | Wire::Responses => text(&v["error"]["message"]) && text(&v["error"]["type"]),
        Wire::Messages => {
            v["type"] == "error" && text(&v["error"]["type"]) && text(&v["error"]["message"])
        }
        Wire::Gemini => {
            v["error"]["code"].is_u64()
                && text(&v["error"]["message"])
                && text(&v["error"]["status"])
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{v}"))
    }
}

/// Whether the member `key` of `parent` holds the caller's own data (a schema, a tool's
/// arguments or result, metadata), where a `null` is a value and is passed on as one.
fn is_data(parent: &serde_json::Map<String, Value>, key: &str) -> bool {
    matches!(
        key,
        "input_schema"
            | "parameters"
            | "parametersJsonSchema"
            | "args"
            | "response"
            | "metadata"
            | "schema"
            | "json_schema"
    ) || (key == "input" && parent.get("type").is_some_and(|t| t == "tool_use"))
}

/// Adds a `null` member `key` to the `target`-th (modulo their number) of the
/// protocol's own objects in `v` (not the caller's data inside it) when it lacks one.
fn add_null(v: &mut Value, target: usize, key: &'static str) {
    fn count(v: &Value) -> usize {
        match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => {
                1 + o
                    .iter()
                    .filter(|(k, _)| !is_data(o, k))
                    .map(|(_, x)| count(x))
                    .sum::<usize>()
            }
            _ => 0,
        }
    }
    fn visit(v: &mut Value, target: usize, seen: &mut usize, key: &'static str) -> bool {
        match v {
            Value::Array(a) => a.iter_mut().any(|x| visit(x, target, seen, key)),
            Value::Object(o) => {
                if *seen == target {
                    o.entry(key).or_insert(Value::Null);
                    return true;
                }
                *seen += 1;
                let data: Vec<String> = o.keys().filter(|k| is_data(o, k)).cloned().collect();
                o.iter_mut()
                    .filter(|(k, _)| !data.contains(k))
                    .any(|(_, x)| visit(x, target, seen, key))
            }
            _ => false,
        }
    }
    let n = count(v);
    if n > 0 {
        visit(v, target % n, &mut 0, key);
    }
}

/// Adds `null` members as [`add_null`] says, one per `(object, key)`.
fn with_nulls(v: &Value, at: &[(usize, &'static str)]) -> Value {
    let mut v = v.clone();
    for (i, key) in at {
        add_null(&mut v, *i, key);
    }
    v
}

fn null_members() -> impl Strategy<Value = Vec<(usize, &'static str)>> {
    prop::collection::vec((any::<usize>(), prop::sample::select(KEYS)), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    /// A member sent as `null` is read as an absent one, as the providers read it: SDKs
    /// send `null` for what the caller left unset (an assistant message fed back from
    /// the OpenAI SDK's `model_dump()` carries `"tool_calls": null`).
    #[test]
    fn a_null_member_is_read_as_an_absent_one(which in 0..REQUESTS.len(), at in null_members(), opts in options()) {
        let (client, name) = REQUESTS[which];
        let v = parsed(name);
        let nulls = with_nulls(&v, &at);
        for upstream in upstreams(client) {
            let go = |body: &Value| {
                let body = body.to_string();
                let req = ClientRequest { body: body.as_bytes(), query: None, gemini_stream: true, served_model: "served", now: 1 };
                translate_request(Pair { client, upstream }, req, &opts).map(|t| t.body)
            };
            let want = go(&v).unwrap();
            let got = go(&nulls);
            prop_assert!(got.as_ref() == Ok(&want), "{:?} -> {:?}, {}: {:?}", client, upstream, nulls, got.map(|b| String::from_utf8_lossy(&b).into_owned()));
        }
    }

    /// The same for the upstream's answers and stream events.
    #[test]
    fn a_null_member_of_an_answer_is_read_as_an_absent_one(which in 0..ANSWERS.len() + STREAMS.len(), at in null_members()) {
        let (upstream, body, nulls, ct) = if which < ANSWERS.len() {
            let (upstream, name) = ANSWERS[which];
            let v = parsed(name);
            (upstream, v.to_string(), with_nulls(&v, &at).to_string(), None)
        } else {
            let (upstream, name, _, array) = STREAMS[which - ANSWERS.len()];
            let text = String::from_utf8(fixture(name)).unwrap();
            if array {
                let v: Value = serde_json::from_str(&text).unwrap();
                (upstream, v.to_string(), with_nulls(&v, &at).to_string(), Some("application/json"))
            } else {
                // Each event gets the nulls (node numbers taken within the event).
                let nulls = text
                    .lines()
                    .map(|l| match l.strip_prefix("data: ").map(serde_json::from_str::<Value>) {
                        Some(Ok(v)) => format!("data: {}", with_nulls(&v, &at)),
                        _ => l.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                (upstream, text, nulls + "\n", Some("text/event-stream"))
            }
        };
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let ex = exchange(client, upstream, ct.is_some());
            let ct = ct.unwrap_or("application/json");
            let want = feed(&ex, ct, body.as_bytes(), &[], false);
            let got = feed(&ex, ct, nulls.as_bytes(), &[], false);
            prop_assert!(got == want, "{:?} -> {:?}, {}:\n{}\nnot\n{}", upstream, client, nulls, String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
    }
}

/// The mutations reach what they aim at: each kind changes a recorded request (a test
/// of the test, so that the properties above do not pass on unchanged input).
#[test]
fn every_mutation_changes_a_request() {
    let v = parsed("requests/messages.json");
    let ops = [
        Op::Replace(json!(7)),
        Op::Drop(0),
        Op::Repeat(0, "copy"),
        Op::Retag("image"),
        Op::Add("n", json!(3)),
    ];
    for op in ops {
        let mut m = v.clone();
        mutate(&mut m, &[(0, op.clone())]);
        assert_ne!(m, v, "{op:?}");
    }
    // A node deep inside is reached too: the last one in pre-order.
    let mut m = v.clone();
    mutate(&mut m, &[(nodes(&v) - 1, Op::Replace(json!("changed")))]);
    assert_ne!(m, v);
    assert!(m.to_string().contains("\"changed\""));
}
