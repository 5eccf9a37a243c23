//! Shared harness: a real origin and a real edgeslice, both on 127.0.0.1:0.
//!
//! Here: [`Harness`] (in-process server and demo origin, configured by
//! [`Setup`]), temp dirs, polling and raw requests. In submodules: `process`
//! (the binary as a subprocess, its stderr lines), `rig` (the resilience
//! tests' `Knobs` and `Rig`), `cache` (cached setups, PURGE), `h2c` (an
//! HTTP/2 client and raw frames), `pop` (three nodes of a cluster), `strategies` (proptest strategies of the
//! fuzz files) and `tls` (certificates made in the test, TLS clients).
#![allow(dead_code, unused_imports)]

// The built-in origin and client: test support the binary shares, not
// part of the library.
#[path = "../../src/demo/mod.rs"]
pub mod demo;

pub use demo::client::{get, HttpConnection, HttpResponse};
pub use demo::origin::{object_bytes, DemoOrigin, OriginRequest};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeslice::config::{Config, DriverChoice};
use edgeslice::server::runtime::Server;

pub mod cache;
pub mod h2c;
pub mod pop;
pub mod process;
pub mod rig;
pub mod scripted;
pub mod strategies;
mod temp_dir;
pub mod tls;

pub use temp_dir::{temp_path, TempDir};

/// `Read::read` that retries `Interrupted`. A blocking socket read with a
/// read timeout (SO_RCVTIMEO) fails with EINTR when any signal reaches the
/// thread, even under SA_RESTART; CI saw it once on a stalled-client test.
pub fn read_some(stream: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// An `[admin]` listener on a port of its own, to append to a configuration.
pub const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

/// An origin and an edgeslice in front of it.
pub struct Harness {
    pub origin: DemoOrigin,
    pub server: Server,
}

/// Options of a harness; `Default` is 2 workers, 2-byte slices, window 4.
#[derive(Clone)]
pub struct Setup {
    pub slice_size: u64,
    pub window: usize,
    pub workers: usize,
    pub driver: DriverChoice,
    /// Extra lines in `[origin]`.
    pub extra: String,
    /// Extra lines in `[server]`.
    pub server: String,
    /// The cache: `None` disables it; `Some(dir)` caches under `dir`.
    pub cache: Option<CacheSetup>,
}

/// A cache for a harness.
#[derive(Clone)]
pub struct CacheSetup {
    pub dir: std::path::PathBuf,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub ttl: u64,
}

impl CacheSetup {
    /// A cache in a new directory of its own (64 MiB memory, 256 MiB disk, 1 h TTL).
    pub fn fresh(name: &str) -> CacheSetup {
        let dir = temp_path(name);
        let _ = std::fs::remove_dir_all(&dir);
        CacheSetup {
            dir,
            memory_bytes: 64 << 20,
            disk_bytes: 256 << 20,
            ttl: 3600,
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            slice_size: 2,
            window: 4,
            workers: 2,
            driver: DriverChoice::Auto,
            extra: String::new(),
            server: String::new(),
            cache: None,
        }
    }
}

impl Harness {
    pub fn start(setup: Setup) -> Harness {
        let origin = DemoOrigin::start().expect("origin starts");
        let server = start_proxy(&origin, &setup);
        Harness { origin, server }
    }

    /// [`Harness::start`] with `lines` (such as `"client_revalidate = true"`)
    /// added to the configuration's `[cache]`.
    pub fn start_with_cache_lines(setup: Setup, lines: &str) -> Harness {
        let origin = DemoOrigin::start().expect("origin starts");
        // config_text ends in [cache].
        let text = format!("{}{lines}\n", config_text(origin.addr(), &setup));
        let server = start_server(&text);
        Harness { origin, server }
    }

    /// Stop edgeslice (draining, flushing the cache) and start it again on the
    /// same origin and cache directory, as a restart would.
    pub fn restart(self, setup: &Setup) -> Harness {
        let Harness { origin, server } = self;
        server.shutdown();
        let server = start_proxy(&origin, setup);
        Harness { origin, server }
    }
}

/// The configuration text of a harness.
pub fn config_text(origin: std::net::SocketAddr, setup: &Setup) -> String {
    let driver = match setup.driver {
        DriverChoice::Auto => "auto",
        DriverChoice::IoUring => "io_uring",
        DriverChoice::Legacy => "legacy",
    };
    let cache = match &setup.cache {
        None => "enabled = false\n".to_string(),
        Some(c) => format!(
            "dir = {:?}\nmemory_bytes = {}\ndisk_bytes = {}\ncache_ttl = {}\n",
            c.dir, c.memory_bytes, c.disk_bytes, c.ttl
        ),
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {}\ndriver = \"{driver}\"\n{}\n\
         [origin]\naddress = \"{origin}\"\nread_timeout_ms = 5000\n{}\n\
         [slice]\nslice_size = {}\nmax_concurrent_subrequests = {}\n\
         [cache]\n{cache}",
        setup.workers, setup.server, setup.extra, setup.slice_size, setup.window
    )
}

fn start_proxy(origin: &DemoOrigin, setup: &Setup) -> Server {
    start_server(&config_text(origin.addr(), setup))
}

/// Start edgeslice in-process from `text`.
pub fn start_server(text: &str) -> Server {
    let config = Config::from_toml(text).unwrap_or_else(|e| panic!("config: {e}\n{text}"));
    Server::start(&config).expect("edgeslice starts")
}

impl Harness {
    /// Default setup with `slice_size`-byte slices.
    pub fn with_slices(slice_size: u64) -> Harness {
        Harness::start(Setup {
            slice_size,
            ..Setup::default()
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        get(self.addr(), target, headers).expect("request through edgeslice")
    }

    /// Range header values the origin received, in arrival order.
    pub fn origin_ranges(&self) -> Vec<String> {
        self.origin
            .requests()
            .into_iter()
            .map(|r| r.range.unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// Same, sorted (slices are fetched concurrently, so arrival order varies).
    pub fn origin_ranges_sorted(&self) -> Vec<String> {
        let mut r = self.origin_ranges();
        r.sort_by_key(|s| range_start(s));
        r
    }
}

fn range_start(s: &str) -> u64 {
    s.trim_start_matches("bytes=")
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// `bytes=a-b` for each slice index of size `s`.
pub fn slice_ranges(indices: impl IntoIterator<Item = u64>, s: u64) -> Vec<String> {
    indices
        .into_iter()
        .map(|k| format!("bytes={}-{}", k * s, (k + 1) * s - 1))
        .collect()
}

/// Poll `f` every 10 ms until it returns `Some`, or panic after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A request through edgeslice with a Host header.
pub fn get_host(addr: SocketAddr, target: &str, host: &str) -> HttpResponse {
    get(addr, target, &[("Host", host)]).expect("request through edgeslice")
}

/// Sends `wire` on a fresh connection and reads one response.
pub fn raw_once(addr: SocketAddr, wire: &[u8]) -> HttpResponse {
    HttpConnection::connect(addr)
        .expect("connect to edgeslice")
        .raw(wire)
        .expect("a response to the raw request")
}
