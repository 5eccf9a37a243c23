//! Whole answers into slices: origins that ignore Range (a 200 to a slice
//! request, with or without a length).
//!
//! The answer is relayed to the client as it is and, when cacheable, cut into
//! slices on the way; each full slice is stored as soon as it is complete, so
//! memory holds at most one slice. The object's length is learned at the end,
//! when the manifest is written, marked `whole_only`: later requests are
//! served sliced from the cache, and since such slices cannot be fetched one
//! by one, a manifest with a missing slice is forgotten and the object
//! relayed (and cut) again. A transfer that breaks leaves no manifest.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use crate::cache::freshness::vary_names;
use crate::cache::manifest::{Raw, StaleWindows};
use crate::cache::{ObjectKey, ObjectManifest, SliceCache};
use crate::http::object_version::ObjectVersion;

/// Cuts a relayed body into slices and stores them.
pub struct Filler {
    cache: Arc<SliceCache>,
    key: ObjectKey,
    /// For an answer that varies: the object's base key and the request
    /// headers that chose the variant `key` is.
    variant_of: Option<(ObjectKey, HeaderMap)>,
    generation: u64,
    slice_size: u64,
    /// Past this many bytes the answer is only relayed (see [`Filler::new`]).
    limit: u64,
    pending: BytesMut,
    index: u64,
    total: u64,
}

impl Filler {
    /// A filler for the object `base`, cut in slices of `slice_size`, when
    /// the answer (`headers`, as the origin sent them: its announced
    /// length is read here) may be cached. An answer that varies is stored
    /// as the variant `request_headers` choose (the key known before its
    /// first slice is stored, from the object's stored list of headers). An
    /// answer longer than `limit` (announced, or as it comes: an endless
    /// one) stops being stored there and leaves no manifest, so one answer
    /// cannot flush the cache.
    pub async fn new(
        cache: Arc<SliceCache>,
        base: ObjectKey,
        request_headers: &HeaderMap,
        (slice_size, limit): (u64, u64),
        headers: &HeaderMap,
    ) -> Option<Filler> {
        if matches!(crate::http::h1::content_length(headers), Ok(Some(n)) if n > limit) {
            return None;
        }
        let vary = vary_names(headers);
        let (key, variant_of) = match vary.is_empty() {
            true => (base, None),
            false => {
                let key = cache.variant_key(&base, request_headers, &vary).await;
                (key, Some((base, request_headers.clone())))
            }
        };
        Some(Filler {
            cache,
            key,
            variant_of,
            generation: fastrand::u64(..),
            slice_size,
            limit,
            pending: BytesMut::new(),
            index: 0,
            total: 0,
        })
    }

    /// The next bytes of the body.
    pub async fn observe(&mut self, chunk: &Bytes) {
        self.total += chunk.len() as u64;
        if self.total > self.limit {
            self.pending.clear();
            return;
        }
        self.pending.extend_from_slice(chunk);
        while self.pending.len() as u64 >= self.slice_size {
            let slice = self.pending.split_to(self.slice_size as usize).freeze();
            self.store(slice).await;
        }
    }

    async fn store(&mut self, slice: Bytes) {
        let key = self.key.slice_key(self.generation, self.index);
        self.index += 1;
        self.cache.store.store_slice(&key, slice).await;
    }

    /// The body ended whole: store the last slice and the manifest.
    pub async fn finish(
        mut self,
        status: StatusCode,
        headers: &HeaderMap,
        ttl: Duration,
        stale: &StaleWindows,
    ) {
        // An empty 200 is not stored as an object; an empty 204 or 301 is
        // the answer itself.
        if (self.total == 0 && status == StatusCode::OK) || self.total > self.limit {
            return;
        }
        if !self.pending.is_empty() {
            let last = self.pending.split().freeze();
            let key = self.key.slice_key(self.generation, self.index);
            self.cache.store.store_slice(&key, last).await;
        }
        let version = ObjectVersion::from_headers(self.total, headers);
        let mut m = ObjectManifest::new(&version, self.slice_size, headers, ttl);
        m.generation = self.generation;
        m.whole_only = true;
        m.status = status.as_u16();
        // Kept out of a sliced object's manifest (it is the slice's), a whole
        // answer's own Content-Range is one of its header fields.
        if let Some(range) = headers.get(http::header::CONTENT_RANGE) {
            m.headers
                .push(("content-range".into(), Raw(range.as_bytes().to_vec())));
        }
        m.stale = StaleWindows::from_headers(headers, stale);
        if let Some((base, request_headers)) = &self.variant_of {
            let (key, placed) = self.cache.place_manifest(base, request_headers, m).await;
            if key != self.key {
                // Another answer named more headers meanwhile: this variant's
                // slices are under a key no lookup leads to any more.
                return;
            }
            m = placed;
            m.generation = self.generation;
        }
        self.cache.put(&self.key, &m).await;
    }
}
