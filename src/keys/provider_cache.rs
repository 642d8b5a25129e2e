//! The decrypted in-memory copy of the stored provider keys that the proxy reads, so
//! that no request touches SQLite or decrypts anything. Refreshed from the store by the
//! key refresher every second (as [`crate::keys::KeyCache`] is), so a key set or
//! deleted with the CLI or the admin API takes effect within a second.
//!
//! Two kinds of rows: a user's own key for an upstream ([`ProviderKeys::key_for`], read
//! by the `UpstreamHeaders` filter in preference to the upstream's configured keys),
//! and a global key set without `--user` ([`ProviderKeyCache::global_key_for`]), an
//! alternative to putting the key in the config file. The filter does not read global
//! keys: `key_for` returns only the user's own key, and the proxy uses a global key
//! only where it calls `global_key_for` itself.
//!
//! A row that does not decrypt (altered, or copied to another user or upstream in the
//! database) is left out and logged once, without any secret: the request then uses
//! the configured keys, as if no key were stored.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tollgate_filters::{ProviderKeys, Secret};

use crate::store::secrets::ProviderKeyCrypto;
use crate::store::{Store, StoreError};

/// The decrypted keys: users' by user id then upstream (nested, so a lookup borrows
/// the upstream name instead of allocating a key), global ones by upstream.
#[derive(Default)]
struct Loaded {
    users: HashMap<i64, HashMap<String, Secret>>,
    global: HashMap<String, Secret>,
}

/// Stored provider keys, decrypted.
pub struct ProviderKeyCache {
    store: Store,
    crypto: ProviderKeyCrypto,
    // std RwLock around an Arc, as in KeyCache: readers clone the Arc out (O(1)),
    // refresh swaps in a whole new map; never held across an .await. A poisoned lock
    // still holds a complete map, so it is used as is.
    keys: RwLock<Arc<Loaded>>,
    /// Rows already reported as undecryptable, by id and nonce (a row set again gets a
    /// new nonce and is judged afresh), so the log gets one line per bad row rather
    /// than one a second.
    reported: Mutex<HashSet<(i64, Vec<u8>)>>,
}

impl std::fmt::Debug for ProviderKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKeyCache(*****)")
    }
}

impl ProviderKeyCache {
    /// An empty cache; call [`Self::refresh`] to load it.
    pub fn new(store: Store, crypto: ProviderKeyCrypto) -> Self {
        ProviderKeyCache {
            store,
            crypto,
            keys: RwLock::new(Arc::new(Loaded::default())),
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// Reloads every key from the store and decrypts it, replacing the copy (so
    /// deleted keys go too). Blocking: call it from `spawn_blocking` or a thread of its
    /// own. On a store error the last good copy stays; rows that do not decrypt are
    /// skipped (and logged), not an error.
    pub fn refresh(&self) -> Result<(), StoreError> {
        let rows = self.store.all_provider_keys()?;
        let mut loaded = Loaded::default();
        let mut bad = Vec::new();
        for row in rows {
            match self
                .crypto
                .decrypt(row.user_id, &row.upstream, &row.nonce, &row.ciphertext)
            {
                Ok(secret) => {
                    match row.user_id {
                        Some(user) => loaded
                            .users
                            .entry(user)
                            .or_default()
                            .insert(row.upstream, secret),
                        None => loaded.global.insert(row.upstream, secret),
                    };
                }
                Err(e) => {
                    bad.push((row.id, row.nonce, row.upstream, row.user_id, e));
                }
            }
        }
        {
            let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
            let mut still_bad = HashSet::with_capacity(bad.len());
            for (id, nonce, upstream, user, e) in bad {
                let owner = user.map_or_else(|| "global".to_owned(), |u| format!("user id {u}"));
                if !reported.contains(&(id, nonce.clone())) {
                    log::warn!(
                        "provider key row {id} (upstream '{upstream}', {owner}) is ignored: {e}; it was altered or copied from another row. Set it again with `tollgate provider-key set`."
                    );
                }
                still_bad.insert((id, nonce));
            }
            // Only rows that are still bad are remembered, so the set stays small.
            *reported = still_bad;
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The global key stored for `upstream` (set without `--user`), if any. Not used by
    /// [`ProviderKeys::key_for`]; for the proxy to prefer over, or add to, the
    /// upstream's configured keys. Does not block.
    pub fn global_key_for(&self, upstream: &str) -> Option<Secret> {
        self.loaded().global.get(upstream).cloned()
    }

    /// How many keys (users' and global) the copy holds.
    pub fn len(&self) -> usize {
        let l = self.loaded();
        l.global.len() + l.users.values().map(HashMap::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ProviderKeys for ProviderKeyCache {
    /// The key `user_id` stored for `upstream`; never a global key. Does not block.
    fn key_for(&self, user_id: i64, upstream: &str) -> Option<Secret> {
        self.loaded().users.get(&user_id)?.get(upstream).cloned()
    }

    fn shared_key_for(&self, upstream: &str) -> Option<Secret> {
        self.global_key_for(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keyring;
    use crate::store::secrets::MasterKey;
    use crate::store::testing::{add_user, temp_store};
    use tollgate_filters::Role;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        crypto: ProviderKeyCrypto,
        cache: ProviderKeyCache,
        alice: i64,
        bob: i64,
    }

    fn fixture() -> Fixture {
        let (dir, store) = temp_store();
        let crypto = Keyring::load_or_init(&store, &MasterKey::generate(), 0)
            .unwrap()
            .crypto();
        let alice = add_user(&store, "alice", Role::Member, 0).id;
        let bob = add_user(&store, "bob", Role::Member, 0).id;
        let cache = ProviderKeyCache::new(store.clone(), crypto.clone());
        cache.refresh().unwrap();
        Fixture {
            _dir: dir,
            store,
            crypto,
            cache,
            alice,
            bob,
        }
    }

    fn expose(s: Option<Secret>) -> Option<String> {
        s.map(|s| s.expose().to_owned())
    }

    #[test]
    fn users_get_their_own_keys_and_only_after_a_refresh() {
        let f = fixture();
        assert!(f.cache.is_empty());
        f.store
            .set_provider_key(&f.crypto, "o", Some("alice"), &Secret::new("sk-a"), 1)
            .unwrap();
        f.store
            .set_provider_key(&f.crypto, "o", None, &Secret::new("sk-g"), 1)
            .unwrap();
        assert_eq!(f.cache.key_for(f.alice, "o"), None);
        f.cache.refresh().unwrap();
        assert_eq!(
            expose(f.cache.key_for(f.alice, "o")).as_deref(),
            Some("sk-a")
        );
        // Nobody else's key, another upstream's key or the global key.
        assert_eq!(f.cache.key_for(f.bob, "o"), None);
        assert_eq!(f.cache.key_for(f.alice, "other"), None);
        assert_eq!(expose(f.cache.global_key_for("o")).as_deref(), Some("sk-g"));
        assert_eq!(f.cache.global_key_for("other"), None);
        assert_eq!(f.cache.len(), 2);
        assert_eq!(format!("{:?}", f.cache), "ProviderKeyCache(*****)");

        f.store.delete_provider_key("o", Some("alice")).unwrap();
        f.store.delete_provider_key("o", None).unwrap();
        f.cache.refresh().unwrap();
        assert_eq!(f.cache.key_for(f.alice, "o"), None);
        assert_eq!(f.cache.global_key_for("o"), None);
        assert!(f.cache.is_empty());
    }

    #[test]
    fn a_row_copied_to_another_user_is_ignored() {
        let f = fixture();
        f.store
            .set_provider_key(&f.crypto, "o", Some("alice"), &Secret::new("sk-a"), 1)
            .unwrap();
        f.store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) \
                 SELECT upstream, ?1, nonce, ciphertext, created_at, updated_at FROM provider_keys WHERE user_id = ?2",
                [f.bob, f.alice],
            )
            .unwrap();
        // Also one moved to another upstream, and one made global.
        f.store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) \
                 SELECT 'p', user_id, nonce, ciphertext, created_at, updated_at FROM provider_keys WHERE user_id = ?1 \
                 UNION ALL SELECT upstream, NULL, nonce, ciphertext, created_at, updated_at FROM provider_keys WHERE user_id = ?1",
                [f.alice],
            )
            .unwrap();
        f.cache.refresh().unwrap();
        assert_eq!(
            expose(f.cache.key_for(f.alice, "o")).as_deref(),
            Some("sk-a")
        );
        assert_eq!(f.cache.key_for(f.bob, "o"), None);
        assert_eq!(f.cache.key_for(f.alice, "p"), None);
        assert_eq!(f.cache.global_key_for("o"), None);
        assert_eq!(f.cache.len(), 1);
        assert_eq!(f.cache.reported.lock().unwrap().len(), 3);
        // Setting bob's key properly replaces the bad row and clears the report.
        f.store
            .set_provider_key(&f.crypto, "o", Some("bob"), &Secret::new("sk-b"), 2)
            .unwrap();
        f.cache.refresh().unwrap();
        assert_eq!(expose(f.cache.key_for(f.bob, "o")).as_deref(), Some("sk-b"));
        assert_eq!(f.cache.reported.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_store_error_keeps_the_last_good_copy() {
        let f = fixture();
        f.store
            .set_provider_key(&f.crypto, "o", Some("alice"), &Secret::new("sk-a"), 1)
            .unwrap();
        f.cache.refresh().unwrap();
        f.store
            .conn()
            .unwrap()
            .execute_batch("ALTER TABLE provider_keys RENAME TO gone")
            .unwrap();
        assert!(f.cache.refresh().is_err());
        assert_eq!(
            expose(f.cache.key_for(f.alice, "o")).as_deref(),
            Some("sk-a")
        );
    }
}
