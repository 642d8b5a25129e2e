//! TLS on the gateway's own listeners (`server.tls`, `admin.tls`): HTTP/1.1 and HTTP/2
//! clients (chosen by ALPN) get JSON answers and streams with usage recorded; a reload
//! with a new certificate reaches new connections while streams opened before it run to
//! their end; a reload whose key does not match is refused and the certificate in force
//! stays; the admin listener answers over TLS; `tollgate check` reports each problem of
//! the TLS files on one line.
//!
//! Clients: tokio-rustls trusting only the test root (`tests/fixtures/tls/listener`),
//! with a fresh session cache per connection so that every connection makes a full
//! handshake; the `h2` crate for HTTP/2, the kit's HTTP/1.1 reader for HTTP/1.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::http::{
    parse_head, read_response_head, request_head, response_framing, ChunkEvent, Conn, Framing,
};
use common::mock::{event_data, fixture, sse_events, strip_usage_chunk};
use common::{GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/listener");
/// How long one exchange may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

/// The DER of the first certificate in `tests/fixtures/tls/listener/<name>`.
fn leaf(name: &str) -> Vec<u8> {
    let pem = std::fs::read(format!("{DIR}/{name}")).unwrap();
    let first = rustls_pemfile::certs(&mut pem.as_slice()).next();
    first.unwrap().unwrap().to_vec()
}

/// Which fixture certificate `der` is (`first`, `second`), for readable failures.
fn which(der: &[u8]) -> &'static str {
    ["first", "second", "expired"]
        .into_iter()
        .find(|name| leaf(&format!("{name}.pem")) == der)
        .unwrap_or("an unknown certificate")
}

/// Copies the fixture pair `<name>.pem`/`<name>.key` to `tls-cert.pem`/`tls-key.pem`
/// in `dir`, where the config's relative paths point.
fn install_cert(dir: &std::path::Path, name: &str) {
    std::fs::copy(format!("{DIR}/{name}.pem"), dir.join("tls-cert.pem")).unwrap();
    std::fs::copy(format!("{DIR}/{name}.key"), dir.join("tls-key.pem")).unwrap();
}

const RELATIVE_TLS: &str = "{ cert: tls-cert.pem, key: tls-key.pem }";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    H1,
    H2,
}

/// A TLS connection to `addr` as `localhost`, offering only `proto` by ALPN.
async fn connect(addr: SocketAddr, proto: Proto) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(format!("{DIR}/root.pem")).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![match proto {
        Proto::H1 => b"http/1.1".to_vec(),
        Proto::H2 => b"h2".to_vec(),
    }];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let want = match proto {
        Proto::H1 => b"http/1.1".to_vec(),
        Proto::H2 => b"h2".to_vec(),
    };
    assert_eq!(alpn, Some(want), "ALPN must select what the client offered");
    tls
}

/// One request on a new TLS connection, its response header read; the body is read with
/// [`Exchange::next`] / [`Exchange::rest`].
struct Exchange {
    status: u16,
    headers: Vec<(String, String)>,
    /// The DER of the certificate the server presented.
    cert: Vec<u8>,
    body: Body,
}

enum Body {
    H1 {
        conn: Conn<ReadHalf<TlsStream<TcpStream>>>,
        /// Kept open until the response is read (dropping it would close the stream).
        _wr: WriteHalf<TlsStream<TcpStream>>,
        framing: Framing,
        done: bool,
    },
    H2(h2::RecvStream),
}

impl Exchange {
    async fn send(
        addr: SocketAddr,
        proto: Proto,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Exchange {
        let tls = connect(addr, proto).await;
        let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let (status, headers, body) = match proto {
            Proto::H1 => {
                let exchange = Self::send_h1(tls, addr, method, path, headers, body);
                tokio::time::timeout(LIMIT, exchange).await.unwrap()
            }
            Proto::H2 => {
                let exchange = Self::send_h2(tls, method, path, headers, body);
                tokio::time::timeout(LIMIT, exchange).await.unwrap()
            }
        };
        Exchange {
            status,
            headers,
            cert,
            body,
        }
    }

    async fn send_h1(
        tls: TlsStream<TcpStream>,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Body) {
        let (rd, mut wr) = tokio::io::split(tls);
        let mut head = request_head(addr, method, path, headers, body.len(), true);
        head.extend_from_slice(body);
        wr.write_all(&head).await.unwrap();
        wr.flush().await.unwrap();
        let mut conn = Conn::new(rd);
        let (status, _, headers) = read_response_head(&mut conn).await.unwrap();
        let framing = response_framing(method, status, &headers);
        let body = Body::H1 {
            conn,
            _wr: wr,
            framing,
            done: false,
        };
        (status, headers, body)
    }

    async fn send_h2(
        tls: TlsStream<TcpStream>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Body) {
        let (send, connection) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await.unwrap();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if !body.is_empty() {
            request = request.header("content-length", body.len());
        }
        let (response, mut tx) = send
            .send_request(request.body(()).unwrap(), body.is_empty())
            .unwrap();
        if !body.is_empty() {
            tx.send_data(Bytes::copy_from_slice(body), true).unwrap();
        }
        let response = response.await.unwrap();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let status = response.status().as_u16();
        (status, headers, Body::H2(response.into_body()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        common::http::find_header(&self.headers, name)
    }

    /// The next piece of the body as it arrived (an HTTP/1.1 chunk, an HTTP/2 DATA
    /// frame), or `None` at its end. Panics when the body is cut short.
    async fn next(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(LIMIT, self.next_piece())
            .await
            .expect("the next piece of the body within the limit")
    }

    async fn next_piece(&mut self) -> Option<Vec<u8>> {
        match &mut self.body {
            Body::H1 { done: true, .. } => None,
            Body::H1 {
                conn,
                framing,
                done,
                ..
            } => {
                *done = !matches!(framing, Framing::Chunked);
                match framing {
                    Framing::Chunked => match conn.read_chunk().await.unwrap() {
                        ChunkEvent::Data(d) => Some(d),
                        ChunkEvent::End(_) => {
                            *done = true;
                            None
                        }
                        other => panic!("the chunked body was cut short: {other:?}"),
                    },
                    Framing::ContentLength(n) => {
                        let (body, whole) = conn.read_up_to(*n).await;
                        assert!(whole, "the body was cut short");
                        Some(body)
                    }
                    Framing::None => None,
                    Framing::Close => Some(conn.read_to_eof().await.0),
                }
            }
            Body::H2(recv) => {
                let data = recv.data().await?.expect("an HTTP/2 DATA frame");
                recv.flow_control().release_capacity(data.len()).unwrap();
                Some(data.to_vec())
            }
        }
    }

    /// The rest of the body.
    async fn rest(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(piece) = self.next().await {
            all.extend_from_slice(&piece);
        }
        all
    }

    fn json(body: &[u8]) -> Value {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
    }
}

/// An OpenAI-style upstream that streams `openai/chat.sse` (usage chunk included) and
/// holds every stream after its first event until the test releases it, so a test knows
/// a stream is open while it acts.
struct HeldStreams {
    addr: SocketAddr,
    permits: Arc<Semaphore>,
}

impl HeldStreams {
    async fn start() -> HeldStreams {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let permits = Arc::new(Semaphore::new(0));
        let held = permits.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(Self::serve(tcp, held.clone()));
            }
        });
        HeldStreams { addr, permits }
    }

    /// Lets `n` held streams (or streams still to come) finish.
    fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn serve(tcp: TcpStream, permits: Arc<Semaphore>) {
        let (rd, mut wr) = tcp.into_split();
        let mut conn = Conn::new(rd);
        let Ok(Some(head)) = conn.read_head().await else {
            return;
        };
        let (_, headers) = parse_head(&head).unwrap();
        let length =
            common::http::find_header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
        conn.read_up_to(length).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        wr.write_all(head.as_bytes()).await.unwrap();
        for (i, event) in sse_events(&fixture("openai/chat.sse")).iter().enumerate() {
            if i == 1 {
                permits.acquire().await.unwrap().forget();
            }
            let chunk = [format!("{:x}\r\n", event.len()).as_bytes(), event, b"\r\n"].concat();
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
        let _ = wr.shutdown().await;
    }
}

/// The held stream's model; every other model goes to the JSON mock.
const HELD: &str = "gpt-held";

fn stream_body() -> String {
    format!(r#"{{"model":"{HELD}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// What a client that did not ask for usage receives from the held stream.
fn expected_stream() -> Vec<u8> {
    strip_usage_chunk(&fixture("openai/chat.sse"))
}

/// The `completion_tokens` an upstream reported in a JSON body or in an SSE stream.
fn completion_tokens(body: &[u8]) -> u64 {
    let from = |doc: Value| doc["usage"]["completion_tokens"].as_u64();
    if let Ok(doc) = serde_json::from_slice::<Value>(body) {
        return from(doc).unwrap();
    }
    sse_events(body)
        .iter()
        .filter_map(|e| serde_json::from_str(&event_data(e)?).ok())
        .filter_map(from)
        .sum()
}

/// A gateway whose proxy listeners have TLS with the fixture `first`, routing
/// [`HELD`] to `held` and every other model to `mock`; an admin `root` and a member
/// `alice` with a key each (admin key first).
fn tls_gateway(mock: &MockUpstream, held: &HeldStreams) -> (common::Gateway, String, String) {
    tls_gateway_with(mock, held, |b| b)
}

/// [`tls_gateway`] with more settings.
fn tls_gateway_with(
    mock: &MockUpstream,
    held: &HeldStreams,
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> (common::Gateway, String, String) {
    let builder = GatewayBuilder::new()
        .upstream(Upstream::openai("held", &held.base_url()).keys(&["sk-h"]))
        .upstream(Upstream::openai("o", mock).keys(&["sk-o"]))
        .route(&[HELD], &["held"])
        .route(&["*"], &["o"])
        .server("tls", RELATIVE_TLS)
        .user("root", "admin")
        .user("alice", "member");
    let mut gw = configure(builder).build();
    install_cert(gw.dir(), "first");
    gw.start();
    let admin = gw.create_key("root", &[]);
    let key = gw.create_key("alice", &[]);
    (gw, admin, key)
}

#[tokio::test]
async fn http1_and_http2_clients_get_json_and_streams_with_usage_recorded() {
    let mock = MockUpstream::start().await;
    let held = HeldStreams::start().await;
    let (gw, admin, key) = tls_gateway(&mock, &held);
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let path = "/v1/chat/completions";

    for proto in [Proto::H1, Proto::H2] {
        // JSON: the upstream's answer, byte for byte.
        let mut r = Exchange::send(
            gw.proxy_addr,
            proto,
            "POST",
            path,
            &headers,
            CHAT.as_bytes(),
        )
        .await;
        assert_eq!(which(&r.cert), "first", "{proto:?}");
        let body = r.rest().await;
        assert_eq!(
            r.status,
            200,
            "{proto:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            body,
            mock.last_request().unwrap().response_body,
            "{proto:?}"
        );
        Exchange::json(&body);

        // A stream: its first event arrives while the upstream still holds the rest,
        // then everything the upstream sent, except the usage chunk nobody asked for.
        let mut s = Exchange::send(
            gw.proxy_addr,
            proto,
            "POST",
            path,
            &headers,
            stream_body().as_bytes(),
        )
        .await;
        assert_eq!(s.status, 200, "{proto:?}");
        assert!(
            s.header("content-type")
                .unwrap()
                .starts_with("text/event-stream"),
            "{proto:?}"
        );
        let first = s.next().await.unwrap();
        let expected = expected_stream();
        assert!(
            !first.is_empty() && expected.starts_with(&first),
            "{proto:?}: the first piece is the start of the stream"
        );
        held.release(1);
        let mut all = first;
        all.extend(s.rest().await);
        assert!(
            all == expected,
            "{proto:?}: the stream differs from the upstream's"
        );
    }

    // Four requests, metered from the usage the upstreams reported.
    let doc = gw.usage_after(&admin, "key", 4).await;
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{doc}");
    assert_eq!(rows[0]["requests"], 4, "{doc}");
    assert_eq!(rows[0]["estimated_requests"], 0, "{doc}");
    let json_tokens: u64 = mock
        .requests()
        .iter()
        .map(|r| completion_tokens(&r.response_body))
        .sum();
    let stream_tokens = completion_tokens(&fixture("openai/chat.sse"));
    assert!(json_tokens > 0 && stream_tokens > 0);
    assert_eq!(
        rows[0]["output_tokens"].as_u64().unwrap(),
        json_tokens + 2 * stream_tokens,
        "{doc}"
    );
}

#[tokio::test]
async fn reload_puts_a_new_certificate_in_force_while_open_streams_finish() {
    let mock = MockUpstream::start().await;
    let held = HeldStreams::start().await;
    let (mut gw, _admin, key) = tls_gateway(&mock, &held);
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let path = "/v1/chat/completions";
    let body = stream_body();

    // A stream over each protocol, open and held, with the first certificate.
    let mut open = Vec::new();
    for proto in [Proto::H1, Proto::H2] {
        let mut s = Exchange::send(
            gw.proxy_addr,
            proto,
            "POST",
            path,
            &headers,
            body.as_bytes(),
        )
        .await;
        assert_eq!(s.status, 200, "{proto:?}");
        assert_eq!(which(&s.cert), "first");
        let first = s.next().await.unwrap();
        open.push((proto, s, first));
    }

    // New files, then `tollgate reload`.
    install_cert(gw.dir(), "second");
    let out = gw.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        gw.wait_for_log_async(
            "reload: server.tls: new connections get certificate CN=localhost (second)",
            LIMIT
        )
        .await,
        "{}",
        gw.logs()
    );

    // New connections get the new certificate, over both protocols.
    for proto in [Proto::H1, Proto::H2] {
        let mut r = Exchange::send(
            gw.proxy_addr,
            proto,
            "POST",
            path,
            &headers,
            CHAT.as_bytes(),
        )
        .await;
        assert_eq!(which(&r.cert), "second", "{proto:?}");
        r.rest().await;
        assert_eq!(r.status, 200, "{proto:?}");
    }

    // The streams opened before the reload are still open, and complete.
    held.release(open.len());
    for (proto, mut s, first) in open {
        let mut all = first;
        all.extend(s.rest().await);
        assert!(
            all == expected_stream(),
            "{proto:?}: the stream across the reload differs from the upstream's"
        );
    }

    // A key that does not match: the gateway refuses the reload (SIGHUP sent directly,
    // since `tollgate reload` checks first), says why on one line, and keeps the
    // certificate in force.
    std::fs::copy(format!("{DIR}/first.key"), gw.dir().join("tls-key.pem")).unwrap();
    let out = gw.cli(&["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls: the private key"), "{err}");
    gw.signal("HUP");
    assert!(
        gw.wait_for_log_async("reload refused, the config in force stays", LIMIT)
            .await,
        "{}",
        gw.logs()
    );
    let refused: Vec<String> = gw
        .logs()
        .lines()
        .filter(|l| l.contains("reload refused"))
        .map(str::to_owned)
        .collect();
    assert_eq!(refused.len(), 1, "one line: {refused:?}");
    assert!(
        refused[0].contains("server.tls: the private key") && refused[0].contains("does not match"),
        "{refused:?}"
    );
    let mut r = Exchange::send(
        gw.proxy_addr,
        Proto::H2,
        "POST",
        path,
        &headers,
        CHAT.as_bytes(),
    )
    .await;
    assert_eq!(which(&r.cert), "second");
    r.rest().await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn http2_streams_are_not_cut_by_the_http1_head_deadline() {
    // The head deadline reads HTTP/1 framing; an HTTP/2 connection quiet for longer than
    // it while its stream waits on the upstream must stay up.
    let deadline = Duration::from_millis(300);
    let mock = MockUpstream::start().await;
    let held = HeldStreams::start().await;
    let (gw, _admin, key) = tls_gateway_with(&mock, &held, |b| {
        b.server("header_timeout_ms", deadline.as_millis())
    });
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    let body = stream_body();
    let path = "/v1/chat/completions";
    let mut s = Exchange::send(
        gw.proxy_addr,
        Proto::H2,
        "POST",
        path,
        &headers,
        body.as_bytes(),
    )
    .await;
    assert_eq!(s.status, 200);
    let mut all = s.next().await.unwrap();
    // Not a synchronisation: the quiet time under test, several deadlines long.
    tokio::time::sleep(deadline * 4).await;
    held.release(1);
    all.extend(s.rest().await);
    assert!(all == expected_stream(), "the HTTP/2 stream was cut");
}

#[tokio::test]
async fn the_admin_listener_answers_over_tls() {
    let mut gw = GatewayBuilder::new().admin("tls", RELATIVE_TLS).build();
    install_cert(gw.dir(), "first");
    gw.start();
    for proto in [Proto::H1, Proto::H2] {
        let mut r = Exchange::send(gw.admin_addr, proto, "GET", "/healthz", &[], b"").await;
        assert_eq!(which(&r.cert), "first", "{proto:?}");
        let body = r.rest().await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(Exchange::json(&body)["status"], "ok", "{proto:?}");
    }
    // The proxy listener stayed plain HTTP.
    let r = common::http::request(gw.proxy_addr, "GET", "/v1/models", &[], b"").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn check_reports_each_tls_problem_on_one_line_and_warns_of_expiry() {
    let bad = GatewayBuilder::new()
        .server("tls", "{ cert: missing.pem, key: tls-key.pem }")
        .admin("tls", "{ cert: tls-cert.pem, key: other.key }")
        .build();
    install_cert(bad.dir(), "first");
    std::fs::copy(format!("{DIR}/second.key"), bad.dir().join("other.key")).unwrap();
    let out = bad.cli(&["check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(".tls")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].ends_with(
            "server.tls.cert: cannot read missing.pem: No such file or directory (os error 2)"
        ),
        "{err}"
    );
    assert!(
        lines[1].ends_with(
            "admin.tls: the private key other.key does not match the certificate tls-cert.pem"
        ),
        "{err}"
    );

    let expired = GatewayBuilder::new().server("tls", RELATIVE_TLS).build();
    install_cert(expired.dir(), "expired");
    let out = expired.cli_ok(&["check"]);
    // This config routes nothing, which check also warns of; only the TLS warning counts.
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains(".tls"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains(
            "server.tls.cert: the certificate tls-cert.pem (CN=localhost (expired)) expired on "
        ),
        "{out}"
    );
    assert!(out.lines().last().unwrap().contains(": OK ("), "{out}");
}
