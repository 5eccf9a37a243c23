//! Phases "respond" and "stream": from an object whose version is known to
//! the bytes on the wire.
//!
//! **Respond** ([`Proxy::respond`], pure): the client's preconditions first
//! (304, 412), then its range against the length (416; an empty object; one
//! range, several as multipart, or the whole object). **Stream**
//! ([`Proxy::stream`]): plan the slices, count which the cache holds (that is
//! what `X-Cache` and `Cache-Status` say), send the head, then the slices in
//! order through [`stream::send_slices`]; the probe's answer, when it is the
//! first slice, is streamed as it arrives.

use std::rc::Rc;

use http::{header, HeaderMap, HeaderValue, StatusCode};
use tracing::debug;

use crate::cache::CacheResult;
use crate::error::{Error, Result};
use crate::http::conditional::{if_range_allows, preconditions, Precondition};
use crate::http::content_range::ContentRange;
use crate::http::object_version::ObjectVersion;
use crate::http::range::{coalesce, RangeRequest, MAX_PARTS};
use crate::http::sink::{BodyLength, ResponseSink};
use crate::proxy::cache_status::{cache_status, Fetch};
use crate::proxy::context::{ObjectRequest, Proxy};
use crate::proxy::exchange::Exchange;
use crate::slice::fetch::run_slice;
use crate::slice::job::{CacheTarget, CountedSlices, OpenedSlice, SliceJob};
use crate::slice::plan::SlicePlan;
use crate::slice::stream;

/// Slices of an answer counted before its head is sent: `X-Cache` and
/// `Cache-Status` describe these (4 GiB of 1 MiB slices).
pub(crate) const COUNTED_SLICES: usize = 4096;

/// An object whose version is known, from the cache or a probe.
pub(crate) struct StoredObject {
    pub(crate) version: ObjectVersion,
    /// The origin's end-to-end headers, replayed on every answer.
    pub(crate) headers: HeaderMap,
    /// The slice grid the object is stored with.
    pub(crate) slice_size: u64,
    /// 200 for an object; another status stored whole, answered as it is.
    pub(crate) status: StatusCode,
    /// Where its slices are cached; `None` when not cacheable.
    pub(crate) cache: Option<CacheTarget>,
    /// The probe's answer, still to be read, when it is one of the slices.
    /// Boxed: only a miss has one, and a hit moves this object between
    /// phases several times.
    pub(crate) probe: Option<Box<ProbeAnswer>>,
}

/// A probe answer ready to become one slice of the response.
pub(crate) struct ProbeAnswer {
    pub(crate) index: u64,
    pub(crate) opened: OpenedSlice,
}

/// What phase "respond" decided.
pub(crate) enum Respond {
    /// 304 or 412.
    Precondition(Precondition),
    /// 416: no byte of the range exists.
    Unsatisfiable,
    /// 200 with an empty body: the object is empty.
    Empty,
    /// A body of slices.
    Send(Answer),
}

/// The status and bytes of an answer made of slices.
pub(crate) struct Answer {
    status: StatusCode,
    first: u64,
    last: u64,
    /// Several ranges: a multipart answer of these parts.
    parts: Option<Vec<(u64, u64)>>,
}

impl Proxy {
    /// Phase "respond" (see the module doc).
    pub(crate) fn respond(&self, ask: &ObjectRequest<'_>, object: &StoredObject) -> Respond {
        let version = &object.version;
        // Preconditions are of a 2xx answer (RFC 9110 13.2.1).
        let verdict = match object.status.is_success() {
            true => preconditions(ask.req, version, object.headers.get(header::DATE)),
            false => Precondition::Proceed,
        };
        if verdict != Precondition::Proceed {
            return Respond::Precondition(verdict);
        }
        if object.status != StatusCode::OK {
            // Stored as the origin gave it: whole, whatever the Range.
            return match version.len {
                0 => Respond::Empty,
                len => Respond::Send(Answer {
                    status: object.status,
                    first: 0,
                    last: len - 1,
                    parts: None,
                }),
            };
        }
        let ranged = if_range_allows(ask.req, version, object.headers.get(header::DATE));
        if version.len == 0 {
            return match ask.range {
                RangeRequest::Single(_) if ranged => Respond::Unsatisfiable,
                _ => Respond::Empty,
            };
        }
        let whole = (StatusCode::OK, 0, version.len - 1);
        // Several ranges: resolved and coalesced; one left is a plain 206,
        // several a multipart answer, too many the whole object.
        let parts = match &ask.range {
            RangeRequest::Multi(specs) if ranged => Some(coalesce(specs, version.len)),
            _ => None,
        };
        let max_parts = self.settings.max_ranges.min(MAX_PARTS);
        let multipart = parts
            .as_ref()
            .filter(|p| (2..=max_parts).contains(&p.len()))
            .cloned();
        let (status, first, last) = match (&ask.range, parts.as_deref()) {
            (_, Some([])) => return Respond::Unsatisfiable,
            (_, Some([(a, b)])) => (StatusCode::PARTIAL_CONTENT, *a, *b),
            (_, Some(p)) if multipart.is_some() => (StatusCode::PARTIAL_CONTENT, p[0].0, p[0].1),
            // Too many parts for this route: the whole object.
            (_, Some(_)) => whole,
            (RangeRequest::Single(spec), _) if ranged => match spec.resolve(version.len) {
                Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
                None => return Respond::Unsatisfiable,
            },
            _ => whole,
        };
        Respond::Send(Answer {
            status,
            first,
            last,
            parts: multipart,
        })
    }

    /// Phase "stream" (see the module doc).
    pub(crate) async fn stream<S: ResponseSink>(
        &self,
        ask: &ObjectRequest<'_>,
        object: StoredObject,
        answer: Answer,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        let Answer {
            status,
            first,
            last,
            parts,
        } = answer;
        let StoredObject {
            version,
            mut headers,
            slice_size,
            cache,
            probe,
            ..
        } = object;
        // A cached object keeps the slice grid it was stored with.
        let plan = SlicePlan::new(first, last, version.len, slice_size);
        let reuse_probe = probe
            .as_ref()
            .is_some_and(|p| p.index == plan.first_slice && !ex.head_only && parts.is_none());
        // Which slices the head will call cached, and where they are, from
        // the store's index (the one lookup per slice: the slice tasks pin
        // what was found here); the probe's slice, if reused, comes from the
        // origin. Only the first COUNTED_SLICES are counted, so the head's
        // work is bounded whatever the length; later slices are looked up
        // when their turn comes.
        let counted = match &cache {
            Some(t) => plan
                .slices()
                .take(COUNTED_SLICES)
                .map(|k| {
                    let probed = reuse_probe && k == plan.first_slice;
                    (!probed)
                        .then(|| t.cache.find_slice(&t.key, t.generation, k))
                        .flatten()
                })
                .collect(),
            None => Vec::new(),
        };
        let counted = Rc::new(CountedSlices::new(plan.first_slice, counted));
        let job = self.slice_job(ask, version, plan, cache, counted.clone(), ex);
        // The probe's answer is reused when it is the plan's first slice (and
        // the body is wanted). Otherwise, when others may follow its flight,
        // it is finished and stored in the background.
        let mut probe = match probe {
            Some(p) if reuse_probe => Some(p.opened),
            Some(p) => {
                settle(&job, p);
                None
            }
            None => None,
        };
        let cached = counted.count();
        let fetched = plan.slice_count().min(COUNTED_SLICES as u64) - cached;
        // Of those, the slices another node is asked for and that are not
        // hot enough to be copied here: relayed, not stored.
        let relayed = plan
            .slices()
            .take(COUNTED_SLICES)
            .filter(|&k| !counted.contains(k) && job.homed_elsewhere(k) && !job.would_copy(k))
            .count() as u64;
        let status_of_cache = match &job.cache {
            Some(_) => CacheResult::from_counts(cached, fetched),
            None => CacheResult::Miss,
        };
        if fetched > 0 && self.pool.settings().breaker.is_open() {
            // The origin is down: what the cache holds is served, what it
            // lacks is a 503 now rather than an aborted body later.
            return Err(Error::OriginUnavailable {
                origin: self.pool.settings().name.clone(),
                retry_after: self.pool.settings().breaker.retry_after_secs(),
            });
        }
        debug!(
            first_slice = plan.first_slice,
            last_slice = plan.last_slice,
            len = plan.object_len,
            cache = status_of_cache.as_str(),
            "slice plan"
        );
        if matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(plan.content_length()),
        );
        if parts.is_some() {
            headers.remove(header::CONTENT_RANGE);
        } else if status == StatusCode::PARTIAL_CONTENT {
            let cr = ContentRange::Bytes {
                first,
                last,
                total: Some(plan.object_len),
            };
            headers.insert(header::CONTENT_RANGE, cr.header_value());
        }
        headers.insert(
            "x-cache",
            HeaderValue::from_static(status_of_cache.as_str()),
        );
        ex.x_cache = Some(status_of_cache);
        ex.cache_status = Some(self.cache_status_of(ask, (fetched, relayed)));
        let how = stream::Pacing {
            window: self.settings.window,
            budget: &self.budget,
            client: ex.client,
        };
        if let Some(parts) = &parts {
            return crate::proxy::multipart::send(&job, parts, headers, how, ex).await;
        }
        let length = BodyLength::Known(plan.content_length());
        if let Some(opened) = &mut probe {
            ex.send_interim(&mut opened.response).await?;
        }
        ex.send_head(status, headers, length).await?;
        if ex.head_only {
            return Ok(());
        }
        let mut delivered = stream::Delivery::default();
        let result = stream::send_slices(job.clone(), how, probe, ex.sink, &mut delivered).await;
        ex.record(&delivered);
        result?;
        if status == StatusCode::PARTIAL_CONTENT {
            self.prefetch
                .after(&job, first, last, (&self.budget, ex.client));
        }
        Ok(())
    }

    /// An answer that needs none of the probe's bytes (304, 412, 416): when
    /// others may follow the probe's flight, finish and store it anyway.
    /// Returns the object's headers.
    pub(crate) fn settle_probe<S>(
        &self,
        ask: &ObjectRequest<'_>,
        object: StoredObject,
        ex: &Exchange<'_, S>,
    ) -> HeaderMap {
        let StoredObject {
            version,
            headers,
            slice_size,
            cache,
            probe,
            ..
        } = object;
        if let Some(probe) = probe.filter(|p| p.opened.leader.is_some()) {
            let len = version.len;
            let whole = SlicePlan::new(0, len.saturating_sub(1), len, slice_size);
            let job = self.slice_job(ask, version, whole, cache, Rc::default(), ex);
            settle(&job, probe);
        }
        headers
    }

    /// The slice job of one answer: what every slice task of it needs.
    fn slice_job<S>(
        &self,
        ask: &ObjectRequest<'_>,
        version: ObjectVersion,
        plan: SlicePlan,
        cache: Option<CacheTarget>,
        counted: Rc<CountedSlices>,
        ex: &Exchange<'_, S>,
    ) -> Rc<SliceJob> {
        Rc::new(SliceJob {
            pool: self.pool.clone(),
            peers: self.peers_for(ask.req),
            client_host: ask.req.headers.get(http::header::HOST).cloned(),
            target: Rc::from(ask.target),
            headers: ask.forwarded.clone(),
            origin_if_match: self.settings.origin_if_match,
            plan,
            version: Rc::new(version),
            cache,
            max_retries: self.settings.max_retries,
            slice_timeout: self.settings.slice_timeout,
            attempts: ex.origin_attempts.clone(),
            counted,
        })
    }

    /// This cache's `Cache-Status` member for an answer to `ask` of which
    /// `fetched` slices were not in the cache, `relayed` of those asked of
    /// another node of the cluster (and not stored here).
    pub(crate) fn cache_status_of(
        &self,
        ask: &ObjectRequest<'_>,
        (fetched, relayed): (u64, u64),
    ) -> HeaderValue {
        let fetch = Fetch { fetched, relayed };
        cache_status(&self.settings.node_name, ask.served, fetch, ask.ttl, None)
    }
}

/// Finish the probe's slice in the background, storing it for the requests
/// following its flight; nobody reads its bytes now.
fn settle(job: &Rc<SliceJob>, probe: Box<ProbeAnswer>) {
    if probe.opened.leader.is_some() {
        let (tx, _) = local_sync::mpsc::unbounded::channel();
        monoio::spawn(run_slice(job.clone(), probe.index, Some(probe.opened), tx));
    }
}
