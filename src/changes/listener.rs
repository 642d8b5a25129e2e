//! The background service that keeps a gateway's in-memory copies of the store
//! current: it applies each announced change as it arrives and acknowledges it, and
//! once a second re-reads everything anyway (the safety net for a change whose
//! announcement did not arrive) and writes the keys' last-used times.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{Applier, Changes, Notice, Subscription};

/// Applies pushed changes at once and everything periodically.
pub struct ChangeListener {
    pub applier: Arc<Applier>,
    /// Taken by the service when it starts (`None`: no push, the periodic refresh
    /// only, as when the control socket could not be created).
    pub subscription: Mutex<Option<Box<dyn Subscription>>>,
    pub every: Duration,
}

impl ChangeListener {
    pub fn new(
        applier: Arc<Applier>,
        subscription: Option<Box<dyn Subscription>>,
        every: Duration,
    ) -> Self {
        ChangeListener {
            applier,
            subscription: Mutex::new(subscription),
            every,
        }
    }
}

/// The next notice, or never when there is no subscription.
async fn next(sub: &mut Option<Box<dyn Subscription>>) -> Option<Notice> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The periodic pass: everything re-read, then last-used times written (apart, so a
/// store refusing writes never holds back a revocation). A failure to write is logged
/// once until writes work again, not every second.
async fn periodic(applier: &Applier, write_failing: &AtomicBool) {
    if let Err(e) = applier.apply(Changes::ALL).await {
        log::warn!("periodic refresh failed (keeping the last good copies): {e}");
    }
    let keys = applier.keys.clone();
    match tokio::task::spawn_blocking(move || keys.flush_last_used()).await {
        Ok(Ok(())) => {
            if write_failing.swap(false, Ordering::Relaxed) {
                log::info!("keys' last-used times are written again");
            }
        }
        Ok(Err(e)) => {
            if !write_failing.swap(true, Ordering::Relaxed) {
                log::warn!("cannot record when keys were last used (retrying every second; revocations still apply): {e}");
            }
        }
        Err(e) => log::warn!("last-used write did not complete: {e}"),
    }
}

#[async_trait]
impl BackgroundService for ChangeListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut sub = self
            .subscription
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let write_failing = AtomicBool::new(false);
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Returning drops the subscription: its socket goes with it. A stopping
                // gateway takes no new request, so it needs no more changes.
                _ = shutdown.changed() => return,
                _ = tick.tick() => periodic(&self.applier, &write_failing).await,
                notice = next(&mut sub) => match notice {
                    Some(n) => {
                        let applier = self.applier.clone();
                        tokio::spawn(async move {
                            let outcome = applier.apply(n.changes).await;
                            if let Err(e) = &outcome {
                                log::warn!("cannot apply an announced change: {e}");
                            }
                            n.ack(outcome);
                        });
                    }
                    None => sub = None,
                },
            }
        }
    }
}
