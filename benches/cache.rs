//! Benches for the slice store: hits from the memory tier, hits from the disk
//! tier, misses, and inserts paced by the flusher backpressure.
//!
//! Every bench is in the `cache` group, so its id reads `cache/<name>`, and
//! names carry the payload size, so a result reads on its own (a group is
//! what lets criterion report bytes per second). The store's
//! async calls run on a monoio runtime, as on a worker: each sample times a
//! batch of operations inside one `block_on` (`iter_custom`), so building the
//! runtime and entering it are not measured. Disk-tier reads go through
//! `pread` and are usually served by the OS page cache.

// criterion_group! defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgeslice::cache::{SliceStore, StoreSettings, Tier};

/// A worker-like runtime: the legacy driver with timers.
type Worker = monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A store in its own temporary directory, closed and removed on drop.
struct BenchStore {
    store: Option<SliceStore>,
    dir: PathBuf,
}

impl BenchStore {
    fn open(name: &str, memory_bytes: u64, disk_bytes: u64, max_entry: u64) -> BenchStore {
        let dir =
            std::env::temp_dir().join(format!("edgeslice-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = StoreSettings {
            dir: dir.clone(),
            memory_bytes,
            disk_bytes,
            max_entry,
        };
        let store = SliceStore::open(&settings).expect("open the bench store");
        BenchStore {
            store: Some(store),
            dir,
        }
    }

    fn store(&self) -> &SliceStore {
        self.store.as_ref().expect("store is open until drop")
    }
}

impl Drop for BenchStore {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.close();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn monoio_runtime() -> Worker {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("build a monoio runtime")
}

fn slice(i: u64, len: u64) -> Bytes {
    let word = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    Bytes::from(word.repeat((len / 8) as usize))
}

fn keys(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("s|1|{i}|bench/object")).collect()
}

/// Insert `keys` as slices of `len` bytes.
fn fill(rt: &mut Worker, store: &SliceStore, keys: &[String], len: u64) {
    rt.block_on(async {
        for (i, key) in keys.iter().enumerate() {
            store.insert(key.clone(), slice(i as u64, len)).await;
        }
    });
}

/// Time `iters` gets cycling over `keys`, continuing from `cursor`; every hit
/// must come from `want`.
fn time_gets(
    rt: &mut Worker,
    store: &SliceStore,
    keys: &[String],
    cursor: &mut usize,
    iters: u64,
    want: Tier,
) -> Duration {
    rt.block_on(async {
        let mut wrong_tier = 0u64;
        let started = Instant::now();
        for _ in 0..iters {
            let (bytes, tier) = store
                .get(&keys[*cursor])
                .await
                .expect("bench key is stored");
            wrong_tier += (tier != want) as u64;
            black_box(bytes);
            *cursor = (*cursor + 1) % keys.len();
        }
        let elapsed = started.elapsed();
        assert_eq!(
            wrong_tier, 0,
            "{wrong_tier} of {iters} gets not from {want:?}"
        );
        elapsed
    })
}

/// Memory hits: a few slices that all fit in a 64 MiB memory tier.
fn cache_hit_memory(c: &mut Criterion, name: &str, len: u64) {
    let bench = BenchStore::open(name, 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let mut rt = monoio_runtime();
    let keys = keys(16);
    fill(&mut rt, store, &keys, len);
    let mut cursor = 0;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Bytes(len));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| time_gets(&mut rt, store, &keys, &mut cursor, iters, Tier::Memory))
    });
    group.finish();
}

fn cache_hit_memory_1mib(c: &mut Criterion) {
    cache_hit_memory(c, "hit_memory_1mib", MIB);
}

fn cache_hit_memory_64kib(c: &mut Criterion) {
    cache_hit_memory(c, "hit_memory_64kib", 64 * KIB);
}

/// Disk hits: 200 slices of 1 MiB behind a 4 MiB memory tier. Reading them
/// round-robin means the slice read was always evicted from memory long ago.
fn cache_hit_disk_1mib(c: &mut Criterion) {
    let bench = BenchStore::open("hit_disk_1mib", 4 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let mut rt = monoio_runtime();
    let all = keys(200);
    fill(&mut rt, store, &all, MIB);
    // The last slices may still be in memory or in the flush buffer.
    let keys = &all[..150];
    let mut cursor = 0;
    time_gets(
        &mut rt,
        store,
        keys,
        &mut cursor,
        keys.len() as u64,
        Tier::Disk,
    );
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Bytes(MIB));
    group.bench_function("hit_disk_1mib", |b| {
        b.iter_custom(|iters| time_gets(&mut rt, store, keys, &mut cursor, iters, Tier::Disk))
    });
    group.finish();
}

/// Misses: keys never stored, looked up in both tiers' indexes.
fn cache_miss_lookup(c: &mut Criterion) {
    let bench = BenchStore::open("miss_lookup", 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let mut rt = monoio_runtime();
    fill(&mut rt, store, &keys(16), MIB);
    let absent: Vec<String> = (0..1024).map(|i| format!("s|2|{i}|bench/absent")).collect();
    let mut cursor = 0;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("miss_lookup", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    assert!(store.get(&absent[cursor]).await.is_none());
                    cursor = (cursor + 1) % absent.len();
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Inserts of fresh 1 MiB slices, waiting for the flushers after every 8 MiB
/// as the proxy does; the disk tier wraps around and evicts old blocks.
fn cache_insert_1mib_backpressure(c: &mut Criterion) {
    let bench = BenchStore::open("insert_1mib_backpressure", 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let mut rt = monoio_runtime();
    let value = slice(0, MIB);
    let mut next = 0u64;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Bytes(MIB));
    group.bench_function("insert_1mib_backpressure", |b| {
        b.iter_custom(|iters| {
            let keys: Vec<String> = (next..next + iters)
                .map(|i| format!("s|3|{i}|bench/insert"))
                .collect();
            next += iters;
            rt.block_on(async {
                let started = Instant::now();
                for key in keys {
                    store.insert(key, value.clone()).await;
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group!(
    name = benches;
    config = config();
    targets = cache_hit_memory_1mib,
    cache_hit_memory_64kib,
    cache_hit_disk_1mib,
    cache_miss_lookup,
    cache_insert_1mib_backpressure,
);
criterion_main!(benches);
