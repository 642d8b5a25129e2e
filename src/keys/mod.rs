//! The keys a running gateway holds in memory, above the store they come from: the
//! keyring (the store's data keys, unwrapped with the master key), and the caches of
//! gateway keys and of decrypted provider keys that requests read instead of SQLite.

pub mod gateway_cache;
pub mod keyring;
pub mod provider_cache;

pub use gateway_cache::KeyCache;
pub use keyring::{Keyring, KeyringError};
pub use provider_cache::ProviderKeyCache;
