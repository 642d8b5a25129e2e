//! Upstream name resolution, done by Tollgate (never inside `HttpPeer::new`, which
//! resolves with a blocking call and panics on failure in Pingora 0.9.1).
//!
//! Answers are cached for [`FRESH_FOR`] and refreshed on the first request after that; if
//! a refresh fails, the last good answer is used for up to [`STALE_FOR`] so that a DNS
//! hiccup does not take a provider away.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FRESH_FOR: Duration = Duration::from_secs(30);
const STALE_FOR: Duration = Duration::from_secs(600);

struct Entry {
    addrs: Vec<SocketAddr>,
    at: Instant,
}

/// A small async resolver cache keyed by `(host, port)`.
#[derive(Default)]
pub struct Resolver {
    // std Mutex: held only to read or swap an entry, never across an .await.
    cache: Mutex<HashMap<(String, u16), Entry>>,
    next: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {0}")]
    NotFound(String),
    #[error("resolving {0} timed out")]
    Timeout(String),
}

impl Resolver {
    /// One address for `host:port`, rotating over the answers.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<SocketAddr, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Some(addr) = self.cached(&key, FRESH_FOR) {
            return Ok(addr);
        }
        let looked_up = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
        match looked_up {
            Ok(Ok(iter)) => {
                let addrs: Vec<SocketAddr> = iter.collect();
                if let Some(first) = addrs.first().copied() {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.insert(
                            key,
                            Entry {
                                addrs,
                                at: Instant::now(),
                            },
                        );
                    }
                    return Ok(first);
                }
                self.cached(&key, STALE_FOR)
                    .ok_or_else(|| ResolveError::NotFound(host.to_owned()))
            }
            Ok(Err(_)) => self
                .cached(&key, STALE_FOR)
                .ok_or_else(|| ResolveError::NotFound(host.to_owned())),
            Err(_) => self
                .cached(&key, STALE_FOR)
                .ok_or_else(|| ResolveError::Timeout(host.to_owned())),
        }
    }

    fn cached(&self, key: &(String, u16), max_age: Duration) -> Option<SocketAddr> {
        let cache = self.cache.lock().ok()?;
        let e = cache.get(key).filter(|e| e.at.elapsed() < max_age)?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % e.addrs.len().max(1);
        e.addrs.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_localhost_and_bad_names() {
        let r = Resolver::default();
        let t = Duration::from_secs(5);
        assert_eq!(
            r.resolve("127.0.0.1", 80, t).await.ok(),
            "127.0.0.1:80".parse().ok()
        );
        assert!(r
            .resolve("localhost", 80, t)
            .await
            .is_ok_and(|a| a.ip().is_loopback()));
        assert!(r.resolve("no-such-host.invalid", 443, t).await.is_err());
    }
}
