//! Phase "probe": the first request to the origin for an object.
//!
//! The probe asks for the slice holding the first byte the client wants. A
//! checked 206 tells the object's length and validators: with the cache it
//! becomes the object's manifest, and its body becomes the response's first
//! slice. A 416 tells the length of an empty object or of one the range
//! starts past. An origin that ignores Range (200) is relayed whole and, when
//! cacheable, cut into slices on the way ([`Filler`]); one that gives no
//! total length is asked for the whole object. Anything else (304, 3xx, 4xx,
//! 5xx after retries) is relayed as the origin gave it.

use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::cache::freshness::{
    explicit_freshness, freshness_of, revalidatable, shared_despite_credentials, unshared_fields,
    Heuristics,
};
use crate::cache::manifest::StaleWindows;
use crate::cache::{Joined, ObjectManifest};
use crate::cluster::PeerId;
use crate::error::{Error, Result};
use crate::http::body::BodyFraming;
use crate::http::content_range::{parse_content_range, ContentRange};
use crate::http::h1;
use crate::http::headers::{object_headers, req_headers_unsliced, slice_headers, total_unknown};
use crate::http::object_version::ObjectVersion;
use crate::http::range::{ByteRangeSpec, RangeRequest};
use crate::http::sink::ResponseSink;
use crate::origin::pool::OriginResponse;
use crate::proxy::cache_status::Served;
use crate::proxy::context::{ObjectRequest, Proxy};
use crate::proxy::exchange::Exchange;
use crate::proxy::fill::Filler;
use crate::proxy::lookup::Cold;
use crate::proxy::respond::{ProbeAnswer, StoredObject};
use crate::slice::attempt::{open, retrying, Asking, Attempt};
use crate::slice::check::{check_slice_head, short_without_validator};
use crate::slice::job::{CacheTarget, OpenedSlice};
use crate::slice::plan::{self, slice_range_value};

/// What the probe found.
// Built once per request and moved to the driver: a Box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Probe {
    /// The object's version is known: answer from slices.
    Sliced(StoredObject),
    /// An answer to relay as the origin gave it.
    Relay(OriginResponse),
    /// A whole answer to relay and, with `Cold`, cut into slices for the cache.
    Fill(OriginResponse, Option<Cold>),
}

impl Proxy {
    /// Phase "probe" (see the module doc). `cold` is the flight of a cold
    /// object this request leads: its answer is stored, and requests waiting
    /// on the flight look again as soon as it ends.
    pub(crate) async fn probe<S: ResponseSink>(
        &self,
        ask: &mut ObjectRequest<'_>,
        cold: Option<Cold>,
        ex: &mut Exchange<'_, S>,
    ) -> Result<Probe> {
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
        // judged against what it learned (phase "respond").
        let mut probe_headers = match cold {
            Some(_) => slice_headers((*ask.forwarded).clone(), None),
            None => (*ask.forwarded).clone(),
        };
        probe_headers.insert(header::RANGE, slice_range_value(index, size));
        ask.served = match cold {
            Some(_) => Served::Miss { stored: false },
            None => Served::Bypass,
        };
        ex.cache_status = Some(self.relay_status(ask.served, None));
        // The probe's slice is in memory once asked for: its share of the
        // worker's budget first (it becomes the answer's first slice's).
        let reserved = self.budget.reserve(size, ex.client, true).await;
        let mut cold = cold;
        let changed = cold.as_mut().and_then(|c| c.changed.take());
        let (resp, from_peer) = match changed.filter(|c| index == 0 && c.slice_size == size) {
            // The revalidation's answer asked for this very slice.
            Some(changed) => {
                ex.origin_attempts.count_one();
                (changed.resp, None)
            }
            None => {
                self.send_probe(ask, cold.as_ref(), &probe_headers, index, ex)
                    .await?
            }
        };
        match resp.head.status {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let probe = unsatisfiable(ask, resp, |len| self.object_grid(len))?;
                if let Probe::Sliced(object) = &probe {
                    self.within_bounds(object.version.len)?;
                }
                return Ok(probe);
            }
            // Range ignored: relayed whole, and cut into slices for the cache.
            StatusCode::OK if !ex.head_only => return Ok(Probe::Fill(resp, cold)),
            // Another final status with freshness the cache may use
            // (a 404 that says max-age=60): relayed, and stored whole.
            status
                if !ex.head_only
                    && cold.as_ref().is_some_and(|c| {
                        let shown = (&*ask.forwarded, &resp.head.headers);
                        self.storable_for(status, shown, c.cache.heuristics)
                            .is_some()
                    }) =>
            {
                return Ok(Probe::Fill(resp, cold));
            }
            // 304, 3xx, 4xx, 5xx: as the origin gave it.
            status => {
                ex.cache_status = Some(self.relay_status(ask.served, Some(status.as_u16())));
                return Ok(Probe::Relay(resp));
            }
        }
        let version = match check_slice_head(index, size, &resp.head, None) {
            Ok(v) => v,
            Err(_) if total_unknown(&resp.head.headers) => {
                // No total length: the object cannot be cut by range.
                drop(resp);
                return self.unsliced(ask, cold, ex).await;
            }
            Err(_) if short_without_validator(index, size, &resp.head) => {
                // Fewer bytes than the slice and nothing to combine the rest
                // with: the object is asked for whole, not the request failed.
                drop(resp);
                return self.unsliced(ask, cold, ex).await;
            }
            Err(e) => return Err(e),
        };
        self.within_bounds(version.len)?;
        let several_slices = version.len > self.object_grid(version.len);
        if several_slices && version.etag.is_none() && version.last_modified.is_none() {
            // Nothing tells one version of it from another: its slices
            // could be two versions spliced together. It is not sliced.
            drop(resp);
            return self.unsliced(ask, cold, ex).await;
        }
        let mut headers = resp.head.headers.clone();
        object_headers(&mut headers);
        let object_size = self.object_grid(version.len);
        // On another grid the probe's answer is not one of the object's slices.
        let reusable = object_size == size;
        let mut target = None;
        let mut leader = None;
        if let Some(Cold {
            cache,
            base,
            flight,
            ..
        }) = cold
        {
            if let Some(ttl) = self.storable_for(
                StatusCode::OK,
                (&*ask.forwarded, &resp.head.headers),
                cache.heuristics,
            ) {
                let mut m = ObjectManifest::new(&version, object_size, &headers, ttl);
                m.stale =
                    StaleWindows::from_headers(&resp.head.headers, &self.settings.stale_defaults);
                let (key, m) = cache.place_manifest(&base, &ask.forwarded, m).await;
                let t = CacheTarget {
                    cache: cache.clone(),
                    key,
                    generation: m.generation,
                };
                // The probe's slice is in flight before anyone can find the
                // manifest: a request that does follows this fetch instead
                // of asking the origin for the slice a second time.
                if reusable {
                    if let Joined::Leader(l) = cache.flights.join(&t.slice_key(index)) {
                        leader = Some(l);
                    }
                }
                cache.put(&t.key, &m).await;
                ask.served = Served::Miss { stored: true };
                target = Some(t);
            }
            flight.complete(Ok(()));
            flight.retire();
        }
        let probe = reusable.then(|| {
            Box::new(ProbeAnswer {
                index,
                opened: OpenedSlice {
                    response: resp,
                    from_peer,
                    leader,
                    reserved: Some(reserved),
                },
            })
        });
        Ok(Probe::Sliced(StoredObject {
            version,
            headers,
            slice_size: object_size,
            status: StatusCode::OK,
            cache: target,
            probe,
        }))
    }

    /// An object length the origin (or a peer) announced, refused before it
    /// sizes anything when it is over `slice.max_object_bytes`.
    fn within_bounds(&self, len: u64) -> Result<()> {
        let max = self.settings.max_object_bytes;
        if len > max {
            return Err(Error::OriginProtocol(format!(
                "got an object length of {len} bytes, expected at most slice.max_object_bytes = {max}"
            )));
        }
        Ok(())
    }

    /// How long an answer with `headers` to a request with `request`
    /// headers may be stored: its freshness, unless it sets a cookie
    /// (stored only where the route says so: a stored cookie goes to every
    /// client), or answers a request with credentials without saying it
    /// may be shared (RFC 9111 3.5).
    fn storable_for(
        &self,
        status: StatusCode,
        (request, headers): (&HeaderMap, &HeaderMap),
        heuristics: Heuristics,
    ) -> Option<std::time::Duration> {
        // A cookie goes to one client: an answer that sets one is stored
        // only when the route says so, or without it when the answer
        // itself says so (`no-cache="Set-Cookie"`, RFC 9111 5.2.2.4).
        if !self.settings.store_set_cookie
            && headers.contains_key(header::SET_COOKIE)
            && !unshared_fields(headers).iter().any(|f| f == "set-cookie")
        {
            return None;
        }
        if request.contains_key(header::AUTHORIZATION) && !shared_despite_credentials(headers) {
            return None;
        }
        // An object with no freshness left but a validator is stored stale:
        // the next request revalidates it (RFC 9111 4.3), a 304 serves it.
        freshness_of(status, headers, heuristics).or_else(|| {
            (status == StatusCode::OK && revalidatable(headers))
                .then_some(std::time::Duration::ZERO)
        })
    }

    /// An object that cannot be cut by range (no total length, or no
    /// validator to keep its slices one version): with a cache and a body
    /// wanted, the whole object is asked for and cut into slices as it
    /// comes (one answer, one version); otherwise the client's own request
    /// is passed through.
    async fn unsliced<S: ResponseSink>(
        &self,
        ask: &ObjectRequest<'_>,
        cold: Option<Cold>,
        ex: &mut Exchange<'_, S>,
    ) -> Result<Probe> {
        let whole = cold.is_some() && !ex.head_only;
        let headers = match whole {
            true => (*ask.forwarded).clone(),
            false => req_headers_unsliced(ask.req, &ask.forwarded),
        };
        ex.origin_attempts.count_one();
        let resp = self
            .pool
            .request(&ask.req.method, ask.target, &headers)
            .await?;
        if whole && resp.head.status == StatusCode::OK {
            return Ok(Probe::Fill(resp, cold));
        }
        Ok(Probe::Relay(resp))
    }

    /// The slice grid of an object of `len` bytes.
    fn object_grid(&self, len: u64) -> u64 {
        // Small objects (under min_bytes) are one slice: one request, one cache entry.
        let min_bytes = self.settings.rules.min_bytes;
        self.settings.slice_size.object_grid(len, min_bytes)
    }

    /// The origin answered the probe's Range with the whole object: relay it
    /// as it is and, when it may be cached, store it cut into slices.
    pub(crate) async fn relay_and_fill<S: ResponseSink>(
        &self,
        request_headers: &HeaderMap,
        resp: OriginResponse,
        cold: Option<Cold>,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        // A body delimited by the close cannot tell a transfer cut short
        // from a whole one: relayed, never stored.
        let whole_known = resp.framing() != BodyFraming::UntilClose;
        let Some(cold) = cold.filter(|_| self.settings.cut_whole_answers && whole_known) else {
            return ex.relay(resp).await;
        };
        // A whole answer is stored with the header fields it came with
        // (RFC 9111 3.1), a Content-Range on a 200 included, but its framing;
        // a 200 is served in ranges from the cache, another status is not.
        let status = resp.head.status;
        let mut headers = resp.head.headers.clone();
        h1::strip_hop_by_hop(&mut headers);
        headers.remove(header::CONTENT_LENGTH);
        if status == StatusCode::OK {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        let shown = (request_headers, &resp.head.headers);
        let ttl = self.storable_for(status, shown, cold.cache.heuristics);
        let size = self.settings.slice_size.probe_grid();
        let limit = self.settings.fill_limit;
        let filler = match ttl {
            Some(_) => {
                let (cache, base) = (cold.cache.clone(), cold.base);
                let origin_headers = &resp.head.headers;
                Filler::new(cache, base, request_headers, (size, limit), origin_headers).await
            }
            None => None,
        };
        let (Some(mut filler), Some(ttl)) = (filler, ttl) else {
            return ex.relay(resp).await;
        };
        let stored = Served::Miss { stored: true };
        ex.cache_status = Some(self.relay_status(stored, Some(status.as_u16())));
        // Requests waiting on this probe's flight look again when it ends
        // (`cold.flight` is dropped last), after the manifest is stored.
        ex.relay_filling(resp, Some(&mut filler)).await?;
        filler
            .finish(status, &headers, ttl, &self.settings.stale_defaults)
            .await;
        Ok(())
    }

    /// Send the probe ([`crate::slice::attempt::open`], like any slice): of
    /// a cold object, first to the home of its slice when that is a peer (or
    /// its stand-in), so each object is probed once per POP; else to the
    /// origin, retrying connection failures, timeouts and 5xx answers, the
    /// last 5xx relayed when retries run out. Its answer is checked by the
    /// caller, a peer's as an origin's. Says which peer answered, if one did.
    async fn send_probe<S>(
        &self,
        ask: &ObjectRequest<'_>,
        cold: Option<&Cold>,
        headers: &HeaderMap,
        index: u64,
        ex: &Exchange<'_, S>,
    ) -> Result<(OriginResponse, Option<PeerId>)> {
        let peers = cold.and_then(|_| self.peers_for(ask.req));
        // The home is asked once, before the origin's first attempt.
        let mut home = match (&peers, cold) {
            (Some(peers), Some(cold)) => Some((&**peers, cold.base.as_str())),
            _ => None,
        };
        let host = ask.req.headers.get(header::HOST);
        let max_retries = self.settings.max_retries;
        retrying(max_retries, index, "probe", async |_| {
            let asking = Asking {
                pool: &self.pool,
                home: home.take(),
                host,
                target: ask.target,
                headers,
                peer_range: None,
                attempts: &ex.origin_attempts,
            };
            match open(&asking, index, |resp, _| Ok(resp)).await {
                // A 5xx the origin gave a lifetime is its answer: relayed
                // (and stored while fresh), not retried. A bare 503 is.
                Ok((resp, None))
                    if resp.head.status.is_server_error()
                        && !meant(resp.head.status, &resp.head.headers) =>
                {
                    Attempt::ServerError(resp.head.status.as_u16(), (resp, None))
                }
                Ok(answer) => Attempt::Done(answer),
                Err(e) => Attempt::Failed(e),
            }
        })
        .await
    }
}

/// The probe was answered 416: an empty object, or a range that starts past
/// the end. The length and validators still describe the object; phase
/// "respond" decides between 416, an empty 200, and (an If-Range that did not
/// match) the whole object.
fn unsatisfiable(
    ask: &ObjectRequest<'_>,
    resp: OriginResponse,
    grid: impl Fn(u64) -> u64,
) -> Result<Probe> {
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
    if total > 0 && matches!(ask.range, RangeRequest::Full) {
        return Err(Error::mismatch(
            0,
            format!("got 416 for the first slice of a {total}-byte object, expected 206"),
        ));
    }
    let version = ObjectVersion::from_headers(total, &resp.head.headers);
    let mut headers: HeaderMap = resp.head.headers.clone();
    object_headers(&mut headers);
    Ok(Probe::Sliced(StoredObject {
        version,
        headers,
        slice_size: grid(total),
        status: StatusCode::OK,
        cache: None,
        probe: None,
    }))
}

/// Whether a server error is the origin's deliberate answer rather than a
/// passing failure: it gave it explicit freshness (RFC 9111 4.2.1; even an
/// expired one: it says how long the error stands), or it is cacheable by
/// default and has a heuristic lifetime (a 501 with a Last-Modified, 4.2.2).
fn meant(status: StatusCode, headers: &HeaderMap) -> bool {
    explicit_freshness(headers)
        || freshness_of(status, headers, Heuristics::rfc(Duration::MAX)).is_some()
}
