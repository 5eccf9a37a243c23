//! What a slice task hands the request's stream: [`SliceEvent`]s carrying
//! [`Piece`]s, and the [`SliceSource`] each slice came from; and the part of
//! one slice the client asked for, cut from the slice's bytes as they come
//! from whichever source, and resumed after what was already handed on when
//! the slice starts again from another source.

use bytes::Bytes;
use local_sync::mpsc::unbounded::Tx;

use crate::cache::SlicePin;
use crate::error::{Error, Result};
use crate::slice::job::SliceJob;
use crate::slice::source::SliceSource;

/// Body bytes for the client, in one of two forms.
#[derive(Debug)]
pub enum Piece {
    /// Bytes in memory (from the origin, or another request's fetch).
    Bytes(Bytes),
    /// `len` bytes from `skip` into a cached slice, its slot pinned until sent.
    Cached {
        /// The slot, not reused while pinned.
        pin: SlicePin,
        /// Bytes of the slice before the client's part.
        skip: u64,
        /// The client's part.
        len: u64,
    },
}

impl Piece {
    /// Bytes in this piece.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Cached { len, .. } => *len,
        }
    }

    /// Whether the piece holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a slice task tells the request's stream.
#[derive(Debug)]
pub enum SliceEvent {
    /// Bytes of slice `index` for the client, already trimmed, in order within the slice.
    Data(u64, Piece),
    /// Slice `index` arrived whole and passed every check; with its slot
    /// when it was stored just now (what the client has not been sent yet
    /// can come from there instead of memory).
    Done(u64, SliceSource, Option<SlicePin>),
    /// Slice `index` failed.
    Failed(u64, Error),
}

/// The part of one slice the client asked for, cut from its bytes as they come.
pub(crate) struct ClientPart {
    index: u64,
    skip: u64,
    take: u64,
    expected: u64,
    /// Where in the slice the current source's next byte belongs: bytes
    /// received so far, plus where it started (a part of the slice).
    pub(crate) received: u64,
    /// Where in the slice the current source's bytes start and end.
    start: u64,
    end: u64,
    /// Bytes of the slice already handed on from an earlier source.
    handed_on: u64,
    gone: bool,
}

impl ClientPart {
    pub(crate) fn new(job: &SliceJob, index: u64) -> Self {
        // A probe slice outside the plan is only fetched to be stored.
        let plan = &job.plan;
        let (skip, take) = if (plan.first_slice..=plan.last_slice).contains(&index) {
            plan.client_part(index)
        } else {
            (0, 0)
        };
        ClientPart {
            index,
            skip,
            take,
            expected: job.slice_len(index),
            start: 0,
            end: job.slice_len(index),
            received: 0,
            handed_on: 0,
            gone: false,
        }
    }

    /// Send the client's part of `data` (the slice's next bytes); false when the client is gone.
    pub(crate) fn emit(&mut self, tx: &Tx<SliceEvent>, data: &Bytes) -> bool {
        let offset = self.received;
        let end = offset + data.len() as u64;
        self.received = end;
        if self.gone {
            return false;
        }
        let lo = self.skip.max(offset).max(self.handed_on);
        let hi = (self.skip + self.take).min(end);
        if lo < hi {
            let part = data.slice((lo - offset) as usize..(hi - offset) as usize);
            self.gone = tx
                .send(SliceEvent::Data(self.index, Piece::Bytes(part)))
                .is_err();
            self.handed_on = self.handed_on.max(hi);
        }
        !self.gone
    }

    /// Send the client's part of a whole cached slice, as its pinned slot.
    pub(crate) fn emit_cached(&mut self, tx: &Tx<SliceEvent>, pin: SlicePin) {
        self.received = pin.len();
        let lo = self.skip.max(self.handed_on);
        let hi = (self.skip + self.take).min(pin.len());
        if lo < hi && !self.gone {
            let piece = Piece::Cached {
                pin,
                skip: lo,
                len: hi - lo,
            };
            self.gone = tx.send(SliceEvent::Data(self.index, piece)).is_err();
            self.handed_on = hi;
        }
    }

    /// Start the slice again from another source: bytes already handed on are skipped.
    pub(crate) fn restart(&mut self) {
        self.received = 0;
        self.start = 0;
        self.end = self.expected;
    }

    /// The current source gives only the client's part of the slice
    /// (asked of its home peer): its bytes start at the part's first byte.
    pub(crate) fn part_only(&mut self) {
        self.received = self.skip;
        self.start = self.skip;
        self.end = self.skip + self.take;
    }

    /// Whether every byte the client asked of this slice was handed on.
    pub(crate) fn client_has_all(&self) -> bool {
        self.handed_on >= self.skip + self.take
    }

    /// Where in the slice the current source's bytes end.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn finish(&self, index: u64) -> Result<()> {
        if self.received != self.end {
            return Err(Error::mismatch(
                index,
                format!(
                    "got {} body bytes, expected {}",
                    self.received - self.start,
                    self.end - self.start
                ),
            ));
        }
        Ok(())
    }
}
