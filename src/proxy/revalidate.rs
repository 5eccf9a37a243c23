//! Revalidation of a stale object: one conditional request per object.
//!
//! A 304 (or the same version again) refreshes every slice at once; another
//! version, a 404 or a 410 forgets the manifest; a failing origin (down,
//! 5xx, timeout) or a refusal of the request (another 4xx: often about the
//! client's own headers) leaves it stale, for stale-if-error and the next
//! client. Concurrent requests for the same stale object wait for the one
//! revalidation in flight.

use std::rc::Rc;
use std::sync::Arc;

use http::{header, HeaderMap, Method, StatusCode};
use tracing::debug;

use crate::cache::freshness::{current_age, freshness};
use crate::cache::manifest::{unix_now, StaleWindows};
use crate::cache::{Joined, ObjectKey, ObjectManifest, SliceCache};
use crate::http::headers::slice_headers;
use crate::ops::metrics::{self, RevalidationResult};
use crate::origin::pool::OriginPool;
use crate::slice::check::check_slice_head;
use crate::slice::plan::slice_range_value;

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
}

/// Revalidate the stale manifest `m` of `key` with one conditional request,
/// once per object: a 304 refreshes every slice at once; another version
/// forgets it; a failing origin leaves it stale (for stale-if-error).
/// `stale_defaults` are the route's RFC 5861 windows, for an origin that
/// gives none.
pub(crate) async fn revalidate(
    pool: Rc<OriginPool>,
    cache: Arc<SliceCache>,
    target: String,
    forwarded: HeaderMap,
    key: ObjectKey,
    mut m: ObjectManifest,
    stale_defaults: StaleWindows,
) -> Revalidation {
    let flight_key = format!("r|{:016x}|{}", m.generation, key.as_str());
    let flight = match cache.flights.join(&flight_key) {
        Joined::Leader(flight) => flight,
        Joined::Follower(rx) => {
            while rx.recv_async().await.is_ok() {}
            return Revalidation::Waited;
        }
    };
    let mut headers = slice_headers(forwarded, None);
    headers.insert(header::RANGE, slice_range_value(0, m.slice_size));
    let version = m.version();
    match (&version.etag, &version.last_modified) {
        (Some(etag), _) => headers.insert(header::IF_NONE_MATCH, etag.clone()),
        (None, Some(lm)) => headers.insert(header::IF_MODIFIED_SINCE, lm.clone()),
        (None, None) => {
            cache.forget(&key);
            return Revalidation::Changed;
        }
    };
    let outcome = match pool.request(&Method::GET, &target, &headers).await {
        Ok(resp) if resp.head.status == StatusCode::NOT_MODIFIED => {
            // The 304's headers update the stored ones (RFC 9111 4.3.4),
            // its freshness and Date included.
            let mut not_modified = resp.head.headers.clone();
            crate::http::h1::strip_hop_by_hop(&mut not_modified);
            let merged = m.update_headers(&not_modified);
            // The route's windows, as when the object was stored.
            m.stale = StaleWindows::from_headers(&merged, &stale_defaults);
            freshness(&merged, cache.default_ttl).map_or(Revalidation::Changed, |ttl| {
                m.expires_at = unix_now() + ttl.as_secs();
                m.validated_at = unix_now().saturating_sub(current_age(&merged).as_secs());
                Revalidation::Fresh
            })
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
        Ok(resp) => match check_slice_head(0, m.slice_size, &resp.head, Some(&version)) {
            // An origin that ignores conditionals but still has the same version.
            Ok(_) => freshness(&resp.head.headers, cache.default_ttl).map_or(
                Revalidation::Changed,
                |ttl| {
                    m.expires_at = unix_now() + ttl.as_secs();
                    m.validated_at = unix_now();
                    Revalidation::Fresh
                },
            ),
            Err(_) => Revalidation::Changed,
        },
        Err(e) => {
            debug!(error = %e, "revalidation failed");
            Revalidation::Failed
        }
    };
    let result = match outcome {
        Revalidation::Fresh => RevalidationResult::NotModified,
        Revalidation::Changed => RevalidationResult::Changed,
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
    outcome
}
