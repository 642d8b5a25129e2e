//! The metering and include-usage filters driven through their phases with in-crate
//! fakes for the sink and the estimator: each test looks at the event recorded.

use super::*;
use crate::context::{Principal, RouteDecision};
use crate::upstream::{UpstreamSpec, UpstreamTarget};
use crate::usage::Price;
use serde_json::{json, Value};
use std::time::Duration;

fn upstream(kind: ProviderKind) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(UpstreamSpec {
        name: format!("up-{}", kind.as_str()),
        kind,
        host: "h".into(),
        ..UpstreamSpec::default()
    }))
}

fn routed(kind: ProviderKind, endpoint: Endpoint, body: &str) -> RequestCtx {
    let mut ctx = RequestCtx::new("req-1".into());
    ctx.endpoint = Some(endpoint);
    ctx.body = bytes::Bytes::from(body.to_owned());
    ctx.stream = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(false);
    ctx.route = Some(RouteDecision {
        served_model: "gpt-4o-mini".into(),
        chain: vec![upstream(kind)],
    });
    ctx
}

async fn inject(body: &str) -> RequestCtx {
    let req = pingora_http::RequestHeader::build("POST", b"/v1/chat/completions", None)
        .unwrap_or_else(|_| unreachable!());
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    let r = IncludeUsageFilter.on_request_sync(&req, &mut ctx);
    assert_eq!(r, Ok(()), "{body}");
    ctx
}

fn sent_options(ctx: &RequestCtx) -> Option<Value> {
    let body = ctx.upstream_body.as_ref()?;
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v.get("stream_options").cloned()
}

#[tokio::test]
async fn usage_is_injected_unless_the_client_asked_for_it() {
    for options in [
        "",
        r#","stream_options":null"#,
        r#","stream_options":[]"#,
        r#","stream_options":{}"#,
        r#","stream_options":{"include_usage":false}"#,
        r#","stream_options":{"include_usage":"yes"}"#,
    ] {
        let body = format!(r#"{{"model":"m","stream":true{options}}}"#);
        let ctx = inject(&body).await;
        assert!(ctx.usage_injected, "{body}");
        assert_eq!(
            sent_options(&ctx).and_then(|o| o.get("include_usage").cloned()),
            Some(json!(true)),
            "{body}"
        );
    }
    let ctx =
        inject(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#).await;
    assert!(!ctx.usage_injected);
    assert!(
        ctx.upstream_body.is_none(),
        "the client's body goes as it is"
    );
}

#[tokio::test]
async fn only_openai_streams_of_chat_or_completions_are_injected() {
    let req = pingora_http::RequestHeader::build("POST", b"/v1/x", None)
        .unwrap_or_else(|_| unreachable!());
    let stream = r#"{"model":"m","stream":true}"#;
    let cases = [
        (ProviderKind::OpenAi, Endpoint::Completions, stream, true),
        (
            ProviderKind::OpenAi,
            Endpoint::ChatCompletions,
            r#"{"model":"m"}"#,
            false,
        ),
        (ProviderKind::OpenAi, Endpoint::Responses, stream, false),
        (ProviderKind::OpenAi, Endpoint::Embeddings, stream, false),
        (
            ProviderKind::Anthropic,
            Endpoint::ChatCompletions,
            stream,
            false,
        ),
        (
            ProviderKind::OpenAi,
            Endpoint::ChatCompletions,
            "[1]",
            false,
        ),
    ];
    for (kind, endpoint, body, injected) in cases {
        let mut ctx = routed(kind, endpoint.clone(), body);
        ctx.stream = body.contains("stream");
        assert_eq!(IncludeUsageFilter.on_request_sync(&req, &mut ctx), Ok(()));
        assert_eq!(ctx.usage_injected, injected, "{kind:?} {endpoint:?} {body}");
        assert_eq!(
            ctx.upstream_body.is_some(),
            injected,
            "{kind:?} {endpoint:?}"
        );
    }
    // An upstream configured not to inject.
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, stream);
    let off = UpstreamTarget::new(UpstreamSpec {
        name: "off".into(),
        kind: ProviderKind::OpenAi,
        host: "h".into(),
        ..UpstreamSpec::default()
    })
    .with_include_usage(false);
    ctx.route = Some(RouteDecision {
        served_model: "m".into(),
        chain: vec![Arc::new(off)],
    });
    assert_eq!(IncludeUsageFilter.on_request_sync(&req, &mut ctx), Ok(()));
    assert!(!ctx.usage_injected && ctx.upstream_body.is_none());
    // Not JSON: refused in the client's dialect.
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{");
    ctx.stream = true;
    let r = IncludeUsageFilter.on_request_sync(&req, &mut ctx);
    assert!(matches!(r, Err(GatewayError::BadJson(_))), "{r:?}");
    // An aliased body (already rewritten by routing) is the one extended.
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, stream);
    ctx.upstream_body = Some(bytes::Bytes::from_static(
        br#"{"model":"served","stream":true}"#,
    ));
    assert_eq!(IncludeUsageFilter.on_request_sync(&req, &mut ctx), Ok(()));
    let sent: Value = serde_json::from_slice(&ctx.outgoing_body()).unwrap_or_default();
    assert_eq!(sent["model"], "served");
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

fn response(status: u16, content_type: &str) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap_or_else(|_| unreachable!());
    resp.insert_header("content-type", content_type)
        .unwrap_or_else(|_| unreachable!());
    resp
}

#[test]
fn the_stripper_is_set_only_for_an_injected_successful_event_stream() {
    let sse = "text/event-stream; charset=utf-8";
    for (injected, status, ctype, strip) in [
        (true, 200, sse, true),
        (false, 200, sse, false),
        (true, 500, sse, false),
        (true, 200, "application/json", false),
    ] {
        let mut ctx = RequestCtx::new("r".into());
        ctx.usage_injected = injected;
        let mut resp = response(status, ctype);
        assert_eq!(IncludeUsageFilter.on_response(&mut resp, &mut ctx), Ok(()));
        assert_eq!(ctx.strip.is_some(), strip, "{injected} {status} {ctype}");
    }
}

/// Keeps every event recorded.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<UsageEvent>>);

impl UsageSink for Recorder {
    fn record(&self, event: UsageEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

impl Recorder {
    fn events(&self) -> Vec<UsageEvent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Estimates that show where they came from: input is 1000 + the body's length; output
/// is `per_char` per character plus 7.
struct Estimator {
    per_char: u64,
}

impl TokenEstimator for Estimator {
    fn input_tokens(&self, model: &str, body: &[u8]) -> u64 {
        assert_eq!(model, "gpt-4o-mini", "estimates are for the served model");
        1000 + body.len() as u64
    }
    fn output_tokens(&self, model: &str, chars: u64) -> u64 {
        assert_eq!(model, "gpt-4o-mini");
        self.per_char * chars + 7
    }
}

/// gpt-4o-mini: 150 nano-dollars per input token, 600 per output token, 75 per cached
/// read, 200 per cache write.
const MINI: Price = Price {
    input: 150,
    output: 600,
    cache_read: 75,
    cache_write: 200,
};

struct Meter {
    sink: Arc<Recorder>,
    filter: MeteringFilter,
}

fn meter(per_char: u64) -> Meter {
    let sink = Arc::new(Recorder::default());
    let prices = PriceTable::new(vec![(
        crate::pattern::ModelPattern::parse("gpt-4o-mini"),
        MINI,
    )]);
    let filter = MeteringFilter::new(
        sink.clone(),
        Arc::new(Live::new(prices)),
        Arc::new(Estimator { per_char }),
    );
    Meter { sink, filter }
}

impl Meter {
    /// Runs the response phases: the header, the body in `chunks`, then `on_done`; the
    /// one event recorded.
    fn run(&self, ctx: &mut RequestCtx, status: u16, ctype: &str, chunks: &[&str]) -> UsageEvent {
        let mut resp = response(status, ctype);
        ctx.upstream_status = Some(status);
        ctx.client_status = Some(status);
        assert_eq!(self.filter.on_response(&mut resp, ctx), Ok(()));
        for (i, c) in chunks.iter().enumerate() {
            self.filter.on_response_body(
                &Bytes::copy_from_slice(c.as_bytes()),
                i + 1 == chunks.len(),
                ctx,
            );
        }
        self.filter.on_done(ctx);
        let mut events = self.sink.events();
        assert_eq!(events.len(), 1, "one event per request");
        events.remove(0)
    }
}

const CHAT_JSON: &str = r#"{"choices":[{"message":{"content":"Hello there"}}],"usage":{"prompt_tokens":120,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":20},"completion_tokens_details":{"reasoning_tokens":4}}}"#;

#[test]
fn a_reported_json_body_is_recorded_as_reported_with_its_cost_and_every_field() {
    let m = meter(1);
    let mut ctx = routed(
        ProviderKind::OpenAi,
        Endpoint::ChatCompletions,
        r#"{"model":"fast"}"#,
    );
    let now = std::time::Instant::now();
    ctx.started = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
    ctx.first_byte_at = Some(ctx.started + Duration::from_millis(1500));
    ctx.upstream_sent_at = Some(ctx.started + Duration::from_millis(100));
    ctx.upstream_done_at = Some(ctx.started + Duration::from_millis(4900));
    ctx.requested_model = Some("fast".into());
    ctx.principal = Some(Arc::new(Principal {
        key_id: "k1".into(),
        user_id: 42,
        ..Principal::default()
    }));
    ctx.error = Some(GatewayError::UpstreamTimeout("x".into()));
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (a, b) = CHAT_JSON.split_at(40);
    let e = m.run(&mut ctx, 200, "application/json", &[a, b]);
    let usage = Usage {
        input: 100,
        output: 30,
        cache_read: 20,
        cache_write: 0,
        reasoning: 4,
    };
    assert_eq!(e.usage, usage);
    assert!(!e.estimated);
    assert!(!e.streamed);
    assert_eq!(e.cost_nanos, 100 * 150 + 30 * 600 + 20 * 75);
    assert!(e.priced);
    assert_eq!(ctx.metered_cost_nanos, e.cost_nanos);
    assert_eq!(
        ctx.metered_tokens, 150,
        "input + output + cache, not reasoning twice"
    );
    assert_eq!(e.request_id, "req-1");
    assert_eq!(e.key_id.as_deref(), Some("k1"));
    assert_eq!(e.user_id, Some(42));
    assert_eq!(e.upstream.as_deref(), Some("up-openai"));
    assert_eq!(e.model_requested.as_deref(), Some("fast"));
    assert_eq!(e.model_served.as_deref(), Some("gpt-4o-mini"));
    assert_eq!((e.dialect, e.endpoint), ("openai", "chat_completions"));
    assert_eq!(e.status, 200);
    assert_eq!(e.attempts, 1, "the first upstream of the chain");
    assert_eq!(e.error, Some("upstream_timeout"));
    assert!(
        (unix_ms - 5600..=unix_ms - 4900).contains(&e.ts_ms),
        "arrived 5 s ago: {} vs {unix_ms}",
        e.ts_ms
    );
    assert_eq!(e.ttfb_ms, Some(1500));
    assert!((5000..5500).contains(&e.total_ms), "{}", e.total_ms);
    // 5 s in all, 4.8 s of it the upstream's.
    assert!(
        (200_000..700_000).contains(&e.overhead_us),
        "{}",
        e.overhead_us
    );
}

#[test]
fn overhead_counts_an_unfinished_upstream_until_now_and_no_upstream_as_none() {
    let m = meter(1);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{}");
    let now = std::time::Instant::now();
    ctx.started = now.checked_sub(Duration::from_secs(3)).unwrap_or(now);
    ctx.upstream_sent_at = Some(ctx.started + Duration::from_millis(1000));
    let e = m.run(&mut ctx, 200, "application/json", &[CHAT_JSON]);
    assert!(
        (950_000..1_400_000).contains(&e.overhead_us),
        "{}",
        e.overhead_us
    );
    assert_eq!(e.ttfb_ms, None);

    let m = meter(1);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{}");
    ctx.started = now.checked_sub(Duration::from_secs(3)).unwrap_or(now);
    let e = m.run(&mut ctx, 200, "application/json", &[CHAT_JSON]);
    assert!(
        (3_000_000..3_400_000).contains(&e.overhead_us),
        "{}",
        e.overhead_us
    );
}

const CUT_ANTHROPIC: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello world\"}}\n\n",
);

#[test]
fn a_partial_report_keeps_its_counts_and_estimates_the_output() {
    let sse = "text/event-stream";
    // The estimate (11 chars * 3 + 7 = 40) is above the reported 1.
    let m = meter(3);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::Messages, "{}");
    let e = m.run(&mut ctx, 200, sse, &[CUT_ANTHROPIC]);
    assert_eq!(
        (e.usage.input, e.usage.cache_read, e.usage.output),
        (25, 5, 40)
    );
    assert!(e.estimated && e.streamed);
    assert_eq!((e.dialect, e.endpoint), ("openai", "messages"));
    // An estimate below the report keeps the report.
    let m = meter(0);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::Messages, "{}");
    let cut = CUT_ANTHROPIC.replace("\"output_tokens\":1", "\"output_tokens\":90");
    let e = m.run(&mut ctx, 200, sse, &[&cut]);
    assert_eq!(e.usage.output, 90);
    assert!(e.estimated);
    // The same partial report on a refused request is taken as it is.
    let m = meter(3);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::Messages, "{}");
    let e = m.run(&mut ctx, 500, sse, &[CUT_ANTHROPIC]);
    assert_eq!((e.usage.output, e.estimated), (1, false));
    // Without a route there is no model to estimate for.
    let m = meter(3);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::Messages, "{}");
    let mut resp = response(200, sse);
    assert_eq!(m.filter.on_response(&mut resp, &mut ctx), Ok(()));
    m.filter.on_response_body(
        &Bytes::from_static(CUT_ANTHROPIC.as_bytes()),
        true,
        &mut ctx,
    );
    (ctx.upstream_status, ctx.route) = (Some(200), None);
    m.filter.on_done(&mut ctx);
    let e = m.sink.events().remove(0);
    assert_eq!((e.usage.input, e.usage.output, e.estimated), (25, 1, false));
    assert_eq!(e.upstream, None);
    assert_eq!((e.cost_nanos, e.priced), (0, false));
}

#[test]
fn a_silent_success_is_estimated_and_a_silent_failure_costs_nothing() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let silent = r#"{"choices":[{"message":{"content":"Hello"}}]}"#;
    let m = meter(2);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    let e = m.run(&mut ctx, 200, "application/json", &[silent]);
    let want = Usage {
        input: 1000 + body.len() as u64,
        output: 5 * 2 + 7,
        ..Usage::default()
    };
    assert_eq!((e.usage, e.estimated), (want, true));
    assert_eq!(e.cost_nanos, want.input * 150 + want.output * 600);
    // Embeddings generate no text: the output estimate is 0.
    let m = meter(2);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::Embeddings, body);
    let e = m.run(&mut ctx, 200, "application/json", &["{\"data\":[]}"]);
    assert_eq!(
        (e.usage.input, e.usage.output),
        (1000 + body.len() as u64, 0)
    );
    assert_eq!(e.endpoint, "embeddings");
    // Not a success, or a token count: nothing to bill, and no estimate.
    for (endpoint, status) in [
        (Endpoint::ChatCompletions, 199),
        (Endpoint::ChatCompletions, 300),
        (Endpoint::ChatCompletions, 503),
        (Endpoint::CountTokens, 200),
    ] {
        let m = meter(2);
        let mut ctx = routed(ProviderKind::OpenAi, endpoint.clone(), body);
        let e = m.run(&mut ctx, status, "application/json", &[silent]);
        assert_eq!(e.usage, Usage::default(), "{endpoint:?} {status}");
        assert!(!e.estimated, "{endpoint:?} {status}");
        assert_eq!(e.status, status);
    }
    // No upstream status at all (the client left first): nothing.
    let m = meter(2);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    m.filter.on_done(&mut ctx);
    let e = m.sink.events().remove(0);
    assert_eq!(
        (e.usage, e.estimated, e.status),
        (Usage::default(), false, 0)
    );
    assert!(!e.streamed, "no meter, no stream");
}

#[test]
fn a_prompt_sent_and_left_before_any_answer_is_estimated_unless_the_upstream_failed() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let input = 1000 + body.len() as u64;
    let cases = [
        (None, Some((input, true))),
        (Some(GatewayError::ShuttingDown), Some((input, true))),
        (Some(GatewayError::UpstreamUnreachable("u".into())), None),
        (Some(GatewayError::UpstreamTimeout("u".into())), None),
    ];
    for (error, estimate) in cases {
        let m = meter(2);
        let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
        ctx.upstream_sent_at = Some(ctx.started);
        ctx.error = error.clone();
        m.filter.on_done(&mut ctx);
        let e = m.sink.events().remove(0);
        let (want, estimated) = match estimate {
            Some((input, estimated)) => (
                Usage {
                    input,
                    output: 7,
                    ..Usage::default()
                },
                estimated,
            ),
            None => (Usage::default(), false),
        };
        assert_eq!((e.usage, e.estimated), (want, estimated), "{error:?}");
        assert_eq!(e.cost_nanos, want.input * 150 + want.output * 600);
    }
    // A token count costs nothing, sent or not.
    let m = meter(2);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::CountTokens, body);
    ctx.upstream_sent_at = Some(ctx.started);
    m.filter.on_done(&mut ctx);
    let e = m.sink.events().remove(0);
    assert_eq!((e.usage, e.estimated), (Usage::default(), false));
}

#[test]
fn the_upstreams_kind_and_the_content_type_choose_how_the_body_is_read() {
    let gemini =
        r#"{"candidates":[],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}}"#;
    let m = meter(0);
    let mut ctx = routed(
        ProviderKind::Gemini,
        Endpoint::Gemini {
            model: "g".into(),
            stream: false,
        },
        "{}",
    );
    ctx.dialect = crate::endpoint::Dialect::Gemini;
    let e = m.run(&mut ctx, 200, "application/json", &[gemini]);
    assert_eq!((e.usage.input, e.usage.output, e.estimated), (9, 4, false));
    assert_eq!((e.dialect, e.endpoint), ("gemini", "generate_content"));
    // An event stream the client did not announce is still read as one.
    let sse = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    let m = meter(0);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{}");
    let e = m.run(&mut ctx, 200, "text/event-stream; charset=utf-8", &[sse]);
    assert_eq!((e.usage.input, e.usage.output, e.streamed), (8, 2, true));
    // A stream the client asked for is read as one whatever its content type says.
    let m = meter(0);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{}");
    ctx.stream = true;
    let e = m.run(&mut ctx, 200, "text/plain", &[sse]);
    assert_eq!((e.usage.output, e.streamed), (2, true));
    // Without a route the body is read as OpenAI's.
    let m = meter(0);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, "{}");
    ctx.route = None;
    let e = m.run(&mut ctx, 200, "application/json", &[CHAT_JSON]);
    assert_eq!(e.usage.input, 100);
}

#[test]
fn requests_that_are_not_model_calls_are_not_recorded() {
    for endpoint in [None, Some(Endpoint::Health), Some(Endpoint::Models)] {
        let m = meter(0);
        let mut ctx = RequestCtx::new("r".into());
        ctx.endpoint = endpoint.clone();
        m.filter.on_done(&mut ctx);
        assert!(m.sink.events().is_empty(), "{endpoint:?}");
    }
    let m = meter(0);
    let mut ctx = RequestCtx::new("r".into());
    ctx.endpoint = Some(Endpoint::ChatCompletions);
    ctx.error = Some(GatewayError::MissingKey);
    ctx.client_status = Some(401);
    m.filter.on_done(&mut ctx);
    let e = m.sink.events().remove(0);
    assert_eq!(
        (e.status, e.error, e.key_id),
        (401, Some("missing_key"), None)
    );
    assert_eq!((e.model_served, e.upstream), (None, None));
    assert_eq!(e.attempts, 0, "refused before routing");
}

#[test]
fn filters_name_themselves_and_take_part_only_in_their_phases() {
    let m = meter(0);
    assert_eq!(m.filter.name(), "metering");
    assert_eq!(m.filter.phases(), crate::Phases::NONE);
    assert_eq!(IncludeUsageFilter.name(), "include_usage");
    assert_eq!(IncludeUsageFilter.phases(), crate::Phases::REQUEST_SYNC);
}

#[tokio::test]
async fn the_clients_other_stream_options_are_kept() {
    let ctx =
        inject(r#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}"#)
            .await;
    assert_eq!(
        sent_options(&ctx),
        Some(json!({"include_obfuscation": false, "include_usage": true}))
    );
}

#[test]
fn metered_tokens_count_every_billed_bucket() {
    let m = meter(0);
    let mut ctx = routed(ProviderKind::Anthropic, Endpoint::Messages, "{}");
    let body = r#"{"usage":{"input_tokens":1,"output_tokens":20,"cache_read_input_tokens":300,"cache_creation_input_tokens":4000}}"#;
    let e = m.run(&mut ctx, 200, "application/json", &[body]);
    assert_eq!(e.usage.cache_write, 4000);
    assert_eq!(ctx.metered_tokens, 4321);
    assert_eq!(e.cost_nanos, 150 + 20 * 600 + 300 * 75 + 4000 * 200);
}

/// Without `stream_options` (the usual body) the member is added in front and every
/// other byte stays as the client sent it; the result reads as the tree edit's would.
#[tokio::test]
async fn the_usage_option_is_spliced_into_the_clients_own_bytes() {
    for (body, sent) in [
        (
            r#"{"model":"m","stream":true,"z":1, "a" : [1,2]}"#,
            r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"z":1, "a" : [1,2]}"#,
        ),
        (
            " \n{ \"model\":\"m\",\"stream\":true}",
            " \n{\"stream_options\":{\"include_usage\":true}, \"model\":\"m\",\"stream\":true}",
        ),
    ] {
        let ctx = inject(body).await;
        assert!(ctx.usage_injected, "{body}");
        assert_eq!(
            ctx.upstream_body.as_deref(),
            Some(sent.as_bytes()),
            "{body}"
        );
    }
    // An object with nothing else gets no stray comma.
    assert_eq!(
        super::with_usage_option(b" { }").as_ref(),
        br#" {"stream_options":{"include_usage":true} }"#
    );
    // A member of that name elsewhere (nested, or text) is not the top-level one.
    let body = r#"{"model":"m","stream":true,"metadata":{"stream_options":{"include_usage":true}},"x":"\"stream_options\""}"#;
    let ctx = inject(body).await;
    assert!(ctx.usage_injected);
    let sent: Value = serde_json::from_slice(ctx.upstream_body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        sent["metadata"]["stream_options"],
        json!({"include_usage": true})
    );
    // Named twice: the tree read takes the last, as before.
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"stream_options":null}"#;
    let ctx = inject(body).await;
    assert!(ctx.usage_injected);
    assert_eq!(sent_options(&ctx), Some(json!({"include_usage": true})));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_as_bad_json() {
    let req = pingora_http::RequestHeader::build("POST", b"/v1/chat/completions", None)
        .unwrap_or_else(|_| unreachable!());
    for body in [r#"{"model":"m","stream":true"#, "not json"] {
        let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
        ctx.stream = true; // as the probe would have said of a body it could not read
        let r = IncludeUsageFilter.on_request_sync(&req, &mut ctx);
        assert!(matches!(r, Err(GatewayError::BadJson(_))), "{body}: {r:?}");
        assert!(!ctx.usage_injected);
    }
    // A top-level array is not a chat request: left for the upstream to refuse.
    let ctx = inject(r#"[{"stream_options":null}]"#).await;
    assert!(!ctx.usage_injected);
    assert!(ctx.upstream_body.is_none());
}

/// A count past the bound is not believed: the request is recorded with the estimate,
/// as a silent one would be.
#[test]
fn an_implausible_report_is_replaced_by_the_estimate() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let huge = format!(
        r#"{{"choices":[{{"message":{{"content":"Hello"}}}}],"usage":{{"prompt_tokens":{},"completion_tokens":3}}}}"#,
        crate::usage::MAX_REPORTED_TOKENS + 1
    );
    let m = meter(2);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    let e = m.run(&mut ctx, 200, "application/json", &[&huge]);
    let want = Usage {
        input: 1000 + body.len() as u64,
        output: 5 * 2 + 7,
        ..Usage::default()
    };
    assert_eq!((e.usage, e.estimated), (want, true));
    // At the bound itself it is believed.
    let at = huge.replace(
        &(crate::usage::MAX_REPORTED_TOKENS + 1).to_string(),
        &crate::usage::MAX_REPORTED_TOKENS.to_string(),
    );
    let m = meter(2);
    let mut ctx = routed(ProviderKind::OpenAi, Endpoint::ChatCompletions, body);
    let e = m.run(&mut ctx, 200, "application/json", &[&at]);
    assert!(!e.estimated);
    assert_eq!(e.usage.input, crate::usage::MAX_REPORTED_TOKENS);
}
