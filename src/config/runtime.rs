//! The validated, ready-to-use form of the config, and Pingora's `ServerConf` built from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::configuration::ServerConf;
use tollgate_filters::router::Router;
use tollgate_filters::upstream::UpstreamTarget;
use tollgate_filters::usage::PriceTable;

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub proxy_listen: Vec<String>,
    pub admin_listen: String,
    /// Lifetime of an admin login session.
    pub admin_session_ttl: Duration,
    pub threads: usize,
    pub shutdown_grace: Duration,
    pub max_body_bytes: u64,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: u32,
    pub storage_path: PathBuf,
    pub storage_dir: PathBuf,
    pub pid_file: String,
    pub upgrade_sock: String,
    /// The configured master key text (empty: use the key file).
    pub master_key: String,
    pub upstreams: Vec<Arc<UpstreamTarget>>,
    pub router: Arc<Router>,
    /// Price patterns in file order; the first match wins.
    pub prices: Arc<PriceTable>,
}

/// Pingora's settings from ours. Pingora's own YAML is never read, since it ignores
/// unknown keys on purpose and our file is the one source of truth.
pub fn pingora_conf(rt: &Runtime, daemon: bool) -> ServerConf {
    ServerConf {
        threads: rt.threads,
        daemon,
        pid_file: rt.pid_file.clone(),
        upgrade_sock: rt.upgrade_sock.clone(),
        grace_period_seconds: Some(rt.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        // Retries are decided by Tollgate (fallback chains), not by a generic count.
        max_retries: 4,
        ..ServerConf::default()
    }
}
