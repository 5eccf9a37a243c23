//! A bounded soak: many concurrent clients over loopback, an origin failing a
//! fraction of its answers at random, and edgeslice in between.
//!
//! Every completed response must be byte-exact; every other one must be a 5xx
//! or a body cut short (whose bytes so far must still be exact); the proxy's
//! memory must stay bounded; and it must serve normally afterwards.
//!
//! Phase 1 runs with the cache on (the realistic path, over a working set
//! larger than the memory tier) and 10 % of origin answers failing, which the
//! proxy's retries mostly hide; then a short storm at 50 %, which they cannot,
//! so clients see 5xx answers and cut bodies. Phase 2 runs with the cache off
//! (every request reaches the origin) at 10 %. Defaults: 30 s, 5 s and 10 s,
//! under a minute in a debug build. `SOAK_SECS=N` sets phase 1 (the storm is
//! a sixth of it, phase 2 a third). Figures:
//! `cargo test --release --test soak -- --nocapture`.
//!
//! "Injected" failures are estimated from the origin's own rates applied to
//! the requests it received (the origin draws them at random and does not
//! record which it failed); the client-visible failures are counted exactly.
//!
//! The clients read bodies in pieces and compare each piece as it arrives, so
//! the test process's RSS is the proxy's (plus the origin's small buffers),
//! not the bodies'.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{object_bytes, read_some, CacheSetup, Harness, Setup};

/// Concurrent clients.
const CLIENTS: usize = 24;
/// Percent of origin answers that fail (`flaky=P`: P/2 % are 503s, and P/2 %
/// of the rest are cut mid-body, so about P % in all).
const FLAKY: u64 = 10;
/// A short storm in which retries cannot hide every failure, so clients see
/// 5xx and cut bodies and the breaker opens.
const STORM: u64 = 50;
/// Object sizes, 64 KiB to 4 MiB, some not a multiple of the slice size.
const SIZES: [u64; 6] = [
    64 << 10,
    (100 << 10) + 1,
    256 << 10,
    1 << 20,
    (3 << 19) + 7,
    4 << 20,
];
/// Distinct objects: about 290 MiB in all, more than the 64 MiB memory tier.
const OBJECTS: u64 = 252;
/// A response that takes longer than this is a stall, not a failure.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// How far the peak RSS may rise over the baseline.
const MEMORY_BOUND: u64 = 512 << 20;
/// Pieces in which bodies are read and checked.
const PIECE: usize = 64 * 1024;

fn phase_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

// ---------------------------------------------------------------------------
// What the clients count
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    completed: AtomicU64,
    bytes: AtomicU64,
    /// 5xx answers.
    errors: AtomicU64,
    /// Bodies cut short (or connections closed before a head).
    aborts: AtomicU64,
    wrong_bytes: AtomicU64,
    /// Anything that is neither right nor an allowed failure, described.
    unexpected: Mutex<Vec<String>>,
    /// The first allowed failures, described, to tell retries exhausted from a bug.
    failure_samples: Mutex<Vec<String>>,
}

impl Tally {
    fn unexpected(&self, what: String) {
        let mut list = self.unexpected.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() < 20 {
            list.push(what);
        }
    }

    fn failure(&self, what: String) {
        let mut list = self
            .failure_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if list.len() < 5 {
            list.push(what);
        }
    }

    fn failures(&self) -> u64 {
        self.errors.load(Ordering::Relaxed) + self.aborts.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// A streaming client that checks bodies piece by piece
// ---------------------------------------------------------------------------

/// One request: object `name` of `len` bytes, optionally a Range.
struct Ask {
    name: String,
    len: u64,
    range: Option<String>,
    /// The inclusive bytes expected, and whether the answer is a 206.
    want: (u64, u64),
    partial: bool,
}

/// How one exchange ended.
enum Outcome {
    /// The whole body arrived and the connection may be reused.
    Complete,
    /// A 5xx or a cut body: allowed, the connection is dropped.
    Failed,
    /// Not allowed: described.
    Unexpected(String),
}

fn random_ask(rng: &mut fastrand::Rng) -> Ask {
    let id = rng.u64(0..OBJECTS);
    let len = SIZES[(id % SIZES.len() as u64) as usize];
    let name = format!("soak-{id}");
    let full = Ask {
        name: name.clone(),
        len,
        range: None,
        want: (0, len - 1),
        partial: false,
    };
    let ranged = |range: String, first: u64, last: u64| Ask {
        name: name.clone(),
        len,
        range: Some(range),
        want: (first, last),
        partial: true,
    };
    match rng.u32(0..10) {
        0..=3 => full,
        4..=6 => {
            let a = rng.u64(0..len);
            let b = rng.u64(a..len);
            ranged(format!("bytes={a}-{b}"), a, b)
        }
        7 => {
            let a = rng.u64(0..len);
            // Past the end: clipped to the object.
            let b = a + rng.u64(0..2 * len);
            ranged(format!("bytes={a}-{b}"), a, b.min(len - 1))
        }
        8 => {
            let a = rng.u64(0..len);
            ranged(format!("bytes={a}-"), a, len - 1)
        }
        _ => {
            let n = rng.u64(1..=len + 10);
            ranged(format!("bytes=-{n}"), len - n.min(len), len - 1)
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(PIECE, stream))
}

/// Status and headers (lower-cased names) of one response head.
type Head = (u16, Vec<(String, String)>);

fn read_head(conn: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if conn.by_ref().take(8192).read_until(b'\n', &mut head)? == 0 {
            return Ok(None);
        }
        if !head.ends_with(b"\n") {
            return Ok(None);
        }
        if &head[start..] == b"\r\n" {
            break;
        }
        if head.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            let text = String::from_utf8_lossy(&head).into_owned();
            return Err(io::Error::new(io::ErrorKind::InvalidData, text));
        }
    }
    let headers = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some((response.code.unwrap_or(0), headers)))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Send `ask` on `conn` and check the answer as it streams in.
fn exchange(conn: &mut BufReader<TcpStream>, target: &str, ask: &Ask, tally: &Tally) -> Outcome {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: soak\r\n");
    if let Some(range) = &ask.range {
        request.push_str(&format!("Range: {range}\r\n"));
    }
    request.push_str("\r\n");
    let aborted = |at: &str| {
        tally.aborts.fetch_add(1, Ordering::Relaxed);
        tally.failure(format!("GET {target} Range {:?}: cut {at}", ask.range));
        Outcome::Failed
    };
    if conn.get_mut().write_all(request.as_bytes()).is_err() {
        return aborted("before the request was sent");
    }
    let what = || format!("GET {target} Range {:?}", ask.range);
    let (status, headers) = match read_head(conn) {
        Ok(Some(head)) => head,
        Ok(None) => return aborted("before the head"),
        Err(e) if timed_out(&e) => {
            return Outcome::Unexpected(format!("{}: no head within {READ_TIMEOUT:?}", what()))
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Outcome::Unexpected(format!("{}: malformed head {e}", what()))
        }
        Err(e) => return aborted(&format!("before the head: {e}")),
    };
    let expected_status = if ask.partial { 206 } else { 200 };
    if (500..600).contains(&status) {
        tally.errors.fetch_add(1, Ordering::Relaxed);
        tally.failure(format!("{}: status {status}", what()));
        return Outcome::Failed;
    }
    if status != expected_status {
        return Outcome::Unexpected(format!(
            "{}: got status {status}, expected {expected_status} (or a 5xx)",
            what()
        ));
    }
    let (first, last) = ask.want;
    let length = last - first + 1;
    let got_length = header(&headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if got_length != Some(length) {
        return Outcome::Unexpected(format!(
            "{}: got Content-Length {got_length:?}, expected {length}",
            what()
        ));
    }
    if ask.partial {
        let want = format!("bytes {first}-{last}/{}", ask.len);
        let got = header(&headers, "content-range");
        if got != Some(want.as_str()) {
            return Outcome::Unexpected(format!(
                "{}: got Content-Range {got:?}, expected {want:?}",
                what()
            ));
        }
    }
    let mut offset = first;
    let mut piece = vec![0u8; PIECE];
    while offset <= last {
        let want_now = ((last - offset + 1) as usize).min(PIECE);
        let n = match read_some(conn, &mut piece[..want_now]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                return Outcome::Unexpected(format!(
                    "{}: body stalled at byte {offset} for {READ_TIMEOUT:?}",
                    what()
                ))
            }
            Err(_) => break,
        };
        let expected = object_bytes(&ask.name, offset, offset + n as u64 - 1);
        let wrong = piece[..n]
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count() as u64;
        if wrong > 0 {
            tally.wrong_bytes.fetch_add(wrong, Ordering::Relaxed);
            tally.unexpected(format!(
                "{}: {wrong} wrong bytes in {offset}-{}",
                what(),
                offset + n as u64 - 1
            ));
        }
        tally.bytes.fetch_add(n as u64, Ordering::Relaxed);
        offset += n as u64;
    }
    if offset <= last {
        return aborted(&format!("at byte {offset} of {first}-{last}"));
    }
    tally.completed.fetch_add(1, Ordering::Relaxed);
    Outcome::Complete
}

/// Loop random requests against `addr` until `deadline`.
fn client(addr: SocketAddr, seed: u64, deadline: Instant, query: &str, tally: &Tally) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut conn: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        let ask = random_ask(&mut rng);
        let target = format!("/obj/{}/{}{query}", ask.len, ask.name);
        // Now and then a fresh connection, as a new client would open.
        if rng.u32(0..8) == 0 {
            conn = None;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(addr) {
                Ok(c) => c,
                Err(e) => {
                    tally.unexpected(format!("connect to edgeslice: {e}"));
                    return;
                }
            },
        };
        tally.requests.fetch_add(1, Ordering::Relaxed);
        match exchange(&mut c, &target, &ask, tally) {
            Outcome::Complete => conn = Some(c),
            Outcome::Failed => {}
            Outcome::Unexpected(what) => {
                tally.unexpected(what);
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// A `/proc/self/status` field in bytes (VmRSS, VmHWM).
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Samples VmRSS every 500 ms until stopped; returns the highest seen.
struct MemorySampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<u64>,
}

impl MemorySampler {
    fn start() -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut peak = proc_status_bytes("VmRSS");
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(proc_status_bytes("VmRSS"));
                thread::sleep(Duration::from_millis(500));
            }
            peak.max(proc_status_bytes("VmRSS"))
        });
        MemorySampler { stop, handle }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("memory sampler")
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

// ---------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------

struct Phase {
    requests: u64,
    completed: u64,
    bytes: u64,
    failed: u64,
    wrong_bytes: u64,
    origin_requests: u64,
    /// The origin's expected number of injected failures.
    injected: u64,
}

/// Run `CLIENTS` clients for `secs` against `h` with `flaky=P` origin
/// answers, then check nothing unexpected happened.
fn run_phase(h: &Harness, label: &str, flaky: u64, secs: u64) -> Phase {
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let origin_before = h.origin.request_count() as u64;
    let query = format!("?flaky={flaky}");
    let addr = h.addr();
    let threads: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            let tally = Arc::clone(&tally);
            let query = query.clone();
            thread::Builder::new()
                .name(format!("soak-client-{i}"))
                .spawn(move || client(addr, 0x50a4 + i, deadline, &query, &tally))
                .expect("client thread")
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread panicked");
    }
    let unexpected = tally.unexpected.lock().expect("tally").clone();
    let origin_requests = h.origin.request_count() as u64 - origin_before;
    let phase = Phase {
        requests: tally.requests.load(Ordering::Relaxed),
        completed: tally.completed.load(Ordering::Relaxed),
        bytes: tally.bytes.load(Ordering::Relaxed),
        failed: tally.failures(),
        wrong_bytes: tally.wrong_bytes.load(Ordering::Relaxed),
        origin_requests,
        injected: expected_injected(origin_requests, flaky),
    };
    eprintln!(
        "soak {label}, flaky={flaky}: {} requests ({} complete, {} 5xx, {} cut), {} MiB, \
         {} origin requests (~{} injected failures), {} wrong bytes",
        phase.requests,
        phase.completed,
        tally.errors.load(Ordering::Relaxed),
        tally.aborts.load(Ordering::Relaxed),
        mib(phase.bytes),
        phase.origin_requests,
        phase.injected,
        phase.wrong_bytes,
    );
    for sample in tally.failure_samples.lock().expect("tally").iter() {
        eprintln!("soak {label}, flaky={flaky}: allowed failure: {sample}");
    }
    assert!(unexpected.is_empty(), "soak {label}: {unexpected:#?}");
    assert_eq!(phase.wrong_bytes, 0, "soak {label}: wrong bytes delivered");
    assert!(
        flaky > FLAKY || phase.completed > phase.requests / 2,
        "soak {label}: only {} of {} requests completed",
        phase.completed,
        phase.requests
    );
    phase
}

/// The origin's own fault rates: `flaky=P` answers 503 with chance P/200 and,
/// of the rest, cuts the body with chance P/200.
fn expected_injected(origin_requests: u64, flaky: u64) -> u64 {
    let p = flaky as f64 / 200.0;
    (origin_requests as f64 * (p + (1.0 - p) * p)).round() as u64
}

/// A clean object, whole and in part, byte-exact. The breaker may have been
/// opened by a run of injected failures: wait out its 5 s cooldown.
fn assert_serves_normally(h: &Harness, name: &str) {
    let len = 3 * (64 << 10) + 5;
    let target = format!("/obj/{len}/{name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = h.get(&target, &[]);
        if resp.status == 503 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(250));
            continue;
        }
        assert_eq!(resp.status, 200, "after the soak: {target}");
        assert!(resp.complete);
        assert!(
            resp.body == object_bytes(name, 0, len - 1),
            "after the soak: {target} body"
        );
        break;
    }
    let part = h.get(&target, &[("Range", "bytes=65530-131080")]);
    assert_eq!(part.status, 206);
    assert!(part.body == object_bytes(name, 65530, 131080));
}

#[test]
fn soak_with_flaky_origin() {
    let secs = phase_secs();
    let baseline = proc_status_bytes("VmRSS");
    let sampler = MemorySampler::start();

    // Phase 1: cache on, then the storm.
    let cache = CacheSetup::fresh("soak");
    let cache_dir = cache.dir.clone();
    let cached = Harness::start(Setup {
        slice_size: 64 * 1024,
        window: 4,
        workers: 2,
        cache: Some(cache),
        ..Default::default()
    });
    let one = run_phase(&cached, "cache on", FLAKY, secs);
    let storm = run_phase(&cached, "cache on", STORM, (secs / 6).max(1));
    assert!(storm.failed > 0, "the storm should get past the retries");
    assert_serves_normally(&cached, "after-cached");
    drop(cached);
    let _ = std::fs::remove_dir_all(&cache_dir);

    // Phase 2: cache off, every request reaches the origin.
    let uncached = Harness::start(Setup {
        slice_size: 64 * 1024,
        window: 4,
        workers: 2,
        cache: None,
        ..Default::default()
    });
    let two = run_phase(&uncached, "cache off", FLAKY, (secs / 3).max(1));
    assert_serves_normally(&uncached, "after-uncached");
    drop(uncached);

    let peak = sampler.finish().max(proc_status_bytes("VmHWM"));
    let after = proc_status_bytes("VmRSS");
    let phases = [one, storm, two];
    let sum = |f: fn(&Phase) -> u64| phases.iter().map(f).sum::<u64>();
    let requests = sum(|p| p.requests);
    let bytes = sum(|p| p.bytes);
    let failed = sum(|p| p.failed);
    let origin = sum(|p| p.origin_requests);
    let injected = sum(|p| p.injected);
    let wrong = sum(|p| p.wrong_bytes);
    eprintln!(
        "soak memory: baseline RSS {} MiB, peak {} MiB, after {} MiB (bound: baseline + {} MiB)",
        mib(baseline),
        mib(peak),
        mib(after),
        mib(MEMORY_BOUND)
    );
    eprintln!(
        "soak: {requests} requests, {bytes} bytes, {failed} failed (origin injected ~{injected} \
         of {origin} origin requests), {wrong} wrong bytes, peak RSS {} MiB",
        mib(peak)
    );
    assert!(
        peak <= baseline + MEMORY_BOUND,
        "peak RSS {} MiB, expected at most baseline {} MiB + {} MiB",
        mib(peak),
        mib(baseline),
        mib(MEMORY_BOUND)
    );
}
