//! Envelope keys: the data keys that do the work, wrapped by the master key.
//!
//! Two random 32-byte data keys live in the store's `data_keys` table, each encrypted
//! ("wrapped") with AES-256-GCM under `MasterKey::subkey("wrap")`, the purpose string as
//! associated data (so one wrapped key cannot be passed off as the other):
//!
//! - `gateway-key-hmac`: the HMAC key of gateway key secrets ([`Keyring::hasher`]);
//! - `provider-key-aes`: the AES-256-GCM key of stored provider keys
//!   ([`Keyring::crypto`]).
//!
//! Rotating the master key re-wraps the two data keys and touches nothing else: every
//! gateway key HMAC and every encrypted provider key stays valid. A master key that
//! does not unwrap them is refused with one clear error, rather than quietly treating
//! every gateway key as unknown.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;

use crate::store::secrets::aead::{cipher, random_key, random_nonce, NONCE_LEN};
use crate::store::secrets::{KeyHasher, MasterKey, ProviderKeyCrypto};
use crate::store::{DataKeyRow, Store, StoreError};

/// The purpose of the gateway-key HMAC data key (also its row in `data_keys`).
pub const HMAC_PURPOSE: &str = "gateway-key-hmac";
/// The purpose of the provider-key encryption data key.
pub const AES_PURPOSE: &str = "provider-key-aes";
/// The master key's sub-key that wraps data keys.
const WRAP_SUBKEY: &str = "wrap";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("the master key does not match this store: its data keys were wrapped under another master key (was secrets.master_key, TOLLGATE_MASTER_KEY or master.key changed?)")]
    MasterMismatch,
    #[error("the store's data key '{0}' is malformed")]
    Malformed(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The two data keys, unwrapped. Never printed.
#[derive(Clone)]
pub struct Keyring {
    hmac: [u8; 32],
    aes: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(*****)")
    }
}

fn wrap(
    master: &MasterKey,
    purpose: &str,
    key: &[u8; 32],
    now: i64,
) -> Result<DataKeyRow, KeyringError> {
    let nonce = random_nonce();
    let wrapped = cipher(&master.subkey(WRAP_SUBKEY))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: purpose.as_bytes(),
            },
        )
        // Only inputs beyond 64 GiB fail; 32 bytes never do.
        .map_err(|_| KeyringError::Malformed(purpose.to_owned()))?;
    Ok(DataKeyRow {
        purpose: purpose.to_owned(),
        nonce: nonce.to_vec(),
        wrapped,
        created_at: now,
        rotated_at: None,
    })
}

fn unwrap_row(master: &MasterKey, row: &DataKeyRow) -> Result<[u8; 32], KeyringError> {
    if row.nonce.len() != NONCE_LEN {
        return Err(KeyringError::Malformed(row.purpose.clone()));
    }
    let plain = cipher(&master.subkey(WRAP_SUBKEY))
        .decrypt(
            Nonce::from_slice(&row.nonce),
            Payload {
                msg: &row.wrapped,
                aad: row.purpose.as_bytes(),
            },
        )
        // The tag does not verify: another master key (or a tampered row, which only
        // someone with write access to the store could make).
        .map_err(|_| KeyringError::MasterMismatch)?;
    plain
        .try_into()
        .map_err(|_| KeyringError::Malformed(row.purpose.clone()))
}

fn find<'a>(rows: &'a [DataKeyRow], purpose: &str) -> Result<&'a DataKeyRow, KeyringError> {
    rows.iter()
        .find(|r| r.purpose == purpose)
        .ok_or_else(|| KeyringError::Malformed(purpose.to_owned()))
}

impl Keyring {
    /// The keyring of this store, created (random data keys, wrapped under `master`) on
    /// first use. Safe when two processes start on a new store at once: both insert
    /// with `INSERT OR IGNORE` in an IMMEDIATE transaction and then use whatever rows
    /// won. Fails with [`KeyringError::MasterMismatch`] when `master` is not the key
    /// the store's data keys were wrapped under.
    pub fn load_or_init(
        store: &Store,
        master: &MasterKey,
        now: i64,
    ) -> Result<Keyring, KeyringError> {
        // A store from before the keyring hashed gateway keys under this sub-key of
        // the master key: adopting it as the data key keeps those keys valid (and from
        // here on the master key can rotate without touching them). New stores get a
        // random key.
        let hmac = if store.has_gateway_keys()? {
            master.subkey(HMAC_PURPOSE)
        } else {
            random_key()
        };
        let candidates = [
            wrap(master, HMAC_PURPOSE, &hmac, now)?,
            wrap(master, AES_PURPOSE, &random_key(), now)?,
        ];
        store.init_data_keys(&candidates, |rows| {
            Ok(Keyring {
                hmac: unwrap_row(master, find(rows, HMAC_PURPOSE)?)?,
                aes: unwrap_row(master, find(rows, AES_PURPOSE)?)?,
            })
        })
    }

    /// Whether `master` opens this store's data keys, without writing anything: `Ok(0)`
    /// for a store that has none yet, `Ok(n)` when all `n` unwrap,
    /// [`KeyringError::MasterMismatch`] when they were wrapped under another key.
    pub fn verify(store: &Store, master: &MasterKey) -> Result<usize, KeyringError> {
        let rows = store.data_keys()?;
        for r in &rows {
            unwrap_row(master, r)?;
        }
        Ok(rows.len())
    }

    /// Re-wraps every data key from `old` to `new` in one transaction; returns how many
    /// were re-wrapped. The data keys themselves do not change. Fails (changing nothing)
    /// with [`KeyringError::MasterMismatch`] when `old` is not the store's master key.
    pub fn rotate_master(
        store: &Store,
        old: &MasterKey,
        new: &MasterKey,
        now: i64,
    ) -> Result<usize, KeyringError> {
        // Creates the keyring if this store has none yet, so there is something to
        // move (and checks `old` against it otherwise).
        Keyring::load_or_init(store, old, now)?;
        store.rewrap_data_keys(now, |rows| {
            rows.into_iter()
                .map(|r| {
                    let key = unwrap_row(old, &r)?;
                    let fresh = wrap(new, &r.purpose, &key, now)?;
                    Ok(DataKeyRow {
                        created_at: r.created_at,
                        ..fresh
                    })
                })
                .collect()
        })
    }

    /// The HMAC of gateway key secrets.
    pub fn hasher(&self) -> KeyHasher {
        KeyHasher::new(self.hmac)
    }

    /// Encryption of stored provider keys.
    pub fn crypto(&self) -> ProviderKeyCrypto {
        ProviderKeyCrypto::new(&self.aes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{add_user, on_both_backends, raw, TestBackend};
    use tollgate_filters::{Role, Secret};

    on_both_backends!(
        created_once_then_loaded_and_checked,
        concurrent_first_use_agrees_on_one_keyring,
        a_store_with_old_gateway_keys_keeps_their_hmac_key,
        rotation_rewraps_and_keeps_the_data_keys,
        rotation_of_a_store_without_a_keyring_creates_it_under_the_new_key,
        wrapped_keys_are_bound_to_their_purpose,
    );

    fn created_once_then_loaded_and_checked(b: &TestBackend) {
        let s = &b.store;
        let m = MasterKey::generate();
        let a = Keyring::load_or_init(s, &m, 1).unwrap();
        // Random, distinct keys, not derived from the master key.
        assert_ne!(a.hmac, a.aes);
        assert_ne!(a.hmac, m.subkey(HMAC_PURPOSE));
        // Another process opening the same file gets the same keys.
        let again = b.reopen();
        let b = Keyring::load_or_init(&again, &m, 2).unwrap();
        assert_eq!((a.hmac, a.aes), (b.hmac, b.aes));
        assert_eq!(format!("{a:?}"), "Keyring(*****)");
        assert_eq!(format!("{:?}", a.crypto()), "ProviderKeyCrypto(*****)");
        // The stored rows are wrapped, not the keys themselves.
        let rows = s
            .init_data_keys(&[], |r| Ok::<_, StoreError>(r.to_vec()))
            .unwrap();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!((r.nonce.len(), r.wrapped.len(), r.created_at), (12, 48, 1));
            assert!(!r.wrapped.windows(32).any(|w| w == a.hmac || w == a.aes));
        }
        // Another master key is refused with a clear message, and adds nothing.
        let e = Keyring::load_or_init(s, &MasterKey::generate(), 3).unwrap_err();
        assert!(matches!(e, KeyringError::MasterMismatch));
        assert!(e
            .to_string()
            .starts_with("the master key does not match this store"));
    }

    fn concurrent_first_use_agrees_on_one_keyring(b: &TestBackend) {
        let m = MasterKey::generate();
        let got: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let s = b.reopen();
                        let k = Keyring::load_or_init(&s, &m, 1).unwrap();
                        (k.hmac, k.aes)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.windows(2).all(|w| w[0] == w[1]));
    }

    fn a_store_with_old_gateway_keys_keeps_their_hmac_key(b: &TestBackend) {
        let s = &b.store;
        let m = MasterKey::generate();
        let legacy = KeyHasher::new(m.subkey(HMAC_PURPOSE));
        add_user(s, "alice", Role::Member, 0);
        let (_, key) = s
            .create_key(&legacy, &crate::store::KeyCreate::for_user("alice"), 0)
            .unwrap();
        let k = Keyring::load_or_init(s, &m, 1).unwrap();
        let row = s.all_keys_for_auth().unwrap().remove(0);
        let (_, secret) = crate::store::secrets::parse_gateway_key(key.expose()).unwrap();
        assert!(k.hasher().verify(secret, &row.secret_hmac));
    }

    fn rotation_rewraps_and_keeps_the_data_keys(b: &TestBackend) {
        let s = &b.store;
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let before = Keyring::load_or_init(s, &old, 1).unwrap();
        let stored = before.hasher().hash("secret");
        let (n, c) = before
            .crypto()
            .encrypt(Some(1), "up", &Secret::new("sk-1"))
            .unwrap();

        // The wrong "old" key changes nothing.
        let e = Keyring::rotate_master(s, &new, &old, 2).unwrap_err();
        assert!(matches!(e, KeyringError::MasterMismatch));
        Keyring::load_or_init(s, &old, 2).unwrap();

        assert_eq!(Keyring::rotate_master(s, &old, &new, 5).unwrap(), 2);
        assert!(matches!(
            Keyring::load_or_init(s, &old, 6),
            Err(KeyringError::MasterMismatch)
        ));
        let after = Keyring::load_or_init(s, &new, 6).unwrap();
        assert!(after.hasher().verify("secret", &stored));
        assert_eq!(
            after
                .crypto()
                .decrypt(Some(1), "up", &n, &c)
                .unwrap()
                .expose(),
            "sk-1"
        );
        let rows = s
            .init_data_keys(&[], |r| Ok::<_, StoreError>(r.to_vec()))
            .unwrap();
        assert!(rows
            .iter()
            .all(|r| r.created_at == 1 && r.rotated_at == Some(5)));
    }

    fn rotation_of_a_store_without_a_keyring_creates_it_under_the_new_key(b: &TestBackend) {
        let s = &b.store;
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        assert_eq!(Keyring::rotate_master(s, &old, &new, 1).unwrap(), 2);
        Keyring::load_or_init(s, &new, 2).unwrap();
    }

    fn wrapped_keys_are_bound_to_their_purpose(b: &TestBackend) {
        let s = &b.store;
        let m = MasterKey::generate();
        Keyring::load_or_init(s, &m, 1).unwrap();
        // Swap the two wrapped keys' purposes in the database: neither unwraps.
        raw(
            s,
            "UPDATE data_keys SET purpose = 'x' WHERE purpose = 'gateway-key-hmac';
             UPDATE data_keys SET purpose = 'gateway-key-hmac' WHERE purpose = 'provider-key-aes';
             UPDATE data_keys SET purpose = 'provider-key-aes' WHERE purpose = 'x';",
        );
        assert!(matches!(
            Keyring::load_or_init(s, &m, 2),
            Err(KeyringError::MasterMismatch)
        ));
    }
}
