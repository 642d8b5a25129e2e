//! Test support for the crate's unit tests: a store in a temporary directory
//! ([`temp_store`], defined beside `Store` so the store's own tests can use it without
//! importing this module), users in it, and the gateway-key HMAC the older tests were
//! written with.

use std::path::Path;

use tollgate_filters::Role;

use super::secrets::{KeyHasher, MasterKey};
pub(crate) use super::temp_store;
use super::{Store, UserCreate, UserRow};

/// Creates user `name` with `role`, no password and no budget, at `now`.
pub(crate) fn add_user(store: &Store, name: &str, role: Role, now: i64) -> UserRow {
    store
        .create_user(&UserCreate::new(name, role), now)
        .unwrap()
}

/// A gateway-key HMAC from the master key in `dir` (created there on first use).
pub(crate) fn hasher_in(dir: &Path) -> KeyHasher {
    KeyHasher::new(
        MasterKey::load_or_create("", dir)
            .unwrap()
            .subkey("gateway-key-hmac"),
    )
}
