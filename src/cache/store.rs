//! The foyer hybrid store: memory tier + disk tier, recovered after a restart.
//!
//! One [`SliceStore`] holds every slice and manifest of the node, each under
//! exactly one key, so a slice stored through one worker is a hit on every
//! worker. foyer shards its memory tier internally; its background work (disk
//! flushers, `pread`/`pwrite`) runs on a small dedicated tokio runtime owned
//! here, while workers await foyer's futures directly on their monoio loops.
//!
//! foyer drops disk writes silently when its flush buffer is full, so
//! [`SliceStore::insert`] applies backpressure: after every half buffer of
//! inserted bytes it waits for the flushers. Entries are weighed by their byte
//! length. The tombstone log is on, so removed keys stay removed after a
//! restart, and the psync IO engine is used (foyer's io_uring engine
//! busy-polls a core).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, PsyncIoEngineConfig, RecoverMode, Source, Spawner,
};
use tracing::warn;

const MIB: u64 = 1 << 20;
/// foyer's flush buffer; inserts wait for the flushers after half of it.
const FLUSH_BUFFER: u64 = 16 * MIB;

/// Where and how big the store is.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Directory of the disk tier.
    pub dir: PathBuf,
    /// Bytes of the memory tier.
    pub memory_bytes: u64,
    /// Bytes of the disk tier; 0 keeps slices in memory only.
    pub disk_bytes: u64,
    /// Largest entry to store (the slice size).
    pub max_entry: u64,
}

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier.
    Memory,
    /// The disk tier.
    Disk,
}

/// The node's slice and manifest store.
pub struct SliceStore {
    cache: HybridCache<String, Bytes>,
    since_wait: AtomicU64,
    recovery: Duration,
    // Declared last: foyer's background work must outlive the cache.
    runtime: tokio::runtime::Runtime,
}

impl SliceStore {
    /// Open (or recover) the store; blocks while the disk tier is recovered.
    pub fn open(settings: &StoreSettings) -> io::Result<SliceStore> {
        if settings.disk_bytes > 0 {
            prepare_dir(&settings.dir)?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("edgeslice-store")
            .enable_all()
            .build()?;
        let started = Instant::now();
        let cache = runtime
            .block_on(build(settings, Spawner::from(runtime.handle().clone())))
            .map_err(|e| io::Error::other(format!("cache.dir {:?}: {e}", settings.dir)))?;
        Ok(SliceStore {
            cache,
            since_wait: AtomicU64::new(0),
            recovery: started.elapsed(),
            runtime,
        })
    }

    /// Time the store took to open, recovering the disk tier.
    pub fn recovery_time(&self) -> Duration {
        self.recovery
    }

    /// The value under `key`, and the tier it came from.
    pub async fn get(&self, key: &str) -> Option<(Bytes, Tier)> {
        // A miss in foyer costs a hop through its runtime's threads; its
        // index answers "not here" without one.
        if !self.cache.contains(key) {
            return None;
        }
        match self.cache.get(key).await {
            Ok(Some(entry)) => {
                let tier = match entry.source() {
                    Source::Memory => Tier::Memory,
                    _ => Tier::Disk,
                };
                Some((entry.value().clone(), tier))
            }
            Ok(None) => None,
            Err(e) => {
                warn!(key, error = %e, "cache read failed, treated as a miss");
                None
            }
        }
    }

    /// Store `value` under `key`, waiting for the disk flushers when enough
    /// was inserted since the last wait, so that no insert is dropped.
    pub async fn insert(&self, key: String, value: Bytes) {
        let len = value.len() as u64;
        // An overwrite whose disk write lagged could let the old value come
        // back from disk later: remove first.
        // foyer logs a tombstone for every remove: only for a key that is there.
        if self.cache.contains(&key) {
            self.cache.remove(&key);
        }
        self.cache.insert(key, value);
        crate::ops::metrics::with(|m| m.cache_inserts.inc());
        let total = self.since_wait.fetch_add(len, Ordering::Relaxed) + len;
        if total >= FLUSH_BUFFER / 2 {
            self.since_wait.store(0, Ordering::Relaxed);
            crate::ops::metrics::with(|m| m.cache_insert_waits.inc());
            self.cache.storage().wait().await;
        }
    }

    /// Whether `key` is stored (possibly a false positive on a hash collision).
    pub fn contains(&self, key: &str) -> bool {
        self.cache.contains(key)
    }

    /// Drop `key` from both tiers (and, through the tombstone log, after a restart).
    pub fn remove(&self, key: &str) {
        self.cache.remove(key);
    }

    /// Bytes held by the memory tier.
    pub fn memory_usage(&self) -> usize {
        self.cache.memory().usage()
    }

    /// Bytes written to and read from the disk tier since start.
    pub fn disk_traffic(&self) -> (u64, u64) {
        let stats = self.cache.statistics();
        (
            stats.disk_write_bytes() as u64,
            stats.disk_read_bytes() as u64,
        )
    }

    /// Flush what is queued and close the disk tier.
    pub fn close(&self) {
        if let Err(e) = self.runtime.block_on(self.cache.close()) {
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

/// Memory-tier shards: up to 8, each with room for at least 4 entries of `max_entry`.
fn shards(memory_bytes: u64, max_entry: u64) -> usize {
    (memory_bytes / (4 * max_entry.max(1))).clamp(1, 8) as usize
}

async fn build(
    settings: &StoreSettings,
    spawner: Spawner,
) -> Result<HybridCache<String, Bytes>, foyer::Error> {
    let builder = HybridCacheBuilder::<String, Bytes>::new()
        .with_name("edgeslice")
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .with_flush_on_close(true)
        .memory(settings.memory_bytes as usize)
        // foyer splits the memory tier evenly over its shards and keeps an
        // entry larger than a shard anyway: give each shard room for 4 slices.
        .with_shards(shards(settings.memory_bytes, settings.max_entry))
        .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
        .storage()
        .with_io_engine_config(PsyncIoEngineConfig::new())
        .with_recover_mode(RecoverMode::Quiet)
        .with_spawner(spawner);
    if settings.disk_bytes == 0 {
        return builder.build().await;
    }
    // A block holds whole entries: at least one slice plus its index page.
    let block = (settings.max_entry + 64 * 1024)
        .next_power_of_two()
        .max(16 * MIB);
    let device = FsDeviceBuilder::new(&settings.dir)
        .with_capacity(settings.disk_bytes as usize)
        .build()?;
    let engine = BlockEngineConfig::new(device)
        .with_block_size(block as usize)
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
        assert_eq!(shards(256 * MIB, MIB), 8);
        assert_eq!(shards(MIB, 256 * 1024), 1);
        assert_eq!(shards(8 * MIB, MIB), 2);
        assert_eq!(shards(100, MIB), 1);
    }
}
