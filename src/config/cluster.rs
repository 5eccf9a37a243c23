//! `[cluster]`: the nodes of one POP, and how this node reaches the others.
//!
//! Every slice has one home among `peers` (a consistent hash, see
//! [`crate::cluster`]); a node asks the home before the origin. Membership is
//! this list, the same on every node; `peers_dns` (one name re-resolved
//! periodically) is not implemented yet.
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
//!     token = "s3cret"
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
    pub peers: Vec<SocketAddr>,
    /// Shared secret peer requests carry in `X-Edgeslice-Peer`.
    pub token: String,
    /// Bound on connecting to a peer, on its answer's head and on each gap
    /// in its body, in milliseconds.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u64,
    /// How long a peer that failed is skipped, in milliseconds.
    #[serde(default = "default_markdown_ms")]
    pub markdown_ms: u64,
}

fn default_peer_timeout_ms() -> u64 {
    2_000
}

fn default_markdown_ms() -> u64 {
    5_000
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

    /// Checks the section; the first bad value is reported by key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason: &str| ConfigError::Invalid {
            key,
            value,
            reason: reason.into(),
        };
        if self.peers.is_empty() {
            return Err(invalid(
                "cluster.peers",
                "[]".into(),
                "must list every node of the cluster, this one included",
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
        if !self.peers.contains(&self.self_addr) {
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
        if !self
            .token
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(invalid(
                "cluster.token",
                "(not shown)".into(),
                "must be printable ASCII: it is sent as a header value",
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
            "self = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\ntoken = \"t\"\n",
        )
        .unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(cluster.markdown_ms, 5_000);
        assert_eq!(cluster.peer_timeout_ms, 2_000);
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
        assert!(load("").unwrap_err().contains("missing field"));
    }

    #[test]
    fn bad_clusters_name_the_bad_value() {
        let peers = "peers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n";
        let cases = [
            (
                format!("self = \"127.0.0.1:3\"\n{peers}token = \"t\""),
                "invalid cluster.self = \"127.0.0.1:3\": must be one of cluster.peers",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \"\""),
                "invalid cluster.token = \"\"",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\ntoken = \"t\""
                    .to_string(),
                "invalid cluster.peers = \"127.0.0.1:1\": is listed twice",
            ),
            (
                "self = \"127.0.0.1:1\"\npeers = []\ntoken = \"t\"".to_string(),
                "invalid cluster.peers = []",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}token = \"t\"\npeer_timeout_ms = 0"),
                "invalid cluster.peer_timeout_ms = 0",
            ),
            (
                format!("self = \"127.0.0.1:1\"\n{peers}"),
                "missing field `token`",
            ),
        ];
        for (text, want) in cases {
            let got = load(&text).unwrap_err();
            assert!(got.contains(want), "{text}: got {got}, expected {want}");
        }
    }
}
