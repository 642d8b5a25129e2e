//! A small raw HTTP/1.1 client over tokio's `TcpStream`, written by hand so that tests see
//! the bytes and the framing (every chunk of a chunked body) exactly as they arrived.
//!
//! - [`request`]: one request on a fresh connection (`Connection: close`), the whole
//!   response read back ([`Response`]). Panics on I/O errors or after [`DEFAULT_TIMEOUT`];
//!   [`try_request`] returns the error instead.
//! - [`request_streaming`]: returns after the response header; read the body chunk by
//!   chunk with [`StreamingResponse::next_chunk`] and drop it to disconnect mid-stream.
//! - [`Client`]: a keep-alive connection for several requests in a row.
//! - [`send_raw`]: write arbitrary bytes (malformed or smuggling requests) and read one
//!   response.
//!
//! The buffered reader [`Conn`] and the head/chunk parsers are shared with the mock
//! upstream, which parses requests with them.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long [`request`] waits for a complete response before it panics.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A complete response as the client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The reason phrase of the status line (`OK`, `Too Many Requests`).
    pub reason: String,
    /// Header fields in the order received; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was chunked.
    pub body: Vec<u8>,
    /// Each HTTP chunk's payload as received (empty unless the body was chunked). A chunk
    /// cut short by the connection closing is the last entry, with what did arrive.
    pub chunks: Vec<Vec<u8>>,
    /// Trailer fields after the last chunk, if any.
    pub trailers: Vec<(String, String)>,
    /// How the body was delimited.
    pub framing: Framing,
    /// `true` when the body ended as its framing says (all `Content-Length` bytes, or the
    /// terminating zero-size chunk, or EOF for a close-delimited body); `false` when the
    /// connection closed early or reset.
    pub complete: bool,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    ContentLength(usize),
    Chunked,
    /// Read until the server closes the connection.
    Close,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every header with this name, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    /// The body parsed as JSON; panics with the status and body text when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ),
        }
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first header with this name (case-insensitive) in a list of fields.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every header with this name (case-insensitive) in a list of fields.
pub fn find_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Sends one request on a new connection and reads the whole response.
///
/// Adds `Host`, `Connection: close` and `Content-Length` unless `headers` already has
/// them (a caller that passes `transfer-encoding: chunked` must pass a chunked `body`).
/// `Content-Length` is left out for a GET/HEAD/DELETE with an empty body. The body is
/// written while the response is read, so an early answer (413) is seen even when the
/// server stops reading. Panics on an I/O error or after [`DEFAULT_TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    match try_request_timeout(addr, method, path, headers, body, DEFAULT_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => panic!("{method} {path} to {addr}: {e}"),
    }
}

/// [`request`] that returns the I/O error (refused, reset before any response) instead
/// of panicking. Still panics after [`DEFAULT_TIMEOUT`].
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    try_request_timeout(addr, method, path, headers, body, DEFAULT_TIMEOUT).await
}

/// [`try_request`] with its own time limit; a timeout is an `io::ErrorKind::TimedOut`.
pub async fn try_request_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> io::Result<Response> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut conn = Conn::new(rd);
        let head = request_head(addr, method, path, headers, body.len(), true);
        exchange_concurrently(&mut conn, wr, &head, body, method).await
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete response within {limit:?}"),
        )),
    }
}

/// Writes the request while reading the response; keeps the write half open until the
/// response has been read (dropping it would half-close the connection).
async fn exchange_concurrently(
    conn: &mut Conn<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    head: &[u8],
    body: &[u8],
    method: &str,
) -> io::Result<Response> {
    let write = async move {
        wr.write_all(head).await?;
        wr.write_all(body).await?;
        wr.flush().await?;
        Ok::<_, io::Error>(wr)
    };
    tokio::pin!(write);
    let read = read_response(conn, method);
    tokio::pin!(read);
    let mut write_done = false;
    let mut keep_writer = None;
    let mut write_error = None;
    let resp = loop {
        tokio::select! {
            r = &mut read => break r,
            w = &mut write, if !write_done => {
                write_done = true;
                match w {
                    Ok(wr) => keep_writer = Some(wr),
                    Err(e) => write_error = Some(e),
                }
            }
        }
    };
    drop(keep_writer);
    match (resp, write_error) {
        (Ok(r), _) => Ok(r),
        (Err(e), Some(we)) => Err(io::Error::new(
            e.kind(),
            format!("{e} (writing the request failed first: {we})"),
        )),
        (Err(e), None) => Err(e),
    }
}

/// Sends `raw` as is (it must be a complete request, or not: that is the point) and reads
/// one response, framed as for a non-HEAD request.
pub async fn send_raw(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut conn = Conn::new(rd);
        exchange_concurrently(&mut conn, wr, raw, b"", "POST").await
    };
    match tokio::time::timeout(DEFAULT_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no complete response",
        )),
    }
}

/// The request head: request line, `Host`, the caller's headers, then `Content-Length`
/// and `Connection: close` unless the caller set them.
pub fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
    close: bool,
) -> Vec<u8> {
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let bodyless = matches!(method, "GET" | "HEAD" | "DELETE") && body_len == 0;
    if !has("content-length") && !has("transfer-encoding") && !bodyless {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    if close && !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A response whose header has been read and whose body is read on demand.
pub struct StreamingResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    conn: Conn<OwnedReadHalf>,
    /// Kept so the connection is not half-closed while the body is read.
    _writer: OwnedWriteHalf,
    remaining: usize,
    done: bool,
    complete: bool,
    received: Vec<u8>,
}

/// Sends a request (default headers as [`request`]) and returns once the response header
/// has arrived. Panics on an I/O error or when no header arrives within
/// [`DEFAULT_TIMEOUT`].
pub async fn request_streaming(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> StreamingResponse {
    let fut = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        let head = request_head(addr, method, path, headers, body.len(), true);
        wr.write_all(&head).await?;
        wr.write_all(body).await?;
        wr.flush().await?;
        let mut conn = Conn::new(rd);
        let (status, reason, headers) = read_response_head(&mut conn).await?;
        let framing = response_framing(method, status, &headers);
        let remaining = match framing {
            Framing::ContentLength(n) => n,
            _ => 0,
        };
        Ok::<_, io::Error>(StreamingResponse {
            status,
            reason,
            headers,
            framing,
            conn,
            _writer: wr,
            remaining,
            done: framing == Framing::None || framing == Framing::ContentLength(0),
            complete: framing == Framing::None || framing == Framing::ContentLength(0),
            received: Vec::new(),
        })
    };
    match tokio::time::timeout(DEFAULT_TIMEOUT, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path} to {addr}: {e}"),
        Err(_) => {
            panic!("{method} {path} to {addr}: no response header within {DEFAULT_TIMEOUT:?}")
        }
    }
}

impl StreamingResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next piece of the body: one HTTP chunk's payload when chunked, otherwise what
    /// one read returned. `None` at the end of the body (check [`Self::is_complete`]) or
    /// after an I/O error. Wrap in `tokio::time::timeout` to bound the wait.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let piece = match self.framing {
            Framing::None => None,
            Framing::Chunked => match self.conn.read_chunk().await {
                Ok(ChunkEvent::Data(d)) => Some(d),
                Ok(ChunkEvent::Partial(d)) => {
                    self.done = true;
                    Some(d)
                }
                Ok(ChunkEvent::End(_)) => {
                    self.complete = true;
                    None
                }
                Ok(ChunkEvent::Eof) | Err(_) => None,
            },
            Framing::ContentLength(_) => match self.conn.read_some(self.remaining).await {
                Ok(d) if !d.is_empty() => {
                    self.remaining -= d.len();
                    if self.remaining == 0 {
                        self.done = true;
                        self.complete = true;
                    }
                    Some(d)
                }
                _ => None,
            },
            Framing::Close => match self.conn.read_some(usize::MAX).await {
                Ok(d) if !d.is_empty() => Some(d),
                Ok(_) => {
                    self.complete = true;
                    None
                }
                Err(_) => None,
            },
        };
        match &piece {
            Some(d) => self.received.extend_from_slice(d),
            None => self.done = true,
        }
        piece
    }

    /// Reads the rest of the body; returns everything received so far, this call's
    /// reads included.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.next_chunk().await.is_some() {}
        self.received.clone()
    }

    /// Everything received so far (de-chunked).
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Whether the body ended as its framing says (see [`Response::complete`]).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Closes the connection now (the same as dropping the value). With unread data in
    /// the socket's receive buffer the kernel answers with a reset instead of a FIN.
    pub fn disconnect(self) {}
}

/// A keep-alive connection: requests go one after another on the same socket and no
/// `Connection: close` is added.
pub struct Client {
    addr: SocketAddr,
    conn: Conn<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        let (rd, wr) = stream.into_split();
        Client {
            addr,
            conn: Conn::new(rd),
            wr,
        }
    }

    /// One request on this connection; panics on I/O errors or after [`DEFAULT_TIMEOUT`].
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        match self.try_request(method, path, headers, body).await {
            Ok(r) => r,
            Err(e) => panic!(
                "{method} {path} on a kept-alive connection to {}: {e}",
                self.addr
            ),
        }
    }

    /// The connection itself, for raw use after requests on it; nothing of it may be
    /// left unread.
    #[allow(dead_code)] // not every test binary uses it
    pub fn into_inner(self) -> TcpStream {
        assert_eq!(
            self.conn.pos,
            self.conn.buf.len(),
            "unread bytes on the connection"
        );
        self.conn.rd.reunite(self.wr).unwrap()
    }

    /// [`Client::request`] returning the I/O error (for example when the server closed
    /// the connection).
    pub async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let head = request_head(self.addr, method, path, headers, body.len(), false);
        let fut = async {
            self.wr.write_all(&head).await?;
            self.wr.write_all(body).await?;
            self.wr.flush().await?;
            read_response(&mut self.conn, method).await
        };
        match tokio::time::timeout(DEFAULT_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete response",
            )),
        }
    }
}

/// Reads one response (skipping 1xx interim responses) and its body.
pub async fn read_response<R: AsyncRead + Unpin>(
    conn: &mut Conn<R>,
    method: &str,
) -> io::Result<Response> {
    let (status, reason, headers) = read_response_head(conn).await?;
    let framing = response_framing(method, status, &headers);
    let mut resp = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
        chunks: Vec::new(),
        trailers: Vec::new(),
        framing,
        complete: false,
    };
    match framing {
        Framing::None => resp.complete = true,
        Framing::ContentLength(n) => {
            let (body, complete) = conn.read_up_to(n).await;
            resp.body = body;
            resp.complete = complete;
        }
        Framing::Close => {
            let (body, complete) = conn.read_to_eof().await;
            resp.body = body;
            resp.complete = complete;
        }
        Framing::Chunked => loop {
            match conn.read_chunk().await {
                Ok(ChunkEvent::Data(d)) => {
                    resp.body.extend_from_slice(&d);
                    resp.chunks.push(d);
                }
                Ok(ChunkEvent::Partial(d)) => {
                    resp.body.extend_from_slice(&d);
                    resp.chunks.push(d);
                    break;
                }
                Ok(ChunkEvent::End(trailers)) => {
                    resp.trailers = trailers;
                    resp.complete = true;
                    break;
                }
                Ok(ChunkEvent::Eof) | Err(_) => break,
            }
        },
    }
    Ok(resp)
}

/// Reads a status line and header fields, skipping `1xx` interim responses (not 101).
pub async fn read_response_head<R: AsyncRead + Unpin>(
    conn: &mut Conn<R>,
) -> io::Result<(u16, String, Vec<(String, String)>)> {
    loop {
        let head = conn.read_head().await?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let (start, headers) = parse_head(&head)?;
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(bad_data(format!("not an HTTP/1.x status line: {start:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data(format!("bad status line: {start:?}")))?;
        let reason = parts.next().unwrap_or("").to_owned();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok((status, reason, headers));
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
pub fn response_framing(method: &str, status: u16, headers: &[(String, String)]) -> Framing {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Framing::None;
    }
    if is_chunked(headers) {
        return Framing::Chunked;
    }
    match find_header(headers, "content-length").and_then(|v| v.trim().parse().ok()) {
        Some(n) => Framing::ContentLength(n),
        None => Framing::Close,
    }
}

/// Whether `transfer-encoding` ends in `chunked`.
pub fn is_chunked(headers: &[(String, String)]) -> bool {
    find_all(headers, "transfer-encoding")
        .last()
        .and_then(|v| v.split(',').next_back())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// Splits a head (start line, fields, blank line) into the start line and the fields,
/// names lowercased and values trimmed.
pub fn parse_head(head: &[u8]) -> io::Result<(String, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).map_err(|_| bad_data("head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_data(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((start, headers))
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// What reading one chunk of a chunked body gave.
#[derive(Debug)]
pub enum ChunkEvent {
    /// A whole chunk's payload.
    Data(Vec<u8>),
    /// A chunk cut short by EOF: what arrived of it.
    Partial(Vec<u8>),
    /// The zero-size last chunk, with the trailer fields.
    End(Vec<(String, String)>),
    /// EOF where a chunk-size line was expected.
    Eof,
}

/// A buffered reader over one side of a connection.
pub struct Conn<R> {
    rd: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: AsyncRead + Unpin> Conn<R> {
    pub fn new(rd: R) -> Self {
        Conn {
            rd,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
        }
    }

    /// The underlying reader.
    pub fn inner(&self) -> &R {
        &self.rd
    }

    /// Bytes read from the socket but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // Into the Vec's spare capacity: a stack buffer would live in every future
        // that awaits this one and overflow the test thread's stack.
        self.buf.reserve(64 * 1024);
        self.rd.read_buf(&mut self.buf).await
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// Reads up to and including the blank line that ends a head. `Ok(None)` on EOF
    /// before any byte of it; an error on EOF in the middle.
    pub async fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut searched: usize = 0;
        loop {
            let avail = &self.buf[self.pos..];
            if let Some(i) = find(&avail[searched.saturating_sub(3)..], b"\r\n\r\n") {
                let end = searched.saturating_sub(3) + i + 4;
                return Ok(Some(self.take(end)));
            }
            searched = avail.len();
            if searched > 1024 * 1024 {
                return Err(bad_data("head larger than 1 MiB".into()));
            }
            if self.fill().await? == 0 {
                return if self.buffered().is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a head",
                    ))
                };
            }
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF); `Ok(None)` at EOF first.
    pub async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = find(self.buffered(), b"\r\n") {
                let line = self.take(i);
                self.pos += 2;
                return Ok(Some(line));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads exactly `n` bytes, or fewer when the connection ends first (then `false`).
    pub async fn read_up_to(&mut self, n: usize) -> (Vec<u8>, bool) {
        while self.buffered().len() < n {
            match self.fill().await {
                Ok(0) | Err(_) => {
                    let len = self.buffered().len();
                    return (self.take(len), false);
                }
                Ok(_) => {}
            }
        }
        (self.take(n), true)
    }

    /// What is buffered, or the next read, at most `max` bytes; empty at EOF.
    pub async fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if self.buffered().is_empty() && self.fill().await? == 0 {
            return Ok(Vec::new());
        }
        let n = self.buffered().len().min(max);
        Ok(self.take(n))
    }

    /// Reads until EOF; `false` when the connection failed (reset) rather than closed.
    pub async fn read_to_eof(&mut self) -> (Vec<u8>, bool) {
        loop {
            match self.fill().await {
                Ok(0) => {
                    let len = self.buffered().len();
                    return (self.take(len), true);
                }
                Ok(_) => {}
                Err(_) => {
                    let len = self.buffered().len();
                    return (self.take(len), false);
                }
            }
        }
    }

    /// Reads one chunk of a chunked body (size line, payload, CRLF); after the last chunk
    /// also the trailer section.
    pub async fn read_chunk(&mut self) -> io::Result<ChunkEvent> {
        let Some(line) = self.read_line().await? else {
            return Ok(ChunkEvent::Eof);
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad_data(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            let mut trailers = Vec::new();
            while let Some(l) = self.read_line().await? {
                if l.is_empty() {
                    break;
                }
                let l = String::from_utf8_lossy(&l).into_owned();
                if let Some((k, v)) = l.split_once(':') {
                    trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            return Ok(ChunkEvent::End(trailers));
        }
        let (data, whole) = self.read_up_to(size).await;
        if !whole {
            return Ok(ChunkEvent::Partial(data));
        }
        let (crlf, whole) = self.read_up_to(2).await;
        if !whole {
            // The payload arrived but the connection closed before its CRLF.
            return Ok(ChunkEvent::Partial(data));
        }
        if crlf != b"\r\n" {
            return Err(bad_data("chunk payload not followed by CRLF".into()));
        }
        Ok(ChunkEvent::Data(data))
    }
}

/// The first index of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
