//! The slice cache: hits, coalescing, persistence, purge, freshness.

mod common;

use common::*;

fn cached(name: &str, slice_size: u64) -> Setup {
    Setup {
        slice_size,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    }
}

#[test]
fn miss_then_hit_with_no_origin_request() {
    let h = Harness::start(cached("hit", 4));
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
