//! Property tests over splits and shapes (bounded case counts, so `cargo test` stays
//! fast):
//!
//! - every recorded provider response in `tests/fixtures` gives the same usage, the same
//!   completeness, the same counted text and (with the usage stripper) the same client
//!   bytes however it is cut into chunks;
//! - usage is asked for on every OpenAI stream whose client did not ask for it itself,
//!   whatever else `stream_options` holds;
//! - request bodies read the same under every framing (any chunk sizes, empty reads);
//! - request heads are judged complete at the same read under every split;
//! - random bytes never panic a parser.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_filters::body::BodyCollector;
use tollgate_filters::context::RouteDecision;
use tollgate_filters::metering::IncludeUsageFilter;
use tollgate_filters::upstream::{ProviderKind, UpstreamSpec, UpstreamTarget};
use tollgate_filters::usage::strip::UsageChunkStripper;
use tollgate_filters::usage::{Usage, UsageMeter};
use tollgate_filters::{Endpoint, Filter, GatewayError, RequestCtx};

/// `cases` cases, and no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// What each recorded response must meter to (tests/fixtures/README.md): `(input,
/// cache_read, cache_write, output, reasoning)`, `None` for responses without usage.
fn expected(rel: &str) -> Option<(ProviderKind, bool, Option<[u64; 5]>)> {
    use ProviderKind::{Anthropic as A, Gemini as G, OpenAi as O};
    let e = match rel {
        "openai/chat.json" => (O, false, Some([93, 1024, 0, 246, 192])),
        "openai/chat.sse" => (O, true, Some([53, 1152, 0, 138, 128])),
        "openai/completions.json" => (O, false, Some([5, 0, 0, 11, 0])),
        "openai/completions.sse" => (O, true, Some([5, 0, 0, 9, 0])),
        "openai/embeddings.json" => (O, false, Some([8, 0, 0, 0, 0])),
        "openai/responses.json" => (O, false, Some([138, 1152, 0, 310, 256])),
        "openai/responses.sse" => (O, true, Some([37, 0, 0, 412, 384])),
        "anthropic/messages.json" => (A, false, Some([21, 2048, 1536, 187, 0])),
        "anthropic/messages.sse" => (A, true, Some([472, 1024, 0, 89, 0])),
        "anthropic/tool_use.json" => (A, false, Some([50, 7, 3, 40, 0])),
        "openai/tool_calls.sse" => (O, true, Some([56, 64, 0, 30, 0])),
        "anthropic/count_tokens.json" => (A, false, None),
        "gemini/count_tokens.json" => (G, false, None),
        "gemini/generate.json" => (G, false, Some([13, 2048, 0, 376, 324])),
        "gemini/stream.sse" => (G, true, Some([283, 1024, 0, 250, 211])),
        "gemini/stream_array.json" => (G, true, Some([283, 1024, 0, 250, 211])),
        e if e.contains("/error_") => {
            let kind = match e.split('/').next() {
                Some("anthropic") => A,
                Some("gemini") => G,
                _ => O,
            };
            (kind, false, None)
        }
        _ => return None,
    };
    Some(e)
}

struct Recorded {
    rel: String,
    kind: ProviderKind,
    stream: bool,
    want: Option<Usage>,
    bytes: Vec<u8>,
}

/// Every provider response in the fixtures, with what it must meter to. A fixture
/// missing from [`expected`] fails the test: a new recording needs its figures.
fn recorded() -> Vec<Recorded> {
    let mut out = Vec::new();
    for provider in ["openai", "anthropic", "gemini"] {
        let dir = std::fs::read_dir(format!("{FIXTURES}/{provider}")).unwrap();
        for entry in dir {
            let path = entry.unwrap().path();
            let rel = format!("{provider}/{}", path.file_name().unwrap().to_string_lossy());
            let (kind, stream, want) =
                expected(&rel).unwrap_or_else(|| panic!("{rel}: add its figures here"));
            out.push(Recorded {
                bytes: std::fs::read(&path).unwrap(),
                want: want.map(
                    |[input, cache_read, cache_write, output, reasoning]| Usage {
                        input,
                        output,
                        cache_read,
                        cache_write,
                        reasoning,
                    },
                ),
                rel,
                kind,
                stream,
            });
        }
    }
    assert!(out.len() >= 20, "fixtures not found under {FIXTURES}");
    out
}

/// `bytes` cut before each position in `cuts` (taken modulo its length).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for a in at {
        pieces.push(&bytes[from..a]);
        from = a;
    }
    pieces.push(&bytes[from..]);
    pieces
}

/// `(usage, complete, text chars)` of a response fed in `pieces`.
fn meter(kind: ProviderKind, stream: bool, pieces: &[&[u8]]) -> (Option<Usage>, bool, u64) {
    let mut m = UsageMeter::new(kind, stream);
    for p in pieces {
        m.feed(p);
    }
    let u = m.finish();
    (u, m.complete(), m.text_chars())
}

/// The client's bytes when `pieces` pass the usage stripper.
fn stripped(pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = UsageChunkStripper::new();
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let end = i + 1 == pieces.len();
        out.extend_from_slice(&s.process(Bytes::copy_from_slice(p), end));
    }
    out
}

/// An SSE stream's events (each with its blank line).
fn events(body: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(body);
    text.split_inclusive("\n\n")
        .map(|e| e.as_bytes().to_vec())
        .collect()
}

/// What an OpenAI stream looks like to a client that did not ask for usage: the fixture
/// (recorded with it) without its usage-only event.
fn unasked(body: &[u8]) -> Vec<u8> {
    events(body)
        .into_iter()
        .filter(|e| !String::from_utf8_lossy(e).contains("\"choices\":[],"))
        .flatten()
        .collect()
}

/// The stream as the provider sends it once usage is asked for: every other event's
/// payload ends with `,"usage":null`.
fn with_usage_null(body: &[u8]) -> Vec<u8> {
    events(body)
        .into_iter()
        .flat_map(|e| {
            let t = String::from_utf8_lossy(&e).into_owned();
            match t.rfind('}') {
                Some(i) if !t.contains("\"choices\":[],") => {
                    format!("{},\"usage\":null{}", &t[..i], &t[i..]).into_bytes()
                }
                _ => e,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn every_recorded_response_meters_the_same_however_it_is_cut(
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        small in prop::collection::vec(1usize..6, 1..8),
    ) {
        for r in recorded() {
            let whole = meter(r.kind, r.stream, &[&r.bytes]);
            prop_assert_eq!(whole.0, r.want, "{}", &r.rel);
            let pieces = cut(&r.bytes, &cuts);
            prop_assert_eq!(meter(r.kind, r.stream, &pieces), whole, "{} cut at {:?}", &r.rel, &cuts);
            // Tiny pieces too: every byte boundary matters somewhere.
            let tiny: Vec<&[u8]> = {
                let mut out = Vec::new();
                let mut at = 0;
                for step in small.iter().cycle() {
                    if at >= r.bytes.len() {
                        break;
                    }
                    let end = (at + step).min(r.bytes.len());
                    out.push(&r.bytes[at..end]);
                    at = end;
                }
                out
            };
            prop_assert_eq!(meter(r.kind, r.stream, &tiny), whole, "{} in steps {:?}", &r.rel, &small);
        }
    }

    #[test]
    fn the_client_gets_the_unasked_stream_however_it_is_cut(
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        for r in recorded() {
            if !(r.rel == "openai/chat.sse" || r.rel == "openai/completions.sse") {
                continue;
            }
            let want = unasked(&r.bytes);
            prop_assert!(want.len() < r.bytes.len(), "{} has a usage event", &r.rel);
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            prop_assert_eq!(text(&stripped(&cut(&r.bytes, &cuts))), text(&want), "{}", &r.rel);
            let nulls = with_usage_null(&r.bytes);
            prop_assert!(nulls.len() > r.bytes.len());
            prop_assert_eq!(
                text(&stripped(&cut(&nulls, &cuts))),
                text(&want),
                "{} with usage:null", &r.rel
            );
            // The meter sees the provider's bytes, usage:null included, the same way.
            prop_assert_eq!(
                meter(r.kind, true, &cut(&nulls, &cuts)).0,
                r.want,
                "{}", &r.rel
            );
        }
    }
}

/// A `stream_options` value of any shape, and whether it asks for usage.
fn stream_options() -> impl Strategy<Value = (Option<Value>, bool)> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,14}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        Just((None, false)),
        value.prop_map(|v| {
            let asked = v.get("include_usage") == Some(&Value::Bool(true));
            (Some(v), asked)
        }),
        (
            any::<Option<bool>>(),
            prop::collection::btree_map("[a-z]{1,5}", any::<u8>(), 0..2)
        )
            .prop_map(|(flag, rest)| {
                let mut o: serde_json::Map<String, Value> =
                    rest.into_iter().map(|(k, v)| (k, json!(v))).collect();
                if let Some(f) = flag {
                    o.insert("include_usage".into(), Value::Bool(f));
                }
                (Some(Value::Object(o)), flag == Some(true))
            }),
    ]
}

fn openai_stream_ctx(body: &Value) -> RequestCtx {
    let up = UpstreamTarget::new(UpstreamSpec {
        name: "o".into(),
        kind: ProviderKind::OpenAi,
        host: "h".into(),
        ..UpstreamSpec::default()
    });
    let mut ctx = RequestCtx::new("r".into());
    ctx.endpoint = Some(Endpoint::ChatCompletions);
    ctx.stream = true;
    ctx.body = Bytes::from(serde_json::to_vec(body).unwrap());
    ctx.route = Some(RouteDecision {
        served_model: "m".into(),
        chain: vec![Arc::new(up)],
    });
    ctx
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn usage_is_asked_for_unless_the_client_asked_itself((options, asked) in stream_options()) {
        let mut body = json!({"model": "m", "stream": true, "messages": []});
        if let Some(o) = &options {
            body["stream_options"] = o.clone();
        }
        let mut ctx = openai_stream_ctx(&body);
        let req = pingora_http::RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        prop_assert_eq!(IncludeUsageFilter.on_request_sync(&req, &mut ctx), Ok(()));
        prop_assert_eq!(ctx.usage_injected, !asked, "{:?}", &options);
        let sent: Value = serde_json::from_slice(&ctx.outgoing_body()).unwrap();
        prop_assert_eq!(&sent["stream_options"]["include_usage"], &json!(true));
        prop_assert_eq!(&sent["messages"], &json!([]));
        if let Some(Value::Object(o)) = &options {
            for (k, v) in o.iter().filter(|(k, _)| *k != "include_usage") {
                prop_assert_eq!(&sent["stream_options"][k], v, "the client's {} is kept", k);
            }
        }
    }
}

/// A body cut into reads: `(length, empty reads before it)` per piece.
fn reads() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..300, 0usize..3), 0..12)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_body_reads_the_same_under_every_framing(
        body in prop::collection::vec(any::<u8>(), 0..1500),
        reads in reads(),
        declared in any::<bool>(),
        cap in 0usize..2000,
    ) {
        let declared = declared.then_some(body.len() as u64);
        let collect = || -> Result<Bytes, GatewayError> {
            let mut c = BodyCollector::new(declared, cap as u64)?;
            let mut at = 0usize;
            for (len, empties) in reads.iter().chain(std::iter::once(&(usize::MAX, 1))) {
                for _ in 0..*empties {
                    c.push(Bytes::new())?;
                }
                let end = at.saturating_add(*len).min(body.len());
                c.push(Bytes::copy_from_slice(&body[at..end]))?;
                at = end;
            }
            Ok(c.finish())
        };
        if body.len() > cap {
            prop_assert_eq!(collect(), Err(GatewayError::BodyTooLarge(cap as u64)));
        } else {
            prop_assert_eq!(collect(), Ok(Bytes::from(body.clone())));
        }
    }

    #[test]
    fn a_head_is_complete_at_the_same_read_under_every_split(
        head in "[A-Za-z0-9 :/\r\n.-]{0,120}",
        body in prop::collection::vec(any::<u8>(), 0..60),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        let done_at = head_end(&bytes);
        let mut matched = 0u8;
        let mut start = 0;
        let mut judged = None;
        for piece in cut(&bytes, &cuts) {
            let end = start + piece.len();
            if tollgate_filters::head::scan(&mut matched, piece) {
                judged = Some((start, end));
                break;
            }
            start = end;
        }
        // Complete exactly at the read that holds the blank line's last byte.
        match (done_at, judged) {
            (Some(i), Some((start, end))) => prop_assert!(start < i && i <= end, "{} in {:?}", i, judged),
            (done_at, judged) => prop_assert_eq!(done_at.is_some(), judged.is_some()),
        }
    }
}

/// Where a request head ends, as httparse reads one: after the request line, at the
/// first empty line, either line end (CRLF or a bare LF) counting; empty lines before the
/// request line are skipped.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let start = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    (start..bytes.len()).find_map(|i| match &bytes[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\n', b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

/// Bytes that look like JSON, SSE and HTTP often enough to reach deep into the parsers.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(
            prop::sample::select(b"{}[]\":,\\ \r\nadtusgeMa0123456789.-%".to_vec()),
            0..600
        ),
        "(data: |\\[|\\{\"usage\":|\"usageMetadata\": \\{|\"text\":\"|\\\\|\\}|\\]|,|\r?\n|\"choices\":\\[\\],|null|[0-9]{1,20}){0,40}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn random_bytes_never_panic_a_parser(
        bytes in hostile(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let pieces = cut(&bytes, &cuts);
        for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::Gemini] {
            for stream in [false, true] {
                let whole = meter(kind, stream, &[&bytes]);
                let split = meter(kind, stream, &pieces);
                // Text counted for an estimate may differ where a cut splits a JSON
                // body's tail; reported usage never does.
                prop_assert_eq!(whole.0, split.0);
            }
        }
        let out = stripped(&pieces);
        prop_assert!(out.len() <= bytes.len());
        let mut matched = 0u8;
        for p in &pieces {
            // After a head's end the next head starts from nothing, as in the proxy.
            if tollgate_filters::head::scan(&mut matched, p) {
                matched = 0;
            }
            prop_assert!(matched < 4);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = Endpoint::from_request("POST", &text);
        let _ = Endpoint::from_request(&text, "/v1/chat/completions");
        let _ = tollgate_filters::endpoint::percent_decode(&text);
        let _ = tollgate_filters::pattern::ModelPattern::parse(&text).matches(&text);
        let _ = tollgate_filters::usage::count_text_chars(&bytes);
        let _ = tollgate_filters::usage::last_value_of(&bytes, b"usage");
        let _ = tollgate_filters::usage::find_key_objects(&bytes, b"usageMetadata").count();
        let mut c = BodyCollector::new(None, 300).unwrap();
        for p in &pieces {
            let _ = c.push(Bytes::copy_from_slice(p));
        }
        prop_assert!(c.len() <= 300);
    }
}
