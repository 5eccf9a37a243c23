//! Cache hits: a MISS then HITs with no origin request, across workers and
//! for partial overlaps; twenty cold clients coalesced into one origin
//! request per slice; each Vary variant cached on its own.

mod common;

use common::cache::*;
use common::*;

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

/// The origin names X-Variant in Vary: each variant is cached on its own, and
/// a purge of the object retires every variant.
#[test]
fn vary_caches_each_variant_on_its_own() {
    let setup = cached("vary", 4);
    let _dir = dir_guard(&setup);
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

/// A cached object larger than the socket buffers, read slowly through a
/// small receive buffer: the hit goes out by sendfile, which waits for the
/// socket to drain between calls, on both drivers; every byte is right and
/// no request reaches the origin. A client that then stops reading a hit is
/// dropped after `client_send_timeout_ms`, and the worker keeps serving.
#[test]
fn a_slow_reader_gets_every_byte_of_a_hit_on_both_drivers() {
    use edgeslice::config::DriverChoice;
    use std::io::Write;
    use std::time::{Duration, Instant};
    const LEN: u64 = 6 << 20;
    for driver in [DriverChoice::Legacy, DriverChoice::IoUring] {
        if driver == DriverChoice::IoUring && !monoio::utils::detect_uring() {
            eprintln!("io_uring is not available here: legacy driver only");
            continue;
        }
        let setup = Setup {
            driver,
            workers: 1,
            server: "client_send_timeout_ms = 400".into(),
            ..cached(&format!("slow-hit-{driver:?}"), 1 << 20)
        };
        let _dir = dir_guard(&setup);
        let h = Harness::start(setup);
        let target = "/obj/6291456/slow";
        let warm = h.get(target, &[]);
        assert_eq!(warm.header("x-cache"), Some("MISS"), "{driver:?}");
        h.origin.clear();

        let mut slow = small_buffer_client(h.addr());
        write!(slow, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut piece = vec![0u8; 32 * 1024];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let n = read_some(&mut slow, &mut piece).expect("reading the hit");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
            let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
            if head_end.is_some_and(|e| got.len() - e - 4 >= LEN as usize) {
                break;
            }
            // Slower than the proxy: its sendfile calls meet a full socket.
            std::thread::sleep(Duration::from_micros(300));
        }
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
        assert!(head.contains("x-cache: hit"), "{driver:?}: {head}");
        assert!(
            got[head_end..] == object_bytes("slow", 0, LEN - 1)[..],
            "{driver:?}: the hit's bytes differ ({} of {LEN})",
            got.len() - head_end
        );
        assert_eq!(
            h.origin.request_count(),
            0,
            "{driver:?}: {:?}",
            h.origin_ranges()
        );

        // Now a client that reads the head and stops: dropped after the send timeout.
        let mut stalled = small_buffer_client(h.addr());
        write!(stalled, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let n = read_some(&mut stalled, &mut piece).expect("the start of the hit");
        assert!(n > 0);
        std::thread::sleep(Duration::from_millis(1500));
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = n as u64;
        loop {
            match read_some(&mut stalled, &mut piece) {
                Ok(0) | Err(_) => break,
                Ok(n) => rest += n as u64,
            }
        }
        assert!(rest < LEN, "{driver:?}: a stalled client got the whole hit");
        let again = h.get(target, &[("Range", "bytes=1000-1999")]);
        assert_eq!(again.status, 206, "{driver:?}: the worker stopped serving");
        assert_eq!(again.body, object_bytes("slow", 1000, 1999));
    }
}

/// A client socket with a 32 KiB receive buffer, set before connecting.
fn small_buffer_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
}

/// A small slice tier (64 MiB) keeps what it has just stored while it has
/// room: four 8 MiB objects, each asked twice in a row, are a hit the
/// second time. Until 2026-12-07 the slice index had 8 shards here, each
/// with an S3-FIFO small queue (a tenth of the shard, where a slice seen
/// once waits) smaller than one 1 MiB slice: a slice just stored was the
/// first to go when its shard was full, and the third object's second
/// answer was PARTIAL.
#[test]
fn a_small_tier_keeps_what_it_just_stored() {
    const MIB: u64 = 1 << 20;
    let mut setup = cached("small-tier", MIB);
    if let Some(cache) = setup.cache.as_mut() {
        cache.memory_bytes = 16 * MIB;
        cache.disk_bytes = 64 * MIB;
    }
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for i in 0..4 {
        let path = format!("/obj/{}/small-tier-{i}", 8 * MIB);
        let first = h.get(&path, &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.header("x-cache"), Some("MISS"), "{path}");
        let again = h.get(&path, &[]);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{path} asked again");
        assert!(again.body == object_bytes(&format!("small-tier-{i}"), 0, 8 * MIB - 1));
    }
}
