//! Routing: which origin (and which slice settings) a request goes to.
//!
//! `[[route]]` entries match the request's Host (exact, or `*.suffix`) and an
//! optional path prefix, first match in file order; `[origin]` with `[slice]`
//! is the default route. A request no route matches, with no default, gets
//! 404. The [`RouteTable`] is built from the configuration on the main
//! thread; each worker turns it into its own [`Router`] with its own origin
//! pools. [`Reloadable`] hands a new table (and new client limits) to the
//! workers after SIGHUP without a lock on the request path: a worker compares
//! one generation number per request and rebuilds only when it changed.

use std::io;
use std::rc::Rc;
use std::sync::Arc;

use http::HeaderValue;

use crate::cache::SliceCache;
use crate::config::{Config, OriginConfig, RouteConfig};
use crate::origin::pool::{OriginPool, OriginSettings};
use crate::proxy::{Proxy, ProxySettings, SliceRules};
use crate::slice::stream::SliceBudget;

/// What a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Exact host, or `.suffix` for `*.suffix`; `None` matches any host.
    host: Option<String>,
    path_prefix: Option<String>,
}

impl RouteMatch {
    /// A matcher for `host` (exact or `*.suffix`) and `path_prefix`.
    pub fn new(host: Option<&str>, path_prefix: Option<&str>) -> RouteMatch {
        RouteMatch {
            host: host.map(|h| h.trim_start_matches('*').to_ascii_lowercase()),
            path_prefix: path_prefix.map(str::to_string),
        }
    }

    /// Whether a request for `host` (port ignored) and `path` matches.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host_ok = match &self.host {
            None => true,
            Some(suffix) if suffix.starts_with('.') => host
                .len()
                .checked_sub(suffix.len())
                .is_some_and(|at| at > 0 && host[at..].eq_ignore_ascii_case(suffix)),
            Some(exact) => host.eq_ignore_ascii_case(exact),
        };
        host_ok
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }
}

/// Whether `path` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// One route's settings, ready for any worker.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// The pipeline settings.
    pub proxy: ProxySettings,
    /// How to reach the origin (its breaker is shared by the workers).
    pub origin: OriginSettings,
}

/// Every route of a configuration, built once, shared by the workers.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<(RouteMatch, RoutePlan)>,
    default: Option<RoutePlan>,
}

impl RouteTable {
    /// Build from `config`; origin names are resolved here.
    pub fn from_config(config: &Config) -> io::Result<RouteTable> {
        let base = proxy_settings(config);
        let default = if config.origin.address.is_empty() {
            None
        } else {
            Some(RoutePlan {
                proxy: base.clone(),
                origin: resolve(&config.origin, "origin.address")?,
            })
        };
        let mut routes = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            let origin_config = OriginConfig {
                address: route.origin.clone(),
                host_header: route.host_header.clone(),
                ..config.origin.clone()
            };
            let origin = resolve(&origin_config, &format!("route[{i}].origin"))?;
            let matcher = RouteMatch::new(route.host.as_deref(), route.path_prefix.as_deref());
            routes.push((
                matcher,
                RoutePlan {
                    proxy: route_settings(&base, route),
                    origin,
                },
            ));
        }
        Ok(RouteTable { routes, default })
    }

    /// Every origin of the table (default first) with its breaker; an origin
    /// named by several routes is listed once.
    pub fn origins(&self) -> impl Iterator<Item = (&str, &Arc<crate::origin::breaker::Breaker>)> {
        let mut seen = std::collections::HashSet::new();
        self.default
            .iter()
            .chain(self.routes.iter().map(|(_, p)| p))
            .map(|p| (p.origin.name.as_str(), &p.origin.breaker))
            .filter(move |(name, _)| seen.insert(*name))
    }

    /// The default route's plan, if any.
    pub fn default_route(&self) -> Option<&RoutePlan> {
        self.default.as_ref()
    }
}

fn resolve(config: &OriginConfig, key: &str) -> io::Result<OriginSettings> {
    OriginSettings::resolve(config).map_err(|e| {
        let address = &config.address;
        io::Error::new(e.kind(), format!("{key} {address:?}: cannot resolve: {e}"))
    })
}

/// The default route's pipeline settings from `[origin]`, `[slice]` and `[cache]`.
pub fn proxy_settings(config: &Config) -> ProxySettings {
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
        stale_defaults: crate::cache::manifest::StaleWindows {
            while_revalidate: config.cache.stale_while_revalidate,
            if_error: config.cache.stale_if_error,
        },
        node_name: config.server.node_name.as_str().into(),
    }
}

fn route_settings(base: &ProxySettings, route: &RouteConfig) -> ProxySettings {
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

/// One worker's routes, each with its own origin pool.
pub struct Router {
    routes: Vec<(RouteMatch, Rc<Proxy>)>,
    default: Option<Rc<Proxy>>,
}

impl Router {
    /// Build this worker's proxies for `table`.
    pub fn build(
        table: &RouteTable,
        cache: &Option<Arc<SliceCache>>,
        budget: &Rc<SliceBudget>,
    ) -> Router {
        let proxy = |plan: &RoutePlan| {
            Rc::new(Proxy {
                settings: plan.proxy.clone(),
                pool: OriginPool::new(plan.origin.clone()),
                cache: cache.clone(),
                budget: budget.clone(),
                prefetch: crate::proxy::prefetch::Prefetch::new(plan.proxy.prefetch_slices),
            })
        };
        Router {
            routes: table
                .routes
                .iter()
                .map(|(m, p)| (m.clone(), proxy(p)))
                .collect(),
            default: table.default.as_ref().map(proxy),
        }
    }

    /// The proxy for a request to `host` and `path`, if any route takes it.
    pub fn pick(&self, host: &str, path: &str) -> Option<&Rc<Proxy>> {
        self.routes
            .iter()
            .find(|(m, _)| m.matches(host, path))
            .map(|(_, p)| p)
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_prefixes_match_as_configured() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a str, &'a str, bool);
        let cases: &[Case] = &[
            (
                Some("video.example.com"),
                None,
                "video.example.com",
                "/a",
                true,
            ),
            (
                Some("video.example.com"),
                None,
                "VIDEO.example.com:8080",
                "/a",
                true,
            ),
            (
                Some("video.example.com"),
                None,
                "other.example.com",
                "/a",
                false,
            ),
            (Some("*.example.com"), None, "a.example.com", "/a", true),
            (Some("*.example.com"), None, "a.b.example.com", "/", true),
            (Some("*.example.com"), None, "example.com", "/", false),
            (Some("*.example.com"), None, "badexample.com", "/", false),
            (None, Some("/videos/"), "any", "/videos/x.mp4", true),
            (None, Some("/videos/"), "any", "/video", false),
            (Some("h"), Some("/v/"), "h", "/v/1", true),
            (Some("h"), Some("/v/"), "h", "/w/1", false),
            (None, None, "", "/", true),
        ];
        for (host, prefix, req_host, path, want) in cases {
            let m = RouteMatch::new(*host, *prefix);
            assert_eq!(
                m.matches(req_host, path),
                *want,
                "{host:?} {prefix:?} {req_host} {path}"
            );
        }
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("*.mp4", "/v/a.mp4", true),
            ("*.mp4", "/v/a.mp4.txt", false),
            ("/videos/*", "/videos/a", true),
            ("/videos/*", "/video/a", false),
            ("/a/*/b/*.ts", "/a/x/y/b/z.ts", true),
            ("/exact", "/exact", true),
            ("/exact", "/exact2", false),
            ("*", "/anything", true),
            ("a*a", "a", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(glob(pattern, path), want, "{pattern} {path}");
        }
    }
}
