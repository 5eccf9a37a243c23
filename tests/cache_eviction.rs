//! What leaves the cache: `PURGE` (every slice refetched, also across
//! restarts; 404 without a cache; the token from other addresses), and the
//! memory tier's limit evicting old objects while the disk tier keeps them.

mod common;

use common::cache::*;
use common::*;

// ---------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------

#[test]
fn purge_refetches_every_slice_also_across_restarts() {
    let setup = cached("purge", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup.clone());
    let target = "/obj/32/g";
    let body = object_bytes("g", 0, 31);
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("HIT"));
    h.origin.clear();

    let purged = purge(&h, target, &[]);
    assert_eq!(purged.status, 200);
    assert_eq!(purged.body, b"purged\n");
    assert_eq!(
        h.origin.request_count(),
        0,
        "PURGE does not reach the origin"
    );
    let refetched = h.get(target, &[]);
    assert_eq!(refetched.header("x-cache"), Some("MISS"));
    assert_eq!(refetched.body, body);
    // A cold miss: the probe (slice 0) and every other slice, once each;
    // nothing to revalidate, the manifest is gone.
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 8, "{:?}", h.origin_ranges());
    let conditional: Vec<_> = requests
        .iter()
        .filter(|r| r.header("if-none-match").is_some())
        .collect();
    assert_eq!(conditional.len(), 0, "{:?}", h.origin_ranges());
    let mut slices: Vec<_> = h.origin_ranges_sorted();
    slices.dedup();
    assert_eq!(slices, slice_ranges(0..8, 4));

    // Purged then refetched: a hit, also after a restart.
    h.origin.clear();
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("HIT"));
    let h = h.restart(&setup);
    let hit = h.get(target, &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, body);
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());

    // Purged, restarted: the old generation's slices are not served.
    assert_eq!(purge(&h, target, &[]).status, 200);
    let h = h.restart(&setup);
    let after = h.get(target, &[]);
    assert_eq!(after.header("x-cache"), Some("MISS"));
    assert_eq!(after.body, body);
    assert_eq!(h.origin.request_count(), 8, "{:?}", h.origin_ranges());

    let unknown = purge(&h, "/obj/32/never-fetched", &[]);
    assert_eq!(unknown.status, 404);
}

#[test]
fn purge_without_a_cache_is_404() {
    let h = Harness::start(Setup::default());
    assert_eq!(h.get("/obj/8/x", &[]).status, 200);
    assert_eq!(purge(&h, "/obj/8/x", &[]).status, 404);
}

#[test]
fn purge_from_an_address_not_allowed_needs_the_token() {
    let setup = cached("token", 4);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().expect("origin starts");
    // [cache] is the last table of the harness config: these lines extend it.
    let text = config_text(origin.addr(), &setup) + "purge_allow = []\npurge_token = \"s3cret\"\n";
    let config = edgeslice::config::Config::from_toml(&text).expect("config is valid");
    let server = edgeslice::server::runtime::Server::start(&config).expect("edgeslice starts");
    let h = Harness { origin, server };
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("MISS"));
    assert_eq!(purge(&h, "/obj/16/k", &[]).status, 403);
    let wrong = purge(&h, "/obj/16/k", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 403);
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("HIT"));
    let ok = purge(&h, "/obj/16/k", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200);
    h.origin.clear();
    assert_eq!(h.get("/obj/16/k", &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.origin.request_count(), 4, "{:?}", h.origin_ranges());
}

// ---------------------------------------------------------------------------
// Memory and disk tiers
// ---------------------------------------------------------------------------

const KIB: u64 = 1 << 10;

/// Eight 512 KiB objects (2 slices of 256 KiB each) through a 1 MiB memory
/// tier: 4 MiB passes through, the last object (512 KiB) fits easily.
/// (A 1 MiB object could never be whole in a 1 MiB tier: keys weigh too.)
/// With `limit`, the memory tier is checked against it after every object.
fn fill_eight_objects(h: &Harness, limit: Option<u64>) -> Vec<String> {
    let targets: Vec<String> = (0..8).map(|i| format!("/obj/524288/e{i}")).collect();
    for (i, target) in targets.iter().enumerate() {
        let resp = h.get(target, &[]);
        assert_eq!(resp.header("x-cache"), Some("MISS"), "{target}");
        assert!(resp.body == object_bytes(&format!("e{i}"), 0, 512 * KIB - 1));
        if let Some(limit) = limit {
            assert_memory_within(h, limit);
        }
    }
    targets
}

/// The memory tier holds at most `limit` bytes (keys included), plus a little slack.
fn assert_memory_within(h: &Harness, limit: u64) {
    let usage = h.server.cache().unwrap().store.memory_usage() as u64;
    assert!(
        usage <= limit + 16 * KIB,
        "memory tier holds {usage} bytes, expected at most {limit}"
    );
}

#[test]
fn memory_limit_is_respected_and_old_objects_are_evicted() {
    let mut setup = cached("memlimit", 256 * KIB);
    let cache = setup.cache.as_mut().unwrap();
    cache.memory_bytes = 1 << 20;
    cache.disk_bytes = 0;
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let targets = fill_eight_objects(&h, Some(1 << 20));
    h.origin.clear();
    let last = h.get(&targets[7], &[]);
    assert_eq!(last.header("x-cache"), Some("HIT"));
    assert!(last.body == object_bytes("e7", 0, 512 * KIB - 1));
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
    let first = h.get(&targets[0], &[]);
    assert_ne!(first.header("x-cache"), Some("HIT"), "e0 was evicted");
    assert!(first.body == object_bytes("e0", 0, 512 * KIB - 1));
    assert!(h.origin.request_count() > 0);
    assert_memory_within(&h, 1 << 20);
}

#[test]
fn disk_tier_keeps_what_memory_evicts() {
    let mut setup = cached("disktier", 256 * KIB);
    let cache = setup.cache.as_mut().unwrap();
    cache.memory_bytes = 1 << 20;
    cache.disk_bytes = 64 << 20;
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let targets = fill_eight_objects(&h, None);
    h.origin.clear();
    for (i, target) in targets.iter().enumerate() {
        let resp = h.get(target, &[]);
        assert_eq!(resp.header("x-cache"), Some("HIT"), "{target}");
        assert!(resp.body == object_bytes(&format!("e{i}"), 0, 512 * KIB - 1));
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

/// Slices leave the store by bytes (foyer's index decides, weighing each by
/// the blocks it occupies), and a slice being read when it leaves keeps its
/// bytes until its reader is done: its slot is not reused under it.
#[test]
fn slices_leave_by_bytes_and_never_under_a_reader() {
    use bytes::Bytes;
    use edgeslice::cache::{slice_id, SliceStore, StoreSettings};
    const SLICE: usize = 16 * 1024;
    let setup = cached("slot-reuse", SLICE as u64);
    let _dir = dir_guard(&setup);
    let dir = setup.cache.as_ref().unwrap().dir.clone();
    // 64 MiB of disk: 32 MiB for the manifests, 32 MiB (2048 slices) for slices.
    let store = SliceStore::open(&StoreSettings {
        dir: dir.clone(),
        memory_bytes: 1 << 20,
        disk_bytes: 64 << 20,
        max_entry: SLICE as u64,
    })
    .unwrap();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .unwrap();
    let mut store_slice = |key: &str, bytes: &[u8]| {
        rt.block_on(store.store_slice(key, Bytes::copy_from_slice(bytes)))
    };
    assert!(store_slice("first", &[1u8; SLICE]));
    let loc = store
        .find_slice(slice_id("first"))
        .expect("found right after storing");
    let pin = store.pin(&loc).expect("pinned");
    store.remove_slice(slice_id("first"));
    assert!(
        store.pin(&loc).is_none(),
        "a slice that left is not pinned again"
    );
    for i in 0..6000u32 {
        let fill = [(i % 251) as u8; SLICE];
        assert!(
            store_slice(&format!("k{i}"), &fill),
            "slice {i} found no slot"
        );
    }
    assert!(
        store.find_slice(slice_id("k0")).is_none(),
        "the oldest never left"
    );
    assert_eq!(
        pin.read(0, SLICE as u64).unwrap(),
        vec![1u8; SLICE],
        "reused under its reader"
    );
    let used = store.slice_usage() as u64;
    assert!(
        used <= 32 << 20,
        "slices hold {used} bytes, beyond their 32 MiB"
    );
    // The newest are there, with their own bytes.
    let last = store
        .find_slice(slice_id("k5999"))
        .expect("the newest slice");
    let read = store.pin(&last).unwrap().read(0, SLICE as u64).unwrap();
    assert_eq!(read, vec![(5999 % 251) as u8; SLICE]);
    drop(pin);
    store.close();
    // On disk: the slot files hold what is indexed, not all that was written
    // (freed slots give their blocks back).
    let on_disk = disk_usage(&dir);
    assert!(
        on_disk < 48 << 20,
        "{on_disk} bytes on disk for 32 MiB of slices"
    );
}

/// Bytes allocated under `dir` (sparse files count what they hold).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                disk_usage(&e.path())
            } else {
                m.blocks() * 512
            }
        })
        .sum()
}
