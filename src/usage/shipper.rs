//! Delivery of the spooled usage events (`super::spool`) to a PostgreSQL store, in
//! order, in large batches: each batch is one transaction (`ON CONFLICT (request_id)
//! DO NOTHING`, rollups from the rows inserted) and leaves the spool only once that
//! transaction committed. While the database is unreachable the events wait on disk
//! (`tollgate_usage_spool_events` says how many), one line is logged when delivery
//! stops and one when it resumes, and attempts back off from [`RETRY_FIRST`] to
//! [`RETRY_MAX`].
//!
//! The request path never waits for any of it: the usage writer appends to the spool,
//! a local write, and wakes the shipper.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;
use tollgate_filters::metering::UsageEvent;

use super::spool::{Spool, SpoolError};
use crate::metrics;
use crate::store::{Store, StoreError};

/// Events per delivery transaction.
const SHIP_BATCH: usize = 5_000;
/// How often the spool is looked at without a wake-up (events another process left).
const POLL: Duration = Duration::from_secs(1);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long the last delivery at exit may take.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// The spool and what it delivers to.
pub struct Shipper {
    spool: Spool,
    store: Store,
    wake: Notify,
    /// One delivery round at a time (the service's and the final one at exit).
    round: Mutex<()>,
    /// Delivery is failing (logged once until it succeeds again).
    down: AtomicBool,
}

/// Why a delivery round stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Shipper {
    pub fn new(spool: Spool, store: Store) -> Arc<Shipper> {
        let shipper = Arc::new(Shipper {
            spool,
            store,
            wake: Notify::new(),
            round: Mutex::new(()),
            down: AtomicBool::new(false),
        });
        metrics::usage_spool_events(shipper.spool.depth());
        // Events a previous run left are delivered as soon as the service starts.
        shipper.wake.notify_one();
        shipper
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Appends a batch to the spool (durable on return) and wakes the delivery.
    pub fn append(&self, events: &[UsageEvent]) -> Result<(), SpoolError> {
        self.spool.append(events)?;
        metrics::usage_spool_events(self.spool.depth());
        self.wake.notify_one();
        Ok(())
    }

    /// Delivers everything waiting, oldest first; how many events left the spool.
    /// Blocking. Stops at the first failure, which is logged once per outage.
    pub fn ship_all(&self) -> Result<usize, ShipError> {
        let _round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        let mut shipped = 0;
        let result = loop {
            let taken = match self.spool.take(SHIP_BATCH) {
                Ok(t) => t,
                Err(e) => break Err(e.into()),
            };
            if taken.records.is_empty() {
                break Ok(shipped);
            }
            if let Err(e) = self.store.insert_usage_records(&taken.records) {
                break Err(e.into());
            }
            if let Err(e) = self.spool.remove(&taken) {
                // Delivered but still spooled: delivered again later, which the store
                // ignores.
                break Err(e.into());
            }
            shipped += taken.records.len();
        };
        metrics::usage_spool_events(self.spool.depth());
        match &result {
            Ok(_) if self.down.swap(false, Ordering::Relaxed) => log::info!(
                "usage spool: delivery to the store resumed ({shipped} waiting events delivered)"
            ),
            Ok(_) => {}
            Err(e) if !self.down.swap(true, Ordering::Relaxed) => log::error!(
                "usage spool: delivery to the store stopped ({e}); {} events wait in {} and are delivered when it answers (tollgate_usage_spool_events)",
                self.spool.depth(),
                self.spool.path().display()
            ),
            Err(_) => {}
        }
        result
    }

    /// The last delivery before the process exits, for at most [`EXIT_LIMIT`]: what
    /// cannot be delivered by then stays in the spool for the next start. On a thread
    /// of its own, so that a database that stopped answering (a half-open connection
    /// waits for TCP to give up) cannot hold the exit.
    pub fn ship_at_exit(self: &Arc<Self>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("usage-ship-exit".into())
            .spawn(move || {
                let _ = tx.send(me.ship_all());
            });
        let outcome = match spawned {
            Ok(_) => rx.recv_timeout(EXIT_LIMIT).ok(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(n)) if n > 0 => log::info!("usage spool: delivered {n} events at shutdown"),
            Some(Ok(_)) => {}
            _ => log::warn!(
                "usage spool: {} events stay in {} and are delivered at the next start",
                self.spool.depth(),
                self.spool.path().display()
            ),
        }
    }
}

/// The background service that delivers the spool until the shutdown signal.
pub struct ShipperService {
    pub shipper: Arc<Shipper>,
}

#[async_trait]
impl BackgroundService for ShipperService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff: Option<Duration> = None;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.shipper.wake.notified(), if backoff.is_none() => {}
                _ = tokio::time::sleep(backoff.unwrap_or(POLL)) => {}
            }
            let shipper = self.shipper.clone();
            let delivered = tokio::task::spawn_blocking(move || {
                super::lower_this_threads_priority();
                shipper.ship_all().is_ok()
            })
            .await
            .unwrap_or(false);
            backoff = if delivered {
                None
            } else {
                Some(backoff.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)))
            };
        }
    }
}
