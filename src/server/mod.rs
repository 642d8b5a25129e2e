//! `tollgate serve`: builds the Pingora server (proxy listener, admin listener,
//! background services) from a validated config and runs it. Beside it: the proxy's
//! filter chain ([`chain`]) and the background services: reloading ([`reload`]), the listen announcement
//! ([`background`]), the change listener (key and price refresh, [`crate::changes`]), upstream health checks ([`health`]), systemd's readiness notice
//! ([`notify`]), usage retention ([`retention`]) and the exit after a shutdown signal
//! ([`shutdown`]); TLS on the listeners, with certificates a reload replaces ([`tls`]).

pub mod background;
pub mod chain;
pub mod health;
pub mod notify;
pub mod reload;
pub mod retention;
pub mod shutdown;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pingora::proxy::HttpProxy;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};
use pingora::services::listening::Service;
use tollgate_filters::clock::system_clock;
use tollgate_filters::limits::SpendTracker;
use tollgate_filters::KeyLookup;

use crate::admin::serve::AdminServer;
use crate::admin::{AdminApp, AdminDeps, SessionSweeper};
use crate::changes::local::{self as control, ControlDir};
use crate::changes::{Applier, ChangeListener, Publisher, Subscription};
use crate::config::live::LiveConfig;
use crate::config::{self, pingora_conf, ConfigError, Fixed, Runtime};
use crate::keys::{KeyCache, Keyring, KeyringError, ProviderKeyCache};
use crate::proxy::connections::{ConnectionGuard, ConnectionLimits};
use crate::proxy::{Gateway, GatewayProxy};
use crate::store::secrets::MasterKey;
use crate::store::{Store, StoreError};
use crate::usage::{UsageRecorder, UsageWriter};
use background::ListenAnnouncer;
use chain::build_chain;
use health::HealthChecker;
use shutdown::{ExitCleanup, ShutdownService};
use tls::ListenerCerts;

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
    /// Daemonizing forks after the store is open, and a fork keeps none of the
    /// PostgreSQL store's runtime threads.
    #[error("serve -d (daemon) is not supported with storage.url (PostgreSQL): run serve in the foreground under systemd or another supervisor")]
    DaemonOnPostgres,
    #[error("secrets: {0}")]
    Secrets(#[from] crate::store::secrets::SecretsError),
    #[error("{0}")]
    Keyring(#[from] KeyringError),
    #[error("{0}")]
    SharedLimits(#[from] crate::limits::SharedError),
    #[error("{0}")]
    Spool(#[from] crate::usage::spool::SpoolError),
}

/// Loads the config, opens the store and runs until a shutdown signal. In steps: the
/// listen addresses, the store and its keys, the shared state, Pingora's server and its
/// services, the pid file; then run, and write the usage events still queued.
pub fn serve(config_path: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    let Runtime {
        mut fixed,
        reloadable,
        tls,
        warnings,
    } = config::load(config_path)?;
    for line in config::render_lines(config_path, &warnings) {
        log::warn!("{line}");
    }
    if opts.daemon && fixed.storage_url.is_some() {
        return Err(ServeError::DaemonOnPostgres);
    }
    let listeners = settle_listeners(&mut fixed, opts.upgrade)?;
    // Before the keys are first read, so that no change committed after that read
    // can miss this process.
    let (announcer, subscription) = listen_for_changes(&fixed);
    let keys = open_keys(&fixed)?;
    let subscription = with_postgres_changes(subscription, &keys.store);
    let live = LiveConfig::new(reloadable);
    live.set_price_overrides(keys.store.price_overrides()?);
    let applier = Arc::new(Applier {
        store: keys.store.clone(),
        keys: keys.gateway.clone(),
        provider_keys: keys.provider.clone(),
        live: live.clone(),
    });
    let shared = Shared {
        usage: UsageRecorder::for_store(keys.store.clone(), &fixed.storage_dir)?,
        live,
        fixed: Arc::new(fixed),
        keys,
        tls: ListenerCerts::new(&tls),
        changes: Arc::new(Publisher::new(applier.clone(), Arc::new(announcer))),
    };
    let spend = Arc::new(SpendTracker::default());
    seed_spend(&shared.keys.store, &spend)?;
    let spend = limit_counters(&shared, spend)?;

    let mut server = pingora_server(&shared.fixed, opts);
    server.add_service(single_threaded(
        "reloader",
        reload::Reloader {
            path: config_path.to_path_buf(),
            live: shared.live.clone(),
            started: shared.fixed.clone(),
            listen: listeners.configured.clone(),
            tls: shared.tls.clone(),
        },
    ));
    if let crate::limits::Counters::Shared(c) = &spend {
        let connect = crate::limits::Connect(c.clone());
        server.add_service(single_threaded("shared limits", connect));
    }
    server.add_service(proxy_service(&shared, spend, &server, &listeners));
    server.add_service(admin_service(&shared, &listeners));
    add_background_services(&mut server, &shared, &listeners);
    server.add_service(single_threaded(
        "change listener",
        ChangeListener::new(applier, subscription, Duration::from_secs(1)),
    ));
    if !opts.daemon {
        write_pid_file(&shared.fixed.pid_file);
    }
    server.run(pingora::server::RunArgs::default());
    // Every service has stopped, so no request can produce another event: write the
    // ones still queued before the process exits, then close the store.
    shared.usage.drain_blocking();
    exit_cleanup(&shared).run();
    log::info!("tollgate stopped");
    Ok(())
}

/// Where limits are counted: in Redis with `limits.redis_url`, else in `spend` alone.
fn limit_counters(
    shared: &Shared,
    spend: Arc<SpendTracker>,
) -> Result<crate::limits::Counters, ServeError> {
    use crate::limits::{Counters, SharedCounters};
    crate::metrics::shared_limits_degraded(false);
    Ok(match &shared.fixed.redis_url {
        None => Counters::Local(spend),
        Some(url) => Counters::Shared(Arc::new(SharedCounters::new(
            url.expose(),
            shared.fixed.redis_ca.as_deref(),
            spend,
            shared.keys.store.clone(),
            system_clock,
        )?)),
    })
}

/// The listen addresses: as configured, and as bound.
struct Listeners {
    /// `server.listen` and `admin.listen` as configured (before port 0 was settled),
    /// for the reloader to tell a changed listener.
    configured: (Vec<String>, String),
    proxy: Vec<SocketAddr>,
    admin: SocketAddr,
    /// The ports settled from port 0, held for the life of the process (see
    /// [`hold_free_port`]).
    held: Vec<TcpListener>,
}

impl Listeners {
    /// Whether `addr` was settled from port 0 and is held: its listener must share the
    /// port with the hold (`SO_REUSEPORT`).
    fn is_held(&self, addr: &str) -> bool {
        self.held
            .iter()
            .any(|h| h.local_addr().is_ok_and(|a| a.to_string() == addr))
    }
}

/// Settles every listen address (see [`settle_listen_addr`]) and writes the settled
/// ones into `fixed`, which the listeners are then built from.
fn settle_listeners(fixed: &mut Fixed, upgrade: bool) -> Result<Listeners, ServeError> {
    let configured = (fixed.proxy_listen.clone(), fixed.admin_listen.clone());
    let mut held = Vec::new();
    let mut proxy = Vec::with_capacity(fixed.proxy_listen.len());
    for addr in &fixed.proxy_listen {
        proxy.push(settle_listen_addr(addr, upgrade, &mut held)?);
    }
    let admin = settle_listen_addr(&fixed.admin_listen, upgrade, &mut held)?;
    fixed.proxy_listen = proxy.iter().map(ToString::to_string).collect();
    fixed.admin_listen = admin.to_string();
    Ok(Listeners {
        configured,
        proxy,
        admin,
        held,
    })
}

/// Turns `IP:0` into a free port and checks every address can be bound, so that a busy
/// port is one clear error line instead of a panic in Pingora's service thread that
/// leaves the process up and serving nothing (pingora#667), and port 0 is a port we
/// know (Pingora does not report the one it bound, pingora#988). Skipped on upgrade,
/// where the running instance holds the sockets and hands them over.
fn settle_listen_addr(
    addr: &str,
    upgrade: bool,
    held: &mut Vec<TcpListener>,
) -> Result<SocketAddr, ServeError> {
    let listen_error = |source| ServeError::Listen {
        addr: addr.to_owned(),
        source,
    };
    let parsed: SocketAddr = addr.parse().map_err(|_| {
        listen_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an IP:port address",
        ))
    })?;
    if upgrade {
        return Ok(parsed);
    }
    if parsed.port() == 0 {
        let hold = hold_free_port(parsed).map_err(listen_error)?;
        let settled = hold.local_addr().map_err(listen_error)?;
        held.push(hold);
        return Ok(settled);
    }
    let probe = TcpListener::bind(parsed).map_err(listen_error)?;
    probe.local_addr().map_err(listen_error)
}

/// A free port on `ip`, bound with `SO_REUSEPORT` and kept bound (never listening, so
/// it accepts nothing): until Pingora binds the same port beside it, no other socket
/// can take the port, as one could in the moment between a probe's release and
/// Pingora's bind (pingora#667 then leaves the gateway serving nothing while its
/// readiness probe reaches the other socket). Only for port 0: an explicit port keeps
/// refusing a second gateway instead of sharing connections with it.
fn hold_free_port(ip: SocketAddr) -> std::io::Result<TcpListener> {
    use rustix::net::{bind, socket, sockopt, AddressFamily, SocketType};
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    bind(&fd, &ip)?;
    Ok(TcpListener::from(fd))
}

/// On PostgreSQL, `local` and every other instance's changes: listening starts now, and
/// its first notice re-reads everything, so nothing committed since the keys were read
/// is missed.
fn with_postgres_changes(
    local: Option<Box<dyn Subscription>>,
    store: &Store,
) -> Option<Box<dyn Subscription>> {
    match crate::changes::postgres::subscribe(store) {
        Some(pg) => Some(Box::new(crate::changes::postgres::Both(
            local,
            Some(Box::new(pg)),
        ))),
        None => local,
    }
}

/// What keys and users spent in their current periods, from the store.
fn seed_spend(store: &Store, spend: &SpendTracker) -> Result<(), ServeError> {
    match crate::usage::spend::seed(store, spend, system_clock()) {
        // Usage is not on PostgreSQL yet: budgets count from this start.
        Err(StoreError::NotOnPostgres(what)) => {
            log::warn!("budgets start from zero spent: {what} is not on PostgreSQL yet");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// This process's control socket (see [`crate::changes::local`]): the announcer of the
/// admin API's changes, and the notices of everybody else's. Without the socket the
/// gateway still serves, and sees others' changes at its periodic refresh.
fn listen_for_changes(fixed: &Fixed) -> (ControlDir, Option<Box<dyn Subscription>>) {
    match control::listen(&fixed.storage_dir) {
        Ok(c) => (c.announcer, Some(Box::new(c.subscription))),
        Err(e) => {
            log::warn!(
                "cannot create a control socket in {} ({e}): changes made by the CLI or another gateway reach this one within a second instead of at once",
                control::control_dir(&fixed.storage_dir).display()
            );
            (ControlDir::new(&fixed.storage_dir), None)
        }
    }
}

/// The store and the keys the gateway reads from it, loaded.
struct StoreKeys {
    store: Store,
    master: MasterKey,
    keyring: Keyring,
    gateway: Arc<KeyCache>,
    provider: Arc<ProviderKeyCache>,
    /// What the proxy authenticates with (`auth.mode`).
    proxy_auth: Arc<dyn KeyLookup>,
}

/// Opens the store, unwraps its keyring with the master key and fills both key caches.
fn open_keys(fixed: &Fixed) -> Result<StoreKeys, ServeError> {
    let store = Store::open_configured(fixed)?;
    let has_data_keys = !store.data_keys()?.is_empty();
    let master = MasterKey::for_store(&fixed.master_key, &fixed.storage_dir, has_data_keys)?;
    let keyring = Keyring::load_or_init(&store, &master, system_clock())?;
    let gateway = Arc::new(KeyCache::new(store.clone(), keyring.hasher()));
    gateway.refresh()?;
    let provider = Arc::new(ProviderKeyCache::new(store.clone(), keyring.crypto()));
    provider.refresh()?;
    let proxy_auth = crate::keys::legacy::proxy_auth(
        fixed.auth_mode,
        &fixed.legacy_keys,
        &store,
        gateway.clone(),
        system_clock(),
    )?;
    Ok(StoreKeys {
        proxy_auth,
        store,
        master,
        keyring,
        gateway,
        provider,
    })
}

/// What the services share.
struct Shared {
    fixed: Arc<Fixed>,
    live: LiveConfig,
    keys: StoreKeys,
    usage: Arc<UsageRecorder>,
    tls: ListenerCerts,
    /// Applies a change here and tells the other gateways on the store.
    changes: Arc<Publisher>,
}

/// Pingora's server, from our settings (never from Pingora's own config file).
fn pingora_server(fixed: &Fixed, opts: ServeOptions) -> Server {
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(fixed, opts.daemon));
    server.bootstrap();
    server
}

/// The proxy listener: the filter chain behind Pingora's proxy, behind the connection
/// guard (per-address cap, request-head deadline).
fn proxy_service(
    shared: &Shared,
    spend: crate::limits::Counters,
    server: &Server,
    listeners: &Listeners,
) -> Service<ConnectionGuard<HttpProxy<GatewayProxy>>> {
    let chain = build_chain(
        &shared.live,
        shared.keys.proxy_auth.clone(),
        shared.usage.clone(),
        &spend,
        shared.keys.provider.clone(),
    );
    log::info!(
        "tollgate {}: {} upstreams, filters {:?}",
        env!("CARGO_PKG_VERSION"),
        shared.live.current().upstreams.len(),
        chain.names()
    );
    let gw = Arc::new(Gateway::new(
        shared.fixed.clone(),
        chain,
        shared.live.router(),
    ));
    let mut app = HttpProxy::new(GatewayProxy { gw }, server.configuration.clone());
    app.server_options = Some(tls::server_options());
    app.handle_init_modules();
    let limits = ConnectionLimits {
        per_address: shared.fixed.max_connections_per_ip,
        head_timeout: shared.fixed.header_timeout,
    };
    let mut proxy = Service::new("proxy".to_owned(), ConnectionGuard::new(app, limits));
    for addr in &shared.fixed.proxy_listen {
        shared
            .tls
            .add_proxy_listener(&mut proxy, addr, listeners.is_held(addr));
    }
    proxy
}

/// The admin listener, on one thread.
fn admin_service(shared: &Shared, listeners: &Listeners) -> Service<AdminServer> {
    let keys = &shared.keys;
    let app = AdminApp::new(AdminDeps {
        store: keys.store.clone(),
        keys: keys.gateway.clone(),
        hasher: keys.keyring.hasher(),
        crypto: keys.keyring.crypto(),
        session_key: keys.master.subkey("admin-session"),
        session_ttl: shared.fixed.admin_session_ttl,
        live: shared.live.clone(),
        changes: shared.changes.clone(),
        dashboard: shared.fixed.admin_dashboard,
        tls: shared.fixed.admin_tls,
    });
    let mut admin = Service::new(
        "admin".to_owned(),
        AdminServer::new(app, tls::server_options()),
    );
    let addr = &shared.fixed.admin_listen;
    shared
        .tls
        .add_admin_listener(&mut admin, addr, listeners.is_held(addr));
    admin.threads = Some(1);
    admin
}

/// The background services besides the reloader, each on a thread of its own.
fn add_background_services(server: &mut Server, shared: &Shared, listeners: &Listeners) {
    let keys = &shared.keys;
    server.add_service(single_threaded(
        "listen announcer",
        ListenAnnouncer {
            listeners: listeners
                .proxy
                .iter()
                .map(|a| ("proxy", *a))
                .chain([("admin", listeners.admin)])
                .collect(),
        },
    ));
    server.add_service(single_threaded(
        "usage writer",
        UsageWriter {
            recorder: shared.usage.clone(),
        },
    ));
    if let Some(shipper) = shared.usage.shipper() {
        server.add_service(single_threaded(
            "usage shipper",
            crate::usage::shipper::ShipperService {
                shipper: shipper.clone(),
            },
        ));
    }
    server.add_service(single_threaded(
        "shutdown",
        ShutdownService {
            usage: shared.usage.clone(),
            grace: shared.fixed.shutdown_grace,
            cleanup: exit_cleanup(shared),
        },
    ));
    server.add_service(single_threaded(
        "session sweeper",
        SessionSweeper {
            store: keys.store.clone(),
            every: Duration::from_secs(60),
        },
    ));
    server.add_service(single_threaded(
        "health checks",
        HealthChecker {
            router: shared.live.router(),
        },
    ));
    if shared.fixed.usage_retention_days > 0 {
        server.add_service(single_threaded(
            "usage retention",
            retention::UsageRetention {
                store: keys.store.clone(),
                days: shared.fixed.usage_retention_days,
            },
        ));
    }
}

/// A background service with one thread: none of ours needs more, and each thread is a
/// runtime of its own.
fn single_threaded<A>(name: &str, task: A) -> GenBackgroundService<A>
where
    A: BackgroundService + Send + Sync + 'static,
{
    let mut service = background_service(name, task);
    service.threads = Some(1);
    service
}

fn exit_cleanup(shared: &Shared) -> ExitCleanup {
    ExitCleanup {
        store: shared.keys.store.clone(),
        pid_file: shared.fixed.pid_file.clone(),
    }
}

/// Pingora writes the pid file only when it daemonizes; `tollgate reload` needs it in
/// the foreground (systemd) too.
fn write_pid_file(path: &str) {
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        log::warn!("cannot write the pid file {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race this closes: another socket taking a port settled from 0 before
    /// Pingora binds it. While held, a plain bind of the port fails and our listener's
    /// bind (with `SO_REUSEPORT`, as Pingora makes it) succeeds.
    #[test]
    fn a_port_settled_from_0_is_held_for_our_listener_only() {
        let mut held = Vec::new();
        let addr = settle_listen_addr("127.0.0.1:0", false, &mut held).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(held.len(), 1);
        let listeners = Listeners {
            configured: (vec![], String::new()),
            proxy: vec![addr],
            admin: addr,
            held,
        };
        assert!(listeners.is_held(&addr.to_string()));
        assert!(!listeners.is_held("127.0.0.1:1"));

        let other = TcpListener::bind(addr);
        assert!(other.is_err(), "a plain socket took the held port");
        let ours = hold_free_port(addr).and_then(|s| {
            rustix::net::listen(&s, 16)?;
            Ok(s)
        });
        assert!(ours.is_ok(), "{ours:?}");

        // An explicit port is only probed: nothing holds it afterwards.
        let mut held = Vec::new();
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let settled = settle_listen_addr(&free.to_string(), false, &mut held).unwrap();
        assert_eq!(settled, free);
        assert!(held.is_empty());
    }
}
