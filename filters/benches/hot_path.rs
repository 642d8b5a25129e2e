//! Benchmarks of the per-request hot path that has no I/O: the usage meter fed a
//! realistic stream in network-sized chunks or a whole JSON answer, the stripper of the
//! injected usage event, and routing a model name through aliases
//! and routes. Run with `cargo bench -p tollgate-filters`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::router::{Route, Router};
use tollgate_filters::upstream::{ProviderKind, UpstreamSpec, UpstreamTarget};
use tollgate_filters::usage::strip::UsageChunkStripper;
use tollgate_filters::usage::UsageMeter;

fn openai_stream(events: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":400,\"total_tokens\":1600,\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn meter(c: &mut Criterion) {
    let body = openai_stream(400);
    let mut g = c.benchmark_group("usage_meter");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for chunk in [64usize, 1024, 16 * 1024] {
        g.bench_function(format!("openai_stream_{chunk}B_chunks"), |b| {
            b.iter(|| {
                let mut m = UsageMeter::new(ProviderKind::OpenAi, true);
                for part in body.chunks(chunk) {
                    m.feed(black_box(part));
                }
                black_box(m.finish())
            })
        });
    }
    g.finish();
}

/// A whole (non-stream) chat completion, as most requests get: the meter keeps the body,
/// then finds `usage` and counts the text once at the end.
fn meter_json(c: &mut Criterion) {
    let body = br#"{"id":"chatcmpl-load","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today? This is a load-test answer of a realistic size.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":18,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
    let mut g = c.benchmark_group("usage_meter");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_json_body", |b| {
        b.iter(|| {
            let mut m = UsageMeter::new(ProviderKind::OpenAi, false);
            m.feed(black_box(body));
            black_box(m.finish())
        })
    });
    g.finish();
}

/// The stripper that removes the usage event Tollgate asked for, over the same stream
/// as the meter, in network-sized chunks.
fn strip(c: &mut Criterion) {
    let body = String::from_utf8(openai_stream(400))
        .unwrap_or_default()
        .replace(",\"usage\":null", "");
    let mut g = c.benchmark_group("usage_strip");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_stream_1024B_chunks", |b| {
        b.iter(|| {
            let mut s = UsageChunkStripper::new();
            let mut n = 0;
            for part in body.as_bytes().chunks(1024) {
                n += s.process(Bytes::copy_from_slice(part), false).len();
            }
            n += s.process(Bytes::new(), true).len();
            black_box(n)
        })
    });
    g.finish();
}

fn router(c: &mut Criterion) {
    let up = Arc::new(UpstreamTarget::new(UpstreamSpec {
        name: "u".into(),
        kind: ProviderKind::OpenAi,
        host: "h".into(),
        ..UpstreamSpec::default()
    }));
    let mut routes: Vec<Route> = (0..50)
        .map(|i| Route {
            models: vec![ModelPattern::parse(&format!("family{i}-*"))],
            chain: vec![up.clone()],
        })
        .collect();
    routes.push(Route {
        models: vec![ModelPattern::parse("claude-*-4*")],
        chain: vec![up],
    });
    let aliases = HashMap::from([("fast".to_owned(), "family49-mini".to_owned())]);
    let r = Router::new(aliases, routes);
    c.bench_function("router_resolve_last_of_51_routes", |b| {
        b.iter(|| black_box(r.resolve(black_box("claude-sonnet-4-5"))))
    });
    c.bench_function("router_resolve_alias", |b| {
        b.iter(|| black_box(r.resolve(black_box("fast"))))
    });
}

criterion_group!(benches, meter, meter_json, strip, router);
criterion_main!(benches);
