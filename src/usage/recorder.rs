//! The path of a usage event from `logging` to SQLite, built so that nothing is lost:
//!
//! - [`UsageRecorder::record`] never blocks: `try_send` on a bounded channel; if the
//!   channel is full, the event goes to a bounded overflow queue; only past that is it
//!   dropped, and counted (`tollgate_usage_events_dropped_total`).
//! - [`UsageWriter`] (a Pingora background service) drains channel and overflow in
//!   batches, one transaction each, `INSERT ... ON CONFLICT DO NOTHING`, until the
//!   shutdown signal.
//! - After it, whatever is left is written before the process exits: by
//!   [`UsageRecorder::flush`] when the shutdown service (`crate::server::shutdown`)
//!   decides to exit early, or by [`UsageRecorder::drain_blocking`] once Pingora has
//!   stopped every service. Deciding when to exit is not the writer's business.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;
use tollgate_filters::metering::{UsageEvent, UsageSink};

use crate::metrics;
use crate::store::Store;

const CHANNEL: usize = 8192;
const OVERFLOW: usize = 100_000;
const BATCH: usize = 512;
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// The sink handed to the metering filter.
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageEvent>,
    // tokio Mutex: the writer awaits on it; only the writer and the final drain lock it.
    rx: tokio::sync::Mutex<mpsc::Receiver<UsageEvent>>,
    // std Mutex: pushed from the sync request path, never held across an .await.
    overflow: Mutex<VecDeque<UsageEvent>>,
    dropped: AtomicU64,
    store: Store,
}

impl UsageRecorder {
    pub fn new(store: Store) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        Arc::new(UsageRecorder {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            overflow: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            store,
        })
    }

    /// Events dropped because channel and overflow were both full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn take_overflow(&self, max: usize, into: &mut Vec<UsageEvent>) {
        if let Ok(mut q) = self.overflow.lock() {
            let n = q.len().min(max);
            into.extend(q.drain(..n));
        }
    }

    fn write(&self, batch: &[UsageEvent]) {
        let started = Instant::now();
        match self.store.insert_usage(batch) {
            Ok(()) => metrics::usage_batch_written(batch.len(), started.elapsed()),
            Err(e) => {
                // Keep them for the next batch rather than lose them.
                log::error!("usage writer: could not write {} events: {e}", batch.len());
                if let Ok(mut q) = self.overflow.lock() {
                    q.extend(batch.iter().cloned());
                }
            }
        }
    }

    /// Writes everything still queued. Called once the proxy has stopped.
    pub fn drain_blocking(&self) {
        let mut batch = Vec::new();
        if let Ok(mut rx) = self.rx.try_lock() {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        self.take_overflow(usize::MAX, &mut batch);
        for chunk in batch.chunks(BATCH) {
            self.write(chunk);
        }
        if !batch.is_empty() {
            log::info!("usage writer: flushed {} events at shutdown", batch.len());
        }
    }

    fn queue_depth(&self) -> usize {
        let overflow = self.overflow.lock().map(|q| q.len()).unwrap_or(0);
        CHANNEL - self.tx.capacity() + overflow
    }
}

impl UsageSink for UsageRecorder {
    fn record(&self, event: UsageEvent) {
        metrics::observe_event(&event);
        // A request no key vouched for is counted (above), not stored: a flood of them
        // must not fill the disk. Requests by a key keep their row, refused or not.
        if event.key_id.is_none() {
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event),
            ) => {
                let mut q = match self.overflow.lock() {
                    Ok(q) => q,
                    Err(_) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        metrics::usage_event_dropped();
                        return;
                    }
                };
                if q.len() < OVERFLOW {
                    q.push_back(event);
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::usage_event_dropped();
                    log::error!(
                        "usage overflow full: dropped the event of request {}",
                        event.request_id
                    );
                }
            }
        }
        metrics::usage_queue_depth(self.queue_depth());
    }
}

/// Moves what the channel holds now into `batch`, up to [`BATCH`] events.
fn take_queued(rx: &mut mpsc::Receiver<UsageEvent>, batch: &mut Vec<UsageEvent>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(e) => batch.push(e),
            Err(_) => break,
        }
    }
}

/// The background service that writes usage batches until the shutdown signal.
pub struct UsageWriter {
    pub recorder: Arc<UsageRecorder>,
}

#[async_trait]
impl BackgroundService for UsageWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let rec = self.recorder.clone();
        // Held until the writer returns, across its writes too: [`UsageRecorder::flush`]
        // takes the channel after it, so no batch is left half done.
        let mut rx = rec.rx.lock().await;
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            tokio::select! {
                // Events of requests still in flight stay queued for the final flush.
                _ = shutdown.changed() => return,
                first = rx.recv() => match first {
                    Some(e) => batch.push(e),
                    None => return,
                },
            }
            // Gather the rest of the batch by sleeping out the window once rather than
            // waiting on the channel: a waiting receiver is woken by every event, a
            // thread switch per request on the proxy's core at full load. A backlog of a
            // whole batch is written at once, so the writer keeps up at any rate.
            let deadline = tokio::time::Instant::now() + BATCH_WAIT;
            take_queued(&mut rx, &mut batch);
            if batch.len() < BATCH {
                tokio::time::sleep_until(deadline).await;
                take_queued(&mut rx, &mut batch);
            }
            rec.take_overflow(BATCH, &mut batch);
            let writer = rec.clone();
            let _ = tokio::task::spawn_blocking(move || {
                super::lower_this_threads_priority();
                writer.write(&batch)
            })
            .await;
            metrics::usage_queue_depth(rec.queue_depth());
        }
    }
}

impl UsageRecorder {
    /// Writes everything still queued, from an async context, once the writer has
    /// stopped (it holds the channel until then): after the shutdown signal, no event
    /// is left behind in a batch the writer was still gathering.
    pub async fn flush(self: &Arc<Self>) {
        drop(self.rx.lock().await);
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.drain_blocking()).await;
    }
}
