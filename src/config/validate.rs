//! [`Config::validate`]: every value's range, checked once after parsing, so
//! the later steps of the data path may trust what they read.
//!
//! A `[[route]]` value overrides a global key (`slice_size` overrides
//! `slice.slice_size`, ...) and is checked by the same function as that key,
//! so the two cannot drift apart; only the name in the message differs:
//! `invalid slice.prefetch_slices = 65: must be at most 64` and
//! `invalid route[0].prefetch_slices = 65: must be at most 64`.

use std::path::PathBuf;

use super::origin::{load_ca_file, OriginAddress};
use super::size::SliceSize;
use super::{
    available_cores, cache::parse_net, Config, ConfigError, RouteConfig,
    MAX_CONCURRENT_SUBREQUESTS, MAX_OBJECT_BYTES, MAX_PREFETCH_SLICES,
    MAX_RANGES_PER_ANSWER as MAX_PARTS, MAX_RETRIES, MAX_SLICE_SIZE,
};

/// A bearer token a request presents (`key`): not empty, printable, with no
/// space around it (receivers trim header values: it would never match).
fn bearer_token(key: &'static str, token: Option<&str>) -> Result<(), ConfigError> {
    match token {
        Some("") => Err(invalid(
            key,
            "\"\"".into(),
            "must not be empty; leave it out to ask for none".into(),
        )),
        Some(token)
            if token.trim() != token
                || !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Err(invalid(
                key,
                format!("(not shown, {} bytes)", token.len()),
                "must be printable ASCII that does not start or end with a space: \
                 it is compared with a header value, which receivers trim"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

/// The smallest disk tier: its manifests' share is four 4 MiB blocks.
const MIN_DISK_BYTES: u64 = 32 << 20;
/// The most reads from disk a worker may have in flight (`cache.disk_reads_per_worker`).
const MAX_DISK_READS_PER_WORKER: u32 = 1024;

/// A refused value as written in TOML, and why; the caller names the key.
struct Refused {
    value: String,
    reason: String,
}

impl Refused {
    /// The refusal of the global key `key`.
    fn at(self, key: &'static str) -> ConfigError {
        invalid(key, self.value, self.reason)
    }

    /// The refusal of `key` in the `index`-th route.
    fn in_route(self, index: usize, key: &str) -> ConfigError {
        ConfigError::InvalidRoute {
            index,
            key: key.to_string(),
            value: self.value,
            reason: self.reason,
        }
    }
}

type Check<T> = fn(&T) -> Result<(), Refused>;

// The checks a global key shares with its `[[route]]` twin.

fn slice_size(size: &SliceSize) -> Result<(), Refused> {
    match size {
        SliceSize::Bytes(n) if !(1..=MAX_SLICE_SIZE).contains(n) => Err(Refused {
            value: size.to_string(),
            reason: format!("must be between 1 and {MAX_SLICE_SIZE} (64MiB) bytes, or \"auto\""),
        }),
        _ => Ok(()),
    }
}

fn max_concurrent_subrequests(n: &usize) -> Result<(), Refused> {
    if (1..=MAX_CONCURRENT_SUBREQUESTS).contains(n) {
        return Ok(());
    }
    Err(Refused {
        value: n.to_string(),
        reason: format!("must be between 1 and {MAX_CONCURRENT_SUBREQUESTS}"),
    })
}

fn prefetch_slices(n: &u64) -> Result<(), Refused> {
    if *n <= MAX_PREFETCH_SLICES {
        return Ok(());
    }
    Err(Refused {
        value: n.to_string(),
        reason: format!("must be at most {MAX_PREFETCH_SLICES}"),
    })
}

fn min_slice_bytes(n: &u64) -> Result<(), Refused> {
    // An object under this size is one slice of this size: one cache entry.
    if *n <= MAX_SLICE_SIZE {
        return Ok(());
    }
    Err(Refused {
        value: n.to_string(),
        reason: format!("must be at most {MAX_SLICE_SIZE} (64MiB), the largest slice"),
    })
}

fn max_ranges(n: &usize) -> Result<(), Refused> {
    if *n <= MAX_PARTS {
        return Ok(());
    }
    Err(Refused {
        value: n.to_string(),
        reason: format!("must be at most {MAX_PARTS}, the most parts a multipart answer has"),
    })
}

fn host_header(host: &String) -> Result<(), Refused> {
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return Ok(());
    }
    Err(Refused {
        value: format!("{host:?}"),
        reason: "must be a host name (visible ASCII, no spaces), or be left out".into(),
    })
}

fn origin_address(address: &str) -> Result<(), Refused> {
    OriginAddress::parse(address)
        .map(|_| ())
        .map_err(|reason| Refused {
            value: format!("{address:?}"),
            reason,
        })
}

/// The TLS keys of one origin: they only mean something for an `https://`
/// address (anything else is refused, so a key that would be ignored is
/// noticed), and `ca_file` must hold CA certificates. Returns the refused
/// key (`ca_file` or `tls_verify`; a route's are `origin_`-prefixed) with
/// its refusal.
fn origin_tls(
    address: &str,
    ca_file: &Option<PathBuf>,
    tls_verify: bool,
) -> Result<(), (&'static str, Refused)> {
    let tls = OriginAddress::parse(address).is_ok_and(|a| a.tls);
    let plain = |key, value| {
        let reason = match address {
            "" => "applies only to an https:// origin, and none is set".into(),
            _ => format!("applies only to an https:// origin, not {address:?}"),
        };
        Err((key, Refused { value, reason }))
    };
    if let Some(path) = ca_file {
        if !tls {
            return plain("ca_file", format!("{path:?}"));
        }
        if let Err(reason) = load_ca_file(path) {
            let value = format!("{path:?}");
            return Err(("ca_file", Refused { value, reason }));
        }
    }
    if !tls_verify && !tls {
        return plain("tls_verify", "false".into());
    }
    Ok(())
}

/// Checks a route's override, when set, as its global twin is checked.
fn twin<T>(index: usize, key: &str, value: &Option<T>, check: Check<T>) -> Result<(), ConfigError> {
    match value {
        Some(v) => check(v).map_err(|r| r.in_route(index, key)),
        None => Ok(()),
    }
}

impl Config {
    /// Checks every value's range; the first bad value is reported by key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        self.validate_origin()?;
        self.validate_slice()?;
        self.validate_cache()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.validate_tls()
    }

    /// TLS keys come in pairs and need the listener; the files themselves
    /// are read when the server starts (and on every reload).
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        let path = |p: &Option<std::path::PathBuf>| {
            format!("{:?}", p.as_deref().unwrap_or_else(|| "".as_ref()))
        };
        match (&server.tls_listen, &server.tls_cert, &server.tls_key) {
            (Some(listen), None, _) | (Some(listen), _, None) => {
                return Err(invalid(
                    "server.tls_listen",
                    format!("\"{listen}\""),
                    "needs server.tls_cert and server.tls_key".into(),
                ))
            }
            (Some(listen), Some(_), Some(_)) if *listen == server.listen && listen.port() != 0 => {
                return Err(invalid(
                    "server.tls_listen",
                    format!("\"{listen}\""),
                    "must differ from server.listen".into(),
                ))
            }
            (None, Some(_), _) => {
                return Err(invalid(
                    "server.tls_cert",
                    path(&server.tls_cert),
                    "has no effect without server.tls_listen".into(),
                ))
            }
            (None, _, Some(_)) => {
                return Err(invalid(
                    "server.tls_key",
                    path(&server.tls_key),
                    "has no effect without server.tls_listen".into(),
                ))
            }
            _ => {}
        }
        positive(
            "server.tls_handshake_timeout_ms",
            server.tls_handshake_timeout_ms,
        )?;
        for (index, route) in self.routes.iter().enumerate() {
            let refuse = |key: &str, value: String, reason: &str| {
                Refused {
                    value,
                    reason: reason.into(),
                }
                .in_route(index, key)
            };
            match (&route.tls_cert, &route.tls_key) {
                (None, None) => continue,
                (Some(_), None) => {
                    return Err(refuse("tls_cert", path(&route.tls_cert), "needs tls_key"))
                }
                (None, Some(_)) => {
                    return Err(refuse("tls_key", path(&route.tls_key), "needs tls_cert"))
                }
                (Some(_), Some(_)) => {}
            }
            if route.host.is_none() {
                return Err(refuse(
                    "tls_cert",
                    path(&route.tls_cert),
                    "needs the route's host: it is chosen by the SNI name",
                ));
            }
            if server.tls_listen.is_none() {
                return Err(refuse(
                    "tls_cert",
                    path(&route.tls_cert),
                    "has no effect without server.tls_listen",
                ));
            }
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        positive(
            "server.client_header_timeout_ms",
            server.client_header_timeout_ms,
        )?;
        positive("server.shutdown_timeout_ms", server.shutdown_timeout_ms)?;
        for name in &server.server_names {
            let host = name.strip_prefix("*.").unwrap_or(name);
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err(invalid(
                    "server.server_names",
                    format!("{name:?}"),
                    "must be a host name (letters, digits, - and .) or *.suffix, without a port"
                        .into(),
                ));
            }
        }
        positive(
            "server.client_send_timeout_ms",
            server.client_send_timeout_ms,
        )?;
        positive(
            "server.client_body_timeout_ms",
            server.client_body_timeout_ms,
        )?;
        if !(1024..=1024 * 1024).contains(&server.max_request_head_bytes) {
            return Err(invalid(
                "server.max_request_head_bytes",
                server.max_request_head_bytes.to_string(),
                "must be between 1024 and 1048576 (1MiB)".into(),
            ));
        }
        if !(1..=96).contains(&server.max_headers) {
            return Err(invalid(
                "server.max_headers",
                server.max_headers.to_string(),
                "must be between 1 and 96".into(),
            ));
        }
        if !is_sf_token(&server.node_name) {
            return Err(invalid(
                "server.node_name",
                format!("{:?}", server.node_name),
                "must be a token: a letter or '*', then letters, digits and !#$%&'*+-.^_`|~:/"
                    .into(),
            ));
        }
        positive("server.max_url_bytes", server.max_url_bytes as u64)?;
        positive("server.max_connections", server.max_connections as u64)?;
        positive("server.max_buffered_bytes", server.max_buffered_bytes)?;
        self.validate_h2()?;
        let Some(cores) = &server.pin_cores else {
            return Ok(());
        };
        let invalid = |reason: String| invalid("server.pin_cores", format!("{cores:?}"), reason);
        if cores.is_empty() {
            return Err(invalid(
                "must list at least one core, or be left out".into(),
            ));
        }
        let available = available_cores();
        for (i, core) in cores.iter().enumerate() {
            if cores[..i].contains(core) {
                return Err(invalid(format!("core {core} is listed twice")));
            }
            if *core >= available {
                return Err(invalid(format!(
                    "core {core} does not exist, {available} cores are available (0..={})",
                    available - 1
                )));
            }
        }
        if server.workers > cores.len() {
            return Err(ConfigError::Invalid {
                key: "server.workers",
                value: server.workers.to_string(),
                reason: format!(
                    "must be at most the {} cores in server.pin_cores",
                    cores.len()
                ),
            });
        }
        Ok(())
    }

    /// The HTTP/2 limits: windows within what the protocol can say (2^31-1).
    fn validate_h2(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        positive(
            "server.h2_max_concurrent_streams",
            server.h2_max_concurrent_streams.into(),
        )?;
        positive(
            "server.h2_max_control_frames_per_sec",
            server.h2_max_control_frames_per_sec.into(),
        )?;
        let windows = [
            ("server.h2_stream_window", server.h2_stream_window),
            ("server.h2_connection_window", server.h2_connection_window),
        ];
        for (key, window) in windows {
            if !(65_535..=(1 << 31) - 1).contains(&window) {
                return Err(invalid(
                    key,
                    window.to_string(),
                    "must be between 65535 and 2147483647 (2^31-1)".into(),
                ));
            }
        }
        if let Some(size) = server.h2_max_header_list_size {
            if !(1024..=16 * 1024 * 1024).contains(&size) {
                return Err(invalid(
                    "server.h2_max_header_list_size",
                    size.to_string(),
                    "must be between 1024 and 16777216 (16MiB)".into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_origin(&self) -> Result<(), ConfigError> {
        let origin = &self.origin;
        // Without a default origin, requests no route matches get 404.
        if origin.address.is_empty() && self.routes.is_empty() {
            return Err(ConfigError::Missing {
                key: "origin.address",
            });
        }
        if !origin.address.is_empty() {
            origin_address(&origin.address).map_err(|r| r.at("origin.address"))?;
        }
        if let Some(host) = &origin.host_header {
            host_header(host).map_err(|r| r.at("origin.host_header"))?;
        }
        origin_tls(&origin.address, &origin.ca_file, origin.tls_verify).map_err(|(key, r)| {
            match key {
                "ca_file" => r.at("origin.ca_file"),
                _ => r.at("origin.tls_verify"),
            }
        })?;
        for (i, route) in self.routes.iter().enumerate() {
            validate_route(i, route)?;
        }
        positive("origin.connect_timeout_ms", origin.connect_timeout_ms)?;
        positive("origin.head_timeout_ms", origin.head_timeout_ms)?;
        positive("origin.read_timeout_ms", origin.read_timeout_ms)?;
        positive("origin.slice_timeout_ms", origin.slice_timeout_ms)?;
        positive("origin.pool_idle_timeout_ms", origin.pool_idle_timeout_ms)?;
        positive("origin.breaker_cooldown_ms", origin.breaker_cooldown_ms)
    }

    fn validate_slice(&self) -> Result<(), ConfigError> {
        let slice = &self.slice;
        slice_size(&slice.slice_size).map_err(|r| r.at("slice.slice_size"))?;
        max_concurrent_subrequests(&slice.max_concurrent_subrequests)
            .map_err(|r| r.at("slice.max_concurrent_subrequests"))?;
        prefetch_slices(&slice.prefetch_slices).map_err(|r| r.at("slice.prefetch_slices"))?;
        min_slice_bytes(&slice.min_slice_bytes).map_err(|r| r.at("slice.min_slice_bytes"))?;
        max_ranges(&slice.max_ranges).map_err(|r| r.at("slice.max_ranges"))?;
        positive("slice.max_object_bytes", slice.max_object_bytes)?;
        if slice.max_object_bytes > MAX_OBJECT_BYTES {
            return Err(invalid(
                "slice.max_object_bytes",
                slice.max_object_bytes.to_string(),
                format!("must be at most {MAX_OBJECT_BYTES} (1EiB)"),
            ));
        }
        if slice.max_retries > MAX_RETRIES {
            return Err(invalid(
                "slice.max_retries",
                slice.max_retries.to_string(),
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        Ok(())
    }

    fn validate_cache(&self) -> Result<(), ConfigError> {
        positive("cache.memory_bytes", self.cache.memory_bytes)?;
        let reads = self.cache.disk_reads_per_worker;
        if !(1..=MAX_DISK_READS_PER_WORKER).contains(&reads) {
            return Err(invalid(
                "cache.disk_reads_per_worker",
                reads.to_string(),
                format!("must be 1 to {MAX_DISK_READS_PER_WORKER}"),
            ));
        }
        let disk = self.cache.disk_bytes;
        if disk != 0 && disk < MIN_DISK_BYTES {
            // The manifests' disk tier (half of a small one) must hold
            // several of foyer's 4 MiB blocks: with less, its flush never
            // finds room and the store never closes.
            return Err(invalid(
                "cache.disk_bytes",
                disk.to_string(),
                format!("must be 0 (memory only) or at least {MIN_DISK_BYTES} (32MiB)"),
            ));
        }
        if let Some(bad) = self
            .cache
            .purge_allow
            .iter()
            .find(|n| parse_net(n).is_none())
        {
            return Err(invalid(
                "cache.purge_allow",
                format!("{bad:?}"),
                "must be an IP network like \"10.0.0.0/8\" or an address".into(),
            ));
        }
        bearer_token("cache.purge_token", self.cache.purge_token.as_deref())?;
        bearer_token("admin.token", self.admin.token.as_deref())?;
        Ok(())
    }
}

/// The `index`-th `[[route]]`: what it matches, its origin, and each
/// override checked as the global key it overrides.
fn validate_route(index: usize, route: &RouteConfig) -> Result<(), ConfigError> {
    origin_address(&route.origin).map_err(|r| r.in_route(index, "origin"))?;
    let verify = route.origin_tls_verify.unwrap_or(true);
    origin_tls(&route.origin, &route.origin_ca_file, verify)
        .map_err(|(key, r)| r.in_route(index, &format!("origin_{key}")))?;
    let bad = |key: &str, value: String, reason: &str| {
        Refused {
            value,
            reason: reason.into(),
        }
        .in_route(index, key)
    };
    if let Some(host) = &route.host {
        let name = host.strip_prefix("*.").unwrap_or(host);
        if name.is_empty() || name.contains('*') || name.contains('/') {
            return Err(bad(
                "host",
                format!("{host:?}"),
                "must be a host name or *.suffix",
            ));
        }
    }
    if let Some(prefix) = &route.path_prefix {
        if !prefix.starts_with('/') {
            return Err(bad(
                "path_prefix",
                format!("{prefix:?}"),
                "must start with /",
            ));
        }
    }
    twin(index, "slice_size", &route.slice_size, slice_size)?;
    twin(
        index,
        "max_concurrent_subrequests",
        &route.max_concurrent_subrequests,
        max_concurrent_subrequests,
    )?;
    twin(
        index,
        "prefetch_slices",
        &route.prefetch_slices,
        prefetch_slices,
    )?;
    twin(
        index,
        "min_slice_bytes",
        &route.min_slice_bytes,
        min_slice_bytes,
    )?;
    twin(index, "max_ranges", &route.max_ranges, max_ranges)?;
    twin(index, "host_header", &route.host_header, host_header)?;
    // origin_if_match, cut_whole_answers, stale_while_revalidate and
    // stale_if_error take any value, as their global twins do; include and
    // exclude are patterns that match or do not.
    Ok(())
}

fn invalid(key: &'static str, value: String, reason: String) -> ConfigError {
    ConfigError::Invalid { key, value, reason }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "0".into(), "must be greater than 0".into()));
    }
    Ok(())
}

/// Whether `s` is an sf-token (RFC 8941 section 3.3.4), as Cache-Status names its cache.
fn is_sf_token(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}
