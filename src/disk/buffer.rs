//! The memory disk reads land in: buffers each thread keeps for its next
//! read, aligned for `O_DIRECT` when asked.

/// The alignment of an O_DIRECT read: its offset, length and memory.
pub(super) const DIRECT_ALIGN: usize = 4096;

/// Memory for bytes read from disk, kept for the next read when dropped:
/// a fresh megabyte from the allocator costs a `mmap`, a page fault and a
/// zeroed page per 4 KiB, and a TLB shootdown when it goes, far more than
/// the read itself.
pub struct Buffer(pub(super) Vec<u8>, pub(super) usize);

/// Buffers kept per thread, and the largest read a kept buffer serves.
const KEPT_BUFFERS: usize = 16;
const KEPT_BUFFER_BYTES: usize = 1024 * 1024;
/// A kept buffer's capacity: the largest read, rounded out to the O_DIRECT
/// alignment at both ends, plus the padding that aligns its start.
pub(super) const KEPT_CAPACITY: usize = KEPT_BUFFER_BYTES + 3 * DIRECT_ALIGN;

thread_local! {
    static BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Buffer {
    /// A buffer for `len` bytes: one this thread kept, or a new one.
    pub fn take(len: u64) -> Buffer {
        let kept = if len as usize <= KEPT_BUFFER_BYTES {
            BUFFERS.with(|b| b.borrow_mut().pop())
        } else {
            None
        };
        Buffer(kept.unwrap_or_default(), 0)
    }

    /// The bytes read into it.
    pub fn as_slice(&self) -> &[u8] {
        &self.0[self.1..]
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.0[self.1..]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0);
        if bytes.capacity() == 0 || bytes.capacity() > KEPT_CAPACITY {
            return;
        }
        bytes.clear();
        // Only a buffer that can hold any read kept is worth keeping.
        if bytes.capacity() < KEPT_CAPACITY {
            bytes.reserve_exact(KEPT_CAPACITY);
        }
        // A thread being torn down keeps nothing.
        let _ = BUFFERS.try_with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEPT_BUFFERS {
                b.push(bytes);
            }
        });
    }
}
