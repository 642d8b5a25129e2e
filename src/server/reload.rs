//! Reloading routes, aliases, upstreams, prices and the listeners' TLS certificates on
//! `SIGHUP` (what `tollgate reload` sends) without dropping a connection. A config with
//! problems (a certificate file that cannot be read included) is refused as a whole with
//! every problem logged, and the one in force stays.

use std::path::PathBuf;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::live::LiveConfig;
use crate::config::{self, Fixed};

/// The background service that waits for `SIGHUP`.
pub struct Reloader {
    pub path: PathBuf,
    pub live: LiveConfig,
    /// The settings the process started with; a reload cannot change these.
    pub started: std::sync::Arc<Fixed>,
    /// `server.listen` and `admin.listen` as configured at start (before port 0 was
    /// settled), to tell an operator that a changed listener needs a restart.
    pub listen: (Vec<String>, String),
    /// The TLS listeners' certificates, replaced for new handshakes.
    pub tls: super::tls::ListenerCerts,
}

impl Reloader {
    fn reload(&self) {
        match config::load(&self.path) {
            Ok(rt) => {
                let (new, started) = (&rt.fixed, &self.started);
                let fixed = [
                    ("server.listen", new.proxy_listen != self.listen.0),
                    ("admin.listen", new.admin_listen != self.listen.1),
                    ("storage.path", new.storage_path != started.storage_path),
                    ("storage.url", new.storage_url != started.storage_url),
                    ("server.threads", new.threads != started.threads),
                    (
                        "limits.redis_url",
                        new.redis_url.as_ref().map(|u| u.expose())
                            != started.redis_url.as_ref().map(|u| u.expose()),
                    ),
                    ("limits.redis_ca", new.redis_ca != started.redis_ca),
                ];
                for (key, changed) in fixed {
                    if changed {
                        log::warn!(
                            "reload: {key} changed; it takes effect on restart or upgrade (-u)"
                        );
                    }
                }
                for line in config::render_lines(&self.path, &rt.warnings) {
                    log::warn!("reload: {line}");
                }
                self.tls.apply(&rt.tls);
                let (upstreams, routes) = (
                    rt.reloadable.upstreams.len(),
                    rt.reloadable.router.route_count(),
                );
                self.live.replace(rt.reloadable);
                log::info!(
                    "reload: config {} in force: {upstreams} upstreams, {routes} routes",
                    self.path.display(),
                );
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    log::error!("reload refused, the config in force stays: {line}");
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("reload: cannot listen for SIGHUP: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    log::info!("reload: SIGHUP received, reading {}", self.path.display());
                    self.reload();
                }
            }
        }
    }
}
