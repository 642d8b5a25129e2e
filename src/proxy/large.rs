//! The large-body transport: a request whose body is past Pingora 0.9.1's 64 KiB replay
//! buffer is forwarded from `request_filter` with Pingora's `Connector`, driving the same
//! filter chain and the same fallback rules as the proxy phases (see
//! ../shared/PINGORA_NOTES.md §2, strategy C).

use pingora::connectors::http::Connector;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::Result;
use tollgate_filters::{GatewayError, RequestCtx};

use super::{
    fallback, observe_chunk, respond, strip_injected_usage, upstream_error, Gateway, POOL_IDLE,
};

/// An upstream exchange that got as far as a response header.
struct Answered {
    up: HttpSession,
    peer: HttpPeer,
    resp: ResponseHeader,
}

/// One attempt: connect, send, read the response header.
async fn attempt(
    gw: &Gateway,
    session: &Session,
    ctx: &mut RequestCtx,
) -> Result<Answered, (GatewayError, Option<Box<pingora::Error>>)> {
    let target = ctx
        .upstream()
        .cloned()
        .ok_or((GatewayError::Internal("no upstream chosen".into()), None))?;
    let peer = gw.peer(&target).await.map_err(|e| (e, None))?;
    let mut req = session.req_header().clone();
    gw.chain
        .on_upstream_request(&mut req, ctx)
        .map_err(|e| (e, None))?;
    let (mut up, _reused) = gw
        .connector
        .get_http_session(&peer)
        .await
        .map_err(|e| (upstream_error(&e, &target.name), Some(e)))?;
    up.set_read_timeout(Some(target.read_timeout));
    up.set_write_timeout(Some(target.read_timeout));
    ctx.upstream_sent_at
        .get_or_insert_with(std::time::Instant::now);
    let body = ctx.outgoing_body();
    let sent = async {
        up.write_request_header(Box::new(req)).await?;
        up.write_request_body(body, true).await?;
        up.finish_request_body().await?;
        up.read_response_header().await
    }
    .await;
    if let Err(e) = sent {
        return Err((upstream_error(&e, &target.name), Some(e)));
    }
    let resp = up
        .response_header()
        .cloned()
        .ok_or((GatewayError::UpstreamUnreachable(target.name.clone()), None))?;
    Ok(Answered { up, peer, resp })
}

/// Sends the request upstream (along the fallback chain) and relays the response;
/// returns `Ok(true)` ("response written") like `request_filter`. Errors before the
/// response header are answered in the client's dialect; after it, the stream ends.
pub async fn forward(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let Answered { up, peer, mut resp } = loop {
        let answer = attempt(gw, session, ctx).await;
        if let Ok(a) = &answer {
            if a.resp.status.as_u16() == 429 {
                fallback::rest_key_after_429(ctx, &a.resp);
            }
        }
        match answer {
            Ok(a)
                if a.resp.status.as_u16() == 429
                    && ctx.key_index.is_some()
                    && ctx.can_try_another_key() =>
            {
                fallback::record_failure(ctx);
                let name = ctx.upstream().map(|u| u.name.clone()).unwrap_or_default();
                crate::metrics::upstream_attempt_failed(&name, "429_key");
            }
            Ok(a)
                if fallback::status_falls_back(a.resp.status.as_u16())
                    && ctx.has_next_upstream() =>
            {
                let why = if a.resp.status.as_u16() == 429 {
                    "429"
                } else {
                    "5xx"
                };
                fallback::try_next(ctx, why);
            }
            Ok(a) => {
                if fallback::status_falls_back(a.resp.status.as_u16()) {
                    fallback::record_failure(ctx);
                } else {
                    fallback::record_success(ctx);
                }
                break a;
            }
            Err((e, Some(pe)))
                if fallback::error_falls_back(&pe)
                    && fallback::try_next(ctx, fallback::reason(&pe)) =>
            {
                log::debug!("request {}: {e}", ctx.request_id);
            }
            Err((e @ GatewayError::UpstreamUnreachable(_), None))
                if fallback::try_next(ctx, "dns") =>
            {
                log::debug!("request {}: {e}", ctx.request_id);
            }
            Err((e, _)) => return respond::send_error(session, ctx, e, true).await,
        }
    };
    ctx.upstream_status = Some(resp.status.as_u16());
    if let Err(e) = gw.chain.on_response(&mut resp, ctx) {
        return respond::send_error(session, ctx, e, true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
    relay_body(&gw.connector, up, peer, session, gw, ctx).await
}

async fn relay_body(
    connector: &Connector,
    mut up: HttpSession,
    peer: HttpPeer,
    session: &mut Session,
    gw: &Gateway,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    loop {
        match up.read_response_body().await {
            Ok(Some(chunk)) => {
                observe_chunk(&gw.chain, ctx, &chunk, false);
                let mut body = Some(chunk);
                strip_injected_usage(ctx, &mut body, false);
                if body.is_some() {
                    session.write_response_body(body, false).await?;
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::debug!("request {}: {e}", ctx.request_id);
                super::end_broken_stream(session, ctx).await;
                return Ok(true);
            }
        }
    }
    observe_chunk(&gw.chain, ctx, &[], true);
    let mut rest = None;
    strip_injected_usage(ctx, &mut rest, true);
    session
        .write_response_body(rest.filter(|b| !b.is_empty()), true)
        .await?;
    connector
        .release_http_session(up, &peer, Some(POOL_IDLE))
        .await;
    Ok(true)
}
