//! Small Pingora background services: the key-cache refresher (gateway and provider
//! keys) and the start-up announcement of the listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::keys::{KeyCache, ProviderKeyCache};

/// Reloads the gateway keys and the stored provider keys from the store every second,
/// so a revocation, a new key or a provider key set from the CLI or another process is
/// seen within a second without a store read per request.
pub struct KeyRefresher {
    pub keys: Arc<KeyCache>,
    pub provider_keys: Arc<ProviderKeyCache>,
    pub every: Duration,
}

#[async_trait]
impl BackgroundService for KeyRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let keys = self.keys.clone();
                    match tokio::task::spawn_blocking(move || keys.refresh()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log::warn!("key cache refresh failed (keeping the last good copy): {e}"),
                        Err(e) => log::warn!("key cache refresh did not complete: {e}"),
                    }
                    // After the refresh and apart from it: a store refusing writes (a
                    // full disk) must not hold back revocations.
                    let keys = self.keys.clone();
                    match tokio::task::spawn_blocking(move || keys.flush_last_used()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log::warn!("cannot record when keys were last used (will retry): {e}"),
                        Err(e) => log::warn!("last-used write did not complete: {e}"),
                    }
                    // Separately: a failure of one refresh does not hold back the other.
                    let provider_keys = self.provider_keys.clone();
                    match tokio::task::spawn_blocking(move || provider_keys.refresh()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log::warn!("provider key cache refresh failed (keeping the last good copy): {e}"),
                        Err(e) => log::warn!("provider key cache refresh did not complete: {e}"),
                    }
                }
            }
        }
    }
}

/// Logs `<what> listening on <addr>` once each listener accepts connections (the line
/// operators and the integration tests wait for), then tells systemd the gateway is
/// ready (`Type=notify`).
pub struct ListenAnnouncer {
    pub listeners: Vec<(&'static str, SocketAddr)>,
}

#[async_trait]
impl BackgroundService for ListenAnnouncer {
    async fn start(&self, _shutdown: ShutdownWatch) {
        for (what, addr) in &self.listeners {
            let probe = if addr.ip().is_unspecified() {
                let ip: std::net::IpAddr = if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                SocketAddr::new(ip, addr.port())
            } else {
                *addr
            };
            // Pingora binds in its own service start and says nothing when it has
            // (pingora#988): poll until it accepts (bounded).
            let mut ready = false;
            for _ in 0..1000 {
                if tokio::net::TcpStream::connect(probe).await.is_ok() {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if ready {
                log::info!("{what} listening on {addr}");
            } else {
                // No readiness notice: systemd fails the start rather than route
                // traffic to a gateway that is not listening.
                log::error!("{what} did not start listening on {addr}");
                return;
            }
        }
        let on: Vec<String> = self
            .listeners
            .iter()
            .map(|(w, a)| format!("{w} {a}"))
            .collect();
        super::notify::ready(&format!("serving ({})", on.join(", ")));
    }
}
