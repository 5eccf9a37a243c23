//! One slot's life in a size class: its state word (epoch, live bit,
//! readers), the class's free list, and the release of a slot once nobody
//! reads it.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::files::punch_hole;

/// Smallest slot; also the unit slices occupy on disk.
pub const BLOCK: u64 = 4 * 1024;
/// Index record size.
pub(super) const RECORD: u64 = 64;

// A slot's state word: readers in the low 23 bits, "live" in bit 23, the
// epoch above.
pub(super) const READERS: u64 = (1 << 23) - 1;
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

    pub(super) fn unpin(&self, slot: u32) {
        let before = self.state(slot).fetch_sub(1, Ordering::AcqRel);
        // The last reader of a retired slot frees it.
        if before & READERS == 1 && before & LIVE == 0 {
            self.release(slot);
        }
    }
}
