//! Origin addresses and their TLS trust, as the configuration writes them.
//!
//! `origin.address` and `[[route]] origin` take `https://host[:port]` (TLS,
//! port 443 when left out), `http://host[:port]` (plain, port 80) or a bare
//! `host:port` (plain, the port required). [`OriginAddress::parse`] turns the
//! text into its parts without resolving the host; [`Config::validate`]
//! refuses what does not parse, and [`crate::server::settings`] resolves and
//! connects with the parts. `ca_file` is read by [`load_ca_file`], once by
//! `validate` (so a bad file is a configuration error naming its path) and
//! once more when the origin's TLS client configuration is built.
//!
//! ```
//! use edgeslice::config::OriginAddress;
//!
//! let a = OriginAddress::parse("https://cdn.example").unwrap();
//! assert!(a.tls);
//! assert_eq!((a.host.as_str(), a.port), ("cdn.example", 443));
//! assert_eq!(a.authority, "cdn.example");
//! let b = OriginAddress::parse("[::1]:8081").unwrap();
//! assert_eq!((b.tls, b.host.as_str(), b.port), (false, "::1", 8081));
//! assert_eq!(b.authority, "[::1]:8081");
//! ```
//!
//! [`Config::validate`]: super::Config::validate

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// An origin address taken apart: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAddress {
    /// `https://`: speak TLS to the origin.
    pub tls: bool,
    /// The host, without IPv6 brackets: the name resolved, and the name
    /// (DNS or IP) the origin's certificate must carry.
    pub host: String,
    /// The port, 443 or 80 by scheme when the address leaves it out.
    pub port: u16,
    /// `host[:port]` as written, brackets kept: the default `Host` header.
    pub authority: String,
}

impl OriginAddress {
    /// Take `address` apart; the error says what an acceptable value looks like.
    pub fn parse(address: &str) -> Result<OriginAddress, String> {
        let (tls, rest) = match address.split_once("://") {
            None => (None, address),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Some(true), rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Some(false), rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not one edgeslice speaks: use https://, http:// or none"
                ))
            }
        };
        // A URL may end in one slash; it names no path.
        let authority = match tls {
            Some(_) => rest.strip_suffix('/').unwrap_or(rest),
            None => rest,
        };
        if authority.contains(['/', ' ', '?', '#', '@']) {
            return Err(
                "must be host:port (or a scheme and host:port), without path or spaces".into(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let port = match (port, tls) {
            (Some(port), _) => port,
            (None, Some(true)) => 443,
            (None, Some(false)) => 80,
            (None, None) => return Err("must be host:port".into()),
        };
        Ok(OriginAddress {
            tls: tls == Some(true),
            host: host.to_string(),
            port,
            authority: authority.to_string(),
        })
    }

    /// `host:port` for the resolver, brackets around an IPv6 host.
    pub fn socket_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The host (brackets removed) and the port, if written, of `authority`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 host needs both brackets, e.g. [::1]:80".into());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("must be host:port".into()),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 host needs brackets, e.g. [::1]:80".into())
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("host is empty, must be host:port".into());
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(format!("port {port:?} must be between 1 and 65535")),
        },
    };
    Ok((host, port))
}

/// The CA certificates of the PEM file at `path`, as the roots an origin's
/// certificate chain must end in; the error says what is wrong with the file.
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read it: {}", pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file: {}", pem_error(e)))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| format!("certificate {} is not a usable CA: {e}", i + 1))?;
    }
    Ok(roots)
}

/// The reader's error without the "I/O error: " in front of an I/O one.
fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_by_scheme() {
        // (address, tls, host, port, authority)
        let cases = [
            ("127.0.0.1:8081", false, "127.0.0.1", 8081, "127.0.0.1:8081"),
            (
                "origin.example:80",
                false,
                "origin.example",
                80,
                "origin.example:80",
            ),
            ("[::1]:80", false, "::1", 80, "[::1]:80"),
            ("http://o.example", false, "o.example", 80, "o.example"),
            (
                "http://o.example:8080/",
                false,
                "o.example",
                8080,
                "o.example:8080",
            ),
            ("https://o.example", true, "o.example", 443, "o.example"),
            (
                "HTTPS://o.example:8443",
                true,
                "o.example",
                8443,
                "o.example:8443",
            ),
            (
                "https://127.0.0.1:9443",
                true,
                "127.0.0.1",
                9443,
                "127.0.0.1:9443",
            ),
            ("https://[::1]", true, "::1", 443, "[::1]"),
            ("https://[::1]:8443/", true, "::1", 8443, "[::1]:8443"),
        ];
        for (text, tls, host, port, authority) in cases {
            let a = OriginAddress::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (a.tls, a.host.as_str(), a.port, a.authority.as_str()),
                (tls, host, port, authority),
                "{text}"
            );
        }
        assert_eq!(
            OriginAddress::parse("https://[::1]")
                .unwrap()
                .socket_address(),
            "[::1]:443"
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        // (address, the start of the reason)
        let cases = [
            ("127.0.0.1", "must be host:port"),
            (":80", "host is empty"),
            ("https://:443", "host is empty"),
            ("host:0", "port \"0\" must be between"),
            ("https://host:65536", "port \"65536\" must be between"),
            ("::1:80", "an IPv6 host needs brackets"),
            ("[::1:80", "an IPv6 host needs both brackets"),
            ("ftp://host:21", "scheme \"ftp\" is not one"),
            ("https://host/videos", "must be host:port"),
            ("host:80/", "must be host:port"),
            ("https://user@host", "must be host:port"),
        ];
        for (text, reason) in cases {
            let err = OriginAddress::parse(text).unwrap_err();
            assert!(err.starts_with(reason), "{text}: {err}");
        }
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("edgeslice-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = load_ca_file(&missing).unwrap_err();
        assert!(err.starts_with("cannot read it: No such file"), "{err}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert_eq!(
            load_ca_file(&empty).unwrap_err(),
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        );
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_ca_file(&garbage).unwrap_err();
        assert!(err.starts_with("certificate 1 is not a usable CA"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
