//! Shared integration-test infrastructure, used as `mod common;` by each test file:
//!
//! - [`mock_upstream`]: an in-process mock provider (OpenAI, Anthropic, Gemini) serving the
//!   recorded responses in `tests/fixtures/`, with edge cases chosen by model name.
//! - [`http`]: a raw HTTP/1.1 client that shows bytes and chunk boundaries as received.
//! - [`gateway`]: runs the real `tollgate` binary on port 0 with a temporary config and
//!   store.
//!
//! Not every test file uses every item, hence `dead_code` is allowed here. Helpers
//! outside `#[test]` functions are not "in a test" for clippy's `allow-unwrap-in-tests`,
//! yet a panic here is a failed test, as in the tests themselves: allow unwrap/expect.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod gateway;
pub mod http;
pub mod mock_upstream;
