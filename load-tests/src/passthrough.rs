//! The baseline for load tests: a bare Pingora HTTP proxy that forwards everything to one
//! upstream, with no auth, routing, metering or body read. Tollgate's overhead is
//! measured against it. Two binaries run it: `passthrough` (glibc malloc, Pingora as it
//! comes) and `passthrough-mimalloc` (the allocator Tollgate uses, so that the ratio
//! measures Tollgate's own work and not the allocator). Usage: `BIN LISTEN UPSTREAM`.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

struct Pass {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Pass {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// Runs the passthrough proxy from the command line's LISTEN and UPSTREAM; never returns.
pub fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let Some(Ok(upstream)) = args.next().map(|a| a.parse()) else {
        eprintln!("usage: passthrough LISTEN UPSTREAM_IP:PORT");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Pass { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("passthrough listening on {listen}");
    server.run_forever();
}
