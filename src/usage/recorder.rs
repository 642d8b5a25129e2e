//! The path of a usage event from `logging` to the store (a SQLite store directly; a
//! PostgreSQL one through the durable local spool, `super::spool` and
//! `super::shipper`), built so that nothing is lost:
//!
//! - [`UsageRecorder::record`] never blocks: `try_send` on a bounded channel; if the
//!   channel is full, the event goes to a bounded overflow queue; only past that is it
//!   dropped, and counted (`tollgate_usage_events_dropped_total`).
//! - [`UsageWriter`] (a Pingora background service) drains channel and overflow in
//!   batches, one transaction each, `INSERT ... ON CONFLICT DO NOTHING`, until the
//!   shutdown signal.
//! - A batch the store refuses (disk full, store locked) goes back to the overflow and
//!   is tried again on a timer, with back-off ([`RETRY_FIRST`] doubling to
//!   [`RETRY_MAX`]), whether or not new requests arrive; meanwhile new events wait in
//!   the channel and the overflow. Memory stays bounded: once both are full, further
//!   events are dropped, counted (`tollgate_usage_events_dropped_total`) and logged
//!   once per outage; failed writes are counted in `tollgate_usage_write_failures_total`.
//! - After it, whatever is left is written before the process exits: by
//!   [`UsageRecorder::flush`] when the shutdown service (`crate::server::shutdown`)
//!   decides to exit early, or by [`UsageRecorder::drain_blocking`] once Pingora has
//!   stopped every service. Deciding when to exit is not the writer's business.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;
use tollgate_filters::metering::{UsageEvent, UsageSink};

use super::shipper::Shipper;
use super::spool::{Spool, SpoolError};
use crate::metrics;
use crate::store::Store;

/// Room for [`BATCH_WAIT`] of events at 100k requests/s before the overflow is used
/// (the channel allocates as it fills, not up front).
const CHANNEL: usize = 32_768;
const OVERFLOW: usize = 100_000;
/// Events per write at most. A write has a fixed cost (the transaction and its commit,
/// the rollup upserts, binding and clearing the statements' parameters) of a few
/// hundred thousand instructions: larger batches make it a small part of each event's
/// (load-tests/profile.sh: the writer's instructions per event fell from 17k to 12k
/// when batches grew from about 70 to about 400 events).
const BATCH: usize = 2048;
/// How long the writer gathers events after the first before it writes them: long
/// enough for large batches, and the most a `kill -9` may lose (CONTRACT section 8:
/// "100 ms at most"). The events of this window are written at shutdown like every
/// other (`drain_blocking`).
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// The pause after a failed write before the next attempt; doubled after each failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between attempts: how long a freed disk may wait to be used.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The sink handed to the metering filter.
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageEvent>,
    // tokio Mutex: the writer awaits on it; only the writer and the final drain lock it.
    rx: tokio::sync::Mutex<mpsc::Receiver<UsageEvent>>,
    // std Mutex: pushed from the sync request path, never held across an .await.
    overflow: Mutex<VecDeque<UsageEvent>>,
    dropped: AtomicU64,
    /// Events are being dropped (logged once until a write succeeds again).
    dropping: AtomicBool,
    store: Store,
    /// With a PostgreSQL store, batches go to the local spool, which this delivers
    /// (`super::shipper`); `None` with SQLite, written directly.
    shipper: Option<Arc<Shipper>>,
}

impl UsageRecorder {
    pub fn new(store: Store) -> Arc<Self> {
        Self::with_shipper(store, None)
    }

    /// The recorder for `store`: on PostgreSQL, its batches go through the spool in
    /// `storage_dir` (opened here; its delivery is [`UsageRecorder::shipper`]'s service).
    pub fn for_store(store: Store, storage_dir: &Path) -> Result<Arc<Self>, SpoolError> {
        if !store.is_postgres() {
            return Ok(Self::new(store));
        }
        let shipper = Shipper::new(Spool::open(storage_dir)?, store.clone());
        Ok(Self::with_shipper(store, Some(shipper)))
    }

    fn with_shipper(store: Store, shipper: Option<Arc<Shipper>>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        Arc::new(UsageRecorder {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            overflow: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            dropping: AtomicBool::new(false),
            store,
            shipper,
        })
    }

    /// The spool's delivery, with a PostgreSQL store.
    pub fn shipper(&self) -> Option<&Arc<Shipper>> {
        self.shipper.as_ref()
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

    /// How many events wait in the overflow.
    fn overflow_len(&self) -> usize {
        self.overflow.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Writes one batch; whether it was stored. A refused batch goes back to the
    /// overflow (past its bound if need be: those events were accepted already) for the
    /// next attempt.
    fn write(&self, batch: &[UsageEvent]) -> bool {
        let started = Instant::now();
        let written = match &self.shipper {
            Some(shipper) => shipper.append(batch).map_err(|e| e.to_string()),
            None => self.store.insert_usage(batch).map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => {
                metrics::usage_batch_written(batch.len(), started.elapsed());
                self.dropping.store(false, Ordering::Relaxed);
                true
            }
            Err(e) => {
                // Counted before the log line, so whoever sees the line sees the count.
                metrics::usage_write_failed();
                log::error!(
                    "usage writer: could not write {} events (kept for a retry): {e}",
                    batch.len()
                );
                if let Ok(mut q) = self.overflow.lock() {
                    q.extend(batch.iter().cloned());
                }
                false
            }
        }
    }

    fn drop_event(&self, event: &UsageEvent) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::usage_event_dropped();
        if !self.dropping.swap(true, Ordering::Relaxed) {
            log::error!(
                "usage queue full: dropping usage events (the first: request {}) until the store accepts writes again; counted in tollgate_usage_events_dropped_total",
                event.request_id
            );
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
        let mut lost = 0;
        for chunk in batch.chunks(BATCH) {
            if !self.write(chunk) {
                lost += chunk.len();
            }
        }
        if lost > 0 {
            log::error!(
                "usage writer: {lost} of {} events could not be written before the exit",
                batch.len()
            );
        } else if !batch.is_empty() {
            log::info!("usage writer: flushed {} events at shutdown", batch.len());
        }
        if let Some(shipper) = &self.shipper {
            shipper.ship_at_exit();
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
                    Err(_) => return self.drop_event(&event),
                };
                if q.len() < OVERFLOW {
                    q.push_back(event);
                } else {
                    drop(q);
                    self.drop_event(&event);
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

/// When the writer tries again after a failed write.
#[derive(Debug, Default)]
struct Retry {
    /// The pause before the next attempt while writes fail; `None` while they succeed.
    backoff: Option<Duration>,
}

impl Retry {
    fn after(&mut self, written: bool) {
        self.backoff = if written {
            None
        } else {
            Some(self.backoff.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)))
        };
    }
}

/// Sleeps out the batch window once after the first event, then takes what came: a
/// waiting receiver would be woken by every event, a thread switch per request on the
/// proxy's core at full load. A backlog of a whole batch is written at once, so the
/// writer keeps up at any rate.
async fn gather(rx: &mut mpsc::Receiver<UsageEvent>, batch: &mut Vec<UsageEvent>) {
    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
    take_queued(rx, batch);
    if batch.len() < BATCH {
        tokio::time::sleep_until(deadline).await;
        take_queued(rx, batch);
    }
}

#[async_trait]
impl BackgroundService for UsageWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let rec = self.recorder.clone();
        // Held until the writer returns, across its writes too: [`UsageRecorder::flush`]
        // takes the channel after it, so no batch is left half done.
        let mut rx = rec.rx.lock().await;
        let mut retry = Retry::default();
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            // While writes fail, the next attempt waits out the back-off (new events
            // wait in the channel); otherwise a backlog in the overflow is written at
            // once, and an empty queue waits for the next event.
            let pause = retry
                .backoff
                .or_else(|| (rec.overflow_len() > 0).then_some(Duration::ZERO));
            tokio::select! {
                // Events of requests still in flight stay queued for the final flush.
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
                first = rx.recv(), if retry.backoff.is_none() => match first {
                    Some(e) => {
                        batch.push(e);
                        gather(&mut rx, &mut batch).await;
                    }
                    None => return,
                },
            }
            take_queued(&mut rx, &mut batch);
            rec.take_overflow(BATCH, &mut batch);
            if batch.is_empty() {
                continue;
            }
            let writer = rec.clone();
            let written = tokio::task::spawn_blocking(move || {
                super::lower_this_threads_priority();
                writer.write(&batch)
            })
            .await
            .unwrap_or(false);
            retry.after(written);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;
    use tollgate_filters::usage::Usage;

    fn event(id: usize) -> UsageEvent {
        UsageEvent {
            request_id: format!("r{id}"),
            ts_ms: 1,
            // Keyed: requests no key vouched for are counted, never queued.
            key_id: Some("k1".to_owned()),
            user_id: Some(1),
            upstream: None,
            model_requested: None,
            model_served: None,
            dialect: "openai",
            upstream_kind: Some("openai"),
            endpoint: "chat_completions",
            streamed: false,
            status: 200,
            usage: Usage::default(),
            estimated: false,
            cost_nanos: 0,
            priced: false,
            ttfb_ms: None,
            total_ms: 1,
            overhead_us: 0,
            error: None,
            attempts: 1,
        }
    }

    #[test]
    fn back_off_doubles_to_its_bound_and_resets_on_success() {
        let mut r = Retry::default();
        let mut seen = Vec::new();
        for _ in 0..8 {
            r.after(false);
            seen.push(r.backoff.unwrap().as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        r.after(true);
        assert_eq!(r.backoff, None);
    }

    #[test]
    fn a_refused_batch_is_kept_and_the_queue_is_bounded() {
        let (_dir, store) = temp_store();
        let rec = UsageRecorder::new(store.clone());
        store.close().unwrap();
        // The writer is not running: the channel fills, then the overflow.
        for n in 0..CHANNEL + OVERFLOW + 3 {
            rec.record(event(n));
        }
        assert_eq!(rec.dropped(), 3);
        // A batch the store refuses goes back to the overflow, past its bound.
        let batch: Vec<_> = (0..10).map(|n| event(1_000_000 + n)).collect();
        assert!(!rec.write(&batch));
        assert_eq!(rec.overflow_len(), OVERFLOW + 10);
        assert_eq!(rec.queue_depth(), CHANNEL + OVERFLOW + 10);
    }
}
