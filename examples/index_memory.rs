//! Measure what the slice index costs in memory per cached slice.
//!
//! `cargo run --release --example index_memory -- [SLICES] [DIR]` stores
//! SLICES (default 200000) one-byte slices (each occupies one 4 KiB block of
//! a sparse slot file) and prints the growth of the process's resident memory
//! divided by the slices indexed: foyer's index entry plus the slot's state word.

use std::path::PathBuf;

use bytes::Bytes;
use edgeslice::cache::{SliceStore, StoreSettings};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let slices: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("edgeslice-index-memory"));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = StoreSettings {
        dir: dir.clone(),
        memory_bytes: 16 << 20,
        // Room for every slice: nothing is evicted.
        disk_bytes: (slices * 4096) * 2 + (256 << 20),
        max_entry: 4096,
    };
    let store = SliceStore::open(&settings)?;
    // Slices are written the way a thread without io_uring writes (inline).
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build()?;
    let x = Bytes::from_static(b"x");
    // Warm the allocator and the first pages of the state words.
    for i in 0..1000 {
        rt.block_on(store.store_slice(&format!("warm|{i}"), x.clone()));
    }
    let before = rss_bytes();
    for i in 0..slices {
        rt.block_on(store.store_slice(&format!("s|{i}"), x.clone()));
    }
    let grown = rss_bytes();
    // Index records wait up to a second for the slot files' fdatasync: let
    // the flusher write them, and the allocator give their queue back.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe { libc::malloc_trim(0) };
    let after = rss_bytes();
    let indexed = store.slice_usage() as u64 / 4096;
    println!(
        "{slices} slices stored, {indexed} indexed; resident memory grew {:.0} bytes per slice \
         while their records were queued, {:.0} bytes per slice once written ({:.1} MiB)",
        (grown - before) as f64 / slices as f64,
        (after - before) as f64 / slices as f64,
        (after - before) as f64 / (1 << 20) as f64,
    );
    store.close();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
