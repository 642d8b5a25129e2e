//! `storage.usage_retention_days`: a background service that deletes usage events
//! older than that, once at start and then once a day, off the request path and in
//! small transactions ([`Store::prune_usage`]) so that the usage writer is never held
//! up for long. Not added at all when the setting is 0 (keep forever).

use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::store::Store;

const DAY: Duration = Duration::from_secs(86_400);

/// The background service.
pub struct UsageRetention {
    pub store: Store,
    /// More than 0.
    pub days: u32,
}

impl UsageRetention {
    /// One pass: deletes what is older than the retention period now; logged.
    async fn prune(&self) {
        let now_ms = tollgate_filters::clock::system_clock().saturating_mul(1000);
        let before_ms = now_ms.saturating_sub(i64::from(self.days) * DAY.as_millis() as i64);
        let store = self.store.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            crate::usage::lower_this_threads_priority();
            store.prune_usage(before_ms)
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => log::info!(
                "retention: deleted {n} usage events older than {} days",
                self.days
            ),
            Ok(Err(e)) => {
                log::warn!("retention: pruning usage events failed (next try in a day): {e}")
            }
            Err(e) => log::warn!("retention: the pruning task did not complete: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for UsageRetention {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // `interval` ticks at once: the first pass runs at start, so a gateway that is
        // restarted more often than daily still prunes.
        let mut tick = tokio::time::interval(DAY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.prune().await,
            }
        }
    }
}
