//! Metering: feeds the response to a [`UsageMeter`] and, when the request is over,
//! produces exactly one [`UsageEvent`] with tokens and cost for the [`UsageSink`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora_http::ResponseHeader;

use crate::context::RequestCtx;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::live::Live;
use crate::providers::member::Member;
use crate::providers::Dialect;
use crate::upstream::ProviderKind;
use crate::usage::{PriceTable, Usage, UsageMeter};
use crate::Filter;

/// One proxied request, as recorded (CONTRACT §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub request_id: String,
    /// Unix milliseconds when the request arrived.
    pub ts_ms: i64,
    pub key_id: Option<String>,
    pub user_id: Option<i64>,
    pub upstream: Option<String>,
    pub model_requested: Option<String>,
    pub model_served: Option<String>,
    /// The client's dialect.
    pub dialect: &'static str,
    /// The kind of the upstream that served it (another than the dialect's when the
    /// request was translated).
    pub upstream_kind: Option<&'static str>,
    pub endpoint: &'static str,
    pub streamed: bool,
    /// What the client got (0: no response, the client went away first).
    pub status: u16,
    pub usage: Usage,
    /// True when the counts are Tollgate's estimate, not the upstream's report.
    pub estimated: bool,
    pub cost_nanos: u64,
    /// False when no price matched the served model (cost 0).
    pub priced: bool,
    pub ttfb_ms: Option<u64>,
    pub total_ms: u64,
    /// Time spent in Tollgate itself (total minus the upstream's part), microseconds.
    pub overhead_us: u64,
    /// Our error label when Tollgate answered the request itself.
    pub error: Option<&'static str>,
    /// Position in the route's fallback chain of the last upstream tried (1: the first;
    /// 0: refused before routing). Upstreams skipped for an open circuit count too.
    pub attempts: u32,
}

/// Where usage events go. `record` must not block: it runs on the request path.
pub trait UsageSink: Send + Sync {
    fn record(&self, event: UsageEvent);
}

/// Counts tokens for an estimate when the upstream reports none.
pub trait TokenEstimator: Send + Sync {
    /// Input tokens of a request body sent to `model`.
    fn input_tokens(&self, model: &str, body: &[u8]) -> u64;
    /// Output tokens for `chars` characters of generated text.
    fn output_tokens(&self, model: &str, chars: u64) -> u64;
}

/// The metering filter.
pub struct MeteringFilter {
    sink: Arc<dyn UsageSink>,
    prices: Arc<Live<PriceTable>>,
    estimator: Arc<dyn TokenEstimator>,
}

impl MeteringFilter {
    pub fn new(
        sink: Arc<dyn UsageSink>,
        prices: Arc<Live<PriceTable>>,
        estimator: Arc<dyn TokenEstimator>,
    ) -> Self {
        MeteringFilter {
            sink,
            prices,
            estimator,
        }
    }
}

/// The Unix milliseconds of the moment `since` before the wall clock's now.
fn unix_ms_at(since: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now - since.as_millis() as i64
}

impl Filter for MeteringFilter {
    fn name(&self) -> &'static str {
        "metering"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::NONE
    }

    fn on_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let kind = ctx
            .upstream()
            .map(|u| u.kind)
            .unwrap_or(ProviderKind::OpenAi);
        let event_stream = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        ctx.meter = Some(UsageMeter::new(kind, event_stream || ctx.stream));
        Ok(())
    }

    fn on_response_body(&self, chunk: &Bytes, _end_of_stream: bool, ctx: &mut RequestCtx) {
        ctx.usage_key = ctx.meter.as_mut().and_then(|m| m.feed_bytes(chunk));
    }

    fn on_done(&self, ctx: &mut RequestCtx) {
        if ctx.endpoint.as_ref().is_none_or(Endpoint::answered_here) {
            return;
        }
        let status = ctx.client_status.unwrap_or(0);
        let served = ctx.route.as_ref().map(|r| r.served_model.clone());
        let (usage, estimated) = self.usage_of(ctx, served.as_deref());
        let price = served.as_deref().and_then(|m| self.prices.load().lookup(m));
        // One monotonic read for the start's wall time, the total and the overhead.
        let now = Instant::now();
        let total = now.saturating_duration_since(ctx.started);
        let event = UsageEvent {
            request_id: ctx.request_id.clone(),
            ts_ms: unix_ms_at(total),
            key_id: ctx.principal.as_ref().map(|p| p.key_id.clone()),
            user_id: ctx.principal.as_ref().map(|p| p.user_id),
            upstream: ctx.upstream().map(|u| u.name.clone()),
            model_requested: ctx.requested_model.clone(),
            model_served: served,
            dialect: ctx.dialect.as_str(),
            upstream_kind: ctx.upstream().map(|u| u.kind.as_str()),
            endpoint: ctx
                .endpoint
                .as_ref()
                .map(Endpoint::as_str)
                .unwrap_or("unknown"),
            streamed: ctx.meter.as_ref().is_some_and(UsageMeter::is_stream),
            status,
            usage,
            estimated,
            cost_nanos: price.map(|p| p.cost(&usage)).unwrap_or(0),
            priced: price.is_some(),
            ttfb_ms: ctx
                .first_byte_at
                .map(|t| t.duration_since(ctx.started).as_millis() as u64),
            total_ms: total.as_millis() as u64,
            overhead_us: overhead_us(ctx, now),
            error: ctx.error.as_ref().map(GatewayError::metric_label),
            attempts: (ctx.attempts.upstream_index() + usize::from(ctx.route.is_some())) as u32,
        };
        ctx.metered_cost_nanos = event.cost_nanos;
        let u = &event.usage;
        ctx.metered_tokens = u.input + u.output + u.cache_read + u.cache_write;
        self.sink.record(event);
    }
}

/// The provider's report, if it arrived and is within
/// [`crate::usage::MAX_REPORTED_TOKENS`]; one that is not is logged and then ignored, so
/// the request is estimated like a silent one.
fn believable_report(ctx: &mut RequestCtx) -> Option<Usage> {
    let reported = ctx.meter.as_mut().and_then(UsageMeter::finish);
    reported.filter(|u| believable(u, ctx))
}

fn believable(u: &Usage, ctx: &RequestCtx) -> bool {
    let Some((bucket, n)) = u.implausible() else {
        return true;
    };
    log::warn!(
        "usage: upstream {} reported {n} {bucket} tokens for request {}, above the bound of {} per response: ignored, the request is recorded with an estimate",
        ctx.upstream().map_or("-", |u| u.name.as_str()),
        ctx.request_id,
        crate::usage::MAX_REPORTED_TOKENS
    );
    false
}

impl MeteringFilter {
    /// The request's usage, and whether it is Tollgate's estimate: what the meter read,
    /// completed by an estimate where a provider answered successfully without its final
    /// count (a cut stream, a client gone, a silent provider), or estimated for a prompt
    /// it was sent and whose answer nobody waited for (the client left first, or the
    /// shutdown grace ended); errors and refusals cost nothing. A partial report keeps the
    /// counts it has (input, cache) and estimates the output from the text seen.
    fn usage_of(&self, ctx: &mut RequestCtx, served: Option<&str>) -> (Usage, bool) {
        let reported = believable_report(ctx);
        let complete = ctx.meter.as_ref().is_some_and(UsageMeter::complete);
        let billable = !ctx.endpoint.as_ref().is_some_and(Endpoint::counts_tokens);
        let answered = billable && ctx.upstream_status.is_some_and(|s| (200..300).contains(&s));
        let abandoned = billable
            && ctx.upstream_status.is_none()
            && ctx.upstream_sent_at.is_some()
            && matches!(ctx.error, None | Some(GatewayError::ShuttingDown));
        // Counted only when an estimate needs it (a complete JSON report never does).
        let chars = || ctx.meter.as_ref().map(UsageMeter::text_chars).unwrap_or(0);
        let estimate_output = |model: &str| match ctx.endpoint {
            Some(Endpoint::Embeddings) => 0,
            _ => self.estimator.output_tokens(model, chars()),
        };
        match (reported, served) {
            (Some(u), _) if complete || !answered => (u, false),
            (Some(u), Some(model)) => (
                Usage {
                    output: u.output.max(estimate_output(model)),
                    ..u
                },
                true,
            ),
            (None, Some(model)) if answered || abandoned => {
                let u = Usage {
                    input: self.estimator.input_tokens(model, &ctx.body),
                    output: estimate_output(model),
                    ..Usage::default()
                };
                (u, true)
            }
            (Some(u), None) => (u, false),
            (None, _) => (Usage::default(), false),
        }
    }
}

/// Time the request spent in Tollgate itself, in microseconds: all of it but the
/// upstream's part (from sending to its last byte, or to now if that never came).
fn overhead_us(ctx: &RequestCtx, now: Instant) -> u64 {
    let total = now.saturating_duration_since(ctx.started);
    let upstream = match (ctx.upstream_sent_at, ctx.upstream_done_at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        (Some(a), None) => now.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    total.saturating_sub(upstream).as_micros() as u64
}

/// Asks OpenAI-style upstreams for the usage of streams whose client did not, and
/// arranges for that extra chunk to be removed from the client's copy (CONTRACT §3).
pub struct IncludeUsageFilter;

impl Filter for IncludeUsageFilter {
    fn name(&self) -> &'static str {
        "include_usage"
    }

    fn phases(&self) -> crate::Phases {
        crate::Phases::REQUEST_SYNC
    }

    fn on_request_sync(
        &self,
        _req: &pingora_http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let streaming_chat = matches!(
            ctx.endpoint,
            Some(Endpoint::ChatCompletions | Endpoint::Completions)
        ) && ctx.stream;
        let wanted = ctx
            .upstream()
            .is_some_and(|u| u.kind.dialect() == Dialect::OpenAi && u.include_usage);
        if !(streaming_chat && wanted) {
            return Ok(());
        }
        let sent = ctx.upstream_body.as_deref().unwrap_or(&ctx.body);
        match asked_for_usage(sent) {
            Some(Asked::Yes) => return Ok(()),
            Some(Asked::NoOptions) => {
                ctx.upstream_body = Some(with_usage_option(sent));
                ctx.usage_injected = true;
                return Ok(());
            }
            None => {}
        }
        let mut body: serde_json::Value =
            serde_json::from_slice(sent).map_err(|e| GatewayError::BadJson(e.to_string()))?;
        let Some(obj) = body.as_object_mut() else {
            return Ok(());
        };
        let asked = obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool);
        if asked == Some(true) {
            return Ok(()); // the client asked: it keeps the chunk
        }
        // Anything else (absent, `null`, `[]`, an object without the flag) is a client
        // that did not ask: the provider would send no usage, so Tollgate asks for it.
        match obj.get_mut("stream_options") {
            Some(serde_json::Value::Object(options)) => {
                options.insert("include_usage".into(), serde_json::Value::Bool(true));
            }
            _ => {
                obj.insert(
                    "stream_options".into(),
                    serde_json::json!({"include_usage": true}),
                );
            }
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| GatewayError::Internal(e.to_string()))?;
        ctx.upstream_body = Some(bytes::Bytes::from(bytes));
        ctx.usage_injected = true;
        Ok(())
    }

    fn on_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let sse = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if ctx.usage_injected && resp.status.is_success() && sse {
            ctx.strip = Some(crate::usage::strip::UsageChunkStripper::new());
        }
        Ok(())
    }
}

/// What a chat request's body says of `stream_options.include_usage`, read by a typed
/// parse that skips every other member (the body is not built into a tree).
enum Asked {
    /// `"include_usage": true`: the client keeps its usage chunk.
    Yes,
    /// No `stream_options` member: Tollgate adds one.
    NoOptions,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct TopLevel {
    stream_options: Member<StreamOptions>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct StreamOptions {
    include_usage: Option<serde_json::Value>,
}

/// The common cases, read cheaply: `None` for the rest (options of another shape, a
/// body that is not a JSON object or that the typed read refuses), which the tree
/// read handles as it always did.
fn asked_for_usage(body: &[u8]) -> Option<Asked> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    match serde_json::from_slice::<TopLevel>(body)
        .ok()?
        .stream_options
    {
        Member::Absent => Some(Asked::NoOptions),
        Member::Present(Some(o))
            if o.include_usage
                .as_ref()
                .and_then(serde_json::Value::as_bool)
                == Some(true) =>
        {
            Some(Asked::Yes)
        }
        Member::Present(_) => None,
    }
}

/// `body` (a JSON object without `stream_options`) with
/// `"stream_options":{"include_usage":true}` as its first member; every other byte as
/// the client sent it.
fn with_usage_option(body: &[u8]) -> bytes::Bytes {
    const MEMBER: &[u8] = br#""stream_options":{"include_usage":true}"#;
    let open = body.len() - body.trim_ascii_start().len() + 1;
    let (head, rest) = body.split_at(open);
    let empty = rest.trim_ascii_start().starts_with(b"}");
    let mut out = Vec::with_capacity(body.len() + MEMBER.len() + 1);
    out.extend_from_slice(head);
    out.extend_from_slice(MEMBER);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests;
