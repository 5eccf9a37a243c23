//! One slot's life in a size class: its state word (epoch, live bit,
//! readers) and every move of it (made live, pinned by a reader, retired,
//! unpinned), the class's free list, and the release of a slot once nobody
//! reads it. A reader holds a [`SlicePin`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tracing::warn;

use super::files::punch_hole;
use crate::http::sink::FilePart;
use crate::ops::metrics;

/// Smallest slot; also the unit slices occupy on disk.
pub const BLOCK: u64 = 4 * 1024;
/// Index record size.
pub(super) const RECORD: u64 = 64;

// A slot's state word: readers in the low 22 bits, "unchecked" in bit 22
// (its bytes are to be checked against their checksum on the next read),
// "live" in bit 23, the epoch above.
pub(super) const READERS: u64 = (1 << 22) - 1;
pub(super) const UNCHECKED: u64 = 1 << 22;
pub(super) const LIVE: u64 = 1 << 23;
pub(super) const EPOCH_SHIFT: u32 = 24;

pub(super) fn epoch_of(state: u64) -> u64 {
    state >> EPOCH_SHIFT
}

/// Where one committed slice is: its class, slot, the slot's epoch when it
/// was committed, and its length. Foyer's index holds one per slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator {
    pub(super) class: u8,
    pub(super) slot: u32,
    pub(super) epoch: u64,
    pub(super) len: u64,
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
pub(super) struct SlotClass {
    pub(super) slot_bytes: u64,
    pub(super) data: File,
    /// `None` without a disk tier: nothing to recover.
    pub(super) index: Option<File>,
    pub(super) states: Box<[AtomicU64]>,
    pub(super) free: Mutex<FreeSlots>,
    /// Committed slices whose index records are still to be written.
    pub(super) pending: Mutex<Vec<(u32, u64, [u8; RECORD as usize])>>,
    /// Serialises index writes against retiring (see [`Slab::retire`]).
    pub(super) records: Mutex<()>,
    /// Freed slots whose zeroed records are not yet on disk: they are
    /// punched and reused only after the index file's next `fdatasync`, so
    /// that after a power loss no old record can name a slot's new bytes.
    pub(super) quarantine: Mutex<Vec<u32>>,
    /// The checksums of recovered slices not checked since the start.
    pub(super) sums: Mutex<std::collections::HashMap<u32, u64>>,
    /// How long the slab last made the slot file (`grow_ahead`): shorter
    /// than that, something else cut it.
    pub(super) grown: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
pub(super) struct FreeSlots {
    pub(super) list: Vec<u32>,
    /// Slots below this have been handed out at least once.
    pub(super) next: u32,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SlotClass {
    pub(super) fn state(&self, slot: u32) -> &AtomicU64 {
        &self.states[slot as usize]
    }

    pub(super) fn allocate(&self) -> Option<u32> {
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
    pub(super) fn release(&self, slot: u32) {
        if self.index.is_some() {
            lock(&self.quarantine).push(slot);
        } else {
            self.free_now(slot);
        }
    }

    pub(super) fn free_now(&self, slot: u32) {
        punch_hole(&self.data, slot as u64 * self.slot_bytes, self.slot_bytes);
        lock(&self.free).list.push(slot);
    }

    /// A slice was written into `slot` (free, unread): it becomes live in
    /// the slot's epoch, which is returned.
    pub(super) fn make_live(&self, slot: u32) -> u64 {
        let state = self.state(slot);
        let epoch = epoch_of(state.load(Ordering::Acquire));
        state.store((epoch << EPOCH_SHIFT) | LIVE, Ordering::Release);
        epoch
    }

    /// Pin `slot` for reading if it is live in `epoch`: one CAS.
    pub(super) fn try_pin(self: &Arc<Self>, slot: u32, epoch: u64, len: u64) -> Option<SlicePin> {
        let state = self.state(slot);
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current & LIVE == 0 || epoch_of(current) != epoch || current & READERS == READERS {
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
                        class: self.clone(),
                        slot,
                        epoch,
                        len,
                        unchecked: current & UNCHECKED != 0,
                    })
                }
                Err(now) => current = now,
            }
        }
    }

    /// Retire `slot` if it is live in `epoch`: not live any more, the next
    /// epoch. Returns the readers it still has (the last one frees it), or
    /// `None` when it was retired already.
    pub(super) fn try_retire(&self, slot: u32, epoch: u64) -> Option<u64> {
        let state = self.state(slot);
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current & LIVE == 0 || epoch_of(current) != epoch {
                return None;
            }
            // The next epoch, not live, nothing left to check.
            let next = ((epoch + 1) << EPOCH_SHIFT) | (current & READERS);
            match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(current & READERS),
                Err(now) => current = now,
            }
        }
    }

    /// The slice in `slot` (live in `epoch`) leaves the cache: its record is
    /// zeroed, and the slot is freed once nobody reads it.
    pub(super) fn retire(&self, slot: u32, epoch: u64) {
        let Some(readers) = self.try_retire(slot, epoch) else {
            return; // retired already
        };
        lock(&self.sums).remove(&slot);
        if let Some(index) = &self.index {
            let _guard = lock(&self.records);
            if let Err(e) = index.write_all_at(&[0u8; RECORD as usize], slot as u64 * RECORD) {
                // The flusher zeroes it again before the slot is freed.
                warn!(error = %e, "zeroing a slot's index record");
            }
        }
        if readers == 0 {
            self.release(slot);
        }
    }

    /// Retire every live slot that does not lie whole within the first
    /// `len` bytes of the slot file.
    pub(super) fn retire_beyond(&self, len: u64) {
        let first = len / self.slot_bytes;
        // No slot past those handed out was ever live.
        let end = lock(&self.free).next as u64;
        let mut dropped = 0u64;
        for slot in first..end {
            let state = self.state(slot as u32).load(Ordering::Acquire);
            if state & LIVE != 0 {
                self.retire(slot as u32, epoch_of(state));
                dropped += 1;
            }
        }
        if dropped > 0 {
            metrics::with(|m| m.slot_faults.add(dropped));
            warn!(
                slot_bytes = self.slot_bytes,
                file_bytes = len,
                dropped,
                "a slot file is shorter than its slices; those past its end are dropped"
            );
        }
    }

    /// Whether `slot` is still live in `epoch`.
    pub(super) fn try_live(&self, slot: u32, epoch: u64) -> bool {
        let now = self.state(slot).load(Ordering::Acquire);
        now & LIVE != 0 && epoch_of(now) == epoch
    }

    pub(super) fn unpin(&self, slot: u32) {
        let before = self.state(slot).fetch_sub(1, Ordering::AcqRel);
        // The last reader of a retired slot frees it.
        if before & READERS == 1 && before & LIVE == 0 {
            self.release(slot);
        }
    }
}

/// A slot pinned for reading: it is not reused while this lives.
pub struct SlicePin {
    class: Arc<SlotClass>,
    slot: u32,
    epoch: u64,
    len: u64,
    /// Its bytes were to be checked when it was pinned.
    unchecked: bool,
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
    /// cannot send from a file), on this thread: tools and tests.
    pub fn read(&self, skip: u64, len: u64) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len as usize];
        self.file().read_exact_at(&mut buf, self.offset() + skip)?;
        Ok(Bytes::from(buf))
    }

    /// The checksum the slice's bytes must have before they are served, when
    /// they have not been checked since the start (a recovered slice).
    pub fn sum_to_check(&self) -> Option<u64> {
        if !self.unchecked {
            return None;
        }
        lock(&self.class.sums).get(&self.slot).copied()
    }

    /// Whether the slice's bytes are to be checked before they are served.
    pub fn unchecked(&self) -> bool {
        self.unchecked
    }

    /// The slice's bytes matched their checksum: not checked again.
    pub fn checked(&self) {
        let state = self.class.state(self.slot);
        let mut current = state.load(Ordering::Acquire);
        while current & LIVE != 0 && epoch_of(current) == self.epoch && current & UNCHECKED != 0 {
            match state.compare_exchange_weak(
                current,
                current & !UNCHECKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        lock(&self.class.sums).remove(&self.slot);
    }

    /// The slice's bytes could not be read as stored (an I/O error, a slot
    /// file cut short, a checksum that does not match): it leaves the cache
    /// now, so the next request fetches it again, and the fault is counted.
    pub fn fault(&self) {
        if self.class.try_live(self.slot, self.epoch) {
            metrics::with(|m| m.slot_faults.inc());
            warn!(
                slot = self.slot,
                slot_bytes = self.class.slot_bytes,
                "a cached slice could not be read; it is dropped"
            );
        }
        self.class.retire(self.slot, self.epoch);
        // A file cut short lost every slice past its new end: were they
        // kept, a later write that extends the file again would turn
        // them into zeros that read like bytes.
        if let Ok(meta) = self.class.data.metadata() {
            if meta.len() < self.offset() + self.len {
                self.class.retire_beyond(meta.len());
            }
        }
    }
}

/// `len` bytes from `skip` into a pinned slice: what a sink sends of it.
/// The slot stays pinned while this lives (inside a mapping's bytes, too).
pub struct PinnedPart {
    pin: SlicePin,
    skip: u64,
    len: u64,
}

impl SlicePin {
    /// The client's part of this slice, the pin moved into it.
    pub fn part(self, skip: u64, len: u64) -> PinnedPart {
        PinnedPart {
            pin: self,
            skip,
            len,
        }
    }
}

impl FilePart for PinnedPart {
    fn file(&self) -> &File {
        self.pin.file()
    }

    fn fault(&self) {
        self.pin.fault();
    }

    fn offset(&self) -> u64 {
        self.pin.offset() + self.skip
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for SlicePin {
    fn drop(&mut self) {
        self.class.unpin(self.slot);
    }
}
