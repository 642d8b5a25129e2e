//! The in-memory copy of the gateway keys that authentication reads, so that no request
//! touches SQLite. Refreshed from the store every second by a background service; a key
//! missing from the copy (created a moment ago) is looked up once, off the async threads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tollgate_filters::pattern::ModelPattern;
use tollgate_filters::{KeyLookup, Principal, Secret};

use crate::secrets::{parse_gateway_key, KeyHasher};
use crate::store::{AuthKeyRow, Store, StoreError};

/// A key as cached: the row plus its compiled scopes.
struct Cached {
    row: AuthKeyRow,
    scopes: Vec<ModelPattern>,
}

impl From<AuthKeyRow> for Cached {
    fn from(row: AuthKeyRow) -> Self {
        let scopes = row.models.iter().map(|m| ModelPattern::parse(m)).collect();
        Cached { row, scopes }
    }
}

/// Gateway keys by id.
pub struct KeyCache {
    store: Store,
    hasher: KeyHasher,
    // std RwLock: read or swapped in O(1), never held across an .await.
    keys: RwLock<Arc<HashMap<String, Arc<Cached>>>>,
}

impl KeyCache {
    pub fn new(store: Store, hasher: KeyHasher) -> Self {
        KeyCache {
            store,
            hasher,
            keys: RwLock::new(Arc::new(HashMap::new())),
        }
    }

    /// Reloads every key from the store (blocking).
    pub fn refresh(&self) -> Result<(), StoreError> {
        let rows = self.store.all_keys_for_auth()?;
        let map: HashMap<String, Arc<Cached>> = rows
            .into_iter()
            .map(|r| (r.id.clone(), Arc::new(Cached::from(r))))
            .collect();
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(map);
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Arc<Cached>> {
        self.keys.read().ok()?.get(id).cloned()
    }

    /// A key not yet in the copy: one indexed lookup, on the blocking pool.
    async fn fetch(&self, id: &str) -> Option<Arc<Cached>> {
        let store = self.store.clone();
        let owned = id.to_owned();
        let row = tokio::task::spawn_blocking(move || store.auth_key(&owned))
            .await
            .ok()?
            .ok()??;
        let cached = Arc::new(Cached::from(row));
        if let Ok(mut keys) = self.keys.write() {
            let mut map = HashMap::clone(&keys);
            map.insert(id.to_owned(), cached.clone());
            *keys = Arc::new(map);
        }
        Some(cached)
    }
}

#[async_trait]
impl KeyLookup for KeyCache {
    async fn authenticate(&self, presented: &Secret) -> Option<Principal> {
        let (id, secret) = parse_gateway_key(presented.expose())?;
        let cached = match self.get(id) {
            Some(c) => c,
            None => self.fetch(id).await?,
        };
        if !self.hasher.verify(secret, &cached.row.secret_hmac) {
            return None;
        }
        let r = &cached.row;
        Some(Principal {
            key_id: r.id.clone(),
            user_id: r.user_id,
            user: r.username.clone(),
            role: r.role,
            scopes: cached.scopes.clone(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MasterKey;
    use crate::store::NewKey;
    use tollgate_filters::Role;

    #[tokio::test]
    async fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let hasher = KeyHasher::new(&MasterKey::load_or_create("", dir.path()).unwrap());
        store.create_user("alice", Role::Member, None, 1).unwrap();
        let cache = KeyCache::new(store.clone(), hasher.clone());
        cache.refresh().unwrap();
        let new = NewKey {
            user: "alice".into(),
            models: vec!["gpt-*".into()],
            ..NewKey::default()
        };
        let (row, key) = store.create_key(&hasher, new, 5).unwrap();
        // Created after the refresh: found by the one-off lookup.
        let p = cache.authenticate(&key).await.unwrap();
        assert_eq!(
            (p.key_id.as_str(), p.user.as_str(), p.scopes.len()),
            (row.id.as_str(), "alice", 1)
        );
        let mut wrong = key.expose().to_owned();
        wrong.pop();
        wrong.push(if key.expose().ends_with('A') {
            'B'
        } else {
            'A'
        });
        assert!(cache.authenticate(&Secret::new(wrong)).await.is_none());
        assert!(cache.authenticate(&Secret::new("tg_x_y")).await.is_none());
        store.revoke_key(&row.id, 9).unwrap();
        cache.refresh().unwrap();
        assert_eq!(cache.authenticate(&key).await.unwrap().revoked_at, Some(9));
    }
}
