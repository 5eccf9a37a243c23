//! `[server]`: the client-facing listener and its workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::size::{deserialize_opt_size, deserialize_size, MIB};

/// `[server]`: the client-facing listener and its workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address every worker binds (with `SO_REUSEPORT`).
    pub listen: SocketAddr,
    /// Worker threads; 0 means one per available core (see [`Config::worker_count`](super::Config::worker_count)).
    pub workers: usize,
    /// Cores to pin workers to, round-robin; `None` means no pinning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_cores: Option<Vec<usize>>,
    /// Which monoio driver the workers run.
    pub driver: DriverChoice,
    /// The hosts this node serves (exact, or `*.suffix`; port ignored);
    /// any other Host gets 421. Empty serves any host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// Time allowed for a client to send a complete request head, in milliseconds.
    pub client_header_timeout_ms: u64,
    /// On SIGTERM/SIGINT, time allowed for in-flight responses to finish, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Longest a client may take to accept response bytes, in milliseconds.
    pub client_send_timeout_ms: u64,
    /// Longest gap between the bytes of a request body, in milliseconds.
    pub client_body_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes.
    #[serde(deserialize_with = "deserialize_size")]
    pub max_request_head_bytes: u64,
    /// Most request headers (at most 96).
    pub max_headers: usize,
    /// Longest request target (path and query), in bytes.
    pub max_url_bytes: usize,
    /// Largest request body passed through to the origin, in bytes.
    #[serde(deserialize_with = "deserialize_size")]
    pub max_request_body_bytes: u64,
    /// Open client connections per worker; more are closed at once.
    pub max_connections: usize,
    /// Streams an HTTP/2 client may have open at once on one connection;
    /// more are refused (`REFUSED_STREAM`).
    pub h2_max_concurrent_streams: u32,
    /// Largest decoded HTTP/2 header list; `None` takes `max_request_head_bytes`.
    #[serde(
        default,
        deserialize_with = "deserialize_opt_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub h2_max_header_list_size: Option<u64>,
    /// Request body bytes an HTTP/2 client may send ahead on one stream.
    #[serde(deserialize_with = "deserialize_size")]
    pub h2_stream_window: u64,
    /// Request body bytes an HTTP/2 client may send ahead on one connection, all streams.
    #[serde(deserialize_with = "deserialize_size")]
    pub h2_connection_window: u64,
    /// Streams a client may reset before they are served, per connection,
    /// before the connection is closed (rapid reset).
    pub h2_max_pending_accept_reset_streams: usize,
    /// Streams edgeslice may reset for a client's protocol errors, per
    /// connection, before the connection is closed.
    pub h2_max_local_error_reset_streams: usize,
    /// Control frames (SETTINGS, PING, PRIORITY, RST_STREAM, empty DATA) an
    /// HTTP/2 client may send per second on one connection before it is
    /// closed with `ENHANCE_YOUR_CALM`.
    pub h2_max_control_frames_per_sec: u32,
    /// Slice bytes in memory per worker, a hard limit (see `slice::budget`).
    #[serde(deserialize_with = "deserialize_size")]
    pub max_buffered_bytes: u64,
    /// This cache's name in `Cache-Status` answers (RFC 9211), an sf-token.
    pub node_name: String,
    /// Address every worker also binds for TLS clients; `None`: no TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) served when no route's certificate matches the SNI name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Time allowed for a TLS handshake, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            pin_cores: None,
            driver: DriverChoice::Auto,
            server_names: Vec::new(),
            client_header_timeout_ms: 10_000,
            shutdown_timeout_ms: 10_000,
            client_send_timeout_ms: 30_000,
            client_body_timeout_ms: 30_000,
            max_request_head_bytes: 64 * 1024,
            max_headers: 96,
            max_url_bytes: 8 * 1024,
            max_request_body_bytes: 1024 * MIB,
            max_connections: 10_000,
            h2_max_concurrent_streams: 100,
            h2_max_header_list_size: None,
            h2_stream_window: 256 * 1024,
            h2_connection_window: MIB,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            h2_max_control_frames_per_sec: 1000,
            max_buffered_bytes: 256 * MIB,
            node_name: "edgeslice".to_string(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: 10_000,
        }
    }
}

impl ServerConfig {
    /// `client_header_timeout_ms` as a [`Duration`].
    pub fn client_header_timeout(&self) -> Duration {
        Duration::from_millis(self.client_header_timeout_ms)
    }

    /// `shutdown_timeout_ms` as a [`Duration`].
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// `tls_handshake_timeout_ms` as a [`Duration`].
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms)
    }
}

/// The monoio driver a worker runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, otherwise the legacy (epoll) driver.
    #[default]
    Auto,
    /// io_uring only; starting fails where it is unavailable.
    IoUring,
    /// The legacy (epoll) driver only.
    Legacy,
}
