//! The keys a running gateway holds in memory, above the store they come from: the
//! keyring (the store's data keys, unwrapped with the master key), the caches of
//! gateway keys and of decrypted provider keys that requests read instead of SQLite,
//! and the legacy shared keys of `auth.mode: legacy | both`.

pub mod gateway_cache;
pub mod keyring;
pub mod legacy;
pub mod provider_cache;

pub use gateway_cache::KeyCache;
pub use keyring::{Keyring, KeyringError};
pub use provider_cache::ProviderKeyCache;
