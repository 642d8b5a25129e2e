//! Upstream TLS: SNI is sent, the certificate is checked against the trusted roots, and
//! an untrusted certificate is a 502, never a silent downgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};

use common::{GatewayBuilder, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A one-purpose HTTPS upstream: answers every request with a fixed chat completion and
/// records the SNI each handshake carried.
async fn tls_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs =
        rustls_pemfile::certs(&mut &std::fs::read(format!("{FIXTURES}/leaf.pem")).unwrap()[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    let key = rustls_pemfile::private_key(
        &mut &std::fs::read(format!("{FIXTURES}/leaf.key")).unwrap()[..],
    )
    .unwrap()
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let snis = Arc::new(Mutex::new(Vec::new()));
    let seen = snis.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().unwrap_or("").to_owned());
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tls.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = br#"{"id":"chatcmpl-tls","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, snis)
}

#[tokio::test]
async fn trusted_certificate_with_sni_works_untrusted_is_502() {
    let (port, snis) = tls_upstream().await;
    let secure = GatewayBuilder::new().only_upstream(
        Upstream::openai("secure", &format!("https://localhost:{port}")).keys(&["sk"]),
    );
    let body = br#"{"model":"gpt-4o-mini","messages":[]}"#;

    // Trusting only the test CA: the handshake verifies and carries the SNI.
    let (gw, key) = secure
        .clone()
        .env("SSL_CERT_FILE", &format!("{FIXTURES}/ca.pem"))
        .start_with_key("alice");
    let r = gw.chat(&key, body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["id"], "chatcmpl-tls");
    assert_eq!(
        snis.lock().unwrap().last().map(String::as_str),
        Some("localhost")
    );
    drop(gw);

    // With the system roots only, the test certificate is not trusted: 502, no request.
    let before = snis.lock().unwrap().len();
    let (gw, key) = secure.start_with_key("alice");
    let r = gw.chat(&key, body).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["type"], "api_error");
    assert!(
        snis.lock().unwrap().len() == before,
        "no TLS session was completed"
    );
}
