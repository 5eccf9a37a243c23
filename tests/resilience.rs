//! Resilience, end to end: retries and their backoff, timeouts, cut and
//! refused origin connections, the circuit breaker, the origin pool, and
//! clients that send too much, too slowly, or stop reading.
//!
//! Each test starts its own demo origin (faults on demand through the query:
//! `fail=N`, `cut=N`, `stall_ms=N`, `delay_ms=N`) and its own edgeslice on
//! `127.0.0.1:0`, with one worker so pool and breaker state are those of one
//! runtime. Counts are asserted on what reached the origin. Timing assertions
//! are lower bounds of deliberate waits (a sleep can last longer on a busy
//! machine, never shorter) plus upper bounds loose enough for any machine.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{object_bytes, DemoOrigin, HttpConnection, HttpResponse};
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

/// How much earlier than asked a timer may fire (millisecond timer wheels).
const SLACK: Duration = Duration::from_millis(10);

/// One edgeslice configured key by key; `Default` is one worker, 16-byte
/// slices, window 4, 3 retries and the circuit breaker off (so that repeated
/// failures in one test are never cut short by it).
#[derive(Clone)]
struct Knobs {
    workers: usize,
    slice_size: u64,
    window: usize,
    max_retries: u32,
    breaker_failures: u32,
    /// Extra lines in `[server]`.
    server: String,
    /// Extra lines in `[origin]`.
    origin: String,
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
    fn retries(max_retries: u32) -> Knobs {
        Knobs {
            max_retries,
            ..Knobs::default()
        }
    }

    fn with_origin(mut self, lines: &str) -> Knobs {
        self.origin = lines.to_string();
        self
    }
}

fn config_text(origin: SocketAddr, k: &Knobs) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {}\ndriver = \"auto\"\n{}\n\
         [origin]\naddress = \"{origin}\"\nbreaker_failures = {}\n{}\n\
         [slice]\nslice_size = {}\nmax_concurrent_subrequests = {}\nmax_retries = {}\n\
         [cache]\nenabled = false\n",
        k.workers, k.server, k.breaker_failures, k.origin, k.slice_size, k.window, k.max_retries
    )
}

fn proxy_for(origin: SocketAddr, k: &Knobs) -> Server {
    let config = Config::from_toml(&config_text(origin, k)).expect("test config is valid");
    Server::start(&config).expect("edgeslice starts")
}

/// An edgeslice in front of a demo origin; the proxy stops first.
struct Rig {
    server: Server,
    origin: DemoOrigin,
}

impl Rig {
    fn start(k: Knobs) -> Rig {
        let origin = DemoOrigin::start().expect("origin starts");
        let server = proxy_for(origin.addr(), &k);
        Rig { server, origin }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn get(&self, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        common::get(self.addr(), target, headers).expect("a response from edgeslice")
    }

    /// Range headers the origin received, in arrival order.
    fn ranges(&self) -> Vec<String> {
        self.origin
            .requests()
            .into_iter()
            .map(|r| r.range.unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// How many origin requests asked for exactly `range`.
    fn asked(&self, range: &str) -> usize {
        self.ranges().iter().filter(|r| *r == range).count()
    }

    /// How many origin requests had a target containing `part`.
    fn requests_for(&self, part: &str) -> usize {
        self.origin
            .requests()
            .iter()
            .filter(|r| r.target.contains(part))
            .count()
    }

    /// A small GET on a fresh connection is served whole: the worker goes on.
    fn assert_still_serving(&self, what: &str) {
        let resp = self.get("/obj/16/alive", &[]);
        assert_eq!(resp.status, 200, "{what}: the proxy stopped serving");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.body, object_bytes("alive", 0, 15), "{what}");
    }
}

/// An address nothing listens on: connections to it are refused.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// `bytes=a-b` Range values of slices `indices` of size `s` (whole slices, as asked).
fn slice_ranges(indices: impl IntoIterator<Item = u64>, s: u64) -> Vec<String> {
    indices
        .into_iter()
        .map(|k| format!("bytes={}-{}", k * s, (k + 1) * s - 1))
        .collect()
}

/// The body is the first bytes of object `name` (of `len` bytes), cut short,
/// and at most `max` bytes long.
fn assert_prefix(resp: &HttpResponse, name: &str, len: u64, max: usize, what: &str) {
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
fn with_arrival_clock<T>(origin: &DemoOrigin, act: impl FnOnce() -> T) -> (T, Vec<Duration>) {
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
fn assert_at_least(elapsed: Duration, wanted: Duration, what: &str) {
    assert!(
        elapsed + SLACK >= wanted,
        "{what}: took {elapsed:?}, expected at least {wanted:?}"
    );
}

/// `elapsed` is under `bound`, a bound loose enough for any machine.
fn assert_under(elapsed: Duration, bound: Duration, what: &str) {
    assert!(
        elapsed < bound,
        "{what}: took {elapsed:?}, expected well under {bound:?}"
    );
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// Retries on server errors
// ---------------------------------------------------------------------------

/// 503 twice, then OK: the slice is asked again, the same Range each time,
/// until it succeeds, and the client gets the whole, correct answer.
#[test]
fn server_errors_are_retried_until_the_slice_succeeds() {
    // (what, target, request headers, slice size, status, body range,
    //  expected origin Ranges in order)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u64,
        u16,
        (u64, u64),
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "one-slice object, the probe fails twice",
            "/obj/16/a?fail=2",
            &[],
            16,
            200,
            (0, 15),
            vec!["bytes=0-15".to_string(); 3],
        ),
        (
            // The first origin request for the path is slice 2 of 4: the
            // failures land on a later slice of the object.
            "range from slice 2, slice 2 fails twice",
            "/obj/16/a?fail=2",
            &[("Range", "bytes=8-15")],
            4,
            206,
            (8, 15),
            [vec!["bytes=8-11".to_string(); 3], slice_ranges([3], 4)].concat(),
        ),
    ];
    for (what, target, headers, slice_size, status, (first, last), ranges) in cases {
        let rig = Rig::start(Knobs {
            slice_size,
            window: 1,
            ..Knobs::retries(3)
        });
        let resp = rig.get(target, headers);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        assert!(
            resp.body == object_bytes("a", first, last),
            "{what}: wrong body bytes"
        );
        assert_eq!(rig.ranges(), ranges, "{what}: origin requests");
    }
}

/// When retries run out on a 5xx, the last 5xx is relayed as the origin sent it.
#[test]
fn retries_running_out_relay_the_last_server_error() {
    let rig = Rig::start(Knobs::retries(1));
    let resp = rig.get("/obj/16/r?fail=3", &[]);
    assert_eq!(resp.status, 503);
    assert!(resp.complete);
    assert_eq!(resp.body, b"injected failure\n", "the origin's own body");
    assert_eq!(
        rig.ranges(),
        vec!["bytes=0-15".to_string(); 2],
        "1 + 1 retry"
    );
}

/// A 500 on every request: exactly 1 + max_retries attempts, then the 500.
#[test]
fn permanent_server_error_is_tried_one_plus_max_retries_times() {
    for max_retries in [0, 1, 3] {
        let rig = Rig::start(Knobs::retries(max_retries));
        let resp = rig.get("/status/500/x", &[]);
        assert_eq!(resp.status, 500, "max_retries {max_retries}");
        assert_eq!(resp.body, b"status 500\n", "max_retries {max_retries}");
        assert_eq!(
            rig.origin.request_count(),
            1 + max_retries as usize,
            "max_retries {max_retries}: origin attempts"
        );
    }
}

/// A 4xx is the origin's answer, not a failure: never retried.
#[test]
fn client_errors_are_never_retried() {
    let cases = [
        ("/status/404/x", 404),
        ("/status/403/x", 403),
        ("/obj/16/x?fail=9&fail_status=404", 404),
        ("/obj/16/y?fail=9&fail_status=429", 429),
    ];
    for (target, status) in cases {
        let rig = Rig::start(Knobs::retries(3));
        let resp = rig.get(target, &[]);
        assert_eq!(resp.status, status, "{target}");
        assert!(resp.complete, "{target}");
        assert_eq!(rig.origin.request_count(), 1, "{target}: origin attempts");
    }
}

// ---------------------------------------------------------------------------
// Backoff spacing
// ---------------------------------------------------------------------------

/// Retries after a 503 wait 100, 200, 400 ms: the n-th attempt cannot reach
/// the origin before the sum of the backoffs before it.
#[test]
fn backoff_after_server_errors_doubles_from_100_ms() {
    let rig = Rig::start(Knobs::retries(3));
    let (resp, arrivals) = with_arrival_clock(&rig.origin, || rig.get("/obj/16/b?fail=3", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == object_bytes("b", 0, 15));
    assert_eq!(arrivals.len(), 4, "1 + 3 retries: {arrivals:?}");
    let earliest = [0, 100, 300, 700];
    for (n, (got, want)) in arrivals.iter().zip(earliest).enumerate() {
        assert_at_least(*got, ms(want), &format!("attempt {}", n + 1));
    }
    assert_under(arrivals[3], ms(700 + 5000), "the fourth attempt");
}

/// A refused connection is retried once at once, then with the backoff:
/// with 3 retries the waits are 0, 100 and 200 ms.
#[test]
fn refused_connection_is_retried_at_once_then_with_backoff() {
    let closed = closed_port();
    // One retry: no wait at all. Timed as the fastest of five, so that one
    // descheduled thread cannot fail it; a 100 ms backoff would show in every one.
    let server = proxy_for(closed, &Knobs::retries(1));
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
            assert_eq!(resp.status, 502, "refused with one retry");
            started.elapsed()
        })
        .min()
        .unwrap();
    assert!(
        fastest < ms(100),
        "the first retry of a refused connection waited: fastest of five took {fastest:?}"
    );
    drop(server);
    // Then 100 ms, then 200 ms.
    for (max_retries, earliest) in [(2, 100), (3, 300)] {
        let server = proxy_for(closed, &Knobs::retries(max_retries));
        let started = Instant::now();
        let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 502, "max_retries {max_retries}");
        assert_at_least(elapsed, ms(earliest), &format!("max_retries {max_retries}"));
        assert_under(
            elapsed,
            ms(earliest + 5000),
            &format!("max_retries {max_retries}"),
        );
    }
}

/// Nothing listens at the origin: a short plain-text 502, whatever the retries.
#[test]
fn refused_origin_is_a_short_bad_gateway() {
    let closed = closed_port();
    for max_retries in [0, 3] {
        let server = proxy_for(closed, &Knobs::retries(max_retries));
        let started = Instant::now();
        let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(resp.status, 502, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.header("content-type"), Some("text/plain"), "{what}");
        assert!(
            !resp.body.is_empty() && resp.body.len() < 200 && resp.body.is_ascii(),
            "{what}: got body {:?}, expected a short explanation",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        // Backoffs 0 + 100 + 200 ms with three retries.
        let earliest = if max_retries == 3 { 300 } else { 0 };
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(earliest + 5000), &what);
    }
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

/// The origin holds its response head for 8 s; head_timeout_ms = 300 turns
/// each attempt into a timeout: 504 long before the origin would answer.
#[test]
fn origin_hanging_before_the_head_is_a_gateway_timeout() {
    // (max_retries, earliest answer in ms: timeouts + backoffs)
    for (max_retries, earliest) in [(0u32, 300), (1, 300 + 100 + 300)] {
        let rig = Rig::start(Knobs::retries(max_retries).with_origin("head_timeout_ms = 300"));
        let started = Instant::now();
        let resp = rig.get("/obj/16/h?delay_ms=8000", &[]);
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(resp.status, 504, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(
            rig.ranges(),
            vec!["bytes=0-15".to_string(); 1 + max_retries as usize],
            "{what}: origin attempts"
        );
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(6000), &what);
    }
}

/// The origin sends the head and half of every body, then stalls for 8 s.
/// The 200 head has gone out, so the connection is aborted after a correct
/// prefix; retries stall the same way and change nothing but the count.
#[test]
fn origin_hanging_mid_body_aborts_after_the_head() {
    const LEN: u64 = 4096;
    const S: u64 = 1024;
    // (max_retries, earliest abort in ms: read timeouts + backoffs)
    for (max_retries, earliest) in [(0u32, 300), (2, 300 + 100 + 300 + 200 + 300)] {
        let rig = Rig::start(Knobs {
            slice_size: S,
            ..Knobs::retries(max_retries).with_origin("read_timeout_ms = 300")
        });
        let started = Instant::now();
        let resp = rig.get("/obj/4096/m?stall_ms=8000", &[]);
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(
            resp.status, 200,
            "{what}: the head went out before the stall"
        );
        assert_eq!(resp.header("content-length"), Some("4096"), "{what}");
        // Slice 0 never completes: at most its first half reaches the client.
        assert_prefix(&resp, "m", LEN, S as usize / 2, &what);
        assert_eq!(
            rig.asked("bytes=0-1023"),
            1 + max_retries as usize,
            "{what}: attempts at slice 0"
        );
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(6000), &what);
        rig.assert_still_serving(&what);
    }
}

/// A stall shorter than read_timeout_ms but a slice longer than
/// slice_timeout_ms: the whole-slice deadline aborts it.
#[test]
fn slice_deadline_aborts_a_slow_slice() {
    let rig = Rig::start(Knobs {
        slice_size: 1024,
        ..Knobs::retries(0).with_origin("read_timeout_ms = 5000\nslice_timeout_ms = 400")
    });
    let started = Instant::now();
    let resp = rig.get("/obj/4096/d?stall_ms=3000", &[]);
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 200, "the head went out before the stall");
    // Without the deadline the stall would end and the body complete.
    assert_prefix(&resp, "d", 4096, 512, "slice deadline");
    assert_at_least(elapsed, ms(400), "slice deadline");
    assert_eq!(rig.asked("bytes=0-1023"), 1, "no retries allowed");
    rig.assert_still_serving("slice deadline");
}

// ---------------------------------------------------------------------------
// Cut connections
// ---------------------------------------------------------------------------

/// The origin sends half a slice and closes: that slice alone is asked again
/// (same Range), the client's answer resumes after the bytes it already has
/// and is complete and byte-exact.
#[test]
fn slice_cut_mid_body_is_fetched_again_and_resumed() {
    const LEN: u64 = 400_000;
    const S: u64 = 65_536;
    let all: Vec<u64> = (0..=(LEN - 1) / S).collect();
    // (what, target, request headers, status, body range, cut slice, slices asked)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
        (u64, u64),
        u64,
        Vec<u64>,
    );
    let cases: Vec<Case> = vec![
        (
            "full GET, slice 0 cut",
            "/obj/400000/c?cut=1",
            &[],
            200,
            (0, LEN - 1),
            0,
            all.clone(),
        ),
        (
            "range from slice 3, slice 3 cut",
            "/obj/400000/c?cut=1",
            &[("Range", "bytes=200000-399999")],
            206,
            (200_000, LEN - 1),
            3,
            vec![3, 4, 5, 6],
        ),
    ];
    for (what, target, headers, status, (first, last), cut, asked) in cases {
        let rig = Rig::start(Knobs {
            slice_size: S,
            ..Knobs::retries(3)
        });
        let resp = rig.get(target, headers);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}: the cut was not repaired");
        assert_eq!(resp.body.len() as u64, last - first + 1, "{what}");
        assert!(
            resp.body == object_bytes("c", first, last),
            "{what}: body bytes differ from the object"
        );
        let mut expected = slice_ranges(asked, S);
        expected.push(slice_ranges([cut], S)[0].clone());
        expected.sort();
        let mut got = rig.ranges();
        got.sort();
        // The last slice is short but asked for with a whole-slice Range.
        assert_eq!(
            got, expected,
            "{what}: one extra request, for the cut slice"
        );
    }
}

/// A second cut in a row is retried after the first backoff (100 ms); with
/// no retries allowed the cut aborts the response after a correct prefix.
#[test]
fn repeated_cuts_back_off_and_no_retries_abort() {
    const S: u64 = 65_536;
    let rig = Rig::start(Knobs {
        slice_size: S,
        ..Knobs::retries(3)
    });
    let started = Instant::now();
    let resp = rig.get("/obj/65536/k?cut=2", &[]);
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert!(resp.body == object_bytes("k", 0, S - 1));
    assert_eq!(rig.ranges(), vec!["bytes=0-65535".to_string(); 3]);
    assert_at_least(elapsed, ms(100), "cut, at once, cut, 100 ms, ok");

    let rig = Rig::start(Knobs {
        slice_size: S,
        ..Knobs::retries(0)
    });
    let resp = rig.get("/obj/131072/k?cut=1", &[]);
    assert_eq!(resp.status, 200, "the head went out before the cut");
    assert_prefix(&resp, "k", 131_072, S as usize / 2, "cut without retries");
    assert_eq!(rig.asked("bytes=0-65535"), 1, "no retries allowed");
    rig.assert_still_serving("cut without retries");
}

// ---------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------

/// One object that answers 5xx, or never answers, leaves every other object
/// alone: a 5xx shows the origin is up, and head timeouts of one target do
/// not open the breaker. Every failing request still reaches the origin.
#[test]
fn a_broken_object_never_opens_the_breaker() {
    let rig = Rig::start(Knobs {
        breaker_failures: 3,
        origin: "breaker_cooldown_ms = 60000\nhead_timeout_ms = 150".into(),
        ..Knobs::retries(0)
    });
    for n in 1..=8 {
        let resp = rig.get("/status/503/broken", &[]);
        assert_eq!(
            resp.body, b"status 503\n",
            "failure {n}: the origin's answer"
        );
        assert!(resp.header("date").is_some(), "failure {n}: no Date");
        assert_eq!(rig.requests_for("/status/503/broken"), n, "failure {n}");
    }
    for n in 1..=5 {
        let resp = rig.get("/obj/16/stuck?delay_ms=2000", &[]);
        assert_eq!(resp.status, 504, "stall {n}");
        assert_eq!(rig.requests_for("/obj/16/stuck"), n, "stall {n}");
    }
    let started = Instant::now();
    let resp = rig.get("/obj/16/healthy", &[]);
    assert_eq!(
        resp.status, 200,
        "another object, after its neighbours failed"
    );
    assert!(resp.body == object_bytes("healthy", 0, 15));
    assert!(started.elapsed() < ms(1000), "{:?}", started.elapsed());
}

/// A stopped origin: requests fail within the connect timeout, two refused
/// connects open the breaker, and then requests get 503 with Retry-After at
/// once while the cache keeps serving what it holds (fresh objects, and
/// stale ones within stale-if-error). Started again on its port, the origin
/// takes traffic within the cooldown plus a second.
#[test]
fn a_stopped_origin_opens_the_breaker_and_its_return_closes_it() {
    const COOLDOWN: u64 = 1000;
    const CONNECT: u64 = 500;
    let cache = common::CacheSetup::fresh("breaker");
    let origin = DemoOrigin::start().expect("origin starts");
    let addr = origin.addr();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{addr}\"\nbreaker_failures = 2\nbreaker_cooldown_ms = {COOLDOWN}\n\
         connect_timeout_ms = {CONNECT}\n\
         [slice]\nslice_size = 16\nmax_retries = 0\n\
         [cache]\ndir = {:?}\nmemory_bytes = 16777216\ndisk_bytes = 0\n",
        cache.dir
    );
    let server = Server::start(&Config::from_toml(&config).unwrap()).unwrap();
    let get = |target: &str| common::get(server.local_addr(), target, &[]).unwrap();
    assert_eq!(get("/obj/40/kept").status, 200);
    let stale = "/obj/40/old?cc=max-age=1,stale-if-error=600";
    assert_eq!(get(stale).status, 200);
    drop(origin);

    for n in 1..=2 {
        let started = Instant::now();
        let resp = get(&format!("/obj/16/cold{n}"));
        assert_eq!(resp.status, 502, "refused connect {n}");
        assert!(started.elapsed() < ms(CONNECT), "{:?}", started.elapsed());
    }
    let started = Instant::now();
    let resp = get("/obj/16/cold3");
    assert_eq!(resp.status, 503, "open breaker");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(resp.header("date").is_some());
    assert!(
        started.elapsed() < ms(200),
        "fail fast: {:?}",
        started.elapsed()
    );
    // What the cache holds is served while the origin is down.
    let resp = get("/obj/40/kept");
    assert_eq!(resp.status, 200, "a fresh cached object");
    assert!(resp.body == object_bytes("kept", 0, 39));
    assert_eq!(resp.header("x-cache"), Some("HIT"));
    assert!(resp.header("age").is_some());
    thread::sleep(ms(COOLDOWN + 100));
    let resp = get(stale);
    assert_eq!(resp.status, 200, "stale-if-error");
    assert!(resp.body == object_bytes("old", 0, 39));
    let status = resp.header("cache-status").unwrap_or("");
    assert!(status.contains("detail=stale-if-error"), "{status}");
    // That revalidation was the probe: it failed, so the breaker is open again.
    assert_eq!(get("/obj/16/cold4").status, 503);

    let back = DemoOrigin::start_on(addr).expect("the origin comes back on its port");
    let restarted = Instant::now();
    loop {
        let resp = get("/obj/16/back");
        if resp.status == 200 {
            assert!(resp.body == object_bytes("back", 0, 15));
            break;
        }
        assert_eq!(resp.status, 503, "while the breaker is still open");
        assert!(
            restarted.elapsed() < ms(COOLDOWN + 1000),
            "no success within the cooldown + 1 s"
        );
        thread::sleep(ms(50));
    }
    assert_eq!(get("/obj/16/after").status, 200, "traffic flows at once");
    assert_eq!(back.request_count(), 2);
    server.shutdown();
}

// ---------------------------------------------------------------------------
// Origin connection pool
// ---------------------------------------------------------------------------

/// Ten sequential one-slice requests share one kept-alive origin connection.
#[test]
fn origin_connections_are_kept_alive_and_reused() {
    let rig = Rig::start(Knobs::default());
    for i in 0..10 {
        let name = format!("p{i}");
        let resp = rig.get(&format!("/obj/16/{name}"), &[]);
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.body == object_bytes(&name, 0, 15), "{name}");
    }
    assert_eq!(rig.origin.request_count(), 10);
    let accepted = rig.origin.connections_accepted();
    assert_eq!(accepted, 1, "10 sequential requests, origin connections");
}

/// An idle origin connection older than pool_idle_timeout_ms is not reused.
#[test]
fn idle_origin_connections_expire() {
    let rig = Rig::start(Knobs::default().with_origin("pool_idle_timeout_ms = 200"));
    let connection_of_last = || rig.origin.requests().last().unwrap().connection;
    assert_eq!(rig.get("/obj/16/i1", &[]).status, 200);
    let first = connection_of_last();
    assert_eq!(rig.get("/obj/16/i2", &[]).status, 200);
    assert_eq!(connection_of_last(), first, "reused while fresh");
    let accepted = rig.origin.connections_accepted();
    thread::sleep(ms(400));
    assert_eq!(rig.get("/obj/16/i3", &[]).status, 200);
    assert_ne!(connection_of_last(), first, "reused after 400 ms idle");
    assert_eq!(
        rig.origin.connections_accepted(),
        accepted + 1,
        "a new connection"
    );
}

/// A connection whose answer was not read to its end (a stall past the read
/// timeout, a cut) never goes back to the pool: the next request is correct.
#[test]
fn unfinished_origin_answers_are_never_reused() {
    let rig = Rig::start(Knobs {
        slice_size: 1024,
        ..Knobs::retries(0).with_origin("read_timeout_ms = 300")
    });
    // A finished answer first, so the pool holds a good idle connection too.
    assert_eq!(rig.get("/obj/16/warm", &[]).status, 200);
    for (what, target) in [
        ("stalled past the read timeout", "/obj/1024/s?stall_ms=2000"),
        ("cut", "/obj/1024/c?cut=1"),
    ] {
        let resp = rig.get(target, &[]);
        assert_eq!(resp.status, 200, "{what}");
        assert!(!resp.complete, "{what}");
        let broken = rig.origin.requests().last().unwrap().connection;
        // Immediately after: a stale connection would hand on the rest of
        // the unfinished body as this answer's head or bytes.
        for name in ["after1", "after2", "after3"] {
            let resp = rig.get(&format!("/obj/1024/{name}"), &[]);
            assert_eq!(resp.status, 200, "{what}: {name}");
            assert!(resp.complete, "{what}: {name}");
            assert!(
                resp.body == object_bytes(name, 0, 1023),
                "{what}: {name}: wrong bytes"
            );
            let used = rig.origin.requests().last().unwrap().connection;
            assert_ne!(
                used, broken,
                "{what}: {name} went on the unfinished connection"
            );
        }
    }
}

/// A client that leaves mid-response: the next request is still correct.
#[test]
fn client_leaving_mid_body_leaves_the_pool_sound() {
    let rig = Rig::start(Knobs {
        slice_size: 8 << 20,
        ..Knobs::default()
    });
    let mut stream = TcpStream::connect(rig.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /obj/8388608/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut some = [0u8; 4096];
    let n = stream.read(&mut some).unwrap();
    assert!(n > 0 && some.starts_with(b"HTTP/1.1 200"));
    drop(stream);
    for i in 0..3 {
        let name = format!("next{i}");
        let resp = rig.get(&format!("/obj/100000/{name}"), &[]);
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.complete, "{name}");
        assert!(
            resp.body == object_bytes(&name, 0, 99_999),
            "{name}: wrong bytes"
        );
    }
}

// ---------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------

fn raw_once(addr: SocketAddr, wire: &[u8]) -> HttpResponse {
    HttpConnection::connect(addr)
        .expect("connect to edgeslice")
        .raw(wire)
        .expect("a response to the raw request")
}

/// Requests over a limit get 431/414/413 and bad ones 400, never reach the
/// origin, and the single worker goes on serving; requests exactly at a
/// limit pass.
#[test]
fn oversized_and_malformed_requests_get_a_4xx() {
    let rig = Rig::start(Knobs {
        server: "max_request_head_bytes = 1024\nmax_headers = 8\nmax_url_bytes = 64\n\
                 max_request_body_bytes = 1000"
            .into(),
        ..Knobs::default()
    });
    let headers = |n: usize| -> String {
        // Host plus n - 1 more.
        (1..n).map(|i| format!("X-H{i}: v\r\n")).collect()
    };
    let get_with = |target: &str, extra: &str| -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n").into_bytes()
    };
    let at_url_limit = format!("/obj/16/{}", "u".repeat(64 - 8));
    let over_url_limit = format!("/obj/16/{}", "u".repeat(65 - 8));
    let big_head = get_with("/obj/16/x", &format!("X-Big: {}\r\n", "a".repeat(1100)));
    let body_at_limit = [
        b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n".to_vec(),
        vec![b'b'; 1000],
    ]
    .concat();
    let chunked_over_limit = [
        b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n"
            .to_vec(),
        vec![b'b'; 1001],
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    // (what, wire, expected status, whether it reaches the origin)
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        ("head over max_request_head_bytes", big_head, 431, false),
        (
            "max_headers headers",
            get_with("/obj/16/x", &headers(8)),
            200,
            true,
        ),
        (
            "more than max_headers",
            get_with("/obj/16/x", &headers(9)),
            431,
            false,
        ),
        (
            "target of max_url_bytes",
            get_with(&at_url_limit, ""),
            200,
            true,
        ),
        (
            "target over max_url_bytes",
            get_with(&over_url_limit, ""),
            414,
            false,
        ),
        ("body of max_request_body_bytes", body_at_limit, 200, true),
        (
            // The body itself is not sent: the head alone must be refused.
            "Content-Length over max_request_body_bytes",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1001\r\n\r\n".to_vec(),
            413,
            false,
        ),
        (
            "chunked body over max_request_body_bytes",
            chunked_over_limit,
            413,
            false,
        ),
        (
            "malformed request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "header without a colon",
            b"GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
            false,
        ),
    ];
    for (what, wire, status, reaches_origin) in cases {
        rig.origin.clear();
        let resp = raw_once(rig.addr(), &wire);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        if status >= 400 {
            assert_eq!(resp.header("connection"), Some("close"), "{what}");
        }
        let reached = rig.origin.request_count() > 0;
        assert_eq!(reached, reaches_origin, "{what}: reached the origin");
        rig.assert_still_serving(what);
    }
}

/// Reads until the peer closes; `Err` if it has not within `limit`.
/// Returns the bytes read.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("still open after {limit:?}"))
            }
            // Reset or aborted: closed too.
            Err(_) => return Ok(got),
        }
    }
}

/// A client that sends half a request head and stops, or trickles it a
/// byte at a time, is closed after client_header_timeout_ms, and another
/// client is served meanwhile by the same single worker.
#[test]
fn slow_request_heads_are_closed_after_the_header_timeout() {
    let rig = Rig::start(Knobs {
        server: "client_header_timeout_ms = 300".into(),
        ..Knobs::default()
    });
    // Half a head, then silence.
    let started = Instant::now();
    let mut slow = TcpStream::connect(rig.addr()).unwrap();
    slow.write_all(b"GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    rig.assert_still_serving("while a head is half sent");
    let got = read_until_closed(&mut slow, Duration::from_secs(3)).expect("closed");
    let elapsed = started.elapsed();
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "got {:?}, expected a close (or a 408)",
        String::from_utf8_lossy(&got)
    );
    assert_at_least(elapsed, ms(300), "half a head");
    assert_under(elapsed, Duration::from_secs(3), "half a head");

    // A byte every 50 ms: each byte must not restart the timer; this head
    // would take over 3 s to arrive.
    let wire = b"GET /obj/16/trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut trickle = TcpStream::connect(rig.addr()).unwrap();
    let mut closed_after = None;
    for byte in wire.iter() {
        if trickle.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        thread::sleep(ms(50));
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    // Closed while the trickle went on, not 300 ms after its last byte.
    let elapsed = closed_after.expect("a trickled head still open after 2 s");
    let got = read_until_closed(&mut trickle, Duration::from_secs(3)).expect("closed");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "trickle: got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_at_least(elapsed, ms(300), "trickle");
    assert_eq!(
        rig.requests_for("trickle"),
        0,
        "a trickled head reached the origin"
    );
    rig.assert_still_serving("after the slow clients");
}

/// A client that reads the head and a few bytes of a 50 MiB answer, then
/// stops reading: the proxy does not buffer the object for it (the origin is
/// asked for a handful of slices, not 50), other clients are served, and
/// after client_send_timeout_ms the connection is closed.
#[test]
fn client_that_stops_reading_is_dropped_without_buffering_the_object() {
    const MIB: u64 = 1 << 20;
    const LEN: u64 = 50 * MIB;
    let rig = Rig::start(Knobs {
        slice_size: MIB,
        window: 4,
        server: "client_send_timeout_ms = 300".into(),
        ..Knobs::default()
    });
    // A small receive buffer, set before connecting, keeps the kernel from
    // soaking up megabytes on the client's behalf.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&rig.addr().into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    stalled
        .write_all(b"GET /obj/52428800/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 8192 {
        let n = stalled.read(&mut buf).expect("the start of the answer");
        assert!(n > 0, "closed before the first bytes");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&seen[..64])
    );
    // Now stop reading. Other clients are served meanwhile.
    for i in 0..3 {
        rig.assert_still_serving(&format!("while a client stalls ({i})"));
    }
    thread::sleep(Duration::from_millis(2500));
    let asked = rig.requests_for("/big");
    // Resume reading: a proxy that gave up closes after what was in flight.
    let rest = read_until_closed(&mut stalled, Duration::from_secs(20)).expect("closed");
    let mut all = seen;
    all.extend_from_slice(&rest);
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let body = &all[head_end..];
    assert!(
        (body.len() as u64) < LEN,
        "the whole object was delivered: the stalled connection was never closed"
    );
    assert!(
        body == object_bytes("big", 0, body.len() as u64 - 1).as_slice(),
        "the bytes delivered are not the object's first bytes"
    );
    // A slice is asked for only once it is within the window of the slice
    // being delivered: at most the slices the client got (whole or in part)
    // plus the window.
    let delivered_slices = (body.len() as u64).div_ceil(MIB) as usize;
    assert!(
        asked <= delivered_slices + 4 && asked < 50,
        "a stalled client made the proxy ask the origin for {asked} of 50 slices, \
         expected at most the {delivered_slices} it was sent plus the window (4)"
    );
    assert_eq!(
        rig.requests_for("/big"),
        asked,
        "slices asked after the close"
    );
}

/// With max_connections = 2 on one worker, a third connection is closed at
/// once without an answer; once one of the two closes, a new one is served.
#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let rig = Rig::start(Knobs {
        server: "max_connections = 2".into(),
        ..Knobs::default()
    });
    let mut held: Vec<HttpConnection> = (0..2)
        .map(|i| {
            let mut c = HttpConnection::connect(rig.addr()).unwrap();
            let resp = c.request("GET", "/obj/16/held", &[], None).unwrap();
            assert_eq!(resp.status, 200, "held connection {i}");
            c
        })
        .collect();
    let mut third = TcpStream::connect(rig.addr()).unwrap();
    // The write may already fail: the proxy closed it.
    let _ = third.write_all(b"GET /obj/16/third HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let got = read_until_closed(&mut third, Duration::from_secs(5))
        .expect("the third connection is closed at once");
    assert!(
        got.is_empty(),
        "the third connection got an answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    // The held ones still work.
    let resp = held[1].request("GET", "/obj/16/held", &[], None).unwrap();
    assert_eq!(resp.status, 200, "a held connection");
    // Close one; the worker notices and serves a new connection.
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let served = HttpConnection::connect(rig.addr())
            .and_then(|mut c| c.request("GET", "/obj/16/new", &[], None));
        match served {
            Ok(resp) => {
                assert_eq!(resp.status, 200);
                assert!(resp.body == object_bytes("new", 0, 15));
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no new connection served after one of two closed: {e}"
            ),
        }
        thread::sleep(ms(20));
    }
    assert_eq!(
        rig.requests_for("/third"),
        0,
        "the refused connection reached the origin"
    );
}
