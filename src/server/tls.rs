//! TLS on the proxy and admin listeners (`server.tls`, `admin.tls`), with certificates
//! that a reload replaces without dropping a connection.
//!
//! Each TLS listener is given a [`CertSlot`] as its rustls certificate resolver
//! (`TlsSettings::set_cert_resolver`, in Pingora 0.9.1's rustls listener) instead of
//! the certificate and key paths: with paths, Pingora reads the files once into a fixed
//! `ServerConfig` when the service starts (and panics on a bad file), and the rustls
//! backend never calls `TlsAccept::certificate_callback` (pingora-core's
//! protocols/tls/rustls/server.rs says to use a `ResolvesServerCert` instead; runtime
//! reloads are pingora#619, resolvers pingora#632/#832). rustls asks the resolver once
//! per full handshake, so a reload that stores a new certificate in the slot reaches
//! every new connection, while established connections keep their session untouched.
//!
//! A reload reads the files as part of the config ([`crate::config::tls`]): a file that
//! cannot be read or a key that does not match makes the whole reload refused, the
//! certificate in force stays, and each problem is one error line (`server::reload`).
//! Whether a listener has TLS at all is fixed at start: adding or removing a `tls`
//! section takes effect on restart or upgrade, with a warning.

use std::sync::Arc;
use std::time::Duration;

use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TcpSocketOptions;
use pingora::protocols::ALPN;
use pingora::services::listening::Service;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};
use tollgate_filters::live::Live;

use crate::config::tls::LoadedCert;
use crate::config::TlsCerts;

/// The certificate one listener presents to new handshakes.
#[derive(Debug)]
pub struct CertSlot {
    current: Live<CertifiedKey>,
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate per listener, whatever the SNI: an O(1) clone under a read
        // lock, once per full handshake.
        Some(self.current.load())
    }
}

/// The certificate slots of the listeners that have TLS.
#[derive(Debug, Clone, Default)]
pub struct ListenerCerts {
    proxy: Option<Arc<CertSlot>>,
    admin: Option<Arc<CertSlot>>,
}

impl ListenerCerts {
    /// Slots holding the certificates read at start.
    pub fn new(certs: &TlsCerts) -> Self {
        let slot = |loaded: &Option<Arc<LoadedCert>>, listener: &str| {
            let loaded = loaded.as_ref()?;
            log::info!("{listener}: TLS with {}", describe(loaded));
            Some(Arc::new(CertSlot {
                current: Live::new(CertifiedKey::clone(&loaded.certified)),
            }))
        };
        ListenerCerts {
            proxy: slot(&certs.proxy, "proxy listeners"),
            admin: slot(&certs.admin, "admin listener"),
        }
    }

    /// Listens on `addr` for the proxy: TLS when `server.tls` was set at start;
    /// `shared` when the port is held for it (bound beside the hold, `SO_REUSEPORT`).
    pub fn add_proxy_listener<A: ServerApp + Send + Sync + 'static>(
        &self,
        service: &mut Service<A>,
        addr: &str,
        shared: bool,
    ) {
        add_listener(self.proxy.as_ref(), service, addr, shared);
    }

    /// Listens on `addr` for the admin API: TLS when `admin.tls` was set at start.
    pub fn add_admin_listener<A: ServerApp + Send + Sync + 'static>(
        &self,
        service: &mut Service<A>,
        addr: &str,
        shared: bool,
    ) {
        add_listener(self.admin.as_ref(), service, addr, shared);
    }

    /// Puts a reloaded config's certificates in force for new handshakes.
    pub fn apply(&self, new: &TlsCerts) {
        swap(self.proxy.as_ref(), new.proxy.as_ref(), "server.tls");
        swap(self.admin.as_ref(), new.admin.as_ref(), "admin.tls");
    }
}

/// A plain listener, or a TLS one whose certificate comes from `slot`, offering h2 and
/// http/1.1 by ALPN (Pingora then serves each connection with the protocol chosen).
/// `shared`: the port is held by a socket of ours, which the listener binds beside.
fn add_listener<A: ServerApp + Send + Sync + 'static>(
    slot: Option<&Arc<CertSlot>>,
    service: &mut Service<A>,
    addr: &str,
    shared: bool,
) {
    let options = shared.then(|| {
        let mut o = TcpSocketOptions::default();
        o.so_reuseport = Some(true);
        o
    });
    let Some(slot) = slot else {
        match options {
            Some(o) => service.add_tcp_with_settings(addr, o),
            None => service.add_tcp(addr),
        }
        return;
    };
    // Empty paths: with a resolver set, `build()` never reads them.
    let mut settings = match TlsSettings::intermediate("", "") {
        Ok(s) => s,
        Err(e) => {
            // Not reachable in 0.9.1 (the constructor only stores its arguments); a
            // listener that cannot have TLS must not silently serve plain HTTP.
            log::error!("cannot set up TLS on {addr}: {e}; the listener is not started");
            return;
        }
    };
    settings.set_cert_resolver(slot.clone());
    settings.set_alpn(ALPN::H2H1);
    service.add_tls_with_settings(addr, options, settings);
}

/// How long an HTTP/2 connection with no stream in flight stays open: as long as an idle
/// HTTP/1.1 keep-alive connection (Pingora's 60 s). Pingora's default keeps idle HTTP/2
/// connections forever, and the HTTP/1 head deadline does not apply to them.
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP server options of both listeners (only HTTP/2, reached through ALPN on a
/// TLS listener, is affected).
pub fn server_options() -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(H2_IDLE_TIMEOUT);
    options
}

/// Stores `new` in `slot`, or says why a change waits for a restart.
fn swap(slot: Option<&Arc<CertSlot>>, new: Option<&Arc<LoadedCert>>, key: &str) {
    match (slot, new) {
        (Some(slot), Some(new)) => {
            slot.current.store(new.certified.clone());
            log::info!("reload: {key}: new connections get {}", describe(new));
        }
        (Some(_), None) => log::warn!(
            "reload: {key} removed; the listener keeps TLS and its certificate until restart or upgrade (-u)"
        ),
        (None, Some(_)) => {
            log::warn!("reload: {key} added; it takes effect on restart or upgrade (-u)")
        }
        (None, None) => {}
    }
}

/// `CN=gw.example.com, valid until ... (cert.pem)`, for logs.
fn describe(c: &LoadedCert) -> String {
    format!(
        "certificate {}, valid until {} ({})",
        c.subject, c.not_after, c.files.cert
    )
}
