//! A deadline for receiving each request head (slowloris defence).
//!
//! Pingora times out each read of a request head on its own (the keep-alive timeout),
//! so a client sending one byte a minute holds a connection forever. [`HeadDeadline`]
//! wraps the accepted connection and fails the read once a request head has been
//! arriving for longer than the limit: from the accept for the first request, and from
//! its first byte for each later one on a kept-alive connection. The head ends at its
//! empty line (CRLF or a bare LF, found by `tollgate_filters::head`); the body has its
//! own deadline (`server.body_timeout_ms`). An interim `100 Continue` does not end the
//! message: its body is still to come.
//!
//! It also bounds the head's size while it arrives: no read of a head goes past
//! [`MAX_HEAD_BYTES`], and a head that reaches it without ending is answered 431 here
//! and the connection closed, so an endless head costs 64 KiB, not the megabyte Pingora
//! would buffer before its own check.
//!
//! Every read of the connection passes here, so it is also where a request still in
//! flight at the end of the shutdown grace period learns of it: its next read fails
//! (`super::grace`), and the request ends through its error path.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::TimingDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tollgate_filters::{head, Dialect, GatewayError};

use super::grace::Watch;

/// Request heads larger than this are refused (431) while they arrive: no LLM client
/// needs more, and a proxy that buffers anything is a cheap memory target.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head; `matched` is where the scan of its end stands
    /// (`tollgate_filters::head::scan`).
    Head { matched: u8 },
    /// The head is complete: body bytes, then the response.
    Message,
    /// A response was written: the next byte read starts the next request head.
    Idle,
}

/// The accepted connection with the head deadline applied.
pub struct HeadDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// Fires at the current head's deadline; only polled while in `Head`.
    timer: Pin<Box<Sleep>>,
    /// Bytes of the current head read so far (while in `Head`).
    head_bytes: usize,
    /// The dialect of the current head's path, known only for a head that did not
    /// arrive in one read (the 431's envelope).
    dialect: Dialect,
    /// The 431 being written to a head past the limit, and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
    /// The end of the shutdown grace period; polled when a read waits.
    grace: Watch,
}

impl HeadDeadline {
    pub fn new(inner: Stream, limit: Duration) -> Self {
        HeadDeadline {
            inner,
            limit,
            phase: Phase::Head { matched: 0 },
            timer: Box::pin(tokio::time::sleep(limit)),
            head_bytes: 0,
            dialect: Dialect::OpenAi,
            refusal: None,
            grace: Watch::default(),
        }
    }

    /// How many more bytes a read may take: what is left of the head's allowance while
    /// a head arrives (a new one starts at the next byte when idle); no bound otherwise.
    fn head_room(&self) -> Option<usize> {
        match self.phase {
            Phase::Head { .. } => Some(MAX_HEAD_BYTES.saturating_sub(self.head_bytes)),
            Phase::Idle => Some(MAX_HEAD_BYTES),
            Phase::Message => None,
        }
    }

    /// Counts a read of `bytes` (already seen by [`Self::saw`], which left `was` as the
    /// phase before it) toward the head; true once a head reached the limit unended.
    fn count_head(&mut self, was: Phase, bytes: &[u8]) -> bool {
        if !matches!(self.phase, Phase::Head { .. }) {
            return false; // the head ended in this read, or a body is arriving
        }
        if was == Phase::Idle || self.head_bytes == 0 {
            // Only a head longer than one read pays for this.
            self.dialect = dialect_of_request_line(bytes);
            self.head_bytes = 0;
        }
        self.head_bytes += bytes.len();
        self.head_bytes >= MAX_HEAD_BYTES
    }

    /// Reads at most `n` bytes into `buf` (whose room is larger).
    fn poll_read_at_most(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        n: usize,
    ) -> Poll<io::Result<()>> {
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(n));
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut part);
        let got = part.filled().len();
        buf.advance(got);
        polled
    }

    /// Writes the 431 of a head past the limit, then fails the read, which ends the
    /// connection. Bounded by the head deadline if the client does not read.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((bytes, written)) = self.refusal.as_mut() {
            while *written < bytes.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(n)) if n > 0 => *written += n,
                    Poll::Ready(_) => break,
                    Poll::Pending => {
                        if self.timer.as_mut().poll(cx).is_ready() {
                            break;
                        }
                        return Poll::Pending;
                    }
                }
            }
        }
        if Pin::new(&mut self.inner).poll_flush(cx).is_pending()
            && self.timer.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            HEAD_TOO_LARGE,
        )))
    }

    /// Starts refusing the current head: 431 in the dialect of its path.
    fn refuse_head(&mut self) {
        crate::metrics::connection_refused("head_too_large");
        let body = GatewayError::HeadersTooLarge(MAX_HEAD_BYTES).body(self.dialect);
        let mut bytes = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        self.refusal = Some((bytes, 0));
    }

    /// Advances the phase over bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head { matched: 0 };
            let deadline = Instant::now() + self.limit;
            self.timer.as_mut().reset(deadline);
        }
        let Phase::Head { mut matched } = self.phase else {
            return;
        };
        self.phase = if head::scan(&mut matched, bytes) {
            Phase::Message
        } else {
            Phase::Head { matched }
        };
    }
}

/// Whether a write starts an interim (1xx) response, after which the request goes on.
fn interim_response(buf: &[u8]) -> bool {
    matches!(
        buf,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', b'1', ..]
    )
}

const HEAD_TIMEOUT: &str = "request head not received within server.header_timeout_ms";
const HEAD_TOO_LARGE: &str = "request head larger than 64 KiB: answered 431";

/// The dialect of the path in a request line's first bytes (`METHOD SP path ...`);
/// OpenAI's when they do not hold it.
fn dialect_of_request_line(bytes: &[u8]) -> Dialect {
    let line = &bytes[..bytes.len().min(512)];
    let target = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    std::str::from_utf8(path).map_or(Dialect::OpenAi, Dialect::of_path)
}
const GRACE_OVER: &str = "the shutdown grace period (server.shutdown_grace_s) is over";

impl AsyncRead for HeadDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        let polled = match this.head_room() {
            Some(room) if buf.remaining() > room => this.poll_read_at_most(cx, buf, room),
            _ => Pin::new(&mut this.inner).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let was = this.phase;
                let read = &buf.filled()[before..];
                this.saw(read);
                if this.count_head(was, read) {
                    // These bytes are delivered; the next read gets the refusal.
                    this.refuse_head();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if matches!(this.phase, Phase::Head { .. })
                    && this.timer.as_mut().poll(cx).is_ready()
                {
                    crate::metrics::connection_refused("header_timeout");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, HEAD_TIMEOUT)));
                }
                // Whatever the phase: a request's body or its stream (`Message`, `Idle`
                // once the response started), or a connection between requests.
                if this.grace.poll_expired(cx) {
                    return Poll::Ready(Err(io::Error::other(GRACE_OVER)));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::Message && !interim_response(buf) {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.phase == Phase::Message && !first.is_some_and(|b| interim_response(b)) {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

/// Forwarded so that Pingora sees the TLS session under the guard: ALPN picks HTTP/2 or
/// HTTP/1.1, and logs get the TLS digest.
impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("phase", &self.phase)
            .field("inner", &self.inner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> HeadDeadline {
        let (a, _b) = tokio::io::duplex(64);
        HeadDeadline::new(Box::new(a), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn the_head_ends_at_the_blank_line_wherever_the_reads_split_it() {
        let head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n";
        for split in 1..head.len() {
            let mut g = guard();
            g.saw(&head[..split]);
            let done = split == head.len();
            assert_eq!(g.phase == Phase::Message, done, "split at {split}");
            g.saw(&head[split..]);
            assert_eq!(g.phase, Phase::Message, "split at {split}");
        }
        // Three reads, the last with body bytes after the head.
        let mut message = head.to_vec();
        message.extend_from_slice(b"{}");
        for a in 1..message.len() {
            for b in a..message.len() {
                let mut g = guard();
                g.saw(&message[..a]);
                g.saw(&message[a..b]);
                let done = b >= head.len();
                assert_eq!(g.phase == Phase::Message, done, "splits at {a}, {b}");
                g.saw(&message[b..]);
                assert_eq!(g.phase, Phase::Message, "splits at {a}, {b}");
            }
        }
        // A bare LF ends lines as CRLF does (Pingora's parser takes both); CR CR LF and
        // a lone CR do not.
        let mut g = guard();
        g.saw(b"GET / HTTP/1.1\r\nx: y\r\r\n\r");
        assert_ne!(g.phase, Phase::Message);
        g.saw(b"\r\n");
        assert_ne!(g.phase, Phase::Message);
        g.saw(b"\n");
        assert_eq!(g.phase, Phase::Message);
    }

    #[tokio::test]
    async fn a_head_is_read_no_further_than_the_limit_and_answered_431() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut client) = tokio::io::duplex(4 * MAX_HEAD_BYTES);
        let mut g = HeadDeadline::new(Box::new(a), Duration::from_secs(10));
        let mut head = b"POST /v1beta/models/g:generateContent HTTP/1.1\r\nx: ".to_vec();
        head.resize(MAX_HEAD_BYTES + 4096, b'a');
        client.write_all(&head).await.unwrap();
        // Reads as large as a growing buffer would ask for.
        let mut buf = vec![0u8; 3 * MAX_HEAD_BYTES];
        let mut read = 0;
        let err = loop {
            match g.read(&mut buf[read..]).await {
                Ok(n) => read += n,
                Err(e) => break e,
            }
        };
        assert_eq!(read, MAX_HEAD_BYTES, "read past the limit");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut answer = vec![0u8; 1024];
        let n = client.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(
            answer.contains("\"INVALID_ARGUMENT\""),
            "Gemini's envelope: {answer}"
        );
        // Further reads keep failing: nothing more is taken.
        assert!(g.read(&mut buf).await.is_err());

        // A head of exactly the limit, blank line included, passes.
        let (a, mut client) = tokio::io::duplex(4 * MAX_HEAD_BYTES);
        let mut g = HeadDeadline::new(Box::new(a), Duration::from_secs(10));
        let mut head = b"GET /healthz HTTP/1.1\r\nx: ".to_vec();
        head.resize(MAX_HEAD_BYTES - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n{}");
        client.write_all(&head).await.unwrap();
        let mut read = 0;
        while read < head.len() {
            read += g.read(&mut buf[read..]).await.unwrap();
        }
        assert_eq!(g.phase, Phase::Message);
    }

    #[tokio::test]
    async fn body_bytes_do_not_restart_the_clock_and_the_next_head_does() {
        let mut g = guard();
        g.saw(b"GET /healthz HTTP/1.1\r\n\r\r\n\r");
        assert_ne!(g.phase, Phase::Message, "\\r\\n\\r\\r is no blank line");
        g.saw(b"\n");
        assert_eq!(g.phase, Phase::Message);
        g.saw(b"{\"a\":\"\r\n\r\n\"}");
        assert_eq!(g.phase, Phase::Message, "a body is never taken for a head");
        // The response starts: what is read next is the next request's head.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut g).poll_write(&mut cx, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(g.phase, Phase::Idle);
        g.saw(b"");
        assert_eq!(g.phase, Phase::Idle, "no byte, no new head");
        g.saw(b"G");
        assert!(matches!(g.phase, Phase::Head { .. }));
    }

    #[tokio::test]
    async fn an_interim_response_does_not_end_the_message() {
        let mut g = guard();
        g.saw(b"POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 9\r\n\r\n");
        assert_eq!(g.phase, Phase::Message);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut g).poll_write(&mut cx, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(g.phase, Phase::Message, "the body is still to come");
        g.saw(b"body\r\n\r\n");
        assert_eq!(g.phase, Phase::Message);
        let _ = Pin::new(&mut g).poll_write(&mut cx, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(g.phase, Phase::Idle);
    }
}
