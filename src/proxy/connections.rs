//! What the proxy listener does with each accepted connection before Pingora's HTTP
//! app sees it, and at shutdown.
//!
//! - **Per-address cap**: one source address holds at most `server.max_connections_per_ip`
//!   connections; one more is answered 429 and closed, so one client (or one attacker)
//!   cannot take every file descriptor.
//! - **Request head deadline**: each request head must arrive within
//!   `server.header_timeout_ms` ([`HeadDeadline`]), so slow-header clients (slowloris)
//!   are cut off.
//! - **Settle before cleanup**: when the listeners stop (SIGTERM, or SIGQUIT during a
//!   binary upgrade), Pingora's HTTP app drops every connection still waiting for a
//!   request head, to close idle keep-alive connections. A connection accepted a moment
//!   earlier whose request has not been read yet would be dropped too, and its client
//!   would see a reset for a request it did send; so that cleanup waits until the newest
//!   connection has had [`SETTLE`] to deliver its request head.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

use super::head_deadline::HeadDeadline;

/// How long a freshly accepted connection has to send its request before shutdown
/// treats it as idle.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Limits of [`ConnectionGuard`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections per source address; 0 for no cap.
    pub per_address: u32,
    /// Time allowed for each request head.
    pub head_timeout: Duration,
}

/// A [`ServerApp`] that applies the limits of the module doc, then delegates to `inner`.
pub struct ConnectionGuard<A> {
    inner: Arc<A>,
    limits: ConnectionLimits,
    open: Arc<OpenPerAddress>,
    /// Milliseconds since `epoch` at the latest accepted connection.
    last_accept_ms: AtomicU64,
    epoch: OnceLock<Instant>,
}

impl<A> ConnectionGuard<A> {
    pub fn new(inner: A, limits: ConnectionLimits) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            open: Arc::new(OpenPerAddress::default()),
            last_accept_ms: AtomicU64::new(0),
            epoch: OnceLock::new(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        let epoch = self.epoch.get_or_init(Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Stored as milliseconds + 1 so that 0 means "no connection yet".
    fn note_accept_at(&self, now_ms: u64) {
        self.last_accept_ms.store(now_ms + 1, Ordering::Relaxed);
    }

    /// How much longer cleanup must wait, at `now_ms`, for the newest connection.
    fn remaining_settle_at(&self, now_ms: u64) -> Duration {
        match self.last_accept_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            stored => {
                let since = now_ms.saturating_sub(stored - 1);
                SETTLE.saturating_sub(Duration::from_millis(since))
            }
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionGuard<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.note_accept_at(self.elapsed_ms());
        let source = session
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        // Held until the connection ends.
        let _slot = match source {
            Some(ip) if self.limits.per_address > 0 => {
                match OpenPerAddress::admit(&self.open, ip, self.limits.per_address) {
                    Some(slot) => Some(slot),
                    None => {
                        crate::metrics::connection_refused("address_cap");
                        log::warn!(
                            "refused a connection from {ip}: it has {} open (server.max_connections_per_ip)",
                            self.limits.per_address
                        );
                        refuse(&mut session, self.limits.per_address).await;
                        return None;
                    }
                }
            }
            _ => None,
        };
        // The deadline reads HTTP/1 framing (the blank line ending a head). An HTTP/2
        // connection (ALPN h2 on a TLS listener) has none: its binary frames would leave
        // it "in a head" forever and cut long streams, so it goes to Pingora unwrapped.
        if matches!(session.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.inner.process_new(session, shutdown).await;
        }
        let guarded: Stream = Box::new(HeadDeadline::new(session, self.limits.head_timeout));
        self.inner.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        let wait = self.remaining_settle_at(self.elapsed_ms());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.inner.cleanup().await;
    }
}

/// Connections open per source address.
#[derive(Debug, Default)]
struct OpenPerAddress {
    // std Mutex: held for one map update per connection, never across an .await.
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// One admitted connection; its drop gives the place back.
struct Slot {
    open: Arc<OpenPerAddress>,
    ip: IpAddr,
}

impl OpenPerAddress {
    fn admit(open: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut counts = open.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: open.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // The map holds only addresses with open connections.
                counts.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over the cap before reading its request, so the dialect is not
/// known: the body carries the fields each SDK reads (OpenAI and Gemini `error.message`,
/// Anthropic `type` and `error.type`, Gemini `error.status`).
async fn refuse(session: &mut Stream, max: u32) {
    let body = format!(
        r#"{{"type":"error","error":{{"type":"rate_limit_error","code":429,"status":"RESOURCE_EXHAUSTED","message":"too many connections from your address (at most {max}); reuse connections or try again later"}}}}"#
    );
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        session.write_all(head.as_bytes()).await?;
        session.write_all(body.as_bytes()).await?;
        session.flush().await
    };
    // Bounded: a client that does not read must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    let _ = session.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        per_address: 2,
        head_timeout: Duration::from_secs(10),
    };

    #[async_trait]
    impl ServerApp for Nothing {
        async fn process_new(
            self: &Arc<Self>,
            _session: Stream,
            _shutdown: &ShutdownWatch,
        ) -> Option<Stream> {
            None
        }
    }

    #[test]
    fn cleanup_waits_out_the_settle_period_of_the_newest_connection_only() {
        let app = ConnectionGuard::new(Nothing, LIMITS);
        assert_eq!(
            app.remaining_settle_at(10),
            Duration::ZERO,
            "nothing accepted"
        );
        app.note_accept_at(1_000);
        assert_eq!(app.remaining_settle_at(1_000), SETTLE);
        assert_eq!(
            app.remaining_settle_at(1_200),
            SETTLE - Duration::from_millis(200)
        );
        assert_eq!(app.remaining_settle_at(1_000 + 500), Duration::ZERO);
        assert_eq!(app.remaining_settle_at(9_000), Duration::ZERO);
    }

    #[test]
    fn an_address_gets_its_places_back_when_its_connections_end() {
        let open = Arc::new(OpenPerAddress::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = OpenPerAddress::admit(&open, a, 2).unwrap();
        let second = OpenPerAddress::admit(&open, a, 2).unwrap();
        assert!(
            OpenPerAddress::admit(&open, a, 2).is_none(),
            "a third is refused"
        );
        let other = OpenPerAddress::admit(&open, b, 2);
        assert!(other.is_some(), "another address is not affected");
        drop(first);
        assert_eq!(open.open(a), 1);
        let again = OpenPerAddress::admit(&open, a, 2);
        assert!(again.is_some(), "a place came back");
        drop((second, again, other));
        assert!(
            open.counts.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
    }
}
