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

/// Why `limits.redis_url` is not usable, in words that never repeat the URL (it may
/// carry a password).
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "valkey" | "unix" | "redis+unix" | "valkey+unix") => {}
        Some("rediss" | "valkeys") => {
            return Err("TLS to Redis (rediss://) is not supported; use redis://".into())
        }
        _ => {
            return Err("must be a redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH URL".into())
        }
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|_| "is not a valid Redis URL (redis://[:PASSWORD@]HOST[:PORT][/DB])".into())
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
        for bad in [
            "127.0.0.1:6379",
            "http://x",
            "rediss://x",
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
}
