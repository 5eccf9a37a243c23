//! What a slice task needs, and how it asks for one slice.
//!
//! A [`SliceJob`] is built once per answer and shared by its slice tasks:
//! the object's version every slice must match, where its slices are cached
//! ([`CacheTarget`]), and the sources it may ask. [`SliceJob::open`] asks
//! the slice's home peer when that is another node and up, else (or when the
//! peer fails) the origin, and checks the answer's head the same way for
//! both (`SliceJob::check`), so two versions are never spliced together.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue};

use crate::cache::flight::FlightLeader;
use crate::cache::{Locator, ObjectKey, SliceCache};
use crate::cluster::ring::home_key;
use crate::cluster::{PeerId, Peers};
use crate::error::{Error, Result};
use crate::http::headers::slice_headers;
use crate::http::object_version::ObjectVersion;
use crate::ops::metrics::SliceSource;
use crate::origin::pool::{OriginPool, OriginResponse};
use crate::slice::attempt::{open, Asking, OriginAttempts};
use crate::slice::check::{check_part_head, check_slice_head};
use crate::slice::plan::{self, SlicePlan};

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

    /// The id slice `index` is indexed under (of [`CacheTarget::slice_key`]).
    pub fn slice_id(&self, index: u64) -> u128 {
        self.key.slice_id(self.generation, index)
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
    /// The request's headers for the origin, shared with the request;
    /// each slice request is made of them by [`SliceJob::request_headers`].
    pub headers: Rc<HeaderMap>,
    /// Whether slices ask the origin to refuse another version itself
    /// (`slice.origin_if_match`).
    pub origin_if_match: bool,
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
    pub attempts: OriginAttempts,
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
    /// origin. With `part` (`(skip, take)` within the slice), the peer is
    /// asked only for those bytes, the origin still for the whole slice.
    /// Says which peer answered, if one did.
    pub async fn open(
        &self,
        index: u64,
        part: Option<(u64, u64)>,
    ) -> Result<(OriginResponse, Option<PeerId>)> {
        let mut headers = self.request_headers();
        headers.insert(
            header::RANGE,
            plan::slice_range_value(index, self.plan.slice_size),
        );
        let (start, _) = self.plan.slice_bounds(index);
        let part = part.map(|(skip, take)| (start + skip, start + skip + take - 1));
        let home = match (self.peers.as_deref(), &self.cache) {
            (Some(peers), Some(cache)) => Some((peers, cache.key.as_str())),
            _ => None,
        };
        let asking = Asking {
            pool: &self.pool,
            home,
            host: self.client_host.as_ref(),
            target: &self.target,
            headers: &headers,
            peer_range: part
                .and_then(|(a, b)| HeaderValue::try_from(format!("bytes={a}-{b}")).ok()),
            attempts: &self.attempts,
        };
        open(&asking, index, |resp, from_peer| {
            let part = part.filter(|_| from_peer);
            self.check(index, resp, part)
        })
        .await
    }

    /// Ask the origin for bytes `first..=last` (of the object) of slice
    /// `index`: the rest of a slice an earlier answer held only the start
    /// of. Its answer passes the same checks as any part of a slice.
    pub async fn open_rest(&self, index: u64, (first, last): (u64, u64)) -> Result<OriginResponse> {
        let mut headers = self.request_headers();
        let range = HeaderValue::try_from(format!("bytes={first}-{last}"))
            .map_err(|e| Error::mismatch(index, e.to_string()))?;
        headers.insert(header::RANGE, range);
        let asking = Asking {
            pool: &self.pool,
            home: None,
            host: self.client_host.as_ref(),
            target: &self.target,
            headers: &headers,
            peer_range: None,
            attempts: &self.attempts,
        };
        let checked = open(&asking, index, |resp, _| {
            self.check(index, resp, Some((first, last)))
        });
        Ok(checked.await?.0)
    }

    /// The headers of a slice request, its Range left to add: the client's
    /// conditionals removed, so every slice is a plain 206, and with
    /// `origin_if_match` the origin asked to refuse another version itself
    /// ([`slice_headers`]). Made per request sent: a hit sends none.
    pub fn request_headers(&self) -> HeaderMap {
        let version = self.origin_if_match.then_some(&*self.version);
        slice_headers((*self.headers).clone(), version)
    }

    /// The checks every answer for slice `index` (or for bytes `part` of
    /// it) passes, a peer's as an origin's.
    fn check(
        &self,
        index: u64,
        resp: OriginResponse,
        part: Option<(u64, u64)>,
    ) -> Result<OriginResponse> {
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
        match part {
            Some(part) => check_part_head(index, part, &resp.head, &self.version)?,
            None => {
                check_slice_head(index, self.plan.slice_size, &resp.head, Some(&self.version))?;
            }
        }
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
            origin_if_match: self.origin_if_match,
            plan,
            version: self.version.clone(),
            cache: self.cache.clone(),
            max_retries: self.max_retries,
            slice_timeout: self.slice_timeout,
            attempts: self.attempts.clone(),
            counted,
        }
    }

    /// The client's part of slice `index` (`(skip, take)` within it) when
    /// only that part is to be asked of the slice's home peer: the slice is
    /// homed at another node that is up (this node will not store it), and
    /// the client needs less than the whole of it. `None`: ask for the
    /// whole slice (and lead its flight), as for any other.
    pub fn peer_part(&self, index: u64) -> Option<(u64, u64)> {
        let plan = &self.plan;
        if !(plan.first_slice..=plan.last_slice).contains(&index) {
            return None;
        }
        let (skip, take) = plan.client_part(index);
        if take == 0 || take == self.slice_len(index) || !self.homed_elsewhere(index) {
            return None;
        }
        Some((skip, take))
    }

    /// Whether slice `index`, homed elsewhere, is hot enough to be copied
    /// here when it is fetched now ([`crate::cache::asked`]), without
    /// counting an ask.
    pub fn would_copy(&self, index: u64) -> bool {
        match &self.cache {
            Some(target) if self.keeps_hot_copies() => {
                let id = target.slice_id(index);
                target.cache.asked.is_hot(id, self.slice_len(index))
            }
            _ => false,
        }
    }

    /// The bytes of slice `index` this job's client asks for.
    pub fn asked_of(&self, index: u64) -> u64 {
        let plan = &self.plan;
        match (plan.first_slice..=plan.last_slice).contains(&index) {
            true => plan.client_part(index).1,
            false => 0,
        }
    }

    /// Whether slices homed elsewhere are copied here once hot
    /// (`cluster.keep_hot_copies`, and a request not from a peer).
    pub fn keeps_hot_copies(&self) -> bool {
        self.peers.as_ref().is_some_and(|p| p.keep_hot_copies())
    }

    /// Whether slice `index` is asked of another node (its home, or the
    /// home's stand-in while it is down) rather than fetched and stored
    /// here: with a `[cluster]`, a cache, and a request not from a peer.
    pub fn homed_elsewhere(&self, index: u64) -> bool {
        match (&self.peers, &self.cache) {
            (Some(peers), Some(target)) => peers
                .home_peer(&home_key(target.key.as_str(), index))
                .is_some(),
            _ => false,
        }
    }

    /// Where a slice of this job found in the cache comes from: memory
    /// files (a cache without a disk tier) or slot files on disk.
    pub fn cached_source(&self) -> SliceSource {
        match &self.cache {
            Some(target) if !target.cache.store.slices_in_memory() => SliceSource::Disk,
            _ => SliceSource::Memory,
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
    /// The peer node (the slice's home) that gave the answer; `None` when
    /// the origin did.
    pub from_peer: Option<PeerId>,
    /// The flight other requests follow, when the slice is cacheable.
    pub leader: Option<FlightLeader>,
    /// Its share of the worker's budget, taken before it was asked for.
    pub reserved: Option<crate::slice::budget::Reserved>,
}
