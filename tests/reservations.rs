//! Budgets and tokens per minute hold under concurrency: each request reserves an
//! estimate of its cost and tokens when it is admitted and settles with the metered
//! figures when it ends, so 50 requests at once get through no more than they would one
//! after another (README "Limits"); and every way a request ends (served, refused, an
//! upstream error, served by a fallback, a client gone) gives its reservation back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::request;
use common::wait::unix_now;
use common::{Gateway, Scenario, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// o4-mini's chat.json as the mock reports it (93 input, 1024 cache read, 246 output
/// tokens) at the prices below: 93*1100 + 1024*275 + 246*4400 nano-dollars.
const CHAT_COST: u64 = 1_466_300;

/// The three-dialect scenario with o4-mini, gemini-2.5-flash and claude priced, `fallback-*`
/// models routed to an upstream that refuses connections and then to OpenAI's mock, an
/// admin `root` and root's key.
async fn setup() -> (Scenario, String) {
    let s = Scenario::start_with(|c| {
        c.upstream(Upstream::openai("dead", &common::closed_port()).keys(&["sk-dead"]))
            .route(&["fallback-*"], &["dead", "o"])
            .price("o4-mini*", "{ input: 1.1, output: 4.4, cache_read: 0.275 }")
            .price(
                "fallback-*",
                "{ input: 1.1, output: 4.4, cache_read: 0.275 }",
            )
            .price(
                "gemini-2.5-flash*",
                "{ input: 0.3, output: 2.5, cache_read: 0.075 }",
            )
            .price("claude-*", "{ input: 3, output: 15 }")
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    (s, admin)
}

/// Sends `n` requests at once; the statuses.
async fn at_once(gw: &Gateway, n: usize, path: &str, header: (&str, &str), body: &str) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (addr, path, body) = (gw.proxy_addr, path.to_owned(), body.to_owned());
        let (name, value) = (header.0.to_owned(), header.1.to_owned());
        tasks.push(tokio::spawn(async move {
            request(addr, "POST", &path, &[(&name, &value)], body.as_bytes())
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

fn served(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s == 200).count()
}

fn unix_minute() -> i64 {
    unix_now() / 60
}

#[tokio::test]
async fn fifty_requests_at_once_spend_a_small_budget_as_one_after_another_would() {
    let (s, admin) = setup().await;
    // Room for two requests' metered cost, not three: one after another, two pass.
    let limit = 2 * CHAT_COST - 1000;
    let usd = format!("{:.9}", limit as f64 / 1e9);
    let key =
        s.gw.create_key("alice", &["--budget-usd", &usd, "--budget-period", "total"]);
    let auth = format!("Bearer {key}");
    let body = r#"{"model":"o4-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let statuses = at_once(
        &s.gw,
        50,
        "/v1/chat/completions",
        ("authorization", &auth),
        body,
    )
    .await;
    let through = served(&statuses);
    // The bound (README "Limits"): requests are admitted while spend plus reservations
    // is under the budget, and each reservation (4096 output tokens when the request
    // names no maximum) is above the metered cost: no more than one after another.
    assert!(
        (1..=2).contains(&through),
        "{through} of 50 served: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // All 50 stored (the refused ones too): every request has ended, its reservation
    // given back.
    let doc = s.gw.usage_after(&admin, "key", 50).await;
    let row = common::calls::usage_row(&doc, key.split('_').nth(1).unwrap());
    let spent = (row["cost_usd"].as_f64().unwrap() * 1e9).round() as u64;
    assert!(spent <= limit + CHAT_COST, "spent {spent} of {limit}");
    // Once the reservations are settled, the spend decides alone: a third is refused.
    let r = s.gw.chat(&key, body).await;
    assert_eq!(
        r.status,
        if through == 2 { 429 } else { 200 },
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn fifty_requests_at_once_stay_within_100_tokens_per_minute() {
    let (s, _admin) = setup().await;
    let key = s.gw.create_key("alice", &["--tpm", "100"]);
    let minute = unix_minute();
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let statuses = at_once(&s.gw, 50, path, ("x-goog-api-key", &key), "{}").await;
    let through = served(&statuses);
    // The first request reserves more than 100 tokens (4096 output by default) and is
    // metered at 2437: no other fits in the minute. A minute that turned during the burst
    // starts a new window, room for one more.
    let bound = if unix_minute() == minute { 1 } else { 2 };
    assert!(
        (1..=bound).contains(&through),
        "{through} of 50 served: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn every_way_a_request_ends_gives_its_reservation_back() {
    let (s, _admin) = setup().await;
    // One request's reservation (4096 output tokens at $4.40 per million) is above this
    // budget: a reservation not given back would refuse every later request.
    let key = s.gw.create_key(
        "alice",
        &["--budget-usd", "0.01", "--budget-period", "total"],
    );
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];
    let chat = |model: &str| format!(r#"{{"model":"{model}","messages":[]}}"#);
    // Served by the second upstream of its route after the first refused the connection;
    // then served again, sent the moment the first was answered: a reservation still held
    // at that moment would refuse it. So for each request below.
    for model in ["fallback-o4-mini", "o4-mini"] {
        let r = s.gw.chat(&key, chat(model)).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
    }
    // Upstream errors (they cost nothing).
    let send = async |model: &str| {
        let body = chat(model);
        let path = "/v1/chat/completions";
        request(s.gw.proxy_addr, "POST", path, &h, body.as_bytes()).await
    };
    for (model, status) in [
        ("o4-mini-error-500", 500),
        ("o4-mini-error-400", 400),
        ("o4-mini-error-429", 429),
    ] {
        for _ in 0..3 {
            let r = send(model).await;
            assert_eq!(r.status, status, "{model}: {}", r.text());
            assert!(!r.text().contains("budget"), "the upstream's: {}", r.text());
        }
    }
    // A client that leaves while the upstream holds its request (Anthropic's: the 429s
    // rest OpenAI's key for a second).
    let body = r#"{"model":"claude-hang","max_tokens":4000,"messages":[]}"#;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let before = s.anthropic.request_count();
    let mut client = TcpStream::connect(s.gw.proxy_addr).await.unwrap();
    client.write_all(head.as_bytes()).await.unwrap();
    s.anthropic
        .wait_for_requests(before + 1, Duration::from_secs(10))
        .await;
    drop(client);
    let what = "the abandoned request to end";
    common::eventually(what, Duration::from_secs(10), async || {
        s.anthropic.last_request().unwrap().peer_closed
    })
    .await;
    // The abandoned request ends when the gateway notices its client gone, which the
    // upstream may see first, and the 429 rests the upstream's key for a second: the
    // bound is for those, not a pass (a reservation never given back refuses every try).
    let what = "a request within the budget to be served";
    common::eventually(what, Duration::from_secs(10), async || {
        s.gw.chat(&key, chat("o4-mini")).await.status == 200
    })
    .await;
}
