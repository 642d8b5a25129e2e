//! The retry and key cursor of one request ([`Attempts`]), and the one decision of what
//! follows an attempt ([`decide`]): the same upstream with its next key, the next
//! upstream of the route's fallback chain (with a [`Reason`]), a resend on a fresh
//! connection, or delivering what came back. Both transports (Pingora's proxy phases and
//! the large-body transport) describe what an attempt came to as an [`Outcome`], call
//! [`decide`] through the proxy's `fallback::settle` (which also does the bookkeeping:
//! key rest, circuits, metric, log) and act on the [`Decision`].
//!
//! The rules are the README's "Resilience" section: connect errors, failures before the
//! response header, 429 and 5xx move on while nothing has reached the client; a 429 tries
//! the upstream's next key first; other 4xx never move; the last upstream's answer passes
//! through; a pooled connection the upstream had closed is retried once.

use std::sync::Arc;
use std::time::Duration;

use pingora_error::{Error, ErrorType, RetryType};
use pingora_http::ResponseHeader;

use crate::upstream::UpstreamTarget;

/// Where one request stands in its route's chain and in the current upstream's keys.
/// Its queries change nothing; it moves only by [`Attempts::start_at`], the `send_*`
/// key choices and [`Attempts::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Index into the route's chain of the upstream being tried.
    upstream: usize,
    /// Keys of this upstream passed over so far (a 429 moves to its next key).
    keys_tried: usize,
    /// Where this request starts in the upstream's key rotation, fixed by its first
    /// attempt there.
    key_start: Option<usize>,
    /// The configured key (its slot) this attempt sends, whose slot records the outcome;
    /// `None` with the user's own or a stored key, which have no slot.
    key_slot: Option<usize>,
    /// This attempt sends the user's own provider key (so there is no other to try).
    own_key: bool,
    /// A stale pooled connection was retried already (once is the limit).
    stale_retry_used: bool,
    /// A resend was decided on the upstream's answer and awaits the phase that carries
    /// it out (Pingora: decided in `upstream_response_filter`, done by
    /// `error_while_proxy`).
    resend_deferred: bool,
}

impl Attempts {
    /// Starts the request over at upstream `index` of its chain, no key chosen yet.
    pub fn start_at(&mut self, index: usize) {
        *self = Attempts {
            upstream: index,
            ..Attempts::default()
        };
    }

    /// Index into the route's chain of the upstream being tried.
    pub fn upstream_index(&self) -> usize {
        self.upstream
    }

    /// The slot of the configured key this attempt sends, if it sends one.
    pub fn key_slot(&self) -> Option<usize> {
        self.key_slot
    }

    /// Whether this attempt sends the user's own provider key.
    pub fn own_key(&self) -> bool {
        self.own_key
    }

    /// This attempt sends one of `target`'s configured keys: the first usable one (not
    /// resting, circuit not open) from the request's rotation position on, past the keys
    /// already tried. Returns its rotation position.
    pub fn send_configured_key(&mut self, target: &UpstreamTarget) -> usize {
        let start = self.rotation_start(target);
        let i = target.usable_key_from(start + self.keys_tried);
        self.keys_tried = i - start;
        self.key_slot = Some(i % target.slots().len());
        self.own_key = false;
        i
    }

    /// This attempt sends a key that is not one of `target`'s configured keys: the
    /// user's own (`own`), or one stored for the upstream. Either has no slot.
    pub fn send_other_key(&mut self, target: &UpstreamTarget, own: bool) {
        // The request still takes its place in the rotation, as every request does.
        self.rotation_start(target);
        self.key_slot = None;
        self.own_key = own;
    }

    fn rotation_start(&mut self, target: &UpstreamTarget) -> usize {
        *self
            .key_start
            .get_or_insert_with(|| target.next_key_index())
    }

    /// Whether `target` (the current upstream) has a configured key this request has not
    /// tried yet.
    pub fn has_another_key(&self, target: &UpstreamTarget) -> bool {
        self.key_slot.is_some() && !self.own_key && target.keys.len() > self.keys_tried + 1
    }

    /// The next upstream of `chain` after the current one that would serve now.
    pub fn next_upstream(&self, chain: &[Arc<UpstreamTarget>]) -> Option<usize> {
        first_serving(chain, self.upstream + 1)
    }

    /// Moves the cursor as `decision` says: the next key, another upstream (no key
    /// chosen there yet), or the one stale-connection retry used up.
    pub fn apply(&mut self, decision: &Decision) {
        match *decision {
            Decision::NextKey => self.keys_tried += 1,
            Decision::NextUpstream { index, .. } => {
                self.upstream = index;
                self.keys_tried = 0;
                self.key_start = None;
                self.key_slot = None;
            }
            Decision::RetryStale => self.stale_retry_used = true,
            Decision::GiveUp(_) | Decision::Fail | Decision::Deliver { .. } => {}
        }
    }

    /// Notes a resend decided in one phase for a later one to carry out.
    pub fn defer_resend(&mut self) {
        self.resend_deferred = true;
    }

    /// Whether a resend was deferred, clearing the note.
    pub fn take_deferred_resend(&mut self) -> bool {
        std::mem::take(&mut self.resend_deferred)
    }
}

/// The first upstream of `chain` at or after `from` that would serve now (its health
/// check passes and some key is neither resting nor behind an open circuit).
pub fn first_serving(chain: &[Arc<UpstreamTarget>], from: usize) -> Option<usize> {
    (from..chain.len()).find(|&i| chain[i].would_serve())
}

/// What an attempt came to, as a transport saw it. Nothing has reached the client yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status; `retry_after` is its `retry-after` on a
    /// 429 (the one answer that rests a key).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The upstream's host name did not resolve: nothing was sent.
    Unresolved,
    /// Connecting (TCP or TLS) failed: nothing was sent.
    ConnectFailed(Failure),
    /// The exchange failed after connecting, before a response header.
    /// `stale_pooled`: on a reused pooled connection, in the way a connection the
    /// upstream had already closed fails.
    Broken {
        failure: Failure,
        stale_pooled: bool,
    },
}

impl Outcome {
    /// The upstream's response header. Its `retry-after` is read only on a 429, so that
    /// the usual answer costs no header lookup.
    pub fn answered(resp: &ResponseHeader) -> Outcome {
        let status = resp.status.as_u16();
        Outcome::Answered {
            status,
            retry_after: (status == 429).then(|| retry_after(resp)).flatten(),
        }
    }

    /// A failure to connect.
    pub fn connect_failed(e: &Error) -> Outcome {
        Outcome::ConnectFailed(Failure::of(e))
    }

    /// A failure after connecting, before the response header, on a connection taken
    /// from the pool (`reused`) or not. Pingora marks the errors of a connection that
    /// was closed under it `ReusedOnly` (its default policy then retries only on a
    /// reused connection).
    pub fn broken(e: &Error, reused: bool) -> Outcome {
        Outcome::Broken {
            failure: Failure::of(e),
            stale_pooled: reused && matches!(e.retry, RetryType::ReusedOnly),
        }
    }
}

/// A transport error, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    /// The request may not have been processed, or the upstream is down or overloaded:
    /// before the response header, such a failure moves to the next upstream.
    pub falls_back: bool,
}

impl Failure {
    /// The class of a Pingora error.
    pub fn of(e: &Error) -> Failure {
        use ErrorType::*;
        let reason = match e.etype() {
            ConnectTimedout | TLSHandshakeTimedout => Reason::ConnectTimeout,
            ConnectRefused | ConnectNoRoute | ConnectError | SocketError => Reason::ConnectError,
            TLSHandshakeFailure | InvalidCert | HandshakeError => Reason::TlsError,
            ReadTimedout | WriteTimedout => Reason::Timeout,
            HTTPStatus(_) => Reason::Status,
            _ => Reason::ConnectionError,
        };
        let falls_back = matches!(
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
        );
        Failure { reason, falls_back }
    }
}

/// Why an attempt failed, for the `reason` label of
/// `tollgate_upstream_attempts_failed_total` and the log (few values, never a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The upstream answered 429.
    RateLimited,
    /// The upstream answered 5xx.
    ServerError,
    /// Its host name did not resolve.
    Dns,
    ConnectTimeout,
    ConnectError,
    TlsError,
    /// A read or write timed out.
    Timeout,
    /// A status error raised inside the proxy.
    Status,
    /// Any other failure of the connection.
    ConnectionError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RateLimited => "429",
            Reason::ServerError => "5xx",
            Reason::Dns => "dns",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::ConnectError => "connect_error",
            Reason::TlsError => "tls_error",
            Reason::Timeout => "timeout",
            Reason::Status => "status",
            Reason::ConnectionError => "connection_error",
        }
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send again to the same upstream with its next key: a rate limit is per key.
    NextKey,
    /// Send again on a fresh connection, once: the pooled one had been closed.
    RetryStale,
    /// Send to upstream `index` of the chain instead.
    NextUpstream { index: usize, reason: Reason },
    /// A failure that counts against the upstream, with nothing left to try (or no way
    /// to send again): the client gets our error.
    GiveUp(Reason),
    /// A failure that does not move on and is not the upstream's to count: the client
    /// gets our error.
    Fail,
    /// The upstream's answer goes to the client. `failed`: a 429 or 5xx with nothing
    /// left to try, which counts against its key.
    Deliver { failed: bool },
}

impl Decision {
    /// Whether the request goes out again.
    pub fn resends(&self) -> bool {
        matches!(
            self,
            Decision::NextKey | Decision::RetryStale | Decision::NextUpstream { .. }
        )
    }

    /// The `reason` label of the failed-attempt metric, when the decision counts one.
    pub fn metric_reason(&self) -> Option<&'static str> {
        match self {
            Decision::NextKey => Some("429_key"),
            Decision::NextUpstream { reason, .. } | Decision::GiveUp(reason) => {
                Some(reason.as_str())
            }
            Decision::RetryStale | Decision::Fail | Decision::Deliver { .. } => None,
        }
    }

    /// What the attempt says about the key (or upstream) it used: `Some(true)` a
    /// success, `Some(false)` a failure, `None` nothing.
    pub fn verdict(&self) -> Option<bool> {
        match self {
            Decision::Deliver { failed } => Some(!failed),
            Decision::NextKey | Decision::NextUpstream { .. } | Decision::GiveUp(_) => Some(false),
            Decision::RetryStale | Decision::Fail => None,
        }
    }
}

/// Upstream statuses that move to the next upstream when there is one.
pub fn status_falls_back(status: u16) -> bool {
    status == 429 || status >= 500
}

/// The one decision of what follows `outcome`, for a request at `at` in `chain`.
/// `can_resend`: the request can go out again (its body can be replayed and nothing has
/// reached the client). Changes nothing: see [`Attempts::apply`].
pub fn decide(
    at: &Attempts,
    chain: &[Arc<UpstreamTarget>],
    outcome: &Outcome,
    can_resend: bool,
) -> Decision {
    let move_on = |reason| match at.next_upstream(chain).filter(|_| can_resend) {
        Some(index) => Decision::NextUpstream { index, reason },
        None => Decision::GiveUp(reason),
    };
    match *outcome {
        Outcome::Answered { status, .. } if !status_falls_back(status) => {
            Decision::Deliver { failed: false }
        }
        Outcome::Answered { status, .. } => {
            let current = chain.get(at.upstream);
            if can_resend && status == 429 && current.is_some_and(|u| at.has_another_key(u)) {
                return Decision::NextKey;
            }
            let reason = if status == 429 {
                Reason::RateLimited
            } else {
                Reason::ServerError
            };
            match move_on(reason) {
                Decision::GiveUp(_) => Decision::Deliver { failed: true },
                next => next,
            }
        }
        Outcome::Unresolved => move_on(Reason::Dns),
        Outcome::ConnectFailed(failure) => move_on(failure.reason),
        Outcome::Broken {
            stale_pooled: true, ..
        } if can_resend && !at.stale_retry_used => Decision::RetryStale,
        Outcome::Broken { failure, .. } if failure.falls_back => move_on(failure.reason),
        Outcome::Broken { .. } => Decision::Fail,
    }
}

/// A provider's `retry-after` (seconds; some send fractions) or `retry-after-ms`.
pub fn retry_after(resp: &ResponseHeader) -> Option<Duration> {
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

#[cfg(test)]
mod tests;
