//! The large-body transport: a request whose body is past Pingora 0.9.1's 64 KiB replay
//! buffer is forwarded from `request_filter` with Pingora's `Connector` (0.9.1 has no
//! hook to read a larger body early and still have the proxy phases forward it:
//! pingora#780), driving the same filter chain and acting on the same retry decision
//! (`fallback::settle`) as the proxy phases. A client that leaves before the answer, and
//! the end of the shutdown grace period, end the exchange as they do the proxy phases'.

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::Result;
use tollgate_filters::attempts::Outcome;
use tollgate_filters::{GatewayError, RequestCtx};

use tollgate_filters::translate::attempt as translation;

use super::{
    deliver_chunk, fallback, framing, grace, observe_chunk, respond, translate_for_attempt,
    translate_head, upstream_error, Gateway, POOL_IDLE,
};

/// An upstream exchange that got as far as a response header.
struct Answered {
    up: HttpSession,
    peer: HttpPeer,
    resp: ResponseHeader,
}

/// Why an attempt got no response header.
enum Failed {
    /// The upstream could not be reached or broke the exchange: the outcome for the
    /// retry decision, and the error the client gets if nothing more is tried.
    Upstream(Outcome, GatewayError),
    /// Our own failure (no upstream chosen, a filter's error): answered at once.
    Ours(GatewayError),
}

/// One attempt: resolve, connect, send, read the response header.
async fn attempt(
    gw: &Gateway,
    client_req: &RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<Answered, Failed> {
    let target = ctx
        .upstream()
        .cloned()
        .ok_or_else(|| Failed::Ours(GatewayError::Internal("no upstream chosen".into())))?;
    let peer = gw
        .peer(&target)
        .await
        .map_err(|e| Failed::Upstream(Outcome::Unresolved, e))?;
    let mut req = client_req.clone();
    translate_for_attempt(ctx, req.uri.query()).map_err(Failed::Ours)?;
    gw.chain
        .on_upstream_request(&mut req, ctx)
        .map_err(Failed::Ours)?;
    if let Some(t) = &ctx.translation {
        translation::request_head(t, &mut req, &target.base_path).map_err(Failed::Ours)?;
    }
    let upstream_failed =
        |outcome, e: &pingora::Error| Failed::Upstream(outcome, upstream_error(e, &target.name));
    let (mut up, _reused) = gw
        .connector
        .get_http_session(&peer)
        .await
        .map_err(|e| upstream_failed(Outcome::connect_failed(&e), &e))?;
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
    // NOTE: a stale pooled connection is judged as any broken exchange here (moved on, not
    // retried on a fresh connection as the proxy phases do), as this transport always
    // has; passing the connection's `reused` instead of `false` would change that.
    sent.map_err(|e| upstream_failed(Outcome::broken(&e, false), &e))?;
    let resp = up
        .response_header()
        .cloned()
        .ok_or_else(|| Failed::Ours(GatewayError::UpstreamUnreachable(target.name.clone())))?;
    Ok(Answered { up, peer, resp })
}

/// Sends the request upstream (along the fallback chain, as the retry decision says) and
/// relays the response; returns `Ok(true)` ("response written") like `request_filter`.
/// Errors before the response header are answered in the client's dialect; after it,
/// the stream ends. The body is in memory and nothing has reached the client until the
/// loop ends, so the request can always be sent again.
pub async fn forward(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let client_req = session.req_header().clone();
    let answered = tokio::select! {
        a = answer(gw, &client_req, ctx) => Some(a),
        () = left_early(session) => None,
    };
    let Answered { up, peer, mut resp } = match answered {
        Some(Ok(a)) => a,
        Some(Err(e)) => return respond::send_error(session, ctx, e, true).await,
        None if grace::expired() => {
            return respond::send_error(session, ctx, GatewayError::ShuttingDown, false).await
        }
        // The client is gone; the upstream call was dropped with the wait.
        None => return Ok(true),
    };
    let name = ctx.upstream().map(|u| u.name.as_str()).unwrap_or_default();
    if let Some(e) = framing::refused_answer(&resp, name) {
        return respond::send_error(session, ctx, e, false).await;
    }
    ctx.upstream_status = Some(resp.status.as_u16());
    framing::for_client(session.req_header(), &mut resp);
    let head = gw
        .chain
        .on_response(&mut resp, ctx)
        .and_then(|()| translate_head(ctx, &mut resp, session));
    if let Err(e) = head {
        return respond::send_error(session, ctx, e, true).await;
    }
    ctx.client_status = Some(resp.status.as_u16());
    session.write_response_header(Box::new(resp), false).await?;
    relay_body(&gw.connector, up, peer, session, gw, ctx).await
}

/// Tries the route's upstreams as the retry decision says, until one answers with a
/// header or none is left (the error the client gets).
async fn answer(
    gw: &Gateway,
    client_req: &RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<Answered, GatewayError> {
    loop {
        let (outcome, answer) = match attempt(gw, client_req, ctx).await {
            Ok(a) => (Outcome::answered(&a.resp), Ok(a)),
            Err(Failed::Upstream(outcome, e)) => (outcome, Err(e)),
            Err(Failed::Ours(e)) => return Err(e),
        };
        if fallback::settle(ctx, &outcome, true).resends() {
            if let Err(e) = answer {
                log::debug!("request {}: {e}", ctx.request_id);
            }
            continue;
        }
        return answer;
    }
}

/// Resolves when the client leaves (or the shutdown grace period ends: the read fails)
/// while the upstream has not answered. The body was read whole, so any event on the
/// connection ends the wait.
async fn left_early(session: &mut Session) {
    if session
        .as_downstream_mut()
        .read_body_or_idle(true)
        .await
        .is_ok()
    {
        std::future::pending::<()>().await;
    }
}

async fn relay_body(
    connector: &Connector,
    mut up: HttpSession,
    peer: HttpPeer,
    session: &mut Session,
    gw: &Gateway,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let mut grace = grace::Watch::default();
    loop {
        let read = tokio::select! {
            read = up.read_response_body() => read,
            () = grace.expiry() => {
                super::end_stream(session, ctx, GatewayError::ShuttingDown).await;
                return Ok(true);
            }
        };
        match read {
            Ok(Some(chunk)) => {
                observe_chunk(&gw.chain, ctx, &chunk, false);
                let mut body = Some(chunk);
                deliver_chunk(ctx, &mut body, false);
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
    observe_chunk(&gw.chain, ctx, &Bytes::new(), true);
    let mut rest = None;
    deliver_chunk(ctx, &mut rest, true);
    session
        .write_response_body(rest.filter(|b| !b.is_empty()), true)
        .await?;
    connector
        .release_http_session(up, &peer, Some(POOL_IDLE))
        .await;
    Ok(true)
}
