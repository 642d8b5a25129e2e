//! When a request moves to the next upstream of its route's fallback chain (CONTRACT §3):
//! connect errors, timeouts before the response header, 429 and 5xx, and only while no
//! response byte has reached the client. Other 4xx never move. Shared by both transports.

use pingora::{Error, ErrorType};
use tollgate_filters::RequestCtx;

/// Upstream statuses that move to the next upstream when there is one.
pub fn status_falls_back(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Errors before the response header that move to the next upstream: the request may not
/// have been processed, or the upstream is down or overloaded.
pub fn error_falls_back(e: &Error) -> bool {
    use ErrorType::*;
    matches!(
        e.etype(),
        ConnectTimedout
            | ConnectRefused
            | ConnectNoRoute
            | TLSHandshakeFailure
            | TLSHandshakeTimedout
            | InvalidCert
            | HandshakeError
            | ConnectError
            | SocketError
            | ReadTimedout
            | WriteTimedout
            | ReadError
            | WriteError
            | ConnectionClosed
            | H1Error
            | H2Error
            | InvalidHTTPHeader
    )
}

/// Records a failed attempt (log line and metric) and moves `ctx` to the next upstream;
/// false when the chain is exhausted.
pub fn try_next(ctx: &mut RequestCtx, why: &str) -> bool {
    let from = ctx.upstream().map(|u| u.name.clone()).unwrap_or_default();
    crate::metrics::upstream_attempt_failed(&from, why);
    record_failure(ctx);
    let moved = ctx.advance_upstream();
    match ctx.upstream().filter(|_| moved) {
        Some(to) => log::warn!(
            "request {}: upstream {from} failed ({why}); trying {}",
            ctx.request_id,
            to.name
        ),
        None => log::warn!(
            "request {}: upstream {from} failed ({why}); no upstream left",
            ctx.request_id
        ),
    }
    moved
}

/// Counts a failure against the current upstream's circuit.
pub fn record_failure(ctx: &RequestCtx) {
    if let Some(up) = ctx.upstream() {
        if up.circuit.on_failure() {
            log::warn!(
                "upstream {}: circuit open for {:?} after repeated failures",
                up.name,
                tollgate_filters::circuit::COOL_DOWN
            );
            crate::metrics::circuit_open(&up.name, true);
        }
    }
}

/// Closes the current upstream's circuit after an answer that is not a failure.
pub fn record_success(ctx: &RequestCtx) {
    if let Some(up) = ctx.upstream() {
        if up.circuit.state() != tollgate_filters::circuit::CircuitState::Closed {
            log::info!("upstream {}: circuit closed", up.name);
            crate::metrics::circuit_open(&up.name, false);
        }
        up.circuit.on_success();
    }
}

/// A short, low-cardinality reason for a failed attempt.
pub fn reason(e: &Error) -> &'static str {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout | TLSHandshakeTimedout => "connect_timeout",
        ConnectRefused | ConnectNoRoute | ConnectError | SocketError => "connect_error",
        TLSHandshakeFailure | InvalidCert | HandshakeError => "tls_error",
        ReadTimedout | WriteTimedout => "timeout",
        HTTPStatus(_) => "status",
        _ => "connection_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_move_on() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(status_falls_back(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 413, 422] {
            assert!(!status_falls_back(s), "{s}");
        }
        assert!(error_falls_back(&Error::new(ErrorType::ConnectRefused)));
        assert!(!error_falls_back(&Error::new(ErrorType::HTTPStatus(400))));
    }
}
