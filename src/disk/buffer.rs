//! The memory disk reads land in: buffers each thread keeps for its next
//! read, aligned for `O_DIRECT` when asked.

use super::arena::Block;

/// The alignment of an O_DIRECT read: its offset, length and memory.
pub(super) const DIRECT_ALIGN: usize = 4096;

/// Memory for bytes read from disk, kept for the next read when dropped:
/// a fresh megabyte from the allocator costs a `mmap`, a page fault and a
/// zeroed page per 4 KiB, and a TLB shootdown when it goes, far more than
/// the read itself.
///
/// A large read around the page cache lands in a block of the thread's
/// huge-page arena instead ([`super::arena`]); the buffer then holds that
/// block and the length read into it, and the `Vec` stays unused.
pub struct Buffer(
    pub(super) Vec<u8>,
    pub(super) usize,
    pub(super) Option<InBlock>,
);

/// The bytes a read brought into an arena block: they start at the
/// buffer's index and are this long.
pub(super) struct InBlock {
    pub(super) block: Block,
    pub(super) len: usize,
}

/// The largest read a kept buffer serves.
const KEPT_BUFFER_BYTES: usize = 1024 * 1024;
/// Room a buffer needs beyond a read's length: the read rounded out to the
/// O_DIRECT alignment at both ends, plus the padding that aligns its start.
const DIRECT_ROOM: usize = 3 * DIRECT_ALIGN;
/// The largest kept buffer's capacity: the largest read and its room.
pub(super) const KEPT_CAPACITY: usize = KEPT_BUFFER_BYTES + DIRECT_ROOM;
/// What a thread keeps at most, in bytes (the memory formula's "16 MiB of
/// disk-read buffers" per worker) and in buffers.
const KEPT_BYTES: usize = 16 * KEPT_CAPACITY;
const KEPT_COUNT: usize = 256;
/// New buffers are made in steps of this size, so that one made for a read
/// serves the next read of about the same length.
const STEP: usize = 64 * 1024;

/// The buffers a thread keeps, oldest first, and their capacities' sum.
#[derive(Default)]
struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static KEPT: std::cell::RefCell<Kept> = std::cell::RefCell::default();
}

impl Buffer {
    /// A buffer for `len` bytes (and the room an O_DIRECT read of them
    /// needs): the smallest this thread kept that holds them, or a new one.
    /// A buffer is kept as it was made, never grown, so many connections'
    /// small reads (64 KiB ranges over HTTP/2) each find one of their size
    /// and none is copied into a larger one when it comes back.
    pub fn take(len: u64) -> Buffer {
        let Some(need) = usize::try_from(len)
            .ok()
            .filter(|&len| len <= KEPT_BUFFER_BYTES)
            .map(|len| len + DIRECT_ROOM)
        else {
            return Buffer(Vec::new(), 0, None);
        };
        let kept = KEPT
            .try_with(|k| {
                let mut k = k.borrow_mut();
                let best = k
                    .buffers
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, b)| b.capacity() >= need)
                    .min_by_key(|(_, b)| b.capacity())
                    .map(|(i, _)| i)?;
                let buffer = k.buffers.remove(best);
                k.bytes -= buffer.capacity();
                Some(buffer)
            })
            .ok()
            .flatten();
        let bytes = kept
            .unwrap_or_else(|| Vec::with_capacity(need.next_multiple_of(STEP).min(KEPT_CAPACITY)));
        Buffer(bytes, 0, None)
    }

    /// The bytes read into it.
    pub fn as_slice(&self) -> &[u8] {
        match &self.2 {
            // SAFETY: the read that set `InBlock` filled `len` bytes of the
            // block from `self.1`, within the block.
            Some(b) => unsafe { b.block.filled(self.1, b.len) },
            None => &self.0[self.1..],
        }
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0);
        let capacity = bytes.capacity();
        if capacity == 0 || capacity > KEPT_CAPACITY {
            return;
        }
        bytes.clear();
        // A thread being torn down keeps nothing. Past the bounds, the
        // buffers kept longest go first.
        let _ = KEPT.try_with(|k| {
            let mut k = k.borrow_mut();
            k.bytes += capacity;
            k.buffers.push(bytes);
            let mut oldest = 0;
            while k.bytes > KEPT_BYTES || k.buffers.len() - oldest > KEPT_COUNT {
                k.bytes -= k.buffers[oldest].capacity();
                oldest += 1;
            }
            k.buffers.drain(..oldest);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> (usize, usize) {
        KEPT.with(|k| {
            let k = k.borrow();
            (k.buffers.len(), k.bytes)
        })
    }

    #[test]
    fn a_small_reads_buffer_comes_back_as_it_was_made() {
        let taken = Buffer::take(64 * 1024);
        let (ptr, capacity) = (taken.0.as_ptr(), taken.0.capacity());
        assert!(capacity >= 64 * 1024 + DIRECT_ROOM);
        assert!(capacity < KEPT_CAPACITY, "{capacity}");
        drop(taken);
        let again = Buffer::take(64 * 1024);
        assert_eq!(again.0.capacity(), capacity, "not grown when kept");
        assert_eq!(again.0.as_ptr(), ptr, "the same memory");
    }

    #[test]
    fn many_small_reads_each_find_a_buffer_and_a_large_one_is_not_taken_for_them() {
        let large = Buffer::take(KEPT_BUFFER_BYTES as u64);
        assert_eq!(large.0.capacity(), KEPT_CAPACITY);
        let large_ptr = large.0.as_ptr();
        let small: Vec<Buffer> = (0..64).map(|_| Buffer::take(64 * 1024)).collect();
        let ptrs: Vec<*const u8> = small.iter().map(|b| b.0.as_ptr()).collect();
        drop(large);
        drop(small);
        let again: Vec<Buffer> = (0..64).map(|_| Buffer::take(64 * 1024)).collect();
        for b in &again {
            assert!(ptrs.contains(&b.0.as_ptr()), "a kept small buffer");
        }
        assert_eq!(Buffer::take(KEPT_BUFFER_BYTES as u64).0.as_ptr(), large_ptr);
    }

    #[test]
    fn what_a_thread_keeps_is_bounded_in_bytes_and_count() {
        let large: Vec<Buffer> = (0..40)
            .map(|_| Buffer::take(KEPT_BUFFER_BYTES as u64))
            .collect();
        drop(large);
        let (count, bytes) = kept();
        assert!(bytes <= KEPT_BYTES, "{bytes}");
        assert_eq!(count, 16);
        let small: Vec<Buffer> = (0..400).map(|_| Buffer::take(1)).collect();
        drop(small);
        let (count, bytes) = kept();
        assert!(count <= KEPT_COUNT, "{count}");
        assert!(bytes <= KEPT_BYTES, "{bytes}");
        let huge = Buffer::take(KEPT_BUFFER_BYTES as u64 + 1);
        assert_eq!(
            huge.0.capacity(),
            0,
            "a read larger than kept buffers gets its own"
        );
    }
}
