//! The slice cache: hits, coalescing, persistence, purge, freshness.

mod common;

use common::*;
use edgeslice::demo::origin::versioned_name;

fn cached(name: &str, slice_size: u64) -> Setup {
    Setup {
        slice_size,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    }
}

#[test]
fn miss_then_hit_with_no_origin_request() {
    let setup = cached("hit", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let first = h.get("/obj/30/a", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, object_bytes("a", 0, 29));
    assert_eq!(h.origin.request_count(), 8);
    h.origin.clear();
    for _ in 0..4 {
        let again = h.get("/obj/30/a", &[]);
        assert_eq!(again.header("x-cache"), Some("HIT"));
        assert_eq!(again.body, object_bytes("a", 0, 29));
        let part = h.get("/obj/30/a", &[("Range", "bytes=5-17")]);
        assert_eq!(part.status, 206);
        assert_eq!(part.header("x-cache"), Some("HIT"));
        assert_eq!(part.body, object_bytes("a", 5, 17));
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

/// Removes a test's cache directory when the test ends, pass or fail.
/// Declare it before the harness so the harness (and its store) goes first.
struct CacheDirGuard(std::path::PathBuf);

impl Drop for CacheDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir_guard(setup: &Setup) -> CacheDirGuard {
    CacheDirGuard(setup.cache.as_ref().expect("a cached setup").dir.clone())
}

/// `PURGE target` from 127.0.0.1 with `headers`.
fn purge(h: &Harness, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
    HttpConnection::connect(h.addr())
        .and_then(|mut c| c.request("PURGE", target, headers, None))
        .expect("PURGE through edgeslice")
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Sleep until a little after the next whole second, so the few requests
/// that follow all fall within one second of the cache's 1 s clock.
fn sleep_to_second_start() {
    let now = unix_seconds();
    let until = now.floor() + 1.03;
    std::thread::sleep(std::time::Duration::from_secs_f64(until - now));
}

/// Sleep until an answer fetched by `fetched_by` (unix seconds) with
/// `max-age=max_age` is stale whether the cache counts in whole seconds or
/// not; lands just after a whole second, so the next second is left for the
/// requests that follow.
fn sleep_until_stale(fetched_by: f64, max_age: u64) {
    let until = (fetched_by + max_age as f64 + 0.2).ceil() + 0.03;
    let now = unix_seconds();
    if until > now {
        std::thread::sleep(std::time::Duration::from_secs_f64(until - now));
    }
}

#[test]
fn hit_on_a_request_that_arrived_at_another_worker() {
    let setup = Setup {
        workers: 2,
        ..cached("workers", 4)
    };
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let first = h.get("/obj/64/w", &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, object_bytes("w", 0, 63));
    h.origin.clear();
    // Each get is a new connection; SO_REUSEPORT spreads them over both workers.
    for i in 0..30 {
        let again = h.get("/obj/64/w", &[]);
        assert_eq!(again.header("x-cache"), Some("HIT"), "request {i}");
        assert_eq!(again.body, object_bytes("w", 0, 63), "request {i}");
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

#[test]
fn partial_overlap_fetches_only_the_missing_slices() {
    let setup = cached("overlap", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let head = h.get("/obj/40/p", &[("Range", "bytes=0-11")]);
    assert_eq!(head.status, 206);
    assert_eq!(head.header("x-cache"), Some("MISS"));
    assert_eq!(head.body, object_bytes("p", 0, 11));
    assert_eq!(h.origin_ranges_sorted(), slice_ranges(0..3, 4));
    h.origin.clear();
    let full = h.get("/obj/40/p", &[]);
    assert_eq!(full.status, 200);
    assert_eq!(full.header("x-cache"), Some("PARTIAL"));
    assert_eq!(full.body, object_bytes("p", 0, 39));
    assert_eq!(h.origin_ranges_sorted(), slice_ranges(3..10, 4));
}

/// Twenty clients GET `target` (8 MiB, named `name`) at the same moment;
/// every body must be exact.
fn twenty_cold_clients(h: &Harness, target: &str, name: &str) {
    let expected = object_bytes(name, 0, (8 << 20) - 1);
    let barrier = std::sync::Barrier::new(20);
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    h.get(target, &[])
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            let resp = client.join().expect("client thread");
            assert_eq!(resp.status, 200, "client {i}");
            assert!(resp.complete, "client {i}: body cut short");
            assert!(resp.body == expected, "client {i}: wrong body");
        }
    });
}

fn coalescing_setup(name: &str) -> Setup {
    Setup {
        workers: 2,
        ..cached(name, 1 << 20)
    }
}

#[test]
fn twenty_concurrent_cold_clients_get_exact_bytes() {
    let setup = coalescing_setup("coalesce-bytes");
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    twenty_cold_clients(&h, "/obj/8388608/cb?delay_ms=50", "cb");
    // Exactly once per slice is asserted by the test below.
    assert!(h.origin.request_count() >= 8);
}

#[test]
fn twenty_concurrent_cold_clients_cause_one_origin_request_per_slice() {
    let setup = coalescing_setup("coalesce");
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    twenty_cold_clients(&h, "/obj/8388608/c?delay_ms=50", "c");
    assert_eq!(
        h.origin_ranges_sorted(),
        slice_ranges(0..8, 1 << 20),
        "each slice exactly once"
    );
    assert_eq!(h.origin.request_count(), 8);
}

/// The same race made likely: busy threads slow the store's cross-thread
/// lookups, widening the window between a miss and joining the flight.
#[test]
fn coalescing_holds_under_cpu_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let setup = coalescing_setup("coalesce-load");
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let spinners = std::thread::available_parallelism().map_or(4, |n| n.get());
        for _ in 0..spinners {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        // Stops the spinners on every path, a failed assertion included.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        for round in 0..30 {
            h.origin.clear();
            let name = format!("load{round}");
            twenty_cold_clients(&h, &format!("/obj/8388608/{name}?delay_ms=50"), &name);
            assert_eq!(
                h.origin_ranges_sorted(),
                slice_ranges(0..8, 1 << 20),
                "round {round}: each slice exactly once"
            );
        }
    });
}

#[test]
fn graceful_restart_keeps_the_cache() {
    let setup = cached("restart", 64 << 10);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup.clone());
    let objects = [
        ("/obj/1000/r1", "r1", 1000),
        ("/obj/1048576/r2", "r2", 1 << 20),
    ];
    for (target, name, len) in objects {
        let first = h.get(target, &[]);
        assert_eq!(first.header("x-cache"), Some("MISS"), "{target}");
        assert_eq!(first.body, object_bytes(name, 0, len - 1), "{target}");
    }
    let h = h.restart(&setup);
    h.origin.clear();
    for (target, name, len) in objects {
        let again = h.get(target, &[]);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(again.body, object_bytes(name, 0, len - 1), "{target}");
        let part = h.get(target, &[("Range", "bytes=100-899")]);
        assert_eq!(part.status, 206, "{target}");
        assert_eq!(part.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(part.body, object_bytes(name, 100, 899), "{target}");
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

/// The real binary as a subprocess, killed with SIGKILL when dropped.
struct ProxyProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl ProxyProcess {
    fn start(config: &std::path::Path) -> ProxyProcess {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslice"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgeslice starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads stderr to its end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening") {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("addr="))
                    {
                        let _ = tx.send(addr.to_string());
                    }
                }
            }
        });
        let mut process = ProxyProcess {
            child,
            addr: "127.0.0.1:0".parse().expect("an address"),
        };
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("edgeslice logs its listening address");
        process.addr = addr.parse().expect("listening address parses");
        process
    }

    /// SIGKILL: no drain, no flush.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("killed child is reaped");
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every object fully and in a few ranges: the bytes must be exact, whatever
/// X-Cache says (a killed process may lose recent slices, never corrupt them).
fn check_exact(addr: std::net::SocketAddr, objects: &[(&str, &str, u64)]) {
    for &(target, name, len) in objects {
        let full = get(addr, target, &[]).expect("GET through edgeslice");
        assert_eq!(full.status, 200, "{target}");
        assert!(full.complete, "{target}: body cut short");
        assert!(
            full.body == object_bytes(name, 0, len - 1),
            "{target}: wrong bytes (X-Cache {:?})",
            full.header("x-cache")
        );
        for (a, b) in [
            (0, 0),
            (len / 3, len / 2),
            (len - 1, len - 1),
            (1, len.saturating_sub(2)),
        ] {
            if b < a || b >= len {
                continue;
            }
            let range = format!("bytes={a}-{b}");
            let part = get(addr, target, &[("Range", &range)]).expect("ranged GET");
            assert_eq!(part.status, 206, "{target} {range}");
            assert!(
                part.body == object_bytes(name, a, b),
                "{target} {range}: wrong bytes (X-Cache {:?})",
                part.header("x-cache")
            );
        }
    }
}

#[test]
fn sigkill_then_restart_serves_exact_bytes() {
    use std::io::{Read, Write};
    let setup = Setup {
        workers: 2,
        ..cached("sigkill", 64 << 10)
    };
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().expect("origin starts");
    std::fs::create_dir_all(&setup.cache.as_ref().unwrap().dir).expect("cache dir");
    let config = setup
        .cache
        .as_ref()
        .unwrap()
        .dir
        .join("edgeslice-test.toml");
    std::fs::write(&config, config_text(origin.addr(), &setup)).expect("config written");
    let objects = [
        ("/obj/1/k1", "k1", 1),
        ("/obj/1000/k2", "k2", 1000),
        ("/obj/65536/k3", "k3", 65536),
        ("/obj/300001/k4", "k4", 300_001),
        ("/obj/2097152/k5", "k5", 2 << 20),
    ];

    let first = ProxyProcess::start(&config);
    check_exact(first.addr, &objects);
    first.kill();
    let second = ProxyProcess::start(&config);
    check_exact(second.addr, &objects);

    // Killed during a transfer: the slices in flight are never stored half.
    let big = ("/obj/8388608/big?delay_ms=20", "big", 8u64 << 20);
    let mut conn = std::net::TcpStream::connect(second.addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(conn, "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", big.0).expect("request sent");
    let mut seen = 0;
    let mut buf = vec![0; 64 << 10];
    while seen < 512 << 10 {
        let n = conn.read(&mut buf).expect("response bytes");
        assert!(n > 0, "edgeslice closed after {seen} bytes");
        seen += n;
    }
    second.kill();
    drop(conn);
    let third = ProxyProcess::start(&config);
    let mut all = objects.to_vec();
    all.push(big);
    check_exact(third.addr, &all);
    // And once more, when the big object is surely cached.
    check_exact(third.addr, &all);
}

#[test]
fn ttl_expiry_revalidates_once_for_the_whole_object() {
    let setup = cached("ttl", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/obj/32/t?cc=max-age=1";
    let first = h.get(target, &[]);
    let fetched_by = unix_seconds();
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, object_bytes("t", 0, 31));
    h.origin.clear();
    sleep_until_stale(fetched_by, 1);
    let stale = h.get(target, &[]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, object_bytes("t", 0, 31));
    let requests = h.origin.requests();
    assert_eq!(
        requests.len(),
        1,
        "one revalidation: {:?}",
        h.origin_ranges()
    );
    assert!(
        requests[0].header("if-none-match").is_some(),
        "revalidation is conditional: {:?}",
        requests[0].headers
    );
    assert_eq!(requests[0].range.as_deref(), Some("bytes=0-3"));
    // The demo origin answered 304, so every slice is still good.
    assert_eq!(stale.header("x-cache"), Some("HIT"));
    h.origin.clear();
    let again = h.get(target, &[]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, object_bytes("t", 0, 31));
    assert_eq!(h.origin.request_count(), 0, "freshness was renewed");
}

#[test]
fn changed_before_expiry_serves_the_old_version_and_after_expiry_the_new_never_a_mix() {
    let setup = cached("changed", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/mut/32/m?cc=max-age=1";
    let v0 = object_bytes(&versioned_name("m", 0), 0, 31);
    let v1 = object_bytes(&versioned_name("m", 1), 0, 31);
    assert_ne!(v0, v1);
    // Start at the top of a second, so the cache stays fresh for what follows.
    sleep_to_second_start();
    let first = h.get(target, &[]);
    let fetched_by = unix_seconds();
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, v0);
    h.origin.set_version("m", 1);
    h.origin.clear();
    // Changed before expiry: the cache is fresh, so the old version is served.
    let fresh = h.get(target, &[]);
    assert_eq!(fresh.header("x-cache"), Some("HIT"));
    assert_eq!(fresh.body, v0);
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());

    sleep_until_stale(fetched_by, 1);
    let changed = h.get(target, &[]);
    assert_eq!(changed.status, 200);
    assert!(
        changed.body == v1,
        "after expiry: got {:?}, expected version 1 {:?} (version 0 is {:?})",
        changed.body,
        v1,
        v0
    );
    // One conditional request finds the change, then all 8 slices anew.
    assert_eq!(h.origin.request_count(), 9, "{:?}", h.origin_ranges());
    h.origin.clear();
    let after = h.get(target, &[]);
    assert_eq!(after.header("x-cache"), Some("HIT"));
    assert_eq!(after.body, v1);
    let part = h.get(target, &[("Range", "bytes=3-29")]);
    assert_eq!(part.header("x-cache"), Some("HIT"));
    assert_eq!(part.body, v1[3..=29].to_vec());
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

#[test]
fn purge_refetches_every_slice_also_across_restarts() {
    let setup = cached("purge", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup.clone());
    let target = "/obj/32/g";
    let body = object_bytes("g", 0, 31);
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("HIT"));
    h.origin.clear();

    let purged = purge(&h, target, &[]);
    assert_eq!(purged.status, 200);
    assert_eq!(purged.body, b"purged\n");
    assert_eq!(
        h.origin.request_count(),
        0,
        "PURGE does not reach the origin"
    );
    let refetched = h.get(target, &[]);
    assert_eq!(refetched.header("x-cache"), Some("MISS"));
    assert_eq!(refetched.body, body);
    // One revalidation (a 304) plus every slice of the new generation.
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 9, "{:?}", h.origin_ranges());
    let conditional: Vec<_> = requests
        .iter()
        .filter(|r| r.header("if-none-match").is_some())
        .collect();
    assert_eq!(conditional.len(), 1, "{:?}", h.origin_ranges());
    let mut slices: Vec<_> = h.origin_ranges_sorted();
    slices.dedup();
    assert_eq!(slices, slice_ranges(0..8, 4));

    // Purged then refetched: a hit, also after a restart.
    h.origin.clear();
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("HIT"));
    let h = h.restart(&setup);
    let hit = h.get(target, &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, body);
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());

    // Purged, restarted: the old generation's slices are not served.
    assert_eq!(purge(&h, target, &[]).status, 200);
    let h = h.restart(&setup);
    let after = h.get(target, &[]);
    assert_eq!(after.header("x-cache"), Some("MISS"));
    assert_eq!(after.body, body);
    assert_eq!(h.origin.request_count(), 9, "{:?}", h.origin_ranges());

    let unknown = purge(&h, "/obj/32/never-fetched", &[]);
    assert_eq!(unknown.status, 404);
}

#[test]
fn purge_without_a_cache_is_404() {
    let h = Harness::start(Setup::default());
    assert_eq!(h.get("/obj/8/x", &[]).status, 200);
    assert_eq!(purge(&h, "/obj/8/x", &[]).status, 404);
}

#[test]
fn purge_from_an_address_not_allowed_needs_the_token() {
    let setup = cached("token", 4);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().expect("origin starts");
    // [cache] is the last table of the harness config: these lines extend it.
    let text = config_text(origin.addr(), &setup) + "purge_allow = []\npurge_token = \"s3cret\"\n";
    let config = edgeslice::config::Config::from_toml(&text).expect("config is valid");
    let server = edgeslice::server::runtime::Server::start(&config).expect("edgeslice starts");
    let h = Harness { origin, server };
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("MISS"));
    assert_eq!(purge(&h, "/obj/16/k", &[]).status, 403);
    let wrong = purge(&h, "/obj/16/k", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 403);
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("HIT"));
    let ok = purge(&h, "/obj/16/k", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200);
    h.origin.clear();
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.origin.request_count(), 5, "{:?}", h.origin_ranges());
}

#[test]
fn uncacheable_answers_reach_the_origin_every_time() {
    let setup = cached("nostore", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for cc in ["no-store", "private", "no-cache"] {
        let target = format!("/obj/16/n-{cc}?cc={cc}");
        let name = format!("n-{cc}");
        for round in 0..2 {
            h.origin.clear();
            let resp = h.get(&target, &[]);
            assert_eq!(resp.status, 200, "{cc} round {round}");
            assert_eq!(resp.header("x-cache"), Some("MISS"), "{cc} round {round}");
            assert_eq!(resp.body, object_bytes(&name, 0, 15), "{cc} round {round}");
            assert_eq!(
                h.origin_ranges_sorted(),
                slice_ranges(0..4, 4),
                "{cc} round {round}"
            );
        }
    }
}

const KIB: u64 = 1 << 10;

/// Eight 512 KiB objects (2 slices of 256 KiB each) through a 1 MiB memory
/// tier: 4 MiB passes through, the last object (512 KiB) fits easily.
/// (A 1 MiB object could never be whole in a 1 MiB tier: keys weigh too.)
/// With `limit`, the memory tier is checked against it after every object.
fn fill_eight_objects(h: &Harness, limit: Option<u64>) -> Vec<String> {
    let targets: Vec<String> = (0..8).map(|i| format!("/obj/524288/e{i}")).collect();
    for (i, target) in targets.iter().enumerate() {
        let resp = h.get(target, &[]);
        assert_eq!(resp.header("x-cache"), Some("MISS"), "{target}");
        assert!(resp.body == object_bytes(&format!("e{i}"), 0, 512 * KIB - 1));
        if let Some(limit) = limit {
            assert_memory_within(h, limit);
        }
    }
    targets
}

/// The memory tier holds at most `limit` bytes (keys included), plus a little slack.
fn assert_memory_within(h: &Harness, limit: u64) {
    let usage = h.server.cache().unwrap().store.memory_usage() as u64;
    assert!(
        usage <= limit + 16 * KIB,
        "memory tier holds {usage} bytes, expected at most {limit}"
    );
}

#[test]
fn memory_limit_is_respected_and_old_objects_are_evicted() {
    let mut setup = cached("memlimit", 256 * KIB);
    let cache = setup.cache.as_mut().unwrap();
    cache.memory_bytes = 1 << 20;
    cache.disk_bytes = 0;
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let targets = fill_eight_objects(&h, Some(1 << 20));
    h.origin.clear();
    let last = h.get(&targets[7], &[]);
    assert_eq!(last.header("x-cache"), Some("HIT"));
    assert!(last.body == object_bytes("e7", 0, 512 * KIB - 1));
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
    let first = h.get(&targets[0], &[]);
    assert_ne!(first.header("x-cache"), Some("HIT"), "e0 was evicted");
    assert!(first.body == object_bytes("e0", 0, 512 * KIB - 1));
    assert!(h.origin.request_count() > 0);
    assert_memory_within(&h, 1 << 20);
}

#[test]
fn disk_tier_keeps_what_memory_evicts() {
    let mut setup = cached("disktier", 256 * KIB);
    let cache = setup.cache.as_mut().unwrap();
    cache.memory_bytes = 1 << 20;
    cache.disk_bytes = 64 << 20;
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let targets = fill_eight_objects(&h, None);
    h.origin.clear();
    for (i, target) in targets.iter().enumerate() {
        let resp = h.get(target, &[]);
        assert_eq!(resp.header("x-cache"), Some("HIT"), "{target}");
        assert!(resp.body == object_bytes(&format!("e{i}"), 0, 512 * KIB - 1));
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

/// The origin names X-Variant in Vary: each variant is cached on its own, and
/// a purge of the object retires every variant.
#[test]
fn vary_caches_each_variant_on_its_own() {
    let setup = cached("vary", 4);
    let h = Harness::start(setup);
    let target = "/obj/16/v?vary=X-Variant";
    let get = |variant: &str| h.get(target, &[("X-Variant", variant)]);
    let blue = get("blue");
    assert_eq!(blue.header("x-cache"), Some("MISS"));
    assert_eq!(blue.header("x-origin-variant"), Some("blue"));
    let red = get("red");
    assert_eq!(
        red.header("x-cache"),
        Some("MISS"),
        "red is another variant"
    );
    assert_eq!(red.header("x-origin-variant"), Some("red"));
    h.origin.clear();
    for (variant, resp) in [("blue", get("blue")), ("red", get("red"))] {
        assert_eq!(resp.header("x-cache"), Some("HIT"), "{variant}");
        assert_eq!(resp.header("x-origin-variant"), Some(variant));
        assert_eq!(resp.body, object_bytes("v", 0, 15));
    }
    assert_eq!(h.origin.request_count(), 0);
    let mut conn = HttpConnection::connect(h.addr()).unwrap();
    assert_eq!(
        conn.request("PURGE", target, &[], None).unwrap().status,
        200
    );
    h.origin.clear();
    assert_eq!(get("blue").header("x-cache"), Some("MISS"));
    assert_eq!(get("red").header("x-cache"), Some("MISS"));
    assert!(h.origin.request_count() > 0);
}

/// stale-if-error (RFC 5861): past its expiry, with the origin down, the
/// cached object is still served within the window the origin gave; without
/// the window the client gets an error.
#[test]
fn stale_if_error_serves_the_cached_object_while_the_origin_is_down() {
    let setup = cached("stale-if-error", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let with_window = "/obj/16/sie?cc=max-age=1,stale-if-error=600";
    let without = "/obj/16/nowin?cc=max-age=1";
    let fetched_by = unix_seconds();
    assert_eq!(h.get(with_window, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.get(without, &[]).header("x-cache"), Some("MISS"));
    sleep_until_stale(fetched_by, 1);
    let Harness { origin, server } = h;
    drop(origin); // the origin is down: connections are refused
    let stale = get(server.local_addr(), with_window, &[]).expect("an answer");
    assert_eq!(stale.status, 200);
    assert!(stale.complete);
    assert_eq!(stale.body, object_bytes("sie", 0, 15));
    let gone = get(server.local_addr(), without, &[]).expect("an answer");
    assert!(gone.status >= 500, "got {}, expected a 5xx", gone.status);
    server.shutdown();
}

/// stale-while-revalidate (RFC 5861): past its expiry the object is served at
/// once, and one conditional request refreshes it in the background.
#[test]
fn stale_while_revalidate_serves_at_once_and_refreshes_in_the_background() {
    let setup = cached("swr", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/obj/16/swr?cc=max-age=1,stale-while-revalidate=600";
    let fetched_by = unix_seconds();
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("MISS"));
    sleep_until_stale(fetched_by, 1);
    h.origin.clear();
    let stale = h.get(target, &[]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("x-cache"), Some("HIT"));
    assert_eq!(stale.body, object_bytes("swr", 0, 15));
    // The background revalidation: one conditional request, answered 304.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while h.origin.request_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].header("if-none-match").is_some());
}

/// Read `/obj/{len}/{name}?delay_ms=10` as consecutive one-slice ranges, the
/// way a player does; returns (seconds, X-Cache values).
fn read_sequentially(h: &Harness, name: &str, slices: u64, s: u64) -> (f64, Vec<String>) {
    let target = format!("/obj/{}/{name}?delay_ms=10", slices * s);
    let started = std::time::Instant::now();
    let mut caches = Vec::new();
    for k in 0..slices {
        let range = format!("bytes={}-{}", k * s, (k + 1) * s - 1);
        let resp = h.get(&target, &[("Range", range.as_str())]);
        assert_eq!(resp.status, 206);
        assert_eq!(
            resp.body,
            object_bytes(name, k * s, (k + 1) * s - 1),
            "{range}"
        );
        caches.push(resp.header("x-cache").unwrap_or("-").to_string());
        // A player consumes what it got before asking for more.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (started.elapsed().as_secs_f64(), caches)
}

/// Sequential prefetch: a reader asking range after range finds the next
/// slices already cached; each slice still reaches the origin exactly once;
/// random access prefetches nothing.
#[test]
fn sequential_readers_are_prefetched_random_ones_are_not() {
    const S: u64 = 64 * 1024;
    const SLICES: u64 = 24;
    let plain = cached("no-prefetch", S);
    let _d1 = dir_guard(&plain);
    let h = Harness::start(plain);
    let (without, caches) = read_sequentially(&h, "seq", SLICES, S);
    assert!(caches.iter().all(|c| c == "MISS"), "{caches:?}");

    let mut setup = cached("prefetch", S);
    setup.extra = String::new();
    let _d2 = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\nprefetch_slices = 4\n")
        + "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    let (with, caches) = read_sequentially(&h, "seq", SLICES, S);
    let hits = caches.iter().filter(|c| *c == "HIT").count();
    assert!(
        hits >= (SLICES as usize) / 2,
        "prefetched ranges should be hits: {caches:?}"
    );
    let mut ranges = h.origin_ranges();
    ranges.sort();
    ranges.dedup();
    assert_eq!(
        ranges.len(),
        h.origin.request_count(),
        "every slice fetched once"
    );
    let metrics = get(h.server.admin_addr().unwrap(), "/metrics", &[]).unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    let (prefetched, used) = (
        value("edgeslice_prefetch_slices_total"),
        value("edgeslice_prefetch_used_total"),
    );
    assert!(prefetched > 0 && used <= prefetched);
    eprintln!(
        "prefetch: {SLICES} sequential 64 KiB ranges, 10 ms origin: {without:.2} s without, \
         {with:.2} s with prefetch_slices = 4 ({:.1}x); {hits} of {SLICES} were hits; \
         prefetched {prefetched}, used {used}, waste {}",
        without / with,
        prefetched - used
    );

    // Random access: ranges that do not start where the last one ended.
    h.origin.clear();
    let target = format!("/obj/{}/rnd", SLICES * S);
    for k in [7u64, 2, 15, 11] {
        let range = format!("bytes={}-{}", k * S + 5, k * S + 9);
        assert_eq!(h.get(&target, &[("Range", range.as_str())]).status, 206);
    }
    assert_eq!(
        h.origin.request_count(),
        4,
        "random access prefetches nothing"
    );
    h.server.shutdown();
}

/// Small-object fast path: an object under `min_slice_bytes` is fetched and
/// cached whole, as a single slice, and later served from it in one piece.
#[test]
fn small_objects_are_cached_whole_as_one_slice() {
    let setup = cached("small", 4);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\nmin_slice_bytes = 4096\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    let first = h.get("/obj/100/tiny", &[]);
    assert_eq!(first.body, object_bytes("tiny", 0, 99));
    assert_eq!(h.origin_ranges(), vec!["bytes=0-3", "bytes=0-4095"]);
    h.origin.clear();
    let again = h.get("/obj/100/tiny", &[("Range", "bytes=10-89")]);
    assert_eq!(again.status, 206);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, object_bytes("tiny", 10, 89));
    assert_eq!(h.origin.request_count(), 0);
    h.server.shutdown();
}

/// Origins that ignore Range (a 200 with a length), give no length at all
/// (chunked), or give no total (`bytes a-b/*`): the answer is relayed whole,
/// cut into slices on the way, and later requests are served sliced from the
/// cache.
#[test]
fn whole_answers_are_cut_into_slices_for_later_requests() {
    let setup = cached("whole", 4096);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // (target, object, length, origin requests of the first GET)
    for (target, name, len, first_requests) in [
        ("/norange/10000/nr", "nr", 10_000u64, 1),
        ("/chunked/100000/ck", "ck", 100_000, 1),
        // 206 with `bytes a-b/*`: then the whole object, without a Range.
        ("/nolen/10000/nl", "nl", 10_000, 2),
    ] {
        h.origin.clear();
        let first = h.get(target, &[]);
        assert_eq!(first.status, 200, "{target}");
        assert_eq!(first.body, object_bytes(name, 0, len - 1), "{target}");
        assert_eq!(h.origin.request_count(), first_requests, "{target}");
        h.origin.clear();
        let again = h.get(target, &[]);
        assert_eq!(again.status, 200, "{target}");
        assert_eq!(again.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(
            again.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(again.body, object_bytes(name, 0, len - 1), "{target}");
        let part = h.get(target, &[("Range", "bytes=5000-9999")]);
        assert_eq!(part.status, 206, "{target}");
        assert_eq!(part.body, object_bytes(name, 5000, 9999), "{target}");
        assert_eq!(
            h.origin.request_count(),
            0,
            "{target}: served from the cache"
        );
    }
}

/// `cut_whole_answers = false`: a whole answer is relayed only, not cached.
#[test]
fn whole_answers_are_only_relayed_when_cutting_is_off() {
    let setup = cached("whole-off", 4096);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\ncut_whole_answers = false\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    for _ in 0..2 {
        let resp = h.get("/norange/10000/off", &[]);
        assert_eq!(resp.body, object_bytes("off", 0, 9999));
    }
    assert_eq!(h.origin.request_count(), 2, "nothing was cached");
    h.server.shutdown();
}
