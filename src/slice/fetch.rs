//! One slice of a response: getting its bytes from the source chosen for it.
//!
//! [`run_slice`] is spawned once per slice on the worker's runtime. It
//! takes the slice's [`Choice`] ([`crate::slice::source`]): the probe's answer
//! already open, the cache, another request's fetch in flight (followed, not
//! repeated), or the origin (leading a flight others may follow); a slice
//! fetched, not cached, is opened by [`SliceJob::open`], at its home node
//! when a `[cluster]` has one, else at the origin. Nothing above this module
//! knows which one served a slice. The bytes the client asked for go to
//! the request's stream as [`SliceEvent`]s; an origin slice is checked
//! ([`crate::slice::check::check_slice_head`]) before a byte of it is
//! passed on, written to its slot in the cache as it arrives (no copy to
//! join it), and indexed once it is whole. A cached slice is passed on as a
//! pinned slot ([`crate::slice::part::Piece::Cached`]): its bytes reach the
//! client from the page cache, never through this process.
//! What a task needs is [`crate::slice::job`]; how it asks a peer or the
//! origin, and the step after a failed attempt, [`crate::slice::attempt`];
//! cutting the client's part out of a slice's bytes, [`crate::slice::part`].

use std::rc::Rc;

use local_sync::mpsc::unbounded::Tx;
use tracing::debug;

use crate::cache::flight::FlightLeader;
use crate::cache::{FlightEvent, SliceWriter};
use crate::cluster::PeerId;
use crate::error::{Error, Result, Waiting};
use crate::ops::metrics;
use crate::origin::pool::OriginResponse;
use crate::slice::attempt::{retrying, Attempt};
use crate::slice::check::answered_range;
use crate::slice::job::{OpenedSlice, SliceJob};
use crate::slice::part::{ClientPart, SliceEvent};
use crate::slice::source::{choose_source, Choice, KeepCopy, SliceSource};

/// Get slice `index` from the cache, from a fetch in flight, or from the
/// origin (or stream the probe's answer), and send its client part to `tx`,
/// ending with Done or Failed. Slices fetched are stored once whole and checked.
pub async fn run_slice(
    job: Rc<SliceJob>,
    index: u64,
    opened: Option<OpenedSlice>,
    tx: Tx<SliceEvent>,
) {
    match slice_from_anywhere(&job, index, opened, &tx).await {
        Ok((source, stored_by)) => {
            let mut stored = None;
            if let Some(Stored { leader, writer }) = stored_by {
                // Indexed before the flight leaves the table: a request that
                // finds no flight finds the slice.
                if let (Some(writer), Some(target)) = (writer, &job.cache) {
                    let store = &target.cache.store;
                    let loc = store.commit_slice(target.slice_id(index), writer);
                    stored = loc.and_then(|loc| store.pin(&loc));
                }
                leader.retire();
            }
            let _ = tx.send(SliceEvent::Done(index, source, stored));
        }
        Err(e) => {
            let _ = tx.send(SliceEvent::Failed(index, e));
        }
    }
}

/// A fetch this request led: the flight to retire and, when the slice is
/// cached, the slot its bytes were written to, to index.
struct Stored {
    leader: FlightLeader,
    writer: Option<SliceWriter>,
}

/// A slice source, and the flight whose whole, checked slice is still to be indexed.
type Fetched = (SliceSource, Option<Stored>);

async fn slice_from_anywhere(
    job: &SliceJob,
    index: u64,
    opened: Option<OpenedSlice>,
    tx: &Tx<SliceEvent>,
) -> Result<Fetched> {
    let mut out = ClientPart::new(job, index);
    match choose_source(job, index, opened).await {
        Choice::Opened(o) => {
            let first = Some((o.response, o.from_peer));
            let opened = (first, o.leader, KeepCopy(false));
            fetch_with_retries(job, index, opened, &mut out, tx).await
        }
        Choice::Cached(pin) => {
            out.emit_cached(tx, pin);
            Ok((job.cached_source(), None))
        }
        Choice::Following(rx) => follow(job, index, rx, &mut out, tx).await,
        Choice::Origin(leader, copy) => {
            fetch_with_retries(job, index, (None, leader, copy), &mut out, tx).await
        }
        Choice::HomePart => {
            fetch_with_retries(job, index, (None, None, KeepCopy(false)), &mut out, tx).await
        }
    }
}

/// Follow another request's fetch of slice `index`; if it fails or its
/// leader goes away, fetch alone, resuming after the bytes already handed on.
async fn follow(
    job: &SliceJob,
    index: u64,
    rx: flume::Receiver<FlightEvent>,
    out: &mut ClientPart,
    tx: &Tx<SliceEvent>,
) -> Result<Fetched> {
    metrics::with(|m| m.coalesced_waits.inc());
    while let Ok(event) = rx.recv_async().await {
        match event {
            FlightEvent::Data(chunk) => {
                if !out.emit(tx, &chunk) {
                    return Ok((SliceSource::Origin, None));
                }
            }
            FlightEvent::Done { via_peer } => {
                let source = match via_peer {
                    true => SliceSource::Peer,
                    false => SliceSource::Origin,
                };
                return out.finish(index).map(|_| (source, None));
            }
            FlightEvent::Failed(e) => {
                debug!(index, error = %e, "the fetch this request followed failed: fetching alone");
                break;
            }
        }
    }
    // The leader went away (its client left before the slice was needed, or
    // its fetch failed): fetch alone, resuming after the bytes the client
    // already has.
    out.restart();
    fetch_with_retries(job, index, (None, None, KeepCopy(false)), out, tx).await
}

/// How a fetch starts: an answer already open and the peer that gave it
/// (the probe's), the flight it leads, whether a peer's bytes are kept.
type Start = (
    Option<(OriginResponse, Option<PeerId>)>,
    Option<FlightLeader>,
    KeepCopy,
);

/// Fetch slice `index` from its home peer or the origin (starting with the
/// already opened `first` answer, if any, and the peer that gave it),
/// leading the slice's flight with `leader`, storing what a peer gives when
/// `copy` says so, retrying failed attempts ([`retrying`]). A retry asks for the whole
/// slice again and resumes after the bytes already handed to the client and
/// to the flight's followers, so a slice that breaks mid-body still yields a
/// complete, correct response.
async fn fetch_with_retries(
    job: &SliceJob,
    index: u64,
    (first, leader, copy): Start,
    out: &mut ClientPart,
    tx: &Tx<SliceEvent>,
) -> Result<Fetched> {
    let mut fetching = Fetching {
        first,
        copy: copy.0,
        published: 0,
        writer: None,
        may_store: leader.is_some() && job.cache.is_some(),
        peer_fallback_left: true,
    };
    let lead = leader.as_ref();
    let source = retrying(job.max_retries, index, "slice", async |retries| {
        if retries > 0 {
            out.restart();
        }
        match fetching.attempt(job, index, lead, out, tx).await {
            Ok(source) => Attempt::Done(source),
            Err(e) => Attempt::Failed(e),
        }
    })
    .await?;
    let stored = leader.map(|leader| {
        leader.complete(Ok(()));
        Stored {
            leader,
            writer: fetching.writer,
        }
    });
    Ok((source, stored))
}

/// What the attempts at one slice share.
struct Fetching {
    /// An answer already opened (by the probe), and the peer that gave it.
    first: Option<(OriginResponse, Option<PeerId>)>,
    /// What a peer gives is stored here too: a hot slice homed elsewhere.
    copy: bool,
    /// Bytes handed to the flight's followers (and written to the slot).
    published: u64,
    /// The slot the slice is written to as it arrives, when it is stored.
    writer: Option<SliceWriter>,
    /// A leader writes a slice from the origin into its slot as it arrives;
    /// one from a peer is not stored here (its home holds it for the POP).
    may_store: bool,
    /// A peer that fails mid-slice is marked down and the slice asked of
    /// the origin once without spending a retry: the origin did nothing wrong.
    peer_fallback_left: bool,
}

impl Fetching {
    /// One attempt at slice `index` within `slice_timeout`, the fall back
    /// to the origin from a peer that failed included. Says where the
    /// bytes came from.
    async fn attempt(
        &mut self,
        job: &SliceJob,
        index: u64,
        leader: Option<&FlightLeader>,
        out: &mut ClientPart,
        tx: &Tx<SliceEvent>,
    ) -> Result<SliceSource> {
        loop {
            let mut from_peer = None;
            let attempt = self.once(job, index, leader, &mut from_peer, out, tx);
            let result = match monoio::time::timeout(job.slice_timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(Error::OriginTimeout(Waiting::WholeSlice)),
            };
            let (Err(e), Some(peer), Some(peers)) = (&result, from_peer, &job.peers) else {
                return result;
            };
            if e.is_client_gone() {
                return result;
            }
            debug!(index, peer = %peers.addr(peer), error = %e, "peer failed mid-slice: asking the origin");
            peers.mark_down(peer);
            if !std::mem::take(&mut self.peer_fallback_left) {
                return result.map_err(|e| e.of_peer(peers.addr(peer)));
            }
            out.restart();
        }
    }

    /// Open slice `index` (or take the answer already open) and stream it;
    /// `from_peer` says which peer gave it, if one did.
    async fn once(
        &mut self,
        job: &SliceJob,
        index: u64,
        leader: Option<&FlightLeader>,
        from_peer: &mut Option<PeerId>,
        out: &mut ClientPart,
        tx: &Tx<SliceEvent>,
    ) -> Result<SliceSource> {
        let (resp, peer) = match self.first.take() {
            Some(first) => first,
            None => {
                // A slice nobody here leads or stores: its home is asked for
                // the client's part only.
                let part = leader.is_none().then(|| job.peer_part(index)).flatten();
                let (resp, peer) = job.open(index, part).await?;
                if part.is_some() && peer.is_some() {
                    out.part_only();
                }
                (resp, peer)
            }
        };
        *from_peer = peer;
        let via_peer = peer.is_some();
        if let Some(l) = leader {
            l.set_via_peer(via_peer);
        }
        // Only a slice written whole from its first byte is stored; one
        // from its home only when it is a hot copy.
        if self.may_store && (!via_peer || self.copy) && self.published == 0 {
            self.may_store = false;
            if let Some(target) = &job.cache {
                self.writer = target.cache.store.begin_slice(job.slice_len(index));
            }
        }
        if via_peer && !self.copy {
            self.writer = None;
        }
        let mut lead = leader.map(|l| (l, &mut self.writer));
        let mut resp = resp;
        let mut answers = 1;
        loop {
            let lead = lead.as_mut().map(|(l, w)| (*l, &mut **w));
            let rest = stream_answer(job, index, resp, lead, &mut self.published, out, tx).await?;
            let Some(rest) = rest else { break };
            // The answer stopped short of the slice's end (the checks made
            // sure it can be combined): the rest is asked of the origin.
            if answers == MAX_ANSWERS_PER_SLICE {
                return Err(Error::mismatch(
                    index,
                    format!("got {answers} answers holding part of the slice, expected it in at most {MAX_ANSWERS_PER_SLICE}"),
                ));
            }
            answers += 1;
            debug!(
                index,
                first = rest.0,
                last = rest.1,
                "origin answered part of a slice: asking for the rest"
            );
            metrics::with(|m| m.origin_part_answers.inc());
            resp = job.open_rest(index, rest).await?;
        }
        Ok(match via_peer {
            true => SliceSource::Peer,
            false => SliceSource::Origin,
        })
    }
}

/// Answers one slice may come in when the origin answers fewer bytes than
/// asked: a slice of 1 MiB from an origin that caps answers at 16 KiB.
const MAX_ANSWERS_PER_SLICE: u32 = 64;

/// Stream one answer for slice `index` (or for the client's part of it,
/// from its home peer; or for the rest of it) to the client and, when
/// leading a flight, to its followers and into the slice's slot (bytes they
/// already have skipped). An answer may carry another range than the one
/// asked (see [`crate::slice::check`]): bytes before the next one wanted are
/// skipped, bytes past the slice's end are not read (the connection is
/// closed). Returns the range (first and last byte of the object) still
/// missing when the answer stopped short.
async fn stream_answer(
    job: &SliceJob,
    index: u64,
    mut resp: OriginResponse,
    mut leader: Option<(&FlightLeader, &mut Option<SliceWriter>)>,
    published: &mut u64,
    out: &mut ClientPart,
    tx: &Tx<SliceEvent>,
) -> Result<Option<(u64, u64)>> {
    let leading = leader.is_some();
    let expected = out.end();
    let (start, _) = job.plan.slice_bounds(index);
    // Where the answer's bytes begin and end, counted from the slice's start.
    let (mut skip, answer_end) = match answered_range(&resp.head) {
        Some((first, last)) => (
            (start + out.received).saturating_sub(first),
            last + 1 - start,
        ),
        None => (0, expected),
    };
    let past_the_slice = answer_end > expected;
    let until = answer_end.min(expected);
    while let Some(mut data) = resp.chunk().await? {
        if skip > 0 {
            let n = skip.min(data.len() as u64);
            data = data.slice(n as usize..);
            skip -= n;
            if data.is_empty() {
                continue;
            }
        }
        let offset = out.received;
        let mut end = offset + data.len() as u64;
        if end > until {
            if !past_the_slice {
                return Err(Error::mismatch(
                    index,
                    format!("got more than {until} body bytes"),
                ));
            }
            data.truncate((until - offset) as usize);
            end = until;
        }
        if let Some((l, writer)) = &mut leader {
            if end > *published {
                let new = data.slice((published.saturating_sub(offset)) as usize..);
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = w.append(*published, new.clone()).await {
                        tracing::warn!(index, error = %e, "writing a slice to the cache; it is not stored");
                        metrics::with(|m| m.slices_not_stored.inc());
                        **writer = None;
                    }
                }
                l.publish(&new);
                *published = end;
            }
        }
        if !out.emit(tx, &data) {
            if !leading {
                // The client went away and no follower reads along: stop here.
                return Ok(None);
            }
            // A leader goes on only for whom it serves: the slice it stores,
            // or requests following its flight. Otherwise nobody wants the
            // rest (an attacker's `Range: bytes=0-0` on a fresh URL costs
            // what was read, not the slice).
            let storing = leader.as_ref().is_some_and(|(_, w)| w.is_some());
            let followed = leader.as_ref().is_some_and(|(l, _)| l.has_followers());
            if !storing && !followed {
                return Err(Error::ClientIo(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "nobody waits for the rest of this slice, and it is not stored",
                )));
            }
        }
        if past_the_slice && end == until {
            // The rest of the answer is not this slice's: left unread, and
            // its connection closed with it.
            break;
        }
    }
    if out.received == until && until < expected {
        if !leading && out.client_has_all() {
            // Nothing stores the slice and the client has its part.
            return Ok(None);
        }
        return Ok(Some((start + until, start + expected - 1)));
    }
    out.finish(index).map(|_| None)
}
