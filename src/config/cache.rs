//! `[cache]`: where the slice cache lives, how big its tiers are, how long
//! objects stay fresh, and who may PURGE.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::size::{deserialize_size, GIB, MIB};

/// `[cache]`: where the slice cache lives, how big its tiers are, how long
/// objects stay fresh, and who may PURGE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether responses are cached at all.
    pub enabled: bool,
    /// Directory holding the disk tier.
    pub dir: PathBuf,
    /// Memory tier capacity in bytes.
    #[serde(deserialize_with = "deserialize_size")]
    pub memory_bytes: u64,
    /// Disk tier capacity in bytes; 0 is allowed.
    #[serde(deserialize_with = "deserialize_size")]
    pub disk_bytes: u64,
    /// Seconds a 200 the origin gave no freshness stays fresh; 0 (the
    /// default): none of this cache's own, RFC 9111 4.2.2's heuristic.
    pub cache_ttl: u64,
    /// The longest heuristic lifetime (a tenth of the time since
    /// `Last-Modified`), in seconds; 0: none.
    pub heuristic_max_ttl: u64,
    /// Seconds past expiry an object is served while one background
    /// revalidation runs, when the origin's Cache-Control does not say.
    pub stale_while_revalidate: u64,
    /// Seconds past expiry an object is served when revalidation fails,
    /// when the origin's Cache-Control does not say.
    pub stale_if_error: u64,
    /// Client networks (CIDR) allowed to send PURGE.
    pub purge_allow: Vec<String>,
    /// A bearer token that also allows PURGE (`Authorization: Bearer TOKEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_token: Option<String>,
    /// Store answers that carry `Set-Cookie` (and replay the cookie to every
    /// client); off: such answers are relayed, not stored.
    pub store_set_cookie: bool,
    /// A request's `Cache-Control: no-cache`, `max-age` or `min-fresh`
    /// revalidates a fresh object with the origin before it is served;
    /// off: such a request is answered from the cache like any other.
    pub client_revalidate: bool,
    /// Query parameters left out of the cache key (`"*"`: the whole query).
    pub key_drop_query: Vec<String>,
    /// Reads of slices from disk (not the page cache) a worker has in
    /// flight at once; more wait their turn.
    pub disk_reads_per_worker: u32,
}

impl CacheConfig {
    /// `purge_allow` parsed (validated by [`Config::validate`](super::Config::validate)).
    pub fn purge_networks(&self) -> Vec<ipnet::IpNet> {
        self.purge_allow
            .iter()
            .filter_map(|n| parse_net(n))
            .collect()
    }
}

/// A CIDR network, or a single address as its /32 or /128.
pub(super) fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            dir: PathBuf::from("/var/cache/edgeslice"),
            memory_bytes: 256 * MIB,
            disk_bytes: 10 * GIB,
            cache_ttl: 0,
            heuristic_max_ttl: 86_400,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            purge_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            purge_token: None,
            store_set_cookie: false,
            client_revalidate: false,
            key_drop_query: Vec::new(),
            disk_reads_per_worker: 2,
        }
    }
}
