//! Shared harness: a real origin and a real edgeslice, both on 127.0.0.1:0.
#![allow(dead_code, unused_imports)]

pub use edgeslice::demo::client::{get, HttpConnection, HttpResponse};
pub use edgeslice::demo::origin::{object_bytes, DemoOrigin, OriginRequest};

use edgeslice::config::{Config, DriverChoice};
use edgeslice::runtime::Server;

/// An origin and an edgeslice in front of it.
pub struct Harness {
    pub origin: DemoOrigin,
    pub server: Server,
}

/// Options of a harness; `Default` is 2 workers, 2-byte slices, window 4.
pub struct Setup {
    pub slice_size: u64,
    pub window: usize,
    pub workers: usize,
    pub driver: DriverChoice,
    pub extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            slice_size: 2,
            window: 4,
            workers: 2,
            driver: DriverChoice::Auto,
            extra: String::new(),
        }
    }
}

impl Harness {
    pub fn start(setup: Setup) -> Harness {
        let origin = DemoOrigin::start().expect("origin starts");
        let driver = match setup.driver {
            DriverChoice::Auto => "auto",
            DriverChoice::IoUring => "io_uring",
            DriverChoice::Legacy => "legacy",
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {}\ndriver = \"{driver}\"\n\
             [origin]\naddress = \"{}\"\nread_timeout_ms = 5000\n{}\n\
             [slice]\nslice_size = {}\nmax_concurrent_subrequests = {}\n",
            setup.workers,
            origin.addr(),
            setup.extra,
            setup.slice_size,
            setup.window
        );
        let config = Config::from_toml(&text).expect("test config is valid");
        let server = Server::start(&config).expect("edgeslice starts");
        Harness { origin, server }
    }

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
