//! Helpers of the cache tests: a cached [`Setup`], its directory removed when
//! the test ends, and `PURGE`.

use super::CacheSetup;
use super::{object_bytes, Harness, HttpConnection, HttpResponse, Setup, TempDir};

/// The default setup with `slice_size`-byte slices and a fresh cache of its own.
pub fn cached(name: &str, slice_size: u64) -> Setup {
    Setup {
        slice_size,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    }
}

/// Removes a test's cache directory when the test ends, pass or fail.
/// Declare it before the harness so the harness (and its store) goes first.
pub fn dir_guard(setup: &Setup) -> TempDir {
    TempDir(setup.cache.as_ref().expect("a cached setup").dir.clone())
}

/// `PURGE target` from 127.0.0.1 with `headers`.
pub fn purge(h: &Harness, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
    HttpConnection::connect(h.addr())
        .and_then(|mut c| c.request("PURGE", target, headers, None))
        .expect("PURGE through edgeslice")
}

/// GET `target` twice through `h`: whether the second answer came from the
/// cache without asking the origin (a stale one may be stored and asked
/// for with a conditional request: that is not a fresh hit), both bodies
/// checked against `name`'s 32 bytes.
pub fn second_is_hit(h: &Harness, target: &str, name: &str) -> bool {
    let first = h.get(target, &[]);
    assert_eq!(first.status, 200, "{target}");
    assert_eq!(first.body, object_bytes(name, 0, 31), "{target}");
    h.origin.clear();
    let again = h.get(target, &[]);
    assert_eq!(again.body, object_bytes(name, 0, 31), "{target}");
    let asked = h.origin.requests();
    let hit = asked.is_empty();
    if hit {
        assert_eq!(again.header("x-cache"), Some("HIT"), "{target}");
    } else if again.header("x-cache") == Some("HIT") {
        assert!(
            asked.iter().all(|r| r.header("if-none-match").is_some()),
            "{target}: a HIT that asked the origin must have validated it"
        );
    }
    hit
}
