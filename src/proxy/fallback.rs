//! When a request moves to the next upstream of its route's fallback chain (CONTRACT §3):
//! connect errors, timeouts before the response header, 429 and 5xx, and only while no
//! response byte has reached the client. Other 4xx never move. Shared by both transports.

use std::time::Duration;

use pingora::http::ResponseHeader;
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

/// Counts a failure against the circuit of the key the attempt used; a failure before
/// any key was sent (connect errors, timeouts) or with a stored key is the upstream's
/// own, and counts against every key's circuit. A user's own key has no circuit.
pub fn record_failure(ctx: &RequestCtx) {
    let Some(up) = ctx.upstream() else {
        return;
    };
    let keys = match ctx.key_index {
        Some(k) => k..k + 1,
        None if ctx.used_own_key => return,
        None => 0..up.slots().len(),
    };
    for k in keys {
        let circuit = &up.slot(k).circuit;
        if circuit.on_failure() {
            log::warn!(
                "upstream {} key #{k}: circuit open for {:?} after repeated failures",
                up.name,
                circuit.cool_down()
            );
            crate::metrics::circuit_open(&up.name, k, true);
        }
    }
}

/// Closes the circuit of the key the attempt used after an answer that is not a failure.
pub fn record_success(ctx: &RequestCtx) {
    let (Some(up), Some(k)) = (ctx.upstream(), ctx.key_index) else {
        return;
    };
    let circuit = &up.slot(k).circuit;
    if circuit.state() != tollgate_filters::circuit::CircuitState::Closed {
        log::info!("upstream {} key #{k}: circuit closed", up.name);
        crate::metrics::circuit_open(&up.name, k, false);
    }
    circuit.on_success();
}

/// After a 429: the key the attempt used rests for the provider's `retry-after`
/// (capped by the upstream's `max_retry_after_s`), so that requests go to its other keys
/// or the next upstream meanwhile instead of being refused again.
pub fn rest_key_after_429(ctx: &RequestCtx, resp: &ResponseHeader) {
    let (Some(up), Some(k)) = (ctx.upstream(), ctx.key_index) else {
        return;
    };
    let Some(wait) = retry_after(resp) else {
        return;
    };
    let rest = up.rest_key(k, wait);
    log::info!(
        "request {}: upstream {} key #{k} rate limited; resting it {rest:?} (retry-after {wait:?})",
        ctx.request_id,
        up.name
    );
}

/// A provider's `retry-after` (seconds; some send fractions) or `retry-after-ms`.
fn retry_after(resp: &ResponseHeader) -> Option<Duration> {
    let header = |name: &str| {
        resp.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    header("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0))
        .or_else(|| header("retry-after").map(|s| Duration::from_secs_f64(s.min(86_400.0))))
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

    #[test]
    fn retry_after_in_seconds_fractions_or_milliseconds() {
        let with = |pairs: &[(&str, &str)]| {
            let mut r = ResponseHeader::build(429, None).unwrap();
            for (k, v) in pairs {
                r.insert_header(k.to_string(), *v).unwrap();
            }
            retry_after(&r)
        };
        assert_eq!(with(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            with(&[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            with(&[("retry-after", "7"), ("retry-after-ms", "250")]),
            Some(Duration::from_millis(250)),
            "the finer one wins"
        );
        assert_eq!(
            with(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        assert_eq!(with(&[("retry-after", "-3")]), None);
        assert_eq!(with(&[]), None);
    }
}
