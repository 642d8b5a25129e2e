//! Unit tests of the module's entry points: which requests translate at all, and the
//! stream state machines' handling of input no recorded fixture has.

use super::response::{Exchange, ResponseTranslator};
use super::*;
use crate::error::GatewayError;
use pingora_http::{RequestHeader, ResponseHeader};

#[test]
fn same_dialect_and_native_responses_are_not_translated() {
    use crate::endpoint::Endpoint;
    let gem = Endpoint::Gemini {
        model: "m".into(),
        stream: false,
    };
    assert_eq!(
        plan(&Endpoint::ChatCompletions, ProviderKind::OpenAi, false),
        None
    );
    assert_eq!(
        plan(&Endpoint::Messages, ProviderKind::Anthropic, false),
        None
    );
    assert_eq!(plan(&gem, ProviderKind::Gemini, false), None);
    assert_eq!(plan(&Endpoint::Responses, ProviderKind::OpenAi, true), None);
    assert_eq!(
        plan(&Endpoint::Embeddings, ProviderKind::Anthropic, false),
        None
    );
    assert_eq!(
        plan(&Endpoint::Responses, ProviderKind::OpenAi, false),
        Some(Pair {
            client: Wire::Responses,
            upstream: Wire::Chat
        })
    );
    assert_eq!(
        plan(&Endpoint::Messages, ProviderKind::Gemini, true),
        Some(Pair {
            client: Wire::Messages,
            upstream: Wire::Gemini
        })
    );
    assert_eq!(
        plan(&gem, ProviderKind::OpenAi, false),
        Some(Pair {
            client: Wire::Gemini,
            upstream: Wire::Chat
        })
    );
}

fn exchange(client: Wire, upstream: Wire) -> Exchange {
    Exchange {
        pair: Pair { client, upstream },
        stream: true,
        include_usage: false,
        gemini_sse: true,
        model: "m".into(),
        input_estimate: 7,
        names: vec![("short_1234".into(), "a.very.long.name".into())],
        namespaces: Vec::new(),
        custom_tools: Vec::new(),
        tool_search: false,
        echo: String::new(),
        reasoning_content: false,
        now: 5,
    }
}

/// The JSON payloads of a stream's `data:` lines.
fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn feed(ex: Exchange, body: &str) -> String {
    let mut t = ResponseTranslator::new(ex);
    t.head(200, Some("text/event-stream"));
    let mut out = Vec::new();
    t.body(body.as_bytes(), true, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn tool_names_are_mapped_back_in_streams() {
    let body = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"short_1234\",\"args\":{}}}]},\"finishReason\":\"STOP\"}]}\n\n";
    let out = feed(exchange(Wire::Messages, Wire::Gemini), body);
    assert!(out.contains("\"name\":\"a.very.long.name\""), "{out}");
    assert!(out.contains("\"stop_reason\":\"tool_use\""), "{out}");
}

/// A Responses client's call of a tool it declared in a `namespace` group names the
/// namespace again (Codex answers "unsupported call" to a call without it), streamed or
/// not; other calls name none.
#[test]
fn calls_of_namespaced_tools_name_their_namespace() {
    let ns = |mut ex: Exchange| {
        ex.namespaces = vec![("wait_agent".into(), "multi_agent_v1".into())];
        ex
    };
    let call = |name: &str, i: u32| {
        format!(
            r#"{{"index":{i},"id":"call_{name}","type":"function","function":{{"name":"{name}","arguments":"{{}}"}}}}"#
        )
    };
    let body = format!(
        "data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"tool_calls\":[{},{}]}}}}]}}\n\n\
         data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"tool_calls\"}}]}}\n\ndata: [DONE]\n\n",
        call("wait_agent", 0),
        call("exec_command", 1)
    );
    let out = feed(ns(exchange(Wire::Responses, Wire::Chat)), &body);
    let items: Vec<serde_json::Value> = events(&out)
        .into_iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"].clone())
        .collect();
    assert_eq!(items.len(), 2, "{out}");
    assert_eq!(items[0]["namespace"], "multi_agent_v1", "{out}");
    assert!(items[1].get("namespace").is_none(), "{out}");
    assert!(
        out.contains(r#""name":"wait_agent","namespace":"multi_agent_v1""#),
        "{out}"
    );

    let mut ex = ns(exchange(Wire::Responses, Wire::Chat));
    ex.stream = false;
    let mut t = ResponseTranslator::new(ex);
    t.head(200, Some("application/json"));
    let answer = format!(
        r#"{{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{},{}]}},"finish_reason":"tool_calls"}}]}}"#,
        call("wait_agent", 0),
        call("exec_command", 1)
    );
    let mut out = Vec::new();
    t.body(answer.as_bytes(), true, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["output"][0]["namespace"], "multi_agent_v1", "{v}");
    assert_eq!(v["output"][0]["name"], "wait_agent", "{v}");
    assert!(v["output"][1].get("namespace").is_none(), "{v}");
}

/// A call of a tool the Responses client declared freeform (Codex's `apply_patch`)
/// reaches it as a `custom_tool_call` whose `input` is the raw text the upstream wrapped
/// in `{"input": ...}`: streamed (the arguments held until the call ends, then the
/// input's delta and done events), or whole. Other calls stay function calls.
#[test]
fn calls_of_freeform_tools_come_back_as_raw_text() {
    let custom = |mut ex: Exchange| {
        ex.custom_tools = vec!["apply_patch".into()];
        ex
    };
    let patch = "*** Begin Patch\n*** Add File: a.txt\n+say \"hi\"\t\u{e9}\n*** End Patch\n";
    let args = serde_json::json!({ "input": patch }).to_string();
    let (first, rest) = args.split_at(20);
    let chunk = |delta: serde_json::Value| {
        format!(
            "data: {}\n\n",
            serde_json::json!({"id": "c", "choices": [{"index": 0, "delta": delta}]})
        )
    };
    let body = [
        chunk(serde_json::json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_p",
            "type": "function", "function": {"name": "apply_patch", "arguments": first}}]})),
        chunk(serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": rest}}]})),
        chunk(serde_json::json!({"tool_calls": [{"index": 1, "id": "call_x", "type": "function",
            "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}]})),
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let out = feed(custom(exchange(Wire::Responses, Wire::Chat)), &body);
    let evs = events(&out);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert!(
        at("response.output_item.added") < at("response.custom_tool_call_input.delta")
            && at("response.custom_tool_call_input.delta")
                < at("response.custom_tool_call_input.done")
            && at("response.custom_tool_call_input.done") < at("response.output_item.done"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "response.custom_tool_call_input.delta")
            .count(),
        1
    );
    assert!(
        !kinds.contains(&"response.function_call_arguments.delta")
            || evs
                .iter()
                .filter(|e| e["type"] == "response.function_call_arguments.delta")
                .all(|e| e["delta"] == "{\"cmd\":\"ls\"}"),
        "the freeform call's JSON never reaches the client: {out}"
    );
    let added = &evs[at("response.output_item.added")];
    assert_eq!(added["item"]["type"], "custom_tool_call", "{out}");
    assert_eq!(added["item"]["input"], "", "{out}");
    let delta = &evs[at("response.custom_tool_call_input.delta")];
    assert_eq!(delta["delta"], patch, "{out}");
    assert_eq!(delta["item_id"], added["item"]["id"], "{out}");
    assert_eq!(
        evs[at("response.custom_tool_call_input.done")]["input"],
        patch
    );
    let done: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    assert_eq!(done.len(), 2, "{out}");
    assert_eq!(
        (
            &done[0]["type"],
            &done[0]["call_id"],
            &done[0]["name"],
            &done[0]["input"],
            &done[0]["status"]
        ),
        (
            &serde_json::json!("custom_tool_call"),
            &serde_json::json!("call_p"),
            &serde_json::json!("apply_patch"),
            &serde_json::json!(patch),
            &serde_json::json!("completed")
        ),
        "{out}"
    );
    assert!(done[0].get("arguments").is_none(), "{out}");
    assert_eq!(done[1]["type"], "function_call", "{out}");
    assert_eq!(done[1]["arguments"], "{\"cmd\":\"ls\"}", "{out}");
    let completed = evs.last().unwrap();
    assert_eq!(completed["type"], "response.completed", "{out}");
    assert_eq!(completed["response"]["output"][0]["input"], patch, "{out}");

    // Without the declaration, the same call is a function call with its JSON.
    let out = feed(exchange(Wire::Responses, Wire::Chat), &body);
    assert!(!out.contains("custom_tool_call"), "{out}");

    let mut ex = custom(exchange(Wire::Responses, Wire::Chat));
    ex.stream = false;
    let mut t = ResponseTranslator::new(ex);
    t.head(200, Some("application/json"));
    let answer = serde_json::json!({"id": "c", "object": "chat.completion", "created": 1,
        "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [
                {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": args}},
                {"id": "call_x", "type": "function", "function": {"name": "exec_command", "arguments": "{}"}}]}}]});
    let mut out = Vec::new();
    t.body(answer.to_string().as_bytes(), true, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["output"][0]["type"], "custom_tool_call", "{v}");
    assert_eq!(v["output"][0]["input"], patch, "{v}");
    assert_eq!(v["output"][0]["call_id"], "call_p", "{v}");
    assert!(
        v["output"][0]["id"].as_str().unwrap().starts_with("ctc_"),
        "{v}"
    );
    assert_eq!(v["output"][1]["type"], "function_call", "{v}");
}

/// A call of `tool_search` when the Responses client runs its own search reaches it as a
/// `tool_search_call` with its arguments as an object, streamed or whole; without the
/// declaration a tool of that name is an ordinary function.
#[test]
fn calls_of_the_clients_tool_search_come_back_as_searches() {
    let search = |mut ex: Exchange| {
        ex.tool_search = true;
        ex
    };
    let body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_s\",\"type\":\"function\",\"function\":{\"name\":\"tool_search\",\"arguments\":\"{\\\"query\\\":\"}}]}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"calendar\\\"}\"}}]}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    let out = feed(search(exchange(Wire::Responses, Wire::Chat)), body);
    let evs = events(&out);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        !kinds.iter().any(|k| k.contains("function_call_arguments")),
        "{kinds:?}"
    );
    let added = evs
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], "tool_search_call", "{out}");
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(
        done["item"],
        serde_json::json!({"type": "tool_search_call", "id": added["item"]["id"], "call_id": "call_s",
            "execution": "client", "arguments": {"query": "calendar"}, "status": "completed"}),
        "{out}"
    );
    let out = feed(exchange(Wire::Responses, Wire::Chat), body);
    assert!(out.contains("\"type\":\"function_call\""), "{out}");
    assert!(!out.contains("tool_search_call"), "{out}");

    let mut ex = search(exchange(Wire::Responses, Wire::Chat));
    ex.stream = false;
    let mut t = ResponseTranslator::new(ex);
    t.head(200, Some("application/json"));
    let answer = serde_json::json!({"id": "c", "object": "chat.completion", "created": 1,
        "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [{"id": "call_s", "type": "function",
                "function": {"name": "tool_search", "arguments": "{\"query\":\"mail\",\"limit\":3}"}},
                {"id": "call_x", "type": "function", "function": {"name": "exec_command", "arguments": "{}"}}]}}]});
    let mut out = Vec::new();
    t.body(answer.to_string().as_bytes(), true, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["output"][0]["type"], "tool_search_call", "{v}");
    assert_eq!(v["output"][0]["execution"], "client", "{v}");
    assert_eq!(v["output"][0]["call_id"], "call_s", "{v}");
    assert_eq!(
        v["output"][0]["arguments"],
        serde_json::json!({"query": "mail", "limit": 3})
    );
    assert_eq!(v["output"][1]["type"], "function_call", "{v}");
    assert_eq!(v["output"][1]["name"], "exec_command", "{v}");
}

/// A whole OpenAI answer for a Claude client: reasoning as a thinking block, content
/// parts' text, a refusal as text with the refusal stop reason; empty strings add no
/// block.
#[test]
fn a_whole_openai_answer_becomes_claude_blocks() {
    let answer = |message: serde_json::Value, finish: &str| {
        let mut ex = exchange(Wire::Messages, Wire::Chat);
        ex.stream = false;
        let mut t = ResponseTranslator::new(ex);
        t.head(200, Some("application/json"));
        let body = serde_json::json!({"id": "c", "object": "chat.completion", "created": 1,
            "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": finish}]});
        let mut out = Vec::new();
        t.body(body.to_string().as_bytes(), true, &mut out);
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let v = answer(
        serde_json::json!({"role": "assistant", "reasoning_content": "Think.",
            "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}),
        "stop",
    );
    assert_eq!(v["content"][0]["thinking"], "Think.", "{v}");
    let text: String = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect();
    assert_eq!(text, "AB", "{v}");
    let v = answer(
        serde_json::json!({"role": "assistant", "reasoning_content": "", "content": "",
            "refusal": "", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]}),
        "tool_calls",
    );
    assert_eq!(kinds(&v), ["tool_use"], "{v}");
    let v = answer(
        serde_json::json!({"role": "assistant", "content": null, "refusal": "I can't."}),
        "stop",
    );
    assert_eq!(kinds(&v), ["text"], "{v}");
    assert_eq!(v["content"][0]["text"], "I can't.");
    assert_eq!(v["stop_reason"], "refusal", "{v}");
}

/// A whole Claude answer with thinking for an OpenAI client: the thinking as
/// `reasoning_content` only where configured; for a Gemini client, the text as a part.
#[test]
fn a_whole_claude_answer_for_openai_and_gemini_clients() {
    let body = serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "m", "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "s"},
        {"type": "text", "text": "Hi."}, {"type": "text", "text": " Bye."}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2}})
    .to_string();
    let whole = |ex: Exchange| {
        let mut t = ResponseTranslator::new(ex);
        t.head(200, Some("application/json"));
        let mut out = Vec::new();
        t.body(body.as_bytes(), true, &mut out);
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    for reasoning_content in [false, true] {
        let mut ex = exchange(Wire::Chat, Wire::Messages);
        ex.stream = false;
        ex.reasoning_content = reasoning_content;
        let v = whole(ex);
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], "Hi. Bye.", "{v}");
        assert_eq!(
            message.get("reasoning_content").and_then(|r| r.as_str()),
            reasoning_content.then_some("Hmm."),
            "{v}"
        );
    }
    let mut ex = exchange(Wire::Gemini, Wire::Messages);
    ex.stream = false;
    let v = whole(ex);
    let parts = v["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert_eq!(
        parts[0],
        serde_json::json!({"text": "Hmm.", "thought": true, "thoughtSignature": "ant:s"}),
        "{v}"
    );
    assert_eq!(parts[1], serde_json::json!({"text": "Hi."}), "{v}");
    assert_eq!(v["responseId"], "msg_1", "{v}");
    // A Responses client: the id kept (its letters and digits), the text in one item.
    let mut ex = exchange(Wire::Responses, Wire::Messages);
    ex.stream = false;
    let v = whole(ex);
    assert_eq!(v["id"], "resp_msg1", "{v}");
    let messages: Vec<&serde_json::Value> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "{v}");
    assert_eq!(messages[0]["content"][0]["text"], "Hi. Bye.", "{v}");
}

/// An OpenAI stream for a Claude client: reasoning deltas become one thinking block
/// (empty ones add nothing), a second call that starts while the first is still open
/// gets its block when the first ends, with its own arguments; a rate-limit error
/// mid-stream keeps its kind.
#[test]
fn openai_stream_events_for_a_claude_client() {
    let chunk = |delta: &str| {
        format!("data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n")
    };
    let call = |i: u32, head: &str, args: &str| {
        chunk(&format!(
            r#"{{"tool_calls":[{{"index":{i},{head}"function":{{{}"arguments":"{args}"}}}}]}}"#,
            if head.is_empty() {
                String::new()
            } else {
                format!(r#""name":"f{i}","#)
            }
        ))
    };
    let body = [
        chunk(r#"{"role":"assistant","reasoning_content":""}"#),
        chunk(r#"{"reasoning_content":"Two calls."}"#),
        call(0, r#""id":"call_a","type":"function","#, r#"{\"x\":"#),
        call(1, r#""id":"call_b","type":"function","#, r#"{\"y\":2}"#),
        call(0, "", "1}"),
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let out = feed(exchange(Wire::Messages, Wire::Chat), &body);
    let events = events(&out);
    let starts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| &e["content_block"])
        .collect();
    let kinds: Vec<&str> = starts.iter().filter_map(|b| b["type"].as_str()).collect();
    assert_eq!(kinds, ["thinking", "tool_use", "tool_use"], "{out}");
    assert_eq!(
        (starts[1]["id"].as_str(), starts[2]["id"].as_str()),
        (Some("call_a"), Some("call_b"))
    );
    let args = |index: u64| -> String {
        events
            .iter()
            .filter(|e| e["type"] == "content_block_delta" && e["index"] == index)
            .filter_map(|e| e["delta"]["partial_json"].as_str())
            .collect()
    };
    assert_eq!(
        (args(1), args(2)),
        (r#"{"x":1}"#.to_owned(), r#"{"y":2}"#.to_owned()),
        "{out}"
    );
    assert!(out.contains(r#""thinking":"Two calls.""#), "{out}");

    // As it flows: the second call's block starts in the chunk that completes the first
    // call's arguments, not at the end of the stream.
    let mut t = ResponseTranslator::new(exchange(Wire::Messages, Wire::Chat));
    t.head(200, Some("text/event-stream"));
    let parts = [
        chunk(r#"{"role":"assistant"}"#),
        call(0, r#""id":"call_a","type":"function","#, r#"{\"x\":"#),
        call(1, r#""id":"call_b","type":"function","#, r#"{\"y\":2}"#),
    ];
    let mut out = Vec::new();
    for p in &parts {
        t.body(p.as_bytes(), false, &mut out);
    }
    assert!(
        !String::from_utf8_lossy(&out).contains("call_b"),
        "call_b waits its turn"
    );
    let mut now = Vec::new();
    t.body(call(0, "", "1}").as_bytes(), false, &mut now);
    let now = String::from_utf8(now).unwrap();
    assert!(now.contains(r#""id":"call_b""#), "{now}");
    assert!(now.contains(r#""partial_json":"{\"y\":2}""#), "{now}");

    let limited = "data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\n\n";
    let out = feed(
        exchange(Wire::Messages, Wire::Chat),
        &(chunk(r#"{"content":"a"}"#) + limited),
    );
    assert!(
        out.contains("rate_limit_error") && out.contains("slow down"),
        "{out}"
    );
}

/// One server-sent event with its `event:` name, as Anthropic sends them.
fn named_event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A Claude stream block of a kind Tollgate does not translate (a server tool's, or a
/// new one) is skipped whole, its deltas and its stop included; the blocks around it
/// are closed as usual.
#[test]
fn unknown_claude_blocks_are_skipped_whole() {
    let body = [
        named_event("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"A"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"mystery_block","id":"x"}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"HIDDEN"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"B"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":2}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"C"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":3}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":4,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":4}"#),
        named_event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#),
        named_event("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .concat();
    let out = feed(exchange(Wire::Responses, Wire::Messages), &body);
    assert!(!out.contains("HIDDEN"), "{out}");
    let done: Vec<serde_json::Value> = events(&out)
        .into_iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"].clone())
        .collect();
    let kinds: Vec<&str> = done.iter().filter_map(|i| i["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["message", "message", "message", "function_call"],
        "{out}"
    );
    let texts: Vec<&str> = done[..3]
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str())
        .collect();
    assert_eq!(texts, ["A", "B", "C"], "each block its own item: {out}");
    assert!(out.contains("response.completed"), "{out}");
}

/// A Claude stream for an OpenAI client: one role chunk, thinking as
/// `reasoning_content` only where configured, no empty argument chunks, a block's opening
/// text kept; a stream whose `message_delta` came but not `message_stop` ends cleanly.
/// For a Gemini client, the chunks carry the response id.
#[test]
fn a_claude_stream_for_openai_and_gemini_clients() {
    let body = [
        named_event("message_start", r#"{"type":"message_start","message":{"id":"msg_7","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Pre"}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"fix"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        named_event("content_block_start", r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#),
        named_event("content_block_delta", r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#),
        named_event("content_block_stop", r#"{"type":"content_block_stop","index":2}"#),
        named_event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#),
    ]
    .concat();
    for reasoning_content in [false, true] {
        let mut ex = exchange(Wire::Chat, Wire::Messages);
        ex.reasoning_content = reasoning_content;
        let out = feed(ex, &body);
        let chunks = events(&out);
        let deltas: Vec<&serde_json::Value> =
            chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(
            deltas.iter().filter(|d| d["role"] == "assistant").count(),
            1,
            "{out}"
        );
        let text: String = deltas
            .iter()
            .filter_map(|d| d["content"].as_str())
            .collect();
        assert_eq!(text, "Prefix", "{out}");
        let thought: String = deltas
            .iter()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect();
        assert_eq!(
            thought,
            if reasoning_content { "Hmm." } else { "" },
            "{out}"
        );
        let args: Vec<&str> = deltas
            .iter()
            .filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(
            args,
            ["", "{}"],
            "the call's start, then its one argument chunk: {out}"
        );
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        assert!(!out.contains("error"), "{out}");
    }
    let out = feed(exchange(Wire::Gemini, Wire::Messages), &body);
    let first = out.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let first: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(first["responseId"], "msg_7", "{out}");
}

/// An OpenAI stream with a call for a Claude client: one `message_start`, and no
/// `input_json_delta` for the empty arguments a call's first chunk carries.
#[test]
fn an_openai_call_for_a_claude_client_has_no_empty_argument_deltas() {
    let body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me look.\"}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    let out = feed(exchange(Wire::Messages, Wire::Chat), body);
    assert_eq!(out.matches("event: message_start").count(), 1, "{out}");
    assert_eq!(out.matches("input_json_delta").count(), 1, "{out}");
    assert!(out.contains(r#""partial_json":"{}""#), "{out}");
}

/// An OpenAI stream cut by the token limit, for a Responses client: `created` before any
/// usage, the id and model from the upstream, items with their own ids, the request's
/// echo in each response object, and an incomplete end with its reason and usage. For a
/// Claude client the message id is `msg_` and the upstream's, kept to id characters.
#[test]
fn an_openai_stream_cut_by_the_limit_for_responses_and_claude_clients() {
    let body = "data: {\"id\":\"chatcmpl-A.b\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n\
        data: {\"id\":\"chatcmpl-A.b\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n\
        data: {\"id\":\"chatcmpl-A.b\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    let mut ex = exchange(Wire::Responses, Wire::Chat);
    ex.echo = r#""instructions":"Be brief.""#.into();
    let out = feed(ex, body);
    let events = events(&out);
    let of = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {out}"))
    };
    let created = &of("response.created")["response"];
    assert!(created["usage"].is_null(), "{out}");
    assert_eq!(created["id"], "resp_chatcmplAb", "{out}");
    assert_eq!(created["model"], "gpt-x", "{out}");
    assert_eq!(created["instructions"], "Be brief.", "{out}");
    let item = &of("response.output_item.added")["item"];
    let item_id = item["id"].as_str().unwrap();
    assert!(item_id.starts_with("msg_") && item_id.len() > 4, "{out}");
    let end = &of("response.incomplete")["response"];
    assert_eq!(end["status"], "incomplete", "{out}");
    assert_eq!(
        end["incomplete_details"]["reason"], "max_output_tokens",
        "{out}"
    );
    assert_eq!(end["usage"]["input_tokens"], 4, "{out}");
    assert_eq!(end["instructions"], "Be brief.", "{out}");

    let out = feed(exchange(Wire::Messages, Wire::Chat), body);
    assert!(out.contains(r#""id":"msg_chatcmpl_A_b""#), "{out}");

    // An error before anything: the response is still created before it fails.
    let error = "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
    let out = feed(exchange(Wire::Responses, Wire::Chat), error);
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ],
        "{out}"
    );
}

#[test]
fn an_empty_upstream_stream_is_an_error_not_a_clean_end() {
    for client in [Wire::Chat, Wire::Messages, Wire::Gemini, Wire::Responses] {
        let out = feed(exchange(client, Wire::Messages), "");
        assert!(out.contains("error"), "{client:?}: {out}");
        for clean in [
            "[DONE]",
            "message_stop",
            "response.completed",
            "finishReason",
        ] {
            assert!(!out.contains(clean), "{client:?}: {out}");
        }
    }
}

#[test]
fn openai_upstream_errors_mid_stream() {
    let body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n";
    let out = feed(exchange(Wire::Messages, Wire::Chat), body);
    assert!(out.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n"), "{out}");
    assert!(!out.contains("message_stop"));
}

#[test]
fn a_finish_without_done_is_a_clean_end() {
    let body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"length\"}]}\n\n";
    let out = feed(exchange(Wire::Messages, Wire::Chat), body);
    assert!(out.contains("\"stop_reason\":\"max_tokens\""), "{out}");
    assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

/// An upstream error event, or the connection breaking, while an Anthropic client's
/// block is open: the block is stopped before the error event (the SDK's accumulator
/// and Claude Code fail with "Content block not found" otherwise), and nothing follows.
#[test]
fn an_anthropic_clients_open_block_is_closed_before_the_error() {
    let text = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
    let stop = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    let error_event = "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
    let out = feed(
        exchange(Wire::Messages, Wire::Chat),
        &format!("{text}{error_event}"),
    );
    let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n";
    assert!(out.ends_with(&format!("{stop}{err}")), "{out}");

    let broken = crate::GatewayError::UpstreamStreamBroken("u".into());
    let mut t = ResponseTranslator::new(exchange(Wire::Messages, Wire::Chat));
    t.head(200, Some("text/event-stream"));
    let mut out = Vec::new();
    t.body(text.as_bytes(), false, &mut out);
    assert!(t.broken(&broken, &mut out));
    let native = crate::Dialect::Anthropic.sse_error_event(&broken);
    let mut want = stop.as_bytes().to_vec();
    want.extend_from_slice(&native);
    assert!(out.ends_with(&want), "{}", String::from_utf8_lossy(&out));
    // Broken once: nothing more, and nothing after (the stream is over).
    let mut more = Vec::new();
    t.body(text.as_bytes(), true, &mut more);
    assert!(t.broken(&broken, &mut more));
    assert!(more.is_empty());
}

/// A broken stream for a Gemini client ends with Gemini's own error object: an SSE event,
/// or the JSON array's last element (the array opened first when nothing was written).
#[test]
fn a_broken_stream_ends_a_gemini_clients_stream_with_its_error() {
    let broken = crate::GatewayError::UpstreamStreamBroken("u".into());
    let native = String::from_utf8(crate::Dialect::Gemini.error_body(&broken).to_vec()).unwrap();
    let text =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    for (sse, first) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut ex = exchange(Wire::Gemini, Wire::Chat);
        ex.gemini_sse = sse;
        let mut t = ResponseTranslator::new(ex);
        t.head(200, Some("text/event-stream"));
        let mut out = Vec::new();
        if !first {
            t.body(text.as_bytes(), false, &mut out);
        }
        let before = out.len();
        assert!(t.broken(&broken, &mut out));
        let tail = String::from_utf8(out[before..].to_vec()).unwrap();
        let want = match (sse, first) {
            (true, _) => format!("data: {native}\r\n\r\n"),
            (false, true) => format!("[{native}]"),
            (false, false) => format!(",\r\n{native}]"),
        };
        assert_eq!(tail, want, "sse {sse}, first {first}");
    }
}

/// The wires' labels, and the client endpoints translation serves.
#[test]
fn wires_have_labels_and_come_from_the_client_endpoints() {
    let all = [Wire::Chat, Wire::Responses, Wire::Messages, Wire::Gemini];
    assert_eq!(
        all.map(Wire::as_str),
        ["openai", "openai-responses", "anthropic", "gemini"]
    );
    let gemini = Endpoint::Gemini {
        model: "m".into(),
        stream: false,
    };
    for (endpoint, wire) in [
        (Endpoint::ChatCompletions, Some(Wire::Chat)),
        (Endpoint::Responses, Some(Wire::Responses)),
        (Endpoint::Messages, Some(Wire::Messages)),
        (gemini, Some(Wire::Gemini)),
        (Endpoint::Embeddings, None),
        (Endpoint::CountTokens, None),
    ] {
        assert_eq!(Wire::of_endpoint(&endpoint), wire, "{endpoint:?}");
    }
}

/// A budget is told as the nearest effort; usage is known once any count is.
#[test]
fn budgets_read_as_efforts_and_usage_is_known_by_any_count() {
    use ir::{Effort, Reasoning, ReasoningLevel};
    let effort = |level| {
        Reasoning {
            level,
            include_thoughts: false,
        }
        .effort()
    };
    for (budget, want) in [
        (0, Effort::Low),
        (1024, Effort::Low),
        (1025, Effort::Medium),
        (8192, Effort::Medium),
        (8193, Effort::High),
    ] {
        assert_eq!(
            effort(ReasoningLevel::Budget(budget)),
            Some(want),
            "{budget}"
        );
    }
    assert_eq!(effort(ReasoningLevel::Off), None);
    assert!(!ir::Usage::default().is_known());
    let input = ir::Usage {
        input_uncached: Some(3),
        ..ir::Usage::default()
    };
    let output = ir::Usage {
        output: Some(0),
        ..ir::Usage::default()
    };
    assert!(input.is_known() && output.is_known());
}

/// Tool names each upstream takes as they are, and the others renamed: Gemini wants a
/// letter or `_` first and takes `.` and `:`; invalid characters become `_`.
#[test]
fn tool_names_are_kept_where_the_upstream_takes_them() {
    use std::borrow::Cow;
    let kept = |w, n| matches!(names::tool_name(w, n), Cow::Borrowed(_));
    assert!(kept(Wire::Chat, "1abc") && !kept(Wire::Gemini, "1abc"));
    assert!(kept(Wire::Gemini, "_abc") && kept(Wire::Gemini, "a.b:c"));
    assert!(!kept(Wire::Chat, "a.b"));
    assert!(names::tool_name(Wire::Chat, "a-b c").starts_with("a-b_c_"));
    assert!(names::tool_name(Wire::Chat, "a_b.c").starts_with("a_b_c_"));
}

/// Images are counted in messages and inside tool results; a refusal or content filter
/// leaves a Responses answer incomplete.
#[test]
fn images_in_tool_results_count_and_refusals_are_incomplete() {
    let img = serde_json::json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}});
    let body = serde_json::json!({"model": "m", "messages": [
        {"role": "user", "content": [img, {"type": "text", "text": "a"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [img]}]}]});
    let input = count::count_tokens_input(body.to_string().as_bytes(), Wire::Chat).unwrap();
    assert_eq!(input.images, 2);
    use finish::to_responses;
    use ir::Finish;
    assert_eq!(
        to_responses(Some(&Finish::Refusal)),
        ("incomplete", Some("content_filter"))
    );
    assert_eq!(
        to_responses(Some(&Finish::ContentFilter)),
        ("incomplete", Some("content_filter"))
    );
}

/// A translation as the proxy keeps it, Anthropic client on an OpenAI upstream.
/// An upstream's response head: `status` and `content_type`.
fn upstream_head(status: u16, content_type: &str) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    resp.insert_header("content-type", content_type).unwrap();
    resp
}

fn kept(stream: bool) -> attempt::Translation {
    let mut ex = exchange(Wire::Messages, Wire::Chat);
    ex.stream = stream;
    attempt::Translation {
        pair: ex.pair,
        body: bytes::Bytes::from_static(b"{}"),
        path: "/v1/chat/completions".into(),
        headers: HeaderChanges {
            remove: vec!["content-length", "anthropic-version", "x-absent"],
            set: vec![("content-type", "application/json")],
        },
        notes: Notes::default(),
        response: ResponseTranslator::new(ex),
    }
}

/// The upstream head: the other dialect's headers gone, the target's set, the path
/// under the upstream's base path, POST; `Content-Length` is the header filter's.
#[test]
fn the_request_head_is_rewritten_for_the_target() {
    let t = kept(false);
    let mut up = RequestHeader::build("GET", b"/v1/messages?beta=true", None).unwrap();
    up.insert_header("anthropic-version", "2023-06-01").unwrap();
    up.insert_header("content-length", "2").unwrap();
    up.insert_header("content-type", "text/plain").unwrap();
    attempt::request_head(&t, &mut up, "/base").unwrap();
    assert_eq!(up.uri.to_string(), "/base/v1/chat/completions");
    assert_eq!(up.method, http::Method::POST);
    assert!(up.headers.get("anthropic-version").is_none());
    assert_eq!(up.headers["content-length"], "2");
    assert_eq!(up.headers["content-type"], "application/json");
    // A value sent twice is replaced by the one; the same value once is left as it is.
    for sent in [
        &["application/json", "text/plain"][..],
        &["application/json"],
    ] {
        let mut up = RequestHeader::build("POST", b"/v1/messages", None).unwrap();
        for v in sent {
            up.append_header("content-type", *v).unwrap();
        }
        attempt::request_head(&t, &mut up, "").unwrap();
        let got: Vec<_> = up.headers.get_all("content-type").iter().collect();
        assert_eq!(got, ["application/json"], "{sent:?}");
    }
}

/// The answer's content type: the upstream's own when it is exactly the client's,
/// otherwise replaced (a parameter, or a second value, is not the same).
#[test]
fn the_response_content_type_is_the_clients_exactly() {
    for sent in [
        &["application/json"][..],
        &["application/json; charset=utf-8"],
        &["application/json", "application/json"],
    ] {
        let mut t = kept(false);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for v in sent {
            resp.append_header("content-type", *v).unwrap();
        }
        attempt::response_head(&mut t, &mut resp, false).unwrap();
        let got: Vec<_> = resp.headers.get_all("content-type").iter().collect();
        assert_eq!(got, ["application/json"], "{sent:?}");
    }
}

/// The client's head: an upstream error's status in the client's terms with the
/// upstream's own beside it, the client's content type, no length, chunked if asked;
/// a success keeps its status and gets no upstream-status header.
#[test]
fn the_response_head_speaks_the_clients_dialect() {
    let mut t = kept(false);
    let mut resp = upstream_head(529, "application/json");
    resp.insert_header("content-length", "10").unwrap();
    resp.insert_header("retry-after", "3").unwrap();
    attempt::response_head(&mut t, &mut resp, true).unwrap();
    assert_eq!(
        resp.status.as_u16(),
        529,
        "Anthropic clients get overload as 529"
    );
    assert_eq!(resp.headers[errors::UPSTREAM_STATUS_HEADER], "529");
    assert!(resp.headers.get("content-length").is_none());
    assert_eq!(resp.headers["transfer-encoding"], "chunked");
    assert_eq!(resp.headers["retry-after"], "3");
    let mut t = kept(false);
    let mut resp = upstream_head(503, "application/json");
    attempt::response_head(&mut t, &mut resp, false).unwrap();
    assert_eq!(resp.status.as_u16(), 529, "503 becomes Anthropic's 529");
    let mut t = kept(false);
    let mut resp = upstream_head(200, "application/json");
    attempt::response_head(&mut t, &mut resp, false).unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert!(resp.headers.get(errors::UPSTREAM_STATUS_HEADER).is_none());
    assert!(resp.headers.get("transfer-encoding").is_none());
    assert_eq!(resp.headers["content-type"], "application/json");
}

/// Body chunks become the client's bytes; a chunk that yields none is held back
/// (`None`), except the last, which is always passed on; a broken stream ends with the
/// client's error event, a whole answer with nothing.
#[test]
fn chunks_become_the_clients_bytes_and_a_broken_stream_its_error_event() {
    let mut t = kept(true);
    let mut resp = upstream_head(200, "text/event-stream");
    attempt::response_head(&mut t, &mut resp, true).unwrap();
    let mut body = Some(bytes::Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n"));
    attempt::response_chunk(&mut t, &mut body, false);
    let out = String::from_utf8(body.unwrap().to_vec()).unwrap();
    assert!(out.contains("message_start") && out.contains("Hi"), "{out}");
    let mut body = Some(bytes::Bytes::from_static(b"data: {\"id\":\"c\",\"cho"));
    attempt::response_chunk(&mut t, &mut body, false);
    assert!(body.is_none(), "a part-event yields nothing yet");
    let broken =
        attempt::broken_stream(&mut t, &GatewayError::UpstreamUnreachable("u".into())).unwrap();
    let broken = String::from_utf8(broken).unwrap();
    assert!(broken.contains("event: error"), "{broken}");
    let mut end = None;
    let mut t = kept(true);
    attempt::response_chunk(&mut t, &mut end, true);
    assert!(end.is_some(), "the end is passed on");
    let mut whole = kept(false);
    let mut resp = upstream_head(200, "application/json");
    attempt::response_head(&mut whole, &mut resp, false).unwrap();
    assert_eq!(
        attempt::broken_stream(&mut whole, &GatewayError::UpstreamUnreachable("u".into())),
        None
    );
}

/// A stream is sent as SSE, but to a Gemini client that did not ask for `alt=sse` as
/// Gemini's JSON array; a whole answer and an error are JSON.
#[test]
fn the_clients_content_type_follows_its_framing() {
    let head = |client, sse, stream, status| {
        let mut ex = exchange(client, Wire::Chat);
        ex.gemini_sse = sse;
        ex.stream = stream;
        let mut t = ResponseTranslator::new(ex);
        let h = t.head(status, Some("text/event-stream"));
        (h.status, h.content_type, h.error)
    };
    assert_eq!(
        head(Wire::Gemini, false, true, 200),
        (200, "application/json", false)
    );
    assert_eq!(
        head(Wire::Gemini, true, true, 200),
        (200, "text/event-stream", false)
    );
    assert_eq!(
        head(Wire::Messages, false, true, 200),
        (200, "text/event-stream", false)
    );
    assert_eq!(
        head(Wire::Messages, true, false, 200),
        (200, "application/json", false)
    );
    assert_eq!(
        head(Wire::Messages, true, true, 503),
        (529, "application/json", true)
    );
    let t = ResponseTranslator::new(exchange(Wire::Messages, Wire::Chat));
    let debug = format!("{t:?}");
    assert!(
        debug.starts_with("ResponseTranslator") && debug.contains("ex:"),
        "{debug}"
    );
}

/// Before each attempt: a request for an upstream of another dialect is translated
/// (once per pair: true only when made), none for the client's own dialect.
#[test]
fn prepare_translates_once_per_pair_and_never_for_the_clients_own_dialect() {
    use crate::context::{RequestCtx, RouteDecision};
    use crate::upstream::{ProviderKind, UpstreamSpec, UpstreamTarget};
    use std::sync::Arc;
    let route = |kind| {
        Some(RouteDecision {
            served_model: "served".into(),
            chain: vec![Arc::new(UpstreamTarget::new(UpstreamSpec {
                name: "u".into(),
                kind,
                host: "h".into(),
                ..UpstreamSpec::default()
            }))],
        })
    };
    let mut ctx = RequestCtx::new("r".into());
    ctx.endpoint = Some(Endpoint::Messages);
    ctx.body = bytes::Bytes::from_static(
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    ctx.route = route(ProviderKind::OpenAi);
    assert_eq!(attempt::prepare(&mut ctx, None), Ok(true));
    let t = ctx.translation.as_ref().unwrap();
    assert_eq!(
        (t.pair.upstream, t.path.as_str()),
        (Wire::Chat, "/v1/chat/completions")
    );
    assert!(std::str::from_utf8(&t.body).unwrap().contains("\"served\""));
    assert_eq!(attempt::prepare(&mut ctx, None), Ok(false), "kept");
    assert!(ctx.translation.is_some());
    ctx.route = route(ProviderKind::Anthropic);
    assert_eq!(attempt::prepare(&mut ctx, None), Ok(false));
    assert!(ctx.translation.is_none(), "the client's own dialect");
}

/// A mid-stream error the upstream sent without a message still says something to the
/// client's SDK, in each dialect.
#[test]
fn a_stream_error_without_a_message_says_so() {
    let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"\"}}\n\n";
    for client in [Wire::Chat, Wire::Responses, Wire::Gemini] {
        let out = feed(exchange(client, Wire::Messages), body);
        assert!(
            out.contains("the upstream's stream failed without a message"),
            "{client:?}: {out}"
        );
    }
}

/// Each member `translation.omit` may name is found by its name and gives it back; a name
/// outside the list, or differing in case, is none.
#[test]
fn chat_members_are_named_as_in_the_request() {
    for (name, m) in ChatMember::ALL {
        assert_eq!(ChatMember::named(name), Some(m));
        assert_eq!(m.name(), name);
    }
    let names: Vec<&str> = ChatMember::ALL.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"user") && names.contains(&"seed"),
        "{names:?}"
    );
    for other in ["messages", "User", "", "stream_options"] {
        assert_eq!(ChatMember::named(other), None, "{other}");
    }
}

/// Typed content chunks in a stream (Mistral's reasoning models): text chunks and the
/// text chunks of a thinking chunk come out in order, empty ones and references send
/// nothing, and a streamed refusal is text too (an empty one nothing).
#[test]
fn typed_content_chunks_and_refusals_stream_in_order() {
    let chunk = |delta: &str| {
        format!("data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n")
    };
    let body = [
        chunk(
            r#"{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":""},{"type":"text","text":"T"}]}]}"#,
        ),
        chunk(
            r#"{"content":[{"type":"text","text":""},{"type":"reference","reference_ids":[1]},{"type":"text","text":"A"}]}"#,
        ),
        chunk(r#"{"refusal":""}"#),
        chunk(r#"{"refusal":"No."}"#),
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let out = feed(exchange(Wire::Messages, Wire::Chat), &body);
    let deltas: Vec<(String, String)> = events(&out)
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| {
            let d = &e["delta"];
            let kind = d["type"].as_str().unwrap_or("").to_owned();
            let text = d["text"].as_str().or(d["thinking"].as_str()).unwrap_or("");
            (kind, text.to_owned())
        })
        .collect();
    let want = [
        ("thinking_delta", "T"),
        ("text_delta", "A"),
        ("text_delta", "No."),
    ]
    .map(|(k, t)| (k.to_owned(), t.to_owned()));
    assert_eq!(deltas, want, "{out}");
}
