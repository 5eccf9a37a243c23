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
