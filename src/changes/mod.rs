//! Changes that must be in force at once on every gateway running on a store
//! (README "Users and keys": revocation, updates, user deletion, prices): pushed, not
//! polled. Whoever commits a change to the store (the CLI, or the admin API of one
//! gateway) then *announces* it; each serving process *applies* it (re-reads the part
//! of the store that changed, off the request path) and acknowledges. The periodic
//! refresh of every gateway stays as the safety net, never the mechanism.
//!
//! Two traits carry a change between processes, so that the transport can change
//! without touching either end: [`Announce`] (the committing side) and
//! [`Subscription`] (the serving side). [`local`] implements both with one control
//! socket per serving process under the storage directory (every gateway of a SQLite
//! store runs on this machine). On a PostgreSQL store, shared across machines, the
//! store itself announces each change it commits (`NOTIFY`) and [`postgres`] listens;
//! the control socket still serves the gateways and the CLI of one machine, so that a
//! CLI command returns once they have applied its change.

pub mod listener;
pub mod local;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::config::live::LiveConfig;
use crate::keys::{KeyCache, ProviderKeyCache};
use crate::store::Store;

pub use listener::ChangeListener;

/// How long an announcer waits for each gateway's acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// What changed in the store: a set of the parts a gateway holds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes(u8);

impl Changes {
    /// Gateway keys and what their principals carry of their users (role, budget):
    /// revocation, key and user updates, user deletion.
    pub const KEYS: Changes = Changes(1);
    /// Provider keys stored in the gateway.
    pub const PROVIDER_KEYS: Changes = Changes(2);
    /// Price overrides.
    pub const PRICES: Changes = Changes(4);
    /// Everything (the periodic refresh; a notice naming a part this binary does not
    /// know).
    pub const ALL: Changes = Changes(7);

    const WORDS: [(Changes, &'static str); 3] = [
        (Changes::KEYS, "keys"),
        (Changes::PROVIDER_KEYS, "provider-keys"),
        (Changes::PRICES, "prices"),
    ];

    pub fn contains(self, other: Changes) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Changes) -> Changes {
        Changes(self.0 | other.0)
    }

    /// The parts as words (`keys prices`), as transports carry them.
    pub fn words(self) -> Vec<&'static str> {
        Changes::WORDS
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, w)| *w)
            .collect()
    }

    /// The set named by `words`; a word this binary does not know (from a newer one)
    /// means everything, so that nothing is missed.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Changes {
        words.into_iter().fold(Changes::default(), |acc, w| {
            let part = Changes::WORDS
                .iter()
                .find(|(_, name)| *name == w)
                .map_or(Changes::ALL, |(c, _)| *c);
            acc.union(part)
        })
    }
}

/// What an announcement reached.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Gateways that applied the change and said so.
    pub applied: usize,
    /// One line per gateway that is alive but did not acknowledge in time, or failed
    /// to apply the change (naming it and why).
    pub failed: Vec<String>,
}

/// The committing side: tells every gateway running on the store about changes
/// already committed to it, and waits (bounded by [`ACK_TIMEOUT`]) until each one
/// has applied them. Blocking; gateways that are not running are skipped.
pub trait Announce: Send + Sync {
    fn announce(&self, changes: Changes) -> Delivery;
}

/// One announced change, as a gateway receives it; acknowledge it once applied.
pub struct Notice {
    pub changes: Changes,
    done: oneshot::Sender<Result<(), String>>,
}

impl Notice {
    pub fn new(changes: Changes) -> (Notice, oneshot::Receiver<Result<(), String>>) {
        let (done, wait) = oneshot::channel();
        (Notice { changes, done }, wait)
    }

    /// Tells the announcer the outcome: applied, or why not.
    pub fn ack(self, outcome: Result<(), String>) {
        let _ = self.done.send(outcome);
    }
}

/// The serving side: the changes announced to this gateway, one at a time.
#[async_trait]
pub trait Subscription: Send {
    /// The next notice; `None` once no more can come.
    async fn next(&mut self) -> Option<Notice>;
}

/// What a gateway holds in memory from the store, and how each part is re-read.
pub struct Applier {
    pub store: Store,
    pub keys: Arc<KeyCache>,
    pub provider_keys: Arc<ProviderKeyCache>,
    /// Where the price overrides go, over the config file's prices.
    pub live: LiveConfig,
}

impl Applier {
    /// Re-reads every part in `changes` from the store, off the async threads; each
    /// part is tried even when another fails. A re-read of the keys replaces every
    /// cached key, and with it what was remembered of verified secrets.
    pub async fn apply(&self, changes: Changes) -> Result<(), String> {
        let mut failed = Vec::new();
        if changes.contains(Changes::KEYS) {
            let keys = self.keys.clone();
            if let Err(e) = blocking(move || keys.refresh()).await {
                failed.push(format!("gateway keys: {e}"));
            }
        }
        if changes.contains(Changes::PROVIDER_KEYS) {
            let cache = self.provider_keys.clone();
            if let Err(e) = blocking(move || cache.refresh()).await {
                failed.push(format!("provider keys: {e}"));
            }
        }
        if changes.contains(Changes::PRICES) {
            let (store, live) = (self.store.clone(), self.live.clone());
            let reread = move || {
                live.set_price_overrides(store.price_overrides()?);
                Ok::<_, crate::store::StoreError>(())
            };
            if let Err(e) = blocking(reread).await {
                failed.push(format!("prices: {e}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// Runs a store read on the blocking pool; its error as text.
async fn blocking<E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<(), String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("did not complete: {e}")),
    }
}

/// Changes made inside a gateway (its admin API): applied here at once, then
/// announced to the other gateways on the store.
pub struct Publisher {
    applier: Arc<Applier>,
    others: Arc<dyn Announce>,
}

impl Publisher {
    pub fn new(applier: Arc<Applier>, others: Arc<dyn Announce>) -> Self {
        Publisher { applier, others }
    }

    /// Applies `changes` in this process, then tells the other gateways and waits for
    /// them (bounded). Failures are logged: the change is committed either way, and
    /// the periodic refresh catches up.
    pub async fn publish(&self, changes: Changes) {
        if let Err(e) = self.applier.apply(changes).await {
            log::warn!("cannot apply a change here (the periodic refresh will retry): {e}");
        }
        let others = self.others.clone();
        match tokio::task::spawn_blocking(move || others.announce(changes)).await {
            Ok(d) => {
                for line in d.failed {
                    log::warn!("{line}");
                }
            }
            Err(e) => log::warn!("telling the other gateways did not complete: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_words() {
        let both = Changes::KEYS.union(Changes::PRICES);
        assert_eq!(both.words(), ["keys", "prices"]);
        assert_eq!(Changes::from_words(both.words()), both);
        assert_eq!(Changes::ALL.words().len(), 3);
        assert_eq!(
            Changes::from_words(["provider-keys"]),
            Changes::PROVIDER_KEYS
        );
        // A part a newer binary announces is not ignored: everything is re-read.
        assert_eq!(Changes::from_words(["keys", "routes"]), Changes::ALL);
        assert!(Changes::ALL.contains(both) && !both.contains(Changes::PROVIDER_KEYS));
    }
}
