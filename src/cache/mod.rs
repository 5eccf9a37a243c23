//! The slice cache: object manifests and slices in a persistent hybrid store,
//! with single-flight fetches.
//!
//! The proxy asks [`SliceCache::lookup`] for an object's manifest before it
//! goes to the origin; slice tasks read slices from the [`SliceStore`] and
//! join [`Flights`] on a miss, so a cold slice is fetched once however many
//! clients want it. Manifests and slices survive restarts (the store's disk
//! tier is recovered at start), and a slice is only ever found under the
//! manifest generation it was fetched with.
//!
//! Why one shared store rather than one store per worker with message
//! passing: foyer already shards its memory tier and runs its disk IO on its
//! own threads, so every lookup crosses threads inside foyer anyway; a shared
//! store keeps each slice in exactly one place, with no extra hop through
//! another core's event loop. A hit costs a manifest `contains` + `get` +
//! JSON decode per request, then a `contains` per slice (to count it) and a
//! `contains` + `get` per slice (to read it); see the README's "What a hit
//! costs today".

pub mod flight;
pub mod key;
pub mod manifest;
pub mod store;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

pub use flight::{FlightEvent, Flights, Joined};
pub use key::ObjectKey;
pub use manifest::ObjectManifest;
pub use store::{SliceStore, StoreSettings, Tier};

/// Where a response's slices came from, as told in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Every slice from the cache.
    Hit,
    /// Every slice from the origin.
    Miss,
    /// Some from each.
    Partial,
}

impl CacheStatus {
    /// From counts of slices found in the cache and fetched.
    pub fn from_counts(cached: u64, fetched: u64) -> CacheStatus {
        match (cached, fetched) {
            (_, 0) => CacheStatus::Hit,
            (0, _) => CacheStatus::Miss,
            _ => CacheStatus::Partial,
        }
    }

    /// The `X-Cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Partial => "PARTIAL",
        }
    }
}

/// The node's cache, shared by all workers.
pub struct SliceCache {
    /// Slices and manifests.
    pub store: SliceStore,
    /// Fetches in flight.
    pub flights: Arc<Flights>,
    /// Freshness when the origin says nothing.
    pub default_ttl: Duration,
    /// Slices fetched ahead and not yet read, to count prefetch waste.
    prefetched: std::sync::Mutex<std::collections::HashSet<String>>,
    prefetched_count: std::sync::atomic::AtomicUsize,
}

impl SliceCache {
    /// Open (or recover) the store `settings` describe; objects the origin
    /// gives no freshness stay fresh for `default_ttl`.
    pub fn open(settings: &StoreSettings, default_ttl: Duration) -> io::Result<Arc<SliceCache>> {
        let store = SliceStore::open(settings)?;
        Ok(Arc::new(SliceCache {
            store,
            flights: Arc::new(Flights::default()),
            default_ttl,
            prefetched: Default::default(),
            prefetched_count: Default::default(),
        }))
    }

    async fn manifest_at(&self, key: &ObjectKey) -> Option<ObjectManifest> {
        let (bytes, _) = self.store.get(&key.manifest_key()).await?;
        ObjectManifest::decode(&bytes)
    }

    /// The manifest of the object (variant) `request_headers` select, with the
    /// key its slices live under.
    pub async fn lookup(
        &self,
        base: &ObjectKey,
        request_headers: &HeaderMap,
    ) -> Option<(ObjectKey, ObjectManifest)> {
        let m = self.manifest_at(base).await?;
        if m.vary.is_empty() {
            return Some((base.clone(), m));
        }
        let variant = base.variant(&m.vary, request_headers);
        let vm = self.manifest_at(&variant).await?;
        (vm.parent == m.generation && vm.vary == m.vary).then_some((variant, vm))
    }

    /// Store the manifest `m` learned for the request; returns the key its
    /// slices live under (the variant's when the origin sent Vary) and the
    /// manifest as stored.
    pub async fn store_manifest(
        &self,
        base: &ObjectKey,
        request_headers: &HeaderMap,
        mut m: ObjectManifest,
    ) -> (ObjectKey, ObjectManifest) {
        if m.vary.is_empty() {
            self.put(base, &m).await;
            return (base.clone(), m);
        }
        let parent = match self.manifest_at(base).await {
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
        self.put(&variant, &m).await;
        (variant, m)
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

    /// Drop every slice of the object (and of all its variants) by drawing a
    /// new generation for its manifest; false when nothing was cached.
    pub async fn purge(&self, base: &ObjectKey) -> bool {
        let Some(mut m) = self.manifest_at(base).await else {
            return false;
        };
        m.generation = fastrand::u64(..);
        // Expired too: the next request revalidates before serving, in case
        // the origin changed the object without changing its validators.
        m.expires_at = 0;
        self.put(base, &m).await;
        true
    }

    /// Remember that the slice under `key` was prefetched.
    pub fn note_prefetched(&self, key: String) {
        use std::sync::atomic::Ordering;
        let mut set = self.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= 65_536 {
            set.clear();
        }
        set.insert(key);
        self.prefetched_count.store(set.len(), Ordering::Relaxed);
    }

    /// A slice under `key` was served from the cache: if it was prefetched,
    /// count it as used. Takes no lock while nothing was prefetched.
    pub fn note_served(&self, key: &str) {
        use std::sync::atomic::Ordering;
        if self.prefetched_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut set = self.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        if set.remove(key) {
            crate::ops::metrics::with(|m| m.prefetch_used.inc());
        }
        self.prefetched_count.store(set.len(), Ordering::Relaxed);
    }

    /// Whether slice `index` of the manifest's generation is stored.
    pub fn has_slice(&self, key: &ObjectKey, generation: u64, index: u64) -> bool {
        self.store.contains(&key.slice_key(generation, index))
    }
}
