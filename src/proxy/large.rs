//! The large-body transport: a request whose body is past Pingora 0.9.1's 64 KiB replay
//! buffer is forwarded from `request_filter` with Pingora's `Connector`, driving the same
//! filter chain as the proxy phases (see ../shared/PINGORA_NOTES.md §2, strategy C).

use pingora::proxy::Session;
use pingora::Result;
use tollgate_filters::{GatewayError, RequestCtx};

use super::{observe_chunk, respond, strip_injected_usage, upstream_error, Gateway, POOL_IDLE};

/// Sends the request upstream and relays the response; returns `Ok(true)` ("response
/// written") like `request_filter`. Errors before the response header are answered in the
/// client's dialect; after it, the stream simply ends.
pub async fn forward(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let Some(target) = ctx.upstream().cloned() else {
        return respond::send_error(
            session,
            ctx,
            GatewayError::Internal("no upstream chosen".into()),
            true,
        )
        .await;
    };
    let peer = match gw.peer(&target).await {
        Ok(p) => p,
        Err(e) => return respond::send_error(session, ctx, e, true).await,
    };
    let mut req = session.req_header().clone();
    if let Err(e) = gw.chain.on_upstream_request(&mut req, ctx) {
        return respond::send_error(session, ctx, e, true).await;
    }
    let mut up = match gw.connector.get_http_session(&peer).await {
        Ok((up, _reused)) => up,
        Err(e) => {
            return respond::send_error(session, ctx, upstream_error(&e, &target.name), true).await
        }
    };
    up.set_read_timeout(Some(target.read_timeout));
    up.set_write_timeout(Some(target.read_timeout));
    let body = ctx.outgoing_body();
    let sent = async {
        up.write_request_header(Box::new(req)).await?;
        up.write_request_body(body, true).await?;
        up.finish_request_body().await?;
        up.read_response_header().await
    }
    .await;
    if let Err(e) = sent {
        return respond::send_error(session, ctx, upstream_error(&e, &target.name), true).await;
    }
    let Some(mut resp) = up.response_header().cloned() else {
        let e = GatewayError::UpstreamUnreachable(target.name.clone());
        return respond::send_error(session, ctx, e, true).await;
    };
    ctx.upstream_status = Some(resp.status.as_u16());
    if let Err(e) = gw.chain.on_response(&mut resp, ctx) {
        return respond::send_error(session, ctx, e, true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
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
                log::warn!(
                    "request {}: upstream {} broke mid-response: {e}",
                    ctx.request_id,
                    target.name
                );
                return Err(e);
            }
        }
    }
    observe_chunk(&gw.chain, ctx, &[], true);
    let mut rest = None;
    strip_injected_usage(ctx, &mut rest, true);
    session
        .write_response_body(rest.filter(|b| !b.is_empty()), true)
        .await?;
    gw.connector
        .release_http_session(up, &peer, Some(POOL_IDLE))
        .await;
    Ok(true)
}
