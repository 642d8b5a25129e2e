//! What the shared-limit tests send and read: a burst of priced o4-mini requests spread
//! over several gateways at once ([`burst`]), and the budget counters and minute of the
//! private Redis they count in ([`super::redis::TestRedis`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::http::request;
use super::redis::TestRedis;
use super::wait::eventually;

/// o4-mini's chat.json costs 93*1100 + 1024*275 + 246*4400 = 1,466,300 nano-dollars at
/// [`O4_MINI_PRICE`]; `max_tokens: 1` in [`O4_MINI`] keeps each admission's estimate far
/// below that, so requests in flight do not hold each other back much.
pub const COST: i64 = 1_466_300;
/// The price (YAML) [`COST`] is computed at, for `pricing: "o4-mini*"`.
pub const O4_MINI_PRICE: &str = "{ input: 1.1, output: 4.4, cache_read: 0.275 }";
/// The request [`burst`] sends.
pub const O4_MINI: &str = r#"{"model":"o4-mini","max_tokens":1,"messages":[]}"#;

/// `n` chat requests with `key` at once, spread round-robin over `at`; their statuses
/// (each 200 or 429).
pub async fn burst(at: &[SocketAddr], key: &str, n: usize) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (addr, auth) = (at[i % at.len()], format!("Bearer {key}"));
        set.spawn(async move {
            let headers = [("authorization", auth.as_str())];
            let body = O4_MINI.as_bytes();
            let r = request(addr, "POST", "/v1/chat/completions", &headers, body).await;
            assert!(
                r.status == 200 || r.status == 429,
                "{}: {}",
                r.status,
                r.text()
            );
            r.status
        });
    }
    set.join_all().await
}

/// How many of `statuses` are 200.
pub fn ok_count(statuses: &[u16]) -> i64 {
    statuses.iter().filter(|s| **s == 200).count() as i64
}

/// The redis server's current minute.
pub fn server_minute(r: &TestRedis) -> i64 {
    let now = r.now();
    now - now % 60
}

/// The one budget counter of a key in `r`, once it exists.
pub async fn budget_counter(r: &TestRedis) -> String {
    eventually(
        "the key's budget counter",
        Duration::from_secs(10),
        async || r.keys("tollgate:budget:key:*").pop(),
    )
    .await
}

/// Waits until `counter` holds `want`; fails at once if it goes past it.
pub async fn wait_counter(r: &TestRedis, counter: &str, want: i64) {
    let what = format!("{counter} to reach {want}");
    eventually(&what, Duration::from_secs(10), async || {
        let got = r.get(counter);
        assert!(got <= want, "{counter} went past {want}: {got}");
        (got == want).then_some(()).ok_or(got)
    })
    .await
}
