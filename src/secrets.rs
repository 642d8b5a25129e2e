//! The master key and what is derived from it, and the gateway key format.
//!
//! Gateway keys look like `tg_<id>_<secret>`: the store keeps the id and an
//! HMAC-SHA256 of the secret under a sub-key of the master key, so a stolen database
//! holds nothing a client could present.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tollgate_filters::Secret;

type HmacSha256 = Hmac<Sha256>;

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets.master_key must be the base64 encoding of exactly 32 bytes")]
    BadConfigured,
    #[error("{0} does not hold a base64 32-byte master key")]
    BadFile(String),
    #[error("cannot read or write {0}: {1}")]
    Io(String, std::io::Error),
}

/// The 32-byte master key. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(*****)")
    }
}

fn decode32(text: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

impl MasterKey {
    /// The configured key, or the one in `<storage_dir>/master.key`, created (mode 0600)
    /// on first use.
    pub fn load_or_create(configured: &str, storage_dir: &Path) -> Result<MasterKey, SecretsError> {
        if !configured.trim().is_empty() {
            return decode32(configured)
                .map(MasterKey)
                .ok_or(SecretsError::BadConfigured);
        }
        let path = storage_dir.join("master.key");
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                decode32(&text)
                    .map(MasterKey)
                    .ok_or(SecretsError::BadFile(shown))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(storage_dir)
                    .map_err(|e| SecretsError::Io(shown.clone(), e))?;
                let key: [u8; 32] = rand::thread_rng().gen();
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                write_private_new(&path, text.as_bytes())
                    .map_err(|e| SecretsError::Io(shown.clone(), e))?;
                log::info!("generated a new master key in {shown}");
                Ok(MasterKey(key))
            }
            Err(e) => Err(SecretsError::Io(shown, e)),
        }
    }

    /// A key for one purpose: HMAC-SHA256(master, "tollgate/v1/" + purpose).
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"tollgate/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Writes a new file readable only by its owner, atomically (temp file + rename), and
/// never over an existing key (a concurrent first start keeps the first key).
fn write_private_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "{} is readable by other users; run chmod 600 on it",
                path.display()
            );
        }
    }
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A new gateway key: `(id, full key, secret part)`.
pub fn generate_gateway_key() -> (String, Secret, Secret) {
    let id = random_string(ID_ALPHABET, ID_LEN);
    let secret = random_string(SECRET_ALPHABET, SECRET_LEN);
    let full = Secret::new(format!("tg_{id}_{secret}"));
    (id, full, Secret::new(secret))
}

/// `(id, secret)` of a well-formed gateway key.
pub fn parse_gateway_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("tg_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok =
        secret.len() == SECRET_LEN && secret.bytes().all(|b| SECRET_ALPHABET.contains(&b));
    (id_ok && secret_ok).then_some((id, secret))
}

/// HMAC of gateway key secrets under the master key's "gateway-key-hmac" sub-key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
}

impl KeyHasher {
    pub fn new(master: &MasterKey) -> Self {
        KeyHasher {
            key: master.subkey("gateway-key-hmac"),
        }
    }

    fn mac(&self, secret: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(secret.as_bytes());
        mac
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        self.mac(secret).finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison with a stored HMAC.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        self.mac(secret).verify_slice(stored).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create("", dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load_or_create("", dir.path()).unwrap();
        assert_eq!(a.0, b.0);
        assert_ne!(a.subkey("x"), a.subkey("y"));
        assert_eq!(format!("{a:?}"), "MasterKey(*****)");
        assert!(MasterKey::load_or_create("c2hvcnQ=", dir.path()).is_err());
    }

    #[test]
    fn keys_parse_hash_and_verify() {
        let (id, full, secret) = generate_gateway_key();
        assert_eq!(
            parse_gateway_key(full.expose()),
            Some((id.as_str(), secret.expose()))
        );
        for bad in [
            "",
            "tg_",
            "tg_abc_def",
            "sk-123",
            &format!("tg_{id}_{}!", &secret.expose()[1..]),
        ] {
            assert_eq!(parse_gateway_key(bad), None, "{bad}");
        }
        let h = KeyHasher { key: [7; 32] };
        let stored = h.hash(secret.expose());
        assert!(h.verify(secret.expose(), &stored));
        assert!(!h.verify("other", &stored));
    }
}
