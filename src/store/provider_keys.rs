//! Queries on `provider_keys`: provider secrets stored encrypted (see
//! [`crate::store::secrets::ProviderKeyCrypto`]), one per upstream and owner, where the owner
//! is a user or, with no user, the gateway as a whole ("global").
//!
//! SQLite treats NULLs as distinct in `UNIQUE (upstream, user_id)`, so that constraint
//! alone would allow many global rows for one upstream. Every query here therefore
//! matches the owner with `user_id IS ?` and writes inside an IMMEDIATE transaction
//! (read, then update or insert, under the write lock); migration 0003 adds a partial
//! unique index on global rows as a second guard.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tollgate_filters::Secret;

use super::{Store, StoreError};
use crate::store::secrets::ProviderKeyCrypto;

/// A stored provider key as the cache loads it: still encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKeyRow {
    pub id: i64,
    pub upstream: String,
    /// `None`: a global key.
    pub user_id: Option<i64>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whether a provider key is set, and since when: all that is ever shown of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderKeyStatus {
    pub created_at: i64,
    pub updated_at: i64,
}

/// The owner's user id; `UnknownUser` for a name that is not a user.
fn owner_id(conn: &Connection, user: Option<&str>) -> Result<Option<i64>, StoreError> {
    let Some(name) = user else {
        return Ok(None);
    };
    conn.query_row("SELECT id FROM users WHERE username = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .map(Some)
    .ok_or_else(|| StoreError::UnknownUser(name.to_owned()))
}

impl Store {
    /// Stores `secret` for `upstream` and `user` (`None`: global), encrypted with a
    /// fresh nonce; replaces an earlier key of the same owner and upstream, keeping its
    /// `created_at`. `UnknownUser` when the user does not exist.
    pub fn set_provider_key(
        &self,
        crypto: &ProviderKeyCrypto,
        upstream: &str,
        user: Option<&str>,
        secret: &Secret,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            let owner = pg.provider_key_owner(user)?;
            let (nonce, ciphertext) = crypto.encrypt(owner, upstream, secret)?;
            return pg.put_provider_key(upstream, owner, nonce, ciphertext, now);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner = owner_id(&tx, user)?;
        let (nonce, ciphertext) = crypto.encrypt(owner, upstream, secret)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM provider_keys WHERE upstream = ?1 AND user_id IS ?2",
                params![upstream, owner],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(id) => tx.execute(
                "UPDATE provider_keys SET nonce = ?2, ciphertext = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, nonce, ciphertext, now],
            )?,
            None => tx.execute(
                "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![upstream, owner, nonce, ciphertext, now],
            )?,
        };
        tx.commit()?;
        Ok(())
    }

    /// Deletes the key of `upstream` and `user` (`None`: global); `Ok(false)` when there
    /// was none. `UnknownUser` when the user does not exist.
    pub fn delete_provider_key(
        &self,
        upstream: &str,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_provider_key(upstream, pg.provider_key_owner(user)?);
        }
        let conn = self.conn()?;
        let owner = owner_id(&conn, user)?;
        let n = conn.execute(
            "DELETE FROM provider_keys WHERE upstream = ?1 AND user_id IS ?2",
            params![upstream, owner],
        )?;
        Ok(n > 0)
    }

    /// When the key of `upstream` and `user` was set, if it is; never the key.
    pub fn provider_key_status(
        &self,
        upstream: &str,
        user: Option<&str>,
    ) -> Result<Option<ProviderKeyStatus>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.provider_key_status(upstream, pg.provider_key_owner(user)?);
        }
        let conn = self.conn()?;
        let owner = owner_id(&conn, user)?;
        Ok(conn
            .query_row(
                "SELECT created_at, updated_at FROM provider_keys WHERE upstream = ?1 AND user_id IS ?2",
                params![upstream, owner],
                |r| {
                    Ok(ProviderKeyStatus {
                        created_at: r.get(0)?,
                        updated_at: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every stored provider key, encrypted, in id order (for the in-memory cache).
    pub fn all_provider_keys(&self) -> Result<Vec<ProviderKeyRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.all_provider_keys();
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, upstream, user_id, nonce, ciphertext, created_at, updated_at FROM provider_keys ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ProviderKeyRow {
                    id: r.get(0)?,
                    upstream: r.get(1)?,
                    user_id: r.get(2)?,
                    nonce: r.get(3)?,
                    ciphertext: r.get(4)?,
                    created_at: r.get(5)?,
                    updated_at: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keyring;
    use crate::store::secrets::MasterKey;
    use crate::store::testing::{add_user, on_both_backends, raw, try_raw, TestBackend};

    on_both_backends!(
        set_replaces_per_owner_and_upstream,
        delete_is_idempotent_and_per_owner,
        unknown_users_are_refused,
        the_schema_allows_one_global_row_per_upstream,
    );

    use tollgate_filters::Role;

    fn setup(b: &TestBackend) -> (&Store, ProviderKeyCrypto) {
        let s = &b.store;
        let k = Keyring::load_or_init(s, &MasterKey::generate(), 0).unwrap();
        add_user(s, "alice", Role::Member, 0);
        add_user(s, "bob", Role::Member, 0);
        (s, k.crypto())
    }

    fn decrypt_all(s: &Store, c: &ProviderKeyCrypto) -> Vec<(String, Option<i64>, String)> {
        s.all_provider_keys()
            .unwrap()
            .iter()
            .map(|r| {
                let k = c
                    .decrypt(r.user_id, &r.upstream, &r.nonce, &r.ciphertext)
                    .unwrap();
                (r.upstream.clone(), r.user_id, k.expose().to_owned())
            })
            .collect()
    }

    fn set_replaces_per_owner_and_upstream(b: &TestBackend) {
        let (s, c) = setup(b);
        let alice = s.user_by_name("alice").unwrap().unwrap().id;
        s.set_provider_key(&c, "o", Some("alice"), &Secret::new("a1"), 10)
            .unwrap();
        s.set_provider_key(&c, "o", Some("alice"), &Secret::new("a2"), 20)
            .unwrap();
        s.set_provider_key(&c, "a", Some("alice"), &Secret::new("a3"), 20)
            .unwrap();
        // Global keys: NULL owners must still be one row per upstream.
        s.set_provider_key(&c, "o", None, &Secret::new("g1"), 30)
            .unwrap();
        s.set_provider_key(&c, "o", None, &Secret::new("g2"), 40)
            .unwrap();
        assert_eq!(
            decrypt_all(s, &c),
            vec![
                ("o".into(), Some(alice), "a2".into()),
                ("a".into(), Some(alice), "a3".into()),
                ("o".into(), None, "g2".into()),
            ]
        );
        assert_eq!(
            s.provider_key_status("o", Some("alice")).unwrap(),
            Some(ProviderKeyStatus {
                created_at: 10,
                updated_at: 20
            })
        );
        assert_eq!(
            s.provider_key_status("o", None).unwrap(),
            Some(ProviderKeyStatus {
                created_at: 30,
                updated_at: 40
            })
        );
        assert_eq!(s.provider_key_status("o", Some("bob")).unwrap(), None);
        assert_eq!(s.provider_key_status("x", None).unwrap(), None);
    }

    fn delete_is_idempotent_and_per_owner(b: &TestBackend) {
        let (s, c) = setup(b);
        s.set_provider_key(&c, "o", Some("alice"), &Secret::new("a"), 1)
            .unwrap();
        s.set_provider_key(&c, "o", Some("bob"), &Secret::new("b"), 1)
            .unwrap();
        s.set_provider_key(&c, "o", None, &Secret::new("g"), 1)
            .unwrap();
        assert!(s.delete_provider_key("o", Some("alice")).unwrap());
        assert!(!s.delete_provider_key("o", Some("alice")).unwrap());
        assert!(s.delete_provider_key("o", None).unwrap());
        assert!(!s.delete_provider_key("o", None).unwrap());
        let left = decrypt_all(s, &c);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].2, "b");
    }

    fn unknown_users_are_refused(b: &TestBackend) {
        let (s, c) = setup(b);
        let e = s
            .set_provider_key(&c, "o", Some("carol"), &Secret::new("x"), 1)
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown user 'carol'");
        assert!(matches!(
            s.delete_provider_key("o", Some("carol")),
            Err(StoreError::UnknownUser(_))
        ));
        assert!(matches!(
            s.provider_key_status("o", Some("carol")),
            Err(StoreError::UnknownUser(_))
        ));
        assert!(s.all_provider_keys().unwrap().is_empty());
    }

    fn the_schema_allows_one_global_row_per_upstream(b: &TestBackend) {
        let (s, _c) = setup(b);
        // '\x00': a one-byte bytea on PostgreSQL, text SQLite stores as given.
        let insert = "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) VALUES ('o', NULL, '\\x00', '\\x00', 0, 0)";
        raw(s, insert);
        assert!(try_raw(s, insert).is_err());
    }
}
