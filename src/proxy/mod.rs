//! The proxy listener: [`GatewayProxy`] implements Pingora's `ProxyHttp` by driving the
//! [`FilterChain`] from each phase.
//!
//! ```text
//! request_filter ........... endpoint from path; chain.on_request_header (auth);
//!                            body read (cap, deadline); model + stream; chain.on_request
//!                            (routing, scope). Bodies over Pingora's 64 KiB replay buffer
//!                            are forwarded from here by `large::forward` instead.
//! upstream_peer ............ the routed upstream -> HttpPeer (resolved by us, TLS + SNI)
//! upstream_request_filter .. chain.on_upstream_request (allow-list, key swap, Host, CL)
//! request_body_filter ...... swaps in the rewritten body (aliases) on the replay
//! upstream_response_filter . upstream status -> retry decision: next key, next
//!                            upstream, or deliver
//! fail_to_connect,
//! error_while_proxy ........ retry decision on a failure before the response header
//! response_filter .......... chain.on_response (drop set-cookie, add our request id)
//! response_body_filter ..... chain.on_response_body: observe bytes, never change them;
//!                            chain.on_done before the last bytes go out
//! fail_to_proxy ............ our error in the client's dialect, if nothing was sent yet
//! logging .................. chain.on_done, exactly once (if the body's end did not)
//! ```
//!
//! The retry decision is `tollgate_filters::attempts::decide`, taken and recorded by
//! `fallback::settle` for these phases and the large-body transport alike.

mod body;
pub mod connections;
mod count;
pub mod dns;
mod fallback;
mod framing;
pub mod grace;
mod head_deadline;
mod large;
mod models;
mod respond;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use tollgate_filters::attempts::{Decision, Outcome};
use tollgate_filters::live::Live;
use tollgate_filters::model_name;
use tollgate_filters::router::Router;
use tollgate_filters::translate::attempt as translation;
use tollgate_filters::upstream::UpstreamTarget;
use tollgate_filters::{Dialect, Endpoint, FilterChain, GatewayError, RequestCtx};

use crate::config::Fixed;
use dns::Resolver;

/// Request headers larger than this in total are refused (431): no LLM client needs
/// more, and a proxy that accepts anything is a cheap memory target.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Pingora replays an early-read body only up to this size (its retry buffer); 0.9.1 has
/// no hook to read a larger body early and still forward it (pingora#780), and a body
/// read past the buffer is silently lost (pingora#349, pingora#575).
const REPLAY_LIMIT: usize = 64 * 1024;
/// How long an idle pooled upstream connection is kept; below the usual 60-120 s idle
/// close of provider front ends, so that a pooled connection is rarely stale.
const POOL_IDLE: Duration = Duration::from_secs(50);

/// State shared by every request of the proxy service.
pub struct Gateway {
    pub runtime: Arc<Fixed>,
    /// Shared with each request's context, which runs its `on_done` if the request is
    /// dropped unfinished.
    pub chain: Arc<FilterChain>,
    pub resolver: Resolver,
    /// Used by the large-body transport (Pingora's proxy has its own pool).
    pub connector: Connector,
    /// The routes in force (`LiveConfig::router`, replaced on reload), for
    /// `GET /v1/models`.
    pub router: Arc<Live<Router>>,
}

impl Gateway {
    pub fn new(runtime: Arc<Fixed>, chain: FilterChain, router: Arc<Live<Router>>) -> Self {
        Gateway {
            runtime,
            chain: Arc::new(chain),
            router,
            resolver: Resolver::default(),
            connector: Connector::new(None),
        }
    }

    /// The peer for an upstream, with its address resolved by us: `HttpPeer::new` would
    /// resolve with a blocking call and panic on failure (pingora#570).
    pub async fn peer(&self, target: &UpstreamTarget) -> Result<HttpPeer, GatewayError> {
        let addr = self
            .resolver
            .resolve(&target.host, target.port, target.connect_timeout)
            .await
            .map_err(|e| {
                log::warn!("upstream {}: {e}", target.name);
                GatewayError::UpstreamUnreachable(target.name.clone())
            })?;
        let mut peer = HttpPeer::new(addr, target.tls, target.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(target.connect_timeout);
        o.total_connection_timeout = Some(target.connect_timeout * 2);
        o.read_timeout = Some(target.read_timeout);
        o.write_timeout = Some(target.read_timeout);
        o.idle_timeout = Some(POOL_IDLE);
        Ok(peer)
    }
}

/// The `ProxyHttp` implementation of the proxy listener.
pub struct GatewayProxy {
    pub gw: Arc<Gateway>,
}

/// Unique request ids: a random per-process prefix and a counter, so ids never repeat
/// across restarts and cost no syscall per request.
fn next_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random::<u64>);
    format!(
        "{prefix:016x}{:010x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// [`respond::send_error`] behind a box. `request_filter`'s future is boxed by
/// `async_trait` on every request, and a future holds room for the largest one it awaits
/// inline: the rare paths (errors, `/v1/models`, the large-body transport) are boxed
/// only when taken, so the common path does not allocate and copy their state.
async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
    keepalive: bool,
) -> Result<bool> {
    Box::pin(respond::send_error(session, ctx, err, keepalive)).await
}

/// Whether Pingora can send the request body again: it replays a body read early only
/// from its retry buffer, which holds at most 64 KiB (pingora#780). Larger bodies never
/// reach Pingora's phases (the large-body transport takes them), so this holds there.
fn replayable(session: &Session) -> bool {
    !session.as_ref().retry_buffer_truncated()
}

/// Our error for a Pingora error on the way to or from the upstream.
fn upstream_error(e: &Error, upstream: &str) -> GatewayError {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout => GatewayError::UpstreamTimeout(upstream.to_owned()),
        _ => GatewayError::UpstreamUnreachable(upstream.to_owned()),
    }
}

/// Records a response body chunk and shows it to the filters; shared by both transports.
fn observe_chunk(chain: &FilterChain, ctx: &mut RequestCtx, chunk: &Bytes, end_of_stream: bool) {
    // One clock read serves both instants: a whole answer is usually its first and
    // last chunk at once, and a read costs tens of nanoseconds on a virtual machine.
    let first = !chunk.is_empty() && ctx.first_byte_at.is_none();
    if end_of_stream || first {
        let now = Instant::now();
        if end_of_stream {
            ctx.upstream_done_at = Some(now);
        }
        if first {
            ctx.first_byte_at = Some(now);
        }
    }
    if !chunk.is_empty() {
        ctx.response_bytes += chunk.len() as u64;
        ctx.body_tail = match &chunk[..] {
            [.., a, b] => [*a, *b],
            [b] => [ctx.body_tail[1], *b],
            [] => ctx.body_tail,
        };
    }
    chain.on_response_body(chunk, end_of_stream, ctx);
    if end_of_stream {
        // The request is recorded and its limits settled now, before its last bytes are
        // written, not in `logging` after them: a client sending its next request the
        // moment it has this answer must find it counted, and its reservation given back
        // (else, near a limit, refused for a request that from where it stands is over).
        chain.on_done(ctx);
    }
}

/// Translates the request for the upstream now chosen when it speaks another dialect
/// than the client (a no-op comparison otherwise); counts what a new translation
/// dropped. Shared by both transports, before every attempt.
fn translate_for_attempt(ctx: &mut RequestCtx, query: Option<&str>) -> Result<(), GatewayError> {
    if translation::prepare(ctx, query)? {
        if let Some(t) = &ctx.translation {
            crate::metrics::translation_dropped(&t.notes.dropped);
        }
    }
    Ok(())
}

/// What the client gets of a response body chunk, after the meter saw the upstream's:
/// the translation's bytes, or the chunk less an injected usage chunk. Shared by both
/// transports.
fn deliver_chunk(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end_of_stream: bool) {
    match ctx.translation.as_mut() {
        Some(t) => translation::response_chunk(t, body, end_of_stream),
        None => strip_injected_usage(ctx, body, end_of_stream),
    }
}

/// The client's response head of a translated response (after the filters, whose meter
/// read the upstream's content type): no usage chunk to strip, the translation does.
fn translate_head(
    ctx: &mut RequestCtx,
    resp: &mut ResponseHeader,
    session: &Session,
) -> Result<(), GatewayError> {
    match ctx.translation.as_mut() {
        Some(t) => {
            ctx.strip = None;
            // Chunked for HTTP/1.1; HTTP/2 frames by itself, and an HTTP/1.0 client
            // reads to the connection's end (as `framing::for_client` arranges).
            let chunked = !session.as_downstream().is_http2()
                && session.req_header().version >= http::Version::HTTP_11;
            translation::response_head(t, resp, chunked)
        }
        None => Ok(()),
    }
}

/// Removes the usage chunk Tollgate asked for on the client's behalf (after the meter saw
/// it); shared by both transports.
fn strip_injected_usage(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end_of_stream: bool) {
    let searched = ctx.usage_key.take();
    if let Some(strip) = ctx.strip.as_mut() {
        let out = strip.process_searched(body.take().unwrap_or_default(), end_of_stream, searched);
        *body = (!out.is_empty() || end_of_stream).then_some(out);
    }
}

/// The upstream died after the response started: [`end_stream`].
pub(crate) async fn end_broken_stream(session: &mut Session, ctx: &mut RequestCtx) {
    let name = ctx.upstream().map(|u| u.name.clone()).unwrap_or_default();
    log::warn!(
        "request {}: upstream {name} broke mid-response",
        ctx.request_id
    );
    end_stream(session, ctx, GatewayError::UpstreamStreamBroken(name)).await;
}

/// Ends a response that already started, for `err`: a stream gets a final error event
/// in the client's dialect and a proper end, so SDKs report an error instead of hanging
/// or treating a truncated answer as complete. Other bodies just end.
pub(crate) async fn end_stream(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) {
    let mut tail = Vec::new();
    if let Some(strip) = ctx.strip.as_mut() {
        tail.extend_from_slice(&strip.process(Bytes::new(), true));
    }
    let translated = ctx
        .translation
        .as_mut()
        .and_then(|t| translation::broken_stream(t, &err));
    if let Some(end) = translated {
        // The translator's own output ends on an event boundary: its close is whole.
        tail.extend_from_slice(&end);
    } else if ctx.meter.as_ref().is_some_and(|m| m.is_stream()) {
        let last = match tail.as_slice() {
            [.., a, b] => [*a, *b],
            _ => ctx.body_tail,
        };
        if last != *b"\n\n" {
            // cut inside an event: close it, so the error is an event of its own
            tail.extend_from_slice(b"\n\n");
        }
        tail.extend_from_slice(&err.sse_event(ctx.dialect));
    }
    ctx.error = Some(err);
    let tail = (!tail.is_empty()).then(|| Bytes::from(tail));
    if let Err(we) = session.write_response_body(tail, true).await {
        log::debug!("request {}: could not end the stream: {we}", ctx.request_id);
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        crate::metrics::request_started();
        let mut ctx = RequestCtx::new(next_request_id());
        ctx.finish_on_drop = Some(self.gw.chain.clone());
        ctx
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.dialect = Dialect::of_request(req);
        let endpoint = match Endpoint::from_request(req.method.as_str(), req.uri.path()) {
            Ok(e) => e,
            Err(rejection) => {
                let err = rejection.into_error(req.uri.path());
                return refuse(session, ctx, err, false).await;
            }
        };
        ctx.endpoint = Some(endpoint.clone());
        let header_bytes: usize = req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            return refuse(
                session,
                ctx,
                GatewayError::HeadersTooLarge(MAX_HEADER_BYTES),
                false,
            )
            .await;
        }
        if let Err(e) = framing::check_request(session) {
            return refuse(session, ctx, e, false).await;
        }
        if endpoint == Endpoint::Health || endpoint == Endpoint::Probe {
            let body = Bytes::from_static(b"{\"status\":\"ok\"}");
            respond::send_json(session, ctx, 200, body, &[], true).await?;
            return Ok(true);
        }

        let gw = &self.gw;
        if let Err(e) = gw.chain.on_request_header(session.req_header(), ctx).await {
            return refuse(session, ctx, e, false).await;
        }
        if endpoint.answered_here() {
            return Box::pin(models::answer(gw, session, ctx)).await;
        }

        let rt = &gw.runtime;
        framing::continue_if_expected(session).await?;
        ctx.body = match body::read_body(session, rt.max_body_bytes, ctx.started + rt.body_timeout)
            .await
        {
            Ok(b) => b,
            Err(body::BodyError::Refused(e)) => return refuse(session, ctx, e, false).await,
            Err(body::BodyError::Client(e)) => return Err(e),
        };
        let probed = match body::probe(&ctx.body) {
            Ok(p) => p,
            Err(e) => return refuse(session, ctx, e, true).await,
        };
        if let Some(Err(e)) = probed.model.as_deref().map(model_name::check_model) {
            return refuse(session, ctx, e, true).await;
        }
        ctx.max_output = probed.max_output;
        (ctx.requested_model, ctx.stream) = match endpoint.model_in_path() {
            Some((model, stream)) => (Some(model.to_owned()), stream),
            None => (probed.model, probed.stream),
        };
        if let Err(e) = gw.chain.on_request(session.req_header(), ctx).await {
            return refuse(session, ctx, e, true).await;
        }
        if count::answered_here(ctx) {
            return Box::pin(count::answer(session, ctx)).await;
        }
        if let Err(e) = translate_for_attempt(ctx, session.req_header().uri.query()) {
            return refuse(session, ctx, e, true).await;
        }
        if ctx.body.len() > REPLAY_LIMIT || session.retry_buffer_truncated() {
            return Box::pin(large::forward(gw, session, ctx)).await;
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        loop {
            let target = ctx
                .upstream()
                .cloned()
                .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
            let e = match self.gw.peer(&target).await {
                Ok(peer) => return Ok(Box::new(peer)),
                Err(e) => e,
            };
            if fallback::settle(ctx, &Outcome::Unresolved, replayable(session)).resends() {
                continue;
            }
            let msg = e.to_string();
            ctx.error = Some(e);
            return Err(Error::explain(ErrorType::ConnectError, msg));
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_sent_at.get_or_insert_with(Instant::now);
        tollgate_filters::headers::drop_name_case_request(upstream_request);
        let prepared = translate_for_attempt(ctx, upstream_request.uri.query())
            .and_then(|()| self.gw.chain.on_upstream_request(upstream_request, ctx))
            .and_then(|()| match (&ctx.translation, ctx.upstream()) {
                (Some(t), Some(u)) => translation::request_head(t, upstream_request, &u.base_path),
                _ => Ok(()),
            });
        prepared.map_err(|e| {
            let msg = e.to_string();
            ctx.error = Some(e);
            Error::explain(ErrorType::InternalError, msg)
        })
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The whole body was read in request_filter, so Pingora replays it here in one
        // piece (and again on a retry): swap in the rewritten body, never taking it.
        if end_of_stream {
            if let Some(t) = &ctx.translation {
                *body = Some(t.body.clone());
            } else if let Some(rewritten) = &ctx.upstream_body {
                *body = Some(rewritten.clone());
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        let name = ctx.upstream().map(|u| u.name.as_str()).unwrap_or_default();
        if let Some(e) = framing::refused_answer(upstream_response, name) {
            let msg = e.to_string();
            ctx.error = Some(e);
            return Err(Error::explain(ErrorType::InvalidHTTPHeader, msg));
        }
        let outcome = Outcome::answered(upstream_response);
        let why = match fallback::settle(ctx, &outcome, replayable(session)) {
            Decision::NextKey => "retrying with the upstream's next key",
            Decision::NextUpstream { .. } => "upstream status moves to the next upstream",
            _ => {
                ctx.upstream_status = Some(status);
                return Ok(());
            }
        };
        // Nothing has reached the client yet: this answer is dropped (and its connection
        // with it, not pooled: pingora#866) and error_while_proxy has Pingora send the
        // request again, where the cursor now points.
        ctx.attempts.defer_resend();
        Err(Error::explain(ErrorType::HTTPStatus(status), why))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Pingora retries a failed connect only when told to (`set_retry`).
        let outcome = Outcome::connect_failed(&e);
        let resend =
            ctx.error.is_none() && fallback::settle(ctx, &outcome, replayable(session)).resends();
        e.set_retry(resend);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.error.is_some() || e.esource() == &ErrorSource::Downstream {
            // Our own refusal of the answer, or the client is gone: nothing is resent.
            e.set_retry(false);
            return e;
        }
        let can_resend = replayable(session) && framing::final_response(session).is_none();
        if ctx.attempts.take_deferred_resend() {
            e.set_retry(can_resend);
            return e;
        }
        if ctx.upstream_status.is_some() {
            e.set_retry(false); // the answer is on its way: nothing is tried again
            return e;
        }
        // Pingora's own policy never retries a POST, so a pooled connection the upstream
        // had closed would be a 502 (praxis-proxy/praxis#1196); and it trusts the h2
        // client's `retry` marks, which replay POSTs (pingora#979). We decide ourselves.
        let outcome = Outcome::broken(&e, client_reused);
        e.set_retry(fallback::settle(ctx, &outcome, can_resend).resends());
        e
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        tollgate_filters::headers::drop_name_case_response(upstream_response);
        framing::for_client(session.req_header(), upstream_response);
        self.gw
            .chain
            .on_response(upstream_response, ctx)
            .and_then(|()| translate_head(ctx, upstream_response, session))
            .map_err(|e| {
                let msg = e.to_string();
                ctx.error = Some(e);
                Error::explain(ErrorType::InternalError, msg)
            })?;
        // What the usage event records if it is written at the end of the body.
        ctx.client_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        // `Bytes::new()` is a static empty slice: no allocation.
        let empty = Bytes::new();
        observe_chunk(
            &self.gw.chain,
            ctx,
            body.as_ref().unwrap_or(&empty),
            end_of_stream,
        );
        deliver_chunk(ctx, body, end_of_stream);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let nothing = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if framing::final_response(session).is_some() {
            if e.esource() == &ErrorSource::Upstream {
                end_broken_stream(session, ctx).await;
            } else if grace::expired() {
                end_stream(session, ctx, GatewayError::ShuttingDown).await;
            }
            return nothing;
        }
        let err = match (ctx.error.clone(), e.esource()) {
            (Some(err), _) => err,
            // The read that failed is the end of the grace period (`grace`).
            (None, ErrorSource::Downstream) if grace::expired() => GatewayError::ShuttingDown,
            (None, ErrorSource::Downstream) => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                    return nothing
                }
                ErrorType::ReadTimedout => GatewayError::BodyTimeout,
                _ => GatewayError::BadRequest("malformed request".into()),
            },
            (None, ErrorSource::Upstream) => {
                let name = ctx.upstream().map(|u| u.name.clone()).unwrap_or_default();
                upstream_error(e, &name)
            }
            (None, _) => GatewayError::Internal(e.etype().as_str().to_owned()),
        };
        respond::log_refusal(&err, ctx);
        let code = err.status();
        let body = err.body(ctx.dialect);
        ctx.error = Some(err);
        let header = ResponseHeader::build(code, Some(3)).and_then(|mut h| {
            h.insert_header("content-type", "application/json")?;
            h.insert_header("content-length", body.len().to_string())?;
            h.insert_header(
                tollgate_filters::headers::REQUEST_ID_HEADER,
                ctx.request_id.as_str(),
            )?;
            Ok(h)
        });
        if let Ok(h) = header {
            if let Err(we) = session
                .as_downstream_mut()
                .write_error_response(h, body)
                .await
            {
                log::debug!("request {}: could not send the error: {we}", ctx.request_id);
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = framing::final_response(session)
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        ctx.client_status = Some(status);
        self.gw.chain.on_done(ctx);
        crate::metrics::request_finished();
        // One access line per request, on its own target so operators can route or
        // silence it (RUST_LOG=tollgate::access=off). Never a credential or the query.
        log::info!(
            target: "tollgate::access",
            "id={} method={} path={} status={} key={} user={} model={:?} served={:?} upstream={} attempts={} tokens={} cost_nanos={} bytes={} ttfb_ms={} ms={}{}",
            ctx.request_id,
            session.req_header().method,
            respond::loggable_path(session.req_header().uri.path()),
            status,
            ctx.principal.as_ref().map(|p| p.key_id.as_str()).unwrap_or("-"),
            ctx.principal.as_ref().map(|p| p.user.as_str()).unwrap_or("-"),
            ctx.requested_model.as_deref().unwrap_or("-"),
            ctx.route.as_ref().map(|r| r.served_model.as_str()).unwrap_or("-"),
            ctx.upstream().map(|u| u.name.as_str()).unwrap_or("-"),
            ctx.attempts.upstream_index() + usize::from(ctx.route.is_some()),
            ctx.metered_tokens,
            ctx.metered_cost_nanos,
            ctx.response_bytes,
            ctx.first_byte_at.map(|t| t.duration_since(ctx.started).as_millis()).unwrap_or(0),
            ctx.started.elapsed().as_millis(),
            ctx.error.as_ref().map(|e| format!(" error={}", e.metric_label())).unwrap_or_default(),
        );
    }

    /// Pingora's error log line for a request. Never the query string: Gemini clients
    /// may put their key there.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        let path = respond::loggable_path(req.uri.path());
        format!("{} {path} ({})", req.method, ctx.request_id)
    }
}
