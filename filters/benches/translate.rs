//! Benchmarks of dialect translation, per pair: a whole request (the recorded client
//! requests of `tests/fixtures/translate/requests/`), a whole non-streamed answer, and a
//! stream fed one upstream event per chunk, as the network delivers them (reported per
//! event: the budget is 5 us a chunk). Run with `cargo bench -p tollgate-filters --bench
//! translate`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_filters::translate::response::{Exchange, ResponseTranslator};
use tollgate_filters::translate::{translate_request, ClientRequest, Options, Pair, Wire};

const UPSTREAMS: [Wire; 3] = [Wire::Chat, Wire::Messages, Wire::Gemini];
const CLIENTS: [Wire; 4] = [Wire::Chat, Wire::Responses, Wire::Messages, Wire::Gemini];
/// Text deltas in each synthetic stream.
const EVENTS: usize = 200;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn label(w: Wire) -> &'static str {
    match w {
        Wire::Chat => "openai",
        Wire::Responses => "responses",
        Wire::Messages => "anthropic",
        Wire::Gemini => "gemini",
    }
}

fn request_fixture(client: Wire) -> Vec<u8> {
    fixture(match client {
        Wire::Chat => "translate/requests/chat.json",
        Wire::Responses => "translate/requests/responses.json",
        Wire::Messages => "translate/requests/messages.json",
        Wire::Gemini => "translate/requests/gemini.json",
    })
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_request");
    let opts = Options::default();
    for client in CLIENTS {
        let body = request_fixture(client);
        // The reference: one untyped parse of the same body (what any JSON-reading
        // step costs), so figures from a busy machine can be compared.
        g.bench_function(format!("{}_parse_only", label(client)), |b| {
            b.iter(|| {
                black_box(
                    serde_json::from_slice::<serde_json::Value>(black_box(&body))
                        .map(|v| v.is_object()),
                )
            })
        });
        for upstream in UPSTREAMS.into_iter().filter(|u| *u != client) {
            let pair = Pair { client, upstream };
            g.bench_function(format!("{}_to_{}", label(client), label(upstream)), |b| {
                b.iter(|| {
                    let req = ClientRequest {
                        body: black_box(&body),
                        query: None,
                        gemini_stream: true,
                        served_model: "m",
                        now: 1,
                    };
                    black_box(translate_request(pair, req, &opts).map(|t| t.body.len()))
                })
            });
        }
    }
}

fn exchange(client: Wire, upstream: Wire, stream: bool) -> Exchange {
    Exchange {
        pair: Pair { client, upstream },
        stream,
        include_usage: true,
        gemini_sse: true,
        model: "m".into(),
        input_estimate: 1000,
        names: Vec::new(),
        namespaces: Vec::new(),
        custom_tools: Vec::new(),
        tool_search: false,
        echo: r#""instructions":null,"tools":[],"store":false"#.into(),
        reasoning_content: false,
        now: 1,
    }
}

/// A realistic stream of `EVENTS` text deltas in `upstream`'s dialect, as events.
fn stream_events(upstream: Wire) -> Vec<String> {
    let mut ev = Vec::new();
    match upstream {
        Wire::Chat | Wire::Responses => {
            for i in 0..EVENTS {
                ev.push(format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"));
            }
            ev.push("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n".into());
            ev.push("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":400,\"total_tokens\":1600,\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n\ndata: [DONE]\n\n".into());
        }
        Wire::Messages => {
            ev.push("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":176,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1024,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".into());
            for i in 0..EVENTS {
                ev.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \"}}}}\n\n"));
            }
            ev.push("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into());
        }
        Wire::Gemini => {
            for i in 0..EVENTS {
                let finish = if i + 1 == EVENTS {
                    ",\"finishReason\":\"STOP\""
                } else {
                    ""
                };
                ev.push(format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"token {i} \"}}],\"role\":\"model\"}}{finish},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":1200,\"candidatesTokenCount\":{i},\"totalTokenCount\":1300,\"cachedContentTokenCount\":1024}},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}}\r\n\r\n"));
            }
        }
    }
    ev
}

fn streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_stream_event");
    for upstream in UPSTREAMS {
        let events = stream_events(upstream);
        g.throughput(Throughput::Elements(events.len() as u64));
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let ex = exchange(client, upstream, true);
            g.bench_function(format!("{}_to_{}", label(upstream), label(client)), |b| {
                let mut out = Vec::with_capacity(64 * 1024);
                b.iter(|| {
                    let mut t = ResponseTranslator::new(ex.clone());
                    t.head(200, Some("text/event-stream"));
                    for (i, e) in events.iter().enumerate() {
                        out.clear();
                        t.body(black_box(e.as_bytes()), i + 1 == events.len(), &mut out);
                        black_box(&out);
                    }
                })
            });
        }
    }
}

fn wholes(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_response");
    let bodies = [
        (
            Wire::Chat,
            fixture("../../../tests/fixtures/openai/chat.json"),
        ),
        (
            Wire::Messages,
            fixture("../../../tests/fixtures/anthropic/messages.json"),
        ),
        (
            Wire::Gemini,
            fixture("../../../tests/fixtures/gemini/generate.json"),
        ),
    ];
    for (upstream, body) in &bodies {
        for client in CLIENTS.into_iter().filter(|c| c != upstream) {
            let t = ResponseTranslator::new(exchange(client, *upstream, false));
            g.bench_function(format!("{}_to_{}", label(*upstream), label(client)), |b| {
                b.iter(|| black_box(t.whole(black_box(body))))
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    targets = requests, streams, wholes
}
criterion_main!(benches);
