//! TLS for clients: certificates chosen by SNI, reloaded on SIGHUP.
//!
//! [`ClientTls`] builds one rustls `ServerConfig` for the node (TLS 1.3 and
//! 1.2, rustls's cipher suites, all AEAD with forward secrecy, ALPN `h2` then
//! `http/1.1`, stateless session tickets) whose certificate resolver picks,
//! per handshake, the pair of the first `[[route]]` whose `host` matches the
//! SNI name (exact or `*.suffix`, as routing does), else `[server]`'s
//! `tls_cert`/`tls_key`. [`ClientTls::reload`] loads every file again and
//! swaps the set whole: connections keep the certificate they started with,
//! new handshakes get the new one, and a file that does not load leaves the
//! running set in place.
//!
//! Errors: [`CertError`] names the key and the file: missing, unreadable, no
//! certificate or key in it, or a key that is not the certificate's.

pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use tracing::warn;

use crate::config::Config;
use crate::proxy::route::RouteMatch;

/// ALPN protocols offered to clients, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate or key that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{key} {}: {reason}", path.display())]
pub struct CertError {
    /// The configuration key that names the file, e.g. `route[0].tls_cert`.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl From<CertError> for std::io::Error {
    fn from(e: CertError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// The certificates in force: per route host, and the default.
#[derive(Debug)]
struct CertSet {
    by_host: Vec<(RouteMatch, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl CertSet {
    /// Every pair `config` names, loaded and checked.
    fn load(config: &Config, provider: &CryptoProvider) -> Result<CertSet, CertError> {
        let server = &config.server;
        let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) else {
            return Err(CertError {
                key: "server.tls_cert".into(),
                path: PathBuf::new(),
                reason: "server.tls_listen needs tls_cert and tls_key".into(),
            });
        };
        let default = load_pair(("server.tls_cert", cert), ("server.tls_key", key), provider)?;
        let mut by_host = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            let (Some(cert), Some(key), Some(host)) =
                (&route.tls_cert, &route.tls_key, &route.host)
            else {
                continue;
            };
            let pair = load_pair(
                (&format!("route[{index}].tls_cert"), cert),
                (&format!("route[{index}].tls_key"), key),
                provider,
            )?;
            by_host.push((RouteMatch::new(Some(host), None), pair));
        }
        Ok(CertSet { by_host, default })
    }

    /// The pair for SNI name `name` (none: the default).
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        name.and_then(|name| {
            self.by_host
                .iter()
                .find(|(host, _)| host.matches(name, "/"))
                .map(|(_, pair)| pair.clone())
        })
        .unwrap_or_else(|| self.default.clone())
    }
}

/// A certificate chain and its key, from PEM files.
fn load_pair(
    (cert_key, cert): (&str, &Path),
    (key_key, key): (&str, &Path),
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let refuse = |name: &str, path: &Path, reason: String| CertError {
        key: name.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| refuse(cert_key, cert, pem_reason(e)))?;
    if chain.is_empty() {
        return Err(refuse(cert_key, cert, "no certificate in the file".into()));
    }
    warn_if_expiring(cert_key, cert, &chain[0]);
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| refuse(key_key, key, pem_reason(e)))?;
    let pair = CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| refuse(key_key, key, format!("not the certificate's key: {e}")))?;
    Ok(Arc::new(pair))
}

/// A certificate this close to its end is warned about at start and reload.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

/// Warn when the leaf `leaf` of the file `path` has expired, is not valid
/// yet, or ends within [`EXPIRY_WARNING`]. It is served all the same: the
/// operator decides; clients that verify will refuse an expired one.
fn warn_if_expiring(key: &str, path: &Path, leaf: &CertificateDer<'_>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return warn!(key, path = %path.display(), "cannot read the certificate's validity");
    };
    let validity = cert.validity();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = validity.not_after.timestamp();
    let not_before = validity.not_before.timestamp();
    if now > not_after {
        warn!(key, path = %path.display(), not_after = %validity.not_after, "TLS certificate has expired: verifying clients will refuse it");
    } else if now < not_before {
        warn!(key, path = %path.display(), not_before = %validity.not_before, "TLS certificate is not valid yet");
    } else if not_after - now < EXPIRY_WARNING.as_secs() as i64 {
        let days = (not_after - now) / 86_400;
        warn!(key, path = %path.display(), not_after = %validity.not_after, days, "TLS certificate expires soon");
    }
}

fn pem_reason(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Picks a certificate per handshake from the set in force.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertSet>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        Some(set.pick(hello.server_name()))
    }
}

/// The node's TLS for clients: one rustls configuration for every worker.
pub struct ClientTls {
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
    server: Arc<rustls::ServerConfig>,
}

impl ClientTls {
    /// TLS as `config` asks for it: `None` when `server.tls_listen` is not set.
    pub fn from_config(config: &Config) -> Result<Option<ClientTls>, CertError> {
        if config.server.tls_listen.is_none() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let set = CertSet::load(config, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(set))));
        let refuse = |reason: String| CertError {
            key: "server.tls_listen".into(),
            path: PathBuf::new(),
            reason,
        };
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| refuse(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        server.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| refuse(e.to_string()))?;
        Ok(Some(ClientTls {
            resolver,
            provider,
            server: Arc::new(server),
        }))
    }

    /// Load every certificate `config` names and put them in force; on an
    /// error the running set stays.
    pub fn reload(&self, config: &Config) -> Result<(), CertError> {
        let set = Arc::new(CertSet::load(config, &self.provider)?);
        *self.resolver.0.write().unwrap_or_else(|p| p.into_inner()) = set;
        Ok(())
    }

    /// The rustls configuration every worker's handshakes use.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}
