//! Hostile and malformed requests over raw sockets: each gets a clear refusal (or the
//! connection closed), never reaches an upstream, and the gateway keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::gateway::GatewayBuilder;
use common::http::{request, send_raw};
use common::mock_upstream::MockUpstream;

#[tokio::test]
async fn malformed_and_ambiguous_requests_are_refused() {
    let mock = MockUpstream::start().await;
    let ups = format!(
        "  - name: o\n    kind: openai\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [o]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
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
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {key}"))],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "the gateway keeps serving");
}
