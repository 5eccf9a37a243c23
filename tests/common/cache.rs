//! Helpers of the cache tests: a cached [`Setup`], its directory removed when
//! the test ends, and `PURGE`.

use super::CacheSetup;
use super::{Harness, HttpConnection, HttpResponse, Setup, TempDir};

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
