//! HTTP/1 edge cases over raw sockets, each as a client or an upstream that does the
//! unusual thing: a request with both `Content-Length` and `Transfer-Encoding` is
//! refused; `Expect: 100-continue` is answered before the body is read (or refused with
//! a final status without reading it); HTTP/1.0 clients get close-delimited streams; a
//! request head with bare-LF line ends is not cut at the head deadline in the middle of
//! its stream; hop-by-hop response headers named by `Connection` and
//! `Proxy-Authenticate` never reach the client; an upstream `101` is a 502, never a
//! tunnel; raw invalid UTF-8 inside a JSON string is refused. Both transports (bodies
//! under and over 64 KiB) where the path differs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::{find, read_response, request, send_raw, Conn, Framing, Response};
use common::mock::scripted::{Reply, Scripted};
use common::mock::strip_usage_chunk;
use common::{GatewayBuilder, Scenario, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Filler sizes that take the two transports: Pingora's phases, and the large-body
/// transport past its 64 KiB replay buffer.
const FILLERS: [usize; 2] = [0, 70_000];

/// A raw request: the request line, `host`, these header lines (each ending in CRLF),
/// `content-length` and the body.
fn raw_request(line: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{line}\r\nhost: x\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_with_400() {
    let s = Scenario::start().await;
    let body = r#"{"model":"gpt-4o","messages":[]}"#;
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    for (path, auth, dialect) in [
        (
            "/v1/chat/completions",
            format!("authorization: Bearer {}", s.key),
            "openai",
        ),
        ("/v1/messages", format!("x-api-key: {}", s.key), "anthropic"),
    ] {
        // Both orders, and a Content-Length that agrees with the chunked payload: the
        // request is ambiguous whatever the values.
        for (first, second) in [
            (
                format!("content-length: {}", body.len()),
                "transfer-encoding: chunked".to_owned(),
            ),
            (
                "transfer-encoding: chunked".to_owned(),
                format!("content-length: {}", chunked.len()),
            ),
        ] {
            let raw = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-type: application/json\r\n{first}\r\n{second}\r\n\r\n{chunked}"
            );
            let r = send_raw(s.gw.proxy_addr, raw.as_bytes()).await.unwrap();
            assert_eq!(r.status, 400, "{path} {first} {second}: {}", r.text());
            let v = r.json();
            let message = if dialect == "anthropic" {
                assert_eq!(v["type"], "error");
                assert_eq!(v["error"]["type"], "invalid_request_error");
                v["error"]["message"].as_str().unwrap().to_owned()
            } else {
                assert_eq!(v["error"]["type"], "invalid_request_error");
                v["error"]["message"].as_str().unwrap().to_owned()
            };
            assert!(message.contains("Transfer-Encoding"), "{message}");
            assert_eq!(r.header("connection"), Some("close"));
        }
    }
    assert!(s.openai.requests().is_empty() && s.anthropic.requests().is_empty());
    assert_eq!(s.gw.chat(&s.key, body).await.status, 200);
}

/// Reads what arrives within `limit`, at most one read; empty when nothing did.
async fn read_within(conn: &mut Conn<tokio::net::tcp::OwnedReadHalf>, limit: Duration) -> Vec<u8> {
    match tokio::time::timeout(limit, conn.read_some(usize::MAX)).await {
        Ok(Ok(bytes)) => bytes,
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_read() {
    let s = Scenario::start().await;
    // The body is sent only once the 100 (or a final answer) is in: an answer that
    // comes at all came before the body. The bound only ends the wait for a gateway that
    // never answers (curl would send the body anyway after 1 s), with room for a busy
    // machine running a debug build.
    let soon = Duration::from_secs(5);
    let body = br#"{"model":"gpt-4o","messages":[]}"#;
    for filler in FILLERS {
        let body = if filler == 0 {
            body.to_vec()
        } else {
            common::padded_chat("gpt-4o", filler).into_bytes()
        };
        let head = raw_request(
            "POST /v1/chat/completions HTTP/1.1",
            &format!(
                "authorization: Bearer {}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\nconnection: close\r\n",
                s.key
            ),
            b"",
        );
        let head = String::from_utf8(head).unwrap().replace(
            "content-length: 0",
            &format!("content-length: {}", body.len()),
        );
        let (rd, mut wr) = TcpStream::connect(s.gw.proxy_addr)
            .await
            .unwrap()
            .into_split();
        let mut conn = Conn::new(rd);
        let upstream_before = s.openai.requests().len();
        wr.write_all(head.as_bytes()).await.unwrap();
        let interim = read_within(&mut conn, soon).await;
        assert_eq!(
            interim,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            "filler {filler}: no 100 Continue alone within {soon:?}: {:?}",
            String::from_utf8_lossy(&interim)
        );
        assert_eq!(s.openai.requests().len(), upstream_before);
        wr.write_all(&body).await.unwrap();
        let r = read_response(&mut conn, "POST").await.unwrap();
        assert_eq!(r.status, 200, "filler {filler}: {}", r.text());
        assert!(r.complete);
    }

    // Refused before the body: a final status at once, and the body is never read.
    for (auth, status) in [("authorization: Bearer tg_nope_nope\r\n", 401), ("", 401)] {
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let (rd, mut wr) = TcpStream::connect(s.gw.proxy_addr)
            .await
            .unwrap()
            .into_split();
        let mut conn = Conn::new(rd);
        wr.write_all(head.as_bytes()).await.unwrap();
        let r = tokio::time::timeout(soon, read_response(&mut conn, "POST"))
            .await
            .expect("a final answer without the body")
            .unwrap();
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(s.openai.requests().len(), FILLERS.len());
}

/// Sends a raw request and reads its whole response, the body as received (not
/// de-chunked) in `body` when the response is close-delimited.
async fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Response {
    send_raw(addr, raw).await.unwrap()
}

#[tokio::test]
async fn http_1_0_clients_get_close_delimited_streams() {
    let s = Scenario::start().await;
    for filler in FILLERS {
        let pad = "x".repeat(filler);
        let body = format!(
            r#"{{"model":"claude-sonnet-4-5","stream":true,"max_tokens":9,"messages":[],"pad":"{pad}"}}"#
        );
        let raw = raw_request(
            "POST /v1/messages HTTP/1.0",
            &format!("x-api-key: {}\r\ncontent-type: application/json\r\n", s.key),
            body.as_bytes(),
        );
        let r = exchange(s.gw.proxy_addr, &raw).await;
        assert_eq!(r.status, 200, "filler {filler}: {}", r.text());
        assert_eq!(
            r.header("transfer-encoding"),
            None,
            "filler {filler}: an HTTP/1.0 client cannot read chunked"
        );
        assert_eq!(r.framing, Framing::Close, "filler {filler}");
        assert!(
            r.complete,
            "filler {filler}: the body ends with the connection"
        );
        let sent = &s.anthropic.last_request().unwrap().response_body;
        assert_eq!(r.body, *sent, "filler {filler}: byte for byte");

        // A JSON answer keeps its length.
        let body = format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"pad":"{pad}"}}"#
        );
        let raw = raw_request(
            "POST /v1/messages HTTP/1.0",
            &format!("x-api-key: {}\r\ncontent-type: application/json\r\n", s.key),
            body.as_bytes(),
        );
        let r = exchange(s.gw.proxy_addr, &raw).await;
        assert_eq!(r.status, 200);
        assert!(
            matches!(r.framing, Framing::ContentLength(_)),
            "{:?}",
            r.framing
        );
    }
}

#[tokio::test]
async fn a_bare_lf_request_head_is_not_cut_at_the_head_deadline() {
    let s = Scenario::start_with(|c| c.server("header_timeout_ms", 300)).await;
    // A slow stream lasts about 16 x 50 ms, longer than the head deadline.
    let body = br#"{"model":"gpt-4o-slow-stream","stream":true,"messages":[]}"#;
    for ends in ["\n", "\r\n"] {
        let head = [
            "POST /v1/chat/completions HTTP/1.1".to_owned(),
            "host: x".to_owned(),
            format!("authorization: Bearer {}", s.key),
            "content-type: application/json".to_owned(),
            format!("content-length: {}", body.len()),
            "connection: close".to_owned(),
            String::new(),
            String::new(),
        ]
        .join(ends);
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        let r = exchange(s.gw.proxy_addr, &raw).await;
        assert_eq!(r.status, 200, "{ends:?}: {}", r.text());
        assert!(r.complete, "{ends:?}: the stream was cut");
        let sent = strip_usage_chunk(&s.openai.last_request().unwrap().response_body);
        assert_eq!(r.body, sent, "{ends:?}");
    }
    let metrics = s.gw.metrics().await;
    assert_eq!(
        metrics.sum("tollgate_connections_refused_total", &["header_timeout"]),
        0.0
    );
}

#[tokio::test]
async fn hop_by_hop_response_headers_never_reach_the_client() {
    let upstream = Scripted::start(|_| {
        Reply::json(200, r#"{"id":"x","choices":[]}"#)
            .header("connection", "x-hop-one, keep-alive")
            .header("connection", "X-Hop-Two")
            .header("x-hop-one", "secret")
            .header("x-hop-two", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=\"upstream\"")
            .header("x-kept", "1")
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("s", &upstream))
        .start_with_key("alice");
    for filler in FILLERS {
        let r = gw.chat(&key, common::padded_chat("gpt-4o", filler)).await;
        assert_eq!(r.status, 200, "filler {filler}");
        for gone in ["x-hop-one", "x-hop-two", "keep-alive", "proxy-authenticate"] {
            assert_eq!(
                r.header(gone),
                None,
                "filler {filler}: {gone} reached the client"
            );
        }
        assert_eq!(r.header("x-kept"), Some("1"), "filler {filler}");
        assert_eq!(r.body, br#"{"id":"x","choices":[]}"#);
    }
}

#[tokio::test]
async fn an_upstream_101_is_a_502_never_a_tunnel() {
    let upstream = Scripted::start(|_| {
        Reply::raw(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\ntunnel-bytes-from-upstream",
        )
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("s", &upstream))
        .start_with_key("alice");
    let auth = format!("Bearer {key}");
    for filler in FILLERS {
        let body = common::padded_chat("gpt-4o", filler);
        for upgrade in [false, true] {
            let mut headers = vec![("authorization", auth.as_str())];
            if upgrade {
                headers.push(("upgrade", "websocket"));
                headers.push(("connection", "upgrade"));
            }
            let r = request(
                gw.proxy_addr,
                "POST",
                "/v1/chat/completions",
                &headers,
                body.as_bytes(),
            )
            .await;
            let what = format!("filler {filler}, client upgrade {upgrade}");
            assert_eq!(r.status, 502, "{what}: {}", r.text());
            assert_eq!(r.json()["error"]["type"], "api_error", "{what}");
            assert!(
                find(&r.body, b"tunnel-bytes").is_none(),
                "{what}: upstream bytes reached the client"
            );
        }
    }
    assert_eq!(upstream.hits(), 2 * FILLERS.len(), "no retry of a 101");
}

#[tokio::test]
async fn invalid_utf8_inside_a_json_string_is_refused_in_the_clients_dialect() {
    let s = Scenario::start().await;
    for filler in FILLERS {
        let pad = "x".repeat(filler);
        for (path, auth, model) in [
            (
                "/v1/chat/completions",
                ("authorization", format!("Bearer {}", s.key)),
                "gpt-4o",
            ),
            (
                "/v1/messages",
                ("x-api-key", s.key.clone()),
                "claude-sonnet-4-5",
            ),
        ] {
            // Lone continuation bytes, a truncated sequence and an overlong encoding,
            // each inside a string the probe does not read.
            for bad in [&b"\xff\xfe"[..], b"\xe2\x82", b"\xc0\xaf"] {
                let mut body = format!(
                    r#"{{"model":"{model}","max_tokens":9,"pad":"{pad}","messages":[{{"role":"user","content":"a"#
                )
                .into_bytes();
                body.extend_from_slice(bad);
                body.extend_from_slice(br#"b"}]}"#);
                let r = request(
                    s.gw.proxy_addr,
                    "POST",
                    path,
                    &[
                        (auth.0, auth.1.as_str()),
                        ("content-type", "application/json"),
                    ],
                    &body,
                )
                .await;
                let what = format!("{path} filler {filler} {bad:?}");
                assert_eq!(r.status, 400, "{what}: {}", r.text());
                let v = r.json();
                if path == "/v1/messages" {
                    assert_eq!(v["type"], "error", "{what}");
                }
                assert_eq!(v["error"]["type"], "invalid_request_error", "{what}");
                let message = v["error"]["message"].as_str().unwrap();
                assert!(message.contains("UTF-8"), "{what}: {message}");
            }
        }
    }
    assert!(s.openai.requests().is_empty() && s.anthropic.requests().is_empty());
}
