//! Encryption of the provider keys kept in the store, under the keyring's
//! `provider-key-aes` data key, and its error.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use tollgate_filters::Secret;

use super::aead::{cipher, random_nonce, NONCE_LEN};

/// Encryption or decryption of a provider key failed. For decryption this means the
/// row was altered, copied to another owner or upstream, or written under another
/// keyring; the message says nothing more (and nothing secret).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the provider key does not decrypt for this owner and upstream")]
    Decrypt,
    #[error("the provider key cannot be encrypted")]
    Encrypt,
}

/// AES-256-GCM of provider keys under the keyring's `provider-key-aes` data key. The
/// associated data is the row's owner (user id, or `global`) and upstream, so a row
/// copied to another user or upstream in the database does not decrypt there.
#[derive(Clone)]
pub struct ProviderKeyCrypto {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for ProviderKeyCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKeyCrypto(*****)")
    }
}

/// `tollgate/provider-key/v1 NUL <owner> NUL <upstream>`: NUL cannot occur in a user id
/// or (config-validated) upstream name, so distinct pairs never give equal bytes.
fn associated_data(owner: Option<i64>, upstream: &str) -> Vec<u8> {
    let owner = owner.map_or_else(|| "global".to_owned(), |id| id.to_string());
    format!("tollgate/provider-key/v1\0{owner}\0{upstream}").into_bytes()
}

impl ProviderKeyCrypto {
    /// The encryption under this data key; normally [`crate::keys::keyring::Keyring::crypto`].
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        ProviderKeyCrypto {
            cipher: cipher(key),
        }
    }

    /// `(nonce, ciphertext)` of `secret` for this owner and upstream, under a fresh
    /// random nonce (so storing the same key twice gives different bytes).
    pub fn encrypt(
        &self,
        owner: Option<i64>,
        upstream: &str,
        secret: &Secret,
    ) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let nonce = random_nonce();
        let aad = associated_data(owner, upstream);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        Ok((nonce.to_vec(), ciphertext))
    }

    /// The secret of a row; [`CryptoError::Decrypt`] when the bytes, owner or upstream
    /// are not the ones it was encrypted for.
    pub fn decrypt(
        &self,
        owner: Option<i64>,
        upstream: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Secret, CryptoError> {
        if nonce.len() != NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let aad = associated_data(owner, upstream);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_keys_are_bound_to_owner_and_upstream() {
        let c = ProviderKeyCrypto::new(&[2; 32]);
        let secret = Secret::new("sk-alice");
        let (n1, c1) = c.encrypt(Some(7), "openai", &secret).unwrap();
        let (n2, c2) = c.encrypt(Some(7), "openai", &secret).unwrap();
        // A fresh nonce each time.
        assert_ne!((&n1, &c1), (&n2, &c2));
        assert_eq!(n1.len(), 12);
        assert!(!c1.windows(8).any(|w| w == b"sk-alice"));
        assert_eq!(c.decrypt(Some(7), "openai", &n1, &c1).unwrap(), secret);
        for (owner, upstream) in [
            (Some(8), "openai"),
            (None, "openai"),
            (Some(7), "anthropic"),
            (Some(7), "openai2"),
        ] {
            let e = c.decrypt(owner, upstream, &n1, &c1).unwrap_err();
            assert!(matches!(e, CryptoError::Decrypt), "{owner:?} {upstream}");
        }
        // Global rows too.
        let (gn, gc) = c.encrypt(None, "openai", &secret).unwrap();
        assert_eq!(c.decrypt(None, "openai", &gn, &gc).unwrap(), secret);
        assert!(c.decrypt(Some(0), "openai", &gn, &gc).is_err());
        // Tampered bytes, a wrong nonce length, another keyring.
        let mut bad = c1.clone();
        bad[0] ^= 1;
        assert!(c.decrypt(Some(7), "openai", &n1, &bad).is_err());
        assert!(c.decrypt(Some(7), "openai", &n1[..11], &c1).is_err());
        let other = ProviderKeyCrypto::new(&[3; 32]);
        assert!(other.decrypt(Some(7), "openai", &n1, &c1).is_err());
        assert_eq!(
            CryptoError::Decrypt.to_string(),
            "the provider key does not decrypt for this owner and upstream"
        );
    }
}
