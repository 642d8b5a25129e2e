//! Streamed responses through every translator pair, from recorded upstream streams
//! (TRANSLATION_NOTES 4, checklist items 3, 4, 5, 16, 17): each client stream is
//! checked against its dialect's ordering rules (the Anthropic one by the invariant
//! checker), its content as the client's SDK would accumulate it, and, by property
//! tests, its bytes whatever the chunk boundaries of the upstream stream.

// Helpers outside `#[test]` functions may panic too: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;
use tollgate_filters::translate::names::split_id_sig;
use tollgate_filters::translate::response::ResponseTranslator;
use tollgate_filters::translate::Wire;

fn translate(upstream: Wire, client: Wire, name: &str, array: bool) -> Vec<u8> {
    run(
        &exchange(client, upstream, true),
        &fixture(name),
        &[],
        array,
    )
}

fn check_client_stream(client: Wire, out: &[u8], clean: bool) -> Result<(), String> {
    match client {
        Wire::Messages => check_anthropic_order(&sse(out), clean),
        Wire::Chat => {
            let s = openai_stream(&sse(out));
            match clean {
                true if s.done && s.finish.is_some() && s.usage.is_some() && s.error.is_none() => {
                    Ok(())
                }
                false if !s.done && s.error.is_some() => Ok(()),
                _ => Err(format!("openai stream ends wrong: {s:?}")),
            }
        }
        Wire::Responses => check_responses(&sse(out), clean),
        Wire::Gemini => {
            let chunks = gemini_chunks(out, true);
            let last = chunks.last().ok_or("no chunk")?;
            match clean {
                true if last["candidates"][0]["finishReason"].is_string()
                    && last["usageMetadata"].is_object() =>
                {
                    Ok(())
                }
                false if last["error"].is_object() => Ok(()),
                _ => Err(format!("gemini stream ends with {last}")),
            }
        }
    }
}

/// Responses: sequence numbers count from 0, created first, items never interleave,
/// and the stream ends with the right terminal event.
fn check_responses(events: &[(String, Value)], clean: bool) -> Result<(), String> {
    let mut open: Option<u64> = None;
    let mut next_output = 0;
    for (i, (name, d)) in events.iter().enumerate() {
        if d["sequence_number"].as_u64() != Some(i as u64) || d["type"] != name.as_str() {
            return Err(format!(
                "event {i} ({name}) has sequence {}",
                d["sequence_number"]
            ));
        }
        match name.as_str() {
            "response.output_item.added" => {
                if open.is_some() || d["output_index"].as_u64() != Some(next_output) {
                    return Err(format!(
                        "event {i}: item added while another is open or out of order"
                    ));
                }
                open = Some(next_output);
            }
            "response.output_item.done" => {
                if open.take() != d["output_index"].as_u64() {
                    return Err(format!("event {i}: done for an item not open"));
                }
                next_output += 1;
            }
            n if n.ends_with(".delta") && open != d["output_index"].as_u64() => {
                return Err(format!("event {i}: {n} for an item not open"));
            }
            _ => {}
        }
    }
    let first = events.first().map(|(n, _)| n.as_str());
    let last = events.last().map(|(n, _)| n.as_str());
    match (first, last, clean) {
        (Some("response.created"), Some("response.completed" | "response.incomplete"), true) => {
            Ok(())
        }
        (Some("response.created"), Some("response.failed"), false) => Ok(()),
        other => Err(format!("responses stream shape {other:?}")),
    }
}

/// Every recorded stream, through every client dialect it can be translated to, obeys
/// the client's ordering rules and ends as the upstream did (checklist items 3 and 17).
#[test]
fn every_recorded_stream_obeys_every_client_dialect() {
    let mut checked = 0;
    for &(upstream, name, clean, array) in STREAMS {
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let out = translate(upstream, client, name, array);
            check_client_stream(client, &out, clean).unwrap_or_else(|e| {
                panic!(
                    "{name} -> {client:?}: {e}\n{}",
                    String::from_utf8_lossy(&out)
                )
            });
            checked += 1;
        }
    }
    assert_eq!(checked, 13 * 3);
}

/// Checklist item 4: three parallel calls stay three, with intact arguments.
#[test]
fn parallel_tool_calls_stay_separate_in_every_dialect() {
    let want = [
        json!({"city": "Paris"}),
        json!({"city": "Tokyo"}),
        json!({"tz": "Asia/Tokyo"}),
    ];
    let name = "openai/parallel_tools.sse";
    let blocks = anthropic_blocks(&sse(&translate(Wire::Chat, Wire::Messages, name, false)));
    let inputs: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| b["input"].clone())
        .collect();
    assert_eq!(inputs, want);
    let ids: Vec<&str> = blocks.iter().filter_map(|b| b["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "call_Xq1bN7pR2sT4",
            "call_Yw3cM8qS5tU6",
            "call_Zr5dL9tV6uW7"
        ]
    );

    let (items, last) = responses_items(&sse(&translate(Wire::Chat, Wire::Responses, name, false)));
    let args: Vec<Value> = items
        .iter()
        .map(|i| serde_json::from_str(i["arguments"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(args, want);
    assert_eq!(last["response"]["output"].as_array().unwrap().len(), 3);

    let parts = gemini_parts(&gemini_chunks(
        &translate(Wire::Chat, Wire::Gemini, name, false),
        true,
    ));
    let args: Vec<Value> = parts
        .iter()
        .map(|p| p["functionCall"]["args"].clone())
        .collect();
    assert_eq!(args, want);
}

/// Interleaved argument fragments of two calls (some compatible hosts) still give two
/// whole calls in their order.
#[test]
fn interleaved_argument_fragments_are_regrouped() {
    let events = sse(&translate(
        Wire::Chat,
        Wire::Messages,
        "openai/interleaved_tools.sse",
        false,
    ));
    check_anthropic_order(&events, true).unwrap();
    let blocks = anthropic_blocks(&events);
    assert_eq!(blocks[0], json!({"type": "text", "text": "Looking up."}));
    assert_eq!(blocks[1]["input"], json!({"path": "a.rs"}));
    assert_eq!(blocks[2]["input"], json!({"path": "b.rs"}));
    assert_eq!(blocks.len(), 3);
}

/// Checklist item 5: OpenAI tool-call indexes count tool calls only (0 and 1 for an
/// Anthropic stream whose calls are blocks 2 and 3), and the usage chunk comes last
/// with every bucket.
#[test]
fn openai_tool_indexes_are_ordinals_and_usage_is_complete() {
    let out = translate(
        Wire::Messages,
        Wire::Chat,
        "anthropic/thinking_tools.sse",
        false,
    );
    let s = openai_stream(&sse(&out));
    assert_eq!(s.calls.len(), 2);
    assert_eq!(
        s.calls[0],
        (
            "toolu_01A09q90qw90lq917835lq9".into(),
            "get_weather".into(),
            r#"{"city": "Paris", "unit": "c"}"#.into()
        )
    );
    assert_eq!(s.finish.as_deref(), Some("tool_calls"));
    assert_eq!(s.text, "Checking both cities.");
    assert!(s.reasoning.starts_with("The user wants"));
    let u = s.usage.unwrap();
    assert_eq!(u["prompt_tokens"], 312 + 1536 + 4096);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 4096);
    assert_eq!(u["completion_tokens"], 164);
}

/// A client that did not ask for usage gets no usage chunk (and no `usage` keys).
#[test]
fn the_usage_chunk_only_when_asked() {
    let mut ex = exchange(Wire::Chat, Wire::Messages, true);
    ex.include_usage = false;
    let out = run(&ex, &fixture("root:anthropic/messages.sse"), &[], false);
    let events = sse(&out);
    assert!(
        events.iter().all(|(_, d)| d.get("usage").is_none()),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        openai_stream(&events).text,
        "Hello! Streams report usage twice: at the start and at the end."
    );
}

/// Checklist item 16: `message_start` carries real input counts when the upstream gives
/// them (Gemini's first chunk), an estimate when it cannot (OpenAI).
#[test]
fn message_start_reports_input_tokens() {
    let events = sse(&translate(
        Wire::Gemini,
        Wire::Messages,
        "gemini/thinking_tools.sse",
        false,
    ));
    let u = &events[0].1["message"]["usage"];
    assert_eq!(
        (
            u["input_tokens"].as_u64(),
            u["cache_read_input_tokens"].as_u64()
        ),
        (Some(5210 - 4096), Some(4096))
    );
    let events = sse(&translate(
        Wire::Chat,
        Wire::Messages,
        "root:openai/chat.sse",
        false,
    ));
    assert_eq!(
        events[0].1["message"]["usage"]["input_tokens"], 100,
        "the request's estimate"
    );
    let last_delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(last_delta.1["usage"]["input_tokens"], 1205 - 1152);
    assert_eq!(last_delta.1["usage"]["cache_read_input_tokens"], 1152);
}

/// Gemini signatures ride through every client dialect where it echoes them back.
#[test]
fn gemini_call_signatures_ride_in_each_client_dialect() {
    let sig = "CiQB0e2Kb7xQ1mW3nYv8tZ4rLp6sHd9cFg2jKa5uEi0oBqXyTlM=";
    let name = "gemini/thinking_tools.sse";
    let blocks = anthropic_blocks(&sse(&translate(Wire::Gemini, Wire::Messages, name, false)));
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["thinking", "text", "thinking", "tool_use", "tool_use"]
    );
    assert_eq!(blocks[2]["signature"], format!("gem:{sig}"));
    assert_eq!(blocks[2]["thinking"], "");

    let s = openai_stream(&sse(&translate(Wire::Gemini, Wire::Chat, name, false)));
    let (bare, carried) = split_id_sig(&s.calls[0].0);
    assert_eq!(carried.unwrap().bytes, sig);
    assert!(bare.starts_with("call_"));
    assert_eq!(split_id_sig(&s.calls[1].0).1, None);
    assert_eq!(s.finish.as_deref(), Some("tool_calls"));

    let (items, _) = responses_items(&sse(&translate(Wire::Gemini, Wire::Responses, name, false)));
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "reasoning",
            "message",
            "reasoning",
            "function_call",
            "function_call"
        ]
    );
    assert_eq!(items[2]["encrypted_content"], format!("gem:{sig}"));
}

/// Anthropic thinking signatures ride to Gemini and Responses clients.
#[test]
fn anthropic_thinking_signatures_ride_to_gemini_and_responses_clients() {
    let name = "anthropic/thinking_tools.sse";
    let parts = gemini_parts(&gemini_chunks(
        &translate(Wire::Messages, Wire::Gemini, name, false),
        true,
    ));
    let signed: Vec<&Value> = parts
        .iter()
        .filter(|p| p.get("thoughtSignature").is_some())
        .collect();
    assert_eq!(signed.len(), 1);
    assert!(signed[0]["thoughtSignature"]
        .as_str()
        .unwrap()
        .starts_with("ant:EqQB"));
    assert_eq!(
        parts
            .iter()
            .filter(|p| p.get("functionCall").is_some())
            .count(),
        2
    );

    let (items, last) = responses_items(&sse(&translate(
        Wire::Messages,
        Wire::Responses,
        name,
        false,
    )));
    assert_eq!(items[0]["type"], "reasoning");
    assert!(items[0]["encrypted_content"]
        .as_str()
        .unwrap()
        .starts_with("ant:EqQB"));
    assert_eq!(
        items[0]["summary"][0]["text"],
        "The user wants the weather in two cities. I will call the tool for both at once."
    );
    assert_eq!(last["response"]["usage"]["input_tokens"], 312 + 1536 + 4096);
    assert_eq!(
        last["response"]["usage"]["input_tokens_details"]["cached_tokens"],
        4096
    );
}

/// Checklist item 3, second half: the accumulated stream equals the non-streamed
/// translation of the same upstream answer.
#[test]
fn accumulated_stream_equals_the_whole_translation() {
    let streamed = anthropic_blocks(&sse(&translate(
        Wire::Gemini,
        Wire::Messages,
        "gemini/thinking_tools.sse",
        false,
    )));
    let ex = exchange(Wire::Messages, Wire::Gemini, false);
    let whole: Value = serde_json::from_slice(
        &ResponseTranslator::new(ex).whole(&fixture("gemini/thinking_tools.json")),
    )
    .unwrap();
    assert_eq!(Value::Array(streamed), whole["content"]);
    assert_eq!(whole["stop_reason"], "tool_use");
}

/// A Gemini client that did not ask for `alt=sse` gets the JSON-array form; a Gemini
/// upstream's array stream is read too.
#[test]
fn gemini_array_form_both_ways() {
    let mut ex = exchange(Wire::Gemini, Wire::Messages, true);
    ex.gemini_sse = false;
    let out = run(&ex, &fixture("anthropic/thinking_tools.sse"), &[], false);
    let chunks = gemini_chunks(&out, false);
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    let from_array = translate(
        Wire::Gemini,
        Wire::Messages,
        "gemini/thinking_tools_array.json",
        true,
    );
    let from_sse = translate(
        Wire::Gemini,
        Wire::Messages,
        "gemini/thinking_tools.sse",
        false,
    );
    assert_eq!(from_array, from_sse);
}

/// Checklist item 17 and section 5.3: a mid-stream upstream error becomes the client's
/// error event, with the upstream's message, and nothing after it.
#[test]
fn mid_stream_errors_become_the_clients_error_event() {
    let name = "anthropic/overloaded_mid_stream.sse";
    let s = openai_stream(&sse(&translate(Wire::Messages, Wire::Chat, name, false)));
    assert_eq!(s.text, "Half an ans");
    assert_eq!(s.error.unwrap()["message"], "Overloaded");
    assert!(!s.done && s.finish.is_none());
    let (_, last) = responses_items(&sse(&translate(
        Wire::Messages,
        Wire::Responses,
        name,
        false,
    )));
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["message"], "Overloaded");
    let events = sse(&translate(
        Wire::Gemini,
        Wire::Messages,
        "gemini/truncated.sse",
        false,
    ));
    assert_eq!(events.last().unwrap().1["error"]["type"], "api_error");
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..6000, 0..40).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every split of every recorded stream gives the same client bytes.
    #[test]
    fn every_split_gives_the_same_bytes(cuts in cuts()) {
        for &(upstream, name, _, array) in STREAMS {
            let body = fixture(name);
            for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
                let ex = exchange(client, upstream, true);
                let whole = run(&ex, &body, &[], array);
                let split = run(&ex, &body, &cuts, array);
                prop_assert_eq!(&whole, &split, "{} -> {:?}", name, client);
            }
        }
    }
}

/// The worst split: one byte at a time.
#[test]
fn byte_by_byte_gives_the_same_bytes() {
    for &(upstream, name, _, array) in STREAMS {
        let body = fixture(name);
        let every: Vec<usize> = (1..body.len()).collect();
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let ex = exchange(client, upstream, true);
            assert_eq!(
                run(&ex, &body, &[], array),
                run(&ex, &body, &every, array),
                "{name} -> {client:?}"
            );
        }
    }
}

/// One OpenAI stream chunk (`data:` line) with `delta` and `finish_reason`.
fn chat_chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-edge", "object": "chat.completion.chunk", "model": "compat-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

/// The events an Anthropic Messages client receives for an OpenAI-style stream.
fn to_messages(body: &str) -> Vec<(String, Value)> {
    let ex = exchange(Wire::Messages, Wire::Chat, true);
    sse(&run(&ex, body.as_bytes(), &[], false))
}

/// The `stop_reason` of an Anthropic stream's `message_delta`.
fn stop_reason(events: &[(String, Value)]) -> &Value {
    let (_, delta) = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .expect("a message_delta");
    &delta["delta"]["stop_reason"]
}

/// A tool-call delta of an OpenAI stream.
fn call(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut c = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        c["id"] = json!(id);
        c["type"] = json!("function");
    }
    if let Some(name) = name {
        c["function"]["name"] = json!(name);
    }
    json!({ "tool_calls": [c] })
}

/// Calls a compatible host streams without ids still come out, whole, at the end, with
/// an id made of their index, after the calls that had one.
#[test]
fn calls_without_ids_come_out_at_the_end_with_an_id_of_their_index() {
    let mut body = chat_chunk(json!({"role": "assistant", "content": ""}), None);
    body += &chat_chunk(call(0, None, Some("read_file"), "{\"path\": "), None);
    body += &chat_chunk(call(0, None, None, "\"a.rs\"}"), None);
    body += &chat_chunk(
        call(1, Some("call_b2"), Some("grep"), "{\"q\": \"x\"}"),
        None,
    );
    body += &chat_chunk(json!({}), Some("tool_calls"));
    body += "data: [DONE]\n\n";
    let events = to_messages(&body);
    check_anthropic_order(&events, true).unwrap();
    let blocks = anthropic_blocks(&events);
    let calls: Vec<(&Value, &Value, &Value)> = blocks
        .iter()
        .map(|b| (&b["id"], &b["name"], &b["input"]))
        .collect();
    assert_eq!(
        calls,
        [
            (&json!("call_b2"), &json!("grep"), &json!({"q": "x"})),
            (
                &json!("call_0"),
                &json!("read_file"),
                &json!({"path": "a.rs"})
            ),
        ]
    );
}

/// Gemini's OpenAI-compatible endpoint streams each call whole and without an `index`
/// (so do some other hosts): calls with different ids stay separate, in one chunk or
/// several, and a fragment with neither index nor id continues the latest call. Its
/// `stop` (as OpenAI says for a call it was told to make) is `tool_use` to Anthropic.
#[test]
fn calls_without_an_index_are_told_apart_by_their_ids() {
    let whole = |id: &str, args: &str| json!({"id": id, "type": "function", "function": {"name": "get_weather", "arguments": args}});
    let mut body = chat_chunk(json!({"role": "assistant", "content": ""}), None);
    body += &chat_chunk(
        json!({"tool_calls": [whole("call_p", "{\"city\":\"Paris\"}"), whole("call_r", "{\"city\":")]}),
        None,
    );
    body += &chat_chunk(
        json!({"tool_calls": [{"function": {"arguments": "\"Rome\"}"}}]}),
        None,
    );
    body += &chat_chunk(
        json!({"tool_calls": [whole("call_t", "{\"city\":\"Turin\"}")]}),
        None,
    );
    body += &chat_chunk(json!({}), Some("stop"));
    body += "data: [DONE]\n\n";
    for (client, name) in [
        (Wire::Messages, "messages"),
        (Wire::Gemini, "gemini"),
        (Wire::Responses, "responses"),
        (Wire::Chat, "chat"),
    ] {
        let ex = exchange(client, Wire::Chat, true);
        let out = run(&ex, body.as_bytes(), &[], false);
        check_client_stream(client, &out, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let events = to_messages(&body);
    check_anthropic_order(&events, true).unwrap();
    let calls: Vec<(Value, Value)> = anthropic_blocks(&events)
        .iter()
        .map(|b| (b["id"].clone(), b["input"].clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (json!("call_p"), json!({"city": "Paris"})),
            (json!("call_r"), json!({"city": "Rome"})),
            (json!("call_t"), json!({"city": "Turin"})),
        ]
    );
    assert_eq!(stop_reason(&events), "tool_use");
}

/// A call with neither index nor id is named by its place, after the calls that had an
/// id; text that ends with `stop` and no call stays `end_turn`.
#[test]
fn a_call_without_index_or_id_is_named_by_its_place() {
    let mut body = chat_chunk(json!({"role": "assistant", "content": ""}), None);
    body += &chat_chunk(
        json!({"tool_calls": [{"function": {"name": "ls", "arguments": "{}"}}]}),
        None,
    );
    body += &chat_chunk(
        json!({"tool_calls": [{"id": "call_b", "function": {"name": "pwd", "arguments": "{}"}}]}),
        None,
    );
    body += &chat_chunk(json!({}), Some("tool_calls"));
    body += "data: [DONE]\n\n";
    let events = to_messages(&body);
    check_anthropic_order(&events, true).unwrap();
    let calls: Vec<(Value, Value)> = anthropic_blocks(&events)
        .iter()
        .map(|b| (b["id"].clone(), b["name"].clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (json!("call_b"), json!("pwd")),
            (json!("call_0"), json!("ls"))
        ]
    );

    let mut body = chat_chunk(json!({"role": "assistant", "content": "Hi."}), None);
    body += &chat_chunk(json!({}), Some("stop"));
    body += "data: [DONE]\n\n";
    let events = to_messages(&body);
    assert_eq!(stop_reason(&events), "end_turn");
}

/// A call whose arguments never close their JSON (the stream cut at the model's limit)
/// is closed before the message ends, with what came of them: Anthropic SDKs fail on a
/// block left open.
#[test]
fn a_call_cut_off_mid_arguments_is_closed_before_the_message_ends() {
    let mut body = chat_chunk(json!({"role": "assistant", "content": ""}), None);
    body += &chat_chunk(call(0, Some("call_a1"), Some("grep"), "{\"q\": \"x"), None);
    body += &chat_chunk(json!({}), Some("length"));
    body += "data: [DONE]\n\n";
    let events = to_messages(&body);
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].1["delta"]["partial_json"], "{\"q\": \"x");
    assert_eq!(events[4].1["delta"]["stop_reason"], "max_tokens");
}

/// An Anthropic text block starts with empty text. That emptiness is not passed on as
/// an event of its own: an OpenAI chunk of empty content, a Responses delta of "" or a
/// Gemini part of "" (which some clients render as an empty message part).
#[test]
fn the_empty_text_a_block_starts_with_sends_no_event() {
    let body = fixture("anthropic/thinking_tools.sse");
    let to = |client| {
        sse(&run(
            &exchange(client, Wire::Messages, true),
            &body,
            &[],
            false,
        ))
    };
    let chat = to(Wire::Chat);
    assert!(chat
        .iter()
        .any(|(_, d)| d["choices"][0]["delta"]["content"] == "Checking"));
    assert!(
        !chat
            .iter()
            .any(|(_, d)| d["choices"][0]["delta"] == json!({"content": ""})),
        "an empty content chunk"
    );
    let responses = to(Wire::Responses);
    let deltas: Vec<&Value> = responses
        .iter()
        .filter(|(_, d)| d["type"] == "response.output_text.delta")
        .map(|(_, d)| &d["delta"])
        .collect();
    assert_eq!(deltas, [&json!("Checking"), &json!(" both cities.")]);
    let gemini = gemini_chunks(
        &run(
            &exchange(Wire::Gemini, Wire::Messages, true),
            &body,
            &[],
            false,
        ),
        true,
    );
    // (the last chunk carries the finish reason with an empty part, as Gemini's does)
    for c in gemini
        .iter()
        .filter(|c| c["candidates"][0]["finishReason"].is_null())
    {
        for part in c["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_ne!(part, &json!({"text": ""}), "{c}");
        }
    }
}

/// One event of an Anthropic Messages stream.
fn anthropic_event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The end of an Anthropic Messages stream: `message_delta` (`end_turn`) and
/// `message_stop`.
fn messages_end(output_tokens: u64) -> String {
    anthropic_event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
    ) + &anthropic_event("message_stop", json!({"type": "message_stop"}))
}

/// One whole content block of an Anthropic Messages stream, given in its start event.
fn messages_block(index: usize, block: Value) -> String {
    anthropic_event(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    ) + &anthropic_event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

/// The events an OpenAI Chat client receives for an Anthropic Messages stream.
fn to_chat(body: &str) -> Vec<(String, Value)> {
    let ex = exchange(Wire::Chat, Wire::Messages, true);
    sse(&run(&ex, body.as_bytes(), &[], false))
}

/// Text a compatible host puts in a block's start (Anthropic's own start blocks are
/// empty) reaches the client; an empty thinking start sends nothing.
#[test]
fn text_and_thinking_in_a_block_start_reach_the_client() {
    let mut body = anthropic_event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_edge", "type": "message",
            "role": "assistant", "model": "compat-claude", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    );
    body += &messages_block(
        0,
        json!({"type": "thinking", "thinking": "", "signature": ""}),
    );
    body += &messages_block(
        1,
        json!({"type": "thinking", "thinking": "Let me think.", "signature": ""}),
    );
    body += &messages_block(2, json!({"type": "text", "text": "Hi"}));
    body += &messages_end(5);
    let events = to_chat(&body);
    let s = openai_stream(&events);
    assert_eq!(s.reasoning, "Let me think.");
    assert_eq!(s.text, "Hi");
    let deltas: Vec<&Value> = events
        .iter()
        .map(|(_, d)| &d["choices"][0]["delta"])
        .filter(|d| d.is_object() && d.get("role").is_none() && d != &&json!({}))
        .collect();
    assert_eq!(
        deltas.len(),
        2,
        "one chunk each for the reasoning and the text: {deltas:?}"
    );
}

/// A Messages stream that starts without `message_start` (a compatible host's) still
/// gives an OpenAI client whole chunks: the role chunk first, then the text; and so
/// does one that ends before any content came.
#[test]
fn a_stream_without_its_start_event_still_gives_whole_chunks() {
    let events = to_chat(&messages_end(0));
    let s = openai_stream(&events);
    assert_eq!(
        (s.text.as_str(), s.finish.as_deref(), s.done),
        ("", Some("stop"), true)
    );
    for (_, c) in events.iter().filter(|(_, d)| d.is_object()) {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }

    let events =
        to_chat(&(messages_block(0, json!({"type": "text", "text": "Hi"})) + &messages_end(1)));
    let chunks: Vec<&Value> = events
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d.is_object())
        .collect();
    assert!(chunks.len() >= 3, "{events:?}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let s = openai_stream(&events);
    assert_eq!(s.text, "Hi");
    assert_eq!(s.finish.as_deref(), Some("stop"));
    assert!(s.done);
}

/// Content before the upstream's start (a Messages stream whose `message_start` is
/// missing or unreadable) still gives a Responses client `response.created` first, with
/// the items named after the response, and a whole stream to the end.
#[test]
fn content_before_the_start_gives_a_responses_client_a_whole_stream() {
    for first in ["", "event: message_start\ndata: false\n\n"] {
        let body = format!(
            "{first}{}{}",
            messages_block(0, json!({"type": "text", "text": "Hi"})),
            messages_end(1)
        );
        let ex = exchange(Wire::Responses, Wire::Messages, true);
        let events = sse(&run(&ex, body.as_bytes(), &[], false));
        check_responses(&events, true).unwrap();
        let created = &events[0].1;
        assert_eq!(created["type"], "response.created", "{events:?}");
        let id = created["response"]["id"].as_str().unwrap();
        let (items, done) = responses_items(&events);
        assert_eq!(done["response"]["id"], id);
        assert!(
            items[0]["id"]
                .as_str()
                .unwrap()
                .contains(id.trim_start_matches("resp_")),
            "{items:?}"
        );
        assert_eq!(items[0]["content"][0]["text"], "Hi");
    }
}

/// An upstream stream with no content at all (`[DONE]` alone) still gives a Responses
/// client a whole stream: `response.created` first, `response.completed` last.
#[test]
fn an_empty_upstream_stream_gives_a_responses_client_a_whole_stream() {
    let events = sse(&run(
        &exchange(Wire::Responses, Wire::Chat, true),
        b"data: [DONE]\n\n",
        &[],
        false,
    ));
    check_responses(&events, true).unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["type"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"response.created"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"), "{kinds:?}");
}

/// Mistral's reasoning models stream their thinking as typed `thinking` chunks in
/// `content`, then text as strings: the thinking reaches each client as its own
/// reasoning, in order before the text and the call.
#[test]
fn mistral_thinking_chunks_reach_every_client_as_reasoning() {
    const THOUGHT: &str = "The user wants the weather in Paris. I call the tool.";
    let up = "openai/mistral_reasoning.sse";
    let call = json!({"id": "Xy7pQ2mZk", "name": "get_weather", "input": {"city": "Paris"}});

    let evs = sse(&translate(Wire::Chat, Wire::Messages, up, false));
    let blocks = anthropic_blocks(&evs);
    let kinds: Vec<_> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"], "{blocks:?}");
    assert_eq!(blocks[0]["thinking"], THOUGHT);
    assert_eq!(blocks[1]["text"], "Checking Paris.");
    for k in ["id", "name", "input"] {
        assert_eq!(blocks[2][k], call[k], "{k}");
    }
    let stop = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        (
            stop["usage"]["input_tokens"].as_u64(),
            stop["usage"]["output_tokens"].as_u64()
        ),
        (Some(182), Some(65))
    );

    let (items, _) = responses_items(&sse(&translate(Wire::Chat, Wire::Responses, up, false)));
    let kinds: Vec<_> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["reasoning", "message", "function_call"],
        "{items:?}"
    );
    assert_eq!(items[0]["summary"][0]["text"], THOUGHT);
    assert_eq!(items[1]["content"][0]["text"], "Checking Paris.");
    assert_eq!(items[2]["call_id"], "Xy7pQ2mZk");

    let parts = gemini_parts(&gemini_chunks(
        &translate(Wire::Chat, Wire::Gemini, up, false),
        true,
    ));
    let thought: String = parts
        .iter()
        .filter(|p| p["thought"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(thought, THOUGHT);
    let last = parts.last().unwrap();
    assert_eq!(last["functionCall"]["args"], call["input"], "{parts:?}");
}
