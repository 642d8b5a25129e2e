//! The AES-256-GCM plumbing shared by the two uses of it: wrapping the data keys under
//! the master key (`crate::keys::keyring`) and encrypting provider keys
//! ([`super::provider_crypto`]).

use aes_gcm::aead::KeyInit;
use aes_gcm::{Aes256Gcm, Key};
use rand::rngs::OsRng;
use rand::RngCore;

/// AES-GCM's standard 96-bit nonce.
pub(crate) const NONCE_LEN: usize = 12;

pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

pub(crate) fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    OsRng.fill_bytes(&mut k);
    k
}
