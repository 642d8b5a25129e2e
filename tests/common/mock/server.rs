//! The mock's HTTP/1.1 server side: reads requests (keep-alive, `Content-Length` or
//! chunked bodies, `Expect: 100-continue`), records each with its planned answer, then
//! delivers that answer as the plan says (whole, paced, cut, stalled or never).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::answer::{decide, Decision, Delivery, Plan};
use super::{RecordedRequest, State};
use crate::common::http::{find_header, is_chunked, parse_head, ChunkEvent, Conn};

struct Incoming {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    raw_head: String,
    body: Vec<u8>,
    chunked: bool,
}

fn cut_short() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "request body cut short")
}

async fn read_request(
    conn: &mut Conn<OwnedReadHalf>,
    wr: &mut OwnedWriteHalf,
) -> std::io::Result<Option<Incoming>> {
    let Some(head) = conn.read_head().await? else {
        return Ok(None);
    };
    let raw_head = String::from_utf8_lossy(&head).into_owned();
    let (start, headers) = parse_head(&head)?;
    let mut parts = start.split(' ');
    let mut part = || parts.next().unwrap_or("").to_owned();
    let (method, target, version) = (part(), part(), part());
    if find_header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let chunked = is_chunked(&headers);
    let mut body = Vec::new();
    if chunked {
        loop {
            match conn.read_chunk().await? {
                ChunkEvent::Data(d) => body.extend_from_slice(&d),
                ChunkEvent::End(_) => break,
                ChunkEvent::Partial(_) | ChunkEvent::Eof => return Err(cut_short()),
            }
        }
    } else if let Some(n) =
        find_header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        let (b, whole) = conn.read_up_to(n).await;
        if !whole {
            return Err(cut_short());
        }
        body = b;
    }
    Ok(Some(Incoming {
        method,
        target,
        version,
        headers,
        raw_head,
        body,
        chunked,
    }))
}

/// Waits until the peer closes the connection (`true`) or `limit` passes (`false`).
/// Bytes that arrive meanwhile stay buffered for the next request.
async fn peer_closes_within(conn: &mut Conn<OwnedReadHalf>, limit: Option<Duration>) -> bool {
    let watch = async {
        loop {
            match conn.fill().await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {
                    // A pipelined request: keep it buffered, stop watching for EOF.
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    match limit {
        Some(d) => tokio::time::timeout(d, watch).await.unwrap_or(false),
        None => watch.await,
    }
}

fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Mock",
    }
}

/// The pieces a plan sends whole, and the raw bytes it sends after them (a cut's part
/// of the next piece).
fn sent_parts(plan: &Plan) -> (&[Vec<u8>], &[u8]) {
    match &plan.delivery {
        Delivery::All => (&plan.pieces, &[]),
        Delivery::Hang => (&[], &[]),
        Delivery::Cut { pieces, partial } => (&plan.pieces[..*pieces], partial.as_slice()),
        Delivery::Stall { pieces } => (&plan.pieces[..*pieces], &[]),
    }
}

/// The record of a request and of what the mock is about to send for it: the body
/// de-chunked (a chunked cut's partial bytes without their size line), and nothing at
/// all for `hang`.
fn record(
    req: Incoming,
    id: u64,
    conn_id: u64,
    d: &Decision,
    client_close: bool,
) -> RecordedRequest {
    let plan = &d.plan;
    let (sent_pieces, partial) = sent_parts(plan);
    let mut response_body: Vec<u8> = sent_pieces.concat();
    let mut response_chunks: Vec<Vec<u8>> = if plan.chunked {
        sent_pieces.to_vec()
    } else {
        Vec::new()
    };
    if !partial.is_empty() {
        let payload = if plan.chunked {
            let nl = partial
                .windows(2)
                .position(|w| w == b"\r\n")
                .map(|i| i + 2)
                .unwrap_or(0);
            &partial[nl..]
        } else {
            partial
        };
        response_body.extend_from_slice(payload);
        if plan.chunked {
            response_chunks.push(payload.to_vec());
        }
    }
    let hang = matches!(plan.delivery, Delivery::Hang);
    let mut response_headers = plan.headers.clone();
    // Cut and stalled responses do not announce that they will end early.
    if client_close && !hang {
        response_headers.push(("connection".to_owned(), "close".to_owned()));
    }
    if hang {
        (response_headers, response_body, response_chunks) = Default::default();
    }
    RecordedRequest {
        id,
        connection: conn_id,
        method: req.method,
        path_and_query: req.target,
        version: req.version,
        headers: req.headers,
        raw_head: req.raw_head,
        body: req.body,
        body_was_chunked: req.chunked,
        provider: d.provider,
        endpoint: d.endpoint,
        model: d.model.clone(),
        stream: d.stream,
        behaviours: d.behaviours.clone(),
        fixture: plan.fixture.clone(),
        response_status: if hang { 0 } else { plan.status },
        response_headers,
        response_body,
        response_chunks,
        finished: false,
        peer_closed: false,
    }
}

/// Writes the head and what the plan sends, pacing pieces by its delay (and holding a
/// `held-stream` after its first piece until `held` gives a permit); an error when the
/// peer left first.
async fn write_answer(
    conn: &mut Conn<OwnedReadHalf>,
    wr: &mut OwnedWriteHalf,
    plan: &Plan,
    headers: &[(String, String)],
    held: &tokio::sync::Semaphore,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    wr.write_all(head.as_bytes()).await?;
    let (sent_pieces, partial) = sent_parts(plan);
    for (i, piece) in sent_pieces.iter().enumerate() {
        if plan.held && i == 1 {
            wr.flush().await?;
            tokio::select! {
                permit = held.acquire() => permit.map_err(std::io::Error::other)?.forget(),
                _ = peer_closes_within(conn, None) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "peer closed",
                    ));
                }
            }
        }
        if let Some(d) = plan.delay {
            if (i > 0 || !plan.chunked) && peer_closes_within(conn, Some(d)).await {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "peer closed",
                ));
            }
        }
        if plan.chunked {
            wr.write_all(&chunk_frame(piece)).await?;
        } else {
            wr.write_all(piece).await?;
        }
    }
    if !partial.is_empty() {
        wr.write_all(partial).await?;
    }
    if plan.chunked && matches!(plan.delivery, Delivery::All) {
        wr.write_all(b"0\r\n\r\n").await?;
    }
    wr.flush().await
}

pub(super) async fn serve_connection(
    mut conn: Conn<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    state: Arc<State>,
    conn_id: u64,
) {
    loop {
        let req = match read_request(&mut conn, &mut wr).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        let credential = ["authorization", "x-api-key", "x-goog-api-key"]
            .iter()
            .find_map(|h| find_header(&req.headers, h))
            .unwrap_or("");
        let decision = decide(&req.method, &req.target, &req.body, credential, id);
        let client_close = find_header(&req.headers, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || req.version == "HTTP/1.0";
        let recorded = record(req, id, conn_id, &decision, client_close);
        let headers = recorded.response_headers.clone();
        let index = state.record(recorded);
        let plan = decision.plan;

        if matches!(plan.delivery, Delivery::Hang) {
            // Hold the socket, answer nothing; note when the peer gives up.
            if peer_closes_within(&mut conn, None).await {
                state.update(index, |r| r.peer_closed = true);
            }
            return;
        }
        if write_answer(&mut conn, &mut wr, &plan, &headers, &state.held)
            .await
            .is_err()
        {
            state.update(index, |r| r.peer_closed = true);
            return;
        }
        state.update(index, |r| r.finished = true);
        match plan.delivery {
            Delivery::All if !client_close => continue,
            Delivery::Stall { .. } => {
                if peer_closes_within(&mut conn, None).await {
                    state.update(index, |r| r.peer_closed = true);
                }
                return;
            }
            // Cut: dropping both halves closes the socket without the last chunk.
            _ => return,
        }
    }
}
