//! One slice of a response: where its bytes come from, and getting them.
//!
//! [`run_slice`] is spawned once per slice on the worker's runtime. It
//! chooses the slice's [`Source`] ([`choose_source`]): the probe's answer
//! already open, the cache, another request's fetch in flight (followed, not
//! repeated), or the origin (leading a flight others may follow). That choice
//! is the seam where a new source (a peer node) goes; nothing above this
//! module knows which one served a slice. The bytes the client asked for go
//! to the request's stream as [`SliceEvent`]s; an origin slice is checked
//! ([`check_slice_head`]) before a byte of it is passed on, written to its
//! slot in the cache as it arrives (no copy to join it), and indexed once it
//! is whole. A cached slice is passed on as a pinned slot ([`Piece::Cached`]):
//! its bytes reach the client from the page cache, never through this process.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method};
use local_sync::mpsc::unbounded::Tx;
use tracing::debug;

use crate::cache::flight::FlightLeader;
use crate::cache::{
    slice_id, FlightEvent, Joined, Locator, ObjectKey, SliceCache, SlicePin, SliceWriter,
};
use crate::cluster::ring::home_key;
use crate::cluster::{ask_home, PeerId, Peers};
use crate::error::{Error, Result};
pub use crate::http::version::ObjectVersion;
use crate::ops::metrics;
use crate::origin::pool::{OriginPool, OriginResponse};
use crate::origin::retry::Retry;
pub use crate::slice::check::check_slice_head;
use crate::slice::plan::{self, SlicePlan};

/// Where a slice's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceSource {
    /// The cache.
    Cache,
    /// The origin, fetched by this request or by another one it joined.
    Origin,
    /// A peer node (the slice's home), by this request or one it joined;
    /// not stored here, since the home holds it for the POP.
    Peer,
}

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
    /// Slice `index` arrived whole and passed every check.
    Done(u64, SliceSource),
    /// Slice `index` failed.
    Failed(u64, Error),
}

/// Where the slices of a job are cached.
#[derive(Clone)]
pub struct CacheTarget {
    /// The node's cache.
    pub cache: Arc<SliceCache>,
    /// The object (variant) the slices belong to.
    pub key: ObjectKey,
    /// The manifest generation the slices are stored under.
    pub generation: u64,
}

impl CacheTarget {
    /// The store key of slice `index`.
    pub fn slice_key(&self, index: u64) -> String {
        self.key.slice_key(self.generation, index)
    }
}

/// Everything a slice task needs to ask for one slice.
pub struct SliceJob {
    /// The worker's origin pool.
    pub pool: Rc<OriginPool>,
    /// The cluster's peers, asked before the origin for the slices they are
    /// home to; `None` alone, without a cache, or when the request came
    /// from a peer (one hop at most).
    pub peers: Option<Rc<Peers>>,
    /// The client's Host, sent to peers so they pick the same route.
    pub client_host: Option<HeaderValue>,
    /// Request target (path and query) forwarded unchanged.
    pub target: Rc<str>,
    /// Forwarded request headers, without Range and conditionals.
    pub headers: Rc<HeaderMap>,
    /// The plan of the client's request.
    pub plan: SlicePlan,
    /// The version every slice must match.
    pub version: Rc<ObjectVersion>,
    /// Where slices are looked up and stored; `None` when not cacheable.
    pub cache: Option<CacheTarget>,
    /// Retries allowed per slice.
    pub max_retries: u32,
    /// Deadline of one attempt at a whole slice.
    pub slice_timeout: Duration,
    /// Requests the client's exchange sent to the origin, for its log line.
    pub attempts: Rc<std::cell::Cell<u64>>,
    /// Slices the answer's head counted as cached (`X-Cache`, `Cache-Status`).
    pub counted: Rc<CountedSlices>,
}

/// Which slices an answer's head counted as cached, by index, with where
/// they were found: the slice task pins that slot without looking it up again.
#[derive(Debug, Default)]
pub struct CountedSlices {
    first: u64,
    cached: Vec<Option<Locator>>,
}

impl CountedSlices {
    /// `cached[i]` is where slice `first + i` was found, if it was.
    pub fn new(first: u64, cached: Vec<Option<Locator>>) -> CountedSlices {
        CountedSlices { first, cached }
    }

    /// Where slice `index` was found when the head was written, if it was.
    pub fn locator(&self, index: u64) -> Option<Locator> {
        index
            .checked_sub(self.first)
            .and_then(|at| self.cached.get(at as usize).copied())
            .flatten()
    }

    /// Whether slice `index` was counted as cached.
    pub fn contains(&self, index: u64) -> bool {
        self.locator(index).is_some()
    }

    /// How many slices were counted as cached.
    pub fn count(&self) -> u64 {
        self.cached.iter().filter(|c| c.is_some()).count() as u64
    }
}

impl SliceJob {
    /// Request slice `index` and check its head: from its home peer when
    /// that is another node and up, else (or when the peer fails) from the
    /// origin. Says which peer answered, if one did.
    pub async fn open(&self, index: u64) -> Result<(OriginResponse, Option<PeerId>)> {
        let mut headers = (*self.headers).clone();
        let range = plan::slice_range_header(index, self.plan.slice_size);
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(&range).expect("a range header is ASCII"),
        );
        if let (Some(peers), Some(cache)) = (self.peers.as_deref(), &self.cache) {
            let key = home_key(cache.key.as_str(), index);
            let host = self.client_host.as_ref();
            if let Some((resp, peer)) = ask_home(peers, &key, &self.target, &headers, host).await {
                match self.check(index, resp) {
                    Ok(resp) => return Ok((resp, Some(peer))),
                    // The peer holds another version (or answered oddly):
                    // the origin settles it; the peer is not at fault.
                    Err(e) => {
                        debug!(index, peer = %peers.addr(peer), error = %e, "peer's slice refused: asking the origin")
                    }
                }
            }
        }
        self.attempts.set(self.attempts.get() + 1);
        let resp = self
            .pool
            .request(&Method::GET, &self.target, &headers)
            .await?;
        Ok((self.check(index, resp)?, None))
    }

    /// The checks every answer for slice `index` passes, a peer's as an origin's.
    fn check(&self, index: u64, resp: OriginResponse) -> Result<OriginResponse> {
        if resp.head.status == http::StatusCode::PRECONDITION_FAILED {
            return Err(Error::mismatch(
                index,
                "got 412 to If-Match / If-Unmodified-Since, expected 206: the object changed",
            ));
        }
        if resp.head.status.is_server_error() {
            return Err(Error::OriginStatus {
                index,
                status: resp.head.status.as_u16(),
            });
        }
        check_slice_head(index, self.plan.slice_size, &resp.head, Some(&self.version))?;
        Ok(resp)
    }

    /// The same job for another plan of the same object (a multipart part,
    /// slices fetched ahead); `counted` says which of them a head counted.
    pub fn with_plan(&self, plan: SlicePlan, counted: Rc<CountedSlices>) -> SliceJob {
        SliceJob {
            pool: self.pool.clone(),
            peers: self.peers.clone(),
            client_host: self.client_host.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            plan,
            version: self.version.clone(),
            cache: self.cache.clone(),
            max_retries: self.max_retries,
            slice_timeout: self.slice_timeout,
            attempts: self.attempts.clone(),
            counted,
        }
    }

    /// Length of slice `index` of the object.
    pub fn slice_len(&self, index: u64) -> u64 {
        let (first, last) = self.plan.slice_bounds(index);
        last - first + 1
    }
}

/// An answer for slice `index` already opened by the probe, with the flight it leads.
pub struct OpenedSlice {
    /// The origin's answer, head checked.
    pub response: OriginResponse,
    /// The answer came from a peer node (the slice's home), not the origin.
    pub from_peer: bool,
    /// The flight other requests follow, when the slice is cacheable.
    pub leader: Option<FlightLeader>,
}

/// Get slice `index` from the cache, from a fetch in flight, or from the
/// origin (or stream the probe's answer), and send its client part to `tx`,
/// ending with Done or Failed. Fetched slices are stored once whole and checked.
pub async fn run_slice(
    job: Rc<SliceJob>,
    index: u64,
    opened: Option<OpenedSlice>,
    tx: Tx<SliceEvent>,
) {
    match slice_from_anywhere(&job, index, opened, &tx).await {
        Ok((source, stored_by)) => {
            let _ = tx.send(SliceEvent::Done(index, source));
            if let Some(Stored { leader, writer }) = stored_by {
                // Indexed before the flight leaves the table: a request that
                // finds no flight finds the slice.
                if let (Some(writer), Some(target)) = (writer, &job.cache) {
                    target
                        .cache
                        .store
                        .commit_slice(slice_id(&target.slice_key(index)), writer);
                }
                leader.retire();
            }
        }
        Err(e) => {
            let _ = tx.send(SliceEvent::Failed(index, e));
        }
    }
}

/// Where one slice's bytes come from, chosen per slice by [`choose_source`].
// Chosen once per slice and consumed at once: a Box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// The probe's answer for this slice, already open.
    Opened(OpenedSlice),
    /// The cache holds the whole slice: its slot, pinned.
    Cached(SlicePin),
    /// Another request is fetching it: follow its flight.
    Following(flume::Receiver<FlightEvent>),
    /// The origin, leading the slice's flight when it is cacheable.
    Origin(Option<FlightLeader>),
}

/// Choose the source of slice `index`: the probe's answer when it is this
/// slice, else the cache, else a fetch in flight, else the origin. A peer
/// node would be one more source, asked before the origin.
pub async fn choose_source(job: &SliceJob, index: u64, opened: Option<OpenedSlice>) -> Source {
    if let Some(opened) = opened {
        return Source::Opened(opened);
    }
    let Some(target) = &job.cache else {
        return Source::Origin(None);
    };
    let key = target.slice_key(index);
    let id = slice_id(&key);
    // The head's count found it already: pin that slot, no second lookup.
    let found = match job.counted.locator(index) {
        Some(loc) => {
            let pin = target.cache.store.pin(&loc);
            if pin.is_none() {
                // Counted as cached when the head went out, evicted since:
                // the right bytes come from the origin, and the count tells
                // the operator the head said too much.
                metrics::with(|m| m.slices_vanished.inc());
                debug!(index, key, "slice counted as cached was gone when read");
            }
            pin
        }
        None => cached_slice(target, id),
    };
    if let Some(pin) = found {
        if pin.len() == job.slice_len(index) {
            target.cache.note_served(id);
            return Source::Cached(pin);
        }
        // Never serve a slice whose size does not fit its manifest.
        target.cache.store.remove_slice(id);
    }
    match target.cache.flights.join(&key) {
        Joined::Leader(leader) => {
            // A leader that finished between our lookup and our join indexed
            // the slice before leaving the table: look once more.
            if let Some(pin) = cached_slice(target, id).filter(|p| p.len() == job.slice_len(index))
            {
                if let Ok(bytes) = pin.read(0, pin.len()) {
                    leader.publish(&bytes);
                    leader.complete(Ok(()));
                    leader.retire();
                    return Source::Cached(pin);
                }
            }
            Source::Origin(Some(leader))
        }
        Joined::Follower(rx) => Source::Following(rx),
    }
}

/// Slice `id` from the cache, pinned: one index lookup and one CAS.
fn cached_slice(target: &CacheTarget, id: u128) -> Option<SlicePin> {
    let loc = target.cache.store.find_slice(id)?;
    target.cache.store.pin(&loc)
}

/// A fetch this request led: the flight to retire and, when the slice is
/// cached, the slot its bytes were written to, to index.
struct Stored {
    leader: FlightLeader,
    writer: Option<SliceWriter>,
}

/// A slice source, and the flight whose whole, checked slice is still to be indexed.
type Got = (SliceSource, Option<Stored>);

async fn slice_from_anywhere(
    job: &SliceJob,
    index: u64,
    opened: Option<OpenedSlice>,
    tx: &Tx<SliceEvent>,
) -> Result<Got> {
    let mut out = ClientPart::new(job, index);
    match choose_source(job, index, opened).await {
        Source::Opened(o) => {
            let first = Some((o.response, o.from_peer));
            fetch_with_retries(job, index, first, o.leader, &mut out, tx).await
        }
        Source::Cached(pin) => {
            out.emit_cached(tx, pin);
            Ok((SliceSource::Cache, None))
        }
        Source::Following(rx) => follow(job, index, rx, &mut out, tx).await,
        Source::Origin(leader) => fetch_with_retries(job, index, None, leader, &mut out, tx).await,
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
) -> Result<Got> {
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
    fetch_with_retries(job, index, None, None, out, tx).await
}

/// Fetch slice `index` from its home peer or the origin (starting with the
/// already opened `first` answer, if any, and whether a peer gave it),
/// retrying failed attempts as [`Retry`] allows. A retry asks for the whole
/// slice again and resumes after the bytes already handed to the client and
/// to the flight's followers, so a slice that breaks mid-body still yields a
/// complete, correct response.
async fn fetch_with_retries(
    job: &SliceJob,
    index: u64,
    mut first: Option<(OriginResponse, bool)>,
    leader: Option<FlightLeader>,
    out: &mut ClientPart,
    tx: &Tx<SliceEvent>,
) -> Result<Got> {
    let mut retry = Retry::new(job.max_retries);
    let mut published = 0u64;
    // A leader writes a slice from the origin into its slot as it arrives;
    // one from a peer is not stored here (its home holds it for the POP).
    let mut writer = None;
    let mut may_store = leader.is_some() && job.cache.is_some();
    // A peer that fails mid-slice is marked down and the slice asked of the
    // origin once without spending a retry: the origin did nothing wrong.
    let mut peer_fallback_left = true;
    loop {
        let mut from_peer = None;
        let mut via_peer = false;
        let attempt = async {
            let resp = match first.take() {
                Some((resp, peer)) => {
                    via_peer = peer;
                    resp
                }
                None => {
                    let (resp, peer) = job.open(index).await?;
                    from_peer = peer;
                    via_peer = peer.is_some();
                    resp
                }
            };
            if let Some(l) = &leader {
                l.set_via_peer(via_peer);
            }
            // Only a slice written whole from its first byte is stored.
            if may_store && !via_peer && published == 0 {
                may_store = false;
                if let Some(target) = &job.cache {
                    writer = target.cache.store.begin_slice(job.slice_len(index));
                }
            }
            if via_peer {
                writer = None;
            }
            let lead = leader.as_ref().map(|l| (l, &mut writer));
            stream_attempt(job, index, resp, lead, &mut published, out, tx).await
        };
        let result = match monoio::time::timeout(job.slice_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::OriginTimeout("for the whole slice")),
        };
        if let (Err(e), Some(peer), Some(peers)) = (&result, from_peer, &job.peers) {
            debug!(index, peer = %peers.addr(peer), error = %e, "peer failed mid-slice: asking the origin");
            peers.mark_down(peer);
            if std::mem::take(&mut peer_fallback_left) {
                out.restart();
                continue;
            }
        }
        let Err(e) = result else {
            let stored = leader.map(|leader| {
                leader.complete(Ok(()));
                Stored { leader, writer }
            });
            let source = match via_peer {
                true => SliceSource::Peer,
                false => SliceSource::Origin,
            };
            return Ok((source, stored));
        };
        if matches!(e, Error::SliceMismatch { .. }) {
            metrics::with(|m| m.origin_failures.inc(metrics::FailureReason::Mismatch));
        }
        let Some(delay) = retry.after(&e) else {
            return Err(e);
        };
        metrics::with(|m| m.origin_retries.inc());
        debug!(index, retry = retry.retries(), delay_ms = delay.as_millis() as u64, error = %e, "retrying slice");
        if !delay.is_zero() {
            monoio::time::sleep(delay).await;
        }
        out.restart();
    }
}

/// One attempt: stream an origin answer for slice `index` to the client and,
/// when leading a flight, to its followers and into the slice's slot (bytes
/// they already have skipped).
async fn stream_attempt(
    job: &SliceJob,
    index: u64,
    mut resp: OriginResponse,
    mut leader: Option<(&FlightLeader, &mut Option<SliceWriter>)>,
    published: &mut u64,
    out: &mut ClientPart,
    tx: &Tx<SliceEvent>,
) -> Result<()> {
    let leading = leader.is_some();
    let expected = job.slice_len(index);
    while let Some(data) = resp.chunk().await? {
        let offset = out.received;
        let end = offset + data.len() as u64;
        if end > expected {
            return Err(Error::mismatch(
                index,
                format!("got more than {expected} body bytes"),
            ));
        }
        if let Some((l, writer)) = &mut leader {
            if end > *published {
                let new = data.slice((published.saturating_sub(offset)) as usize..);
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = w.append(*published, new.clone()) {
                        tracing::warn!(index, error = %e, "writing a slice to the cache; it is not stored");
                        metrics::with(|m| m.slices_not_stored.inc());
                        **writer = None;
                    }
                }
                l.publish(&new);
                *published = end;
            }
        }
        if !out.emit(tx, &data) && !leading {
            // The client went away and no follower reads along: stop here.
            return Ok(());
        }
    }
    out.finish(index)
}

/// The part of one slice the client asked for, cut from its bytes as they come.
struct ClientPart {
    index: u64,
    skip: u64,
    take: u64,
    expected: u64,
    /// Bytes of the slice received from the current source.
    received: u64,
    /// Bytes of the slice already handed on from an earlier source.
    handed_on: u64,
    gone: bool,
}

impl ClientPart {
    fn new(job: &SliceJob, index: u64) -> Self {
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
            received: 0,
            handed_on: 0,
            gone: false,
        }
    }

    /// Send the client's part of `data` (the slice's next bytes); false when the client is gone.
    fn emit(&mut self, tx: &Tx<SliceEvent>, data: &Bytes) -> bool {
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
    fn emit_cached(&mut self, tx: &Tx<SliceEvent>, pin: SlicePin) {
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
    fn restart(&mut self) {
        self.received = 0;
    }

    fn finish(&self, index: u64) -> Result<()> {
        if self.received != self.expected {
            return Err(Error::mismatch(
                index,
                format!(
                    "got {} body bytes, expected {}",
                    self.received, self.expected
                ),
            ));
        }
        Ok(())
    }
}
