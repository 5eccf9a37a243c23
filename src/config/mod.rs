//! Configuration: the TOML file that sets up every later step of the data path.
//!
//! `main.rs` calls [`Config::load`] once at startup (and for `--check`, prints
//! [`Config::to_toml`]); workers, the proxy pipeline and the cache then read the
//! plain fields. Every section has a `Default` impl, which is the only place
//! defaults live; a section or key left out of the file takes its default.
//! Only `origin.address` has no default.
//!
//! Sizes (`slice.slice_size`, `cache.memory_bytes`, `cache.disk_bytes`) accept
//! an integer number of bytes or a string such as `"512KiB"`, `"1MiB"` or
//! `"10 GiB"`; [`Config::to_toml`] writes them back as integers.
//!
//! ```
//! use edgeslice::config::{Config, SliceSize};
//!
//! let config = Config::from_toml(
//!     r#"
//!     [origin]
//!     address = "127.0.0.1:8081"
//!     [slice]
//!     slice_size = "2MiB"
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.slice.slice_size, SliceSize::Bytes(2 * 1024 * 1024));
//! assert_eq!(config.slice.max_concurrent_subrequests, 4);
//! ```
//!
//! # Errors
//!
//! [`ConfigError`] says what went wrong and where, on one line: an unreadable
//! file, TOML that does not parse or names an unknown key (the message gives
//! the line, column and that line's text), or a value [`Config::validate`]
//! rejects, reported as
//! `invalid slice.max_concurrent_subrequests = 0: must be between 1 and 256`.
//! [`Config::load`] puts the file's path in front. Origin addresses are not
//! resolved here: the conversions to runtime settings in
//! [`crate::server::settings`] do that, for the start and for `--check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use size::{deserialize_opt_size, deserialize_size};

mod cache;
pub mod cluster;
mod error;
pub mod origin;
mod server;
pub mod size;
mod validate;
pub use cache::CacheConfig;
pub use cluster::ClusterConfig;
use error::parse_error;
pub use error::ConfigError;
pub use origin::OriginAddress;
pub use server::{DriverChoice, ServerConfig};
pub use size::SliceSize;

use size::{GIB, MIB};

/// Largest accepted `slice.slice_size`; each in-flight slice is buffered whole.
pub const MAX_SLICE_SIZE: u64 = 64 * MIB;
/// Largest accepted `slice.max_concurrent_subrequests`.
pub const MAX_CONCURRENT_SUBREQUESTS: usize = 256;
/// Largest accepted `slice.max_retries`.
pub const MAX_RETRIES: u32 = 20;
/// Largest accepted `slice.prefetch_slices`.
pub const MAX_PREFETCH_SLICES: u64 = 64;
/// How a secret is shown wherever the configuration is printed.
pub const REDACTED: &str = "<redacted>";

/// A secret of the configuration in the runtime settings: its `Debug` is
/// [`REDACTED`], so no log line or debug print shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `value`, kept secret.
    pub fn new(value: &str) -> Secret {
        Secret(value.to_string())
    }

    /// The secret itself, to compare with what a request presents.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Largest `slice.max_object_bytes`: lengths stay far from u64 overflow.
pub const MAX_OBJECT_BYTES: u64 = 1 << 60;
/// Most parts of one multipart/byteranges answer (`slice.max_ranges`).
pub const MAX_RANGES_PER_ANSWER: usize = 16;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the client-facing listener and its workers.
    pub server: ServerConfig,
    /// `[origin]`: where slice subrequests go.
    pub origin: OriginConfig,
    /// `[slice]`: how a client request is cut into origin subrequests.
    pub slice: SliceConfig,
    /// `[cache]`: the slice cache.
    pub cache: CacheConfig,
    /// `[admin]`: the metrics, health and status listener.
    pub admin: AdminConfig,
    /// `[log]`: the access log.
    pub log: LogConfig,
    /// `[cluster]`: the other nodes of this POP; `None` runs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// `[[route]]`: origins chosen by Host and path; `[origin]` is the default.
    #[serde(rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

/// `[[route]]`: requests whose Host and path match go to this origin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Host to match: exact (`video.example.com`) or `*.example.com`; `None` matches any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path prefix to match (`/videos/`); `None` matches any path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The route's origin: `https://host[:port]`, `http://host[:port]` or `host:port`.
    pub origin: String,
    /// Host header sent to this origin; `None` forwards the client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,
    /// PEM certificate chain for TLS clients whose SNI name matches `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) this route's `https://` origin must chain to;
    /// `None` uses the system roots. Not taken from `[origin]`; `origin_`
    /// tells it from `tls_cert`, which faces clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ca_file: Option<PathBuf>,
    /// `Some(false)` accepts any certificate from this route's `https://`
    /// origin; `None` verifies. Not taken from `[origin]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_tls_verify: Option<bool>,
    /// Slice size for this route (or `"auto"`); `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_size: Option<SliceSize>,
    /// Slices in flight per request for this route; `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_subrequests: Option<usize>,
    /// Objects smaller than this pass through whole; `None` takes `[slice]`'s.
    #[serde(
        default,
        deserialize_with = "deserialize_opt_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_slice_bytes: Option<u64>,
    /// Only paths matching one of these patterns (`*` wildcards) are sliced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Paths matching one of these patterns pass through.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `If-Match` on slices after the first; `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_if_match: Option<bool>,
    /// Slices prefetched for sequential readers; `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch_slices: Option<u64>,
    /// Most parts of a multipart answer; `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ranges: Option<usize>,
    /// Cut whole answers into slices for the cache; `None` takes `[slice]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_whole_answers: Option<bool>,
    /// stale-while-revalidate default; `None` takes `[cache]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate: Option<u64>,
    /// stale-if-error default; `None` takes `[cache]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_if_error: Option<u64>,
    /// Store answers that carry `Set-Cookie`; `None` takes `[cache]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_set_cookie: Option<bool>,
    /// Query parameters left out of the cache key; `None` takes `[cache]`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_drop_query: Option<Vec<String>>,
}

/// `[admin]`: a separate listener for `/metrics`, `/health` and `/status`;
/// off unless asked for, so no listener opens that the operator did not name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; `None` turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// A bearer token every admin request must carry (`Authorization:
    /// Bearer TOKEN`); `None` asks for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// How access log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: one access log line per request, at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Whether access log lines are written.
    pub access_log: bool,
    /// Their format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            access_log: true,
            format: LogFormat::Text,
        }
    }
}

/// `[origin]`: where slice subrequests go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Origin `https://host[:port]` (TLS), `http://host[:port]` or `host:port`
    /// (plain); see [`OriginAddress`]. Empty means unset, which
    /// [`Config::validate`] rejects unless routes name every origin.
    pub address: String,
    /// `Host` header sent to the origin; `None` forwards the client's `Host`.
    /// TLS names the origin (SNI, certificate) by `address`'s host, never this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,
    /// CA certificates (PEM) an `https://` origin's certificate must chain
    /// to; `None` uses the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Whether an `https://` origin's certificate is verified (chain, name,
    /// dates); `false` accepts any, with a warning at start.
    pub tls_verify: bool,
    /// Time allowed to establish an origin connection, TLS handshake
    /// included, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed from sending a request to the response head, in milliseconds.
    pub head_timeout_ms: u64,
    /// Longest gap allowed between body bytes, in milliseconds.
    pub read_timeout_ms: u64,
    /// Deadline for one whole slice subrequest, in milliseconds.
    pub slice_timeout_ms: u64,
    /// Idle keep-alive connections kept per worker.
    pub max_idle_per_host: usize,
    /// Idle keep-alive connections older than this are closed, in milliseconds.
    pub pool_idle_timeout_ms: u64,
    /// Consecutive failures that open the circuit breaker; 0 turns it off.
    pub breaker_failures: u32,
    /// How long an open breaker fails requests fast before one probe, in milliseconds.
    pub breaker_cooldown_ms: u64,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            address: String::new(),
            host_header: None,
            ca_file: None,
            tls_verify: true,
            connect_timeout_ms: 3_000,
            head_timeout_ms: 10_000,
            read_timeout_ms: 10_000,
            slice_timeout_ms: 30_000,
            max_idle_per_host: 10,
            pool_idle_timeout_ms: 90_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 5_000,
        }
    }
}

impl OriginConfig {
    /// `connect_timeout_ms` as a [`Duration`].
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `head_timeout_ms` as a [`Duration`].
    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms)
    }

    /// `slice_timeout_ms` as a [`Duration`].
    pub fn slice_timeout(&self) -> Duration {
        Duration::from_millis(self.slice_timeout_ms)
    }

    /// `read_timeout_ms` as a [`Duration`].
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

/// `[slice]`: how a client request is cut into origin subrequests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SliceConfig {
    /// Bytes per slice; slices are aligned to multiples of this size.
    /// `"auto"` sizes each object's slices from its length.
    pub slice_size: SliceSize,
    /// Slice subrequests one client request may have in flight at once.
    pub max_concurrent_subrequests: usize,
    /// Extra attempts for a failed slice subrequest before the request fails.
    pub max_retries: u32,
    /// Objects smaller than this pass through whole instead of being sliced.
    #[serde(deserialize_with = "deserialize_size")]
    pub min_slice_bytes: u64,
    /// Only paths matching one of these patterns (`*` wildcards) are sliced;
    /// empty slices every path.
    pub include: Vec<String>,
    /// Paths matching one of these patterns pass through.
    pub exclude: Vec<String>,
    /// Ask every slice after the first with `If-Match` (or
    /// `If-Unmodified-Since`), so the origin itself refuses another version.
    pub origin_if_match: bool,
    /// Slices fetched ahead into the cache for sequential readers (0 = off).
    pub prefetch_slices: u64,
    /// Most parts of a multipart/byteranges answer; more ranges (or 0/1
    /// here) get the whole object.
    pub max_ranges: usize,
    /// Cut answers that ignore Range or give no length into slices for the cache.
    pub cut_whole_answers: bool,
    /// Longest object an origin (or a peer) may announce; a longer one is a 502.
    #[serde(deserialize_with = "deserialize_size")]
    pub max_object_bytes: u64,
}

impl Default for SliceConfig {
    fn default() -> Self {
        SliceConfig {
            slice_size: SliceSize::Bytes(MIB),
            max_concurrent_subrequests: 4,
            max_retries: 3,
            min_slice_bytes: 0,
            include: Vec::new(),
            exclude: Vec::new(),
            origin_if_match: true,
            prefetch_slices: 0,
            max_ranges: 16,
            cut_whole_answers: true,
            max_object_bytes: 1024 * GIB,
        }
    }
}

impl Config {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the file at `path`, then parses and validates it like
    /// [`Config::from_toml`]; every error names the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_toml(&text).map_err(|error| ConfigError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// Worker threads to start: `server.workers`; when 0, one per pinned core
    /// if `pin_cores` is set, else one per available core.
    pub fn worker_count(&self) -> usize {
        match (self.server.workers, &self.server.pin_cores) {
            (0, Some(cores)) => cores.len(),
            (0, None) => available_cores(),
            (n, _) => n,
        }
    }

    /// The effective configuration, defaults filled in, as TOML that
    /// [`Config::from_toml`] reads back to an equal value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("Config has only TOML-representable fields")
    }

    /// [`Config::to_toml`] with every secret (`cluster.token`,
    /// `cache.purge_token`, `admin.token`) written as [`REDACTED`]: what `--check` prints,
    /// and what lands in the journal when a unit runs it.
    pub fn to_toml_redacted(&self) -> String {
        let mut shown = self.clone();
        if let Some(cluster) = shown.cluster.as_mut() {
            cluster.token = REDACTED.into();
        }
        if let Some(token) = shown.cache.purge_token.as_mut() {
            *token = REDACTED.into();
        }
        if let Some(token) = shown.admin.token.as_mut() {
            *token = REDACTED.into();
        }
        shown.to_toml()
    }
}

#[cfg(test)]
mod tests;

/// Cores this process may run on; 1 when the platform cannot say.
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
