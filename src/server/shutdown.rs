//! How a shutdown signal (SIGTERM, or the old process's side of a graceful upgrade)
//! ends: the listeners no longer accept; once the requests in flight are done, every
//! queued usage event is written and the process exits at once. Pingora by itself would
//! sleep out the whole grace period (`server.shutdown_grace_s`) even when idle.
//!
//! Requests still running when the grace period ends are ended by the gateway
//! (`crate::proxy::grace`): each client gets its dialect's error (an error event if its
//! stream started), each request records its usage event, and then the events are
//! written and the process exits, within [`FINISH`] of the grace's end.
//!
//! What Pingora 0.9.1 itself does at the end of its grace period (server/mod.rs `run`):
//! it shuts every service's tokio runtime down, which drops each request task where it
//! stands: no `logging` phase, no usage event, the client's connection simply closed.
//! Its grace is therefore set [`FINISH_MARGIN`] beyond ours (`config::pingora_conf`), a
//! fallback only: were a request to fail to end (a client that reads nothing, so its
//! error event cannot be written), this service steps aside; the runtime shutdown then
//! drops that request, whose context still records its event as it is dropped
//! (`RequestCtx::finish_on_drop`), and `serve` writes what is left after
//! `Server::run` returns (as after SIGINT, which Pingora ends without telling the
//! services).
//!
//! Either way the process leaves nothing behind ([`ExitCleanup`]): the store is
//! checkpointed and closed (no `-wal`/`-shm` file), and the pid file is removed if it
//! still names this process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics;
use crate::proxy::connections::SETTLE;
use crate::proxy::grace;
use crate::store::Store;
use crate::usage::UsageRecorder;

/// How often the requests in flight are counted while waiting for them.
const POLL: Duration = Duration::from_millis(20);

/// How long requests ended at the grace's end get to send their error and record their
/// usage (they need milliseconds) before this service steps aside.
pub const FINISH: Duration = Duration::from_millis(1500);

/// How much longer than `server.shutdown_grace_s` Pingora's own grace period is, so that
/// its runtime shutdown never comes before [`FINISH`] is over.
pub const FINISH_MARGIN: Duration = Duration::from_secs(2);

/// The background service that decides when the process exits after a shutdown signal.
pub struct ShutdownService {
    /// Written out before the exit.
    pub usage: Arc<UsageRecorder>,
    /// `server.shutdown_grace_s`: how long in-flight requests may run after the signal.
    pub grace: Duration,
    /// Run after the last usage event is written, before the exit.
    pub cleanup: ExitCleanup,
}

/// What a clean stop undoes, once every usage event is written.
#[derive(Clone)]
pub struct ExitCleanup {
    pub store: Store,
    /// `server.pid_file`.
    pub pid_file: String,
}

impl ExitCleanup {
    /// Closes the store (checkpointing its WAL) and removes the pid file if it still
    /// names this process. Blocking; failures are logged, as the process ends anyway.
    pub fn run(&self) {
        if let Err(e) = self.store.close() {
            log::warn!("store: closing failed: {e}");
        }
        remove_pid_file_if_ours(&self.pid_file);
    }
}

/// Removes the pid file only if it holds this process's id: during a graceful upgrade
/// the new process has written its own id there by the time the old one exits, and
/// `tollgate reload` must find it.
fn remove_pid_file_if_ours(path: &str) {
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return;
    }
    if let Err(e) = std::fs::remove_file(path) {
        log::warn!("cannot remove the pid file {path}: {e}");
    }
}

impl ShutdownService {
    /// Whether the requests in flight finished within `limit`.
    ///
    /// A connection accepted just before the listeners closed may not have sent its
    /// request yet (it is not counted in flight): the wait ends only once nothing has
    /// been in flight for the same settle period the proxy gives such connections.
    async fn requests_done(limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            let now = tokio::time::Instant::now();
            if metrics::in_flight() > 0 {
                idle_since = None;
            } else if now.duration_since(*idle_since.get_or_insert(now)) >= SETTLE {
                return true;
            }
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[async_trait]
impl BackgroundService for ShutdownService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Any change (or the sender gone) means the server is stopping.
        let _ = shutdown.changed().await;
        if !Self::requests_done(self.grace).await {
            log::warn!(
                "shutdown: {} requests still in flight at the end of the grace period; ending them",
                metrics::in_flight()
            );
            grace::expire();
            if !Self::requests_done(FINISH).await {
                log::error!(
                    "shutdown: {} requests did not end; they are dropped with the runtimes",
                    metrics::in_flight()
                );
                return;
            }
        }
        self.usage.flush().await;
        let cleanup = self.cleanup.clone();
        let _ = tokio::task::spawn_blocking(move || cleanup.run()).await;
        log::info!("shutdown: no request in flight and every usage event written; exiting");
        // pingora#727: `Server::run` sleeps out the grace period and then the shutdown
        // timeout in full, however idle the process already is.
        #[allow(clippy::exit)] // the one deliberate exit: skip Pingora's idle grace sleep
        std::process::exit(0);
    }
}
