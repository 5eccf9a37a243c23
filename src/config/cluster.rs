//! `[cluster]`: the nodes of one POP, and how this node reaches the others.
//!
//! Every slice has one home among `peers` (a consistent hash, see
//! [`crate::cluster`]); a node asks the home before the origin. Membership is
//! `peers`, the same list on every node, or `peers_dns`: one `name:port`
//! whose A/AAAA records are the nodes, resolved at start and on SIGHUP, and
//! again every `peers_dns_interval_s` (a change is applied as a reload).
//!
//! ```
//! use edgeslice::config::Config;
//!
//! let config = Config::from_toml(
//!     r#"
//!     [origin]
//!     address = "127.0.0.1:8081"
//!     [cluster]
//!     self = "10.0.0.1:8080"
//!     peers = ["10.0.0.1:8080", "10.0.0.2:8080"]
//!     token = "a-secret-of-the-pop"
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.cluster.unwrap().peer_timeout_ms, 2000);
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// `[cluster]`: this node among its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node as its peers reach it; one of `peers`.
    #[serde(rename = "self")]
    pub self_addr: SocketAddr,
    /// Every node of the POP, this one included, on its ordinary listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<SocketAddr>,
    /// Instead of `peers`: `name:port`, whose addresses are the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers_dns: Option<String>,
    /// Seconds between resolutions of `peers_dns`.
    #[serde(default = "default_peers_dns_interval_s")]
    pub peers_dns_interval_s: u64,
    /// Shared secret peer requests carry in `X-Edgeslice-Peer`.
    pub token: String,
    /// Bound on connecting to a peer, on its answer's head and on each gap
    /// in its body, in milliseconds.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u64,
    /// How long a peer that failed is skipped, in milliseconds.
    #[serde(default = "default_markdown_ms")]
    pub markdown_ms: u64,
    /// Peers are asked over TLS: `peers` (and `self`) name their TLS
    /// listeners, and each peer's certificate is verified.
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: the CAs (PEM) peers' certificates must chain to; absent:
    /// the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// With `tls`: the name every peer's certificate must carry (and SNI);
    /// absent: each peer's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Keep a copy of a slice homed on another node once this node's
    /// clients ask for it again within 60 s (a hot slice), instead of
    /// asking its home every time.
    #[serde(default = "default_keep_hot_copies")]
    pub keep_hot_copies: bool,
}

fn default_keep_hot_copies() -> bool {
    true
}

/// The shortest `cluster.token`.
pub const MIN_TOKEN_BYTES: usize = 16;

fn default_peer_timeout_ms() -> u64 {
    2_000
}

fn default_markdown_ms() -> u64 {
    5_000
}

fn default_peers_dns_interval_s() -> u64 {
    30
}

impl ClusterConfig {
    /// `peer_timeout_ms` as a [`Duration`].
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }

    /// `markdown_ms` as a [`Duration`].
    pub fn markdown(&self) -> Duration {
        Duration::from_millis(self.markdown_ms)
    }

    /// The nodes now: `peers`, or what `peers_dns` resolves to (sorted,
    /// each once) with this node added if the name does not list it yet (a
    /// node starting before its record is published serves its own share).
    pub fn resolve_peers(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        let Some(name) = &self.peers_dns else {
            return Ok(self.peers.clone());
        };
        let mut peers: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
        if !peers.contains(&self.self_addr) {
            peers.push(self.self_addr);
        }
        peers.sort();
        peers.dedup();
        Ok(peers)
    }

    /// `peers_dns_interval_s` as a [`Duration`].
    pub fn peers_dns_interval(&self) -> Duration {
        Duration::from_secs(self.peers_dns_interval_s)
    }

    /// Checks the section; the first bad value is reported by key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason: &str| ConfigError::Invalid {
            key,
            value,
            reason: reason.into(),
        };
        if let Some(name) = &self.peers_dns {
            if !self.peers.is_empty() {
                return Err(invalid(
                    "cluster.peers_dns",
                    format!("{name:?}"),
                    "give cluster.peers or cluster.peers_dns, not both",
                ));
            }
            let port = name
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0) {
                return Err(invalid(
                    "cluster.peers_dns",
                    format!("{name:?}"),
                    "must be name:port (the port every node listens on)",
                ));
            }
            if self.peers_dns_interval_s == 0 {
                return Err(invalid(
                    "cluster.peers_dns_interval_s",
                    "0".into(),
                    "must be at least 1",
                ));
            }
        } else if self.peers.is_empty() {
            return Err(invalid(
                "cluster.peers",
                "[]".into(),
                "must list every node of the cluster, this one included (or give cluster.peers_dns)",
            ));
        }
        if let Some((_, dup)) = self
            .peers
            .iter()
            .enumerate()
            .find(|(i, p)| self.peers[..*i].contains(p))
        {
            return Err(invalid(
                "cluster.peers",
                format!("\"{dup}\""),
                "is listed twice",
            ));
        }
        if self.peers_dns.is_none() && !self.peers.contains(&self.self_addr) {
            return Err(invalid(
                "cluster.self",
                format!("\"{}\"", self.self_addr),
                "must be one of cluster.peers",
            ));
        }
        if self.token.is_empty() {
            return Err(invalid(
                "cluster.token",
                "\"\"".into(),
                "must not be empty: peers prove they are peers with it",
            ));
        }
        let not_shown = || format!("(not shown, {} bytes)", self.token.len());
        if !self
            .token
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(invalid(
                "cluster.token",
                not_shown(),
                "must be printable ASCII: it is sent as a header value",
            ));
        }
        if self.token.trim() != self.token {
            return Err(invalid(
                "cluster.token",
                not_shown(),
                "must not start or end with a space: receivers trim header values, so it would never match",
            ));
        }
        if self.token.len() < MIN_TOKEN_BYTES {
            return Err(invalid(
                "cluster.token",
                not_shown(),
                &format!("must be at least {MIN_TOKEN_BYTES} bytes: whoever has it can PURGE on every node"),
            ));
        }
        if !self.tls && (self.ca_file.is_some() || self.server_name.is_some()) {
            let key = match self.ca_file {
                Some(_) => "cluster.ca_file",
                None => "cluster.server_name",
            };
            return Err(invalid(
                key,
                "(set)".into(),
                "is read only with cluster.tls = true",
            ));
        }
        if self.peer_timeout_ms == 0 {
            return Err(invalid(
                "cluster.peer_timeout_ms",
                "0".into(),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(cluster: &str) -> Result<Config, String> {
        let text = format!("[origin]\naddress = \"127.0.0.1:1\"\n[cluster]\n{cluster}");
        Config::from_toml(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_cluster_reads_with_its_defaults_and_writes_back() {
        let config = load(
            "self = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\ntoken = \"sixteen-byte-tok\"\n",
        )
        .unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(cluster.markdown_ms, 5_000);
        assert_eq!(cluster.peer_timeout_ms, 2_000);
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
        assert!(load("").unwrap_err().contains("missing field"));
    }

    #[test]
    fn peers_dns_resolves_and_adds_this_node() {
        let config = load(
            "self = \"127.0.0.1:7\"\npeers_dns = \"127.0.0.1:8\"\ntoken = \"sixteen-byte-tok\"\n",
        )
        .unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(cluster.peers_dns_interval_s, 30);
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
        let peers = cluster.resolve_peers().unwrap();
        let want: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:7".parse().unwrap(),
            "127.0.0.1:8".parse().unwrap(),
        ];
        assert_eq!(peers, want);
        let bad =
            load("self = \"127.0.0.1:7\"\npeers_dns = \"no-such-node.invalid:8\"\ntoken = \"sixteen-byte-tok\"\n");
        assert!(bad.unwrap().cluster.unwrap().resolve_peers().is_err());
    }

    #[test]
    fn bad_clusters_name_the_bad_value() {
        let peers = "peers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n";
        let cases = [
            (
                format!("self = \"127.0.0.1:3\"\n{peers}token = \"sixteen-byte-tok\""),
                "invalid cluster.self = \"127.0.0.1:3\": must be one of cluster.peers",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \"\""),
                "invalid cluster.token = \"\"",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \"short\""),
                "invalid cluster.token = (not shown, 5 bytes): must be at least 16 bytes",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \" sixteen-byte-tok\""),
                "invalid cluster.token = (not shown, 17 bytes): must not start or end with a space",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\ntoken = \"sixteen-byte-tok\""
                    .to_string(),
                "invalid cluster.peers = \"127.0.0.1:1\": is listed twice",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers = []\ntoken = \"sixteen-byte-tok\"".to_string(),
                "invalid cluster.peers = []",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \"sixteen-byte-tok\"\npeer_timeout_ms = 0"),
                "invalid cluster.peer_timeout_ms = 0",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}"),
                "missing field `token`",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}peers_dns = \"pop:1\"\ntoken = \"sixteen-byte-tok\""),
                "invalid cluster.peers_dns = \"pop:1\": give cluster.peers or cluster.peers_dns, not both",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers_dns = \"pop.internal\"\ntoken = \"sixteen-byte-tok\"".to_string(),
                "invalid cluster.peers_dns = \"pop.internal\": must be name:port",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers_dns = \"pop:1\"\npeers_dns_interval_s = 0\ntoken = \"sixteen-byte-tok\""
                    .to_string(),
                "invalid cluster.peers_dns_interval_s = 0",
            ),
        ];
        for (text, want) in cases {
            let got = load(&text).unwrap_err();
            assert!(got.contains(want), "{text}: got {got}, expected {want}");
        }
    }
}
