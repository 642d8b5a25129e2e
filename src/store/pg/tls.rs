//! TLS to PostgreSQL, as `storage.url` asks for it with libpq's parameters: `sslmode`
//! (`disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`) and
//! `sslrootcert` (a PEM file of trusted certificates, or `system` for the machine's
//! trust store). tokio-postgres knows only the first three modes and no root file, so
//! both are taken out of the URL here, the mode it is given is the nearest one it knows
//! (it then negotiates TLS, or refuses to go without it), and what to trust is this
//! module's connector's business. The meanings are libpq's:
//!
//! - `prefer`, `require`: encrypted (`prefer` falls back to plain text when the server
//!   offers no TLS), the certificate not checked; `require` with `sslrootcert` checks
//!   it as `verify-ca` does;
//! - `verify-ca`: the certificate must chain to a trusted root;
//! - `verify-full`: and it must name the host connected to.
//!
//! Over TLS, SCRAM's channel binding (`tls-server-end-point`) is offered, so that a
//! password exchange cannot be relayed by whoever holds another certificate;
//! `channel_binding=require` in the URL insists on it. Client certificates (`sslcert`,
//! `sslkey`) are not supported: tokio-postgres refuses them as unknown options, and so
//! does `tollgate check`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pingora::tls::{
    CertificateDer, CertificateError, ClientConfig, ClientTlsStream, CryptoProvider,
    DigitallySignedStruct, HandshakeSignatureValid, RootCertStore, RusTlsError, ServerCertVerified,
    ServerCertVerifier, ServerName, SignatureScheme, TlsConnector, UnixTime, WebPkiServerVerifier,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tollgate_filters::endpoint::percent_decode;

use crate::config::tls::pem_certs;

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The `sslmode` tokio-postgres is given: whether TLS is tried, and whether it is a
    /// must.
    fn tokio_postgres_param(self) -> &'static str {
        match self {
            SslMode::Disable => "sslmode=disable",
            SslMode::Prefer => "sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "sslmode=require",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// None given: `prefer` and `require` check nothing; the `verify-` modes use the
    /// machine's trust store.
    Default,
    /// `sslrootcert=system`.
    System,
    /// `sslrootcert=PATH`: the certificates of that PEM file, read once at start.
    File(String),
}

/// What `storage.url` asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub roots: Roots,
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of `url`'s query: the settings, and the URL
    /// for tokio-postgres (its `sslmode` one it knows). The error names the parameter.
    pub fn split(url: &str) -> Result<(TlsSettings, String), String> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut mode = SslMode::Prefer;
        let mut roots = Roots::Default;
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    let value = query_value(value)?;
                    mode = SslMode::parse(&value).ok_or_else(|| {
                        format!(
                            "has sslmode={value}: it must be disable, prefer, require, verify-ca or verify-full"
                        )
                    })?;
                }
                "sslrootcert" => {
                    let value = query_value(value)?;
                    roots = match value.as_ref() {
                        "" => return Err("has an empty sslrootcert".into()),
                        "system" => Roots::System,
                        path => Roots::File(path.to_owned()),
                    };
                }
                _ => kept.push(pair),
            }
        }
        let settings = TlsSettings { mode, roots };
        if mode == SslMode::Disable && settings.roots != Roots::Default {
            return Err("has sslrootcert with sslmode=disable: nothing would check it".into());
        }
        kept.push(mode.tokio_postgres_param());
        Ok((settings, format!("{base}?{}", kept.join("&"))))
    }

    fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::Disable | SslMode::Prefer, _) => Check::Nothing,
            (SslMode::Require, Roots::Default) => Check::Nothing,
            // libpq: `require` with a root file checks as `verify-ca` does
            (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain,
            (SslMode::VerifyFull, _) => Check::ChainAndName,
        }
    }

    /// The connector for these settings; reads the root certificates. The error says
    /// which file or store could not be used.
    pub fn connector(&self) -> Result<PgTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = self.check();
        let chain = match check {
            Check::Nothing => None,
            Check::Chain | Check::ChainAndName => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.root_store()?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("cannot use sslrootcert: {e}"))?,
            ),
        };
        let verifier = Arc::new(Verifier {
            provider: provider.clone(),
            chain,
            names: check == Check::ChainAndName,
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgTls {
            connector: (self.mode != SslMode::Disable)
                .then(|| TlsConnector::from(Arc::new(config))),
        })
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::File(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
                for cert in pem_certs(&pem, &format!("sslrootcert {path}"))? {
                    store
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                }
            }
            Roots::System | Roots::Default => {
                let native = pingora::tls::load_native_certs()
                    .map_err(|e| format!("cannot read this machine's trust store: {e}"))?;
                let (added, _ignored) = store.add_parsable_certificates(native);
                if added == 0 {
                    return Err(format!(
                        "sslmode={} found no certificate in this machine's trust store: give sslrootcert=PATH",
                        match self.mode {
                            SslMode::VerifyFull => "verify-full",
                            _ => "verify-ca",
                        }
                    ));
                }
            }
        }
        Ok(store)
    }
}

/// A URL query value with its `%XX` escapes decoded.
fn query_value(value: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    // A result that is not UTF-8 can only come of an escape: the input is a `str`.
    percent_decode(value).ok_or_else(|| "has a broken %-escape in its query".to_owned())
}

/// What libpq's mode checks of the server's certificate. The handshake's signatures are
/// always checked (against the certificate shown), so the connection is encrypted to
/// whoever holds its key; `chain` (`verify-ca`, and `require` with a root file) checks
/// the certificate chains to a trusted root, and `names` (`verify-full`) that it names
/// the host too.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    names: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, RusTlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name after the chain: this error means the chain held
            Err(RusTlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS connector handed to tokio-postgres (the pool's connections and the change
/// listener's); `None` with `sslmode=disable`.
#[derive(Clone)]
pub struct PgTls {
    connector: Option<TlsConnector>,
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the host is not a name TLS can check",
            )
        });
        Ok(PgTlsConnect {
            connector: self.connector.clone(),
            name,
        })
    }
}

/// One connection's TLS handshake, for the host it is to.
pub struct PgTlsConnect {
    connector: Option<TlsConnector>,
    name: io::Result<ServerName<'static>>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            // with sslmode=disable tokio-postgres never asks for a handshake
            let connector = self
                .connector
                .ok_or_else(|| io::Error::other("TLS is disabled (sslmode=disable)"))?;
            let tls = connector.connect(self.name?, stream).await?;
            let end_point = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| server_end_point(cert));
            Ok(PgTlsStream {
                tls: Box::new(tls),
                end_point,
            })
        })
    }
}

/// RFC 5929's `tls-server-end-point` of the server's certificate, for SCRAM's channel
/// binding (`SCRAM-SHA-256-PLUS`): its hash by the hash function of its signature,
/// SHA-256 for MD5 and SHA-1. `None` for a signature without one of its own (Ed25519,
/// RSA-PSS, whose hash is in its parameters): then no binding is offered, as libpq does.
fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    use x509_parser::der_parser::oid::Oid;
    use x509_parser::oid_registry as oid;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let alg = &parsed.signature_algorithm.algorithm;
    let is = |candidates: &[Oid<'_>]| candidates.contains(alg);
    Some(
        if is(&[
            oid::OID_PKCS1_MD5WITHRSAENC,
            oid::OID_PKCS1_SHA1WITHRSA,
            oid::OID_SIG_ECDSA_WITH_SHA256,
            oid::OID_PKCS1_SHA256WITHRSA,
        ]) {
            sha2::Sha256::digest(cert).to_vec()
        } else if is(&[oid::OID_SIG_ECDSA_WITH_SHA224, oid::OID_PKCS1_SHA224WITHRSA]) {
            sha2::Sha224::digest(cert).to_vec()
        } else if is(&[oid::OID_SIG_ECDSA_WITH_SHA384, oid::OID_PKCS1_SHA384WITHRSA]) {
            sha2::Sha384::digest(cert).to_vec()
        } else if is(&[oid::OID_SIG_ECDSA_WITH_SHA512, oid::OID_PKCS1_SHA512WITHRSA]) {
            sha2::Sha512::digest(cert).to_vec()
        } else {
            return None;
        },
    )
}

/// A TLS connection to the server, with its channel binding.
pub struct PgTlsStream<S> {
    tls: Box<ClientTlsStream<S>>,
    end_point: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.tls).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.tls).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.end_point {
            Some(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
            None => ChannelBinding::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> Result<(TlsSettings, String), String> {
        TlsSettings::split(url)
    }

    #[test]
    fn the_default_is_prefer_and_the_url_keeps_its_other_options() {
        let (s, url) = split("postgres://u@h/db?application_name=x&connect_timeout=3").unwrap();
        assert_eq!(s.mode, SslMode::Prefer);
        assert_eq!(s.roots, Roots::Default);
        assert_eq!(
            url,
            "postgres://u@h/db?application_name=x&connect_timeout=3&sslmode=prefer"
        );
        assert_eq!(s.check(), Check::Nothing);
    }

    #[test]
    fn libpq_modes_map_to_what_tokio_postgres_knows() {
        for (mode, ours, theirs, check) in [
            ("disable", SslMode::Disable, "disable", Check::Nothing),
            ("prefer", SslMode::Prefer, "prefer", Check::Nothing),
            ("require", SslMode::Require, "require", Check::Nothing),
            ("verify-ca", SslMode::VerifyCa, "require", Check::Chain),
            (
                "verify-full",
                SslMode::VerifyFull,
                "require",
                Check::ChainAndName,
            ),
        ] {
            let (s, url) = split(&format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            assert_eq!(s.mode, ours, "{mode}");
            assert_eq!(url, format!("postgres://u@h/db?sslmode={theirs}"), "{mode}");
            assert_eq!(s.check(), check, "{mode}");
        }
    }

    #[test]
    fn a_root_file_makes_require_check_the_chain() {
        let (s, url) =
            split("postgres://u@h/db?sslrootcert=%2Fetc%2Fca.pem&sslmode=require").unwrap();
        assert_eq!(s.roots, Roots::File("/etc/ca.pem".into()));
        assert_eq!(s.check(), Check::Chain);
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        let (s, _) = split("postgres://u@h/db?sslrootcert=system&sslmode=verify-full").unwrap();
        assert_eq!(s.roots, Roots::System);
    }

    #[test]
    fn bad_tls_parameters_are_named() {
        for (url, why) in [
            (
                "postgres://u@h/db?sslmode=allow-all",
                "has sslmode=allow-all: it must be disable, prefer, require, verify-ca or verify-full",
            ),
            ("postgres://u@h/db?sslrootcert=", "has an empty sslrootcert"),
            (
                "postgres://u@h/db?sslmode=disable&sslrootcert=/ca.pem",
                "has sslrootcert with sslmode=disable: nothing would check it",
            ),
            ("postgres://u@h/db?sslrootcert=%zz", "has a broken %-escape in its query"),
        ] {
            assert_eq!(split(url).unwrap_err(), why, "{url}");
        }
    }

    /// The DER of the first certificate in a fixture file.
    fn fixture_der(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read(&path).unwrap();
        let first = rustls_pemfile::certs(&mut pem.as_slice()).next();
        first.unwrap().unwrap().to_vec()
    }

    #[test]
    fn the_channel_binding_hash_follows_the_certificates_signature() {
        use sha2::Digest;
        for (name, want) in [
            // sha256WithRSAEncryption, ecdsa-with-SHA256
            (
                "ca.pem",
                sha2::Sha256::digest(fixture_der("ca.pem")).to_vec(),
            ),
            (
                "listener/first.pem",
                sha2::Sha256::digest(fixture_der("listener/first.pem")).to_vec(),
            ),
            (
                "binding/sha384.pem",
                sha2::Sha384::digest(fixture_der("binding/sha384.pem")).to_vec(),
            ),
        ] {
            assert_eq!(server_end_point(&fixture_der(name)), Some(want), "{name}");
        }
        assert_eq!(server_end_point(&fixture_der("binding/ed25519.pem")), None);
        assert_eq!(server_end_point(b"not a certificate"), None);
    }

    #[test]
    fn a_root_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem").display().to_string();
        let (s, _) = split(&format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={missing}"
        ))
        .unwrap();
        let e = s.connector().err().unwrap();
        assert!(
            e.starts_with(&format!("cannot read sslrootcert {missing}: ")),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = empty.display().to_string();
        let (s, _) = split(&format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={empty}"
        ))
        .unwrap();
        assert_eq!(
            s.connector().err().unwrap(),
            format!("sslrootcert {empty} holds no PEM certificate")
        );
        let ca = crate::config::tls::TEST_CA;
        let (s, _) = split(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={ca}"
        ))
        .unwrap();
        assert!(s.connector().is_ok());
    }
}
