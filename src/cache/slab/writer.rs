//! Writing one slice into its slot: bytes appended as they arrive from the
//! origin reach the slot file in aligned runs (large folios in the page
//! cache), and a writer dropped before its commit gives its slot back.

use std::hash::Hasher;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::slot::SlotClass;

/// A slice being written into its slot; dropped without
/// [`Slab::commit`](super::Slab::commit),
/// the slot goes back to the free list.
pub struct SliceWriter {
    class: Arc<SlotClass>,
    class_index: u8,
    pub(super) slot: u32,
    len: u64,
    committed: bool,
    /// Appended bytes not yet written, starting at `pending_at`.
    pending: Vec<Bytes>,
    pending_at: u64,
    pending_len: u64,
    /// A write of appended bytes began and has not ended well: until it
    /// does, they may not be in the slot file.
    writing: bool,
    /// The slice's checksum so far, over its first `hashed` bytes.
    hasher: twox_hash::XxHash3_64,
    hashed: u64,
}

/// Appended bytes reach the slot file in runs that start and end on this
/// boundary (or the slice's end): the page cache then holds them in large
/// folios, which `sendfile` walks at a fraction of the cost of 4 KiB pages.
pub const WRITE_RUN: u64 = 256 * 1024;

impl SliceWriter {
    pub(super) fn new(class: Arc<SlotClass>, class_index: u8, slot: u32, len: u64) -> SliceWriter {
        SliceWriter {
            class,
            class_index,
            slot,
            len,
            committed: false,
            pending: Vec::new(),
            pending_at: 0,
            pending_len: 0,
            writing: false,
            hasher: twox_hash::XxHash3_64::new(),
            hashed: 0,
        }
    }

    /// The slice is whole: its slot stays taken. Returns its class, class
    /// index, slot, length and checksum (`None` when its bytes were not
    /// written in order, so none was taken).
    pub(super) fn into_committed(mut self) -> (Arc<SlotClass>, u8, u32, u64, Option<u64>) {
        self.committed = true;
        let sum = (self.hashed == self.len).then(|| self.hasher.finish());
        (
            self.class.clone(),
            self.class_index,
            self.slot,
            self.len,
            sum,
        )
    }

    /// `data` is the slice's bytes at `offset`: into the checksum, when they
    /// come in order.
    fn hash(&mut self, offset: u64, data: &[u8]) {
        if offset == self.hashed {
            self.hasher.write(data);
            self.hashed += data.len() as u64;
        }
    }

    /// Append the slice's next bytes, `data` at `offset` (right after the
    /// bytes appended before). They are written in aligned runs of
    /// [`WRITE_RUN`] bytes, the last run when the slice is complete, by
    /// [`crate::disk::write_all_at`] (off the worker's loop while the kernel
    /// holds its writes).
    pub async fn append(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        if offset != self.pending_at + self.pending_len {
            return Err(io::Error::other(format!(
                "bytes at {offset} appended after {} bytes",
                self.pending_at + self.pending_len
            )));
        }
        self.hash(offset, &data);
        self.pending_len += data.len() as u64;
        self.pending.push(data);
        let end = self.pending_at + self.pending_len;
        let cut = if end == self.len {
            end
        } else {
            end / WRITE_RUN * WRITE_RUN
        };
        if cut > self.pending_at {
            self.write_pending(cut).await?;
        }
        Ok(())
    }

    /// Whether every byte appended has reached the slot file.
    pub fn is_flushed(&self) -> bool {
        self.pending.is_empty() && !self.writing
    }

    /// Write the pending bytes up to slice offset `cut`; keep the rest
    /// pending. A write that fails or is abandoned leaves the writer
    /// unflushed for good: its slice is never committed.
    async fn write_pending(&mut self, cut: u64) -> io::Result<()> {
        let mut take = cut - self.pending_at;
        let mut parts: Vec<Bytes> = Vec::with_capacity(self.pending.len());
        let mut rest: Vec<Bytes> = Vec::new();
        for chunk in self.pending.drain(..) {
            let n = chunk.len() as u64;
            if take >= n {
                take -= n;
                parts.push(chunk);
            } else if take > 0 {
                parts.push(chunk.slice(..take as usize));
                rest.push(chunk.slice(take as usize..));
                take = 0;
            } else {
                rest.push(chunk);
            }
        }
        let at = self.slot as u64 * self.class.slot_bytes + self.pending_at;
        self.pending = rest;
        self.pending_len -= cut - self.pending_at;
        self.pending_at = cut;
        self.writing = true;
        crate::disk::write_all_at(&self.class.data, parts, at).await?;
        self.writing = false;
        Ok(())
    }

    /// Write `data` at `offset` within the slice.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.len {
            return Err(io::Error::other(format!(
                "{} bytes at {offset} overrun a slice of {}",
                data.len(),
                self.len
            )));
        }
        let at = self.slot as u64 * self.class.slot_bytes + offset;
        self.class.data.write_all_at(data, at)?;
        self.hash(offset, data);
        Ok(())
    }
}

impl Drop for SliceWriter {
    fn drop(&mut self) {
        if !self.committed {
            self.class.release(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Slab;
    use super::*;

    #[test]
    fn appended_bytes_reach_the_slot_in_aligned_runs() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap()
            .block_on(appended_bytes_reach_the_slot_in_aligned_runs_on_a_runtime());
    }

    async fn appended_bytes_reach_the_slot_in_aligned_runs_on_a_runtime() {
        let len = 3 * WRITE_RUN + 1000;
        let (slab, _) = Slab::open(None, 64 << 20, len).unwrap();
        let mut w = slab.allocate(len).unwrap();
        let content: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        // Chunks of odd sizes, as an origin's reads come.
        let mut at = 0u64;
        for size in [1u64, 70_000, 200_000, 300_000, 5].iter().cycle() {
            if at == len {
                break;
            }
            let n = (*size).min(len - at);
            let chunk = Bytes::copy_from_slice(&content[at as usize..(at + n) as usize]);
            w.append(at, chunk).await.unwrap();
            at += n;
            let on_file = w.pending_at;
            assert!(
                on_file % WRITE_RUN == 0 || on_file == len,
                "a run ended at {on_file}"
            );
        }
        assert!(w.is_flushed());
        assert!(
            w.append(5, Bytes::from_static(b"x")).await.is_err(),
            "out of order"
        );
        let loc = slab.commit(w, 9);
        let pin = slab.pin(&loc).unwrap();
        assert!(pin.read(0, len).unwrap() == content);
    }
}
