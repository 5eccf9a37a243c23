//! Operations: `/metrics` counters move by exactly the traffic sent, `/health`
//! turns 503 while draining, `/status` is JSON, routes pick origins by Host and
//! path, per-route slicing rules, the access log line's fields, SIGHUP reload
//! and `--check`.
//!
//! In-process servers where the admin listener is enough; the binary (as a
//! subprocess, killed on every path) where stderr or signals are the subject.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

/// Start edgeslice in-process from `text`.
fn start_server(text: &str) -> Server {
    let config = Config::from_toml(text).unwrap_or_else(|e| panic!("config: {e}\n{text}"));
    Server::start(&config).expect("edgeslice starts")
}

/// A directory removed when the test ends, pass or fail.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "edgeslice-ops-{}-{name}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Samples of a Prometheus text exposition, keyed `name{labels}` as written.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("metric line without a value: {l:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("metric value is not a number: {l:?}"));
            (key.to_string(), value)
        })
        .collect()
}

fn scrape(admin: SocketAddr) -> (String, HashMap<String, f64>) {
    let resp = get(admin, "/metrics", &[]).expect("GET /metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(resp.body).expect("metrics are UTF-8");
    let samples = parse_metrics(&text);
    (text, samples)
}

/// `after - before` for each key, a missing key being an error.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    let b = before
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing before"));
    let a = after
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing after"));
    a - b
}

/// Poll `f` every 10 ms until it returns `Some`, or panic after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {limit:?}: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A request through edgeslice with a Host header.
fn get_host(addr: SocketAddr, target: &str, host: &str) -> HttpResponse {
    get(addr, target, &[("Host", host)]).expect("request through edgeslice")
}

/// The Host header of each request an origin saw, in arrival order.
fn origin_hosts(origin: &DemoOrigin) -> Vec<String> {
    origin
        .requests()
        .iter()
        .map(|r| r.header("host").unwrap_or("-").to_string())
        .collect()
}

/// `edgeslice --config FILE` as a child process, killed when dropped; its
/// stderr is read on a thread so the pipe never fills.
struct Edgeslice {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl Edgeslice {
    fn start(config: &Path) -> Edgeslice {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslice"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgeslice binary starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening") {
                    if let Some(addr) = field(&line, "addr").and_then(|a| a.parse().ok()) {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut proc = Edgeslice {
            child,
            lines,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => proc.addr = addr,
            Err(_) => panic!(
                "edgeslice did not log its listening address; stderr:\n{}",
                proc.stderr()
            ),
        }
        proc
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Lines logged with target `edgeslice::ops::access`.
    fn access_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            // Text lines carry the target; JSON lines are bare objects.
            .filter(|l| l.contains("edgeslice::ops::access") || l.starts_with('{'))
            .cloned()
            .collect()
    }

    /// Wait until `n` access lines were logged, and return them.
    fn wait_access_lines(&self, n: usize) -> Vec<String> {
        wait_for(Duration::from_secs(10), "access log lines", || {
            let lines = self.access_lines();
            (lines.len() >= n).then_some(lines)
        })
    }

    /// Wait for a line containing `needle` beyond the first `skip` lines.
    fn wait_line(&self, skip: usize, needle: &str) -> String {
        wait_for(Duration::from_secs(10), needle, || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| l.contains(needle))
                .cloned()
        })
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the child this test started and still owns.
        assert_eq!(unsafe { kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for Edgeslice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGHUP: i32 = 1;

/// The value of `key=` in a tracing text line: bare, or quoted (Debug-escaped).
fn field(line: &str, key: &str) -> Option<String> {
    text_fields(line).remove(key)
}

/// Every `key=value` of a tracing text line.
fn text_fields(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A key starts after a space (or at the line start) and runs to '='.
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let key = &line[start..i];
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            let mut v = String::new();
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                v.push(bytes[i] as char);
                i += 1;
            }
            i += 1;
            v
        } else {
            let s = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            line[s..i].to_string()
        };
        out.insert(key.to_string(), value);
    }
    out
}

/// The config file of a subprocess test: one worker, no cache, `tail` appended.
fn subprocess_config(origin: SocketAddr, cache: Option<&Path>, tail: &str) -> String {
    let cache = match cache {
        Some(dir) => format!(
            "dir = {:?}\nmemory_bytes = \"16MiB\"\ndisk_bytes = \"64MiB\"\n",
            dir
        ),
        None => "enabled = false\n".into(),
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{origin}\"\n\
         [slice]\nslice_size = 4\n\
         [cache]\n{cache}{tail}"
    )
}

// ---------------------------------------------------------------------------
// 1. /metrics moves by exactly the traffic sent
// ---------------------------------------------------------------------------

/// Metrics before and after a known sequence of requests.
struct KnownTraffic {
    before: HashMap<String, f64>,
    after: HashMap<String, f64>,
    /// The scrape after, as text.
    text: String,
    /// Body bytes the four responses carried.
    sent: u64,
    /// Length of the POSTed (and echoed) body.
    posted: u64,
}

/// On a fresh cached server (S = 4, 2 workers, admin on): a full GET of a
/// 16-byte object (MISS, 4 slices), the same again (HIT), a POST to /echo
/// (pass-through), a GET answered 404 by the origin (relayed).
fn known_traffic(name: &str) -> KnownTraffic {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        workers: 2,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    };
    let _dir = TempDir(setup.cache.as_ref().unwrap().dir.clone());
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().expect("admin listener configured");
    let addr = server.local_addr();
    let (_, before) = scrape(admin);

    let miss = get(addr, "/obj/16/m", &[]).unwrap();
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.body, object_bytes("m", 0, 15));
    assert_eq!(origin.request_count(), 4, "{:?}", origin.requests());
    let hit = get(addr, "/obj/16/m", &[]).unwrap();
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, object_bytes("m", 0, 15));
    let echo_body = b"posted through edgeslice";
    let echo = HttpConnection::connect(addr)
        .and_then(|mut c| c.request("POST", "/echo/ops", &[], Some(echo_body)))
        .unwrap();
    assert_eq!(echo.status, 200);
    assert_eq!(echo.body, echo_body);
    let not_found = get(addr, "/status/404/x", &[]).unwrap();
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.body, b"status 404\n");
    // What reached the origin: 4 slices, the POST, the 404's probe.
    assert_eq!(origin.request_count(), 6, "{:?}", origin.requests());

    // Requests are counted when they end, just after their last byte went
    // out: wait until all four are, then compare.
    let (text, after) = wait_for(Duration::from_secs(5), "4 requests counted", || {
        let (text, after) = scrape(admin);
        let n = delta(&before, &after, "edgeslice_request_duration_seconds_count");
        (n >= 4.0).then_some((text, after))
    });
    eprintln!("--- /metrics after the known traffic ---\n{text}");
    drop(server);
    KnownTraffic {
        before,
        after,
        text,
        sent: (16 + 16 + echo_body.len() + not_found.body.len()) as u64,
        posted: echo_body.len() as u64,
    }
}

/// Assert the delta of every `(name{labels}, expected)`, reporting all that differ.
fn assert_deltas(t: &KnownTraffic, expected: &[(&str, f64)]) {
    let wrong: Vec<(&str, f64, f64)> = expected
        .iter()
        .map(|(k, want)| (*k, delta(&t.before, &t.after, k), *want))
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "metric deltas (name, got, expected) that differ: {wrong:?}\n{}",
        t.text
    );
}

#[test]
fn metrics_counters_move_by_exactly_the_known_traffic() {
    let t = known_traffic("ops-metrics");
    assert_deltas(
        &t,
        &[
            ("edgeslice_requests_total{outcome=\"sliced\"}", 2.0),
            // The POST and the relayed 404: no slices, no cache result.
            ("edgeslice_requests_total{outcome=\"pass_through\"}", 2.0),
            ("edgeslice_requests_total{outcome=\"error\"}", 0.0),
            ("edgeslice_responses_total{class=\"2xx\"}", 3.0),
            ("edgeslice_responses_total{class=\"4xx\"}", 1.0),
            ("edgeslice_responses_total{class=\"5xx\"}", 0.0),
            ("edgeslice_cache_requests_total{result=\"hit\"}", 1.0),
            ("edgeslice_cache_requests_total{result=\"miss\"}", 1.0),
            ("edgeslice_cache_requests_total{result=\"partial\"}", 0.0),
            ("edgeslice_cache_slices_total{result=\"hit\"}", 4.0),
            ("edgeslice_cache_slices_total{result=\"miss\"}", 4.0),
            ("edgeslice_client_sent_bytes_total", t.sent as f64),
            ("edgeslice_request_duration_seconds_count", 4.0),
            (
                "edgeslice_request_duration_seconds_bucket{le=\"+Inf\"}",
                4.0,
            ),
            ("edgeslice_time_to_first_byte_seconds_count", 4.0),
            ("edgeslice_origin_retries_total", 0.0),
            (
                "edgeslice_origin_received_bytes_total",
                (16 + "status 404\n".len()) as f64 + t.posted as f64,
            ),
        ],
    );
    assert_eq!(t.after["edgeslice_requests_in_flight"], 0.0);
    assert_eq!(t.after["edgeslice_origin_requests_in_flight"], 0.0);
}

#[test]
fn origin_requests_total_counts_every_request_sent_to_the_origin() {
    let t = known_traffic("ops-origin-requests");
    // 4 slices of the miss, the POST, the 404's probe: 6 requests reached the origin.
    assert_deltas(
        &t,
        &[
            ("edgeslice_origin_requests_total", 6.0),
            ("edgeslice_origin_request_duration_seconds_count", 6.0),
        ],
    );
}

// ---------------------------------------------------------------------------
// 2. /health and /status
// ---------------------------------------------------------------------------

#[test]
fn health_is_ok_while_serving_and_503_while_draining() {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4 << 20,
        ..Setup::default()
    };
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().unwrap();
    let addr = server.local_addr();
    let health = get(admin, "/health", &[]).unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");

    let client = thread::spawn(move || get(addr, "/stall/200000/s?stall_ms=1500", &[]));
    wait_for(
        Duration::from_secs(5),
        "the slow request reaches the origin",
        || (origin.request_count() > 0).then_some(()),
    );
    let drain_started = Instant::now();
    let stopper = thread::spawn(move || server.shutdown());
    let draining = wait_for(Duration::from_secs(1), "/health answers 503", || {
        get(admin, "/health", &[]).ok().filter(|r| r.status == 503)
    });
    assert_eq!(draining.body, b"draining\n");
    assert!(
        drain_started.elapsed() < Duration::from_millis(1400),
        "503 seen only after {:?}, not during the drain",
        drain_started.elapsed()
    );
    // Still draining: /status says so too.
    let status = get(admin, "/status", &[]).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(doc["health"], "draining", "{doc}");
    assert!(
        !stopper.is_finished(),
        "shutdown ended before the stalled response"
    );

    let resp = client.join().unwrap().expect("the in-flight response");
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the in-flight response was cut by the drain");
    assert_eq!(resp.body.len(), 200_000);
    stopper.join().unwrap();
}

#[test]
fn status_is_json_with_the_documented_fields() {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        workers: 2,
        cache: Some(CacheSetup::fresh("ops-status")),
        ..Setup::default()
    };
    let _dir = TempDir(setup.cache.as_ref().unwrap().dir.clone());
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().unwrap();
    let resp = get(admin, "/status", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&resp.body)));
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"), "{doc}");
    assert_eq!(doc["listen"], server.local_addr().to_string(), "{doc}");
    let workers = doc["workers"].as_array().expect("workers is an array");
    assert_eq!(workers.len(), 2, "{doc}");
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["id"], i as u64, "{doc}");
        assert!(w["core"].is_null(), "no pinning configured: {doc}");
    }
    let driver = format!("{:?}", server.driver());
    assert_eq!(doc["driver"], driver.as_str(), "{doc}");
    assert_eq!(doc["origin"], origin.addr().to_string(), "{doc}");
    assert!(doc["config_path"].is_null(), "started in-process: {doc}");
    assert_eq!(doc["cache"]["enabled"], true, "{doc}");
    assert_eq!(doc["cache"]["memory_bytes"], 64u64 << 20, "{doc}");
    assert!(doc["cache"]["memory_bytes_used"].is_u64(), "{doc}");
    assert!(doc["cache"]["disk_bytes_used"].is_u64(), "{doc}");
    assert!(doc["uptime_seconds"].is_u64(), "{doc}");
    assert_eq!(doc["health"], "ok", "{doc}");
    let other = get(admin, "/nope", &[]).unwrap();
    assert_eq!(other.status, 404);
    let post = HttpConnection::connect(admin)
        .and_then(|mut c| c.request("POST", "/metrics", &[], Some(b"x")))
        .unwrap();
    assert_eq!(post.status, 405);
}

// ---------------------------------------------------------------------------
// 3. Route selection
// ---------------------------------------------------------------------------

#[test]
fn routes_pick_the_origin_by_host_and_path_prefix() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let routes = format!(
        "[[route]]\nhost = \"*.b.test\"\norigin = \"{b}\"\n\
         [[route]]\npath_prefix = \"/c/\"\norigin = \"{b}\"\nhost_header = \"c-origin\"\n\
         [[route]]\nhost = \"exact.test\"\norigin = \"{b}\"\n",
        b = b.addr()
    );
    let server = start_server(&format!("{}{routes}", config_text(a.addr(), &setup)));
    let addr = server.local_addr();

    let resp = get_host(addr, "/obj/16/w", "x.b.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("w", 0, 15));
    assert_eq!(a.request_count(), 0, "A got {:?}", a.requests());
    assert_eq!(b.request_count(), 4, "{:?}", b.requests());
    assert_eq!(
        origin_hosts(&b),
        vec!["x.b.test"; 4],
        "the client's Host goes on"
    );
    b.clear();

    let resp = get_host(addr, "/obj/16/w", "deep.x.b.test:8080");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (0, 4));
    b.clear();

    // *.b.test does not take b.test itself, nor other hosts.
    for host in ["other.test", "b.test", "xb.test"] {
        let resp = get_host(addr, "/obj/8/d", host);
        assert_eq!(resp.status, 200, "{host}");
        assert_eq!(resp.body, object_bytes("d", 0, 7), "{host}");
        assert_eq!(b.request_count(), 0, "{host} went to B: {:?}", b.requests());
        assert_eq!(a.request_count(), 2, "{host}: {:?}", a.requests());
        assert_eq!(origin_hosts(&a), vec![host; 2]);
        a.clear();
    }

    // The path prefix route, with its own Host header at the origin.
    let resp = get_host(addr, "/c/obj/8/c", "other.test");
    assert_eq!(resp.status, 404, "the demo origin has no /c/ mode");
    assert_eq!(a.request_count(), 0, "A got {:?}", a.requests());
    let reqs = b.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].target, "/c/obj/8/c");
    assert_eq!(reqs[0].header("host"), Some("c-origin"));
    b.clear();
    let resp = get_host(addr, "/cc/obj/8/c", "other.test");
    assert_eq!(resp.status, 404);
    assert_eq!(
        (a.request_count(), b.request_count()),
        (1, 0),
        "/cc/ is not /c/"
    );
    a.clear();

    // Exact host: that host only, with any port.
    let resp = get_host(addr, "/obj/8/e", "EXACT.test:81");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (0, 2));
    b.clear();
    let resp = get_host(addr, "/obj/8/e", "x.exact.test");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (2, 0));
}

#[test]
fn without_a_default_origin_an_unmatched_host_gets_404() {
    let b = DemoOrigin::start().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [slice]\nslice_size = 4\n[cache]\nenabled = false\n\
         [[route]]\nhost = \"only.test\"\norigin = \"{}\"\n",
        b.addr()
    );
    let server = start_server(&text);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/8/o", "only.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("o", 0, 7));
    assert_eq!(b.request_count(), 2);
    b.clear();
    let resp = get_host(addr, "/obj/8/o", "elsewhere.test");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body, b"no route for this host and path\n");
    assert_eq!(b.request_count(), 0, "{:?}", b.requests());
}

#[test]
fn a_route_slices_with_its_own_slice_size() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let routes = format!(
        "[[route]]\nhost = \"eight.test\"\norigin = \"{}\"\nslice_size = 8\nmax_concurrent_subrequests = 1\n",
        b.addr()
    );
    let server = start_server(&format!("{}{routes}", config_text(a.addr(), &setup)));
    let resp = get_host(server.local_addr(), "/obj/20/s", "eight.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("s", 0, 19));
    let mut ranges: Vec<String> = b.requests().into_iter().filter_map(|r| r.range).collect();
    ranges.sort_by_key(|r| r[6..].split('-').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(ranges, slice_ranges(0..3, 8));
    assert_eq!(a.request_count(), 0);
    // The default route keeps [slice]'s 4 bytes.
    let resp = get_host(server.local_addr(), "/obj/8/s", "other.test");
    assert_eq!(resp.body, object_bytes("s", 0, 7));
    let mut ranges: Vec<String> = a.requests().into_iter().filter_map(|r| r.range).collect();
    ranges.sort();
    assert_eq!(ranges, slice_ranges(0..2, 4));
}

// ---------------------------------------------------------------------------
// 4. Per-route slicing rules
// ---------------------------------------------------------------------------

/// A server whose routes (all to `origin`) set one rule each, by Host.
fn rules_server(origin: &DemoOrigin) -> Server {
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let o = origin.addr();
    let routes = format!(
        "[[route]]\nhost = \"exclude.test\"\norigin = \"{o}\"\nexclude = [\"*.m3u8\"]\n\
         [[route]]\nhost = \"include.test\"\norigin = \"{o}\"\ninclude = [\"/obj/*\"]\n\
         [[route]]\nhost = \"min.test\"\norigin = \"{o}\"\nmin_slice_bytes = 1000\n"
    );
    start_server(&format!("{}{routes}", config_text(o, &setup)))
}

#[test]
fn excluded_paths_reach_the_origin_once_with_the_clients_range() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/100/x.m3u8", "exclude.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("x.m3u8", 0, 99));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range, None, "an excluded path got a slice Range");
    origin.clear();

    let resp = get(
        addr,
        "/obj/100/x.m3u8",
        &[("Host", "exclude.test"), ("Range", "bytes=10-29")],
    )
    .unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 10-29/100"));
    assert_eq!(resp.body, object_bytes("x.m3u8", 10, 29));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=10-29"));
    origin.clear();

    // Other paths on that route are still sliced.
    let resp = get_host(addr, "/obj/8/x.ts", "exclude.test");
    assert_eq!(resp.body, object_bytes("x.ts", 0, 7));
    assert_eq!(origin.request_count(), 2);
}

#[test]
fn only_included_paths_are_sliced() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/8/i", "include.test");
    assert_eq!(resp.body, object_bytes("i", 0, 7));
    let mut ranges: Vec<String> = origin
        .requests()
        .into_iter()
        .filter_map(|r| r.range)
        .collect();
    ranges.sort();
    assert_eq!(ranges, slice_ranges(0..2, 4));
    origin.clear();
    // `stall` without stall_ms serves like `obj`, on a path outside the pattern.
    let resp = get_host(addr, "/stall/8/i", "include.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("i", 0, 7));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
}

#[test]
fn objects_under_min_slice_bytes_are_fetched_whole_as_one_slice() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let resp = get_host(server.local_addr(), "/obj/100/small", "min.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("small", 0, 99));
    // The probe learns the length (100 < 1000); then the whole object is one
    // slice of min_slice_bytes: one request, cached whole when cacheable.
    let reqs = origin.requests();
    let ranges: Vec<Option<String>> = reqs.iter().map(|r| r.range.clone()).collect();
    assert_eq!(
        ranges,
        vec![
            Some("bytes=0-3".to_string()),
            Some("bytes=0-999".to_string())
        ],
        "{reqs:?}"
    );
    origin.clear();
    // The same object on the default route (min_slice_bytes = 0) is sliced.
    let resp = get_host(server.local_addr(), "/obj/100/small", "other.test");
    assert_eq!(resp.body, object_bytes("small", 0, 99));
    assert_eq!(origin.request_count(), 25);
}

// ---------------------------------------------------------------------------
// 5. Access log lines
// ---------------------------------------------------------------------------

/// Send a MISS, a HIT and a pass-through (POST) through `proc`.
fn miss_hit_pass(proc: &Edgeslice) -> usize {
    let miss = get(proc.addr, "/obj/16/log", &[]).unwrap();
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = get(proc.addr, "/obj/16/log", &[("Range", "bytes=2-9")]).unwrap();
    assert_eq!(hit.status, 206);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let body = b"0123456789";
    let post = HttpConnection::connect(proc.addr)
        .and_then(|mut c| c.request("POST", "/echo/log", &[], Some(body)))
        .unwrap();
    assert_eq!(post.body, body);
    body.len()
}

/// (field, expected) for the MISS, HIT and POST lines, in that order.
fn expected_access_fields(posted: usize) -> [Vec<(&'static str, String)>; 3] {
    let s = |v: &str| v.to_string();
    [
        vec![
            ("method", s("GET")),
            ("path", s("/obj/16/log")),
            ("range", s("-")),
            ("status", s("200")),
            ("bytes", s("16")),
            ("cache", s("MISS")),
            ("slices_cached", s("0")),
            ("slices_origin", s("4")),
            ("origin_attempts", s("4")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
        vec![
            ("method", s("GET")),
            ("path", s("/obj/16/log")),
            ("range", s("bytes=2-9")),
            ("status", s("206")),
            ("bytes", s("8")),
            ("cache", s("HIT")),
            ("slices_cached", s("3")),
            ("slices_origin", s("0")),
            ("origin_attempts", s("0")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
        vec![
            ("method", s("POST")),
            ("path", s("/echo/log")),
            ("range", s("-")),
            ("status", s("200")),
            ("bytes", posted.to_string()),
            ("cache", s("-")),
            ("slices_cached", s("0")),
            ("slices_origin", s("0")),
            ("origin_attempts", s("1")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
    ]
}

#[test]
fn text_access_log_lines_for_a_miss_a_hit_and_a_pass_through() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-text");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\naccess_log = true\nformat = \"text\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let posted = miss_hit_pass(&proc);
    let lines = proc.wait_access_lines(3);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, want) in lines.iter().zip(expected_access_fields(posted)) {
        assert!(line.contains(" INFO "), "access lines are INFO: {line}");
        let got = text_fields(line);
        for (key, value) in want {
            assert_eq!(got.get(key), Some(&value), "{key} in {line}");
        }
        let ms: f64 = got["ms"].parse().unwrap_or_else(|_| panic!("ms in {line}"));
        assert!((0.0..10_000.0).contains(&ms), "{line}");
    }
}

#[test]
fn json_access_log_lines_carry_the_same_fields() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-json");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\nformat = \"json\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let posted = miss_hit_pass(&proc);
    let lines = proc.wait_access_lines(3);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, want) in lines.iter().zip(expected_access_fields(posted)) {
        // Each JSON access line is a bare object, parseable on its own.
        assert!(line.starts_with('{'), "not a bare JSON line: {line}");
        let json = line.as_str();
        let doc: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 12, "{line}");
        for (key, value) in want {
            let got = match &doc[key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(got, value, "{key} in {line}");
        }
        assert!(doc["status"].is_u64() && doc["bytes"].is_u64(), "{line}");
        assert!(doc["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    }
}

/// A client that leaves mid-body is its own outcome, `client_abort`, not an
/// error; the line counts the slices fetched for it.
#[test]
fn a_client_that_leaves_is_logged_as_client_abort() {
    use std::io::{Read, Write};
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-abort");
    let conf = dir.path().join("edgeslice.toml");
    let tail = "[log]\nformat = \"json\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), None, tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let mut stream = std::net::TcpStream::connect(proc.addr).unwrap();
    stream
        .write_all(b"GET /obj/4194304/gone?delay_ms=2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(stream);
    let lines = proc.wait_access_lines(1);
    let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(doc["outcome"], "client_abort", "{}", lines[0]);
    assert_eq!(doc["status"], 200, "{}", lines[0]);
    let fetched = doc["slices_origin"].as_u64().unwrap();
    assert!(fetched >= 1, "{}", lines[0]);
    assert!(
        fetched as usize <= origin.request_count(),
        "more slices than origin requests: {}",
        lines[0]
    );
}

#[test]
fn access_log_off_writes_no_access_lines() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-off");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\naccess_log = false\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    miss_hit_pass(&proc);
    // A line logged after the requests ended: SIGHUP's reload line.
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    proc.wait_line(seen, "reloaded routes and limits");
    assert_eq!(proc.access_lines(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// 6. SIGHUP reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_adds_a_route_and_keeps_connections() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let dir = TempDir::new("reload");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(&conf, subprocess_config(a.addr(), None, "")).unwrap();
    let proc = Edgeslice::start(&conf);

    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (2, 0));
    a.clear();
    let mut kept = HttpConnection::connect(proc.addr).unwrap();
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "other.test")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    assert_eq!(a.request_count(), 2);
    a.clear();

    let route = format!("[[route]]\nhost = \"h.test\"\norigin = \"{}\"\n", b.addr());
    std::fs::write(&conf, subprocess_config(a.addr(), None, &route)).unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    proc.wait_line(seen, "reloaded routes and limits");

    // The connection opened before the reload still serves, with the new routes.
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "other.test")], None)
        .expect("keep-alive connection survives the reload");
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "h.test")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (2, 2));
    a.clear();
    b.clear();
    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (0, 2));
    b.clear();

    // An invalid file is refused and the running routes stay.
    let bad = format!(
        "[[route]]\nhost = \"h.test\"\norigin = \"{}\"\nslice_size = 0\n",
        a.addr()
    );
    std::fs::write(&conf, subprocess_config(a.addr(), None, &bad)).unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    let refused = proc.wait_line(seen, "reload refused");
    assert!(refused.contains("route[0].slice_size"), "{refused}");
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "h.test")], None)
        .expect("keep-alive connection survives a refused reload");
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (0, 4));
}

// ---------------------------------------------------------------------------
// 7. --check
// ---------------------------------------------------------------------------

fn check(conf: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(conf)
        .arg("--check")
        .env("NO_COLOR", "1")
        .output()
        .expect("edgeslice --check runs")
}

#[test]
fn check_prints_the_effective_configuration_with_defaults() {
    let dir = TempDir::new("check");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(&conf, "[origin]\naddress = \"127.0.0.1:8081\"\n").unwrap();
    let out = check(&conf);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "max_concurrent_subrequests = 4",
        "slice_size = 1048576",
        "address = \"127.0.0.1:8081\"",
        "access_log = true",
        "format = \"text\"",
        "shutdown_timeout_ms = 10000",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // What it prints is a configuration that loads to the same values.
    let body: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let printed = Config::from_toml(&body).expect("printed configuration is valid");
    let original = Config::load(&conf).unwrap();
    assert_eq!(printed, original);

    std::fs::write(
        &conf,
        "[origin]\naddress = \"127.0.0.1:8081\"\n[slice]\nslice_size = 0\n",
    )
    .unwrap();
    let out = check(&conf);
    assert!(!out.status.success(), "slice_size = 0 was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("slice.slice_size"), "{stderr}");

    std::fs::write(
        &conf,
        "[origin]\naddress = \"127.0.0.1:8081\"\n[[route]]\norigin = \"127.0.0.1:9\"\nmax_concurrent_subrequests = 0\n",
    )
    .unwrap();
    let out = check(&conf);
    assert!(!out.status.success(), "a route's window of 0 was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route[0].max_concurrent_subrequests"),
        "{stderr}"
    );
}
