//! Where configuration becomes runtime settings: every conversion from the
//! validated [`Config`] to the types the layers below run with is here, as a
//! `From` or `TryFrom` impl, and nowhere else.
//!
//! - `&Config` -> [`ClientLimits`]: what every request head is checked against;
//! - `&Config` -> [`ProxySettings`]: the default route's pipeline;
//! - `(&ProxySettings, &RouteConfig)` -> [`ProxySettings`]: a `[[route]]`'s;
//! - `&OriginConfig` -> [`OriginSettings`]: an origin, its name resolved;
//! - `&Config` -> [`RouteTable`]: all of the above per route, for the
//!   workers, SIGHUP and `--check`;
//! - `&Config` -> [`StoreSettings`]: the slice cache's store.
//!
//! The runtime types stay defined in their layers; only this module, at the
//! top, knows both sides. The conversions trust [`Config::validate`] and
//! check nothing again, except that each origin's name resolves; an origin
//! that does not is a [`ResolveError`] naming the key and value,
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
use crate::config::{Config, OriginConfig, RouteConfig};
use crate::origin::breaker::Breaker;
use crate::origin::pool::OriginSettings;
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

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        io::Error::new(e.error.kind(), e.to_string())
    }
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
            max_connections: server.max_connections,
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
        ProxySettings {
            slice_size: config.slice.slice_size,
            window: config.slice.max_concurrent_subrequests,
            host_header: config
                .origin
                .host_header
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            default_host: HeaderValue::from_str(&config.origin.address)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            purge_allow: config.cache.purge_networks(),
            purge_token: config.cache.purge_token.clone(),
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
            stale_defaults: StaleWindows {
                while_revalidate: config.cache.stale_while_revalidate,
                if_error: config.cache.stale_if_error,
            },
            node_name: config.server.node_name.as_str().into(),
        }
    }
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
        s.default_host = HeaderValue::from_str(&route.origin).unwrap_or(s.default_host);
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
        s
    }
}

/// How to reach `[origin]`: its address (`host:port`) resolved once, here, at
/// start; the error names the key `origin.address`.
impl TryFrom<&OriginConfig> for OriginSettings {
    type Error = ResolveError;

    fn try_from(config: &OriginConfig) -> Result<OriginSettings, ResolveError> {
        let address = &config.address;
        let refused = |error| ResolveError {
            key: "origin.address".into(),
            address: address.clone(),
            error,
        };
        let addrs: Vec<SocketAddr> = address.to_socket_addrs().map_err(refused)?.collect();
        if addrs.is_empty() {
            let none = io::Error::new(io::ErrorKind::NotFound, "resolves to no address");
            return Err(refused(none));
        }
        Ok(OriginSettings {
            name: address.to_string(),
            addrs,
            connect_timeout: config.connect_timeout(),
            head_timeout: config.head_timeout(),
            read_timeout: config.read_timeout(),
            max_idle: config.max_idle_per_host,
            idle_timeout: Duration::from_millis(config.pool_idle_timeout_ms),
            breaker: Arc::new(Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
            )),
        })
    }
}

/// Every route of `config`, each origin resolved; the first origin that does
/// not resolve is the error, named by its key.
impl TryFrom<&Config> for RouteTable {
    type Error = ResolveError;

    fn try_from(config: &Config) -> Result<RouteTable, ResolveError> {
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
            // A route's origin has its own address and Host, `[origin]`'s timeouts.
            let origin_config = OriginConfig {
                address: route.origin.clone(),
                host_header: route.host_header.clone(),
                ..config.origin.clone()
            };
            let origin = OriginSettings::try_from(&origin_config).map_err(|e| ResolveError {
                key: format!("route[{i}].origin"),
                ..e
            })?;
            let matcher = RouteMatch::new(route.host.as_deref(), route.path_prefix.as_deref());
            let proxy = ProxySettings::from((&base, route));
            routes.push((matcher, RoutePlan { proxy, origin }));
        }
        Ok(RouteTable::new(routes, default))
    }
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
}
