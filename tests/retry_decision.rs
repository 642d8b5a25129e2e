//! The retry decision is one function (`tollgate_filters::attempts::decide`) that both
//! transports act on. This drives the same scenarios (a 429 moving to the upstream's next
//! key; a 429, a 5xx, a refused connection and a name that does not resolve moving to
//! the next upstream; a chain exhausted; a 4xx that never moves) through Pingora's proxy
//! phases (a body under 64 KiB) and through the large-body transport (a body over it),
//! each against a fresh gateway, and asserts that both come to the same outcome, the one
//! the README's "Resilience" section promises: the status the client gets, the keys (so
//! the upstreams) tried in order with the body intact, the failed attempts counted on
//! `/metrics`, and the usage recorded for the upstream that answered.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;

use common::mock::MockUpstream;
use common::{padded_chat, GatewayBuilder, Upstream};

/// One request of a scenario: the model (which picks the route, and the mock's
/// behaviour), the status the client must get, and the keys the mock must see, in order.
struct Case {
    model: &'static str,
    status: u16,
    keys: &'static [&'static str],
}

const CASES: &[Case] = &[
    // The rotation starts the first request at sk-hot, rate-limited: its next key serves.
    Case {
        model: "next-key-error-429-for-key-hot",
        status: 200,
        keys: &["sk-hot", "sk-cool"],
    },
    // The second starts at sk-cool.
    Case {
        model: "next-key-error-429-for-key-hot",
        status: 200,
        keys: &["sk-cool"],
    },
    Case {
        model: "rate-limited-error-429-for-key-busy",
        status: 200,
        keys: &["sk-busy", "sk-good"],
    },
    Case {
        model: "overloaded-error-503-for-key-broken",
        status: 200,
        keys: &["sk-broken", "sk-good"],
    },
    Case {
        model: "refused-1",
        status: 200,
        keys: &["sk-good"],
    },
    Case {
        model: "unresolved-1",
        status: 200,
        keys: &["sk-good"],
    },
    // Every upstream of the chain answers 429: the last one's answer passes through.
    Case {
        model: "exhausted-error-429",
        status: 429,
        keys: &["sk-busy", "sk-good"],
    },
    // A 400 is the client's problem: it passes through and nothing else is tried.
    Case {
        model: "client-fault-error-400",
        status: 400,
        keys: &["sk-busy"],
    },
    // Nothing could be reached: our 502 in the client's dialect.
    Case {
        model: "unreachable-1",
        status: 502,
        keys: &[],
    },
];

/// Everything a run of [`CASES`] came to, for comparing the transports.
#[derive(Debug, PartialEq)]
struct Outcomes {
    /// Per case: the status, the keys tried, and the error code of our own answers.
    cases: Vec<(u16, Vec<String>, Option<String>)>,
    /// `tollgate_upstream_attempts_failed_total` by (upstream, reason).
    failed: BTreeMap<(String, String), u64>,
    /// Usage by upstream: (requests, input, output, cache read tokens).
    usage: BTreeMap<String, (u64, u64, u64, u64)>,
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// The gateway of the scenarios: `max_retry_after_s: 0` so that no 429 rests a key and
/// every request meets the same chain.
fn gateway(mock: &MockUpstream) -> GatewayBuilder {
    let up = |name: &str, at: &str, keys: &[&str]| {
        Upstream::openai(name, at)
            .keys(keys)
            .set("max_retry_after_s", 0)
            .set("connect_timeout_ms", 2000)
    };
    let url = mock.base_url();
    let mut b = GatewayBuilder::new()
        .upstream(up("multi", &url, &["sk-hot", "sk-cool"]))
        .upstream(up("busy", &url, &["sk-busy"]))
        .upstream(up("broken", &url, &["sk-broken"]))
        .upstream(up("good", &url, &["sk-good"]))
        .upstream(up("dead", &closed_port(), &["sk-dead"]))
        .upstream(up("nodns", "http://no-such-host.invalid", &["sk-nodns"]));
    for (models, chain) in [
        ("next-key-*", &["multi"][..]),
        ("rate-limited-*", &["busy", "good"]),
        ("overloaded-*", &["broken", "good"]),
        ("refused-*", &["dead", "good"]),
        ("unresolved-*", &["nodns", "good"]),
        ("exhausted-*", &["busy", "good"]),
        ("client-fault-*", &["busy", "good"]),
        ("unreachable-*", &["dead"]),
    ] {
        b = b.route(&[models], chain);
    }
    b
}

/// `upstream="x"` and `reason="y"` of a metric line.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// Runs every case with bodies of `filler` bytes of content against a fresh gateway.
async fn run(filler: usize) -> Outcomes {
    let mock = MockUpstream::start().await;
    let (gw, key) = gateway(&mock).user("root", "admin").start_with_key("alice");
    let mut cases = Vec::new();
    for case in CASES {
        let body = padded_chat(case.model, filler).into_bytes();
        let seen_before = mock.requests().len();
        let r = gw.chat(&key, &body).await;
        let seen = &mock.requests()[seen_before..];
        for s in seen {
            assert!(
                s.body == body,
                "{}: the body reached the upstream whole",
                case.model
            );
        }
        let keys = seen
            .iter()
            .map(|s| {
                s.header("authorization")
                    .unwrap()
                    .trim_start_matches("Bearer ")
                    .to_owned()
            })
            .collect();
        if let Some(last) = seen.last() {
            assert!(
                r.body == last.response_body,
                "{}: the answer passes through",
                case.model
            );
        }
        let ours = seen
            .is_empty()
            .then(|| r.json()["error"]["code"].as_str().unwrap().to_owned());
        cases.push((r.status, keys, ours));
    }
    let metrics = gw.metrics().await;
    let failed = metrics
        .text()
        .lines()
        .filter(|l| l.starts_with("tollgate_upstream_attempts_failed_total{"))
        .map(|l| {
            let key = (
                label(l, "upstream").unwrap().to_owned(),
                label(l, "reason").unwrap().to_owned(),
            );
            (
                key,
                l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64,
            )
        })
        .collect();
    let admin = gw.create_key("root", &[]);
    let doc = gw.usage_after(&admin, "upstream", CASES.len() as u64).await;
    let n = |row: &serde_json::Value, k: &str| row[k].as_u64().unwrap();
    let usage = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let counts = (
                n(r, "requests"),
                n(r, "input_tokens"),
                n(r, "output_tokens"),
                n(r, "cache_read_tokens"),
            );
            (r["group"].as_str().unwrap().to_owned(), counts)
        })
        .collect();
    Outcomes {
        cases,
        failed,
        usage,
    }
}

#[tokio::test]
async fn both_transports_retry_fall_back_and_deliver_alike() {
    let small = run(10).await;
    let large = run(100_000).await;

    for (case, (status, keys, ours)) in CASES.iter().zip(&small.cases) {
        assert_eq!(*status, case.status, "{}", case.model);
        assert_eq!(keys, case.keys, "{}", case.model);
        assert_eq!(ours.is_some(), case.keys.is_empty(), "{}", case.model);
    }
    assert_eq!(small.cases[8].2.as_deref(), Some("upstream_unreachable"));
    let failed = |pairs: &[(&str, &str, u64)]| {
        pairs
            .iter()
            .map(|(u, r, n)| ((u.to_string(), r.to_string()), *n))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        small.failed,
        failed(&[
            ("busy", "429", 2),
            ("broken", "5xx", 1),
            ("dead", "connect_error", 2),
            ("multi", "429_key", 1),
            ("nodns", "dns", 1),
        ])
    );
    // The chat fixture's usage: 1117 prompt tokens of which 1024 cached, 246 out.
    let served = |n: u64| (n, 93 * n, 246 * n, 1024 * n);
    let usage = BTreeMap::from([
        ("busy".to_owned(), (1, 0, 0, 0)),
        ("dead".to_owned(), (1, 0, 0, 0)),
        ("good".to_owned(), (5, 93 * 4, 246 * 4, 1024 * 4)),
        ("multi".to_owned(), served(2)),
    ]);
    assert_eq!(small.usage, usage);

    assert_eq!(
        large, small,
        "the large-body transport decides as the proxy phases"
    );
}
