//! Legacy shared keys (README "Users and keys"): with `auth.mode: legacy` or `both`, the
//! static keys of `auth.legacy_keys` authenticate like gateway keys (as a Bearer token,
//! `x-api-key`, `x-goog-api-key` or `?key=`), for callers moving over from a single-key
//! proxy. Such requests are recorded under the user `legacy` (key id `legacy`), with no
//! scopes or limits.
//!
//! A presented credential is compared with every legacy key, in constant time: both
//! sides are hashed (SHA-256) first, so neither a key's length nor a matching prefix
//! shows in the time taken, and all keys are compared whatever matches.

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tollgate_filters::{KeyLookup, Principal, Role, Secret};

use crate::config::AuthMode;
use crate::keys::KeyCache;
use crate::store::{Store, StoreError};

/// The user, and the key id, legacy requests are recorded under.
pub const LEGACY_USER: &str = "legacy";

/// The proxy's authentication under `auth.mode`.
pub struct Authenticator {
    mode: AuthMode,
    /// SHA-256 of each legacy key.
    legacy: Vec<[u8; 32]>,
    principal: Arc<Principal>,
    keys: Arc<KeyCache>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Authenticator {
    /// The authentication of `mode`; `legacy_user` is the id of the user `legacy`.
    pub fn new(mode: AuthMode, legacy: &[Secret], legacy_user: i64, keys: Arc<KeyCache>) -> Self {
        Authenticator {
            mode,
            legacy: legacy.iter().map(|k| digest(k.expose())).collect(),
            principal: Arc::new(Principal {
                key_id: LEGACY_USER.to_owned(),
                user_id: legacy_user,
                user: LEGACY_USER.to_owned(),
                role: Role::Member,
                ..Principal::default()
            }),
            keys,
        }
    }

    /// Whether `presented` is one of the legacy keys (all compared, in constant time).
    fn is_legacy(&self, presented: &Secret) -> bool {
        let d = digest(presented.expose());
        let any = self
            .legacy
            .iter()
            .fold(Choice::from(0), |acc, k| acc | k.ct_eq(&d));
        any.into()
    }
}

#[async_trait]
impl KeyLookup for Authenticator {
    async fn authenticate(&self, presented: &Secret) -> Option<Arc<Principal>> {
        if self.mode.accepts_legacy() && self.is_legacy(presented) {
            return Some(self.principal.clone());
        }
        match self.mode {
            AuthMode::Legacy => None,
            AuthMode::Keys | AuthMode::Both => self.keys.authenticate(presented).await,
        }
    }
}

/// What the proxy authenticates with: the gateway key cache in `keys` mode, else an
/// [`Authenticator`], creating the user `legacy` (a member) when it does not exist yet.
pub fn proxy_auth(
    mode: AuthMode,
    legacy: &[Secret],
    store: &Store,
    keys: Arc<KeyCache>,
    now: i64,
) -> Result<Arc<dyn KeyLookup>, StoreError> {
    if !mode.accepts_legacy() {
        return Ok(keys);
    }
    let user = store.ensure_user(LEGACY_USER, now)?;
    log::warn!(
        "auth.mode is {}: the {} static legacy keys are accepted, recorded as user '{LEGACY_USER}'",
        mode.as_str(),
        legacy.len()
    );
    Ok(Arc::new(Authenticator::new(mode, legacy, user, keys)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{add_user, hasher_in, temp_store};
    use crate::store::KeyCreate;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_mode_accepts_its_credentials() {
        let (dir, store) = temp_store();
        add_user(&store, "alice", Role::Member, 0);
        let hasher = hasher_in(dir.path());
        let (_, gateway_key) = store
            .create_key(&hasher, &KeyCreate::for_user("alice"), 0)
            .unwrap();
        let keys = Arc::new(KeyCache::new(store.clone(), hasher));
        let legacy = [Secret::new("sk-old-one"), Secret::new("sk-old-two-longer")];
        let auth = |mode| proxy_auth(mode, &legacy, &store, keys.clone(), 5).unwrap();
        let who = async |lookup: &Arc<dyn KeyLookup>, s: &str| {
            lookup
                .authenticate(&Secret::new(s))
                .await
                .map(|p| (p.key_id.clone(), p.user.clone()))
        };
        let user = store.user_by_name(LEGACY_USER).unwrap();
        assert!(user.is_none(), "keys mode creates no user");
        let keys_only = auth(AuthMode::Keys);
        assert_eq!(who(&keys_only, "sk-old-one").await, None);
        assert!(who(&keys_only, gateway_key.expose()).await.is_some());

        let legacy_only = auth(AuthMode::Legacy);
        let as_legacy = Some(("legacy".to_owned(), "legacy".to_owned()));
        assert_eq!(who(&legacy_only, "sk-old-one").await, as_legacy);
        assert_eq!(who(&legacy_only, "sk-old-two-longer").await, as_legacy);
        assert_eq!(who(&legacy_only, gateway_key.expose()).await, None);
        for wrong in ["sk-old-on", "sk-old-one ", "", "SK-OLD-ONE"] {
            assert_eq!(who(&legacy_only, wrong).await, None, "{wrong:?}");
        }
        let both = auth(AuthMode::Both);
        assert_eq!(who(&both, "sk-old-two-longer").await, as_legacy);
        let alice = who(&both, gateway_key.expose()).await.unwrap();
        assert_eq!(alice.1, "alice");
        // The user exists once, whatever the number of starts.
        let u = store.user_by_name(LEGACY_USER).unwrap().unwrap();
        assert_eq!(
            (u.role, store.ensure_user(LEGACY_USER, 9).unwrap()),
            (Role::Member, u.id)
        );
    }
}
