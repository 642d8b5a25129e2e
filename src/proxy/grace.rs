//! The end of the shutdown grace period, as the requests still in flight see it.
//!
//! When `server.shutdown_grace_s` has passed after a shutdown signal, Pingora would stop
//! its runtimes: every request task dropped where it stands, its client cut without a
//! word and its usage never recorded. Instead the shutdown service
//! (`crate::server::shutdown`) calls [`expire`] first, and each request ends itself
//! through its ordinary error path: with Pingora's phases, the connection's next read
//! fails ([`Watch`], polled by the head-deadline wrapper that every read goes through),
//! so `fail_to_proxy` answers or ends the stream and `logging` records the request; the
//! large-body transport waits on its [`Watch`] too. The client gets its dialect's error
//! ([`tollgate_filters::GatewayError::ShuttingDown`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

static EXPIRED: AtomicBool = AtomicBool::new(false);
static NOTIFY: LazyLock<Notify> = LazyLock::new(Notify::new);

/// The grace period is over: every request in flight is to end now.
pub fn expire() {
    EXPIRED.store(true, Ordering::SeqCst);
    NOTIFY.notify_waiters();
}

/// Whether the grace period is over.
pub fn expired() -> bool {
    EXPIRED.load(Ordering::SeqCst)
}

/// The grace period's end as one connection sees it (its reads, or the large-body
/// transport's relay), cheap enough to ask on every read.
#[derive(Default)]
pub struct Watch {
    /// Registered on the first wait: it wakes the connection's task at the expiry. A
    /// connection stays on its task, so later waits read only the flag (polling this
    /// again would take the `Notify`'s lock on every read).
    registered: Option<Pin<Box<Notified<'static>>>>,
}

impl Watch {
    /// Whether the grace period is over; if not, the task of `cx` is woken when it is.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if expired() {
            return true;
        }
        if self.registered.is_none() {
            let mut notified = Box::pin(NOTIFY.notified());
            if notified.as_mut().poll(cx).is_ready() {
                return true;
            }
            self.registered = Some(notified);
            // An expiry between the flag's read and the registration is seen here.
            return expired();
        }
        false
    }

    /// Resolves once the grace period is over.
    pub async fn expiry(&mut self) {
        std::future::poll_fn(|cx| {
            if self.poll_expired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("registered", &self.registered.is_some())
            .finish()
    }
}
