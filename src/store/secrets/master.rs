//! The master key, the sub-keys derived from it, and the file that holds it when the
//! config does not (`<storage_dir>/master.key`). Sub-keys are separated by purpose so
//! that one use (say, wrapping the data keys) can never be made to produce material for
//! another (say, signing admin sessions).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::Sha256;
use tollgate_filters::Secret;

type HmacSha256 = Hmac<Sha256>;

const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    // Never include the configured value: it is the secret.
    #[error("secrets.master_key must be the base64 encoding of exactly 32 bytes")]
    BadConfigured,
    #[error("{0} does not hold a base64-encoded 32-byte master key")]
    BadFile(String),
    #[error("cannot read or write {0}: {1}")]
    Io(String, std::io::Error),
    /// No key configured and no key file, while the store has data keys wrapped under a
    /// master key: a new key would not open them.
    #[error("the master key is missing: {0} does not exist and secrets.master_key (TOLLGATE_MASTER_KEY in the shipped config) is empty, but the store's data keys are wrapped under a master key; restore {0} or set the key (a new one would not open them)")]
    Missing(String),
}

/// The 32-byte master key. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("*****")
    }
}

fn decode32(text: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

impl MasterKey {
    /// The configured key if there is one; otherwise the one in
    /// `<storage_dir>/master.key`, generated there (mode 0600) on first use.
    pub fn load_or_create(configured: &str, storage_dir: &Path) -> Result<MasterKey, SecretsError> {
        if !configured.trim().is_empty() {
            return decode32(configured)
                .map(MasterKey)
                .ok_or(SecretsError::BadConfigured);
        }
        let path = storage_dir.join(MASTER_KEY_FILE);
        let shown = path.display().to_string();
        match read_key_file(&path) {
            Ok(key) => return Ok(key),
            Err(SecretsError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(storage_dir).map_err(|e| SecretsError::Io(shown.clone(), e))?;
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        match write_private_new(&path, text.as_bytes()) {
            Ok(()) => {
                log::info!("generated a new master key in {shown}");
                Ok(MasterKey(key))
            }
            // Another process (a CLI command next to a starting server) won the race:
            // both must use the same key, so take the one that was written.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(&path),
            Err(e) => Err(SecretsError::Io(shown, e)),
        }
    }

    /// [`MasterKey::load_or_create`] for a store that may already hold data keys
    /// (`store_has_data_keys`): then a key file gone missing is [`SecretsError::Missing`]
    /// and nothing is written, instead of a new random key that cannot open them (and
    /// that would then have to be found and deleted before the right one is restored).
    pub fn for_store(
        configured: &str,
        storage_dir: &Path,
        store_has_data_keys: bool,
    ) -> Result<MasterKey, SecretsError> {
        let path = storage_dir.join(MASTER_KEY_FILE);
        if store_has_data_keys && configured.trim().is_empty() && !path.exists() {
            return Err(SecretsError::Missing(path.display().to_string()));
        }
        MasterKey::load_or_create(configured, storage_dir)
    }

    /// A new random key (for `rotate-master-key --generate`).
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// The key from its base64 text (surrounding whitespace ignored); `None` unless it
    /// is exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<MasterKey> {
        decode32(text).map(MasterKey)
    }

    /// The base64 text, as `secrets.master_key` and `master.key` hold it.
    pub fn to_base64(&self) -> Secret {
        Secret::new(base64::engine::general_purpose::STANDARD.encode(self.0))
    }

    /// Whether two keys are the same key.
    pub fn same_as(&self, other: &MasterKey) -> bool {
        self.0 == other.0
    }

    /// A key for one purpose: HMAC-SHA256(master, "tollgate/v1/" + purpose).
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tollgate/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// `<storage_dir>/master.key`: where the master key lives when none is configured.
pub fn master_key_path(storage_dir: &Path) -> std::path::PathBuf {
    storage_dir.join(MASTER_KEY_FILE)
}

/// Writes `key` to `<storage_dir>/master.key.new` (mode 0600, synced), replacing an
/// earlier staged file. The first half of replacing the key file: the new key is on disk
/// before the store starts depending on it, so a crash in between loses nothing.
pub fn stage_master_key_file(storage_dir: &Path, key: &MasterKey) -> Result<PathBuf, SecretsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = storage_dir.join(format!("{MASTER_KEY_FILE}.new"));
    let shown = || path.display().to_string();
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SecretsError::Io(shown(), e)),
    }
    let written = (|| {
        // create_new with an explicit mode: the file is never readable by others, not
        // even for a moment (a chmod after the write would leave a window).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(key.to_base64().expose().as_bytes())?;
        f.sync_all()
    })();
    written.map_err(|e| SecretsError::Io(shown(), e))?;
    Ok(path)
}

/// Moves a file written by [`stage_master_key_file`] over `<storage_dir>/master.key`:
/// a rename, so a reader sees the old key or the new one, never a torn file.
pub fn commit_master_key_file(staged: &Path, storage_dir: &Path) -> Result<(), SecretsError> {
    let path = master_key_path(storage_dir);
    std::fs::rename(staged, &path).map_err(|e| SecretsError::Io(path.display().to_string(), e))?;
    // Make the rename durable; failure here is not worth failing for.
    if let Ok(d) = std::fs::File::open(storage_dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<MasterKey, SecretsError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Io(shown(), e))?;
    warn_if_readable_by_others(path);
    decode32(&text)
        .map(MasterKey)
        .ok_or_else(|| SecretsError::BadFile(shown()))
}

/// Writes a new file readable only by its owner, atomically: a reader sees either no
/// file or the whole key, never a torn one. It never replaces an existing file (the
/// error is then `AlreadyExists`), so two first starts cannot end up with two keys.
fn write_private_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{MASTER_KEY_FILE}.{}.{:016x}.tmp",
        std::process::id(),
        OsRng.gen::<u64>()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    // A hard link, unlike a rename, fails when the target exists.
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked?;
    // Make the new directory entry durable too; failure here is not worth failing for.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "{} is accessible to other users; run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secrets::gateway_key::KeyHasher;
    use std::os::unix::fs::PermissionsExt;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("new/sub");
        let a = MasterKey::load_or_create("", &storage).unwrap();
        let path = storage.join("master.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            decode32(&std::fs::read_to_string(&path).unwrap()),
            Some(a.0)
        );
        let b = MasterKey::load_or_create("", &storage).unwrap();
        assert_eq!(a.0, b.0);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(&storage).unwrap().count(), 1);
        // A loose mode is warned about, not refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(MasterKey::load_or_create("", &storage).unwrap().0, a.0);
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("master.key"), "not base64!").unwrap();
        let e = MasterKey::load_or_create("", dir.path()).unwrap_err();
        assert!(matches!(e, SecretsError::BadFile(_)), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("master.key")).unwrap(),
            "not base64!"
        );
    }

    #[test]
    fn configured_key_is_used_and_checked_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let k = MasterKey::load_or_create(&format!("{}\n", b64(&[9; 32])), dir.path()).unwrap();
        assert_eq!(k.0, [9; 32]);
        assert!(!dir.path().join("master.key").exists());
        for bad in [b64(&[1; 31]), b64(&[1; 33]), "sEcReT-not-base64!".into()] {
            let e = MasterKey::load_or_create(&bad, dir.path()).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("secrets.master_key"), "{msg}");
            assert!(!msg.contains(&bad) && !format!("{e:?}").contains(&bad));
        }
    }

    #[test]
    fn a_store_with_data_keys_never_gets_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = MasterKey::for_store("", dir.path(), true).unwrap_err();
        assert!(matches!(e, SecretsError::Missing(_)), "{e}");
        assert!(!dir.path().join("master.key").exists());
        // A configured key, or a store without data keys yet, is as before.
        assert!(MasterKey::for_store(&b64(&[9; 32]), dir.path(), true).is_ok());
        let created = MasterKey::for_store("", dir.path(), false).unwrap();
        let again = MasterKey::for_store("", dir.path(), true).unwrap();
        assert!(again.same_as(&created));
    }

    #[test]
    fn subkeys_differ_per_purpose_and_are_stable() {
        let m = MasterKey([3; 32]);
        assert_ne!(m.subkey("gateway-key-hmac"), m.subkey("provider-key-aead"));
        assert_eq!(m.subkey("x"), MasterKey([3; 32]).subkey("x"));
        assert_ne!(m.subkey("x"), MasterKey([4; 32]).subkey("x"));
        assert_ne!(m.subkey("x").to_vec(), m.0.to_vec());
        assert_eq!(format!("{m:?}"), "*****");
        assert_eq!(format!("{:?}", KeyHasher::new([5; 32])), "KeyHasher(*****)");
    }

    #[test]
    fn a_replaced_key_file_is_staged_then_renamed_private() {
        let dir = tempfile::tempdir().unwrap();
        let old = MasterKey::load_or_create("", dir.path()).unwrap();
        let new = MasterKey::generate();
        assert!(!new.same_as(&old) && new.same_as(&new.clone()));
        let staged = stage_master_key_file(dir.path(), &new).unwrap();
        // Staging again (a retried rotation) replaces the staged file.
        let staged = {
            let again = stage_master_key_file(dir.path(), &new).unwrap();
            assert_eq!(again, staged);
            again
        };
        let mode = std::fs::metadata(&staged).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Until the commit, the old key is the one in use.
        assert!(MasterKey::load_or_create("", dir.path())
            .unwrap()
            .same_as(&old));
        commit_master_key_file(&staged, dir.path()).unwrap();
        assert!(!staged.exists());
        let path = master_key_path(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(MasterKey::load_or_create("", dir.path())
            .unwrap()
            .same_as(&new));
        assert!(MasterKey::from_base64(new.to_base64().expose())
            .unwrap()
            .same_as(&new));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_none());
        assert_eq!(format!("{:?}", new.to_base64()), "*****");
    }
}
