//! Slices in, response body out: strictly in order, with a bounded window.
//!
//! [`send_slices`] keeps at most `window` slices of one request between
//! "asked of the origin" and "delivered to the client". Their bytes arrive
//! interleaved, in any order; the [`ReorderBuffer`] passes the bytes of the
//! slice being delivered straight through and holds the others until their
//! turn, so memory per request is bounded by `window` slices, never by the
//! object. Any failure is returned at once; the caller aborts the client
//! connection, since the response head is already out.

use std::collections::VecDeque;
use std::rc::Rc;

use std::cell::Cell;

use bytes::Bytes;

use crate::cache::slice_id;
use crate::error::{Error, Result};
use crate::http::sink::ResponseSink;
use crate::ops::metrics;
use crate::slice::fetch::run_slice;
use crate::slice::job::{OpenedSlice, SliceJob};
use crate::slice::part::{Piece, SliceEvent, SliceSource};

/// Something with a length in bytes: what the [`ReorderBuffer`] holds.
pub trait Chunk {
    /// Bytes in it.
    fn byte_len(&self) -> usize;
}

impl Chunk for Bytes {
    fn byte_len(&self) -> usize {
        self.len()
    }
}

impl Chunk for Piece {
    fn byte_len(&self) -> usize {
        self.len() as usize
    }
}

/// Bytes of one slice waiting for its turn.
#[derive(Debug)]
struct Slot<T> {
    chunks: VecDeque<T>,
    done: bool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            chunks: VecDeque::new(),
            done: false,
        }
    }
}

/// Orders the bytes of concurrently fetched slices.
///
/// ```
/// use bytes::Bytes;
/// use edgeslice::slice::stream::ReorderBuffer;
/// let mut buf = ReorderBuffer::new(0);
/// buf.push(1, Bytes::from_static(b"cd"));
/// buf.finish(1);
/// assert_eq!(buf.pop(), None); // slice 0 first
/// buf.push(0, Bytes::from_static(b"ab"));
/// buf.finish(0);
/// assert_eq!(buf.pop().as_deref(), Some(&b"ab"[..]));
/// assert_eq!(buf.pop().as_deref(), Some(&b"cd"[..]));
/// assert_eq!(buf.pop(), None); // moves past finished slices
/// assert_eq!(buf.next_index(), 2);
/// ```
#[derive(Debug)]
pub struct ReorderBuffer<T = Bytes> {
    next: u64,
    slots: VecDeque<Slot<T>>,
    buffered: usize,
}

impl<T: Chunk> ReorderBuffer<T> {
    /// A buffer that delivers slice `first` first.
    pub fn new(first: u64) -> Self {
        ReorderBuffer {
            next: first,
            slots: VecDeque::new(),
            buffered: 0,
        }
    }

    /// The slice being delivered now.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Bytes held, waiting for delivery.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    fn slot(&mut self, index: u64) -> &mut Slot<T> {
        debug_assert!(index >= self.next, "slice {index} already delivered");
        let at = (index - self.next) as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, Slot::default);
        }
        &mut self.slots[at]
    }

    /// Bytes of slice `index`, in order within that slice.
    pub fn push(&mut self, index: u64, chunk: T) {
        self.buffered += chunk.byte_len();
        self.slot(index).chunks.push_back(chunk);
    }

    /// Slice `index` has no more bytes.
    pub fn finish(&mut self, index: u64) {
        self.slot(index).done = true;
    }

    /// Whether [`ReorderBuffer::pop`] has something to give, or a finished
    /// slice to move past.
    pub fn has_next(&self) -> bool {
        self.slots
            .front()
            .is_some_and(|slot| slot.done || !slot.chunks.is_empty())
    }

    /// The next bytes in object order, if they have arrived.
    pub fn pop(&mut self) -> Option<T> {
        loop {
            let slot = self.slots.front_mut()?;
            if let Some(chunk) = slot.chunks.pop_front() {
                self.buffered -= chunk.byte_len();
                return Some(chunk);
            }
            if !slot.done {
                return None;
            }
            self.slots.pop_front();
            self.next += 1;
        }
    }
}

/// Slice `index` from the slot the answer's head found it in, with no task:
/// its client part goes straight into `order`. False when it was not found
/// then, or left the cache since: a slice task then gets it from wherever it
/// is now (and counts it as vanished).
fn take_cached(job: &SliceJob, index: u64, order: &mut ReorderBuffer<Piece>) -> bool {
    let (Some(target), Some(loc)) = (&job.cache, job.counted.locator(index)) else {
        return false;
    };
    let Some(pin) = target.cache.store.pin(&loc) else {
        return false;
    };
    if pin.len() != job.slice_len(index) {
        return false;
    }
    if target.cache.prefetch_pending() {
        target.cache.note_served(slice_id(&target.slice_key(index)));
    }
    let (skip, take) = job.plan.client_part(index);
    if take > 0 {
        order.push(
            index,
            Piece::Cached {
                pin,
                skip,
                len: take,
            },
        );
    }
    order.finish(index);
    true
}

/// What a response was assembled from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Body bytes written.
    pub bytes: u64,
    /// Slices served from the cache.
    pub from_cache: u64,
    /// Slices fetched from the origin (by this request or one it joined).
    pub from_origin: u64,
    /// Slices fetched from a peer node (by this request or one it joined).
    pub from_peer: u64,
    /// The cache keeps slices in memory files (no disk tier), not on disk.
    pub cache_in_memory: bool,
}

/// Slice bytes one worker may have in flight, over all its requests.
#[derive(Debug)]
pub struct SliceBudget {
    limit: u64,
    used: Cell<u64>,
}

impl SliceBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> SliceBudget {
        SliceBudget {
            limit,
            used: Cell::new(0),
        }
    }
}

/// One request's share of the budget, returned when dropped.
struct Reservation<'a> {
    budget: &'a SliceBudget,
    held: u64,
}

impl Reservation<'_> {
    /// Reserve `bytes` more if the budget allows, or if this request holds
    /// nothing yet (every request may always fetch one slice at a time).
    fn take(&mut self, bytes: u64) -> bool {
        let used = self.budget.used.get();
        if self.held > 0 && used + bytes > self.budget.limit {
            return false;
        }
        self.budget.used.set(used + bytes);
        self.held += bytes;
        true
    }

    fn give_back(&mut self, bytes: u64) {
        let bytes = bytes.min(self.held);
        self.held -= bytes;
        self.budget.used.set(self.budget.used.get() - bytes);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.give_back(self.held);
    }
}

/// How a response body is sent.
#[derive(Clone, Copy)]
pub struct Sending<'a> {
    /// Slices of one request in flight at most.
    pub window: usize,
    /// The worker's budget of slice bytes in flight.
    pub budget: &'a SliceBudget,
}

/// Stream the slices of `job.plan` to `writer` in order, at most
/// `how.window` in flight and within the worker's budget. `probe` is an
/// already opened answer for the plan's first slice. `done` tells what was
/// delivered, also when it fails part-way.
pub async fn send_slices(
    job: Rc<SliceJob>,
    how: Sending<'_>,
    probe: Option<OpenedSlice>,
    sink: &mut impl ResponseSink,
    done: &mut Delivery,
) -> Result<()> {
    let plan = job.plan;
    let window = how.window;
    let slice_bytes = plan.slice_size;
    if let Some(target) = &job.cache {
        done.cache_in_memory = target.cache.store.slices_in_memory();
    }
    let mut reserved = Reservation {
        budget: how.budget,
        held: 0,
    };
    let (tx, mut rx) = local_sync::mpsc::unbounded::channel();
    let mut order = ReorderBuffer::<Piece>::new(plan.first_slice);
    let mut next_launch = plan.first_slice;
    if let Some(resp) = probe {
        reserved.take(slice_bytes);
        monoio::spawn(run_slice(job.clone(), next_launch, Some(resp), tx.clone()));
        next_launch += 1;
    }
    loop {
        let before = order.next_index();
        while let Some(piece) = order.pop() {
            let len = piece.len();
            match piece {
                Piece::Bytes(bytes) => sink.send_body(bytes).await?,
                Piece::Cached { pin, skip, len } => {
                    sink.send_file(pin.part(skip, len)).await?;
                    metrics::with(|m| m.slices_sent_from_files.inc());
                }
            }
            done.bytes += len;
        }
        reserved.give_back((order.next_index() - before) * slice_bytes);
        if order.next_index() > plan.last_slice {
            return Ok(());
        }
        while next_launch <= plan.last_slice
            && next_launch - order.next_index() < window as u64
            && reserved.take(slice_bytes)
        {
            // A slice the head found cached needs no task: its pinned slot
            // goes into the order at once.
            if take_cached(&job, next_launch, &mut order) {
                done.from_cache += 1;
            } else {
                monoio::spawn(run_slice(job.clone(), next_launch, None, tx.clone()));
            }
            next_launch += 1;
        }
        if order.has_next() {
            continue;
        }
        match rx.recv().await {
            Some(SliceEvent::Data(i, data)) => order.push(i, data),
            Some(SliceEvent::Done(i, source)) => {
                match source {
                    SliceSource::Cache => done.from_cache += 1,
                    SliceSource::Origin => done.from_origin += 1,
                    SliceSource::Peer => done.from_peer += 1,
                }
                order.finish(i)
            }
            Some(SliceEvent::Failed(_, e)) => {
                if let (Error::SliceMismatch { .. }, Some(t)) = (&e, &job.cache) {
                    // The object changed under its manifest: the next request probes anew.
                    t.cache.forget(&t.key);
                }
                return Err(e);
            }
            None => unreachable!("the stream holds a sender"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn delivers_in_order_whatever_the_arrival_order() {
        // (slice, chunk or None for "finished"), in arrival order.
        let arrivals: &[(u64, Option<&str>)] = &[
            (2, Some("e")),
            (1, Some("c")),
            (2, None),
            (0, Some("a")),
            (1, Some("d")),
            (0, Some("b")),
            (1, None),
            (0, None),
        ];
        let mut buf = ReorderBuffer::<Bytes>::new(0);
        let mut out = String::new();
        for (i, chunk) in arrivals {
            match chunk {
                Some(c) => buf.push(*i, b(c)),
                None => buf.finish(*i),
            }
            while let Some(c) = buf.pop() {
                out.push_str(std::str::from_utf8(&c).unwrap());
            }
        }
        assert_eq!(out, "abcde");
        assert_eq!(buf.next_index(), 3);
        assert_eq!(buf.buffered_bytes(), 0);
    }

    #[test]
    fn current_slice_streams_before_it_finishes() {
        let mut buf = ReorderBuffer::<Bytes>::new(5);
        buf.push(5, b("x"));
        assert_eq!(buf.pop(), Some(b("x")));
        buf.push(6, b("y"));
        assert_eq!(buf.pop(), None);
        assert_eq!(buf.buffered_bytes(), 1);
        buf.finish(5);
        assert_eq!(buf.pop(), Some(b("y")));
        assert_eq!(buf.next_index(), 6);
    }

    #[test]
    fn empty_slices_are_skipped() {
        let mut buf = ReorderBuffer::<Bytes>::new(0);
        buf.finish(0);
        buf.finish(1);
        assert_eq!(buf.pop(), None);
        assert_eq!(buf.next_index(), 2);
    }
}
