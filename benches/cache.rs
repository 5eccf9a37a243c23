//! Benches for the slice store: what a hit costs the process (one index
//! lookup and a pin; the bytes go out by sendfile, outside it), a miss's
//! lookup, and storing a slice.
//!
//! Every bench is in the `cache` group, so its id reads `cache/<name>`, and
//! names carry the payload size, so a result reads on its own.

// criterion_group! defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgeslice::cache::{slice_id, SliceStore, StoreSettings};

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

fn slice(i: u64, len: u64) -> Vec<u8> {
    let word = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    word.repeat((len / 8) as usize)
}

/// Store a whole slice as a worker does, on a runtime of this thread's
/// own (its writes are made inline, as on a thread that may block).
fn store_slice(store: &SliceStore, key: &str, bytes: bytes::Bytes) -> bool {
    thread_local! {
        static RT: std::cell::RefCell<monoio::Runtime<monoio::LegacyDriver>> = std::cell::RefCell::new(
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap(),
        );
    }
    RT.with(|rt| rt.borrow_mut().block_on(store.store_slice(key, bytes)))
}

fn keys(n: u64) -> Vec<u128> {
    (0..n)
        .map(|i| slice_id(&format!("s|1|{i}|bench/object")))
        .collect()
}

/// Store `keys` as slices of `len` bytes.
fn fill(store: &SliceStore, keys: &[u128], len: u64) {
    for (i, key) in keys.iter().enumerate() {
        let name = format!("s|1|{i}|bench/object");
        assert_eq!(slice_id(&name), *key);
        assert!(store_slice(store, &name, slice(i as u64, len).into()));
    }
}

/// A hit as a slice task makes it: one index lookup and a pin of the slot
/// (the bytes then go to the socket by sendfile, outside the process).
fn cache_hit(c: &mut Criterion, name: &str, len: u64) {
    let bench = BenchStore::open(name, 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let keys = keys(64);
    fill(store, &keys, len);
    let mut cursor = 0;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let loc = store.find_slice(keys[cursor]).expect("bench key is stored");
            let pin = store.pin(&loc).expect("pinned");
            cursor = (cursor + 1) % keys.len();
            black_box(pin)
        })
    });
    group.finish();
}

fn cache_hit_1mib(c: &mut Criterion) {
    cache_hit(c, "hit_lookup_pin_1mib", MIB);
}

fn cache_hit_64kib(c: &mut Criterion) {
    cache_hit(c, "hit_lookup_pin_64kib", 64 * KIB);
}

/// Misses: keys never stored, looked up in the index.
fn cache_miss_lookup(c: &mut Criterion) {
    let bench = BenchStore::open("miss_lookup", 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    fill(store, &keys(16), MIB);
    let absent: Vec<u128> = (0..1024)
        .map(|i| slice_id(&format!("s|2|{i}|bench/absent")))
        .collect();
    let mut cursor = 0;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("miss_lookup", |b| {
        b.iter(|| {
            assert!(store.find_slice(absent[cursor]).is_none());
            cursor = (cursor + 1) % absent.len();
        })
    });
    group.finish();
}

/// Stores of fresh 1 MiB slices: written to a slot, indexed; the slot files
/// fill up and the oldest slices leave.
fn cache_insert_1mib(c: &mut Criterion) {
    let bench = BenchStore::open("insert_1mib", 64 * MIB, 512 * MIB, MIB);
    let store = bench.store();
    let value = bytes::Bytes::from(slice(0, MIB));
    let mut next = 0u64;
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Bytes(MIB));
    group.bench_function("insert_1mib", |b| {
        b.iter(|| {
            assert!(store_slice(
                store,
                &format!("s|3|{next}|bench/insert"),
                value.clone()
            ));
            next += 1;
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
    targets = cache_hit_1mib,
    cache_hit_64kib,
    cache_miss_lookup,
    cache_insert_1mib,
);
criterion_main!(benches);
