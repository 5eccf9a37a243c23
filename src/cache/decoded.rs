//! Decoded manifests, kept per worker thread.
//!
//! A request for a cached object reads its manifest's stored bytes (one
//! lookup in foyer's index, which also tells any worker about a purge or a new
//! version at once) but does not decode them again: each worker keeps the
//! manifests it decoded, keyed by store key, and reuses one while the stored
//! bytes are the same (their length and 128-bit xxh3: the bytes themselves
//! are not kept, so an entry foyer evicted holds no buffer here). Any change
//! to a manifest (a new generation after a purge, a new version, a refreshed
//! expiry) changes its bytes, so a stale decoding is never used. No lock:
//! the table is the worker's own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use http::HeaderMap;

use crate::cache::manifest::ObjectManifest;
use crate::http::object_version::ObjectVersion;

/// A manifest as a request uses it: decoded, with its version and the
/// headers to replay already built. Shared, never copied, by the requests
/// of one worker.
#[derive(Debug)]
pub struct Decoded {
    /// The manifest.
    pub manifest: ObjectManifest,
    /// [`ObjectManifest::version`].
    pub version: ObjectVersion,
    /// [`ObjectManifest::header_map`].
    pub headers: HeaderMap,
}

/// Fields an answer adds to the stored ones (Content-Length, Content-Range,
/// Accept-Ranges, Age, X-Cache, Cache-Status...): room for them is made
/// once here, so the copy each answer takes does not grow its table.
const ANSWER_FIELDS: usize = 8;

impl Decoded {
    fn new(manifest: ObjectManifest) -> Decoded {
        let mut headers = manifest.header_map();
        headers.reserve(ANSWER_FIELDS);
        Decoded {
            version: manifest.version(),
            headers,
            manifest,
        }
    }
}

/// Manifests one worker keeps decoded; past this the table starts over.
const KEPT: usize = 4096;

/// What the stored bytes of a decoded manifest were: length and xxh3-128.
type Seen = (usize, u128);

thread_local! {
    static DECODED: RefCell<HashMap<String, (Seen, Rc<Decoded>)>> = RefCell::default();
}

/// The manifest stored as `bytes` under `key`, decoded at most once per
/// worker while those bytes stay the same.
pub fn manifest(key: String, bytes: Bytes) -> Option<Rc<Decoded>> {
    DECODED.with(|table| {
        let mut table = table.borrow_mut();
        let seen = (bytes.len(), twox_hash::xxhash3_128::Hasher::oneshot(&bytes));
        if let Some((was, m)) = table.get(&key) {
            if *was == seen {
                crate::ops::metrics::with(|m| m.manifests_reused.inc());
                return Some(m.clone());
            }
        }
        let m = Rc::new(Decoded::new(ObjectManifest::decode(&bytes)?));
        if table.len() >= KEPT {
            table.clear();
        }
        table.insert(key, (seen, m.clone()));
        Some(m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::object_version::ObjectVersion;

    #[test]
    fn a_changed_manifest_is_decoded_again() {
        let version = ObjectVersion {
            len: 10,
            etag: None,
            last_modified: None,
        };
        let m = ObjectManifest::new(
            &version,
            4,
            &http::HeaderMap::new(),
            std::time::Duration::from_secs(60),
        );
        let first = Bytes::from(m.encode());
        let once = manifest("k".into(), first.clone()).unwrap();
        assert_eq!(once.manifest, m);
        let twice = manifest("k".into(), first).unwrap();
        assert!(Rc::ptr_eq(&once, &twice), "decoded again");
        let mut purged = m.clone();
        purged.generation = m.generation.wrapping_add(1);
        let changed = manifest("k".into(), Bytes::from(purged.encode())).unwrap();
        assert_eq!(changed.manifest.generation, purged.generation);
        assert!(manifest("k".into(), Bytes::from_static(b"not json")).is_none());
    }
}
