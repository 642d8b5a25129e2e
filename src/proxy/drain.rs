//! Keeps connections accepted just before shutdown from being dropped unread.
//!
//! When the listeners stop (SIGTERM, or SIGQUIT during a binary upgrade), Pingora's
//! HTTP app drops every connection that is still waiting for a request header, to close
//! idle keep-alive connections. A connection accepted a moment earlier whose request
//! has not been read yet is dropped too, and the client sees a reset for a request it
//! did send. [`SettleBeforeCleanup`] wraps the app and holds that cleanup back until
//! the newest connection has had [`SETTLE`] to deliver its request head.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

/// How long a freshly accepted connection has to send its request before shutdown
/// treats it as idle.
pub const SETTLE: Duration = Duration::from_millis(500);

/// A [`ServerApp`] that delegates to `inner` and delays its cleanup (see the module doc).
pub struct SettleBeforeCleanup<A> {
    inner: Arc<A>,
    /// Milliseconds since `epoch` at the latest accepted connection.
    last_accept_ms: AtomicU64,
    epoch: OnceLock<Instant>,
}

impl<A> SettleBeforeCleanup<A> {
    pub fn new(inner: A) -> Self {
        Self {
            inner: Arc::new(inner),
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
impl<A: ServerApp + Send + Sync + 'static> ServerApp for SettleBeforeCleanup<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Keep-alive reuse also comes through here; that only lengthens the settle for
        // a connection that just finished a request, which is harmless.
        self.note_accept_at(self.elapsed_ms());
        self.inner.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        let wait = self.remaining_settle_at(self.elapsed_ms());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

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
        let app = SettleBeforeCleanup::new(Nothing);
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
}
