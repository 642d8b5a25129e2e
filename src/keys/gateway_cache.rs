//! The in-memory copy of the gateway keys that authentication reads, so that no request
//! touches SQLite. Refreshed from the store by a background service; a key missing from
//! the copy (created by the CLI a moment ago) is looked up once, off the async threads.
//!
//! A secret that verified against a cached key is remembered on that entry as a keyed
//! 128-bit fingerprint, so later requests with the same key skip the HMAC. The entry,
//! and with it the fingerprint, is replaced by every refresh (on every announced change
//! to keys, see [`crate::changes`], and once a second), so a revoked, updated or
//! re-hashed key is re-checked against the store's row at once.
//!
//! Every refusal of a well-formed key computes one HMAC, a wrong id (against a dummy)
//! as a wrong secret does; what an id missing from the copy costs on top (one store
//! lookup) tells only whether the id exists, and ids are not secret (`key list`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use async_trait::async_trait;
use siphasher::sip128::SipHasher13;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tollgate_filters::context::{Budget, BudgetPeriod};
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::{KeyLookup, Principal, Secret};

use crate::store::secrets::{generate_gateway_key, parse_gateway_key, KeyHasher};
use crate::store::{AuthKeyRow, Store, StoreError};

/// Store lookups of unknown ids running at once. Well-formed but unknown keys are
/// cheap to send, so a flood of them must queue here instead of filling the blocking
/// pool and starving the writers of the single store connection.
const MAX_MISS_LOOKUPS: usize = 4;

/// A key as cached: the row, the principal it authenticates as, and when it was last
/// used (kept here and written to the store in batches, never per request).
struct Cached {
    row: AuthKeyRow,
    principal: Arc<Principal>,
    /// Unix seconds of the last successful authentication (0: none since start).
    last_used: AtomicI64,
    /// The `last_used` value already written to the store (carried over by refreshes
    /// with `last_used`, so that a time not yet written stays pending).
    flushed: AtomicI64,
    /// Fingerprint of the secret that last verified against `row.secret_hmac` (only one
    /// secret can). Lives as long as this entry, i.e. until the next refresh.
    verified: OnceLock<[u8; 16]>,
}

fn budget(b: &Option<(i64, String)>) -> Option<Budget> {
    let (nanos, period) = b.as_ref()?;
    Some(Budget {
        limit_nanos: u64::try_from(*nanos).ok()?,
        period: BudgetPeriod::parse(period)?,
    })
}

impl From<AuthKeyRow> for Cached {
    fn from(row: AuthKeyRow) -> Self {
        let principal = Principal {
            key_id: row.id.clone(),
            user_id: row.user_id,
            user: row.username.clone(),
            role: row.role,
            scopes: row.models.iter().map(|m| ModelPattern::parse(m)).collect(),
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            budget: budget(&row.budget),
            user_budget: budget(&row.user_budget),
            rpm: row.rpm,
            tpm: row.tpm,
        };
        Cached {
            row,
            principal: Arc::new(principal),
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
            verified: OnceLock::new(),
        }
    }
}

/// Keyed by id with a fast hasher rather than SipHash: the map only ever holds ids the
/// gateway generated (at random) and read from its store; a request's id is only looked
/// up, never inserted, so no client can choose what collides.
type KeyMap = HashMap<String, Arc<Cached>, foldhash::fast::RandomState>;

/// Gateway keys by id.
pub struct KeyCache {
    store: Store,
    hasher: KeyHasher,
    // std RwLock around an Arc: readers clone one entry out and writers swap the whole
    // map, so the lock is held for O(1) and never across an .await. A poisoned lock is
    // still consistent (the map is only ever replaced whole), so it is used as is.
    keys: RwLock<Arc<KeyMap>>,
    misses: Semaphore,
    /// Held by a refresh from its read to its swap: two refreshes at once (the periodic
    /// one and an announced change) must not let the older read replace the newer.
    refreshing: std::sync::Mutex<()>,
    /// The 128-bit SipHash-1-3 for the fingerprint of verified secrets, under two
    /// independent random keys drawn once per process. Being keyed (and never exposed),
    /// the fingerprint of a guess says nothing about the real secret's. One pass of the
    /// 128-bit variant rather than two of std's 64-bit one (whose second key is derived
    /// from the first, k0 + 1): half the work, and a full 128 bits against a wrong
    /// secret matching.
    fingerprint_key: SipHasher13,
    /// The HMAC of a random secret nobody holds: a presented secret whose id no key has
    /// is verified against it, so that a wrong id costs the same HMAC as a wrong secret.
    dummy_hmac: Vec<u8>,
}

impl KeyCache {
    pub fn new(store: Store, hasher: KeyHasher) -> Self {
        KeyCache {
            store,
            keys: RwLock::new(Arc::new(KeyMap::default())),
            misses: Semaphore::new(MAX_MISS_LOOKUPS),
            refreshing: std::sync::Mutex::new(()),
            fingerprint_key: SipHasher13::new_with_keys(rand::random(), rand::random()),
            dummy_hmac: hasher.hash(generate_gateway_key().1.expose()),
            hasher,
        }
    }

    /// The keyed fingerprint of a presented secret (see `Cached::verified`).
    fn fingerprint(&self, secret: &str) -> [u8; 16] {
        self.fingerprint_key.hash(secret.as_bytes()).as_bytes()
    }

    /// Whether `secret` is the key's secret: a constant-time match against the
    /// fingerprint of the secret that verified before, else the HMAC (whose success is
    /// then remembered for the life of the entry).
    fn secret_matches(&self, cached: &Cached, secret: &str) -> bool {
        let fingerprint = self.fingerprint(secret);
        if cached
            .verified
            .get()
            .is_some_and(|known| bool::from(known.ct_eq(&fingerprint)))
        {
            return true;
        }
        if !self.hasher.verify(secret, &cached.row.secret_hmac) {
            return false;
        }
        // Only the one right secret gets here, so a value already set is the same.
        let _ = cached.verified.set(fingerprint);
        true
    }

    /// Reloads every key from the store, replacing the copy (so deleted keys go too).
    /// Only reads: a store that refuses writes still delivers revocations (last-used
    /// times are written by [`Self::flush_last_used`]). Blocking: call it from
    /// `spawn_blocking` or a thread of its own. On error the last good copy stays.
    pub fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let map: KeyMap = self
            .store
            .all_keys_for_auth()?
            .into_iter()
            .map(|r| {
                let fresh = Cached::from(r);
                if let Some(prev) = old.get(&fresh.row.id) {
                    let (last, flushed) = (&prev.last_used, &prev.flushed);
                    fresh
                        .last_used
                        .store(last.load(Ordering::Relaxed), Ordering::Relaxed);
                    fresh
                        .flushed
                        .store(flushed.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                (fresh.row.id.clone(), Arc::new(fresh))
            })
            .collect();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
        Ok(())
    }

    /// Writes the last-used times gathered since the previous flush, as one batch.
    /// Separate from [`Self::refresh`], so that a store refusing writes (a full disk)
    /// never holds back a revocation; on error the times stay pending for the next one.
    pub fn flush_last_used(&self) -> Result<(), StoreError> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let used: Vec<(&Cached, i64)> = keys
            .values()
            .filter_map(|c| {
                let t = c.last_used.load(Ordering::Relaxed);
                (t > c.flushed.load(Ordering::Relaxed)).then_some((c.as_ref(), t))
            })
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        let batch: Vec<(String, i64)> = used.iter().map(|(c, t)| (c.row.id.clone(), *t)).collect();
        self.store.touch_keys(&batch)?;
        for (c, t) in used {
            c.flushed.fetch_max(t, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many keys the copy holds.
    pub fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, id: &str) -> Option<Arc<Cached>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// A key not yet in the copy: one indexed lookup on the blocking pool, cached when
    /// found. Unknown ids are not remembered, so that a key created right after a miss
    /// still works at once.
    async fn fetch(&self, id: &str) -> Option<Arc<Cached>> {
        let _permit = self.misses.acquire().await.ok()?;
        // A concurrent lookup of the same id may have filled it in while we queued.
        if let Some(hit) = self.get(id) {
            return Some(hit);
        }
        let store = self.store.clone();
        let owned = id.to_owned();
        let row = match tokio::task::spawn_blocking(move || store.auth_key(&owned)).await {
            Ok(Ok(row)) => row?,
            Ok(Err(e)) => {
                log::warn!("key lookup failed: {e}");
                return None;
            }
            Err(e) => {
                log::warn!("key lookup did not complete: {e}");
                return None;
            }
        };
        let cached = Arc::new(Cached::from(row));
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        // A refresh that swapped in while we read has the key, as new as our row or
        // newer (a revocation in between): never replace it with ours.
        if let Some(hit) = keys.get(id) {
            return Some(hit.clone());
        }
        let mut map = KeyMap::clone(&keys);
        map.insert(id.to_owned(), cached.clone());
        *keys = Arc::new(map);
        Some(cached)
    }
}

#[async_trait]
impl KeyLookup for KeyCache {
    async fn authenticate(&self, presented: &Secret) -> Option<Arc<Principal>> {
        let (id, secret) = parse_gateway_key(presented.expose())?;
        let found = match self.get(id) {
            Some(c) => Some(c),
            None => self.fetch(id).await,
        };
        let Some(cached) = found else {
            // The same work as a wrong secret (see `dummy_hmac`).
            let _ = self.hasher.verify(secret, &self.dummy_hmac);
            return None;
        };
        if !self.secret_matches(&cached, secret) {
            return None;
        }
        cached
            .last_used
            .store(tollgate_filters::clock::system_clock(), Ordering::Relaxed);
        Some(cached.principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secrets::MasterKey;
    use crate::store::testing::{add_user, hasher_in, temp_store};
    use crate::store::KeyCreate;
    use tollgate_filters::Role;

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        hasher: KeyHasher,
        cache: KeyCache,
    }

    fn fixture() -> Fixture {
        let (dir, store) = temp_store();
        let hasher = hasher_in(dir.path());
        add_user(&store, "alice", Role::Member, 1);
        let cache = KeyCache::new(store.clone(), hasher.clone());
        cache.refresh().unwrap();
        Fixture {
            dir,
            store,
            hasher,
            cache,
        }
    }

    fn new_key(models: &[&str], expires_in: Option<&str>) -> KeyCreate {
        KeyCreate {
            models: models.iter().map(|m| m.to_string()).collect(),
            expires_in: expires_in.map(str::to_owned),
            ..KeyCreate::for_user("alice")
        }
    }

    /// The same key with its last secret character changed.
    fn tampered(key: &Secret) -> Secret {
        let mut s = key.expose().to_owned();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        Secret::new(s)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_authenticate_revoke() {
        let f = fixture();
        let (row, key) = f
            .store
            .create_key(&f.hasher, &new_key(&["gpt-*"], None), 5)
            .unwrap();
        // Created after the refresh: found by the one-off lookup, then cached.
        assert!(f.cache.is_empty());
        let p = f.cache.authenticate(&key).await.unwrap();
        assert_eq!(
            (p.key_id.as_str(), p.user.as_str(), p.role, p.revoked_at),
            (row.id.as_str(), "alice", Role::Member, None)
        );
        assert!(p.scopes[0].matches("gpt-4o") && !p.scopes[0].matches("claude-3"));
        assert_eq!(f.cache.len(), 1);

        f.store.revoke_key(&row.id, 9).unwrap();
        // Until the next refresh the copy still has the key unrevoked...
        assert_eq!(f.cache.authenticate(&key).await.unwrap().revoked_at, None);
        f.cache.refresh().unwrap();
        // ...and after it, the revocation is returned for the caller to refuse.
        assert_eq!(
            f.cache.authenticate(&key).await.unwrap().revoked_at,
            Some(9)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_and_malformed_keys_are_refused() {
        let f = fixture();
        let (row, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], None), 5)
            .unwrap();
        f.cache.refresh().unwrap();
        assert!(f.cache.authenticate(&tampered(&key)).await.is_none());
        let unknown_id = key.expose().replacen(&row.id, "aaaaaaaaaaaa", 1);
        assert!(f
            .cache
            .authenticate(&Secret::new(unknown_id))
            .await
            .is_none());
        for bad in ["", "tg_x_y", "Bearer x", &format!("{} ", key.expose())] {
            assert!(f.cache.authenticate(&Secret::new(bad)).await.is_none());
        }
        // A key checked under another master key does not verify.
        let other = KeyHasher::new(
            MasterKey::load_or_create("", &f.dir.path().join("o"))
                .unwrap()
                .subkey("gateway-key-hmac"),
        );
        let foreign = KeyCache::new(f.store.clone(), other);
        foreign.refresh().unwrap();
        assert!(foreign.authenticate(&key).await.is_none());
        // Unknown ids are not cached as misses.
        assert_eq!(f.cache.len(), 1);
        assert!(f.cache.authenticate(&key).await.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remembered_secret_lasts_until_the_refresh() {
        let f = fixture();
        let (row, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], None), 5)
            .unwrap();
        f.cache.refresh().unwrap();
        let verified = |c: &KeyCache| c.get(&row.id).unwrap().verified.get().is_some();
        assert!(!verified(&f.cache));
        assert!(f.cache.authenticate(&key).await.is_some());
        assert!(verified(&f.cache));
        // A remembered secret lets only itself through.
        assert!(f.cache.authenticate(&tampered(&key)).await.is_none());
        assert!(f.cache.authenticate(&key).await.is_some());
        // The refresh replaces the entry: the next request pays the HMAC again, and a
        // revocation in between is seen.
        f.store.revoke_key(&row.id, 9).unwrap();
        f.cache.refresh().unwrap();
        assert!(!verified(&f.cache));
        assert_eq!(
            f.cache.authenticate(&key).await.unwrap().revoked_at,
            Some(9)
        );
        assert!(f.cache.authenticate(&tampered(&key)).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocation_is_seen_while_the_store_refuses_writes() {
        let f = fixture();
        let (row, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], None), 5)
            .unwrap();
        f.cache.refresh().unwrap();
        // Used: a last-used time now waits to be written.
        assert!(f.cache.authenticate(&key).await.is_some());
        // The gateway's connection can no longer write (as on a full disk), while the
        // CLI's, with the one row it changes, still can.
        let set_query_only = |on: bool| {
            f.store
                .conn()
                .unwrap()
                .pragma_update(None, "query_only", on)
                .unwrap()
        };
        set_query_only(true);
        let cli = Store::open(&f.dir.path().join("t.db")).unwrap();
        cli.revoke_key(&row.id, 9).unwrap();
        f.cache.refresh().unwrap();
        assert_eq!(
            f.cache.authenticate(&key).await.unwrap().revoked_at,
            Some(9)
        );
        // The last-used time waits for writes to work again, and is then written.
        assert!(f.cache.flush_last_used().is_err());
        assert_eq!(cli.list_keys(None).unwrap()[0].last_used_at, None);
        set_query_only(false);
        f.cache.flush_last_used().unwrap();
        assert!(cli.list_keys(None).unwrap()[0].last_used_at.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_id_costs_the_hmac_a_wrong_secret_costs() {
        let f = fixture();
        let (row, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], None), 5)
            .unwrap();
        f.cache.refresh().unwrap();
        let unknown_id = Secret::new(key.expose().replacen(&row.id, "aaaaaaaaaaaa", 1));
        // Each refusal computes exactly one HMAC of the presented secret: against the
        // key's row for a wrong secret, against a dummy for an id nobody has.
        for presented in [tampered(&key), unknown_id] {
            let before = f.hasher.macs();
            assert!(f.cache.authenticate(&presented).await.is_none());
            assert_eq!(f.hasher.macs() - before, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_keys_come_back_with_their_expiry() {
        let f = fixture();
        let (_, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], Some("95s")), 5) // expires at 100
            .unwrap();
        let p = f.cache.authenticate(&key).await.unwrap();
        assert_eq!((p.expires_at, p.scopes.len()), (Some(100), 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_from_another_process_works_at_once() {
        let f = fixture();
        f.cache.refresh().unwrap();
        // A second connection to the same file, as the CLI would open.
        let cli = Store::open(&f.dir.path().join("t.db")).unwrap();
        let (_, key) = cli.create_key(&f.hasher, &new_key(&[], None), 5).unwrap();
        assert!(f.cache.authenticate(&key).await.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_all_resolve() {
        let f = fixture();
        let (_, key) = f
            .store
            .create_key(&f.hasher, &new_key(&[], None), 5)
            .unwrap();
        let cache = Arc::new(f.cache);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (cache, key) = (cache.clone(), key.clone());
                tokio::spawn(async move { cache.authenticate(&key).await.is_some() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(cache.len(), 1);
    }
}
