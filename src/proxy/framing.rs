//! HTTP/1 framing rules the gateway adds to Pingora's, for both transports:
//!
//! - a request with both `Content-Length` and `Transfer-Encoding` is refused (400):
//!   Pingora quietly drops the length and reads chunks, but a front end that reads the
//!   length instead would see another request in the same bytes (smuggling);
//! - `Expect: 100-continue` is answered with `100 Continue` just before the body is read
//!   (a request refused earlier gets its final status without it);
//! - an HTTP/1.0 client cannot read a chunked body: its streams go out close-delimited;
//! - an upstream's `101 Switching Protocols` is never relayed: a tunnel would hand the
//!   client's connection to the upstream, past every filter (502 instead).
//!
//! After a `100 Continue` Pingora reports that interim response as "written";
//! [`final_response`] is what the client got as its answer.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::Version;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use tollgate_filters::GatewayError;

/// Why a request is refused for its framing, if it is.
pub fn check_request(session: &Session) -> Result<(), GatewayError> {
    let req = session.req_header();
    // Pingora removes Content-Length when Transfer-Encoding is present, so the raw head
    // tells; read only for the rare chunked upload.
    if req.headers.contains_key(TRANSFER_ENCODING)
        && has_content_length(&session.as_ref().to_h1_raw())
    {
        return Err(GatewayError::BadRequest(
            "a request must not have both Content-Length and Transfer-Encoding".into(),
        ));
    }
    Ok(())
}

/// Whether a raw request head has a `Content-Length` field.
fn has_content_length(head: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length:";
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        line.get(..NAME.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(NAME))
    })
}

/// Sends `100 Continue` when the client waits for it before sending its body (HTTP/1.1
/// `Expect: 100-continue`); without it, curl and others wait a second first.
pub async fn continue_if_expected(session: &mut Session) -> pingora::Result<()> {
    let req = session.req_header();
    let expects = req.version == Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects && !session.is_body_done() {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await?;
    }
    Ok(())
}

/// The final response the client received, if any (not a `100 Continue`).
pub fn final_response(session: &Session) -> Option<&ResponseHeader> {
    session
        .response_written()
        .filter(|r| !r.status.is_informational())
}

/// Fits the response header to the client: an HTTP/1.0 client gets a body without
/// `Transfer-Encoding`, delimited by the connection's end.
pub fn for_client(req: &RequestHeader, resp: &mut ResponseHeader) {
    if req.version < Version::HTTP_11 && resp.headers.contains_key(TRANSFER_ENCODING) {
        resp.remove_header(&TRANSFER_ENCODING);
        if resp.headers.contains_key(CONTENT_LENGTH) {
            // Transfer-Encoding overrode it upstream; its value cannot be trusted.
            resp.remove_header(&CONTENT_LENGTH);
        }
    }
}

/// The error for an upstream answer the gateway never relays (`101`), if it is one.
pub fn refused_answer(resp: &ResponseHeader, upstream: &str) -> Option<GatewayError> {
    (resp.status == http::StatusCode::SWITCHING_PROTOCOLS)
        .then(|| GatewayError::UpstreamSwitchedProtocols(upstream.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_found_in_any_case_but_not_in_values_or_the_request_line() {
        assert!(has_content_length(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-LENGTH: 3\r\n\r\n"
        ));
        assert!(has_content_length(
            b"POST / HTTP/1.1\nhost: x\ncontent-length:3\n\n"
        ));
        assert!(!has_content_length(
            b"POST /content-length: HTTP/1.1\r\nx: content-length: 1\r\n\r\n"
        ));
        assert!(!has_content_length(
            b"POST / HTTP/1.1\r\nx-content-length: 1\r\n\r\n"
        ));
    }

    #[test]
    fn http_1_0_loses_chunked_framing_and_http_1_1_keeps_it() {
        let resp = || {
            let mut r = ResponseHeader::build(200, None).unwrap_or_else(|_| unreachable!());
            let _ = r.insert_header("transfer-encoding", "chunked");
            r
        };
        let mut req = RequestHeader::build("POST", b"/", None).unwrap_or_else(|_| unreachable!());
        req.set_version(Version::HTTP_10);
        let mut r = resp();
        for_client(&req, &mut r);
        assert!(r.headers.get("transfer-encoding").is_none());
        req.set_version(Version::HTTP_11);
        let mut r = resp();
        for_client(&req, &mut r);
        assert!(r.headers.get("transfer-encoding").is_some());
    }
}
