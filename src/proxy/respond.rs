//! Responses the gateway writes itself: errors in the client's dialect and small JSON
//! documents (`/healthz`, `/v1/models`).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use tollgate_filters::headers::REQUEST_ID_HEADER;
use tollgate_filters::{GatewayError, RequestCtx};

/// Writes a complete JSON response. `keepalive: false` closes the connection afterwards
/// (used when the request body was not read, so it cannot be drained cheaply).
pub async fn send_json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    extra: &[(&'static str, String)],
    keepalive: bool,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    for (k, v) in extra {
        resp.insert_header(*k, v.as_str())?;
    }
    if !keepalive {
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Answers `err` in the client's dialect and records it in `ctx`. Returns `Ok(true)`, the
/// value `request_filter` returns for "response written".
pub async fn send_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
    keepalive: bool,
) -> Result<bool> {
    log_refusal(&err, ctx);
    let body = err.body(ctx.dialect);
    let status = err.status();
    let extra: Vec<(&'static str, String)> = err
        .retry_after()
        .map(|s| ("retry-after", s.to_string()))
        .into_iter()
        .collect();
    ctx.error = Some(err);
    send_json(session, ctx, status, body, &extra, keepalive).await?;
    Ok(true)
}

/// Auth failures at WARN (someone is knocking), client mistakes at DEBUG, our own
/// failures at ERROR. Never the credential itself.
pub fn log_refusal(err: &GatewayError, ctx: &RequestCtx) {
    let id = &ctx.request_id;
    match err.status() {
        401 | 403 => log::warn!("request {id}: {err}"),
        s if s >= 500 => log::error!("request {id}: {err}"),
        _ => log::debug!("request {id}: {err}"),
    }
}

/// How much of a request path a log line shows: a path may carry a client-chosen model
/// (Gemini) of any length the head allows.
const LOGGED_PATH_CHARS: usize = 256;

/// `path` for a log line: whole when short, else its first [`LOGGED_PATH_CHARS`]
/// characters and a mark.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.char_indices().nth(LOGGED_PATH_CHARS) {
        None => std::borrow::Cow::Borrowed(path),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}…", &path[..cut])),
    }
}
