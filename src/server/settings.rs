//! Where configuration becomes runtime settings: every conversion from the
//! validated [`Config`] to the types the layers below run with is here, as a
//! `From` or `TryFrom` impl, and nowhere else.
//!
//! - `&Config` -> [`ClientLimits`]: what every request head is checked against;
//! - `&Config` -> [`ProxySettings`]: the default route's pipeline;
//! - `(&ProxySettings, &RouteConfig)` -> [`ProxySettings`]: a `[[route]]`'s;
//! - `&OriginConfig` -> [`OriginSettings`]: an origin, its name resolved, its
//!   TLS client (for `https://`) built once;
//! - `&Config` -> [`RouteTable`]: all of the above per route, for the
//!   workers, SIGHUP and `--check`;
//! - `&Config` -> [`StoreSettings`]: the slice cache's store.
//!
//! The runtime types stay defined in their layers; only this module, at the
//! top, knows both sides. The conversions trust [`Config::validate`] and
//! check nothing again, except that each origin's name resolves and its TLS
//! trust loads; an origin that does not is an [`OriginSetupError`] naming
//! the key and value,
//! `route[1].origin "cdn.example.invalid:80": cannot resolve: ...`.
//!
//! ```
//! use edgeslice::cache::StoreSettings;
//! use edgeslice::config::Config;
//! use edgeslice::proxy::route::RouteTable;
//! use edgeslice::server::limits::ClientLimits;
//!
//! let config = Config::from_toml("[origin]\naddress = \"127.0.0.1:8081\"").unwrap();
//! let table = RouteTable::try_from(&config).unwrap();
//! assert_eq!(table.default_route().unwrap().origin.name, "127.0.0.1:8081");
//! assert_eq!(ClientLimits::from(&config).max_headers, 96);
//! assert_eq!(StoreSettings::from(&config).max_entry, 1024 * 1024);
//! ```

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::cache::manifest::StaleWindows;
use crate::cache::StoreSettings;
use crate::cluster::ring::Ring;
use crate::cluster::ClusterSettings;
use crate::config::origin::load_ca_file;
use crate::config::{ClusterConfig, Config, OriginAddress, OriginConfig, RouteConfig, Secret};
use crate::origin::breaker::Breaker;
use crate::origin::pool::OriginSettings;
use crate::origin::tls::{OriginTls, TlsSetupError, Trust};
use crate::proxy::route::{RouteMatch, RoutePlan, RouteTable};
use crate::proxy::{ProxySettings, SliceRules};
use crate::server::limits::{ClientLimits, H2Limits};

/// An origin whose name does not resolve, named by its key and value:
/// `route[1].origin "cdn.example.invalid:80": cannot resolve: ...`.
#[derive(Debug, thiserror::Error)]
#[error("{key} {address:?}: cannot resolve: {error}")]
pub struct ResolveError {
    /// The configuration key, `origin.address` or `route[N].origin`.
    pub key: String,
    /// The address as configured.
    pub address: String,
    /// What the resolver said (kept out of `source`: the message has it).
    pub error: io::Error,
}

/// An origin that cannot be set up: its name does not resolve, or its TLS
/// client cannot be built (`origin.ca_file "/etc/ca.pem": cannot read it: ...`).
#[derive(Debug, thiserror::Error)]
pub enum OriginSetupError {
    /// The name does not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The TLS trust cannot be loaded or the client configuration built.
    #[error("{key} {value}: {reason}")]
    Tls {
        /// The configuration key: `origin.ca_file`, `route[N].origin`...
        key: String,
        /// The value as configured, quoted.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

impl OriginSetupError {
    /// The same error of the `index`-th route's origin: `origin.address`
    /// becomes `route[N].origin`, `origin.ca_file` `route[N].origin_ca_file`.
    fn in_route(self, index: usize) -> OriginSetupError {
        match self {
            OriginSetupError::Resolve(e) => OriginSetupError::Resolve(ResolveError {
                key: format!("route[{index}].origin"),
                ..e
            }),
            OriginSetupError::Tls { key, value, reason } => OriginSetupError::Tls {
                key: match key.strip_prefix("origin.") {
                    Some("address") => format!("route[{index}].origin"),
                    Some(k) => format!("route[{index}].origin_{k}"),
                    None => key,
                },
                value,
                reason,
            },
        }
    }
}

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        io::Error::new(e.error.kind(), e.to_string())
    }
}

impl From<OriginSetupError> for io::Error {
    fn from(e: OriginSetupError) -> io::Error {
        match e {
            OriginSetupError::Resolve(e) => e.into(),
            tls => io::Error::new(io::ErrorKind::InvalidInput, tls.to_string()),
        }
    }
}

/// The `Host` an origin gets when neither the route nor `host_header` sets
/// one: its address's `host[:port]`, without the scheme.
fn default_host(address: &str) -> Option<HeaderValue> {
    let authority = OriginAddress::parse(address).ok()?.authority;
    HeaderValue::from_str(&authority).ok()
}

impl From<&Config> for ClientLimits {
    fn from(config: &Config) -> ClientLimits {
        let server = &config.server;
        ClientLimits {
            access_log: config.log.access_log.then_some(config.log.format),
            max_head_bytes: server.max_request_head_bytes as usize,
            max_headers: server.max_headers,
            max_url_bytes: server.max_url_bytes,
            max_body_bytes: server.max_request_body_bytes,
            header_timeout: server.client_header_timeout(),
            send_timeout: Duration::from_millis(server.client_send_timeout_ms),
            body_timeout: Duration::from_millis(server.client_body_timeout_ms),
            max_connections: server.max_connections,
            tls_handshake_timeout: server.tls_handshake_timeout(),
            h2: H2Limits {
                max_concurrent_streams: server.h2_max_concurrent_streams,
                max_header_list_size: server
                    .h2_max_header_list_size
                    .unwrap_or(server.max_request_head_bytes)
                    as u32,
                stream_window: server.h2_stream_window as u32,
                connection_window: server.h2_connection_window as u32,
                max_pending_accept_reset_streams: server.h2_max_pending_accept_reset_streams,
                max_local_error_reset_streams: server.h2_max_local_error_reset_streams,
                max_control_frames_per_sec: server.h2_max_control_frames_per_sec,
            },
        }
    }
}

/// The default route's pipeline settings, from `[origin]`, `[slice]`, `[cache]`
/// and `server.node_name`.
impl From<&Config> for ProxySettings {
    fn from(config: &Config) -> ProxySettings {
        let via = via_name(&config.server.node_name);
        ProxySettings {
            slice_size: config.slice.slice_size,
            window: config.slice.max_concurrent_subrequests,
            host_header: config
                .origin
                .host_header
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            default_host: default_host(&config.origin.address)
                .unwrap_or_else(|| HeaderValue::from_static("localhost")),
            purge_allow: config.cache.purge_networks(),
            purge_token: config.cache.purge_token.as_deref().map(Secret::new),
            max_retries: config.slice.max_retries,
            slice_timeout: config.origin.slice_timeout(),
            rules: SliceRules {
                min_bytes: config.slice.min_slice_bytes,
                include: config.slice.include.clone(),
                exclude: config.slice.exclude.clone(),
            },
            origin_if_match: config.slice.origin_if_match,
            prefetch_slices: config.slice.prefetch_slices,
            max_ranges: config.slice.max_ranges,
            cut_whole_answers: config.slice.cut_whole_answers,
            max_object_bytes: config.slice.max_object_bytes,
            store_set_cookie: config.cache.store_set_cookie,
            client_revalidate: config.cache.client_revalidate,
            key_drop_query: config.cache.key_drop_query.clone(),
            fill_limit: fill_limit(config),
            stale_defaults: StaleWindows {
                while_revalidate: config.cache.stale_while_revalidate,
                if_error: config.cache.stale_if_error,
            },
            node_name: config.server.node_name.as_str().into(),
            via: via.clone(),
            via_entry: HeaderValue::from_bytes(&[b"1.1 ", via.as_bytes()].concat())
                .expect("a token after 1.1 is a header value"),
        }
    }
}

/// The longest whole answer (an origin that ignores Range) cut into slices
/// for the cache: 1/64 of the tier slices live in, so one answer cannot
/// flush the cache, and never past `slice.max_object_bytes`.
fn fill_limit(config: &Config) -> u64 {
    let tier = match config.cache.disk_bytes {
        0 => config.cache.memory_bytes,
        disk => disk,
    };
    (tier / 64).min(config.slice.max_object_bytes)
}

/// This server's name in `Via`: `node_name-xxxxxxxx`, the suffix random
/// and drawn once per process, so two tiers (or two in-process servers)
/// that share a node_name are still told apart.
fn via_name(node_name: &str) -> HeaderValue {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = ID.get_or_init(|| fastrand::u32(..));
    // Each configuration turned into settings gets its own (tests start
    // several servers in one process).
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HeaderValue::from_str(&format!("{node_name}-{:08x}", id.wrapping_add(seq)))
        .expect("node_name is an sf-token")
}

/// A route's pipeline settings: the default route's, with the route's own
/// values where it sets them (its host header and patterns always replace).
impl From<(&ProxySettings, &RouteConfig)> for ProxySettings {
    fn from((base, route): (&ProxySettings, &RouteConfig)) -> ProxySettings {
        let mut s = base.clone();
        s.slice_size = route.slice_size.unwrap_or(s.slice_size);
        s.window = route.max_concurrent_subrequests.unwrap_or(s.window);
        s.host_header = route
            .host_header
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok());
        s.default_host = default_host(&route.origin).unwrap_or(s.default_host);
        s.rules = SliceRules {
            min_bytes: route.min_slice_bytes.unwrap_or(s.rules.min_bytes),
            include: route.include.clone(),
            exclude: route.exclude.clone(),
        };
        s.origin_if_match = route.origin_if_match.unwrap_or(s.origin_if_match);
        s.prefetch_slices = route.prefetch_slices.unwrap_or(s.prefetch_slices);
        s.max_ranges = route.max_ranges.unwrap_or(s.max_ranges);
        s.cut_whole_answers = route.cut_whole_answers.unwrap_or(s.cut_whole_answers);
        s.stale_defaults.while_revalidate = route
            .stale_while_revalidate
            .unwrap_or(s.stale_defaults.while_revalidate);
        s.stale_defaults.if_error = route.stale_if_error.unwrap_or(s.stale_defaults.if_error);
        s.store_set_cookie = route.store_set_cookie.unwrap_or(s.store_set_cookie);
        if let Some(drop) = &route.key_drop_query {
            s.key_drop_query = drop.clone();
        }
        s
    }
}

/// How to reach `[origin]`: its address (`https://host`, `host:port`...)
/// resolved once, here, at start, and for `https://` its TLS client built
/// once; errors name the key (`origin.address`, `origin.ca_file`).
impl TryFrom<&OriginConfig> for OriginSettings {
    type Error = OriginSetupError;

    fn try_from(config: &OriginConfig) -> Result<OriginSettings, OriginSetupError> {
        let address = &config.address;
        let refused = |error| ResolveError {
            key: "origin.address".into(),
            address: address.clone(),
            error,
        };
        let parsed = OriginAddress::parse(address)
            .map_err(|e| refused(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let addrs: Vec<SocketAddr> = parsed
            .socket_address()
            .to_socket_addrs()
            .map_err(refused)?
            .collect();
        if addrs.is_empty() {
            let none = io::Error::new(io::ErrorKind::NotFound, "resolves to no address");
            return Err(refused(none).into());
        }
        let tls = match parsed.tls {
            true => Some(origin_tls(config, &parsed)?),
            false => None,
        };
        Ok(OriginSettings {
            name: address.to_string(),
            addrs,
            tls,
            connect_timeout: config.connect_timeout(),
            head_timeout: config.head_timeout(),
            read_timeout: config.read_timeout(),
            max_idle: config.max_idle_per_host,
            idle_timeout: Duration::from_millis(config.pool_idle_timeout_ms),
            breaker: Arc::new(Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
            )),
            peer: false,
        })
    }
}

/// The TLS client of an `https://` origin: SNI and the certificate's name
/// from the address's host (never `host_header`), trust from `tls_verify`
/// and `ca_file`.
fn origin_tls(
    config: &OriginConfig,
    address: &OriginAddress,
) -> Result<OriginTls, OriginSetupError> {
    let trust = match (&config.tls_verify, &config.ca_file) {
        (false, _) => Trust::Off,
        (true, None) => Trust::System,
        (true, Some(path)) => {
            Trust::Roots(load_ca_file(path).map_err(|reason| OriginSetupError::Tls {
                key: "origin.ca_file".into(),
                value: format!("{path:?}"),
                reason,
            })?)
        }
    };
    OriginTls::new(&config.address, &address.host, trust).map_err(|e: TlsSetupError| {
        OriginSetupError::Tls {
            key: "origin.address".into(),
            value: format!("{:?}", config.address),
            reason: e.to_string(),
        }
    })
}

/// Every route of `config`, each origin resolved; the first origin that does
/// not resolve is the error, named by its key.
impl TryFrom<&Config> for RouteTable {
    type Error = OriginSetupError;

    fn try_from(config: &Config) -> Result<RouteTable, OriginSetupError> {
        let base = ProxySettings::from(config);
        let default = if config.origin.address.is_empty() {
            None
        } else {
            Some(RoutePlan {
                proxy: base.clone(),
                origin: OriginSettings::try_from(&config.origin)?,
            })
        };
        let mut routes = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            // A route's origin has its own address, Host and TLS trust,
            // `[origin]`'s timeouts.
            let origin_config = OriginConfig {
                address: route.origin.clone(),
                host_header: route.host_header.clone(),
                ca_file: route.origin_ca_file.clone(),
                tls_verify: route.origin_tls_verify.unwrap_or(true),
                ..config.origin.clone()
            };
            let origin = OriginSettings::try_from(&origin_config).map_err(|e| e.in_route(i))?;
            let matcher = RouteMatch::new(route.host.as_deref(), route.path_prefix.as_deref());
            let proxy = ProxySettings::from((&base, route));
            routes.push((matcher, RoutePlan { proxy, origin }));
        }
        let cluster = match &config.cluster {
            Some(c) => {
                let peers = c.resolve_peers().map_err(|error| ResolveError {
                    key: "cluster.peers_dns".into(),
                    address: c.peers_dns.clone().unwrap_or_default(),
                    error,
                })?;
                Some(Arc::new(cluster_settings(c, &config.origin, &peers)?))
            }
            None => None,
        };
        Ok(RouteTable::new(routes, default)
            .with_server_names(&config.server.server_names)
            .with_cluster(cluster))
    }
}

/// The ring over `peers` (`[cluster]`'s, resolved; `self` among them) and
/// the peer timeouts (validated: the token a header value); idle peer
/// connections last as long as idle origin ones.
fn cluster_settings(
    config: &ClusterConfig,
    origin: &OriginConfig,
    peers: &[std::net::SocketAddr],
) -> Result<ClusterSettings, OriginSetupError> {
    let ring = Ring::new(peers);
    let self_index = ring
        .peers()
        .iter()
        .position(|p| *p == config.self_addr)
        .unwrap_or(0);
    let mut settings = ClusterSettings::new(
        ring,
        self_index,
        HeaderValue::from_str(&config.token).expect("validated: a header value"),
        config.peer_timeout(),
        config.markdown(),
        Duration::from_millis(origin.pool_idle_timeout_ms),
    );
    settings.keep_hot_copies = config.keep_hot_copies;
    if config.tls {
        let trust = || match &config.ca_file {
            None => Ok(Trust::System),
            Some(path) => {
                load_ca_file(path)
                    .map(Trust::Roots)
                    .map_err(|reason| OriginSetupError::Tls {
                        key: "cluster.ca_file".into(),
                        value: format!("{path:?}"),
                        reason,
                    })
            }
        };
        let mut tls = Vec::new();
        for peer in settings.ring.peers() {
            let name = match &config.server_name {
                Some(name) => name.clone(),
                None => peer.ip().to_string(),
            };
            let client = OriginTls::new(&format!("peer {peer}"), &name, trust()?).map_err(|e| {
                OriginSetupError::Tls {
                    key: "cluster.server_name".into(),
                    value: format!("{name:?}"),
                    reason: e.to_string(),
                }
            })?;
            tls.push(Some(client));
        }
        settings.tls = tls;
    }
    Ok(settings)
}

/// The slice store of `[cache]`, able to hold the largest slice any route
/// may cut (`"auto"` cuts at most [`crate::config::size::AUTO_MAX`]; an
/// object under `min_slice_bytes` is one slice of that size).
impl From<&Config> for StoreSettings {
    fn from(config: &Config) -> StoreSettings {
        let slice_sizes = std::iter::once(config.slice.slice_size)
            .chain(config.routes.iter().filter_map(|r| r.slice_size))
            .map(|s| s.largest());
        let min_slices = std::iter::once(config.slice.min_slice_bytes)
            .chain(config.routes.iter().filter_map(|r| r.min_slice_bytes));
        let cache = &config.cache;
        StoreSettings {
            dir: cache.dir.clone(),
            memory_bytes: cache.memory_bytes,
            disk_bytes: cache.disk_bytes,
            max_entry: slice_sizes.chain(min_slices).fold(0, u64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::size::AUTO_MAX;
    use crate::config::SliceSize;

    const ORIGIN: &str = "[origin]\naddress = \"127.0.0.1:8081\"\n";

    fn config(extra: &str) -> Config {
        Config::from_toml(&format!("{ORIGIN}{extra}")).unwrap()
    }

    #[test]
    fn a_route_overrides_only_what_it_sets() {
        let config = config(
            "[slice]\nslice_size = 4\nprefetch_slices = 2\nmax_ranges = 3\n\
             [cache]\nstale_if_error = 7\n\
             [[route]]\nhost = \"a.test\"\norigin = \"127.0.0.1:9\"\n\
             slice_size = \"auto\"\nmax_ranges = 5\nstale_if_error = 9\n",
        );
        let base = ProxySettings::from(&config);
        let route = ProxySettings::from((&base, &config.routes[0]));
        assert_eq!(base.slice_size, SliceSize::Bytes(4));
        assert_eq!(route.slice_size, SliceSize::Auto);
        assert_eq!((base.max_ranges, route.max_ranges), (3, 5));
        // No debug print shows a secret.
        let secret = Config::from_toml(
            "[origin]\naddress = \"127.0.0.1:1\"\n[cache]\npurge_token = \"purge-secret\"\n",
        )
        .unwrap();
        let shown = format!("{:?}", ProxySettings::from(&secret));
        assert!(
            !shown.contains("purge-secret") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert_eq!(route.prefetch_slices, 2);
        assert_eq!(
            (base.stale_defaults.if_error, route.stale_defaults.if_error),
            (7, 9)
        );
        assert_eq!(route.default_host, "127.0.0.1:9");
    }

    #[test]
    fn the_store_holds_the_largest_slice_of_any_route() {
        // (extra TOML, expected max_entry)
        let cases = [
            ("", 1024 * 1024),
            ("[slice]\nslice_size = 4\n", 4),
            ("[slice]\nslice_size = \"auto\"\n", AUTO_MAX),
            ("[slice]\nslice_size = 4\nmin_slice_bytes = 100\n", 100),
            (
                "[slice]\nslice_size = 4\n\
                 [[route]]\norigin = \"127.0.0.1:9\"\nslice_size = 8\n",
                8,
            ),
            (
                "[slice]\nslice_size = 4\n\
                 [[route]]\norigin = \"127.0.0.1:9\"\nslice_size = \"auto\"\n",
                AUTO_MAX,
            ),
            (
                "[slice]\nslice_size = 4\n\
                 [[route]]\norigin = \"127.0.0.1:9\"\nmin_slice_bytes = \"3MiB\"\n",
                3 * 1024 * 1024,
            ),
        ];
        for (extra, want) in cases {
            assert_eq!(
                StoreSettings::from(&config(extra)).max_entry,
                want,
                "{extra}"
            );
        }
    }

    #[test]
    fn origins_resolve_or_name_their_key() {
        let ok = config("connect_timeout_ms = 7\n");
        let origin = OriginSettings::try_from(&ok.origin).unwrap();
        assert_eq!(origin.addrs, ["127.0.0.1:8081".parse().unwrap()]);
        assert_eq!(origin.connect_timeout, Duration::from_millis(7));

        let table = RouteTable::try_from(&config(
            "[[route]]\nhost = \"a.test\"\norigin = \"127.0.0.1:9\"\n",
        ))
        .unwrap();
        assert_eq!(table.origins().count(), 2);

        // A port out of range fails in the resolver without a DNS lookup.
        let mut bad = ok.clone();
        bad.routes.push(RouteConfig {
            origin: "127.0.0.1:99999".into(),
            ..RouteConfig::default()
        });
        let err = RouteTable::try_from(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("route[0].origin \"127.0.0.1:99999\": cannot resolve: "),
            "{err}"
        );
    }

    #[test]
    fn https_origins_get_a_tls_client_and_their_host_without_the_scheme() {
        let config = config(
            "[[route]]\nhost = \"a.test\"\norigin = \"https://127.0.0.1:9443\"\n\
             origin_tls_verify = false\n",
        );
        let route = &config.routes[0];
        let proxy = ProxySettings::from((&ProxySettings::from(&config), route));
        assert_eq!(proxy.default_host, "127.0.0.1:9443");
        let origin_config = OriginConfig {
            address: route.origin.clone(),
            tls_verify: false,
            ..config.origin.clone()
        };
        let origin = OriginSettings::try_from(&origin_config).unwrap();
        assert_eq!(origin.addrs, ["127.0.0.1:9443".parse().unwrap()]);
        assert!(origin.tls.as_ref().is_some_and(|t| !t.verifies()));
        assert!(OriginSettings::try_from(&config.origin)
            .unwrap()
            .tls
            .is_none());

        // A CA file gone between validation and start is named by its route key.
        let mut gone = config.clone();
        gone.routes[0].origin_tls_verify = None;
        gone.routes[0].origin_ca_file = Some("/nonexistent/ca.pem".into());
        let err = RouteTable::try_from(&gone).unwrap_err().to_string();
        assert!(
            err.starts_with("route[0].origin_ca_file \"/nonexistent/ca.pem\": cannot read it: "),
            "{err}"
        );
    }
}
