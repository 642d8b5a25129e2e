//! Every branch of [`decide`], the cursor's moves, and the classification of transport
//! errors and `retry-after`.

use super::*;
use crate::secret::Secret;
use crate::upstream::UpstreamSpec;

/// An upstream named `name` with `keys` configured keys.
fn up(name: &str, keys: usize) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(UpstreamSpec {
        name: name.into(),
        keys: (0..keys)
            .map(|k| Secret::new(format!("{name}-{k}")))
            .collect(),
        ..UpstreamSpec::default()
    }))
}

/// A cursor on `chain[0]` having chosen its first configured key.
fn first_key(chain: &[Arc<UpstreamTarget>]) -> Attempts {
    let mut at = Attempts::default();
    at.send_configured_key(&chain[0]);
    at
}

fn answered(status: u16) -> Outcome {
    Outcome::Answered {
        status,
        retry_after: None,
    }
}

fn error(etype: ErrorType) -> Box<Error> {
    Error::new(etype)
}

#[test]
fn answers_that_are_not_429_or_5xx_are_delivered_as_successes() {
    let chain = [up("a", 2), up("b", 1)];
    let at = first_key(&chain);
    for status in [200, 201, 400, 401, 404, 422] {
        assert_eq!(
            decide(&at, &chain, &answered(status), true),
            Decision::Deliver { failed: false },
            "{status}"
        );
    }
}

#[test]
fn a_429_tries_the_next_key_of_the_same_upstream_first() {
    let chain = [up("a", 2), up("b", 1)];
    let mut at = first_key(&chain);
    let d = decide(&at, &chain, &answered(429), true);
    assert_eq!(d, Decision::NextKey);
    at.apply(&d);
    assert_eq!(at.upstream_index(), 0);
    let second = at.send_configured_key(&chain[0]);
    assert_eq!(at.key_slot(), Some(second % 2));
    // Both keys tried: the next 429 moves to the next upstream.
    let d = decide(&at, &chain, &answered(429), true);
    assert_eq!(
        d,
        Decision::NextUpstream {
            index: 1,
            reason: Reason::RateLimited
        }
    );
}

#[test]
fn a_429_on_a_key_without_a_slot_or_a_lone_key_moves_on() {
    let chain = [up("a", 2), up("b", 1)];
    let next = Decision::NextUpstream {
        index: 1,
        reason: Reason::RateLimited,
    };
    // The user's own key: no other key of theirs to try.
    let mut own = Attempts::default();
    own.send_other_key(&chain[0], true);
    assert!(own.own_key());
    assert_eq!(decide(&own, &chain, &answered(429), true), next);
    // A stored key for the upstream: not one of the configured keys either.
    let mut stored = Attempts::default();
    stored.send_other_key(&chain[0], false);
    assert_eq!(stored.key_slot(), None);
    assert_eq!(decide(&stored, &chain, &answered(429), true), next);
    // One key only.
    let single = [up("a", 1), up("b", 1)];
    assert_eq!(
        decide(&first_key(&single), &single, &answered(429), true),
        next
    );
}

#[test]
fn a_5xx_moves_to_the_next_upstream_and_the_last_answer_is_delivered() {
    let chain = [up("a", 2), up("b", 1)];
    let mut at = first_key(&chain);
    let d = decide(&at, &chain, &answered(503), true);
    assert_eq!(
        d,
        Decision::NextUpstream {
            index: 1,
            reason: Reason::ServerError
        },
        "a 5xx does not try another key"
    );
    at.apply(&d);
    assert_eq!((at.upstream_index(), at.key_slot()), (1, None));
    at.send_configured_key(&chain[1]);
    for status in [429, 500, 529] {
        assert_eq!(
            decide(&at, &chain, &answered(status), true),
            Decision::Deliver { failed: true },
            "{status} from the last upstream"
        );
    }
}

#[test]
fn nothing_is_sent_again_when_the_request_cannot_be_replayed() {
    let chain = [up("a", 2), up("b", 1)];
    let at = first_key(&chain);
    assert_eq!(
        decide(&at, &chain, &answered(429), false),
        Decision::Deliver { failed: true }
    );
    assert_eq!(
        decide(&at, &chain, &Outcome::Unresolved, false),
        Decision::GiveUp(Reason::Dns)
    );
    let mut closed = error(ErrorType::ConnectionClosed);
    closed.retry = RetryType::ReusedOnly;
    let stale = Outcome::broken(&closed, true);
    assert_eq!(
        decide(&at, &chain, &stale, false),
        Decision::GiveUp(Reason::ConnectionError)
    );
}

#[test]
fn upstreams_that_would_not_serve_are_passed_over() {
    let chain = [up("a", 1), up("down", 1), up("c", 1)];
    chain[1].set_healthy(false);
    let at = first_key(&chain);
    assert_eq!(at.next_upstream(&chain), Some(2));
    assert_eq!(first_serving(&chain, 1), Some(2));
    assert_eq!(
        decide(&at, &chain, &Outcome::Unresolved, true),
        Decision::NextUpstream {
            index: 2,
            reason: Reason::Dns
        }
    );
    chain[2].set_healthy(false);
    assert_eq!(
        decide(&at, &chain, &answered(500), true),
        Decision::Deliver { failed: true }
    );
}

#[test]
fn unresolved_and_connect_failures_always_move_on_with_their_reason() {
    let chain = [up("a", 1), up("b", 1)];
    let at = first_key(&chain);
    for (etype, reason) in [
        (ErrorType::ConnectRefused, Reason::ConnectError),
        (ErrorType::ConnectTimedout, Reason::ConnectTimeout),
        (ErrorType::TLSHandshakeFailure, Reason::TlsError),
        // Not a failure that moves on after connecting, but nothing was sent.
        (ErrorType::InternalError, Reason::ConnectionError),
    ] {
        let outcome = Outcome::connect_failed(&error(etype));
        assert_eq!(
            decide(&at, &chain, &outcome, true),
            Decision::NextUpstream { index: 1, reason },
            "{reason:?}"
        );
    }
    let mut last = at.clone();
    last.apply(&Decision::NextUpstream {
        index: 1,
        reason: Reason::Dns,
    });
    let refused = Outcome::connect_failed(&error(ErrorType::ConnectRefused));
    assert_eq!(
        decide(&last, &chain, &refused, true),
        Decision::GiveUp(Reason::ConnectError)
    );
    assert_eq!(
        decide(&last, &chain, &Outcome::Unresolved, true),
        Decision::GiveUp(Reason::Dns)
    );
}

#[test]
fn a_stale_pooled_connection_is_retried_once_then_moves_on() {
    let chain = [up("a", 1), up("b", 1)];
    let mut at = first_key(&chain);
    let mut e = error(ErrorType::ConnectionClosed);
    e.retry = RetryType::ReusedOnly;
    let stale = Outcome::broken(&e, true);
    let d = decide(&at, &chain, &stale, true);
    assert_eq!(d, Decision::RetryStale);
    at.apply(&d);
    assert_eq!(at.upstream_index(), 0, "the same upstream");
    assert_eq!(
        decide(&at, &chain, &stale, true),
        Decision::NextUpstream {
            index: 1,
            reason: Reason::ConnectionError
        }
    );
    // A fresh connection is not stale, whatever its error says.
    assert_eq!(
        Outcome::broken(&e, false),
        Outcome::Broken {
            failure: Failure {
                reason: Reason::ConnectionError,
                falls_back: true
            },
            stale_pooled: false
        }
    );
}

#[test]
fn failures_after_connecting_move_on_only_when_they_fall_back() {
    let chain = [up("a", 1), up("b", 1)];
    let at = first_key(&chain);
    let timeout = Outcome::broken(&error(ErrorType::ReadTimedout), true);
    assert_eq!(
        decide(&at, &chain, &timeout, true),
        Decision::NextUpstream {
            index: 1,
            reason: Reason::Timeout
        }
    );
    for etype in [ErrorType::InternalError, ErrorType::HTTPStatus(400)] {
        let ours = Outcome::broken(&error(etype), false);
        assert_eq!(decide(&at, &chain, &ours, true), Decision::Fail);
    }
    let mut last = at.clone();
    last.apply(&Decision::NextUpstream {
        index: 1,
        reason: Reason::Timeout,
    });
    assert_eq!(
        decide(&last, &chain, &timeout, true),
        Decision::GiveUp(Reason::Timeout)
    );
}

#[test]
fn deciding_changes_nothing_and_the_cursor_moves_only_when_applied() {
    let chain = [up("a", 3), up("b", 1)];
    let at = first_key(&chain);
    let before = at.clone();
    for outcome in [
        answered(429),
        answered(500),
        Outcome::Unresolved,
        Outcome::broken(&error(ErrorType::ReadError), true),
    ] {
        let _ = decide(&at, &chain, &outcome, true);
        assert!(at.has_another_key(&chain[0]));
        let _ = at.next_upstream(&chain);
    }
    assert_eq!(at, before);
    let mut moved = at.clone();
    moved.apply(&Decision::Deliver { failed: true });
    moved.apply(&Decision::GiveUp(Reason::Dns));
    moved.apply(&Decision::Fail);
    assert_eq!(moved, before, "only resends move the cursor");
}

#[test]
fn a_deferred_resend_is_taken_once() {
    let mut at = Attempts::default();
    assert!(!at.take_deferred_resend());
    at.defer_resend();
    assert!(at.take_deferred_resend());
    assert!(!at.take_deferred_resend());
    at.defer_resend();
    at.start_at(1);
    assert!(!at.take_deferred_resend(), "a new start forgets it");
}

#[test]
fn decisions_name_their_metric_reason_and_verdict() {
    let next = Decision::NextUpstream {
        index: 1,
        reason: Reason::ServerError,
    };
    let table = [
        (Decision::NextKey, Some("429_key"), Some(false), true),
        (next, Some("5xx"), Some(false), true),
        (Decision::RetryStale, None, None, true),
        (
            Decision::GiveUp(Reason::Dns),
            Some("dns"),
            Some(false),
            false,
        ),
        (Decision::Fail, None, None, false),
        (Decision::Deliver { failed: true }, None, Some(false), false),
        (Decision::Deliver { failed: false }, None, Some(true), false),
    ];
    for (d, reason, verdict, resends) in table {
        assert_eq!(
            (d.metric_reason(), d.verdict(), d.resends()),
            (reason, verdict, resends),
            "{d:?}"
        );
    }
    let labels: Vec<&str> = [
        Reason::RateLimited,
        Reason::ServerError,
        Reason::Dns,
        Reason::ConnectTimeout,
        Reason::ConnectError,
        Reason::TlsError,
        Reason::Timeout,
        Reason::Status,
        Reason::ConnectionError,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        labels,
        [
            "429",
            "5xx",
            "dns",
            "connect_timeout",
            "connect_error",
            "tls_error",
            "timeout",
            "status",
            "connection_error"
        ]
    );
}

#[test]
fn which_statuses_and_errors_move_on() {
    for s in [429, 500, 502, 503, 504, 529] {
        assert!(status_falls_back(s), "{s}");
    }
    for s in [200, 400, 401, 403, 404, 413, 422] {
        assert!(!status_falls_back(s), "{s}");
    }
    assert!(Failure::of(&Error::new(ErrorType::ConnectRefused)).falls_back);
    assert!(Failure::of(&Error::new(ErrorType::H2Error)).falls_back);
    assert!(!Failure::of(&Error::new(ErrorType::HTTPStatus(400))).falls_back);
    assert!(!Failure::of(&Error::new(ErrorType::InternalError)).falls_back);
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
    // Only a 429 rests a key, so only a 429's retry-after is read.
    for (status, read) in [(429, Some(Duration::from_secs(2))), (503, None)] {
        let mut r = ResponseHeader::build(status, None).unwrap();
        r.insert_header("retry-after", "2").unwrap();
        assert_eq!(
            Outcome::answered(&r),
            Outcome::Answered {
                status,
                retry_after: read
            }
        );
    }
}

#[test]
fn a_request_keeps_its_place_in_the_rotation_across_its_attempts() {
    let chain = [up("a", 2), up("b", 1)];
    // Five requests went before: this one starts at rotation position 5, key 1.
    for _ in 0..5 {
        chain[0].next_key_index();
    }
    let mut at = Attempts::default();
    assert_eq!(at.send_configured_key(&chain[0]), 5);
    assert_eq!((at.key_slot(), at.own_key()), (Some(1), false));
    // Sending again without a decision (a resend on a fresh connection) sends the same key.
    assert_eq!(at.send_configured_key(&chain[0]), 5);
    let d = decide(&at, &chain, &answered(429), true);
    assert_eq!(d, Decision::NextKey);
    at.apply(&d);
    assert_eq!(at.send_configured_key(&chain[0]), 6);
    assert_eq!(at.key_slot(), Some(0));
    assert!(!at.has_another_key(&chain[0]), "both keys tried");
    // The next request takes the next place.
    let mut next = Attempts::default();
    assert_eq!(next.send_configured_key(&chain[0]), 6);
}

#[test]
fn a_resting_key_counts_as_passed_over() {
    let chain = [up("a", 3), up("b", 1)];
    chain[0].rest_key(0, Duration::from_secs(30));
    let mut at = Attempts::default();
    assert_eq!(at.send_configured_key(&chain[0]), 1, "key 0 rests");
    assert_eq!(at.key_slot(), Some(1));
    assert!(at.has_another_key(&chain[0]), "key 2 is left");
    at.apply(&Decision::NextKey);
    assert_eq!(at.send_configured_key(&chain[0]), 2);
    assert!(
        !at.has_another_key(&chain[0]),
        "keys 0 and 1 passed, 2 sent"
    );
}

#[test]
fn another_key_or_upstream_becomes_the_users_own_or_a_stored_key() {
    let chain = [up("a", 2), up("b", 1)];
    let mut at = Attempts::default();
    at.send_other_key(&chain[0], false);
    assert_eq!((at.key_slot(), at.own_key()), (None, false));
    assert!(!at.has_another_key(&chain[0]), "a stored key has no other");
    at.send_other_key(&chain[0], true);
    assert!(at.own_key());
    // The request took its place in the rotation all the same.
    let mut next = Attempts::default();
    assert_eq!(next.send_configured_key(&chain[0]), 1);
    // Moving to another upstream forgets the key, its place and what was tried.
    let mut moved = first_key(&chain);
    moved.apply(&Decision::NextKey);
    moved.apply(&Decision::NextUpstream {
        index: 1,
        reason: Reason::RateLimited,
    });
    assert_eq!((moved.upstream_index(), moved.key_slot()), (1, None));
    assert_eq!(moved.send_configured_key(&chain[1]), 0);
    let mut started = first_key(&chain);
    started.start_at(1);
    assert_eq!(started.upstream_index(), 1);
    assert_eq!(started, {
        let mut fresh = Attempts::default();
        fresh.start_at(1);
        fresh
    });
}

#[test]
fn every_transport_error_has_its_reason_and_says_whether_it_moves_on() {
    use ErrorType::*;
    let table = [
        (ConnectTimedout, Reason::ConnectTimeout, true),
        (TLSHandshakeTimedout, Reason::ConnectTimeout, true),
        (ConnectRefused, Reason::ConnectError, true),
        (ConnectNoRoute, Reason::ConnectError, true),
        (ConnectError, Reason::ConnectError, true),
        (SocketError, Reason::ConnectError, true),
        (TLSHandshakeFailure, Reason::TlsError, true),
        (InvalidCert, Reason::TlsError, true),
        (HandshakeError, Reason::TlsError, true),
        (ReadTimedout, Reason::Timeout, true),
        (WriteTimedout, Reason::Timeout, true),
        (HTTPStatus(502), Reason::Status, false),
        (ReadError, Reason::ConnectionError, true),
        (WriteError, Reason::ConnectionError, true),
        (ConnectionClosed, Reason::ConnectionError, true),
        (H1Error, Reason::ConnectionError, true),
        (H2Error, Reason::ConnectionError, true),
        (InvalidHTTPHeader, Reason::ConnectionError, true),
        (InternalError, Reason::ConnectionError, false),
    ];
    for (etype, reason, falls_back) in table {
        let label = format!("{etype:?}");
        assert_eq!(
            Failure::of(&error(etype)),
            Failure { reason, falls_back },
            "{label}"
        );
    }
}

#[test]
fn a_retry_after_that_is_not_a_finite_number_is_none_and_a_huge_one_is_capped() {
    let with = |name: &str, value: &str| {
        let mut r = ResponseHeader::build(429, None).unwrap();
        r.insert_header(name.to_string(), value).unwrap();
        retry_after(&r)
    };
    assert_eq!(with("retry-after", "inf"), None);
    assert_eq!(with("retry-after", "NaN"), None);
    assert_eq!(with("retry-after-ms", "inf"), None);
    assert_eq!(with("retry-after", "0"), Some(Duration::ZERO));
    assert_eq!(with("retry-after", " 2 "), Some(Duration::from_secs(2)));
    assert_eq!(
        with("retry-after", "1e12"),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        with("retry-after-ms", "1e15"),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        with("retry-after-ms", "1500"),
        Some(Duration::from_millis(1500))
    );
}
