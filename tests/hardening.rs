//! Hostile clients over raw sockets: malformed and ambiguous requests (smuggling
//! framings, deep JSON, huge heads) each get a clear refusal or a closed connection and
//! never reach an upstream; request heads dribbled too slowly are cut at the deadline,
//! which restarts with each request of a kept-alive connection and does not apply to
//! bodies; one address cannot hold more connections than allowed, and a place freed is
//! given back. After all of it the gateway keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::http::{send_raw, Client};
use common::{eventually, GatewayBuilder, MockUpstream, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn malformed_and_ambiguous_requests_are_refused() {
    let mock = MockUpstream::start().await;
    let (gw, key) = one_upstream(&mock).start_with_key("alice");
    let body = r#"{"model":"gpt-4o","messages":[]}"#;
    let head = |extra: &str| {
        format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n{extra}")
    };
    let deep = format!(
        r#"{{"model":"gpt-4o","messages":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let many_headers: String = (0..300).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(&str, String)> = vec![
        (
            "content-length and transfer-encoding",
            format!(
                "{}content-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{body}",
                head(""),
                body.len()
            ),
        ),
        (
            "two different content-lengths",
            format!(
                "{}content-length: {}\r\ncontent-length: 5\r\n\r\n{body}",
                head(""),
                body.len()
            ),
        ),
        (
            "a JSON body nested 5000 deep",
            format!("{}content-length: {}\r\n\r\n{deep}", head(""), deep.len()),
        ),
        (
            "300 header fields",
            format!(
                "{}{many_headers}content-length: {}\r\n\r\n{body}",
                head(""),
                body.len()
            ),
        ),
        (
            "a 100 KiB header",
            format!(
                "{}x-big: {}\r\ncontent-length: {}\r\n\r\n{body}",
                head(""),
                "a".repeat(100 * 1024),
                body.len()
            ),
        ),
        (
            "a space in the path",
            "POST /v1/chat /completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
                .to_owned(),
        ),
        (
            "an unknown method",
            "BREW /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
        ),
    ];
    for (what, raw) in cases {
        match send_raw(gw.proxy_addr, raw.as_bytes()).await {
            Ok(r) => assert!(
                (400..500).contains(&r.status),
                "{what}: got {} {}",
                r.status,
                r.text()
            ),
            Err(e) => assert!(
                e.kind() != std::io::ErrorKind::TimedOut,
                "{what}: no answer ({e})"
            ),
        }
    }
    assert!(
        mock.requests().is_empty(),
        "a refused request reached the upstream: {:?}",
        mock.requests()
            .iter()
            .map(|r| (
                r.headers.clone(),
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(80)
                    .collect::<String>()
            ))
            .collect::<Vec<_>>()
    );
    let r = gw.chat(&key, body).await;
    assert_eq!(r.status, 200, "the gateway keeps serving");
}

fn one_upstream(mock: &MockUpstream) -> GatewayBuilder {
    GatewayBuilder::new().only_upstream(Upstream::openai("o", mock))
}

/// Sends `head` then one more byte every `pace` (a client that is slow on purpose) until
/// the gateway closes the connection; how long that took. Fails if the gateway answers
/// the incomplete head or never closes.
async fn dribble_until_closed(stream: &mut TcpStream, head: &[u8], pace: Duration) -> Duration {
    let started = Instant::now();
    stream.write_all(head).await.unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(pace, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => panic!(
                "an answer to an incomplete head: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the slow head was never cut"
        );
        if stream.write_all(b"a").await.is_err() {
            return started.elapsed();
        }
    }
}

#[tokio::test]
async fn request_heads_that_arrive_too_slowly_are_cut() {
    let mock = MockUpstream::start().await;
    let (gw, key) = one_upstream(&mock)
        .server("header_timeout_ms", 1000)
        .start_with_key("alice");
    let pace = Duration::from_millis(100);
    let slow_head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ";

    // A head dribbled a byte at a time, and a connection that sends nothing at all.
    let mut slow = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let mut silent = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let took = dribble_until_closed(&mut slow, slow_head, pace).await;
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");
    let took = dribble_until_closed(&mut silent, b"", Duration::from_secs(15)).await;
    assert!(took < Duration::from_secs(15));

    // On a kept-alive connection the clock starts again with each request's first byte:
    // a first request served after more than the limit of idleness, then a slow second.
    let mut conn = Client::connect(gw.proxy_addr).await;
    let body = br#"{"model":"gpt-4o","messages":[]}"#;
    let r = conn.chat(&key, body).await;
    assert_eq!(r.status, 200);
    let mut raw = conn.into_inner();
    let took = dribble_until_closed(&mut raw, slow_head, pace).await;
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");

    // Body bytes are not held to the head deadline (the body has its own).
    let mut s = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for b in body.chunks(8) {
        // Slower in total than the head limit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(b).await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_millis(1000));
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let metrics = gw.metrics().await;
    assert!(
        metrics
            .text()
            .contains("tollgate_connections_refused_total{reason=\"header_timeout\"} 3"),
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_connections() {
    let mock = MockUpstream::start().await;
    let (gw, key) = one_upstream(&mock)
        .server("max_connections_per_ip", 3)
        .start_with_key("alice");
    let body = br#"{"model":"gpt-4o","messages":[]}"#;

    // Three kept-alive connections, each known to be admitted by a served request.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(gw.proxy_addr).await;
        let r = c.chat(&key, body).await;
        assert_eq!(r.status, 200);
        held.push(c);
    }
    // A fourth is answered 429 in a shape every SDK reads, and closed.
    let r = gw.chat(&key, body).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let e = r.json();
    assert_eq!(e["error"]["type"], "rate_limit_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many connections from your address (at most 3)"),
        "{e}"
    );
    // The held connections still serve.
    let r = held[0].chat(&key, body).await;
    assert_eq!(r.status, 200);

    // One closes: its place comes back (once the gateway has seen the close).
    drop(held.pop());
    eventually(
        "the place to come back",
        Duration::from_secs(10),
        async || {
            let status = gw.chat(&key, body).await.status;
            assert!(status == 200 || status == 429, "{status}");
            status == 200
        },
    )
    .await;
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .text()
            .contains("tollgate_connections_refused_total{reason=\"address_cap\"}"),
        "{}",
        metrics.text()
    );
}
