//! Routing: which origin (and which slice settings) a request goes to.
//!
//! `[[route]]` entries match the request's Host (exact, or `*.suffix`) and an
//! optional path prefix, first match in file order; `[origin]` with `[slice]`
//! is the default route. A request no route matches, with no default, gets
//! 404. The [`RouteTable`] is built from the configuration on the main
//! thread (in [`crate::server::settings`]); each worker turns it into its own [`Router`] with its own origin
//! pools. [`Reloadable`](crate::server::reload::Reloadable) hands a new table (and new client limits) to the
//! workers after SIGHUP without a lock on the request path: a worker compares
//! one generation number per request and rebuilds only when it changed.

use std::rc::Rc;
use std::sync::Arc;

use crate::cache::SliceCache;
use crate::cluster::{ClusterSettings, Peers};
use crate::origin::pool::{OriginPool, OriginSettings};
use crate::proxy::context::{Proxy, ProxySettings};
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
    /// The hosts the node serves (`server.server_names`); empty: any.
    server_names: Vec<RouteMatch>,
    /// The POP's other nodes, shared by every route; reloaded with the table.
    cluster: Option<Arc<ClusterSettings>>,
}

impl RouteTable {
    /// A table of `routes`, tried in order, and the `default` for requests
    /// none matches; built from the configuration in [`crate::server::settings`].
    pub fn new(routes: Vec<(RouteMatch, RoutePlan)>, default: Option<RoutePlan>) -> RouteTable {
        RouteTable {
            routes,
            default,
            server_names: Vec::new(),
            cluster: None,
        }
    }

    /// The same table, serving only `names` (exact, or `*.suffix`; empty:
    /// any host).
    pub fn with_server_names(mut self, names: &[String]) -> RouteTable {
        self.server_names = names
            .iter()
            .map(|n| RouteMatch::new(Some(n), None))
            .collect();
        self
    }

    /// The same table with the cluster every route's slices may come from.
    pub fn with_cluster(mut self, cluster: Option<Arc<ClusterSettings>>) -> RouteTable {
        self.cluster = cluster;
        self
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

    /// The cluster slices may come from, when this node has peers.
    pub fn cluster(&self) -> Option<&Arc<ClusterSettings>> {
        self.cluster.as_ref()
    }

    /// The default route's plan, if any.
    pub fn default_route(&self) -> Option<&RoutePlan> {
        self.default.as_ref()
    }
}

/// One worker's routes, each with its own origin pool.
pub struct Router {
    routes: Vec<(RouteMatch, Rc<Proxy>)>,
    default: Option<Rc<Proxy>>,
    server_names: Vec<RouteMatch>,
}

impl Router {
    /// Build this worker's proxies for `table`.
    pub fn build(
        table: &RouteTable,
        cache: &Option<Arc<SliceCache>>,
        budget: &Rc<SliceBudget>,
    ) -> Router {
        // One pool per peer for the whole worker, whatever the route.
        let peers = table.cluster.clone().map(Peers::new);
        let proxy = |plan: &RoutePlan| {
            Rc::new(Proxy {
                peers: peers.clone(),
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
            server_names: table.server_names.clone(),
        }
    }

    /// Whether this node serves `host` at all (`server.server_names`).
    pub fn serves(&self, host: &str) -> bool {
        self.server_names.is_empty() || self.server_names.iter().any(|m| m.matches(host, "/"))
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
}
