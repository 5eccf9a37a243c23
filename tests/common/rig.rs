//! The resilience harness: one edgeslice configured key by key ([`Knobs`]) in
//! front of a demo origin ([`Rig`]), and the timing and body assertions the
//! retry, timeout, breaker, pool and client-limit tests share.
//!
//! Timing assertions are lower bounds of deliberate waits (a sleep can last
//! longer on a busy machine, never shorter) plus upper bounds loose enough for
//! any machine.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use edgeslice::server::runtime::Server;

use super::{object_bytes, start_server, DemoOrigin, HttpResponse};

/// How much earlier than asked a timer may fire (millisecond timer wheels).
pub const SLACK: Duration = Duration::from_millis(10);

/// One edgeslice configured key by key; `Default` is one worker, 16-byte
/// slices, window 4, 3 retries and the circuit breaker off (so that repeated
/// failures in one test are never cut short by it).
#[derive(Clone)]
pub struct Knobs {
    pub workers: usize,
    pub slice_size: u64,
    pub window: usize,
    pub max_retries: u32,
    pub breaker_failures: u32,
    /// Extra lines in `[server]`.
    pub server: String,
    /// Extra lines in `[origin]`.
    pub origin: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            workers: 1,
            slice_size: 16,
            window: 4,
            max_retries: 3,
            breaker_failures: 0,
            server: String::new(),
            origin: String::new(),
        }
    }
}

impl Knobs {
    pub fn retries(max_retries: u32) -> Knobs {
        Knobs {
            max_retries,
            ..Knobs::default()
        }
    }

    pub fn with_origin(mut self, lines: &str) -> Knobs {
        self.origin = lines.to_string();
        self
    }

    /// The configuration text of these knobs in front of `origin`.
    pub fn config_text(&self, origin: SocketAddr) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {}\ndriver = \"auto\"\n{}\n\
             [origin]\naddress = \"{origin}\"\nbreaker_failures = {}\n{}\n\
             [slice]\nslice_size = {}\nmax_concurrent_subrequests = {}\nmax_retries = {}\n\
             [cache]\nenabled = false\n",
            self.workers,
            self.server,
            self.breaker_failures,
            self.origin,
            self.slice_size,
            self.window,
            self.max_retries
        )
    }
}

/// Starts an edgeslice with `k` in front of `origin`.
pub fn proxy_for(origin: SocketAddr, k: &Knobs) -> Server {
    start_server(&k.config_text(origin))
}

/// An edgeslice in front of a demo origin; the proxy stops first.
pub struct Rig {
    pub server: Server,
    pub origin: DemoOrigin,
}

impl Rig {
    pub fn start(k: Knobs) -> Rig {
        let origin = DemoOrigin::start().expect("origin starts");
        let server = proxy_for(origin.addr(), &k);
        Rig { server, origin }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        super::get(self.addr(), target, headers).expect("a response from edgeslice")
    }

    /// Range headers the origin received, in arrival order.
    pub fn ranges(&self) -> Vec<String> {
        self.origin
            .requests()
            .into_iter()
            .map(|r| r.range.unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// How many origin requests asked for exactly `range`.
    pub fn asked(&self, range: &str) -> usize {
        self.ranges().iter().filter(|r| *r == range).count()
    }

    /// How many origin requests had a target containing `part`.
    pub fn requests_for(&self, part: &str) -> usize {
        self.origin
            .requests()
            .iter()
            .filter(|r| r.target.contains(part))
            .count()
    }

    /// A small GET on a fresh connection is served whole: the worker goes on.
    pub fn assert_still_serving(&self, what: &str) {
        let resp = self.get("/obj/16/alive", &[]);
        assert_eq!(resp.status, 200, "{what}: the proxy stopped serving");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.body, object_bytes("alive", 0, 15), "{what}");
    }
}

/// An address nothing listens on: connections to it are refused.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// The body is the first bytes of object `name` (of `len` bytes), cut short,
/// and at most `max` bytes long.
pub fn assert_prefix(resp: &HttpResponse, name: &str, len: u64, max: usize, what: &str) {
    assert!(!resp.complete, "{what}: expected an aborted body");
    let got = resp.body.len();
    assert!(
        got <= max,
        "{what}: got {got} body bytes, expected at most {max}"
    );
    assert!(
        (got as u64) < len,
        "{what}: got the whole {len}-byte object"
    );
    if got > 0 {
        assert!(
            resp.body == object_bytes(name, 0, got as u64 - 1),
            "{what}: the {got} delivered bytes are not the object's first bytes"
        );
    }
}

/// Runs `act` while a watcher records when each origin request arrives,
/// as offsets from just before `act`. The origin keeps no timestamps, so the
/// watcher polls its log every millisecond: a recorded offset is never
/// earlier than the arrival itself, which makes `offset >= sum of the
/// backoffs before it` a sound lower bound on any machine.
pub fn with_arrival_clock<T>(origin: &DemoOrigin, act: impl FnOnce() -> T) -> (T, Vec<Duration>) {
    let already = origin.request_count();
    let done = AtomicBool::new(false);
    let start = Instant::now();
    thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = already;
            let mut arrivals = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let now = origin.request_count();
                while seen < now {
                    arrivals.push(start.elapsed());
                    seen += 1;
                }
                if finished {
                    return arrivals;
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        let out = act();
        done.store(true, Ordering::SeqCst);
        (out, watcher.join().expect("the watcher does not panic"))
    })
}

/// `elapsed` is at least `wanted` (less the timer slack).
pub fn assert_at_least(elapsed: Duration, wanted: Duration, what: &str) {
    assert!(
        elapsed + SLACK >= wanted,
        "{what}: took {elapsed:?}, expected at least {wanted:?}"
    );
}

/// `elapsed` is under `bound`, a bound loose enough for any machine.
pub fn assert_under(elapsed: Duration, bound: Duration, what: &str) {
    assert!(
        elapsed < bound,
        "{what}: took {elapsed:?}, expected well under {bound:?}"
    );
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
