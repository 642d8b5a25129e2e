//! The validated, ready-to-use form of the config, in two parts: what is fixed when the
//! process starts ([`Fixed`]) and what a reload replaces ([`Reloadable`], served to
//! every reader through [`super::live::LiveConfig`]), beside the listeners' certificates
//! as read ([`TlsCerts`]); and Pingora's `ServerConf` built from the fixed part.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::configuration::ServerConf;
use tollgate_filters::router::Router;
use tollgate_filters::upstream::UpstreamTarget;
use tollgate_filters::usage::Price;
use tollgate_filters::Secret;

use super::tls::TlsCerts;
use super::ConfigProblem;

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub fixed: Fixed,
    pub reloadable: Reloadable,
    /// The listeners' certificates as read now; a reload puts them in force for new
    /// handshakes (`server::tls`).
    pub tls: TlsCerts,
    /// What is worth telling but does not stop the config (an expired certificate),
    /// one line each through [`super::render_lines`].
    pub warnings: Vec<ConfigProblem>,
}

/// The settings a running gateway keeps until it restarts or is upgraded (`serve -u`):
/// listeners, threads, request bounds, storage and secrets. A reload that changes one
/// is applied without it, with a warning.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub proxy_listen: Vec<String>,
    pub admin_listen: String,
    /// Lifetime of an admin login session.
    pub admin_session_ttl: Duration,
    /// `admin.dashboard`: the web dashboard on the admin listener.
    pub admin_dashboard: bool,
    pub threads: usize,
    pub shutdown_grace: Duration,
    pub max_body_bytes: u64,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: u32,
    /// The SQLite file (unused with `storage_url`).
    pub storage_path: PathBuf,
    /// `storage.url` and `storage.pool_size`: the store is PostgreSQL.
    pub storage_url: Option<crate::store::pg::PgOptions>,
    /// Where the local files go: `master.key` (SQLite only), the pid file, the
    /// upgrade and control sockets.
    pub storage_dir: PathBuf,
    /// `storage.usage_retention_days`: 0 keeps usage events forever.
    pub usage_retention_days: u32,
    pub pid_file: String,
    pub upgrade_sock: String,
    /// The configured master key text (empty: use the key file).
    pub master_key: String,
    /// `admin.tls` is set: the admin listener speaks TLS, so the dashboard's session
    /// cookie (`tollgate_session`) must carry `Secure`.
    pub admin_tls: bool,
    /// `auth.mode`.
    pub auth_mode: AuthMode,
    /// `auth.legacy_keys`, the empty ones left out.
    pub legacy_keys: Vec<Secret>,
    /// `limits.redis_url`: where the shared limit counters are (a secret: it may carry
    /// a password).
    pub redis_url: Option<Secret>,
    /// `limits.redis_ca`: the roots of a `rediss://` server's certificate (a path).
    pub redis_ca: Option<String>,
}

/// `auth.mode`: which credentials the proxy accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Gateway keys only.
    Keys,
    /// The static `legacy_keys` only.
    Legacy,
    /// Either.
    Both,
}

impl AuthMode {
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "keys" => Some(AuthMode::Keys),
            "legacy" => Some(AuthMode::Legacy),
            "both" => Some(AuthMode::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Keys => "keys",
            AuthMode::Legacy => "legacy",
            AuthMode::Both => "both",
        }
    }

    /// Whether the static legacy keys are accepted.
    pub fn accepts_legacy(self) -> bool {
        self != AuthMode::Keys
    }
}

/// What `SIGHUP` / `tollgate reload` replaces while serving: upstreams, routes with
/// their aliases, and prices. Replaced whole, so a reader sees one reload's version of
/// all three.
#[derive(Debug, Clone)]
pub struct Reloadable {
    pub upstreams: Vec<Arc<UpstreamTarget>>,
    pub router: Arc<Router>,
    /// The file's `pricing`: patterns in file order, the first match wins. The prices in
    /// force add the store's overrides ([`super::live::LiveConfig::prices`]).
    pub pricing: Arc<Vec<(String, Price)>>,
}

impl Reloadable {
    /// Whether `name` is a configured upstream (routed or not).
    pub fn has_upstream(&self, name: &str) -> bool {
        self.upstreams.iter().any(|u| u.name == name)
    }

    /// The configured upstreams' names, in file order.
    pub fn upstream_names(&self) -> Vec<&str> {
        self.upstreams.iter().map(|u| u.name.as_str()).collect()
    }
}

/// Pingora's settings from ours. Pingora's own YAML is never read, since it ignores
/// unknown keys on purpose and our file is the one source of truth.
pub fn pingora_conf(fixed: &Fixed, daemon: bool) -> ServerConf {
    ServerConf {
        threads: fixed.threads,
        daemon,
        pid_file: fixed.pid_file.clone(),
        upgrade_sock: fixed.upgrade_sock.clone(),
        // Ours ends requests still in flight at `shutdown_grace`; Pingora's runtime
        // shutdown (which drops them unrecorded) only after it (server::shutdown).
        grace_period_seconds: Some(
            (fixed.shutdown_grace + crate::server::shutdown::FINISH_MARGIN).as_secs(),
        ),
        graceful_shutdown_timeout_seconds: Some(5),
        // Retries are decided by Tollgate (fallback chains), not by a generic count.
        max_retries: 4,
        ..ServerConf::default()
    }
}
