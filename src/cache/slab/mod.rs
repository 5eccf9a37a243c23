//! Slice payloads in files of fixed slots, served from the page cache.
//!
//! A slice's bytes live in one slot of a slot file: slots of 4 KiB, 16 KiB,
//! ... 64 MiB (a size class per file, each 4x the last), and a slice takes the
//! smallest that holds it. The files are sparse: a slice occupies its length
//! rounded up to 4 KiB on disk, and a freed slot's blocks are given back
//! (`FALLOC_FL_PUNCH_HOLE`). The page cache over these files is the memory
//! tier: a hit is sent to the socket by `sendfile`, never copied through the
//! process, and RAM holds a hot slice once.
//!
//! **Who decides what stays.** Not this module: foyer's index of slices
//! ([`crate::cache::store`]) holds a [`Locator`] per slice, weighed by the
//! bytes the slice occupies, and when foyer evicts, replaces or removes it, it
//! calls [`Slab::retire`]. This module only hands out slots and takes them
//! back.
//!
//! **Nothing is served from a reused slot.** Each slot has a state word:
//! an epoch, a "live" bit and a count of readers. A reader pins a slot with a
//! compare-and-swap that succeeds only while the slot is live in the epoch its
//! locator names ([`Slab::pin`]); retiring clears "live" and moves the epoch
//! on, and the slot goes back to the free list only when its last reader has
//! unpinned it. The hit path takes no lock: one CAS to pin, one atomic
//! subtraction to unpin.
//!
//! **Restarts.** Beside each slot file is an index file of one 64-byte record
//! per slot (key, length, checksum). A record is written only after the
//! slot's bytes are on disk (`fdatasync` of the slot file, done once a second
//! for everything committed since, by a background thread), and it is zeroed
//! when the slot is retired; the slot is punched and reused only after that
//! zero is on disk (the index file's `fdatasync`). A restart reads the index
//! files and hands every valid record to foyer's index again. A process killed
//! at any moment, or a machine that loses power, loses at most the slices of
//! the last second; it can never find a record whose bytes were not written,
//! or a record of a slot that holds another slice's bytes.
//!
//! With no disk tier, the slot files are anonymous memory files (`memfd`), held
//! by the process and not recovered.

mod files;
mod index;
mod slot;
mod writer;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

use files::{memfd, no_readahead, open_file};
use index::{encode_record, flush_class, recover};
use slot::{lock, SlotClass, RECORD};
pub use slot::{Locator, SlicePin, BLOCK};
pub use writer::{SliceWriter, WRITE_RUN};

/// How often committed slices are made durable and indexed.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Largest slot.
const LARGEST: u64 = 64 << 20;
/// Slots beyond what foyer's capacity admits: slices being written and
/// retired ones still being read.
const SLACK_SLOTS: u64 = 4096;

/// "Stop" for the background flusher, and the condition it sleeps on.
type StopSignal = (Mutex<bool>, Condvar);

/// Slices found at start, with the key each was indexed under.
pub type Recovered = Vec<(u128, Locator)>;

/// The node's slot files.
pub struct Slab {
    classes: Vec<Arc<SlotClass>>,
    flusher: Mutex<Option<(JoinHandle<()>, Arc<StopSignal>)>>,
    written: AtomicU64,
}

/// After a smaller `disk_bytes`: a class's files past its slots (records
/// there are not read) give their blocks back.
fn fit_files(class: &SlotClass, slots: u64) {
    let Some(index) = &class.index else { return };
    let fit = |file: &std::fs::File, len: u64| {
        if file.metadata().is_ok_and(|m| m.len() > len) {
            if let Err(e) = file.set_len(len) {
                warn!(error = %e, "cutting a slot file to its slots");
            }
        }
    };
    fit(&class.data, slots * class.slot_bytes);
    fit(index, slots * RECORD);
}

/// How far past the slots handed out a slot file is kept long: 1 GiB of
/// slots, all of them in a smaller cache.
const GROW_AHEAD: u64 = 1 << 30;

/// Keep a class's slot file [`GROW_AHEAD`] longer than the slots handed
/// out, sparse (no block is taken), off the workers (at the start, then by
/// the flusher each second), so that slices are written inside the file:
/// XFS answers a `RWF_NOWAIT` write that starts past the end with `EAGAIN`
/// (it zeroes the gap first), and such a write may hold the worker (see
/// [`crate::disk::write_all_at`]). A file found shorter than it was made
/// (at the start: than it may be, for the slices recovered) was cut by
/// something else: the slices past its new end are dropped first, or
/// growing it again would turn their bytes into zeros that read like
/// bytes.
fn grow_ahead(class: &SlotClass) {
    if class.index.is_none() {
        return;
    }
    let Ok(len) = class.data.metadata().map(|m| m.len()) else {
        return;
    };
    if len < class.grown.load(Ordering::Acquire) {
        class.retire_beyond(len);
    }
    let slots = class.states.len() as u64;
    let next = lock(&class.free).next as u64;
    let want = (next + GROW_AHEAD / class.slot_bytes).min(slots) * class.slot_bytes;
    if len >= want {
        class.grown.store(len, Ordering::Release);
    } else if let Err(e) = class.data.set_len(want) {
        warn!(error = %e, "growing a slot file ahead of its slices");
    } else {
        class.grown.store(want, Ordering::Release);
    }
}

/// After a smaller slice size: the files of classes no longer used (their
/// slices are not read) are removed, so their blocks go back.
fn remove_other_classes(dir: &Path, sizes: &[u64]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = name
            .strip_prefix("slots-")
            .and_then(|rest| rest.split_once('.'))
            .filter(|(_, ext)| *ext == "data" || *ext == "index")
            .and_then(|(size, _)| size.parse::<u64>().ok());
        if let Some(size) = size.filter(|s| !sizes.contains(s)) {
            warn!(
                file = name,
                slot_bytes = size,
                "removing the slot file of a slice size no longer used"
            );
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Slot sizes: 4 KiB, 16 KiB, ... up to the first that holds `max_slice`.
fn class_sizes(max_slice: u64) -> Vec<u64> {
    let mut sizes = vec![BLOCK];
    while *sizes.last().expect("one size") < max_slice.min(LARGEST) {
        let next = sizes.last().expect("one size") * 4;
        sizes.push(next);
    }
    sizes
}

impl Slab {
    /// Open the slot files under `dir` (a disk tier, recovered) or in memory
    /// (`dir` is `None`), for slices up to `max_slice` bytes with
    /// `capacity` bytes in all. Returns the slices recovered, by key.
    pub fn open(
        dir: Option<&Path>,
        capacity: u64,
        max_slice: u64,
    ) -> io::Result<(Arc<Slab>, Recovered)> {
        let mut classes = Vec::new();
        let mut recovered = Vec::new();
        let mut previous = 0u64;
        let sizes = class_sizes(max_slice);
        if let Some(dir) = dir {
            remove_other_classes(dir, &sizes);
        }
        for (i, slot_bytes) in sizes.into_iter().enumerate() {
            // A slice in this class is larger than the class below: so many fit.
            let smallest = (previous + 1).div_ceil(BLOCK) * BLOCK;
            let slots = (capacity / smallest + SLACK_SLOTS).min(u32::MAX as u64 / 2);
            previous = slot_bytes;
            let (data, index) = match dir {
                Some(dir) => (
                    no_readahead(open_file(&dir.join(format!("slots-{slot_bytes}.data")))?),
                    Some(open_file(&dir.join(format!("slots-{slot_bytes}.index")))?),
                ),
                None => (memfd(&format!("edgeslice-slots-{slot_bytes}"))?, None),
            };
            // Zeroed pages come from the kernel untouched: RSS grows with
            // the slots used, not with the slots possible.
            let states: Box<[AtomicU64]> = {
                let zeroed = Box::<[u64]>::new_zeroed_slice(slots as usize);
                // SAFETY: zero is a valid u64; AtomicU64 has u64's layout.
                let words: Box<[u64]> = unsafe { zeroed.assume_init() };
                // SAFETY: AtomicU64 has the same size, alignment and bit
                // validity as u64 (its documentation says so).
                unsafe { Box::from_raw(Box::into_raw(words) as *mut [AtomicU64]) }
            };
            let class = SlotClass {
                slot_bytes,
                data,
                index,
                states,
                free: Mutex::default(),
                pending: Mutex::default(),
                records: Mutex::default(),
                quarantine: Mutex::default(),
                sums: Mutex::default(),
                // Unknown until the first `grow_ahead`, which checks the
                // file against the slices recovered.
                grown: AtomicU64::new(u64::MAX),
            };
            recover(&class, i as u8, &mut recovered)?;
            fit_files(&class, slots);
            grow_ahead(&class);
            recovered
                .retain(|(_, loc)| loc.class != i as u8 || class.try_live(loc.slot, loc.epoch));
            classes.push(Arc::new(class));
        }
        let slab = Arc::new(Slab {
            classes,
            flusher: Mutex::new(None),
            written: AtomicU64::new(0),
        });
        if dir.is_some() {
            let signal = Arc::new((Mutex::new(false), Condvar::new()));
            let (s, sig) = (slab.clone(), signal.clone());
            let handle = std::thread::Builder::new()
                .name("edgeslice-index".into())
                .spawn(move || s.flush_loop(&sig))?;
            *lock(&slab.flusher) = Some((handle, signal));
        }
        Ok((slab, recovered))
    }

    /// A slot for a slice of `len` bytes; `None` when the slice is too large
    /// or every slot of its class is taken.
    pub fn allocate(&self, len: u64) -> Option<SliceWriter> {
        let i = self.classes.iter().position(|c| c.slot_bytes >= len)?;
        let class = &self.classes[i];
        let slot = class.allocate()?;
        Some(SliceWriter::new(class.clone(), i as u8, slot, len))
    }

    /// The slice in `writer` is complete: make it readable and queue its
    /// index record. Returns its locator, for foyer's index.
    pub fn commit(&self, writer: SliceWriter, key: u128) -> Locator {
        let (class, class_index, slot, len, sum) = writer.into_committed();
        let epoch = class.make_live(slot);
        self.written.fetch_add(len, Ordering::Relaxed);
        if class.index.is_some() {
            let record = encode_record(key, slot, len, sum);
            lock(&class.pending).push((slot, epoch, record));
        }
        Locator {
            class: class_index,
            slot,
            epoch,
            len,
        }
    }

    /// Pin the slice `loc` names for reading; `None` when its slot was
    /// retired since (the slice left the cache).
    pub fn pin(&self, loc: &Locator) -> Option<SlicePin> {
        let class = self.classes.get(loc.class as usize)?;
        class.try_pin(loc.slot, loc.epoch, loc.len)
    }

    /// The slice `loc` names left foyer's index: its record is zeroed, and
    /// its slot is freed once nobody reads it.
    pub fn retire(&self, loc: &Locator) {
        if let Some(class) = self.classes.get(loc.class as usize) {
            class.retire(loc.slot, loc.epoch);
        }
    }

    /// Bytes written into slots since start.
    pub fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Make what was committed durable and index it; free the slots whose
    /// zeroed records are durable.
    pub fn flush_records(&self) {
        self.classes.iter().for_each(|class| flush_class(class));
    }

    fn flush_loop(&self, signal: &StopSignal) {
        let (stop, wake) = signal;
        let mut stopped = lock(stop);
        while !*stopped {
            stopped = wake
                .wait_timeout(stopped, FLUSH_EVERY)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            drop(stopped);
            self.flush_records();
            self.classes.iter().for_each(|class| grow_ahead(class));
            stopped = lock(stop);
        }
    }

    /// Stop the background flusher after a last flush.
    pub fn close(&self) {
        if let Some((handle, signal)) = lock(&self.flusher).take() {
            *lock(&signal.0) = true;
            signal.1.notify_all();
            let _ = handle.join();
        }
        self.flush_records();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L9: after a smaller slice size the files of the classes gone are
    /// removed, and after a smaller disk tier a class's files are cut to
    /// its slots: their blocks go back (on f2b8ad1 they stayed for good).
    #[test]
    fn a_smaller_cache_gives_back_the_disk_it_no_longer_uses() {
        let dir = std::env::temp_dir().join(format!("edgeslice-shrink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let (slab, _) = Slab::open(Some(&dir), 64 << 20, 1 << 20).unwrap();
            let mut w = slab.allocate(1 << 20).unwrap();
            w.write_at(0, &vec![3u8; 1 << 20]).unwrap();
            slab.commit(w, 7);
            slab.close();
        }
        let big = dir.join("slots-1048576.data");
        assert!(big.exists());
        // A slot file longer than its slots (as a larger disk tier left it).
        let small = dir.join("slots-4096.data");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&small)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let (slab, _) = Slab::open(Some(&dir), 1 << 20, 64 << 10).unwrap();
        assert!(!big.exists(), "the 1 MiB class's file stayed");
        assert!(!dir.join("slots-1048576.index").exists());
        let len = std::fs::metadata(&small).unwrap().len();
        assert!(len < 1 << 40, "not cut to its slots: {len}");
        slab.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A slab on `dir` with four 1 MiB slices, keys 0 to 3, and their
    /// locators; the slot file of their class.
    fn four_slices(dir: &Path) -> (Arc<Slab>, Vec<Locator>, std::path::PathBuf) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let (slab, _) = Slab::open(Some(dir), 64 << 20, 1 << 20).unwrap();
        let mut locs = Vec::new();
        for key in 0..4u128 {
            let mut w = slab.allocate(1 << 20).unwrap();
            w.write_at(0, &vec![key as u8 + 1; 1 << 20]).unwrap();
            locs.push(slab.commit(w, key));
        }
        (slab, locs, dir.join("slots-1048576.data"))
    }

    /// Cut `path` inside the third of the four slices.
    fn cut_in_the_third(path: &Path) {
        let data = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        data.set_len((2 << 20) + 4096).unwrap();
    }

    /// A slot file cut by something else while serving: the slab grows its
    /// files ahead of their slices, and growing a cut one again would have
    /// turned the slices past the cut into zeros that read like bytes;
    /// they are dropped instead (a first version kept them).
    #[test]
    fn a_slot_file_cut_short_is_not_grown_back_under_its_slices() {
        let dir = std::env::temp_dir().join(format!("edgeslice-cut-{}", std::process::id()));
        let (slab, locs, data) = four_slices(&dir);
        let len = || std::fs::metadata(&data).unwrap().len();
        assert!(len() > 4 << 20, "not grown ahead");
        cut_in_the_third(&data);
        slab.classes.iter().for_each(|class| grow_ahead(class));
        assert!(len() > 4 << 20, "not grown again");
        let live: Vec<bool> = locs.iter().map(|l| slab.pin(l).is_some()).collect();
        assert_eq!(
            live,
            [true, true, false, false],
            "slices past the cut stayed"
        );
        slab.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same cut while edgeslice was stopped: the slices past it are not
    /// recovered (the file is grown at the start; a first version grew it
    /// under them).
    #[test]
    fn a_slot_file_cut_while_stopped_is_not_grown_back_under_its_slices() {
        let dir =
            std::env::temp_dir().join(format!("edgeslice-cut-stopped-{}", std::process::id()));
        let (slab, _, data) = four_slices(&dir);
        slab.close();
        drop(slab);
        cut_in_the_third(&data);
        let (slab, recovered) = Slab::open(Some(&dir), 64 << 20, 1 << 20).unwrap();
        let mut keys: Vec<u128> = recovered.iter().map(|(key, _)| *key).collect();
        keys.sort();
        assert_eq!(keys, [0, 1], "slices past the cut were recovered");
        let live: Vec<bool> = recovered
            .iter()
            .map(|(_, l)| slab.pin(l).is_some())
            .collect();
        assert_eq!(live, [true, true]);
        slab.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn classes_grow_by_four_up_to_the_largest_slice() {
        assert_eq!(class_sizes(16), vec![4096]);
        assert_eq!(
            class_sizes(1 << 20),
            vec![4096, 16384, 65536, 262144, 1 << 20]
        );
        assert_eq!(class_sizes(1 << 30).last(), Some(&LARGEST));
    }

    /// Readers on several threads pin and read slices while another thread
    /// retires them and writes new slices into the freed slots: every read
    /// sees exactly the bytes of the slice its locator named.
    #[test]
    fn readers_never_see_a_reused_slot_under_concurrent_churn() {
        use std::sync::atomic::AtomicBool;
        const LEN: u64 = 4096;
        let (slab, _) = Slab::open(None, 64 * LEN, LEN).unwrap();
        let current: Arc<Mutex<Vec<(Locator, u8)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let store = |fill: u8| {
            let mut w = slab.allocate(LEN)?;
            w.write_at(0, &[fill; LEN as usize]).unwrap();
            Some((slab.commit(w, fill as u128), fill))
        };
        for fill in 0..4u8 {
            lock(&current).push(store(fill).unwrap());
        }
        let readers: Vec<_> = (0..3)
            .map(|t| {
                let (slab, current, stop) = (slab.clone(), current.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut reads, mut i) = (0u64, t);
                    while !stop.load(Ordering::Relaxed) {
                        let picked = {
                            let all = lock(&current);
                            all[i % all.len()]
                        };
                        i += 7;
                        // Give the writer time to retire it and reuse its slot.
                        std::thread::yield_now();
                        let Some(pin) = slab.pin(&picked.0) else {
                            continue;
                        };
                        std::thread::yield_now();
                        let bytes = pin.read(0, LEN).unwrap();
                        assert!(
                            bytes.iter().all(|b| *b == picked.1),
                            "read another slice's bytes"
                        );
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let mut fill = 4u8;
        for round in 0..20_000u32 {
            let (old, _) = {
                let mut all = lock(&current);
                let at = round as usize % all.len();
                all.remove(at)
            };
            slab.retire(&old);
            fill = fill.wrapping_add(1);
            // A slot may still be held by a reader: another one is handed out.
            let fresh = store(fill).expect("a free slot");
            lock(&current).push(fresh);
        }
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(reads > 0);
    }

    #[test]
    fn a_pinned_slot_is_not_reused_until_its_reader_leaves() {
        let (slab, _) = Slab::open(None, 64 * 1024, 4096).unwrap();
        let mut w = slab.allocate(100).unwrap();
        w.write_at(0, &[7u8; 100]).unwrap();
        let loc = slab.commit(w, 1);
        let pin = slab.pin(&loc).expect("live");
        slab.retire(&loc);
        assert!(
            slab.pin(&loc).is_none(),
            "a retired slice is not pinned again"
        );
        // Its slot is still held by the reader: a new slice gets another one.
        let other = slab.allocate(100).unwrap();
        assert_ne!(other.slot, loc.slot);
        assert_eq!(pin.read(0, 100).unwrap(), vec![7u8; 100]);
        drop(other);
        drop(pin);
        // Freed with its last reader: handed out again, in a new epoch.
        let mut again = Vec::new();
        while let Some(w) = slab.allocate(100) {
            if w.slot == loc.slot {
                let reused = slab.commit(w, 2);
                assert_ne!(reused.epoch, loc.epoch);
                assert!(
                    slab.pin(&loc).is_none(),
                    "the old locator names a reused slot"
                );
                assert!(slab.pin(&reused).is_some());
                return;
            }
            again.push(w);
        }
        panic!("the freed slot never came back");
    }
}
