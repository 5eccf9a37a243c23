//! Memory for the large reads around the page cache, in 2 MiB huge pages.
//!
//! An `O_DIRECT` read lands in the process's own memory, and the block
//! layer hands the device one segment per physically contiguous run of it:
//! a 1 MiB read into ordinary memory is 256 pages, so 256 segments (and,
//! past the device's `max_segments`, two requests). A virtual disk pays
//! for every segment: on this project's test host (a Firecracker guest,
//! virtio-blk) 1 MiB `O_DIRECT` reads, two in flight, gave 1053-1250 MiB/s
//! into 4 KiB pages and 2379-2480 MiB/s into one huge page each, 1.7 against
//! 0.8 ms a request (`tools/bench_thp.py`, three rounds each way). So each
//! thread that reads around the page cache
//! keeps an arena of [`BLOCKS`] blocks of [`BLOCK_BYTES`], 2 MiB-aligned
//! and advised `MADV_HUGEPAGE`: with transparent huge pages in `madvise` or
//! `always` mode every block is one contiguous run; without them the arena
//! is ordinary memory and nothing is lost.
//!
//! A block goes back to its arena from whichever thread drops it (the free
//! set is one atomic word); the lowest free block is handed out first, so
//! the pages touched stay as few as the reads in flight need. The arena is
//! unmapped when its thread and every block it lent are gone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// One block: the largest read around the page cache it serves. A slice's
/// part never spans more than its slice, and slices are at most 1 MiB by
/// default; a larger read takes the heap's memory as before.
pub(super) const BLOCK_BYTES: usize = 1024 * 1024;
/// Blocks per thread's arena: 8 MiB, four huge pages, touched only as
/// reads need them. A block is held from its read until its bytes are
/// sent; past eight such reads at once, a read takes heap memory.
pub(super) const BLOCKS: u32 = 8;
/// A huge page; the arena is aligned to it.
const HUGE: usize = 2 * 1024 * 1024;

/// A thread's blocks.
pub(super) struct Arena {
    base: *mut u8,
    /// Bit `i` set: block `i` is free.
    free: AtomicU32,
}

// SAFETY: the arena's memory is only reached through the blocks it lends,
// each owned by one `Block` at a time; its free set is atomic.
unsafe impl Send for Arena {}
unsafe impl Sync for Arena {}

impl Arena {
    /// A new arena, `None` if the kernel gives no memory for it.
    pub(super) fn new() -> Option<Arc<Arena>> {
        let len = BLOCKS as usize * BLOCK_BYTES;
        // Room to align the start to a huge page, the rest given back.
        let reserve = len + HUGE;
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let base = start.next_multiple_of(HUGE);
        let (head, tail) = (base - start, start + reserve - (base + len));
        // SAFETY: both ranges are inside the mapping just made and outside
        // the arena; an advice the kernel does not take leaves 4 KiB pages.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((base + len) as *mut libc::c_void, tail);
            }
            libc::madvise(base as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Some(Arc::new(Arena {
            base: base as *mut u8,
            free: AtomicU32::new(u32::MAX >> (32 - BLOCKS)),
        }))
    }

    /// The lowest free block, `None` if every block is lent.
    pub(super) fn take(self: &Arc<Self>) -> Option<Block> {
        let mut free = self.free.load(Ordering::Acquire);
        loop {
            if free == 0 {
                return None;
            }
            let index = free.trailing_zeros();
            match self.free.compare_exchange_weak(
                free,
                free & !(1 << index),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Block {
                        arena: self.clone(),
                        index,
                    });
                }
                Err(now) => free = now,
            }
        }
    }

    /// How many blocks are lent now.
    #[cfg(test)]
    fn lent(&self) -> u32 {
        BLOCKS - self.free.load(Ordering::Acquire).count_ones()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the arena's own mapping; no block is left (each holds an
        // `Arc` of it).
        unsafe {
            libc::munmap(
                self.base as *mut libc::c_void,
                BLOCKS as usize * BLOCK_BYTES,
            );
        }
    }
}

/// One block of an arena, lent to one read and the bytes it brought in,
/// back to the arena when dropped.
pub(super) struct Block {
    arena: Arc<Arena>,
    index: u32,
}

impl Block {
    /// The block's first byte; [`BLOCK_BYTES`] are this block's alone.
    pub(super) fn as_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `index < BLOCKS`: within the arena's mapping.
        unsafe { self.arena.base.add(self.index as usize * BLOCK_BYTES) }
    }

    /// The block's first byte, to tell blocks apart.
    #[cfg(test)]
    pub(super) fn as_ptr(&self) -> *const u8 {
        // SAFETY: `index < BLOCKS`: within the arena's mapping.
        unsafe { self.arena.base.add(self.index as usize * BLOCK_BYTES) }
    }

    /// `len` bytes of the block from `start`, which a read has filled.
    ///
    /// # Safety
    /// `start + len <= BLOCK_BYTES` and those bytes were written.
    pub(super) unsafe fn filled(&self, start: usize, len: usize) -> &[u8] {
        // SAFETY: as the caller promises; the block is this value's alone.
        unsafe {
            std::slice::from_raw_parts(
                self.arena
                    .base
                    .add(self.index as usize * BLOCK_BYTES + start),
                len,
            )
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.arena.free.fetch_or(1 << self.index, Ordering::AcqRel);
    }
}

/// A block as the memory of a read: monoio's io_uring read writes into it
/// while it owns it, each read after the bytes already there, up to `end`.
pub(super) struct Window {
    pub(super) block: Block,
    end: usize,
    /// The bytes filled from the block's start.
    pub(super) filled: usize,
}

impl Window {
    /// The first `end` bytes of `block` (at most [`BLOCK_BYTES`]), empty.
    pub(super) fn new(block: Block, end: usize) -> Window {
        Window {
            block,
            end: end.min(BLOCK_BYTES),
            filled: 0,
        }
    }
}

// SAFETY: the pointer is the block's, which this window owns until the
// read gives it back; `bytes_total` never passes the block's end.
unsafe impl monoio::buf::IoBufMut for Window {
    fn write_ptr(&mut self) -> *mut u8 {
        // SAFETY: `filled <= end <= BLOCK_BYTES`.
        unsafe { self.block.as_mut_ptr().add(self.filled) }
    }

    fn bytes_total(&mut self) -> usize {
        self.end - self.filled
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.filled += pos;
    }
}

thread_local! {
    static ARENA: std::cell::OnceCell<Option<Arc<Arena>>> = const { std::cell::OnceCell::new() };
}

/// A block of this thread's arena, made at its first use; `None` when
/// every block is lent or the arena could not be made.
pub(super) fn take() -> Option<Block> {
    ARENA
        .try_with(|a| a.get_or_init(Arena::new).as_ref().and_then(|a| a.take()))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_lent_lowest_first_and_come_back_from_any_thread() {
        let arena = Arena::new().expect("an arena");
        assert_eq!(arena.base as usize % HUGE, 0, "aligned to a huge page");
        let mut blocks: Vec<Block> = (0..BLOCKS).map(|_| arena.take().unwrap()).collect();
        assert!(arena.take().is_none(), "all lent");
        assert_eq!(arena.lent(), BLOCKS);
        // Each block is its own memory: write all of each, read it back.
        for (i, b) in blocks.iter_mut().enumerate() {
            // SAFETY: the block's bytes are this test's alone.
            unsafe { std::ptr::write_bytes(b.as_mut_ptr(), i as u8, BLOCK_BYTES) };
        }
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: written just above.
            assert!(unsafe { b.filled(0, BLOCK_BYTES) }
                .iter()
                .all(|&x| x == i as u8));
        }
        let third = blocks.remove(3);
        std::thread::spawn(move || drop(third)).join().unwrap();
        assert_eq!(arena.lent(), BLOCKS - 1);
        let again = arena.take().unwrap();
        assert_eq!(again.index, 3, "the lowest free block");
        drop(blocks);
        drop(again);
        assert_eq!(arena.lent(), 0);
    }
}
