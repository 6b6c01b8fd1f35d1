//! TLS for stream routes (`gelf+tls://`, `json+tls://`), with rustls: the server is verified
//! against the system's CA bundle plus the route's own `ca=`, and a client certificate is shown
//! when `cert=` and `key=` are given.
//!
//! The files are read when the route is parsed (so a bad one stops spout at start, naming the
//! option) and again at every connection (so a renewed certificate is taken up without a
//! restart; a file gone bad since is a failed connection, retried).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::warn;

use super::options::bool_option;

/// How a route's TLS is set up, as its options say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA certificates (PEM) trusted besides the system's.
    pub ca: Option<PathBuf>,
    /// The client certificate chain (PEM) and its private key, shown when the server asks.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry (by default the route's host).
    pub server_name: ServerName<'static>,
    /// Accept any server certificate: encryption without authentication.
    pub insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Takes the TLS options out of `options`, and checks that a connection could be set up
    /// with them (the files read and parsed).
    pub fn from_options(options: &mut BTreeMap<String, String>, host: &str) -> Result<TlsSettings, String> {
        let ca = options.remove("ca").map(PathBuf::from);
        let client = match (options.remove("cert"), options.remove("key")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (Some(_), None) => {
                return Err("option cert: given without key (the client certificate's private key)".into())
            }
            (None, Some(_)) => return Err("option key: given without cert (the client certificate)".into()),
        };
        let name = options.remove("server_name");
        let server_name = ServerName::try_from(name.as_deref().unwrap_or(host))
            .map_err(|_| match &name {
                Some(name) => format!("option server_name: '{name}' is not a DNS name or an IP address"),
                None => format!("host '{host}' is not a name a certificate can carry; give server_name="),
            })?
            .to_owned();
        let insecure_skip_verify = bool_option(options, "insecure_skip_verify", false)?;
        let settings = TlsSettings { ca, client, server_name, insecure_skip_verify };
        settings.connector()?;
        Ok(settings)
    }

    /// The loud warning `insecure_skip_verify=true` earns when its route starts.
    pub fn warn_if_insecure(&self, route: &str, peer: &dyn Display) {
        if self.insecure_skip_verify {
            warn!(route, peer = %peer,
                  "insecure_skip_verify=true: the server's certificate is not checked, so whoever is on the path can read and change what this route sends");
        }
    }

    /// What shakes hands for one connection, with the files as they are now: made before the
    /// connection, so that a certificate file gone bad since start costs none. The error names
    /// the option at fault.
    pub fn handshaker(&self) -> Result<Handshaker, String> {
        Ok(Handshaker { connector: self.connector()?, server_name: self.server_name.clone() })
    }

    /// A connector with the files as they are now. The error names the option at fault.
    fn connector(&self) -> Result<TlsConnector, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = if self.insecure_skip_verify {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert).map_err(|e| format!("option cert: {e}"))?;
                let key = private_key(key).map_err(|e| format!("option key: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("options cert and key: {e}"))?
            }
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The system's CA certificates, and `ca=`'s.
    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = system_roots().clone();
        if let Some(path) = &self.ca {
            let certs = certificates(path).map_err(|e| format!("option ca: {e}"))?;
            let (_, unusable) = roots.add_parsable_certificates(certs);
            if unusable > 0 {
                return Err(format!(
                    "option ca: {unusable} certificate(s) in {} cannot be used as a CA",
                    path.display()
                ));
            }
        }
        if roots.is_empty() {
            return Err("no CA certificate to verify the server with: the system has none \
                        (SSL_CERT_FILE, /etc/ssl/certs); give ca=PATH"
                .into());
        }
        Ok(roots)
    }
}

/// A TLS client for one connection.
pub struct Handshaker {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Handshaker {
    /// TLS over `stream`, within `timeout`; the error names `peer` and what went wrong
    /// (rustls's reason for a certificate it refused).
    pub async fn shake<S>(self, stream: S, peer: &(dyn Display + Sync), timeout: Duration) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(timeout, self.connector.connect(self.server_name, stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(io::Error::new(e.kind(), format!("{peer}: TLS handshake failed: {e}"))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{peer}: TLS handshake not done within {}", humantime::format_duration(timeout)),
            )),
        }
    }
}

/// rustls's cryptography, from ring: a small build of plain Rust and C. rustls marks it
/// deprecated for lacking post-quantum key exchange (aws-lc-rs has it, at the cost of a large
/// C build); the classical suites it offers are rustls's defaults otherwise.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The system's CA bundle, read once. Certificates that cannot be parsed are left out.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS #8, PKCS #1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&read(path)?)
        .map_err(|e| format!("{} holds no usable PEM private key: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `insecure_skip_verify=true`: any certificate is taken for the server's. The handshake's
/// signatures are still checked, so the connection is encrypted to whoever holds that
/// certificate's key, whoever that is.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// A CA, and a certificate for `localhost` signed by it, as PEM files in `dir`.
    fn write_pki(dir: &Path) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
    }

    #[test]
    fn files_are_read_at_parse_time_and_a_bad_one_names_its_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_pki(dir.path());
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mut good = options(&[("ca", &path("ca.pem")), ("cert", &path("cert.pem")), ("key", &path("key.pem"))]);
        let settings = TlsSettings::from_options(&mut good, "localhost").expect("good files");
        assert!(good.is_empty(), "every TLS option is taken out");
        assert_eq!(settings.server_name, ServerName::try_from("localhost").expect("name"));
        assert!(settings.client.is_some());

        let err =
            |pairs: &[(&str, &str)]| TlsSettings::from_options(&mut options(pairs), "localhost").expect_err("refused");
        assert!(err(&[("ca", "/nonexistent.pem")]).starts_with("option ca: cannot read /nonexistent.pem"));
        assert!(err(&[("ca", &path("key.pem"))]).starts_with("option ca:"), "a key is no CA certificate");
        assert!(err(&[("cert", &path("cert.pem"))]).starts_with("option cert: given without key"));
        assert!(err(&[("key", &path("key.pem"))]).starts_with("option key: given without cert"));
        assert!(err(&[("cert", &path("cert.pem")), ("key", &path("cert.pem"))]).starts_with("option key:"));
        assert!(err(&[("server_name", "not a name")]).starts_with("option server_name:"));
        assert!(err(&[("insecure_skip_verify", "yes")]).starts_with("option insecure_skip_verify:"));
    }

    #[test]
    fn the_server_name_is_the_host_unless_given() {
        let settings = TlsSettings::from_options(&mut options(&[]), "10.0.0.7").expect("settings");
        assert_eq!(settings.server_name, ServerName::try_from("10.0.0.7").expect("name"));
        let settings = TlsSettings::from_options(&mut options(&[("server_name", "graylog.example")]), "10.0.0.7")
            .expect("settings");
        assert_eq!(settings.server_name, ServerName::try_from("graylog.example").expect("name"));
    }
}
