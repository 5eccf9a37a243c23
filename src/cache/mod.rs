//! The slice cache: object manifests and slices, with single-flight fetches.
//!
//! The proxy asks [`SliceCache::lookup`] for an object's manifest before it
//! goes to the origin; slice tasks pin slices in the [`SliceStore`] and join
//! [`Flights`] on a miss, so a cold slice is fetched once however many
//! clients want it. Slice bytes live in slot files ([`slab`]) and go to the
//! client by `sendfile`; foyer indexes them and decides what stays
//! ([`store`]). Manifests and slices survive restarts, and a slice is only
//! ever found under the manifest generation it was fetched with.
//!
//! Why one shared store rather than one store per worker with message
//! passing: SO_REUSEPORT does not route by object, so per-core shards would
//! need a hop through another core's event loop on every slice. A hit costs a
//! manifest read per request (decoded once per worker, [`decoded`]) and one
//! index lookup plus one CAS per slice; see "What a hit costs" in docs/cache.md.

pub mod asked;
pub mod decoded;
pub mod flight;
pub mod freshness;
pub mod key;
pub mod manifest;
pub mod slab;
pub mod store;

use std::collections::HashSet;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;

pub use decoded::Decoded;
pub use flight::{FlightEvent, Flights, Joined};
pub use freshness::Heuristics;
pub use key::ObjectKey;
pub use manifest::ObjectManifest;
pub use slab::{Locator, SlicePin, SliceWriter};
pub use store::{slice_id, SliceStore, StoreSettings};

/// Where a response's slices came from, as told in `X-Cache` and counted
/// by the `result` label of `edgeslice_cache_requests_total`: one enum for
/// both, declared with the metrics' labels.
pub use crate::ops::metrics::CacheResult;

impl CacheResult {
    /// From counts of slices found in the cache and fetched.
    pub fn from_counts(cached: u64, fetched: u64) -> CacheResult {
        match (cached, fetched) {
            (_, 0) => CacheResult::Hit,
            (0, _) => CacheResult::Miss,
            _ => CacheResult::Partial,
        }
    }

    /// The `X-Cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Partial => "PARTIAL",
        }
    }
}

/// Shards of the set of prefetched slices.
pub const PREFETCH_SHARDS: usize = 64;
/// Prefetched slices one shard remembers; past this it starts over.
const PREFETCH_KEPT: usize = 1024;

fn prefetch_shard(id: u128) -> usize {
    (id as usize) % PREFETCH_SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node's cache, shared by all workers.
pub struct SliceCache {
    /// Slices and manifests.
    pub store: SliceStore,
    /// Fetches in flight.
    pub flights: Arc<Flights>,
    /// Slices homed on another node asked for again: copied here (`[cluster]`).
    pub asked: asked::AskedAgain,
    /// Freshness when the origin says nothing.
    pub heuristics: Heuristics,
    /// Slices fetched ahead and not yet read, to count prefetch waste.
    prefetched: Box<[Mutex<HashSet<u128>>]>,
    prefetched_count: AtomicUsize,
}

impl SliceCache {
    /// Open (or recover) the store `settings` describe; objects the origin
    /// gives no freshness get what `heuristics` give them.
    pub fn open(settings: &StoreSettings, heuristics: Heuristics) -> io::Result<Arc<SliceCache>> {
        let store = SliceStore::open(settings)?;
        Ok(Arc::new(SliceCache {
            store,
            flights: Arc::new(Flights::default()),
            asked: asked::AskedAgain::default(),
            heuristics,
            prefetched: (0..PREFETCH_SHARDS).map(|_| Mutex::default()).collect(),
            prefetched_count: AtomicUsize::new(0),
        }))
    }

    /// The manifest under `key`, decoded once per worker for as long as
    /// its stored bytes stay the same ([`decoded`]).
    async fn decoded_at(&self, key: &ObjectKey) -> Option<Rc<Decoded>> {
        let manifest_key = key.manifest_key();
        let bytes = self.store.get(&manifest_key).await?;
        decoded::manifest(manifest_key, bytes)
    }

    async fn manifest_at(&self, key: &ObjectKey) -> Option<ObjectManifest> {
        Some(self.decoded_at(key).await?.manifest.clone())
    }

    /// The manifest of the object (variant) `request_headers` select, with the
    /// key its slices live under; shared with the worker's other requests.
    /// `request_headers` are the ones the origin is asked with (never the
    /// client's own: a header the client names in `Connection` is not sent,
    /// so it must not choose the variant either).
    pub async fn lookup(
        &self,
        base: &ObjectKey,
        request_headers: &HeaderMap,
    ) -> Option<(ObjectKey, Rc<Decoded>)> {
        let m = self.decoded_at(base).await?;
        if m.manifest.vary.is_empty() {
            return Some((base.clone(), m));
        }
        let variant = base.variant(&m.manifest.vary, request_headers);
        let vm = self.decoded_at(&variant).await?;
        let matches =
            vm.manifest.parent == m.manifest.generation && vm.manifest.vary == m.manifest.vary;
        matches.then_some((variant, vm))
    }

    /// Where the manifest `m` learned for the request goes: the key its
    /// slices live under (the variant's when the object varies) and the
    /// manifest to [`SliceCache::put`] there. Nothing under that key is
    /// written here, so the caller can lead the flight of the slice it
    /// holds before another request can find the manifest and ask for that
    /// slice itself; the base manifest of an object that varies is written.
    ///
    /// An object's variants are keyed by every header any of its answers
    /// named in `Vary` (the union, kept in the base manifest): an origin that
    /// adds `Vary: Origin` to some answers only (CORS) grows the list once,
    /// and answers with and without it then sit side by side as variants,
    /// instead of each one replacing the other's base and orphaning every
    /// variant.
    pub async fn place_manifest(
        &self,
        base: &ObjectKey,
        request_headers: &HeaderMap,
        mut m: ObjectManifest,
    ) -> (ObjectKey, ObjectManifest) {
        let existing = self.manifest_at(base).await;
        let vary = vary_union(existing.as_ref(), &m.vary);
        if vary.is_empty() {
            return (base.clone(), m);
        }
        m.vary = vary;
        let parent = match existing {
            Some(existing) if existing.vary == m.vary => existing,
            _ => {
                let b = m.clone();
                self.put(base, &b).await;
                b
            }
        };
        m.parent = parent.generation;
        m.generation = fastrand::u64(..);
        let variant = base.variant(&m.vary, request_headers);
        (variant, m)
    }

    /// The key an answer that names `vary` in its `Vary` will be stored
    /// under for `request_headers`, as [`SliceCache::place_manifest`] will
    /// place it (unless another answer grows the object's list meanwhile);
    /// nothing is written. For a whole answer, whose slices are stored as it
    /// comes, before its manifest can be.
    pub async fn variant_key(
        &self,
        base: &ObjectKey,
        request_headers: &HeaderMap,
        vary: &[String],
    ) -> ObjectKey {
        let existing = self.manifest_at(base).await;
        let vary = vary_union(existing.as_ref(), vary);
        match vary.is_empty() {
            true => base.clone(),
            false => base.variant(&vary, request_headers),
        }
    }

    /// Store `m` under `key` as it is (a refreshed expiry after a 304).
    pub async fn put(&self, key: &ObjectKey, m: &ObjectManifest) {
        self.store
            .insert(key.manifest_key(), Bytes::from(m.encode()))
            .await;
    }

    /// Forget the manifest at `key` (the object changed under it).
    pub fn forget(&self, key: &ObjectKey) {
        self.store.remove(&key.manifest_key());
    }

    /// Drop the object (and all its variants): its manifest goes, so its
    /// slices, keyed by that manifest's generation, are found no more (the
    /// next manifest draws another), and neither are its variants (theirs
    /// name the old one as parent). False when nothing was cached.
    ///
    /// The next request is a cold miss, probed like any other: in a
    /// `[cluster]` at the first slice's home, so the object is learnt again
    /// from the origin once for the POP. (A manifest kept, expired, made
    /// every node revalidate it with the origin on its own.)
    pub async fn purge(&self, base: &ObjectKey) -> bool {
        if self.manifest_at(base).await.is_none() {
            return false;
        }
        self.forget(base);
        true
    }

    /// Remember that slice `id` was prefetched.
    pub fn note_prefetched(&self, id: u128) {
        let mut set = lock(&self.prefetched[prefetch_shard(id)]);
        if set.len() >= PREFETCH_KEPT {
            self.prefetched_count
                .fetch_sub(set.len(), Ordering::Relaxed);
            set.clear();
        }
        if set.insert(id) {
            self.prefetched_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether prefetched slices wait to be read (then [`Self::note_served`]
    /// wants to hear of every cached slice served).
    pub fn prefetch_pending(&self) -> bool {
        self.prefetched_count.load(Ordering::Relaxed) > 0
    }

    /// Slice `id` was served from the cache: if it was prefetched, count it
    /// as used. Takes no lock while nothing is prefetched, and then only the
    /// lock of one of [`PREFETCH_SHARDS`] shards.
    pub fn note_served(&self, id: u128) {
        if self.prefetched_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if lock(&self.prefetched[prefetch_shard(id)]).remove(&id) {
            self.prefetched_count.fetch_sub(1, Ordering::Relaxed);
            crate::ops::metrics::with(|m| m.prefetch_used.inc());
        }
    }

    /// Where slice `index` of the manifest's generation is stored, if it is.
    pub fn find_slice(&self, key: &ObjectKey, generation: u64, index: u64) -> Option<Locator> {
        self.store.find_slice(key.slice_id(generation, index))
    }
}

/// The headers an object's variants are keyed by: those the stored base
/// manifest names, then those of a new answer it does not.
fn vary_union(existing: Option<&ObjectManifest>, vary: &[String]) -> Vec<String> {
    let mut union = existing.map(|e| e.vary.clone()).unwrap_or_default();
    for name in vary {
        if !union.contains(name) {
            union.push(name.clone());
        }
    }
    union
}
