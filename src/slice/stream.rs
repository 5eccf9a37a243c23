//! Slices in, response body out: strictly in order, with a bounded window.
//!
//! [`send_slices`] keeps at most `window` slices of one request between
//! "asked of the origin" and "delivered to the client". Their bytes arrive
//! interleaved, in any order; the [`ReorderBuffer`] passes the bytes of the
//! slice being delivered straight through and holds the others until their
//! turn, so memory per request is bounded by `window` slices, never by the
//! object, and per worker by its [`SliceBudget`]: a slice not in the cache
//! waits its turn for a share before its task starts, and gives it back
//! once delivered, or once stored (its bytes still queued then go out from
//! the slot). Any failure is returned at once; the caller aborts the client
//! connection, since the response head is already out.

use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::disk;
use crate::error::{Error, Result};
use crate::http::sink::ResponseSink;
use crate::ops::metrics;
pub use crate::slice::budget::SliceBudget;
use crate::slice::budget::{Reserve, Reserved};
use crate::slice::fetch::run_slice;
use crate::slice::job::{OpenedSlice, SliceJob};
use crate::slice::part::{Piece, SliceEvent};
use crate::slice::source::SliceCounts;

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

    /// Replace the bytes of slice `index` still queued (the end of its part,
    /// `n` bytes) by `make(n)`: the same bytes from elsewhere.
    pub fn replace_queued(&mut self, index: u64, make: impl FnOnce(u64) -> T) {
        if index < self.next {
            return;
        }
        let slot = self.slot(index);
        let queued: usize = slot.chunks.drain(..).map(|c| c.byte_len()).sum();
        if queued > 0 {
            slot.chunks.push_back(make(queued as u64));
        }
    }

    /// Whether [`ReorderBuffer::pop`] has something to give, or a finished
    /// slice to move past.
    pub fn has_next(&self) -> bool {
        self.slots
            .front()
            .is_some_and(|slot| slot.done || !slot.chunks.is_empty())
    }

    /// The next bytes in object order, if they have arrived, left in place.
    pub fn peek(&mut self) -> Option<&T> {
        while self
            .slots
            .front()
            .is_some_and(|slot| slot.done && slot.chunks.is_empty())
        {
            self.slots.pop_front();
            self.next += 1;
        }
        self.slots.front()?.chunks.front()
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
    // A slice to check first goes through a task (see source::choose_source).
    if pin.len() != job.slice_len(index) || pin.unchecked() {
        return false;
    }
    if target.cache.prefetch_pending() {
        target.cache.note_served(target.slice_id(index));
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
    /// Slices delivered, by where their bytes came from.
    pub slices: SliceCounts,
}

/// How a response body is paced: the window of slices in flight and the
/// worker budget whose turns it takes.
#[derive(Clone, Copy)]
pub struct Pacing<'a> {
    /// Slices of one request in flight at most.
    pub window: usize,
    /// The worker's budget of slice bytes in memory.
    pub budget: &'a Rc<SliceBudget>,
    /// The client connection the budget's turns are taken for.
    pub client: u64,
}

/// Stream the slices of `job.plan` to `writer` in order, at most
/// `how.window` in flight and within the worker's budget. `probe` is an
/// already opened answer for the plan's first slice. `done` tells what was
/// delivered, also when it fails part-way.
///
/// Each slice not found in the cache reserves its size from the budget
/// before its task starts (waiting its turn while the budget is spent) and
/// gives it back once delivered, or as soon as it is stored: the part of it
/// still queued for the client is then sent from its slot, not held in
/// memory. While the client takes a piece (or the sink makes room for it),
/// slices go on arriving and turns go on coming, so a client that reads
/// slowly holds no budget for slices already stored.
pub async fn send_slices(
    job: Rc<SliceJob>,
    how: Pacing<'_>,
    probe: Option<OpenedSlice>,
    sink: &mut impl ResponseSink,
    done: &mut Delivery,
) -> Result<()> {
    let plan = job.plan;
    let mut st = Streaming {
        order: ReorderBuffer::new(plan.first_slice),
        held: Vec::with_capacity(how.window),
        waiting: None,
        next_launch: plan.first_slice,
        first: true,
        job,
        how,
        events: None,
    };
    if let Some(mut resp) = probe {
        // The probe reserved its slice before it asked for it.
        let reserved = resp.reserved.take().map(Rc::new);
        st.first &= reserved.is_none();
        let index = st.next_launch;
        st.held.extend(reserved.clone().map(|r| (index, r)));
        let task = run_slice(st.job.clone(), index, Some(resp), st.sender());
        monoio::spawn(holding(reserved, task));
        st.next_launch += 1;
    }
    loop {
        // Slices go on arriving while a piece is sent: give back what was
        // delivered and refill the window before each piece, not only once
        // the order has run dry, or the origin idles while the client
        // catches up.
        let next = st.order.next_index();
        st.held.retain(|(i, _)| *i >= next);
        st.launch_within_window(done);
        if let Some(Piece::Bytes(bytes)) = st.order.peek() {
            let len = bytes.len() as u64;
            st.meanwhile(sink.admit(len), done).await?;
        }
        if let Some(piece) = st.order.pop() {
            let len = piece.len();
            st.meanwhile(send_piece(sink, piece), done).await?;
            done.bytes += len;
            continue;
        }
        let next = st.order.next_index();
        st.held.retain(|(i, _)| *i >= next);
        if next > plan.last_slice {
            return Ok(());
        }
        st.launch_within_window(done);
        if !st.order.has_next() {
            st.next(done).await?;
        }
    }
}

/// One answer's slices on their way: the order they are delivered in, the
/// budget they hold, and the tasks fetching them.
struct Streaming<'a> {
    job: Rc<SliceJob>,
    how: Pacing<'a>,
    /// What the slice tasks tell, once one is started: an answer whose
    /// slices are all cached starts none and makes no channel.
    events: Option<Events>,
    order: ReorderBuffer<Piece>,
    /// The reservations of the slices launched and not yet delivered or stored.
    held: Vec<(u64, Rc<Reserved>)>,
    /// The place in the budget's line of the next slice to launch, if any.
    waiting: Option<Pin<Box<Reserve>>>,
    next_launch: u64,
    /// No reservation asked yet: the request's first goes before others' further ones.
    first: bool,
}

/// The channel slice tasks send their events on, and its receiving end.
type Events = (
    local_sync::mpsc::unbounded::Tx<SliceEvent>,
    local_sync::mpsc::unbounded::Rx<SliceEvent>,
);

/// The next event of the slice tasks; never, while none was started.
async fn recv(events: &mut Option<Events>) -> Option<SliceEvent> {
    match events {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Streaming<'_> {
    /// A sender for a slice task, the channel made with the first one.
    fn sender(&mut self) -> local_sync::mpsc::unbounded::Tx<SliceEvent> {
        let (tx, _) = self
            .events
            .get_or_insert_with(local_sync::mpsc::unbounded::channel);
        tx.clone()
    }

    /// Start the task of the next slice, its reservation held by both.
    fn launch(&mut self, reserved: Reserved) {
        let index = self.next_launch;
        let reserved = Rc::new(reserved);
        self.held.push((index, reserved.clone()));
        let task = run_slice(self.job.clone(), index, None, self.sender());
        monoio::spawn(holding(Some(reserved), task));
        self.next_launch += 1;
    }

    /// Launch what the window and the budget allow now; a slice the head
    /// found cached needs no task and no budget (its pinned slot goes into
    /// the order at once). Past the budget, take a place in its line.
    fn launch_within_window(&mut self, done: &mut Delivery) {
        let last = self.job.plan.last_slice;
        let window = self.how.window as u64;
        let size = self.job.plan.slice_size;
        while self.waiting.is_none()
            && self.next_launch <= last
            && self.next_launch - self.order.next_index() < window
        {
            if take_cached(&self.job, self.next_launch, &mut self.order) {
                done.slices.add(self.job.cached_source());
                self.next_launch += 1;
                continue;
            }
            let (budget, client) = (self.how.budget, self.how.client);
            match budget.try_reserve(size, client) {
                Some(reserved) => self.launch(reserved),
                None => self.waiting = Some(Box::pin(budget.reserve(size, client, self.first))),
            }
            self.first = false;
        }
    }

    /// Wait for `work` while slice events and budget turns are handled.
    async fn meanwhile<T>(
        &mut self,
        work: impl std::future::Future<Output = Result<T>>,
        done: &mut Delivery,
    ) -> Result<T> {
        let mut work = std::pin::pin!(work);
        loop {
            let next = monoio::select! {
                out = &mut work => return out,
                event = recv(&mut self.events) => Next::Event(event),
                reserved = turn_of(&mut self.waiting) => Next::Turn(reserved),
            };
            self.handle(next, done)?;
        }
    }

    /// Wait for the next slice event or budget turn, and handle it.
    async fn next(&mut self, done: &mut Delivery) -> Result<()> {
        let next = monoio::select! {
            event = recv(&mut self.events) => Next::Event(event),
            reserved = turn_of(&mut self.waiting) => Next::Turn(reserved),
        };
        self.handle(next, done)
    }

    fn handle(&mut self, next: Next, done: &mut Delivery) -> Result<()> {
        match next {
            Next::Event(event) => on_event(event, &self.job, &mut self.order, &mut self.held, done),
            Next::Turn(reserved) => {
                self.waiting = None;
                self.launch(reserved);
                Ok(())
            }
        }
    }
}

/// Run a slice task holding its share of the budget: a reservation goes
/// back once both the task and the stream are done with it (a task whose
/// client left keeps it until its slice is stored).
async fn holding(reserved: Option<Rc<Reserved>>, task: impl std::future::Future<Output = ()>) {
    task.await;
    drop(reserved);
}

/// What came while the stream waited.
enum Next {
    Event(Option<SliceEvent>),
    Turn(Reserved),
}

/// The reservation `waiting` is in line for, when its turn comes; never,
/// when it is in no line.
async fn turn_of(waiting: &mut Option<Pin<Box<Reserve>>>) -> Reserved {
    match waiting {
        Some(reserve) => reserve.await,
        None => std::future::pending().await,
    }
}

/// One piece to the client: bytes from memory, or a cached slot's part.
async fn send_piece(sink: &mut impl ResponseSink, piece: Piece) -> Result<()> {
    match piece {
        Piece::Bytes(bytes) => sink.send_body(bytes).await,
        Piece::Cached { pin, skip, len } => {
            sink.send_file(pin.part(skip, len)).await?;
            metrics::with(|m| m.slices_sent_from_files.inc());
            Ok(())
        }
    }
}

/// What a slice task said: bytes into the order, a slice done (and, when it
/// was stored just now, its queued bytes swapped for its slot and its share
/// of the budget given back), or the failure that ends the answer.
fn on_event(
    event: Option<SliceEvent>,
    job: &SliceJob,
    order: &mut ReorderBuffer<Piece>,
    held: &mut Vec<(u64, Rc<Reserved>)>,
    done: &mut Delivery,
) -> Result<()> {
    match event {
        Some(SliceEvent::Data(i, data)) => order.push(i, data),
        Some(SliceEvent::Done(i, source, stored)) => {
            done.slices.add(source);
            // While a write to its slot file is held off the loop (XFS),
            // a read of that file waits for the write or goes around the
            // page cache (`disk::locked_for_write`): bytes already here
            // stay here, with their share of the budget, until delivered.
            if let Some(pin) = stored.filter(|pin| !disk::locked_for_write(pin.file())) {
                let (skip, take) = job.plan.client_part(i);
                order.replace_queued(i, |queued| {
                    metrics::with(|m| m.slice_parts_from_slot.inc());
                    Piece::Cached {
                        pin,
                        skip: skip + take - queued,
                        len: queued,
                    }
                });
                held.retain(|(k, _)| *k != i);
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
    Ok(())
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
