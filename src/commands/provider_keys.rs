//! `tollgate provider-key set|delete` and `tollgate rotate-master-key`. The checks on a
//! provider key read from outside ([`parse_provider_key`]) live here so that the admin
//! API's `PUT /admin/provider-keys/{upstream}` can apply the same rules.

use std::path::Path;

use tollgate_filters::Secret;

use super::CommandError;
use crate::keys::Keyring;
use crate::store::secrets::ProviderKeyCrypto;
use crate::store::secrets::{
    commit_master_key_file, master_key_path, stage_master_key_file, MasterKey,
};
use crate::store::Store;

/// Longer than any provider's key by far; more is a mistake (a file piped in whole).
pub const MAX_PROVIDER_KEY_BYTES: usize = 8192;

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::Invalid(msg.into())
}

/// A provider key as typed or piped: one trailing newline (`\n` or `\r\n`) removed, as
/// `echo` and here-strings add one. Refused when empty, too long, or holding anything
/// but printable ASCII without spaces: such a key could not be sent in an HTTP header,
/// and failing here beats failing on every request.
pub fn parse_provider_key(input: &[u8]) -> Result<Secret, CommandError> {
    let trimmed = input
        .strip_suffix(b"\n")
        .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
        .unwrap_or(input);
    if trimmed.is_empty() {
        return Err(invalid(
            "no provider key given: pipe it on stdin, e.g. printf %s \"$KEY\" | tollgate provider-key set --upstream NAME",
        ));
    }
    if trimmed.len() > MAX_PROVIDER_KEY_BYTES {
        return Err(invalid(format!(
            "the provider key is longer than {MAX_PROVIDER_KEY_BYTES} bytes"
        )));
    }
    // Never echo any of it: it is the secret.
    if !trimmed.iter().all(u8::is_ascii_graphic) {
        return Err(invalid(
            "the provider key must be printable ASCII without spaces or line breaks (only one trailing newline is removed)",
        ));
    }
    let text = String::from_utf8(trimmed.to_vec())
        .map_err(|_| invalid("the provider key must be printable ASCII"))?;
    Ok(Secret::new(text))
}

/// "of user 'alice'" or "global" wording for messages.
fn owner(user: Option<&str>) -> String {
    user.map_or_else(
        || "the global provider key".to_owned(),
        |u| format!("the provider key of user '{u}'"),
    )
}

/// Stores `input` (see [`parse_provider_key`]) encrypted for `upstream`, which must be
/// one of `known_upstreams` (the config's), and `user` (`None`: global). Returns one
/// confirmation line, without the key.
pub fn provider_key_set(
    store: &Store,
    crypto: &ProviderKeyCrypto,
    known_upstreams: &[&str],
    upstream: &str,
    user: Option<&str>,
    input: &[u8],
    now: i64,
) -> Result<String, CommandError> {
    if !known_upstreams.contains(&upstream) {
        let known = if known_upstreams.is_empty() {
            "the config defines no upstreams".to_owned()
        } else {
            format!("the config defines {}", known_upstreams.join(", "))
        };
        return Err(invalid(format!("unknown upstream '{upstream}': {known}")));
    }
    let secret = parse_provider_key(input)?;
    store.set_provider_key(crypto, upstream, user, &secret, now)?;
    Ok(format!(
        "stored {} for upstream '{upstream}'\n",
        owner(user)
    ))
}

/// Deletes the key of `upstream` and `user`; succeeds, saying so, when there is none.
/// Any upstream name is accepted, so that keys of an upstream since removed from the
/// config can still be cleaned up.
pub fn provider_key_delete(
    store: &Store,
    upstream: &str,
    user: Option<&str>,
) -> Result<String, CommandError> {
    let line = if store.delete_provider_key(upstream, user)? {
        format!("deleted {} for upstream '{upstream}'\n", owner(user))
    } else {
        format!(
            "{} for upstream '{upstream}' was not set; nothing to delete\n",
            owner(user)
        )
    };
    // Capitalize the sentence's first letter ("The global ...").
    let mut chars = line.chars();
    Ok(chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default())
}

/// Where the new master key of `rotate-master-key` comes from.
#[derive(Clone, Copy)]
pub enum NewMasterKey<'a> {
    /// `--generate`: a random key, printed once.
    Generate,
    /// The base64 text read from stdin.
    Given(&'a [u8]),
}

/// Where the current master key comes from, which decides what happens to the new one.
#[derive(Clone, Copy)]
pub enum MasterKeySource<'a> {
    /// `<storage_dir>/master.key`: rewritten with the new key.
    File { storage_dir: &'a Path },
    /// `secrets.master_key` in this config file (usually `${TOLLGATE_MASTER_KEY}`): the
    /// operator must change it.
    Configured { config: &'a Path },
}

/// Re-wraps the store's data keys from `current` to the new master key in one
/// transaction. With a key file, the new key is first written beside it
/// (`master.key.new`), then the store is changed, then the file is renamed over
/// `master.key`: a crash at any point leaves the key the store needs on disk.
pub fn rotate_master_key(
    store: &Store,
    current: &MasterKey,
    new: NewMasterKey<'_>,
    source: MasterKeySource<'_>,
    now: i64,
) -> Result<String, CommandError> {
    let (new_key, generated) = match new {
        NewMasterKey::Generate => (MasterKey::generate(), true),
        NewMasterKey::Given(input) => {
            let key = std::str::from_utf8(input)
                .ok()
                .and_then(MasterKey::from_base64)
                .ok_or_else(|| {
                    invalid("stdin must hold the new master key: the base64 encoding of exactly 32 bytes (or use --generate)")
                })?;
            (key, false)
        }
    };
    if new_key.same_as(current) {
        return Err(invalid("the new master key is the current one"));
    }
    // Check the current key before writing anything: a mismatch leaves no trace.
    Keyring::load_or_init(store, current, now)?;
    let staged = match source {
        MasterKeySource::File { storage_dir } => {
            Some((stage_master_key_file(storage_dir, &new_key)?, storage_dir))
        }
        MasterKeySource::Configured { .. } => None,
    };
    let moved = match Keyring::rotate_master(store, current, &new_key, now) {
        Ok(n) => n,
        Err(e) => {
            if let Some((path, _)) = &staged {
                let _ = std::fs::remove_file(path);
            }
            return Err(e.into());
        }
    };
    let mut out = String::new();
    if generated {
        out += &format!(
            "new master key (shown only now; keep a copy somewhere safe): {}\n",
            new_key.to_base64().expose()
        );
    }
    out += &format!("re-wrapped {moved} data keys under the new master key\n");
    match (staged, source) {
        (Some((path, storage_dir)), _) => {
            let target = master_key_path(storage_dir);
            commit_master_key_file(&path, storage_dir).map_err(|e| {
                invalid(format!(
                    "the store now uses the new master key, but {} could not be replaced ({e}); the new key is in {}: move it there before tollgate starts again",
                    target.display(),
                    path.display()
                ))
            })?;
            out += &format!("wrote {} (mode 0600)\n", target.display());
        }
        (None, MasterKeySource::Configured { config }) => {
            out += &format!(
                "the master key comes from secrets.master_key in {}: set TOLLGATE_MASTER_KEY (or that setting) to the new key before tollgate next starts; the store no longer opens with the old key (running gateways keep working until restarted)\n",
                config.display()
            );
        }
        (None, MasterKeySource::File { .. }) => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{add_user, temp_store};
    use std::os::unix::fs::PermissionsExt;
    use tollgate_filters::Role;

    fn setup() -> (tempfile::TempDir, Store, MasterKey) {
        let (dir, s) = temp_store();
        let m = MasterKey::load_or_create("", dir.path()).unwrap();
        add_user(&s, "alice", Role::Member, 0);
        (dir, s, m)
    }

    fn crypto(s: &Store, m: &MasterKey) -> ProviderKeyCrypto {
        Keyring::load_or_init(s, m, 0).unwrap().crypto()
    }

    #[test]
    fn keys_from_stdin_are_checked_without_being_echoed() {
        for (input, key) in [
            (&b"sk-1"[..], "sk-1"),
            (b"sk-1\n", "sk-1"),
            (b"sk-1\r\n", "sk-1"),
            (b"AIza_x-y.z~", "AIza_x-y.z~"),
        ] {
            assert_eq!(parse_provider_key(input).unwrap().expose(), key);
        }
        for bad in [
            &b""[..],
            b"\n",
            b"\r\n",
            b"sk-1\n\n",
            b"sk 1",
            b" sk-1",
            b"sk-1\t",
            b"sk-\x1b[2J",
            "sk-é".as_bytes(),
            b"\xff\xfe",
        ] {
            let e = parse_provider_key(bad).unwrap_err().to_string();
            assert!(!e.contains("sk-"), "{e}");
            assert!(e.contains("provider key"), "{bad:?}: {e}");
        }
        let long = vec![b'a'; MAX_PROVIDER_KEY_BYTES + 1];
        assert!(parse_provider_key(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than"));
        assert!(parse_provider_key(&long[1..]).is_ok());
    }

    #[test]
    fn set_and_delete_say_what_they_did() {
        let (_d, s, m) = setup();
        let c = crypto(&s, &m);
        let up = ["main", "backup"];
        let out = provider_key_set(&s, &c, &up, "main", Some("alice"), b"sk-secret\n", 1).unwrap();
        assert_eq!(
            out,
            "stored the provider key of user 'alice' for upstream 'main'\n"
        );
        let out = provider_key_set(&s, &c, &up, "main", None, b"sk-secret", 1).unwrap();
        assert_eq!(out, "stored the global provider key for upstream 'main'\n");
        assert!(s
            .provider_key_status("main", Some("alice"))
            .unwrap()
            .is_some());

        let e = provider_key_set(&s, &c, &up, "mian", None, b"sk", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown upstream 'mian': the config defines main, backup"
        );
        let e = provider_key_set(&s, &c, &[], "mian", None, b"sk", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown upstream 'mian': the config defines no upstreams"
        );
        let e = provider_key_set(&s, &c, &up, "main", Some("bob"), b"sk", 1).unwrap_err();
        assert_eq!(e.to_string(), "unknown user 'bob'");
        assert!(provider_key_set(&s, &c, &up, "main", Some("alice"), b"", 1).is_err());

        assert_eq!(
            provider_key_delete(&s, "main", Some("alice")).unwrap(),
            "Deleted the provider key of user 'alice' for upstream 'main'\n"
        );
        assert_eq!(
            provider_key_delete(&s, "main", Some("alice")).unwrap(),
            "The provider key of user 'alice' for upstream 'main' was not set; nothing to delete\n"
        );
        assert_eq!(
            provider_key_delete(&s, "main", None).unwrap(),
            "Deleted the global provider key for upstream 'main'\n"
        );
        // An upstream no longer in the config can still be cleaned up.
        assert!(provider_key_delete(&s, "gone", None).is_ok());
        assert_eq!(
            provider_key_delete(&s, "main", Some("bob"))
                .unwrap_err()
                .to_string(),
            "unknown user 'bob'"
        );
    }

    #[test]
    fn rotation_with_a_key_file_rewrites_it() {
        let (d, s, m) = setup();
        let c = crypto(&s, &m);
        s.set_provider_key(&c, "main", Some("alice"), &Secret::new("sk-a"), 1)
            .unwrap();
        let src = || MasterKeySource::File {
            storage_dir: d.path(),
        };
        let out = rotate_master_key(&s, &m, NewMasterKey::Generate, src(), 5).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let printed = lines[0]
            .strip_prefix("new master key (shown only now; keep a copy somewhere safe): ")
            .unwrap();
        assert_eq!(lines[1], "re-wrapped 2 data keys under the new master key");
        let path = d.path().join("master.key");
        assert_eq!(lines[2], format!("wrote {} (mode 0600)", path.display()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), printed);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!d.path().join("master.key.new").exists());

        let new = MasterKey::load_or_create("", d.path()).unwrap();
        assert!(!new.same_as(&m));
        let k = Keyring::load_or_init(&s, &new, 6).unwrap();
        let row = &s.all_provider_keys().unwrap()[0];
        let got = k
            .crypto()
            .decrypt(row.user_id, "main", &row.nonce, &row.ciphertext)
            .unwrap();
        assert_eq!(got.expose(), "sk-a");

        // The old key no longer matches: refused, and nothing is written.
        let e = rotate_master_key(&s, &m, NewMasterKey::Generate, src(), 7).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("the master key does not match this store"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), printed);
        assert!(!d.path().join("master.key.new").exists());
    }

    #[test]
    fn rotation_with_a_configured_key_says_what_to_change() {
        let (d, s, m) = setup();
        let config = d.path().join("tollgate.yaml");
        let next = MasterKey::generate();
        let text = format!("{}\n", next.to_base64().expose());
        let out = rotate_master_key(
            &s,
            &m,
            NewMasterKey::Given(text.as_bytes()),
            MasterKeySource::Configured { config: &config },
            5,
        )
        .unwrap();
        // A key the operator gave is not printed back.
        assert!(!out.contains(next.to_base64().expose()), "{out}");
        assert!(out.starts_with("re-wrapped 2 data keys"), "{out}");
        assert!(out.contains("set TOLLGATE_MASTER_KEY"), "{out}");
        assert!(out.contains(&config.display().to_string()));
        Keyring::load_or_init(&s, &next, 6).unwrap();

        let configured = || MasterKeySource::Configured { config: &config };
        for bad in [&b""[..], b"not base64!", b"c2hvcnQ="] {
            let e = rotate_master_key(&s, &next, NewMasterKey::Given(bad), configured(), 7)
                .unwrap_err();
            assert!(e
                .to_string()
                .starts_with("stdin must hold the new master key"));
        }
        let same = next.to_base64();
        let e = rotate_master_key(
            &s,
            &next,
            NewMasterKey::Given(same.expose().as_bytes()),
            configured(),
            7,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the new master key is the current one");
    }
}
