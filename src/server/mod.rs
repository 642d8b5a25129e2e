//! `tollgate serve`: builds the Pingora server (proxy listener, admin listener,
//! background services) from a validated config and runs it. The background services
//! live beside it: reloading ([`reload`]), key refresh and the listen announcement
//! ([`background`]), upstream health checks ([`health`]), systemd's readiness notice
//! ([`notify`]) and the exit after a shutdown signal ([`shutdown`]).

pub mod background;
pub mod health;
pub mod notify;
pub mod reload;
pub mod shutdown;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tollgate_filters::auth::AuthFilter;
use tollgate_filters::clock::system_clock;
use tollgate_filters::headers::UpstreamHeaders;
use tollgate_filters::limits::{LimitsFilter, SpendTracker};
use tollgate_filters::metering::{IncludeUsageFilter, MeteringFilter};
use tollgate_filters::routing::{RoutingFilter, ScopeFilter};
use tollgate_filters::FilterChain;

use crate::admin::{AdminApp, AdminDeps, SessionSweeper};
use crate::config::live::LiveConfig;
use crate::config::{self, pingora_conf, ConfigError, Runtime};
use crate::keys::{KeyCache, Keyring, KeyringError, ProviderKeyCache};
use crate::proxy::connections::{ConnectionGuard, ConnectionLimits};
use crate::proxy::{Gateway, GatewayProxy};
use crate::store::secrets::MasterKey;
use crate::store::Store;
use crate::usage::{Estimator, UsageRecorder, UsageWriter};
use background::{KeyRefresher, ListenAnnouncer};
use health::HealthChecker;
use shutdown::ShutdownService;

/// Pingora's own flags that `serve` accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// `-d`: run in the background.
    pub daemon: bool,
    /// `-u`: take the listening sockets over from a running instance.
    pub upgrade: bool,
}

/// Why the server could not start. Each is one clear line.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] crate::store::secrets::SecretsError),
    #[error("{0}")]
    Keyring(#[from] KeyringError),
}

/// Turns `IP:0` into a free port and checks every address can be bound, so that a busy
/// port is one clear error line instead of a panic inside Pingora. Skipped on upgrade,
/// where the running instance holds the sockets and hands them over.
fn settle_listen_addr(addr: &str, upgrade: bool) -> Result<SocketAddr, ServeError> {
    let parsed: SocketAddr = addr.parse().map_err(|_| ServeError::Listen {
        addr: addr.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IP:port address"),
    })?;
    if upgrade {
        return Ok(parsed);
    }
    let probe = TcpListener::bind(parsed).map_err(|source| ServeError::Listen {
        addr: addr.to_owned(),
        source,
    })?;
    probe.local_addr().map_err(|source| ServeError::Listen {
        addr: addr.to_owned(),
        source,
    })
}

/// The filter chain of the proxy listener, in order.
pub fn build_chain(
    live: &LiveConfig,
    keys: Arc<KeyCache>,
    usage: Arc<UsageRecorder>,
    spend: Arc<SpendTracker>,
    provider_keys: Arc<ProviderKeyCache>,
) -> FilterChain {
    FilterChain::new(vec![
        Arc::new(AuthFilter::new(keys, system_clock)),
        Arc::new(RoutingFilter::new(live.router())),
        Arc::new(ScopeFilter),
        Arc::new(IncludeUsageFilter),
        Arc::new(UpstreamHeaders::new(Some(provider_keys))),
        Arc::new(MeteringFilter::new(
            usage,
            live.prices(),
            Arc::new(Estimator),
        )),
        // After metering: its on_done reads the request's metered cost and tokens.
        Arc::new(LimitsFilter::new(spend, system_clock)),
    ])
}

/// Loads the config, opens the store and runs until a shutdown signal.
pub fn serve(config_path: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    let Runtime { fixed, reloadable } = config::load(config_path)?;
    let mut rt = fixed;
    let configured_listen = (rt.proxy_listen.clone(), rt.admin_listen.clone());
    let proxy_addrs = rt
        .proxy_listen
        .iter()
        .map(|a| settle_listen_addr(a, opts.upgrade))
        .collect::<Result<Vec<_>, _>>()?;
    let admin_addr = settle_listen_addr(&rt.admin_listen, opts.upgrade)?;
    rt.proxy_listen = proxy_addrs.iter().map(ToString::to_string).collect();
    rt.admin_listen = admin_addr.to_string();

    let store = Store::open(&rt.storage_path)?;
    let master = MasterKey::load_or_create(&rt.master_key, &rt.storage_dir)?;
    let keyring = Keyring::load_or_init(&store, &master, system_clock())?;
    let keys = Arc::new(KeyCache::new(store.clone(), keyring.hasher()));
    keys.refresh()?;
    let provider_keys = Arc::new(ProviderKeyCache::new(store.clone(), keyring.crypto()));
    provider_keys.refresh()?;

    let rt = Arc::new(rt);
    let recorder = UsageRecorder::new(store.clone());
    let spend = Arc::new(SpendTracker::default());
    crate::usage::spend::seed(&store, &spend, system_clock())?;
    let live = LiveConfig::new(reloadable);
    let chain = build_chain(
        &live,
        keys.clone(),
        recorder.clone(),
        spend,
        provider_keys.clone(),
    );
    log::info!(
        "tollgate {}: {} upstreams, filters {:?}",
        env!("CARGO_PKG_VERSION"),
        live.current().upstreams.len(),
        chain.names()
    );
    let gw = Arc::new(Gateway::new(rt.clone(), chain, live.router()));

    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&rt, opts.daemon));
    server.bootstrap();

    let mut proxy_app =
        pingora::proxy::HttpProxy::new(GatewayProxy { gw }, server.configuration.clone());
    proxy_app.handle_init_modules();
    let limits = ConnectionLimits {
        per_address: rt.max_connections_per_ip,
        head_timeout: rt.header_timeout,
    };
    let mut proxy = Service::new("proxy".to_owned(), ConnectionGuard::new(proxy_app, limits));
    for addr in &rt.proxy_listen {
        proxy.add_tcp(addr);
    }
    let admin_app = AdminApp::new(AdminDeps {
        store: store.clone(),
        keys: keys.clone(),
        provider_keys: provider_keys.clone(),
        hasher: keyring.hasher(),
        crypto: keyring.crypto(),
        session_key: master.subkey("admin-session"),
        session_ttl: rt.admin_session_ttl,
        live: live.clone(),
    });
    let mut admin = Service::new(
        "admin".to_owned(),
        pingora::apps::http_app::HttpServer::new_app(admin_app),
    );
    admin.add_tcp(&rt.admin_listen);
    admin.threads = Some(1);
    let mut sweeper = background_service(
        "session sweeper",
        SessionSweeper {
            store,
            every: Duration::from_secs(60),
        },
    );
    sweeper.threads = Some(1);

    let mut refresher = background_service(
        "key refresher",
        KeyRefresher {
            keys,
            provider_keys,
            every: Duration::from_secs(1),
        },
    );
    refresher.threads = Some(1);
    let mut announcer = background_service(
        "listen announcer",
        ListenAnnouncer {
            listeners: proxy_addrs
                .iter()
                .map(|a| ("proxy", *a))
                .chain([("admin", admin_addr)])
                .collect(),
        },
    );
    announcer.threads = Some(1);

    let mut writer = background_service(
        "usage writer",
        UsageWriter {
            recorder: recorder.clone(),
        },
    );
    writer.threads = Some(1);
    let mut shutdown = background_service(
        "shutdown",
        ShutdownService {
            usage: recorder.clone(),
            grace: rt.shutdown_grace,
        },
    );
    shutdown.threads = Some(1);

    let mut reloader = background_service(
        "reloader",
        reload::Reloader {
            path: config_path.to_path_buf(),
            live: live.clone(),
            started: rt.clone(),
            listen: configured_listen,
        },
    );
    reloader.threads = Some(1);
    server.add_service(reloader);
    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(refresher);
    server.add_service(announcer);
    server.add_service(writer);
    server.add_service(shutdown);
    server.add_service(sweeper);
    let mut health = background_service(
        "health checks",
        HealthChecker {
            router: live.router(),
        },
    );
    health.threads = Some(1);
    server.add_service(health);
    if !opts.daemon {
        // Pingora writes the pid file only when it daemonizes; `tollgate reload` needs
        // it in the foreground (systemd) too.
        if let Err(e) = std::fs::write(&rt.pid_file, format!("{}\n", std::process::id())) {
            log::warn!("cannot write the pid file {}: {e}", rt.pid_file);
        }
    }
    server.run(pingora::server::RunArgs::default());
    // Every service has stopped, so no request can produce another event: write the
    // ones still queued before the process exits.
    recorder.drain_blocking();
    log::info!("tollgate stopped");
    Ok(())
}
