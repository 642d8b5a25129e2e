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

/// The base URL of a local port nothing listens on (bound, then let go): an upstream
/// whose connections are refused.
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}
