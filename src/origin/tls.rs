//! TLS to an `https://` origin: the client configuration, built once per
//! origin when the configuration becomes settings, and the handshake each new
//! pooled connection makes.
//!
//! [`OriginTls::new`] takes the host of the origin's address (the SNI name
//! and the name its certificate must carry; an IP address is allowed, as
//! rustls's `ServerName::IpAddress`) and a [`Trust`]: the system roots (read
//! once per process), the CAs of `ca_file`, or none (`tls_verify = false`,
//! warned about here, once per start or reload). Only TLS 1.2 and 1.3 with
//! rustls's safe defaults on the `ring` provider are offered, and ALPN offers
//! only `http/1.1`, what the pool speaks.
//!
//! [`OriginTls::handshake`] runs inside the pool's connect timeout. A failure
//! the TLS layer itself reports (an unknown CA, an expired or misnamed
//! certificate, an alert, a peer that is not speaking TLS) is
//! [`HandshakeError::Refused`] with rustls's text: the pool answers it with
//! [`crate::error::Error::OriginTls`] (502, counted by the breaker like a
//! refused connection, never retried, never a plain-text fallback). A socket
//! that fails under the handshake is [`HandshakeError::Io`], a connect error.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector, TlsError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::warn;

/// Which certificates an origin's chain must end in.
#[derive(Debug)]
pub enum Trust {
    /// The system's root store (`rustls-native-certs`).
    System,
    /// The CAs of a `ca_file`.
    Roots(RootCertStore),
    /// `tls_verify = false`: any certificate is accepted.
    Off,
}

/// Why an origin's TLS client configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The host is not a name a certificate can carry.
    #[error("{host:?} is not a DNS name or IP address TLS can verify")]
    Name {
        /// The host as configured.
        host: String,
    },
    /// No system root certificate could be loaded.
    #[error(
        "no system root certificates could be loaded ({0}); name the origin's CA with ca_file"
    )]
    NoSystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why a TLS handshake with the origin failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// TLS itself refused: certificate verification, an alert, not TLS.
    Refused(String),
    /// The socket failed under the handshake.
    Io(io::Error),
}

/// How a worker speaks TLS to one origin; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct OriginTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    verify: bool,
}

impl fmt::Debug for OriginTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginTls")
            .field("server_name", &self.server_name)
            .field("verify", &self.verify)
            .finish()
    }
}

impl OriginTls {
    /// The TLS client of origin `origin` (named for the warning) whose
    /// address has host `host`, trusting `trust`.
    pub fn new(origin: &str, host: &str, trust: Trust) -> Result<OriginTls, TlsSetupError> {
        let server_name =
            ServerName::try_from(host.to_string()).map_err(|_| TlsSetupError::Name {
                host: host.to_string(),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let verify = !matches!(trust, Trust::Off);
        let mut config = match trust {
            Trust::System => builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
            Trust::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
            Trust::Off => {
                warn!(
                    origin,
                    "tls_verify = false: this origin's certificate is not verified, \
                     anyone on the path can pose as it"
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(OriginTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            verify,
        })
    }

    /// Whether the origin's certificate is verified.
    pub fn verifies(&self) -> bool {
        self.verify
    }

    /// The TLS handshake over a connected socket.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<ClientTlsStream<TcpStream>, HandshakeError> {
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| match e {
                TlsError::Rustls(e) => HandshakeError::Refused(e.to_string()),
                // monoio-rustls hands rustls's verdict on in an io::Error.
                TlsError::Io(io) => {
                    match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                        Some(e) => HandshakeError::Refused(e.to_string()),
                        None => HandshakeError::Io(io),
                    }
                }
            })
    }
}

/// The system's roots, read once per process (a changed store needs a restart).
fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    static ROOTS: OnceLock<Result<RootCertStore, String>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
        if added > 0 {
            return Ok(roots);
        }
        let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        Err(match errors.is_empty() {
            true => "none found".into(),
            false => errors.join("; "),
        })
    });
    roots.clone().map_err(TlsSetupError::NoSystemRoots)
}

/// `tls_verify = false`: any chain and name pass, but the handshake's
/// signatures are still checked, so the session is at least with the holder
/// of the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
