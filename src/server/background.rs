//! Small Pingora background services: the start-up announcement of the listeners. (The
//! key caches are kept current by [`crate::changes::ChangeListener`].)

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

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
