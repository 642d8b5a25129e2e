//! `server.tls` and `admin.tls`: the PEM files of a listener's certificate chain and
//! private key, read and checked while the config is validated (at start, by `tollgate
//! check` and on every reload), so that a bad file is a config problem with its key path
//! and never a panic in Pingora's listener set-up (`TlsSettings::build` panics on files
//! it cannot load).
//!
//! Checked: both files can be read, the chain holds a certificate and the key file a
//! private key rustls can sign with, and the key belongs to the first certificate.
//! Problems there are errors; a certificate outside its validity period is a warning
//! (clients will refuse it, but refusing to start or reload would not help them).

use std::fmt;
use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CertificateDer, CryptoProvider, PrivateKeyDer};
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ConfigProblem;

/// `tls: { cert, key }` under `server` or `admin`. Relative paths are relative to the
/// working directory, like `storage.path`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsFiles {
    /// A full chain: the certificate first, then its intermediates.
    pub cert: String,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// A listener's certificate chain and key as read from [`TlsFiles`], ready for rustls.
pub struct LoadedCert {
    pub files: TlsFiles,
    pub certified: Arc<CertifiedKey>,
    /// The first certificate's subject (`CN=gw.example.com`), for logs.
    pub subject: String,
    /// The first certificate's expiry, for logs.
    pub not_after: String,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("files", &self.files)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The certificates of the listeners that have TLS, as the config file named them when
/// it was loaded.
#[derive(Debug, Clone, Default)]
pub struct TlsCerts {
    /// `server.tls`: every proxy listener.
    pub proxy: Option<Arc<LoadedCert>>,
    /// `admin.tls`: the admin listener.
    pub admin: Option<Arc<LoadedCert>>,
}

/// What reading one `tls` section found.
#[derive(Debug, Default)]
pub struct TlsCheck {
    pub loaded: Option<LoadedCert>,
    pub errors: Vec<ConfigProblem>,
    pub warnings: Vec<ConfigProblem>,
}

/// Reads and checks the files of the `tls` section at key path `at` (`server.tls`),
/// at Unix time `now`. Every problem is reported, each as one line.
pub fn load(files: &TlsFiles, at: &str, now: i64) -> TlsCheck {
    let mut check = TlsCheck::default();
    let chain = read_chain(&files.cert).map_err(|m| check.error(at, "cert", m));
    let key = read_key(&files.key).map_err(|m| check.error(at, "key", m));
    let (Ok((chain, first)), Ok(key)) = (chain, key) else {
        return check;
    };
    // The certificate's key as DER SubjectPublicKeyInfo, against the one the private
    // key derives (rustls' own `keys_match` does the same comparison).
    let matches = key.public_key().map(|spki| spki.as_ref() == first.spki);
    if matches == Some(false) {
        check.errors.push(ConfigProblem::new(
            at,
            format!(
                "the private key {} does not match the certificate {}",
                files.key, files.cert
            ),
        ));
        return check;
    }
    if now > first.not_after_unix {
        check.warning(
            at,
            format!(
                "the certificate {} ({}) expired on {}",
                files.cert, first.subject, first.not_after
            ),
        );
    } else if now < first.not_before_unix {
        check.warning(
            at,
            format!(
                "the certificate {} ({}) is not valid before {}",
                files.cert, first.subject, first.not_before
            ),
        );
    }
    check.loaded = Some(LoadedCert {
        files: files.clone(),
        certified: Arc::new(CertifiedKey::new(chain, key)),
        subject: first.subject,
        not_after: first.not_after,
    });
    check
}

impl TlsCheck {
    fn error(&mut self, at: &str, file: &str, message: String) {
        self.errors
            .push(ConfigProblem::new(format!("{at}.{file}"), message));
    }

    fn warning(&mut self, at: &str, message: String) {
        self.warnings
            .push(ConfigProblem::new(format!("{at}.cert"), message));
    }
}

/// What the checks need from the chain's first certificate.
struct FirstCert {
    /// Its DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
    subject: String,
    not_before: String,
    not_before_unix: i64,
    not_after: String,
    not_after_unix: i64,
}

/// The throw-away CA of `tests/fixtures/tls` (it signed the `localhost` leaf there),
/// for the tests of every reader of a CA file.
#[cfg(test)]
pub(crate) const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");

/// The certificates of `pem`, the PEM text of `what` (a file, as messages name it): one
/// at least, each well-formed. Listener chains, `sslrootcert` and `limits.redis_ca` are
/// all read with it.
pub(crate) fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The PEM certificates in `path`, and what the checks need from the first one.
fn read_chain(path: &str) -> Result<(Vec<CertificateDer<'static>>, FirstCert), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let chain = pem_certs(&pem, path)?;
    // pem_certs gives one at least
    let (_, x509) = X509Certificate::from_der(chain[0].as_ref())
        .map_err(|e| format!("the first certificate in {path} cannot be parsed: {e}"))?;
    let validity = x509.validity();
    let first = FirstCert {
        spki: x509.public_key().raw.to_vec(),
        subject: x509.subject().to_string(),
        not_before: validity.not_before.to_string(),
        not_before_unix: validity.not_before.timestamp(),
        not_after: validity.not_after.to_string(),
        not_after_unix: validity.not_after.timestamp(),
    };
    Ok((chain, first))
}

/// The private key in `path`, loaded by the crypto provider rustls handshakes with.
/// Messages name the file, never its content.
fn read_key(path: &str) -> Result<Arc<dyn pingora::tls::sign::SigningKey>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{path} is not valid PEM: {e}"))?
        .ok_or_else(|| format!("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider is installed".to_owned())?;
    provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("the private key in {path} cannot be used: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/listener");
    /// 2026-12-01, inside the fixtures' validity.
    const NOW: i64 = 1_796_083_200;

    fn files(cert: &str, key: &str) -> TlsFiles {
        TlsFiles {
            cert: format!("{DIR}/{cert}"),
            key: format!("{DIR}/{key}"),
        }
    }

    fn lines(problems: &[ConfigProblem]) -> Vec<String> {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_full_chain_and_its_key_load() {
        let check = load(&files("first.pem", "first.key"), "server.tls", NOW);
        assert!(
            check.errors.is_empty() && check.warnings.is_empty(),
            "{check:?}"
        );
        let loaded = check.loaded.unwrap();
        assert_eq!(loaded.certified.cert.len(), 2, "leaf and intermediate");
        assert_eq!(loaded.subject, "CN=localhost (first)");
    }

    #[test]
    fn unreadable_files_are_one_line_each() {
        let check = load(&files("missing.pem", "missing.key"), "admin.tls", NOW);
        let found = lines(&check.errors);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("admin.tls.cert: cannot read "),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("admin.tls.key: cannot read "),
            "{found:?}"
        );
        assert!(check.loaded.is_none());
    }

    #[test]
    fn a_key_of_another_certificate_is_an_error() {
        let check = load(&files("first.pem", "second.key"), "server.tls", NOW);
        let found = lines(&check.errors);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("server.tls: the private key ")
                && found[0].contains("does not match the certificate"),
            "{found:?}"
        );
        assert!(check.loaded.is_none());
    }

    #[test]
    fn swapped_files_say_what_is_missing() {
        let check = load(&files("first.key", "first.pem"), "server.tls", NOW);
        let found = lines(&check.errors);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("holds no PEM certificate"), "{found:?}");
        assert!(found[1].contains("holds no PEM private key"), "{found:?}");
    }

    #[test]
    fn an_expired_certificate_is_a_warning_and_still_loads() {
        let check = load(&files("expired.pem", "expired.key"), "server.tls", NOW);
        assert!(check.errors.is_empty(), "{check:?}");
        let found = lines(&check.warnings);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("server.tls.cert: the certificate ")
                && found[0].contains("(CN=localhost (expired)) expired on "),
            "{found:?}"
        );
        assert!(check.loaded.is_some());
    }

    #[test]
    fn a_certificate_not_yet_valid_is_a_warning() {
        let check = load(&files("first.pem", "first.key"), "server.tls", 0);
        assert!(check.errors.is_empty(), "{check:?}");
        let found = lines(&check.warnings);
        assert!(
            found.len() == 1 && found[0].contains("is not valid before"),
            "{found:?}"
        );
    }
}
