//! A deadline for receiving each request head (slowloris defence).
//!
//! Pingora times out each read of a request head on its own (the keep-alive timeout),
//! so a client sending one byte a minute holds a connection forever. [`HeadDeadline`]
//! wraps the accepted connection and fails the read once a request head has been
//! arriving for longer than the limit: from the accept for the first request, and from
//! its first byte for each later one on a kept-alive connection. The head ends at the
//! blank line (CRLF CRLF, found by `tollgate_filters::head`); the body has its own
//! deadline (`server.body_timeout_ms`).

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
use tollgate_filters::head;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head; `matched` bytes of CRLF CRLF seen at the end so far.
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
}

impl HeadDeadline {
    pub fn new(inner: Stream, limit: Duration) -> Self {
        HeadDeadline {
            inner,
            limit,
            phase: Phase::Head { matched: 0 },
            timer: Box::pin(tokio::time::sleep(limit)),
        }
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

const HEAD_TIMEOUT: &str = "request head not received within server.header_timeout_ms";

impl AsyncRead for HeadDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if matches!(this.phase, Phase::Head { .. })
                    && this.timer.as_mut().poll(cx).is_ready()
                {
                    crate::metrics::connection_refused("header_timeout");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, HEAD_TIMEOUT)));
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
        if this.phase == Phase::Message {
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
        if this.phase == Phase::Message {
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
        // Three reads, the last with body bytes after the head; and near misses
        // (CR CR LF, LF LF) that must not end it.
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
        let mut g = guard();
        g.saw(b"GET / HTTP/1.1\r\nx: y\r\r\n\n\n\r\n\r");
        assert_eq!(g.phase, Phase::Head { matched: 3 });
        g.saw(b"\r\n");
        assert_eq!(g.phase, Phase::Head { matched: 2 });
    }

    #[tokio::test]
    async fn body_bytes_do_not_restart_the_clock_and_the_next_head_does() {
        let mut g = guard();
        g.saw(b"GET /healthz HTTP/1.1\r\n\r\r\n\r");
        assert_eq!(
            g.phase,
            Phase::Head { matched: 3 },
            "\\r\\n\\r\\r is no blank line"
        );
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
        assert_eq!(g.phase, Phase::Head { matched: 0 });
    }
}
