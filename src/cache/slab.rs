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

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tracing::warn;

const KIB: u64 = 1 << 10;
/// Smallest slot; also the unit slices occupy on disk.
pub const BLOCK: u64 = 4 * KIB;
/// Largest slot.
const LARGEST: u64 = 64 << 20;
/// Slots beyond what foyer's capacity admits: slices being written and
/// retired ones still being read.
const SLACK_SLOTS: u64 = 4096;
/// Index record size.
const RECORD: u64 = 64;
const MAGIC: u64 = u64::from_le_bytes(*b"EDGSLOT1");
/// How often committed slices are made durable and indexed.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

// A slot's state word: readers in the low 23 bits, "live" in bit 23, the
// epoch above.
const READERS: u64 = (1 << 23) - 1;
const LIVE: u64 = 1 << 23;
const EPOCH_SHIFT: u32 = 24;

fn epoch_of(state: u64) -> u64 {
    state >> EPOCH_SHIFT
}

/// Where one committed slice is: its class, slot, the slot's epoch when it
/// was committed, and its length. Foyer's index holds one per slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator {
    class: u8,
    slot: u32,
    epoch: u64,
    len: u64,
}

impl Locator {
    /// The slice's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the slice is empty (never stored; kept for clippy's sake).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the slice occupies, and what foyer weighs it by: its length in
    /// whole 4 KiB blocks.
    pub fn weight(&self) -> usize {
        self.len.div_ceil(BLOCK).max(1) as usize * BLOCK as usize
    }
}

/// One size class: a slot file, its index file and its slots' states.
struct SlotClass {
    slot_bytes: u64,
    data: File,
    /// `None` without a disk tier: nothing to recover.
    index: Option<File>,
    states: Box<[AtomicU64]>,
    free: Mutex<FreeSlots>,
    /// Committed slices whose index records are still to be written.
    pending: Mutex<Vec<(u32, u64, [u8; RECORD as usize])>>,
    /// Serialises index writes against retiring (see [`Slab::retire`]).
    records: Mutex<()>,
    /// Freed slots whose zeroed records are not yet on disk: they are
    /// punched and reused only after the index file's next `fdatasync`, so
    /// that after a power loss no old record can name a slot's new bytes.
    quarantine: Mutex<Vec<u32>>,
}

#[derive(Default)]
struct FreeSlots {
    list: Vec<u32>,
    /// Slots below this have been handed out at least once.
    next: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SlotClass {
    fn state(&self, slot: u32) -> &AtomicU64 {
        &self.states[slot as usize]
    }

    fn allocate(&self) -> Option<u32> {
        let mut free = lock(&self.free);
        if let Some(slot) = free.list.pop() {
            return Some(slot);
        }
        if (free.next as usize) < self.states.len() {
            free.next += 1;
            return Some(free.next - 1);
        }
        None
    }

    /// Give `slot` back: its blocks to the filesystem, the slot to the free
    /// list; with an index, once its zeroed record is durable.
    fn release(&self, slot: u32) {
        if self.index.is_some() {
            lock(&self.quarantine).push(slot);
        } else {
            self.free_now(slot);
        }
    }

    fn free_now(&self, slot: u32) {
        punch_hole(&self.data, slot as u64 * self.slot_bytes, self.slot_bytes);
        lock(&self.free).list.push(slot);
    }

    fn unpin(&self, slot: u32) {
        let before = self.state(slot).fetch_sub(1, Ordering::AcqRel);
        // The last reader of a retired slot frees it.
        if before & READERS == 1 && before & LIVE == 0 {
            self.release(slot);
        }
    }
}

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

/// A slice being written into its slot; dropped without [`Slab::commit`],
/// the slot goes back to the free list.
pub struct SliceWriter {
    class: Arc<SlotClass>,
    class_index: u8,
    slot: u32,
    len: u64,
    committed: bool,
}

impl SliceWriter {
    /// Write `data` at `offset` within the slice.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.len {
            return Err(io::Error::other(format!(
                "{} bytes at {offset} overrun a slice of {}",
                data.len(),
                self.len
            )));
        }
        let at = self.slot as u64 * self.class.slot_bytes + offset;
        self.class.data.write_all_at(data, at)
    }
}

impl Drop for SliceWriter {
    fn drop(&mut self) {
        if !self.committed {
            self.class.release(self.slot);
        }
    }
}

/// A slot pinned for reading: it is not reused while this lives.
pub struct SlicePin {
    class: Arc<SlotClass>,
    slot: u32,
    len: u64,
}

impl std::fmt::Debug for SlicePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlicePin")
            .field("slot", &self.slot)
            .field("len", &self.len)
            .finish()
    }
}

impl SlicePin {
    /// The slot file.
    pub fn file(&self) -> &File {
        &self.class.data
    }

    /// Where the slice starts in [`SlicePin::file`].
    pub fn offset(&self) -> u64 {
        self.slot as u64 * self.class.slot_bytes
    }

    /// The slice's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes from `skip` into the slice, copied out (for a sink that
    /// cannot send from a file).
    pub fn read(&self, skip: u64, len: u64) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len as usize];
        self.file().read_exact_at(&mut buf, self.offset() + skip)?;
        Ok(Bytes::from(buf))
    }
}

impl Drop for SlicePin {
    fn drop(&mut self) {
        self.class.unpin(self.slot);
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
        for (i, slot_bytes) in class_sizes(max_slice).into_iter().enumerate() {
            // A slice in this class is larger than the class below: so many fit.
            let smallest = (previous + 1).div_ceil(BLOCK) * BLOCK;
            let slots = (capacity / smallest + SLACK_SLOTS).min(u32::MAX as u64 / 2);
            previous = slot_bytes;
            let (data, index) = match dir {
                Some(dir) => (
                    open_file(&dir.join(format!("slots-{slot_bytes}.data")))?,
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
            };
            recover(&class, i as u8, &mut recovered)?;
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
        Some(SliceWriter {
            class: class.clone(),
            class_index: i as u8,
            slot,
            len,
            committed: false,
        })
    }

    /// The slice in `writer` is complete: make it readable and queue its
    /// index record. Returns its locator, for foyer's index.
    pub fn commit(&self, mut writer: SliceWriter, key: u128) -> Locator {
        writer.committed = true;
        let class = &writer.class;
        let state = class.state(writer.slot);
        // Free and unread: readers 0, not live. Becomes live in its epoch.
        let epoch = epoch_of(state.load(Ordering::Acquire));
        state.store((epoch << EPOCH_SHIFT) | LIVE, Ordering::Release);
        self.written.fetch_add(writer.len, Ordering::Relaxed);
        if class.index.is_some() {
            let record = encode_record(key, writer.slot, writer.len);
            lock(&class.pending).push((writer.slot, epoch, record));
        }
        Locator {
            class: writer.class_index,
            slot: writer.slot,
            epoch,
            len: writer.len,
        }
    }

    /// Pin the slice `loc` names for reading; `None` when its slot was
    /// retired since (the slice left the cache).
    pub fn pin(&self, loc: &Locator) -> Option<SlicePin> {
        let class = self.classes.get(loc.class as usize)?;
        let state = class.state(loc.slot);
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current & LIVE == 0 || epoch_of(current) != loc.epoch || current & READERS == READERS
            {
                return None;
            }
            match state.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(SlicePin {
                        class: class.clone(),
                        slot: loc.slot,
                        len: loc.len,
                    })
                }
                Err(now) => current = now,
            }
        }
    }

    /// The slice `loc` names left foyer's index: its record is zeroed, and
    /// its slot is freed once nobody reads it.
    pub fn retire(&self, loc: &Locator) {
        let Some(class) = self.classes.get(loc.class as usize) else {
            return;
        };
        let state = class.state(loc.slot);
        let mut current = state.load(Ordering::Acquire);
        let readers = loop {
            if current & LIVE == 0 || epoch_of(current) != loc.epoch {
                return; // retired already
            }
            let next = ((loc.epoch + 1) << EPOCH_SHIFT) | (current & READERS);
            match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break current & READERS,
                Err(now) => current = now,
            }
        };
        if let Some(index) = &class.index {
            let _guard = lock(&class.records);
            if let Err(e) = index.write_all_at(&[0u8; RECORD as usize], loc.slot as u64 * RECORD) {
                warn!(error = %e, "zeroing a slot's index record");
            }
        }
        if readers == 0 {
            class.release(loc.slot);
        }
    }

    /// Bytes written into slots since start.
    pub fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Make what was committed durable, then index it: `fdatasync` each slot
    /// file with pending records, then write the records of slices still
    /// live. Then make the index durable and free the slots whose records
    /// were zeroed before it.
    pub fn flush_records(&self) {
        for class in &self.classes {
            let Some(index) = &class.index else { continue };
            let pending = std::mem::take(&mut *lock(&class.pending));
            let freed = std::mem::take(&mut *lock(&class.quarantine));
            if pending.is_empty() && freed.is_empty() {
                continue;
            }
            if !pending.is_empty() {
                match class.data.sync_data() {
                    Ok(()) => {
                        let _guard = lock(&class.records);
                        for (slot, epoch, record) in pending {
                            let now = class.state(slot).load(Ordering::Acquire);
                            if now & LIVE == 0 || epoch_of(now) != epoch {
                                continue; // retired meanwhile: its record stays zero
                            }
                            if let Err(e) = index.write_all_at(&record, slot as u64 * RECORD) {
                                warn!(error = %e, "writing a slot's index record");
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "syncing a slot file; its new slices stay unindexed")
                    }
                }
            }
            if freed.is_empty() {
                continue;
            }
            match index.sync_data() {
                Ok(()) => freed.into_iter().for_each(|slot| class.free_now(slot)),
                Err(e) => {
                    warn!(error = %e, "syncing an index file; freed slots wait for the next try");
                    lock(&class.quarantine).extend(freed);
                }
            }
        }
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

fn encode_record(key: u128, slot: u32, len: u64) -> [u8; RECORD as usize] {
    let mut r = [0u8; RECORD as usize];
    r[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    r[8..24].copy_from_slice(&key.to_le_bytes());
    r[24..32].copy_from_slice(&len.to_le_bytes());
    r[32..36].copy_from_slice(&slot.to_le_bytes());
    let sum = twox_hash::XxHash64::oneshot(0, &r[..56]);
    r[56..64].copy_from_slice(&sum.to_le_bytes());
    r
}

/// A record's key and length, if it is whole and names `slot`.
fn decode_record(r: &[u8], slot: u32) -> Option<(u128, u64)> {
    let word = |a: usize| u64::from_le_bytes(r[a..a + 8].try_into().expect("8 bytes"));
    if word(0) != MAGIC || twox_hash::XxHash64::oneshot(0, &r[..56]) != word(56) {
        return None;
    }
    let named = u32::from_le_bytes(r[32..36].try_into().expect("4 bytes"));
    let key = u128::from_le_bytes(r[8..24].try_into().expect("16 bytes"));
    (named == slot).then_some((key, word(24)))
}

/// Read `class`'s index: valid records become live slots (epoch 0) and
/// recovered locators; every other slot below the last record is free.
fn recover(class: &SlotClass, class_index: u8, out: &mut Vec<(u128, Locator)>) -> io::Result<()> {
    let Some(index) = &class.index else {
        return Ok(());
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut &*index, &mut bytes)?;
    let records = (bytes.len() as u64 / RECORD).min(class.states.len() as u64) as u32;
    let mut free = lock(&class.free);
    for slot in 0..records {
        let at = (slot as u64 * RECORD) as usize;
        match decode_record(&bytes[at..at + RECORD as usize], slot) {
            Some((key, len)) if len > 0 && len <= class.slot_bytes => {
                class.state(slot).store(LIVE, Ordering::Release);
                let loc = Locator {
                    class: class_index,
                    slot,
                    epoch: 0,
                    len,
                };
                out.push((key, loc));
            }
            _ => free.list.push(slot),
        }
    }
    free.next = records;
    // Hand out low slots first.
    free.list.reverse();
    Ok(())
}

fn open_file(path: &PathBuf) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path:?}: {e}")))
}

fn memfd(name: &str) -> io::Result<File> {
    let name = std::ffi::CString::new(name).expect("no NUL in a memfd name");
    // SAFETY: a valid C string; the fd returned is owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Give `len` bytes at `offset` back to the filesystem; a filesystem that
/// cannot punch holes keeps them until the slot is written again.
fn punch_hole(file: &File, offset: u64, len: u64) {
    // SAFETY: fallocate on a descriptor the File owns.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc != 0 {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!(error = %io::Error::last_os_error(), "cannot punch holes in the slot files: freed slots keep their disk blocks until reused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_by_four_up_to_the_largest_slice() {
        assert_eq!(class_sizes(16), vec![4096]);
        assert_eq!(
            class_sizes(1 << 20),
            vec![4096, 16384, 65536, 262144, 1 << 20]
        );
        assert_eq!(class_sizes(1 << 30).last(), Some(&LARGEST));
    }

    #[test]
    fn a_pinned_slot_is_not_reused_until_its_reader_leaves() {
        let (slab, _) = Slab::open(None, 64 * 1024, 4096).unwrap();
        let w = slab.allocate(100).unwrap();
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

    #[test]
    fn slices_come_back_after_a_restart_and_freed_slots_wait_for_their_record() {
        let dir = std::env::temp_dir().join(format!("edgeslice-slab-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (kept, gone) = {
            let (slab, recovered) = Slab::open(Some(&dir), 1 << 20, 4096).unwrap();
            assert!(recovered.is_empty());
            let store = |key: u128, bytes: &[u8]| {
                let w = slab.allocate(bytes.len() as u64).unwrap();
                w.write_at(0, bytes).unwrap();
                slab.commit(w, key)
            };
            let kept = store(1, b"kept bytes");
            let gone = store(2, b"gone bytes");
            slab.flush_records();
            slab.retire(&gone);
            // Its zeroed record is not on disk yet: the slot is not handed out.
            let next = slab.allocate(10).unwrap();
            assert_ne!(
                next.slot, gone.slot,
                "reused before its zeroed record was durable"
            );
            drop(next);
            slab.close();
            (kept, gone)
        };
        let (slab, recovered) = Slab::open(Some(&dir), 1 << 20, 4096).unwrap();
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        let (key, loc) = recovered[0];
        assert_eq!((key, loc.slot, loc.len), (1, kept.slot, kept.len));
        assert_eq!(
            slab.pin(&loc).unwrap().read(0, 10).unwrap(),
            &b"kept bytes"[..]
        );
        // The retired slot is free again after the restart.
        let mut held = Vec::new();
        while let Some(w) = slab.allocate(10) {
            if w.slot == gone.slot {
                break;
            }
            assert!(held.len() < 10_000, "the retired slot never came back");
            held.push(w);
        }
        drop(held);
        slab.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let r = encode_record(42, 7, 1000);
        assert_eq!(decode_record(&r, 7), Some((42, 1000)));
        assert_eq!(decode_record(&r, 8), None, "a record names its own slot");
        let mut torn = r;
        torn[30] ^= 1;
        assert_eq!(decode_record(&torn, 7), None);
        assert_eq!(decode_record(&[0u8; 64], 0), None);
    }
}
