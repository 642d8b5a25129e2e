//! The integration-test kit, used as `mod common;` by each test file. A test reads as a
//! story because the set-up is one line and each request is one line:
//!
//! - [`scenario`]: [`Scenario::start`] starts OpenAI, Anthropic and Gemini mocks, a gateway
//!   routing to them, and a user with a key.
//! - [`config`]: [`GatewayBuilder`] and the typed parts of a gateway config
//!   ([`Upstream`], routes, aliases, prices, settings), for any other set-up.
//! - [`calls`]: one-line requests ([`Gateway::chat`], [`Gateway::messages`],
//!   [`Gateway::generate`], [`Gateway::admin_as`], [`Gateway::metrics`]) and the bodies
//!   most tests send.
//! - [`forwarder`]: a TCP forwarder to cut, between a gateway and PostgreSQL.
//! - [`events`]: the usage events the gateway stored, row by row
//!   ([`Gateway::usage_events_after`]).
//! - [`wait`]: [`eventually`], the one bounded wait for what happens in its own time.
//! - [`gateway`]: the real `tollgate` binary on port 0 with a temporary config and store.
//! - [`mock`]: the in-process mock provider serving the recorded responses in
//!   `tests/fixtures/`, with edge cases chosen by model name, one module per dialect;
//!   and [`mock::scripted`], an upstream answered by a closure.
//! - [`http`]: a raw HTTP/1.1 client that shows bytes and chunk boundaries as received.
//! - [`limits`]: bursts of priced requests over several gateways, and the Redis
//!   budget counters they count in.
//! - [`redis`]: a private `redis-server` on a free loopback port ([`redis::TestRedis`]).
//!
//! Not every test file uses every item, hence `dead_code` is allowed here. Helpers
//! outside `#[test]` functions are not "in a test" for clippy's `allow-unwrap-in-tests`,
//! yet a panic here is a failed test, as in the tests themselves: allow unwrap/expect.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod agents;
pub mod calls;
pub mod config;
pub mod events;
pub mod forwarder;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mock;
pub mod redis;
pub mod scenario;
pub mod wait;

pub use calls::{chat_body, messages_body, padded_chat, Metrics, CHAT};
pub use config::{GatewayBuilder, Upstream};
pub use gateway::Gateway;
pub use mock::MockUpstream;
pub use scenario::Scenario;
pub use wait::eventually;

/// A loopback port free now, for a listener whose port must be known before it binds
/// (a gateway that an upgrade takes over, a server started by its port). Chosen below the
/// kernel's ephemeral range: a port found free by binding port 0 comes from that range,
/// and between its release and the server's bind, any test's outgoing connection can be
/// given it as its own local port (`Address already in use`). Below the range only
/// explicit binds compete, and each call in this process takes a port of its own.
pub fn fixed_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = SPAN.min(low.saturating_sub(FIRST)).max(1);
    // Test binaries run one after another; the process id spreads them over the span.
    let base = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (base.wrapping_add(n) % span);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + span);
}

/// The base URL of a local port nothing listens on (bound, then let go): an upstream
/// whose connections are refused.
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}
