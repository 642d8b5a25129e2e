use proptest::prelude::*;
use serde::Deserialize;

use super::{document, leading, Quick};
use crate::providers::wire::openai::{Chunk, ContentPart, DeltaContent};
use crate::providers::{anthropic, gemini, openai};

/// The providers' usage events as they send them (the fixtures' and load-tests' shapes):
/// the hand read must take them, not give up, and agree with the typed parse.
const REAL_EVENTS: &[&str] = &[
    r#"{"id":"chatcmpl-BmKr7","object":"chat.completion.chunk","created":1750956010,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":33,"total_tokens":52,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    r#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":1},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}}}"#,
    r#"{"type":"message_start","message":{"id":"msg_01J8","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":19,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
    r#"{"id":"chatcmpl-BmKr7","object":"chat.completion.chunk","created":1750956010,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":4,"totalTokenCount":12,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]},"modelVersion":"gemini-2.5-flash"}"#,
    // OpenAI's whole answers come pretty-printed, with whitespace between every token.
    "{\n  \"id\": \"chatcmpl-BmKr8\",\n  \"object\": \"chat.completion\",\n  \"created\": 1750956011,\n  \"model\": \"gpt-4o-mini-2024-07-18\",\n  \"choices\": [\n    {\n      \"index\": 0,\n      \"message\": {\n        \"role\": \"assistant\",\n        \"content\": \"Hello there.\",\n        \"refusal\": null,\n        \"annotations\": []\n      },\n      \"logprobs\": null,\n      \"finish_reason\": \"stop\"\n    }\n  ],\n  \"usage\": {\n    \"prompt_tokens\": 14,\n    \"completion_tokens\": 3,\n    \"total_tokens\": 17,\n    \"prompt_tokens_details\": {\n      \"cached_tokens\": 0,\n      \"audio_tokens\": 0\n    }\n  },\n  \"service_tier\": \"default\"\n}\n",
];

/// The typed parse of a whole document, `None` where it refuses it.
fn typed<'a, T: Deserialize<'a>>(doc: &'a str) -> Option<T> {
    serde_json::from_str(doc).ok()
}

/// The typed parse of the first value at the start of `doc`, as `last_usage_of` reads a
/// usage object.
fn typed_leading<T: for<'de> Deserialize<'de>>(doc: &str) -> Option<T> {
    serde_json::Deserializer::from_str(doc)
        .into_iter::<T>()
        .next()?
        .ok()
}

/// Where the hand read takes `doc`, the typed parse takes it too and gives the same.
fn agrees<'a, T>(doc: &'a str) -> Result<bool, TestCaseError>
where
    T: Quick<'a> + Deserialize<'a> + PartialEq + std::fmt::Debug,
{
    match document::<T>(doc.as_bytes()) {
        None => Ok(false),
        Some(quick) => {
            prop_assert_eq!(Some(quick), typed::<T>(doc), "{}", doc);
            Ok(true)
        }
    }
}

fn agrees_leading<T>(doc: &str) -> Result<bool, TestCaseError>
where
    T: for<'q> Quick<'q> + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    match leading::<T>(doc.as_bytes()) {
        None => Ok(false),
        Some(quick) => {
            prop_assert_eq!(Some(quick), typed_leading::<T>(doc), "{}", doc);
            Ok(true)
        }
    }
}

#[test]
fn the_providers_events_are_read_by_hand_as_the_typed_parse_reads_them() {
    let taken = |doc: &str| -> [bool; 3] {
        [
            agrees::<openai::Event>(doc).unwrap(),
            agrees::<anthropic::Event>(doc).unwrap(),
            agrees::<gemini::Event>(doc).unwrap(),
        ]
    };
    for doc in REAL_EVENTS {
        assert_eq!(taken(doc), [true; 3], "{doc}");
    }
    // And what they report: the final chunk's counts, a message_delta that completes.
    let r = document::<openai::Event>(REAL_EVENTS[0].as_bytes())
        .and_then(openai::Event::reported)
        .unwrap();
    assert_eq!((r.input, r.output, r.complete), (Some(19), Some(33), true));
    let r = document::<anthropic::Event>(REAL_EVENTS[3].as_bytes())
        .and_then(anthropic::Event::reported)
        .unwrap();
    assert_eq!((r.output, r.complete), (Some(15), true));
    let r = document::<gemini::Event>(REAL_EVENTS[5].as_bytes())
        .and_then(gemini::Event::reported)
        .unwrap();
    assert_eq!((r.input, r.output, r.complete), (Some(8), Some(4), true));
    let r = document::<openai::Event>(REAL_EVENTS[6].as_bytes())
        .and_then(openai::Event::reported)
        .unwrap();
    assert_eq!((r.input, r.output, r.complete), (Some(14), Some(3), true));
}

#[test]
fn it_gives_up_on_what_it_does_not_read_itself() {
    for doc in [
        r#"{"usage":{"prompt_tokens":1.0}}"#,
        r#"{"usage":{"prompt_tokens":-1}}"#,
        r#"{"usage":{"prompt_tokens":01}}"#,
        r#"{"usage":{"prompt_tokens":1e2}}"#,
        r#"{"usage":{"prompt_tokens":0.5}}"#,
        r#"{"usage":{"prompt_tokens":0e1}}"#,
        r#"{"x":1e,"usage":{}}"#,
        r#"{"x":1.,"usage":{}}"#,
        r#"{"usage":{"prompt_tokens":18446744073709551616}}"#,
        r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
        r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"completion_tokens":3}}"#,
        r#"{"usage":{"prompt_tokens_details":[1,2]}}"#,
        r#"{"usage":{"prompt\u005ftokens":1}}"#,
        r#"{"id":"a\"b","usage":{}}"#,
        "{\"id\":\"caf\u{e9}\",\"usage\":{}}",
        "{\"usage\":{}}\u{c}",
        r#"{"usage":{},}"#,
        r#"{"usage":{}} x"#,
        r#"{"usage":{"a":[1,]}}"#,
        r#"{"usage":{"a":tru}}"#,
    ] {
        assert!(document::<openai::Event>(doc.as_bytes()).is_none(), "{doc}");
    }
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    assert!(document::<openai::Event>(deep.as_bytes()).is_none());
    // A whole count at the top of u64, the forms of numbers it passes over.
    let doc = r#"{"x":[-0.5e-3,0,1E+9,true,false,null,"",{}],"usage":{"prompt_tokens":18446744073709551615}}"#;
    assert!(agrees::<openai::Event>(doc).unwrap());
    // What it takes: null and zero counts, and every form of number it passes over.
    for doc in [
        r#"{"usage":{"prompt_tokens":null,"completion_tokens":0,"total_tokens":7,"prompt_tokens_details":null}}"#,
        r#"{"a":0,"b":[0,-0,0.5,10,1e5,-2E-1],"usage":{"prompt_tokens":0}}"#,
        // Many containers side by side are no deeper than one.
        &format!(
            r#"{{"a":[{}],"usage":{{"prompt_tokens":1}}}}"#,
            ["{}", "[[]]"].repeat(40).join(",")
        ),
    ] {
        assert!(agrees::<openai::Event>(doc).unwrap(), "{doc}");
    }
    assert!(agrees::<anthropic::Event>(r#"{"type":null,"usage":{"output_tokens":3}}"#).unwrap());
    // What follows a leading object is not its business.
    assert!(agrees_leading::<openai::Usage>(r#"{"prompt_tokens":3} ,"x":1}"#).unwrap());
}

/// Whitespace, JSON's four and one that is not.
fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t", "\r\n ", "\u{c}"])
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "usage",
        "message",
        "response",
        "type",
        "candidates",
        "finishReason",
        "usageMetadata",
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "input_tokens_details",
        "cached_tokens",
        "reasoning_tokens",
        "prompt_cache_hit_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "id",
        "total_tokens",
        "prompt\\u005ftokens",
        "typ\u{e9}",
    ])
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "007",
            "-0",
            "-1",
            "2.5",
            "1e3",
            "1E+2",
            "0.0",
            "1.",
            "18446744073709551615",
            "18446744073709551616",
            "null",
            "true",
            "false",
            "nul",
            r#""7""#,
            r#""message_delta""#,
            r#""message_start""#,
            r#""a\"b""#,
            r#""\u0041""#,
            "\"h\u{e9}\"",
            "\"tab\there\"",
            r#""""#,
        ])
        .prop_map(str::to_owned),
    ]
}

/// A JSON-like value: mostly valid, with the odd forms the hand read must give up on.
fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        let member = (ws(), key(), ws(), inner.clone());
        prop_oneof![
            3 => prop::collection::vec(member, 0..5).prop_map(|m| {
                let body: Vec<String> =
                    m.iter().map(|(a, k, b, v)| format!(r#"{a}"{k}"{b}:{v}"#)).collect();
                format!("{{{}}}", body.join(","))
            }),
            1 => prop::collection::vec((ws(), inner), 0..3)
                .prop_map(|a| {
                    let items: Vec<String> = a.iter().map(|(w, v)| format!("{w}{v}")).collect();
                    format!("[{}]", items.join(","))
                }),
        ]
    })
}

/// An event: an object of members, sometimes cut short or with a byte put in.
fn event() -> impl Strategy<Value = String> {
    let object = prop::collection::vec((ws(), key(), value(), ws()), 0..5).prop_map(|m| {
        let body: Vec<String> = m
            .iter()
            .map(|(a, k, v, b)| format!(r#"{a}"{k}":{v}{b}"#))
            .collect();
        format!("{{{}}}", body.join(","))
    });
    (
        object,
        0u8..8,
        any::<prop::sample::Index>(),
        prop::sample::select(vec![",", "}", "]", "\"", ":", " ", "x"]),
    )
        .prop_map(|(doc, how, at, byte)| {
            let mut at = at.index(doc.len() + 1);
            while !doc.is_char_boundary(at) {
                at -= 1;
            }
            match how {
                0 => doc[..at].to_owned(),
                1 => format!("{}{byte}{}", &doc[..at], &doc[at..]),
                _ => doc,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Wherever the hand read takes an event or a usage object, the typed parse reads
    /// the same struct.
    #[test]
    fn the_hand_read_agrees_with_the_typed_parse(doc in event()) {
        agrees::<openai::Event>(&doc)?;
        agrees::<anthropic::Event>(&doc)?;
        agrees::<gemini::Event>(&doc)?;
        agrees_leading::<openai::Usage>(&doc)?;
        agrees_leading::<anthropic::Usage>(&doc)?;
        agrees_leading::<gemini::UsageMetadata>(&doc)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Eight bytes at a time, the run of plain string bytes ends where the byte-by-byte
    /// look says.
    #[test]
    fn a_plain_run_ends_at_the_first_byte_outside_plain_ascii(
        bytes in prop::collection::vec(
            prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => prop::sample::select(b"\"\\\x1f\x7f\x80".to_vec())],
            0..40,
        )
    ) {
        let want = bytes
            .iter()
            .take_while(|&&c| c != b'"' && c != b'\\' && (0x20..0x80).contains(&c))
            .count();
        prop_assert_eq!(super::plain_run(&bytes), want);
    }
}

/// Chat Completions stream chunks as hosts send them: the hand read takes each one (text
/// with escapes and UTF-8 included) and agrees with the typed parse.
const REAL_CHUNKS: &[&str] = &[
    r#"{"id":"chatcmpl-BmKr7Tq3","object":"chat.completion.chunk","created":1750956010,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-BmKr7Tq3","object":"chat.completion.chunk","created":1750956010,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Line one.\nIt said \"hi\" \u2014 caf\u00e9 \\ done"},"logprobs":null,"finish_reason":null}]}"#,
    "{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"Let me think: 2\u{d7}3 = 6 \u{1f914}\"},\"logprobs\":null,\"finish_reason\":null}]}",
    r#"{"id":"chatcmpl-t","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-t","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\": \"Paris\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-t","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
    r#"{"id":"chatcmpl-u","object":"chat.completion.chunk","created":1,"model":"deepseek-chat","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":20,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":19}}"#,
    r#"{"id":"chatcmpl-o","object":"chat.completion.chunk","created":1,"model":"qwen","choices":[{"index":0,"delta":{"reasoning":"Hmm\t\/ok"},"finish_reason":null}]}"#,
];

#[test]
fn the_hosts_chunks_are_read_by_hand_as_the_typed_parse_reads_them() {
    for doc in REAL_CHUNKS {
        assert!(agrees::<Chunk>(doc).unwrap(), "{doc}");
    }
    let c = document::<Chunk>(REAL_CHUNKS[1].as_bytes()).unwrap();
    let text = c.choices[0].delta.as_ref().and_then(|d| match &d.content {
        Some(DeltaContent::Text(t)) => Some(t.as_ref()),
        _ => None,
    });
    assert_eq!(
        text,
        Some("Line one.\nIt said \"hi\" \u{2014} caf\u{e9} \\ done")
    );
    let c = document::<Chunk>(REAL_CHUNKS[4].as_bytes()).unwrap();
    let call = &c.choices[0].delta.as_ref().unwrap().tool_calls[0];
    assert_eq!(call.index, Some(1));
    let args = call.function.as_ref().and_then(|f| f.arguments.as_deref());
    assert_eq!(args, Some(r#"{"city": "Paris"}"#));
    // Plain text is borrowed from the event, not copied.
    let c = document::<Chunk>(REAL_CHUNKS[0].as_bytes()).unwrap();
    assert!(matches!(
        c.id,
        Some(std::borrow::Cow::Borrowed("chatcmpl-BmKr7Tq3"))
    ));
    // Also when what follows a leading object is not UTF-8 (each string checked alone).
    let c = leading::<Chunk>(b"{\"id\":\"a\",\"model\":\"m\\u00e9\"} \xff").unwrap();
    assert_eq!(
        (c.id.as_deref(), c.model.as_deref()),
        (Some("a"), Some("m\u{e9}"))
    );
}

#[test]
fn a_chunk_it_cannot_read_itself_is_left_to_the_typed_parse() {
    for doc in [
        // A mid-stream error object; a null index, an index too large, a null choice.
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        r#"{"choices":[{"index":null,"delta":{}}]}"#,
        r#"{"choices":[{"index":4294967296,"delta":{}}]}"#,
        r#"{"choices":[null]}"#,
        // Surrogates, controls, bad escapes: serde decides.
        r#"{"choices":[{"delta":{"content":"\ud83d\ude00"}}]}"#,
        r#"{"choices":[{"delta":{"content":"\uD800"}}]}"#,
        r#"{"choices":[{"delta":{"content":"\u12"}}]}"#,
        r#"{"choices":[{"delta":{"content":"\u+123"}}]}"#,
        r#"{"choices":[{"delta":{"content":"\x"}}]}"#,
        "{\"choices\":[{\"delta\":{\"content\":\"tab\there\"}}]}",
        r#"{"choices":[{"delta":{"content":"open"#,
        // A member twice; an escape in a key or in a value passed over.
        r#"{"id":"a","id":"b"}"#,
        r#"{"i\u0064":"a"}"#,
        r#"{"object":"chat\u002ecompletion","id":"a"}"#,
    ] {
        assert!(document::<Chunk>(doc.as_bytes()).is_none(), "{doc}");
    }
    // A null list is read by hand as none, as the typed parse reads it.
    for doc in [
        r#"{"choices":null}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":null}}]}"#,
    ] {
        assert!(agrees::<Chunk>(doc).unwrap(), "{doc}");
    }
    // Bytes that are not UTF-8 inside a kept string: both refuse.
    let bad = b"{\"choices\":[{\"delta\":{\"content\":\"\xc3\x28\"}}]}";
    assert!(document::<Chunk>(bad).is_none());
    assert!(serde_json::from_slice::<Chunk>(bad).is_err());
    // \u0000 and the escapes serde takes are decoded.
    assert!(
        agrees::<Chunk>(r#"{"choices":[{"delta":{"content":"\u0000\b\f\r\/\u00E9\uFFFF"}}]}"#)
            .unwrap()
    );
}

/// A string value as a host might send it: plain, escaped, UTF-8, or something only serde
/// decides (a surrogate, a control character, a bad escape); or not a string.
fn text_value() -> impl Strategy<Value = String> {
    text_value_odd_one_in(13, 4)
}

/// `text_value` with one piece in `pieces` that only serde decides, and one value in
/// `values` null or not a string.
fn text_value_odd_one_in(pieces: u32, values: u32) -> impl Strategy<Value = String> {
    let valid = prop::sample::select(vec![
        "Hello",
        " ",
        "a",
        "",
        r#"\n"#,
        r#"\""#,
        r#"\\"#,
        r#"\/"#,
        r#"\t"#,
        r#"\u00e9"#,
        r#"\u00E9"#,
        r#"\u0000"#,
        r#"\u2014"#,
        "\u{e9}",
        "\u{1f600}",
        "\u{4e2d}",
        "\u{7f}",
        "{\\\"a\\\": 1}",
    ]);
    // What only serde decides: a surrogate pair or a lone one, a bad escape, a control.
    let odd = prop::sample::select(vec![
        r#"\ud83d\ude00"#,
        r#"\uD800"#,
        r#"\u12g4"#,
        r#"\x"#,
        "\t",
        "\u{1}",
    ]);
    let piece = prop_oneof![pieces - 1 => valid, 1 => odd];
    prop_oneof![
        2 * (values - 1) => prop::collection::vec(piece, 0..6).prop_map(|p| format!("\"{}\"", p.concat())),
        1 => Just("null".to_owned()),
        1 => prop::sample::select(vec!["1", "[]", "{}", "true"]).prop_map(str::to_owned),
    ]
}

fn count_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u64..5).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["null", "4294967296", "-1", "1.0", "\"1\"", "01"])
            .prop_map(str::to_owned),
    ]
}

/// An object of `members` (key, value), in order, with whitespace around.
fn object_of(members: Vec<(&'static str, String)>, ws: &str) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Some of `members`, each present or not, one of them maybe twice.
fn some_of(
    members: Vec<BoxedStrategy<(&'static str, String)>>,
) -> impl Strategy<Value = Vec<(&'static str, String)>> {
    most_of(members, 0.5)
}

/// `members`, each present with probability `p`, one of them maybe twice.
fn most_of(
    members: Vec<BoxedStrategy<(&'static str, String)>>,
    p: f64,
) -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let n = members.len();
    (
        members,
        prop::collection::vec(prop::bool::weighted(p), n),
        0usize..n * 8,
    )
        .prop_map(|(all, keep, twice)| {
            let mut out: Vec<_> = all
                .into_iter()
                .zip(keep)
                .filter_map(|(m, k)| k.then_some(m))
                .collect();
            if let Some(m) = out.get(twice).cloned() {
                out.push(m);
            }
            out
        })
}

fn member(
    key: &'static str,
    value: impl Strategy<Value = String> + 'static,
) -> BoxedStrategy<(&'static str, String)> {
    value.prop_map(move |v| (key, v)).boxed()
}

fn list_of(item: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(item, 0..3).prop_map(|i| format!("[{}]", i.join(","))),
        1 => Just("null".to_owned()),
    ]
}

/// A chat completion chunk: its members present or not, in the shapes above.
fn chunk() -> impl Strategy<Value = String> {
    let function = some_of(vec![
        member("name", text_value()),
        member("arguments", text_value()),
    ]);
    let call = some_of(vec![
        member("index", count_value()),
        member("id", text_value()),
        member("type", Just("\"function\"".to_owned())),
        member(
            "function",
            prop_oneof![4 => function.prop_map(|m| object_of(m, "")), 1 => Just("null".to_owned())],
        ),
    ])
    .prop_map(|m| object_of(m, ""));
    let delta = some_of(vec![
        member("role", Just("\"assistant\"".to_owned())),
        member("content", text_value()),
        member("reasoning_content", text_value()),
        member("reasoning", text_value()),
        member("refusal", text_value()),
        member("tool_calls", list_of(call)),
    ])
    .prop_map(|m| object_of(m, ""));
    let choice = some_of(vec![
        member("index", count_value()),
        member(
            "delta",
            prop_oneof![6 => delta, 1 => Just("null".to_owned())],
        ),
        member("logprobs", Just("null".to_owned())),
        member("finish_reason", text_value()),
    ])
    .prop_map(|m| object_of(m, ""));
    let usage = some_of(vec![
        member("prompt_tokens", count_value()),
        member("completion_tokens", count_value()),
        member(
            "prompt_tokens_details",
            Just(r#"{"cached_tokens":3}"#.to_owned()),
        ),
        member("prompt_cache_hit_tokens", count_value()),
    ])
    .prop_map(|m| object_of(m, ""));
    let members = some_of(vec![
        member("id", text_value()),
        member("object", Just("\"chat.completion.chunk\"".to_owned())),
        member("created", count_value()),
        member("model", text_value()),
        member("choices", list_of(choice)),
        member(
            "usage",
            prop_oneof![3 => usage, 1 => Just("null".to_owned())],
        ),
        member(
            "error",
            prop_oneof![4 => Just("null".to_owned()), 1 => Just(r#"{"message":"x"}"#.to_owned())],
        ),
    ]);
    (members, ws(), 0u8..8, any::<prop::sample::Index>()).prop_map(|(m, ws, how, at)| {
        let doc = object_of(m, ws);
        let mut at = at.index(doc.len() + 1);
        while !doc.is_char_boundary(at) {
            at -= 1;
        }
        match how {
            0 => doc[..at].to_owned(),
            1 => format!("{}\"{}", &doc[..at], &doc[at..]),
            _ => doc,
        }
    })
}

/// Wherever the hand read takes a generated chunk, the typed parse reads the same chunk;
/// and it takes a good share of them, escapes and UTF-8 among them (a hand read that
/// gave up on everything would agree vacuously).
#[test]
fn the_hand_read_of_a_chunk_agrees_with_the_typed_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::default());
    let strategy = chunk();
    let (mut taken, mut decoded, mut typed_ok) = (0, 0, 0);
    let cases = 3000;
    for _ in 0..cases {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        typed_ok += usize::from(typed::<Chunk>(&doc).is_some());
        if agrees::<Chunk>(&doc).unwrap() {
            taken += 1;
            decoded += usize::from(doc.contains('\\') || !doc.is_ascii());
        }
        agrees::<Chunk>(&format!("{doc} ")).unwrap();
    }
    assert!(
        taken * 2 > typed_ok,
        "taken {taken} of the {typed_ok} serde reads"
    );
    assert!(
        decoded * 5 > taken,
        "only {decoded} of {taken} with escapes or UTF-8"
    );
}

/// Where the hand read takes `doc` as `T`, the typed parse reads the same (compared by
/// their debug forms, for types without `PartialEq`).
fn agrees_as_printed<'a, T>(doc: &'a str) -> bool
where
    T: Quick<'a> + Deserialize<'a> + std::fmt::Debug,
{
    match document::<T>(doc.as_bytes()) {
        None => false,
        Some(quick) => {
            let typed = typed::<T>(doc);
            assert_eq!(
                Some(format!("{quick:?}")),
                typed.map(|t| format!("{t:?}")),
                "{doc}"
            );
            true
        }
    }
}

/// Whole chat completion answers as hosts send them, read by hand.
const REAL_ANSWERS: &[&str] = &[
    r#"{"id":"chatcmpl-load","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":18,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
    r#"{"id":"chatcmpl-t","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":80,"completion_tokens":40,"total_tokens":120},"service_tier":"default","system_fingerprint":"fp_1"}"#,
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":2,\"model\":\"deepseek-reasoner\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"6 \u{2014} done.\\n\",\"reasoning_content\":\"2\u{d7}3\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,\"total_tokens\":14,\"prompt_cache_hit_tokens\":8}}",
    r#"{"id":"chatcmpl-r","object":"chat.completion","created":3,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#,
    r#"{"id":"gen-1","object":"chat.completion","created":4,"model":"qwen/qwen3-32b","choices":[{"index":0,"message":{"role":"assistant","content":"6.","reasoning":"2 times 3.","reasoning_details":[{"type":"reasoning.text","text":"2 times 3."}]},"finish_reason":"stop"}]}"#,
];

/// A Mistral reasoning model's chunk: its content is typed chunks, which the hand read
/// leaves to the typed parse.
#[test]
fn typed_content_chunks_are_read_by_the_typed_parse() {
    let doc = r#"{"id":"m1","object":"chat.completion.chunk","created":1,"model":"magistral-medium-latest","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Two and "},{"type":"text","text":"three."}]}]},"finish_reason":null}]}"#;
    assert!(document::<Chunk>(doc.as_bytes()).is_none());
    let c = super::document_or_typed::<Chunk>(doc.as_bytes()).unwrap();
    let content = c.choices[0].delta.as_ref().and_then(|d| d.content.as_ref());
    let Some(DeltaContent::Parts(parts)) = content else {
        panic!("{content:?}");
    };
    let [ContentPart::Thinking { thinking, .. }] = parts.as_slice() else {
        panic!("{parts:?}");
    };
    assert_eq!(ContentPart::thinking_text(thinking), "Two and three.");
}

#[test]
fn the_hosts_answers_are_read_by_hand_as_the_typed_parse_reads_them() {
    use crate::providers::wire::openai::ChatCompletion;
    for doc in REAL_ANSWERS.iter().copied().chain([REAL_EVENTS[6]]) {
        assert!(agrees_as_printed::<ChatCompletion>(doc), "{doc}");
    }
    // OpenRouter's name for the reasoning, read as `reasoning_content` is.
    let mut m = document::<ChatCompletion>(REAL_ANSWERS[4].as_bytes())
        .unwrap()
        .choices
        .remove(0)
        .message;
    assert_eq!(m.take_reasoning().as_deref(), Some("2 times 3."));
    let a = document::<ChatCompletion>(REAL_ANSWERS[1].as_bytes()).unwrap();
    let calls = &a.choices[0].message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    // A call without an id (some compatible hosts leave it out) is read by hand too.
    let no_id = r#"{"choices":[{"message":{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}}]}"#;
    assert!(agrees_as_printed::<ChatCompletion>(no_id), "{no_id}");
    // What the typed parse requires or reads differently is left to it.
    for doc in [
        r#"{"choices":[{"index":0}]}"#,
        r#"{"choices":[{"message":{"content":"no role"}}]}"#,
        r#"{"choices":[{"message":{"role":"assistant","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"message":{"role":"assistant","content":[{"type":"text","text":"parts"}]}}]}"#,
        r#"{"created":null}"#,
        r#"{"id":null}"#,
        r#"{"choices":[{"message":{"role":null}}]}"#,
    ] {
        assert!(
            document::<ChatCompletion>(doc.as_bytes()).is_none(),
            "{doc}"
        );
    }
}

/// A chat completion answer: its members present or not, in the shapes of `text_value`.
fn answer() -> impl Strategy<Value = String> {
    let function = most_of(
        vec![
            member("name", text_value_odd_one_in(60, 40)),
            member("arguments", text_value_odd_one_in(60, 40)),
        ],
        0.8,
    );
    let call = most_of(vec![
        member("id", text_value_odd_one_in(60, 40)),
        member("type", Just("\"function\"".to_owned())),
        member("function", prop_oneof![4 => function.prop_map(|m| object_of(m, "")), 1 => Just("null".to_owned())]),
    ], 0.8)
    .prop_map(|m| object_of(m, ""));
    let message = most_of(
        vec![
            member("role", text_value_odd_one_in(60, 40)),
            member("content", text_value_odd_one_in(60, 40)),
            member("name", text_value_odd_one_in(60, 40)),
            member("reasoning_content", text_value_odd_one_in(60, 40)),
            member("reasoning", text_value_odd_one_in(60, 40)),
            member("refusal", text_value_odd_one_in(60, 40)),
            member("annotations", Just("[]".to_owned())),
            member("tool_calls", list_of(call)),
        ],
        0.7,
    )
    .prop_map(|m| object_of(m, " "));
    let choice = most_of(
        vec![
            member("index", count_value()),
            member(
                "message",
                prop_oneof![8 => message, 1 => Just("null".to_owned())],
            ),
            member("logprobs", Just("null".to_owned())),
            member("finish_reason", text_value_odd_one_in(60, 40)),
        ],
        0.8,
    )
    .prop_map(|m| object_of(m, ""));
    let members = most_of(
        vec![
            member("id", text_value_odd_one_in(60, 40)),
            member("object", text_value_odd_one_in(60, 40)),
            member("created", count_value()),
            member("model", text_value_odd_one_in(60, 40)),
            member("choices", list_of(choice)),
            member(
                "usage",
                Just(r#"{"prompt_tokens":1,"completion_tokens":2}"#.to_owned()),
            ),
        ],
        0.8,
    );
    (members, ws()).prop_map(|(m, ws)| object_of(m, ws))
}

/// Wherever the hand read takes a generated answer, the typed parse reads the same; and
/// it takes a good share of those the typed parse reads.
#[test]
fn the_hand_read_of_an_answer_agrees_with_the_typed_parse() {
    use crate::providers::wire::openai::ChatCompletion;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::default());
    let strategy = answer();
    let (mut taken, mut typed_ok, mut with_calls) = (0, 0, 0);
    for _ in 0..3000 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        typed_ok += usize::from(typed::<ChatCompletion>(&doc).is_some());
        if agrees_as_printed::<ChatCompletion>(&doc) {
            taken += 1;
            with_calls += usize::from(doc.contains("\"function\":{"));
        }
    }
    assert!(
        taken * 2 > typed_ok,
        "taken {taken} of the {typed_ok} serde reads"
    );
    assert!(with_calls > 0, "no answer with a tool call taken");
}
