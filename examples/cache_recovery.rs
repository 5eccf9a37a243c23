//! Measure how long the slice store takes to recover a full disk tier.
//!
//! `cargo run --release --example cache_recovery -- [DISK_MIB] [DIR]` fills a
//! disk tier of DISK_MIB MiB (default 1024) with 1 MiB slices, closes it,
//! reopens it, and prints the recovery time, the bytes on disk and how many
//! slices came back intact.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use edgeslice::cache::{slice_id, SliceStore, StoreSettings};

const MIB: u64 = 1 << 20;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let disk_mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("edgeslice-recovery"));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = StoreSettings {
        dir: dir.clone(),
        memory_bytes: 64 * MIB,
        disk_bytes: disk_mib * MIB,
        max_entry: MIB,
    };
    let slices = disk_mib; // one 1 MiB slice per MiB: more than fits, so the tier is full
    let store = SliceStore::open(&settings)?;
    // Slices are written the way a thread without io_uring writes (inline).
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build()?;
    let started = Instant::now();
    for i in 0..slices {
        rt.block_on(store.store_slice(&format!("s|{i}"), slice(i)));
    }
    let fill = started.elapsed();
    store.close();
    drop(store);
    let on_disk = du(&dir);

    let store = SliceStore::open(&settings)?;
    let recovery = store.recovery_time();
    let (mut found, mut intact) = (0, 0);
    for i in 0..slices {
        let id = slice_id(&format!("s|{i}"));
        let Some(pin) = store.find_slice(id).and_then(|loc| store.pin(&loc)) else {
            continue;
        };
        found += 1;
        intact += (pin.read(0, pin.len())? == slice(i)) as u64;
    }
    store.close();
    println!(
        "disk tier {disk_mib} MiB: filled with {slices} x 1 MiB in {:.1} s; {:.0} MiB on disk; \
         recovery {:.0} ms; {found} slices found after reopening, {intact} intact, {} wrong",
        fill.as_secs_f64(),
        on_disk as f64 / MIB as f64,
        recovery.as_secs_f64() * 1e3,
        found - intact
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn slice(i: u64) -> Bytes {
    let word = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    Bytes::from(word.repeat((MIB / 8) as usize))
}

/// Bytes actually allocated under `dir` and its folders (files may be sparse).
fn du(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
