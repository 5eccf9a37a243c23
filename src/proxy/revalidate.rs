//! Revalidation of a stale object: one request per object, conditional
//! when the object has a validator, and a HEAD when the client asked with
//! a HEAD (RFC 9111 4.3.5: no content is moved to answer it).
//!
//! A 304 (or the same version again) refreshes every slice at once; another
//! version, a 404 or a 410 forgets the manifest, and that answer goes to the
//! request's probe (the origin is not asked twice for one request); a
//! failing origin (down, 5xx, timeout) or a refusal of the request (another
//! 4xx: often about the client's own headers) leaves it stale, for
//! stale-if-error and the next client. An object with no validator is asked
//! plainly: any answer replaces it, a failing origin leaves it stale as
//! well. A HEAD's `200` whose validators and `Content-Length` are the
//! stored ones freshens the object with its fields, as a 304 does; any
//! other answer to a HEAD goes to the client as it is and leaves the object
//! stale, for the next GET to revalidate (an origin that answers HEAD badly
//! costs no stored slice). Concurrent requests for the same stale object
//! wait for the one revalidation in flight.

use std::rc::Rc;
use std::sync::Arc;

use http::{header, HeaderMap, Method, StatusCode};
use tracing::debug;

use crate::cache::freshness::{current_age, freshness, revalidatable, Heuristics};
use crate::cache::manifest::{expiry, unix_now, StaleWindows};
use crate::cache::{Joined, ObjectKey, ObjectManifest, SliceCache};
use crate::http::headers::slice_headers;
use crate::ops::metrics::{self, RevalidationResult};
use crate::origin::pool::{OriginPool, OriginResponse};
use crate::slice::check::check_slice_head;
use crate::slice::plan::slice_range_value;
use monoio_http::common::response::ResponseHead;

/// How a revalidation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revalidation {
    /// 304 (or the same version again): every slice is fresh again.
    Fresh,
    /// Another version: the manifest is forgotten.
    Changed,
    /// The origin could not say (down, 5xx, timeout): the manifest stays stale.
    Failed,
    /// Another request revalidated it; look again.
    Waited,
    /// A HEAD's answer that did not vouch for the stored version (another
    /// status, validator or length): it is the client's answer, and the
    /// object stays stale.
    Unconfirmed,
}

/// What a revalidation's answer becomes for the request that asked, when
/// it is not a 304.
pub(crate) enum Answer {
    /// Another version of slice 0, for the probe.
    Probe(ChangedAnswer),
    /// The answer to a HEAD, relayed as the origin gave it.
    Relay(OriginResponse),
}

/// The origin's answer to a revalidation that found another version (or
/// none: a 404): a whole answer for slice 0 on the `slice_size` grid,
/// which the request that asked can use as its probe's answer rather than
/// asking again.
pub(crate) struct ChangedAnswer {
    pub(crate) resp: OriginResponse,
    pub(crate) slice_size: u64,
}

/// Revalidate the stale manifest `m` of `key` with one conditional request,
/// once per object: a 304 refreshes every slice at once; another version
/// forgets it; a failing origin leaves it stale (for stale-if-error).
/// `method` is the client's: a HEAD is asked as a HEAD (see the module
/// doc). `stale_defaults` are the route's RFC 5861 windows, for an origin
/// that gives none.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn revalidate(
    pool: Rc<OriginPool>,
    cache: Arc<SliceCache>,
    target: String,
    method: Method,
    forwarded: HeaderMap,
    key: ObjectKey,
    mut m: ObjectManifest,
    stale_defaults: StaleWindows,
) -> (Revalidation, Option<Answer>) {
    let flight_key = format!("r|{:016x}|{}", m.generation, key.as_str());
    let flight = match cache.flights.join(&flight_key) {
        Joined::Leader(flight) => flight,
        Joined::Follower(rx) => {
            while rx.recv_async().await.is_ok() {}
            return (Revalidation::Waited, None);
        }
    };
    let head = method == Method::HEAD;
    let mut headers = slice_headers(forwarded, None);
    if !head {
        headers.insert(header::RANGE, slice_range_value(0, m.slice_size));
    }
    let version = m.version();
    // Without a validator the request is plain: its answer, whatever it
    // is, replaces the object (nothing can prove it the same version), but a
    // failing origin still leaves it for stale-if-error.
    if let Some(etag) = &version.etag {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    } else if let Some(lm) = &version.last_modified {
        headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
    }
    let can_match = version.etag.is_some() || version.last_modified.is_some();
    let mut answer = None;
    let outcome = match pool.request(&method, &target, &headers).await {
        Ok(resp) if resp.head.status == StatusCode::NOT_MODIFIED && can_match => {
            // The 304's headers update the stored ones (RFC 9111 4.3.4),
            // its freshness and Date included.
            freshen(
                &mut m,
                &resp.head.headers,
                &stale_defaults,
                cache.heuristics,
            )
        }
        Ok(resp) if resp.head.status.is_server_error() => Revalidation::Failed,
        // A refusal other than "gone" (400, 401, 403, 413, 429, 431...) is
        // likely about the request, the client's own headers: it says
        // nothing of the object, which stays (stale) for the next client.
        Ok(resp)
            if resp.head.status.is_client_error()
                && resp.head.status != StatusCode::NOT_FOUND
                && resp.head.status != StatusCode::GONE =>
        {
            debug!(
                status = resp.head.status.as_u16(),
                "revalidation refused: the object stays"
            );
            Revalidation::Failed
        }
        // A 304 to a request with no condition: the origin is confused.
        Ok(resp) if resp.head.status == StatusCode::NOT_MODIFIED => Revalidation::Changed,
        // A HEAD's 200 for the stored version updates it as a 304 would
        // (RFC 9111 4.3.5); any other answer is the client's, and leaves it.
        // (An answer that may no longer be stored forgets it, and is the
        // client's too.)
        Ok(resp) if head => {
            let outcome = match confirms(&resp.head, &m) {
                true => freshen(
                    &mut m,
                    &resp.head.headers,
                    &stale_defaults,
                    cache.heuristics,
                ),
                false => Revalidation::Unconfirmed,
            };
            if outcome != Revalidation::Fresh {
                answer = Some(Answer::Relay(resp));
            }
            outcome
        }
        Ok(resp) if !can_match => {
            answer = Some(Answer::Probe(ChangedAnswer {
                resp,
                slice_size: m.slice_size,
            }));
            Revalidation::Changed
        }
        Ok(resp) => match check_slice_head(0, m.slice_size, &resp.head, Some(&version)) {
            // An origin that ignores conditionals but still has the same version.
            Ok(_) => match validated_for(&resp.head.headers, cache.heuristics) {
                Some(ttl) => {
                    m.expires_at = expiry(ttl);
                    m.validated_at = unix_now();
                    Revalidation::Fresh
                }
                None => {
                    answer = Some(Answer::Probe(ChangedAnswer {
                        resp,
                        slice_size: m.slice_size,
                    }));
                    Revalidation::Changed
                }
            },
            Err(_) => {
                answer = Some(Answer::Probe(ChangedAnswer {
                    resp,
                    slice_size: m.slice_size,
                }));
                Revalidation::Changed
            }
        },
        Err(e) => {
            debug!(error = %e, "revalidation failed");
            Revalidation::Failed
        }
    };
    let result = match outcome {
        Revalidation::Fresh => RevalidationResult::NotModified,
        Revalidation::Changed => RevalidationResult::Changed,
        Revalidation::Unconfirmed => RevalidationResult::Unconfirmed,
        _ => RevalidationResult::Failed,
    };
    metrics::with(|m| m.revalidations.inc(result));
    match outcome {
        Revalidation::Fresh => cache.put(&key, &m).await,
        Revalidation::Changed => cache.forget(&key),
        _ => {}
    }
    flight.complete(Ok(()));
    flight.retire();
    (outcome, answer)
}

/// Update `m` with the fields of an answer that vouched for its version (a
/// 304, RFC 9111 4.3.4, or a HEAD's 200, 4.3.5), its freshness and `Date`
/// included: fresh again, or `Changed` when the answer says it may no
/// longer be stored.
fn freshen(
    m: &mut ObjectManifest,
    fields: &HeaderMap,
    stale_defaults: &StaleWindows,
    heuristics: Heuristics,
) -> Revalidation {
    let mut fields = fields.clone();
    crate::http::h1::strip_hop_by_hop(&mut fields);
    let merged = m.update_headers(&fields);
    // The route's windows, as when the object was stored.
    m.stale = StaleWindows::from_headers(&merged, stale_defaults);
    match validated_for(&merged, heuristics) {
        Some(ttl) => {
            m.expires_at = expiry(ttl);
            m.validated_at = unix_now().saturating_sub(current_age(&merged).as_secs());
            Revalidation::Fresh
        }
        None => Revalidation::Changed,
    }
}

/// Whether a HEAD's answer vouches for the stored version `m` (RFC 9111
/// 4.3.5): a 200 to a stored 200, with the stored validators (neither
/// `ETag` nor `Last-Modified` added, dropped or changed) and, when it says
/// one, the stored length.
fn confirms(head: &ResponseHead, m: &ObjectManifest) -> bool {
    let same = |name: header::HeaderName, stored: Option<&[u8]>| {
        head.headers.get(name).map(|v| v.as_bytes()) == stored
    };
    let length = match crate::http::h1::content_length(&head.headers) {
        Ok(None) => true,
        Ok(Some(len)) => len == m.len,
        Err(_) => false,
    };
    head.status == StatusCode::OK
        && m.status == StatusCode::OK.as_u16()
        && same(header::ETAG, m.etag.as_deref())
        && same(header::LAST_MODIFIED, m.last_modified.as_deref())
        && length
}

/// How long an object the origin has just vouched for stays fresh: its
/// freshness, or none (zero) when it has none left but may be kept to be
/// validated again (`no-cache`, `max-age=0`, an `Expires` past): the request
/// that validated it is served from it (RFC 9111 4.3.3), the next one asks
/// again. `None` when it may no longer be stored.
fn validated_for(headers: &HeaderMap, heuristics: Heuristics) -> Option<std::time::Duration> {
    freshness(headers, heuristics)
        .or_else(|| revalidatable(headers).then_some(std::time::Duration::ZERO))
}
