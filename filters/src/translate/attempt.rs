//! The proxy's side of a translation: what it keeps per request ([`Translation`]) and
//! the four calls both transports make. [`prepare`] runs after routing and again before
//! each attempt, so that a fallback to an upstream of another kind is translated for
//! that attempt; same-dialect traffic costs it one comparison and nothing else. The
//! other three rewrite the upstream request head, the client's response head and each
//! response body chunk (after the meter has read the upstream's own bytes).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};

use super::errors::UPSTREAM_STATUS_HEADER;
use super::request::{translate, ClientRequest, HeaderChanges};
use super::{plan, Notes, Pair, ResponseTranslator, TranslateError};
use crate::context::RequestCtx;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;

/// A request translated for the upstream of the current attempt.
#[derive(Debug)]
pub struct Translation {
    pub pair: Pair,
    /// The upstream body.
    pub body: Bytes,
    /// The upstream path (after the upstream's base path), with its query.
    pub path: String,
    pub headers: HeaderChanges,
    /// What the translation dropped (for `tollgate_translation_dropped_total`).
    pub notes: Notes,
    pub response: ResponseTranslator,
}

impl From<TranslateError> for GatewayError {
    fn from(e: TranslateError) -> GatewayError {
        GatewayError::Untranslatable {
            param: e.field().unwrap_or_default().to_owned(),
            message: e.to_string(),
            invalid: matches!(e, TranslateError::Invalid { .. }),
        }
    }
}

/// Makes `ctx.translation` fit the upstream now chosen: none when it speaks the client's
/// wire, else the request translated for it (kept when the pair did not change). `query`
/// is the client's (a Gemini client asks for SSE with `alt=sse`). Returns true when a
/// new translation was made (its drops are to be counted once).
pub fn prepare(ctx: &mut RequestCtx, query: Option<&str>) -> Result<bool, GatewayError> {
    let (Some(endpoint), Some(target)) = (ctx.endpoint.as_ref(), ctx.upstream()) else {
        return Ok(false);
    };
    let pair = plan(endpoint, target.kind, target.responses_api);
    if ctx.translation.as_ref().map(|t| t.pair) == pair {
        return Ok(false);
    }
    let Some(pair) = pair else {
        ctx.translation = None;
        return Ok(false);
    };
    let served = ctx.route.as_ref().map_or("", |r| r.served_model.as_str());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let req = ClientRequest {
        body: &ctx.body,
        query,
        gemini_stream: matches!(endpoint, Endpoint::Gemini { stream: true, .. }),
        served_model: served,
        now,
    };
    let t = translate(pair, req, &target.translation)?;
    ctx.translation = Some(Box::new(Translation {
        pair,
        body: Bytes::from(t.body),
        path: t.path,
        headers: t.headers,
        notes: t.notes,
        response: t.response,
    }));
    Ok(true)
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

/// The upstream request head in the target dialect: its path (the client's query does
/// not follow: the target's own is in the path), its API headers. `Content-Length` was
/// set from the translated body by the header filter; the credential is already the
/// upstream kind's.
pub fn request_head(
    t: &Translation,
    up: &mut RequestHeader,
    base_path: &str,
) -> Result<(), GatewayError> {
    // Pingora's removal rebuilds its name-case map: a lookup first is far cheaper,
    // and most of these headers are absent.
    for name in t.headers.remove.iter().filter(|n| **n != "content-length") {
        if up.headers.contains_key(*name) {
            up.remove_header(*name);
        }
    }
    for (name, value) in &t.headers.set {
        // Usually the client sent the same (`content-type: application/json`): an
        // insert into Pingora's header maps costs more than the comparison.
        if only_value_is(&up.headers, name, value) {
            continue;
        }
        up.insert_header(*name, *value).map_err(internal)?;
    }
    let uri: http::Uri = format!("{base_path}{}", t.path).parse().map_err(internal)?;
    up.set_uri(uri);
    if up.method != http::Method::POST {
        up.set_method(http::Method::POST);
    }
    Ok(())
}

/// Whether `name` has exactly one value in `headers`, `value`.
fn only_value_is(headers: &http::HeaderMap, name: &str, value: &str) -> bool {
    let mut values = headers.get_all(name).iter();
    values.next().is_some_and(|v| v == value) && values.next().is_none()
}

/// The client's response head: the status (an upstream error's, as the client's
/// dialect reports it, with the upstream's own in `x-tollgate-upstream-status`), the
/// client's content type, and no `Content-Length` (the body changes length):
/// `chunked` asks for chunked framing (HTTP/1; HTTP/2 frames by itself). The upstream's
/// `retry-after` stays.
pub fn response_head(
    t: &mut Translation,
    resp: &mut ResponseHeader,
    chunked: bool,
) -> Result<(), GatewayError> {
    let status = resp.status.as_u16();
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let head = t.response.head(status, content_type);
    // JSON answered as JSON keeps the upstream's own value (when it is exactly that).
    let same_type = only_value_is(&resp.headers, "content-type", head.content_type);
    if head.status != status {
        resp.set_status(head.status).map_err(internal)?;
    }
    if head.error {
        resp.insert_header(UPSTREAM_STATUS_HEADER, status.to_string())
            .map_err(internal)?;
    }
    if !same_type {
        resp.insert_header(http::header::CONTENT_TYPE, head.content_type)
            .map_err(internal)?;
    }
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if chunked {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(internal)?;
    }
    Ok(())
}

/// The upstream broke after the response started, for `err`: the client's bytes that
/// end a translated stream the way the native path ends a broken stream of the client's
/// dialect (its error event, after an open Anthropic content block is closed; a
/// Responses client gets `response.failed`). `None` when the response is not a
/// translated stream (a whole answer just ends, as natively).
pub fn broken_stream(t: &mut Translation, err: &GatewayError) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    t.response.broken(err, &mut out).then_some(out)
}

/// One upstream body chunk, replaced by the client's bytes it yields (none yet: `None`,
/// except at the end, which must be passed on).
pub fn response_chunk(t: &mut Translation, body: &mut Option<Bytes>, end_of_stream: bool) {
    let mut out = Vec::new();
    t.response
        .body(body.as_deref().unwrap_or_default(), end_of_stream, &mut out);
    *body = (!out.is_empty() || end_of_stream).then(|| Bytes::from(out));
}
