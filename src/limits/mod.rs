//! Limits shared by every instance (`limits.redis_url`, CONTRACT section 8): the limit
//! counters ([`tollgate_filters::limits::LimitCounters`]) kept in Redis or Valkey by the
//! scripts of [`script`], with this process's own counters ([`SpendTracker`]) as the
//! fallback while Redis cannot be reached.
//!
//! - One script call admits a request against all its limits (budgets, tokens and
//!   requests per minute); its settlement is queued, and one more call settles all
//!   that are queued at once. Both run on a small runtime of
//!   their own ([`shared`]), each bounded by [`CALL_TIMEOUT`], so a hung Redis costs a
//!   request that long at most, once.
//! - A call that fails or times out switches this instance to counting alone: the
//!   `tollgate_shared_limits_degraded` gauge goes to 1 and one line is logged; a probe
//!   then pings Redis until it answers, and counting is shared again (one more line).
//!   What was counted alone meanwhile is never replayed into Redis: nothing is added
//!   twice. Requests are never refused because Redis is down.
//! - This process's counters always get what was metered here, so that counting alone
//!   starts from what the store held at start plus what this instance spent since.

pub mod script;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use tollgate_filters::auth::Clock;
use tollgate_filters::limits::{LimitsFilter, SpendTracker};
use tollgate_filters::live::Live;
use tollgate_filters::usage::PriceTable;
use tollgate_filters::Filter;

pub use shared::{SharedCounters, SharedError};

/// The longest one Redis call may take on the request path before this instance counts
/// alone. Local Redis answers in well under a millisecond; this only bounds a hung one.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Where this gateway counts its limits.
pub enum Counters {
    /// In this process alone (no `limits.redis_url`).
    Local(Arc<SpendTracker>),
    /// In Redis, shared with every instance.
    Shared(Arc<SharedCounters>),
}

impl Counters {
    /// The limits filter over these counters.
    pub fn filter(&self, clock: Clock, prices: Arc<Live<PriceTable>>) -> Arc<dyn Filter> {
        match self {
            Counters::Local(c) => Arc::new(LimitsFilter::new(c.clone(), clock).with_prices(prices)),
            Counters::Shared(c) => {
                Arc::new(LimitsFilter::new(c.clone(), clock).with_prices(prices))
            }
        }
    }
}

/// The background service that connects the shared counters once the server runs
/// (after `serve -d` forked), so that an unreachable Redis is reported at start.
pub struct Connect(pub Arc<SharedCounters>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Connect {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        self.0.connect();
    }
}

/// The message for a URL the Redis client refuses (it never repeats the URL).
const INVALID_URL: &str = "is not a valid Redis URL (redis[s]://[:PASSWORD@]HOST[:PORT][/DB])";

/// Why `limits.redis_url` is not usable, in words that never repeat the URL (it may
/// carry a password).
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "valkey" | "unix" | "redis+unix" | "valkey+unix") => {}
        Some("rediss" | "valkeys") => {
            if url.ends_with("#insecure") {
                return Err(
                    "#insecure would take any certificate: give the server's CA as limits.redis_ca"
                        .into(),
                );
            }
        }
        _ => {
            return Err(
                "must be a redis[s]://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH URL".into(),
            )
        }
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|_| INVALID_URL.into())
}

/// Whether `url` asks for TLS (`rediss://`, `valkeys://`).
pub fn is_tls(url: &str) -> bool {
    matches!(
        url.split_once("://").map(|(s, _)| s),
        Some("rediss" | "valkeys")
    )
}

/// The PEM file of `limits.redis_ca` (the roots a `rediss://` server's certificate must
/// chain to, instead of the machine's trust store), checked to hold a certificate.
pub fn read_ca(path: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    crate::config::tls::pem_certs(&pem, path)?;
    Ok(pem)
}

/// The Redis client for `url`: over TLS, the server's certificate must chain to the
/// roots of `ca` (`limits.redis_ca`), or to the machine's trust store without it, and
/// name the host.
pub fn client(url: &str, ca: Option<&str>) -> Result<redis::Client, String> {
    let invalid = |_| INVALID_URL.to_owned();
    if is_tls(url) {
        // redis' rustls configs take the process's crypto provider
        pingora::tls::install_default_crypto_provider();
    }
    match ca {
        None => redis::Client::open(url).map_err(invalid),
        Some(path) => {
            let root_cert = Some(read_ca(path).map_err(|why| format!("limits.redis_ca {why}"))?);
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert,
            };
            redis::Client::build_with_tls(url, certs).map_err(invalid)
        }
    }
}

/// `url` without its user and password, for logs.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_being_repeated_and_logged_without_credentials() {
        assert_eq!(check_url("redis://127.0.0.1:6379/0"), Ok(()));
        assert_eq!(check_url("redis://:pw@cache.internal"), Ok(()));
        assert_eq!(check_url("unix:///run/redis.sock"), Ok(()));
        assert_eq!(check_url("rediss://:pw@cache.internal:6380/0"), Ok(()));
        assert_eq!(check_url("valkeys://cache.internal"), Ok(()));
        for bad in [
            "127.0.0.1:6379",
            "http://x",
            "rediss://:secret@x#insecure",
            "redis://:secret@[::1",
        ] {
            let e = check_url(bad).err().unwrap_or_default();
            assert!(!e.is_empty() && !e.contains("secret"), "{bad}: {e}");
        }
        assert_eq!(
            redacted("redis://user:hunter2@cache:6379/1"),
            "redis://cache:6379/1"
        );
        assert_eq!(redacted("redis://cache"), "redis://cache");
    }

    #[test]
    fn only_tls_urls_are_tls() {
        assert!(is_tls("rediss://cache:6380"));
        assert!(is_tls("valkeys://cache"));
        assert!(!is_tls("redis://cache"));
        assert!(!is_tls("unix:///run/redis.sock"));
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem").display().to_string();
        let e = read_ca(&missing).unwrap_err();
        assert!(e.starts_with(&format!("cannot read {missing}: ")), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let empty = empty.display().to_string();
        assert_eq!(
            read_ca(&empty).unwrap_err(),
            format!("{empty} holds no PEM certificate")
        );
        let ca = crate::config::tls::TEST_CA;
        assert!(read_ca(ca).is_ok());
        let e = client("rediss://localhost:1/0", Some(&missing))
            .err()
            .unwrap();
        assert!(e.starts_with("limits.redis_ca cannot read "), "{e}");
        assert!(client("rediss://localhost:1/0", Some(ca)).is_ok());
        assert!(client("rediss://localhost:1/0", None).is_ok());
    }
}
