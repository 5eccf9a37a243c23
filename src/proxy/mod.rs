//! The request pipeline, one function per phase, called top to bottom:
//! classify -> lookup -> probe -> respond (plan) -> stream.
//!
//! A GET or HEAD is sliced. **Lookup**: a fresh cached manifest serves the
//! object with no origin request; a stale one is revalidated once per object;
//! a cold object is probed once however many clients ask at the same moment.
//! **Probe**: the origin is asked for the slice holding the first byte the
//! client wants, which tells the object's length and validators and becomes
//! the manifest. **Respond**: the client's range is resolved against the
//! length, a [`SlicePlan`] made, the head sent. **Stream**: slices come from
//! the cache, a fetch in flight, or the origin, in order ([`stream::send_slices`]).
//! Anything not worth slicing (other methods, origins that ignore Range,
//! answers without a known length, 304/4xx/5xx) is relayed as the origin sent it.
//!
//! Errors before the response head become a 4xx/5xx answer (see
//! [`Error::status`]); after it, the server aborts the connection.

pub mod cache_status;
pub mod exchange;
pub mod fill;
pub mod multipart;
pub mod prefetch;
pub mod revalidate;
pub mod route;
pub mod unsliced;

use std::rc::Rc;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use monoio_http::common::request::RequestHead;
use tracing::debug;

use crate::cache::flight::FlightLeader;
use crate::cache::manifest::{freshness, unix_now, StaleWindows};
use crate::cache::{CacheStatus, FlightEvent, Joined, ObjectKey, ObjectManifest, SliceCache};
use crate::config::SliceSize;
use crate::error::{Error, Result};
use crate::http::conditional::{if_range_allows, preconditions, Precondition};
use crate::http::h1::{self, BodyFraming};
use crate::http::headers::{
    cacheable_request, header_value, object_headers, req_headers_unsliced, slice_headers,
    total_unknown,
};
use crate::http::range::{
    coalesce, parse_content_range, parse_range, ByteRangeSpec, ContentRange, RangeRequest,
    MAX_PARTS,
};
use crate::ops::metrics;
use crate::origin::pool::{OriginPool, OriginResponse};
use crate::origin::retry::Retry;
use crate::proxy::cache_status::{cache_status, Served};
pub use crate::proxy::exchange::Exchange;
use crate::proxy::fill::Filler;
use crate::proxy::revalidate::{revalidate, Revalidation};
use crate::slice::fetch::{
    check_slice_head, run_slice, CacheTarget, CountedSlices, ObjectVersion, OpenedSlice, SliceJob,
};
use crate::slice::plan::slice_range_value;
use crate::slice::plan::{self, SlicePlan};
use crate::slice::stream;

/// Settings of the pipeline, converted once from the configuration.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Bytes per slice, or `"auto"`.
    pub slice_size: SliceSize,
    /// Slices of one request in flight at once.
    pub window: usize,
    /// Host header sent to the origin instead of the client's, if set.
    pub host_header: Option<HeaderValue>,
    /// Host header sent when the client gave none.
    pub default_host: HeaderValue,
    /// Client networks allowed to PURGE.
    pub purge_allow: Vec<ipnet::IpNet>,
    /// Bearer token that allows PURGE.
    pub purge_token: Option<String>,
    /// Retries allowed per slice (and for the probe).
    pub max_retries: u32,
    /// Deadline of one attempt at a whole slice.
    pub slice_timeout: std::time::Duration,
    /// What is sliced and what passes through.
    pub rules: SliceRules,
    /// Slices after the first carry `If-Match` (or `If-Unmodified-Since`).
    pub origin_if_match: bool,
    /// Slices fetched ahead for sequential readers (0 = off).
    pub prefetch_slices: u64,
    /// Most parts of a multipart answer.
    pub max_ranges: usize,
    /// Cut whole answers into slices for the cache.
    pub cut_whole_answers: bool,
    /// RFC 5861 windows when the origin gives none.
    pub stale_defaults: StaleWindows,
    /// This cache's name in `Cache-Status`.
    pub node_name: Arc<str>,
}

/// Which requests a route slices; the others pass through whole.
#[derive(Debug, Clone, Default)]
pub struct SliceRules {
    /// Objects smaller than this pass through whole.
    pub min_bytes: u64,
    /// Only paths matching one of these patterns are sliced (empty: all).
    pub include: Vec<String>,
    /// Paths matching one of these patterns pass through.
    pub exclude: Vec<String>,
}

impl SliceRules {
    /// Whether requests for `path` are sliced.
    pub fn slices(&self, path: &str) -> bool {
        (self.include.is_empty()
            || self
                .include
                .iter()
                .any(|p| crate::proxy::route::glob(p, path)))
            && !self
                .exclude
                .iter()
                .any(|p| crate::proxy::route::glob(p, path))
    }
}

/// One worker's proxy: its settings, its own origin pool, the node's cache.
pub struct Proxy {
    /// Pipeline settings.
    pub settings: ProxySettings,
    /// This worker's connections to the origin.
    pub pool: Rc<OriginPool>,
    /// The node's slice cache, shared by all workers; `None` when disabled.
    pub cache: Option<Arc<SliceCache>>,
    /// This worker's budget of slice bytes in flight, shared by its routes.
    pub budget: Rc<stream::SliceBudget>,
    /// Where this worker's sequential readers are, for prefetch.
    pub prefetch: crate::proxy::prefetch::Prefetch,
}

/// What the client asked of one object, and how its stored state was had.
struct Ask<'a> {
    req: &'a RequestHead,
    target: &'a str,
    forwarded: HeaderMap,
    range: RangeRequest,
    served: Served,
    /// Age and freshness left of the stored object, when served from the cache.
    age: u64,
    ttl: i64,
}

/// A probe answer ready to become the first slice of the response.
struct Probe {
    index: u64,
    opened: OpenedSlice,
}

impl Proxy {
    /// Phase "classify": serve one request whose head has been read.
    pub async fn handle(&self, req: &RequestHead, ex: &mut Exchange<'_>) -> Result<()> {
        let framing = h1::request_framing(&req.headers)?;
        let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if req.method.as_str() == "PURGE" {
            return self.purge(req, target, ex).await;
        }
        let forwarded = self.forwarded_headers(req);
        if req.method != Method::GET && req.method != Method::HEAD {
            ex.cache_status = Some(self.status_value("; fwd=method"));
            return self
                .pass_through(req, target, &forwarded, framing, ex)
                .await;
        }
        if framing != BodyFraming::Empty {
            // A body on GET/HEAD is not read; the connection cannot be reused.
            ex.keep_alive = false;
        }
        if !self.settings.rules.slices(req.uri.path()) {
            // Not sliced on this route: the client's request as it is.
            ex.cache_status = Some(self.status_value("; fwd=bypass"));
            let headers = req_headers_unsliced(req, &forwarded);
            ex.origin_attempts.set(ex.origin_attempts.get() + 1);
            let resp = self.pool.request(&req.method, target, &headers).await?;
            return ex.relay(resp).await;
        }
        let range = match req.headers.get(header::RANGE) {
            Some(v) => parse_range(v.as_bytes()),
            None => RangeRequest::Full,
        };
        let ask = Ask {
            req,
            target,
            forwarded,
            range,
            served: Served::Bypass,
            age: 0,
            ttl: 0,
        };
        match self.cache.clone() {
            Some(cache) if cacheable_request(req) => self.lookup(ask, cache, ex).await,
            _ => self.probe(ask, None, ex).await,
        }
    }

    /// This cache's `Cache-Status` member with `params` after its name.
    fn status_value(&self, params: &str) -> HeaderValue {
        header_value(&format!("{}{params}", self.settings.node_name))
    }

    /// Request headers for the origin: end-to-end ones, without Range and
    /// If-Range (each slice sets its own Range), with the Host to use.
    fn forwarded_headers(&self, req: &RequestHead) -> HeaderMap {
        let mut headers = req.headers.clone();
        h1::strip_hop_by_hop(&mut headers);
        headers.remove(header::RANGE);
        headers.remove(header::IF_RANGE);
        headers.remove(header::EXPECT);
        if let Some(host) = &self.settings.host_header {
            headers.insert(header::HOST, host.clone());
        } else if !headers.contains_key(header::HOST) {
            let host = req
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.settings.default_host.clone());
            headers.insert(header::HOST, host);
        }
        headers
    }

    /// Phase "lookup": a fresh manifest serves without the origin, a stale one
    /// is revalidated once per object, a cold object is probed once.
    async fn lookup(
        &self,
        mut ask: Ask<'_>,
        cache: Arc<SliceCache>,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let base = ObjectKey::from_request(ask.req, ask.target);
        let mut revalidated = false;
        // A few rounds: after waiting on another request's probe or
        // revalidation, the manifest it stored is looked up again.
        for _ in 0..3 {
            if let Some((key, m)) = cache.lookup(&base, &ask.req.headers).await {
                if m.whole_only && !all_slices_cached(&cache, &key, &m) {
                    // Cut from a whole answer: a missing slice cannot be asked by range.
                    cache.forget(&key);
                    continue;
                }
                let now = unix_now();
                let serve = if m.is_fresh() {
                    ask.served = if revalidated {
                        Served::Revalidated
                    } else {
                        Served::Fresh
                    };
                    true
                } else if now < m.expires_at.saturating_add(m.stale.while_revalidate) {
                    ask.served = Served::StaleWhileRevalidate;
                    // stale-while-revalidate: serve now, revalidate in the background.
                    monoio::spawn(revalidate(
                        self.pool.clone(),
                        cache.clone(),
                        ask.target.to_string(),
                        ask.forwarded.clone(),
                        key.clone(),
                        m.clone(),
                        self.settings.stale_defaults,
                    ));
                    true
                } else {
                    match self.revalidate(&ask, &cache, &key, m.clone()).await {
                        // stale-if-error: the origin is failing, the object is not too old.
                        Revalidation::Failed
                            if now < m.expires_at.saturating_add(m.stale.if_error) =>
                        {
                            ask.served = Served::StaleIfError;
                            true
                        }
                        // Too stale to serve with the origin failing: ask it once more, uncached.
                        Revalidation::Failed => return self.probe(ask, None, ex).await,
                        Revalidation::Fresh => {
                            revalidated = true;
                            false
                        }
                        _ => false,
                    }
                };
                if !serve {
                    continue;
                }
                ask.age = m.age();
                ask.ttl = m.ttl();
                let target = CacheTarget {
                    cache: cache.clone(),
                    key,
                    generation: m.generation,
                };
                let (version, headers, size) = (m.version(), m.header_map(), m.slice_size);
                return self
                    .respond(&ask, version, headers, size, Some(target), None, ex)
                    .await;
            }
            match cache.flights.join(&format!("p|{}", base.as_str())) {
                Joined::Leader(flight) => {
                    // A probe that finished between our lookup and our join
                    // stored its manifest first: look once more.
                    if cache.lookup(&base, &ask.req.headers).await.is_some() {
                        drop(flight);
                        continue;
                    }
                    return self.probe(ask, Some((&cache, &base, flight)), ex).await;
                }
                Joined::Follower(rx) => {
                    while let Ok(event) = rx.recv_async().await {
                        if !matches!(event, FlightEvent::Data(_)) {
                            break;
                        }
                    }
                }
            }
        }
        self.probe(ask, None, ex).await
    }

    /// Revalidate a stale manifest, once per object (see [`revalidate`]).
    async fn revalidate(
        &self,
        ask: &Ask<'_>,
        cache: &Arc<SliceCache>,
        key: &ObjectKey,
        m: ObjectManifest,
    ) -> Revalidation {
        revalidate(
            self.pool.clone(),
            cache.clone(),
            ask.target.to_string(),
            ask.forwarded.clone(),
            key.clone(),
            m,
            self.settings.stale_defaults,
        )
        .await
    }

    /// Phase "probe": ask the origin for the slice holding the first wanted
    /// byte; its answer tells the object's length and validators. With a
    /// cache, a storable answer becomes the object's manifest.
    async fn probe(
        &self,
        mut ask: Ask<'_>,
        cache: Option<(&Arc<SliceCache>, &ObjectKey, FlightLeader)>,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        // Requests waiting on this probe (`cache`'s flight) look the manifest
        // up again as soon as the flight ends: when the manifest is stored, or
        // when this probe returns without one.
        // With "auto" the probe asks on the largest grid; the object's own
        // grid is chosen from its length once that is known.
        let size = self.settings.slice_size.probe_grid();
        let index = match &ask.range {
            RangeRequest::Single(ByteRangeSpec::FromTo(a, _))
            | RangeRequest::Single(ByteRangeSpec::From(a)) => plan::slice_of(*a, size),
            _ => 0,
        };
        // Without the cache the client's conditionals go with the probe, so a
        // 304 or 412 comes back as the origin means it. With it, the probe
        // asks plainly, so its answer can be stored, and the conditionals are
        // evaluated here against what it learned (see `respond`).
        let mut probe_headers = if cache.is_some() {
            slice_headers(ask.forwarded.clone(), None)
        } else {
            ask.forwarded.clone()
        };
        probe_headers.insert(header::RANGE, slice_range_value(index, size));
        ask.served = match cache {
            Some(_) => Served::Miss { stored: false },
            None => Served::Bypass,
        };
        ex.cache_status = Some(self.status_value(match ask.served {
            Served::Bypass => "; fwd=bypass",
            _ => "; fwd=miss",
        }));
        let resp = self
            .probe_with_retries(ask.target, &probe_headers, index, ex)
            .await?;
        match resp.head.status {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::RANGE_NOT_SATISFIABLE => return self.unsatisfiable(ask, resp, ex).await,
            // Range ignored: relayed whole, and cut into slices for the cache.
            StatusCode::OK if !ex.head_only => return self.relay_and_fill(resp, cache, ex).await,
            // 304, 3xx, 4xx, 5xx: as the origin gave it.
            status => {
                let forwarded = if cache.is_some() { "miss" } else { "bypass" };
                let params = format!("; fwd={forwarded}; fwd-status={}", status.as_u16());
                ex.cache_status = Some(self.status_value(&params));
                return ex.relay(resp).await;
            }
        }
        let version = match check_slice_head(index, size, &resp.head, None) {
            Ok(v) => v,
            Err(_) if total_unknown(&resp.head.headers) => {
                // No total length: with a cache, ask for the whole object and
                // learn the length as it comes, cutting it into slices;
                // without one, pass the client's own request through.
                drop(resp);
                let whole = cache.is_some() && !ex.head_only;
                let headers = if whole {
                    ask.forwarded.clone()
                } else {
                    req_headers_unsliced(ask.req, &ask.forwarded)
                };
                ex.origin_attempts.set(ex.origin_attempts.get() + 1);
                let resp = self
                    .pool
                    .request(&ask.req.method, ask.target, &headers)
                    .await?;
                if whole && resp.head.status == StatusCode::OK {
                    return self.relay_and_fill(resp, cache, ex).await;
                }
                return ex.relay(resp).await;
            }
            Err(e) => return Err(e),
        };
        let mut headers = resp.head.headers.clone();
        object_headers(&mut headers);
        // Small objects (under min_bytes) are one slice: one request, one cache entry.
        let object_size = self
            .settings
            .slice_size
            .object_grid(version.len, self.settings.rules.min_bytes);
        // On another grid the probe's answer is not one of the object's slices.
        let reusable = object_size == size;
        let mut target = None;
        let mut leader = None;
        if let Some((cache, base, flight)) = cache {
            if let Some(ttl) = freshness(&resp.head.headers, cache.default_ttl) {
                let mut m = ObjectManifest::new(&version, object_size, &headers, ttl);
                m.stale =
                    StaleWindows::from_headers(&resp.head.headers, &self.settings.stale_defaults);
                let (key, m) = cache.store_manifest(base, &ask.req.headers, m).await;
                let t = CacheTarget {
                    cache: cache.clone(),
                    key,
                    generation: m.generation,
                };
                if reusable {
                    if let Joined::Leader(l) = cache.flights.join(&t.slice_key(index)) {
                        leader = Some(l);
                    }
                }
                ask.served = Served::Miss { stored: true };
                target = Some(t);
            }
            flight.complete(Ok(()));
            flight.retire();
        }
        let first = reusable.then_some(Probe {
            index,
            opened: OpenedSlice {
                response: resp,
                leader,
            },
        });
        self.respond(&ask, version, headers, object_size, target, first, ex)
            .await
    }

    /// The origin answered the probe's Range with the whole object: relay it
    /// as it is and, when it may be cached, store it cut into slices.
    async fn relay_and_fill(
        &self,
        resp: OriginResponse,
        cache: Option<(&Arc<SliceCache>, &ObjectKey, FlightLeader)>,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let Some((cache, base, _flight)) = cache.filter(|_| self.settings.cut_whole_answers) else {
            return ex.relay(resp).await;
        };
        let mut headers = resp.head.headers.clone();
        object_headers(&mut headers);
        let ttl = freshness(&resp.head.headers, cache.default_ttl);
        let size = self.settings.slice_size.probe_grid();
        let filler = ttl.and_then(|_| Filler::new(cache.clone(), base.clone(), size, &headers));
        let (Some(mut filler), Some(ttl)) = (filler, ttl) else {
            return ex.relay(resp).await;
        };
        ex.cache_status = Some(self.status_value("; fwd=miss; fwd-status=200; stored"));
        // Requests waiting on this probe's flight look again when it ends,
        // after the manifest is stored.
        ex.relay_observed(resp, &mut |chunk| filler.observe(chunk))
            .await?;
        filler
            .finish(&headers, ttl, &self.settings.stale_defaults)
            .await;
        Ok(())
    }

    /// Send the probe, retrying connection failures, timeouts and 5xx answers;
    /// the last 5xx is relayed when retries run out.
    async fn probe_with_retries(
        &self,
        target: &str,
        headers: &HeaderMap,
        index: u64,
        ex: &Exchange<'_>,
    ) -> Result<OriginResponse> {
        let mut retry = Retry::new(self.settings.max_retries);
        loop {
            ex.origin_attempts.set(ex.origin_attempts.get() + 1);
            let delay = match self.pool.request(&Method::GET, target, headers).await {
                Ok(resp) if resp.head.status.is_server_error() => {
                    match retry.after_status(index, resp.head.status.as_u16()) {
                        Some(delay) => delay,
                        None => return Ok(resp),
                    }
                }
                Ok(resp) => return Ok(resp),
                Err(e) => match retry.after(&e) {
                    Some(delay) => delay,
                    None => return Err(e),
                },
            };
            metrics::with(|m| m.origin_retries.inc());
            debug!(
                index,
                retry = retry.retries(),
                delay_ms = delay.as_millis() as u64,
                "retrying probe"
            );
            if !delay.is_zero() {
                monoio::time::sleep(delay).await;
            }
        }
    }

    /// The probe was answered 416: an empty object, or a range past the end.
    async fn unsatisfiable(
        &self,
        ask: Ask<'_>,
        resp: OriginResponse,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let total = match resp
            .head
            .headers
            .get(header::CONTENT_RANGE)
            .map(|v| parse_content_range(v.as_bytes()))
        {
            Some(Ok(ContentRange::Unsatisfied { total })) => total,
            _ => {
                return Err(Error::mismatch(
                    0,
                    "got 416 without \"Content-Range: bytes */length\", expected one",
                ))
            }
        };
        let version = ObjectVersion::from_headers(total, &resp.head.headers);
        let ranged =
            matches!(ask.range, RangeRequest::Single(_)) && if_range_allows(ask.req, &version);
        if ranged {
            return ex.send_unsatisfiable(total).await;
        }
        if total == 0 {
            let mut headers = resp.head.headers.clone();
            object_headers(&mut headers);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return ex.send_head(StatusCode::OK, headers).await;
        }
        if !matches!(ask.range, RangeRequest::Full) {
            // An If-Range that did not match sends the whole object, from slice 0.
            let whole = Ask {
                range: RangeRequest::Full,
                ..ask
            };
            return Box::pin(self.probe(whole, None, ex)).await;
        }
        Err(Error::mismatch(
            0,
            format!("got 416 for the first slice of a {total}-byte object, expected 206"),
        ))
    }

    /// Phases "respond" and "stream": resolve the range against the object's
    /// length, plan the slices, send the head, then the slices in order.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        ask: &Ask<'_>,
        version: ObjectVersion,
        mut headers: HeaderMap,
        slice_size: u64,
        cache: Option<CacheTarget>,
        probe: Option<Probe>,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        if ask.served != Served::Bypass && !matches!(ask.served, Served::Miss { .. }) {
            ex.age = Some(ask.age);
        }
        let verdict = preconditions(ask.req, &version);
        if verdict != Precondition::Proceed {
            if let Some(p) = probe.filter(|p| p.opened.leader.is_some()) {
                // Others may follow the probe's flight: finish and store it.
                let whole = SlicePlan::new(0, version.len - 1, version.len, slice_size);
                let job = self.slice_job(ask, version, whole, cache, Rc::default(), ex);
                let (tx, _) = local_sync::mpsc::unbounded::channel();
                monoio::spawn(run_slice(job, p.index, Some(p.opened), tx));
            }
            ex.cache = match ask.served {
                Served::Bypass => None,
                Served::Miss { .. } => Some(CacheStatus::Miss),
                _ => Some(CacheStatus::Hit),
            };
            ex.cache_status = Some(self.cache_status_of(ask, 0));
            return ex.answer_precondition(verdict, &headers).await;
        }
        let ranged = if_range_allows(ask.req, &version);
        // Several ranges: resolved and coalesced; one left is a plain 206,
        // several a multipart answer, too many the whole object.
        let parts = match &ask.range {
            RangeRequest::Multi(specs) if ranged => Some(coalesce(specs, version.len)),
            _ => None,
        };
        let multipart = parts
            .as_ref()
            .filter(|p| (2..=self.settings.max_ranges.min(MAX_PARTS)).contains(&p.len()))
            .cloned();
        let (status, first, last) = match (&ask.range, parts.as_deref()) {
            (_, Some([])) => return ex.send_unsatisfiable(version.len).await,
            (_, Some([(a, b)])) => (StatusCode::PARTIAL_CONTENT, *a, *b),
            (_, Some(p)) if multipart.is_some() => (StatusCode::PARTIAL_CONTENT, p[0].0, p[0].1),
            // Too many parts for this route: the whole object.
            (_, Some(_)) => (StatusCode::OK, 0, version.len - 1),
            (RangeRequest::Single(spec), _) if ranged => match spec.resolve(version.len) {
                Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
                None => return ex.send_unsatisfiable(version.len).await,
            },
            _ => (StatusCode::OK, 0, version.len - 1),
        };
        // A cached object keeps the slice grid it was stored with.
        let plan = SlicePlan::new(first, last, version.len, slice_size);
        let probe_first = probe
            .as_ref()
            .is_some_and(|p| p.index == plan.first_slice && !ex.head_only && multipart.is_none());
        // Which slices the head will call cached, from the store's index; the
        // probe's slice, if reused, comes from the origin.
        let counted = match &cache {
            Some(t) => plan
                .slices()
                .map(|k| {
                    !(probe_first && k == plan.first_slice)
                        && t.cache.has_slice(&t.key, t.generation, k)
                })
                .collect(),
            None => Vec::new(),
        };
        let counted = Rc::new(CountedSlices::new(plan.first_slice, counted));
        let job = self.slice_job(ask, version, plan, cache, counted.clone(), ex);
        // The probe's answer is reused when it is the plan's first slice (and
        // the body is wanted). Otherwise, when others may follow its flight,
        // it is finished and stored in the background.
        let probe = match probe {
            Some(p) if p.index == plan.first_slice && !ex.head_only && multipart.is_none() => {
                Some(p.opened)
            }
            Some(p) if p.opened.leader.is_some() => {
                let (tx, _) = local_sync::mpsc::unbounded::channel();
                monoio::spawn(run_slice(job.clone(), p.index, Some(p.opened), tx));
                None
            }
            _ => None,
        };
        let cached = counted.count();
        let fetched = plan.slice_count() - cached;
        let status_of_cache = match &job.cache {
            Some(_) => CacheStatus::from_counts(cached, fetched),
            None => CacheStatus::Miss,
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
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(plan.content_length()),
        );
        if status == StatusCode::PARTIAL_CONTENT {
            let cr = ContentRange::Bytes {
                first,
                last,
                total: Some(plan.object_len),
            };
            headers.insert(header::CONTENT_RANGE, header_value(&cr.to_string()));
        }
        headers.insert(
            "x-cache",
            HeaderValue::from_static(status_of_cache.as_str()),
        );
        ex.cache = Some(status_of_cache);
        ex.cache_status = Some(self.cache_status_of(ask, fetched));
        let how = stream::Sending {
            window: self.settings.window,
            budget: &self.budget,
            send_timeout: ex.send_timeout,
        };
        if let Some(parts) = &multipart {
            return crate::proxy::multipart::send(&job, parts, headers, how, ex).await;
        }
        ex.send_head(status, headers).await?;
        if ex.head_only {
            return Ok(());
        }
        let mut delivered = stream::Delivery::default();
        let result = stream::send_slices(job.clone(), how, probe, ex.writer, &mut delivered).await;
        ex.record(&delivered);
        result?;
        if status == StatusCode::PARTIAL_CONTENT {
            self.prefetch.after(&job, first, last);
        }
        Ok(())
    }
}

impl Proxy {
    /// The slice job of one answer: what every slice task of it needs.
    fn slice_job(
        &self,
        ask: &Ask<'_>,
        version: ObjectVersion,
        plan: SlicePlan,
        cache: Option<CacheTarget>,
        counted: Rc<CountedSlices>,
        ex: &Exchange<'_>,
    ) -> Rc<SliceJob> {
        Rc::new(SliceJob {
            pool: self.pool.clone(),
            target: Rc::from(ask.target),
            headers: Rc::new(slice_headers(
                ask.forwarded.clone(),
                self.settings.origin_if_match.then_some(&version),
            )),
            plan,
            version: Rc::new(version),
            cache,
            max_retries: self.settings.max_retries,
            slice_timeout: self.settings.slice_timeout,
            attempts: ex.origin_attempts.clone(),
            counted,
        })
    }

    /// This cache's `Cache-Status` member for an answer to `ask` whose slices
    /// came `fetched` from the origin.
    fn cache_status_of(&self, ask: &Ask<'_>, fetched: u64) -> HeaderValue {
        cache_status(&self.settings.node_name, ask.served, fetched, ask.ttl, None)
    }
}

/// Whether every slice of the object `m` describes is in the store.
fn all_slices_cached(cache: &SliceCache, key: &ObjectKey, m: &ObjectManifest) -> bool {
    (0..m.len.div_ceil(m.slice_size)).all(|k| cache.has_slice(key, m.generation, k))
}
