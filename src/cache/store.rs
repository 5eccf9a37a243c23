//! The node's store: foyer for what is stored where, slot files for slice bytes.
//!
//! One [`SliceStore`] holds every slice and manifest of the node, each under
//! exactly one key, so a slice stored through one worker is a hit on every
//! worker.
//!
//! - **Manifests** live in a foyer hybrid cache (memory tier + disk tier,
//!   recovered after a restart, tombstones for removed keys). Its background
//!   work runs on a small dedicated tokio runtime owned here; workers await
//!   foyer's futures directly on their monoio loops. foyer drops disk writes
//!   when its flush buffer is full, so [`SliceStore::insert`] waits for the
//!   flushers after every half buffer of inserted bytes.
//! - **Slices** live in slot files ([`crate::cache::slab`]), served by
//!   `sendfile` from the page cache. foyer's in-memory cache indexes them:
//!   one [`Locator`] per slice, weighed by the bytes the slice occupies on
//!   disk, evicted by S3-FIFO (a hit takes only a shard's read lock). When
//!   foyer lets a locator go (evicted, replaced, removed), its slot is retired.
//!   After a restart the slot files' index records fill foyer's index again.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Cache, CacheBuilder, DeviceBuilder, Event, EventListener, FsDeviceBuilder,
    HybridCache, HybridCacheBuilder, HybridCachePolicy, PsyncIoEngineConfig, RecoverMode,
    S3FifoConfig, Spawner,
};
use tracing::warn;

use crate::cache::slab::{Locator, Slab, SlicePin, SliceWriter};

const MIB: u64 = 1 << 20;
/// foyer's flush buffer; inserts wait for the flushers after half of it.
const FLUSH_BUFFER: u64 = 16 * MIB;
/// Block size of the manifests' disk tier (a manifest is a few KiB).
const MANIFEST_BLOCK: u64 = 4 * MIB;

/// Where and how big the store is.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Directory of the disk tier.
    pub dir: PathBuf,
    /// Bytes of the process-held memory tier: manifests, and with no disk
    /// tier the slices too.
    pub memory_bytes: u64,
    /// Bytes of the disk tier; 0 keeps slices in memory only.
    pub disk_bytes: u64,
    /// Largest entry to store (the slice size).
    pub max_entry: u64,
}

impl StoreSettings {
    /// How the tiers are shared out: (manifest memory tier, manifest disk
    /// tier, slice bytes).
    fn shares(&self) -> (u64, u64, u64) {
        if self.disk_bytes == 0 {
            let manifests = (self.memory_bytes / 16)
                .max(64 << 10)
                .min(self.memory_bytes / 2);
            return (manifests, 0, self.memory_bytes.saturating_sub(manifests));
        }
        let manifest_disk = (self.disk_bytes / 32)
            .clamp(16 * MANIFEST_BLOCK, 1 << 30)
            .min(self.disk_bytes / 2);
        (
            self.memory_bytes,
            manifest_disk,
            self.disk_bytes - manifest_disk,
        )
    }
}

/// The node's slice and manifest store.
pub struct SliceStore {
    manifests: HybridCache<String, Bytes>,
    slices: Cache<u128, Locator>,
    slab: Arc<Slab>,
    /// Slices are in memory files: their bytes count as process memory.
    slices_in_memory: bool,
    since_wait: AtomicU64,
    recovery: Duration,
    // Declared last: foyer's background work must outlive the cache.
    runtime: tokio::runtime::Runtime,
    /// `cache.dir`'s lock, held while the store lives (after its files).
    _lock: Option<std::fs::File>,
}

/// Retires a slice's slot when foyer lets its locator go.
struct Retire(Arc<Slab>);

impl EventListener for Retire {
    type Key = u128;
    type Value = Locator;

    fn on_leave(&self, reason: Event, _key: &u128, value: &Locator) {
        // foyer clears the index when the store is dropped: the slices stay,
        // to be recovered at the next start.
        if reason != Event::Clear {
            self.0.retire(value);
        }
    }
}

/// The key a slice is indexed under: a 128-bit hash of its store key.
pub fn slice_id(key: &str) -> u128 {
    hash_key(key.as_bytes())
}

/// The 128-bit hash of a store key's bytes.
pub(crate) fn hash_key(key: &[u8]) -> u128 {
    twox_hash::xxhash3_128::Hasher::oneshot(key)
}

impl SliceStore {
    /// Open (or recover) the store; blocks while the disk tier is recovered.
    pub fn open(settings: &StoreSettings) -> io::Result<SliceStore> {
        let mut lock = None;
        if settings.disk_bytes > 0 {
            prepare_dir(&settings.dir)?;
            lock = Some(lock_dir(&settings.dir)?);
            prepare_dir(&settings.dir.join("manifests"))?;
            warn_of_an_old_cache(&settings.dir);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("edgeslice-store")
            .enable_all()
            .build()?;
        let started = Instant::now();
        let (manifest_memory, manifest_disk, slice_bytes) = settings.shares();
        let manifests = runtime
            .block_on(build(
                settings,
                manifest_memory,
                manifest_disk,
                Spawner::from(runtime.handle().clone()),
            ))
            .map_err(|e| io::Error::other(format!("cache.dir {:?}: {e}", settings.dir)))?;
        let slab_dir = (settings.disk_bytes > 0).then_some(settings.dir.as_path());
        let (slab, recovered) = Slab::open(slab_dir, slice_bytes, settings.max_entry)
            .map_err(|e| io::Error::new(e.kind(), format!("cache.dir {:?}: {e}", settings.dir)))?;
        let slices = CacheBuilder::new(slice_bytes as usize)
            .with_name("edgeslice-slices")
            .with_shards(shards(slice_bytes, settings.max_entry))
            .with_eviction_config(S3FifoConfig::default())
            .with_weighter(|_: &u128, loc: &Locator| loc.weight())
            .with_event_listener(Arc::new(Retire(slab.clone())))
            .build();
        for (id, loc) in recovered {
            slices.insert(id, loc);
        }
        Ok(SliceStore {
            manifests,
            slices,
            slab,
            slices_in_memory: settings.disk_bytes == 0,
            since_wait: AtomicU64::new(0),
            recovery: started.elapsed(),
            runtime,
            _lock: lock,
        })
    }

    /// Time the store took to open, recovering the disk tier.
    pub fn recovery_time(&self) -> Duration {
        self.recovery
    }

    /// The manifest under `key`.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        // A miss in foyer costs a hop through its runtime's threads; its
        // index answers "not here" without one.
        if !self.manifests.contains(key) {
            return None;
        }
        match self.manifests.get(key).await {
            Ok(Some(entry)) => Some(entry.value().clone()),
            Ok(None) => None,
            Err(e) => {
                warn!(key, error = %e, "cache read failed, treated as a miss");
                None
            }
        }
    }

    /// Store the manifest `value` under `key`, waiting for the disk flushers
    /// when enough was inserted since the last wait, so that no insert is dropped.
    pub async fn insert(&self, key: String, value: Bytes) {
        let len = value.len() as u64;
        // An overwrite whose disk write lagged could let the old value come
        // back from disk later: remove first.
        // foyer logs a tombstone for every remove: only for a key that is there.
        if self.manifests.contains(&key) {
            self.manifests.remove(&key);
        }
        self.manifests.insert(key, value);
        crate::ops::metrics::with(|m| m.cache_inserts.inc());
        let total = self.since_wait.fetch_add(len, Ordering::Relaxed) + len;
        if total >= FLUSH_BUFFER / 2 {
            self.since_wait.store(0, Ordering::Relaxed);
            crate::ops::metrics::with(|m| m.cache_insert_waits.inc());
            self.manifests.storage().wait().await;
        }
    }

    /// Whether a manifest is stored under `key` (possibly a false positive on a hash collision).
    pub fn contains(&self, key: &str) -> bool {
        self.manifests.contains(key)
    }

    /// Drop the manifest `key` from both tiers (and, through the tombstone log, after a restart).
    pub fn remove(&self, key: &str) {
        self.manifests.remove(key);
    }

    /// Where slice `id` is, if stored: the one index lookup of a hit.
    pub fn find_slice(&self, id: u128) -> Option<Locator> {
        self.slices.get(&id).map(|entry| *entry.value())
    }

    /// Pin the slice `loc` names for reading; `None` when it left since.
    pub fn pin(&self, loc: &Locator) -> Option<SlicePin> {
        self.slab.pin(loc)
    }

    /// A slot to write a slice of `len` bytes into, as its bytes arrive;
    /// `None` when there is none (the slice is then not stored).
    pub fn begin_slice(&self, len: u64) -> Option<SliceWriter> {
        let writer = self.slab.allocate(len);
        if writer.is_none() {
            crate::ops::metrics::with(|m| m.slices_not_stored.inc());
        }
        writer
    }

    /// The slice in `writer` is whole and checked: index it under `id`.
    /// Returns where it is, unless it could not be stored.
    pub fn commit_slice(&self, id: u128, writer: SliceWriter) -> Option<Locator> {
        if !writer.is_flushed() {
            // Appended bytes never written: not a whole slice.
            crate::ops::metrics::with(|m| m.slices_not_stored.inc());
            return None;
        }
        let loc = self.slab.commit(writer, id);
        self.slices.insert(id, loc);
        crate::ops::metrics::with(|m| m.cache_inserts.inc());
        Some(loc)
    }

    /// Store a whole slice at once under `key` (written as
    /// [`crate::disk::write_all_at`] writes: off the worker's loop while the
    /// kernel holds its writes); false when it could not be.
    pub async fn store_slice(&self, key: &str, bytes: Bytes) -> bool {
        let Some(mut writer) = self.begin_slice(bytes.len() as u64) else {
            return false;
        };
        if let Err(e) = writer.append(0, bytes).await {
            warn!(error = %e, "writing a slice; it is not stored");
            crate::ops::metrics::with(|m| m.slices_not_stored.inc());
            return false;
        }
        self.commit_slice(slice_id(key), writer).is_some()
    }

    /// Drop slice `id` (its slot is freed once nobody reads it).
    pub fn remove_slice(&self, id: u128) {
        self.slices.remove(&id);
    }

    /// Bytes of process-held memory the store uses: the manifests' memory
    /// tier, and the slices when they are in memory files.
    pub fn memory_usage(&self) -> usize {
        let slices = if self.slices_in_memory {
            self.slices.usage()
        } else {
            0
        };
        self.manifests.memory().usage() + slices
    }

    /// Whether slices are kept in memory files (no disk tier).
    pub fn slices_in_memory(&self) -> bool {
        self.slices_in_memory
    }

    /// Bytes the slices occupy (in the slot files).
    pub fn slice_usage(&self) -> usize {
        self.slices.usage()
    }

    /// Bytes written to the disk tier (slices and manifests) and read from
    /// it by foyer (manifests; slices are sent from the slot files) since start.
    pub fn disk_traffic(&self) -> (u64, u64) {
        let stats = self.manifests.statistics();
        let slices = if self.slices_in_memory {
            0
        } else {
            self.slab.written_bytes()
        };
        (
            stats.disk_write_bytes() as u64 + slices,
            stats.disk_read_bytes() as u64,
        )
    }

    /// Flush what is queued and close the disk tier.
    pub fn close(&self) {
        self.slab.close();
        if let Err(e) = self.runtime.block_on(self.manifests.close()) {
            warn!(error = %e, "closing the cache");
        }
    }
}

/// Creates the disk tier's directory and makes a file in it, so that an
/// unusable `cache.dir` is reported with what failed, not in foyer's words.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    let fail = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("cache.dir {dir:?}: {what}: {e}"))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("cache.dir {dir:?}: exists and is not a directory"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create directory", e))?;
    let probe = dir.join(".edgeslice-write-probe");
    std::fs::File::create(&probe).map_err(|e| fail("cannot create a file in it", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The lock file of a cache directory.
const LOCK_FILE: &str = "edgeslice.lock";

/// Take `dir`'s lock (`flock`, exclusive, not waiting) for as long as the
/// returned file is open: two processes on one cache would allocate the same
/// slots and serve each other's bytes. The holder's pid is written in it for
/// the message a second one gets.
fn lock_dir(dir: &Path) -> io::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cache.dir {dir:?}: cannot open {LOCK_FILE}: {e}"),
            )
        })?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = match holder.is_empty() {
            true => String::new(),
            false => format!(" (pid {holder})"),
        };
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("cache.dir {dir:?} is in use by another edgeslice{who}: {e}; one cache, one process"),
        ));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// An edgeslice before the slot files kept foyer's files at the top of
/// `cache.dir`. They are not read: say so, with what they hold, so the
/// operator can delete them.
fn warn_of_an_old_cache(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let old: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("foyer-storage"))
        .collect();
    if !old.is_empty() {
        use std::os::unix::fs::MetadataExt;
        let bytes: u64 = old
            .iter()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum();
        warn!(
            dir = %dir.display(),
            files = old.len(),
            bytes,
            "cache.dir holds the files of an earlier edgeslice's cache (foyer-storage-*); \
             they are not read and can be deleted"
        );
    }
}

/// Index shards: up to 8, each with room for at least 4 entries of
/// `max_entry` in S3-FIFO's small queue (a tenth of the shard), where a
/// slice seen once waits to be asked again. With room for 4 in the whole
/// shard (until 2026-12-07), a tier of 64 MiB of 1 MiB slices had 8 shards
/// whose small queue held less than one slice: a slice just stored was the
/// first to go when its shard was full, and an object asked twice at once
/// was a PARTIAL hit the second time.
fn shards(bytes: u64, max_entry: u64) -> usize {
    (bytes / (40 * max_entry.max(1))).clamp(1, 8) as usize
}

async fn build(
    settings: &StoreSettings,
    memory: u64,
    disk: u64,
    spawner: Spawner,
) -> Result<HybridCache<String, Bytes>, foyer::Error> {
    let builder = HybridCacheBuilder::<String, Bytes>::new()
        .with_name("edgeslice")
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .with_flush_on_close(true)
        .memory(memory as usize)
        .with_shards(shards(memory, 64 * 1024))
        .with_eviction_config(S3FifoConfig::default())
        .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
        .storage()
        .with_io_engine_config(PsyncIoEngineConfig::new())
        .with_recover_mode(RecoverMode::Quiet)
        .with_spawner(spawner);
    if disk == 0 {
        return builder.build().await;
    }
    let dir = settings.dir.join("manifests");
    let device = FsDeviceBuilder::new(&dir)
        .with_capacity(disk as usize)
        .build()?;
    let engine = BlockEngineConfig::new(device)
        .with_block_size(MANIFEST_BLOCK as usize)
        .with_flushers(1)
        .with_buffer_pool_size(FLUSH_BUFFER as usize)
        .with_submit_queue_size_threshold(2 * FLUSH_BUFFER as usize)
        .with_tombstone_log(true);
    builder.with_engine_config(engine).build().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_leave_room_for_whole_slices() {
        assert_eq!(shards(10 * 1024 * MIB, MIB), 8);
        assert_eq!(shards(320 * MIB, MIB), 8);
        assert_eq!(shards(256 * MIB, MIB), 6);
        assert_eq!(shards(64 * MIB, MIB), 1);
        assert_eq!(shards(MIB, 256 * 1024), 1);
        assert_eq!(shards(100, MIB), 1);
    }

    #[test]
    fn tiers_are_shared_between_manifests_and_slices() {
        let s = |memory_bytes, disk_bytes| StoreSettings {
            dir: PathBuf::new(),
            memory_bytes,
            disk_bytes,
            max_entry: MIB,
        };
        assert_eq!(s(256 * MIB, 0).shares(), (16 * MIB, 0, 240 * MIB));
        assert_eq!(
            s(256 * MIB, 10 << 30).shares(),
            (256 * MIB, 320 * MIB, (10 << 30) - 320 * MIB)
        );
        assert_eq!(
            s(16 * MIB, 64 * MIB).shares(),
            (16 * MIB, 32 * MIB, 32 * MIB)
        );
    }
}
