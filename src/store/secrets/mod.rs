//! Key material, below the store that keeps it: the master key and its file
//! ([`master`]), the gateway key format and the HMAC of its secret ([`gateway_key`]),
//! the encryption of provider keys ([`provider_crypto`]) and the AES-GCM plumbing the
//! last two share ([`aead`]). Nothing here reads the store; the keyring that unwraps the
//! store's data keys with the master key is `crate::keys::keyring`, above it.

pub(crate) mod aead;
pub mod gateway_key;
pub mod master;
pub mod provider_crypto;

pub use gateway_key::{generate_gateway_key, parse_gateway_key, KeyHasher, KEY_ID_LEN};
pub use master::{
    commit_master_key_file, master_key_path, stage_master_key_file, MasterKey, SecretsError,
};
pub use provider_crypto::{CryptoError, ProviderKeyCrypto};
