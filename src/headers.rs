//! Header rules of the pipeline: what a request may be cached as, which
//! conditionals go where, and the framing headers of sliced answers.
//!
//! Pure functions over header maps, used by [`crate::proxy`].

use http::{header, HeaderMap, HeaderValue};
use monoio_http::common::request::RequestHead;

use crate::fetch::ObjectVersion;
use crate::http1;
use crate::plan;
use crate::range::{parse_content_range, ContentRange};

/// A request the cache may answer: no credentials. Conditionals are
/// answered from the stored object ([`preconditions`]).
pub(crate) fn cacheable_request(req: &RequestHead) -> bool {
    !req.headers.contains_key(header::AUTHORIZATION)
}

pub(crate) fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

pub(crate) fn total_unknown(headers: &HeaderMap) -> bool {
    matches!(
        headers
            .get(header::CONTENT_RANGE)
            .map(|v| parse_content_range(v.as_bytes())),
        Some(Ok(ContentRange::Bytes { total: None, .. }))
    )
}

/// The client's own request for a pass-through: its Range and If-Range put back.
pub(crate) fn req_headers_unsliced(req: &RequestHead, forwarded: &HeaderMap) -> HeaderMap {
    let mut headers = forwarded.clone();
    for name in [header::RANGE, header::IF_RANGE] {
        if let Some(v) = req.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers
}

/// Headers for slices after the probe: the client's conditionals removed, so
/// every slice is a plain 206; with `version`, the origin is asked to refuse
/// any other version itself: `If-Match` with a strong ETag, else
/// `If-Unmodified-Since` with the Last-Modified.
pub(crate) fn slice_headers(mut headers: HeaderMap, version: Option<&ObjectVersion>) -> HeaderMap {
    for name in [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        headers.remove(name);
    }
    if let Some(v) = version {
        match (&v.etag, &v.last_modified) {
            (Some(etag), _) if !etag.as_bytes().starts_with(b"W/") => {
                headers.insert(header::IF_MATCH, etag.clone());
            }
            (_, Some(lm)) => {
                headers.insert(header::IF_UNMODIFIED_SINCE, lm.clone());
            }
            _ => {}
        }
    }
    headers
}

/// The origin's end-to-end headers, without the framing of the slice answer.
pub(crate) fn object_headers(headers: &mut HeaderMap) {
    http1::strip_hop_by_hop(headers);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_RANGE);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

pub(crate) fn unsatisfied_headers(total: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_RANGE,
        header_value(&ContentRange::Unsatisfied { total }.to_string()),
    );
    headers
}

pub(crate) fn range_value(index: u64, size: u64) -> HeaderValue {
    header_value(&plan::slice_range_header(index, size))
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("generated header values are ASCII")
}

/// How the object's stored state was had, for `Cache-Status` and `Age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Not from the cache: the cache is off or this request may not use it.
    Bypass,
    /// Fetched from the origin; `stored` when the cache keeps it.
    Miss {
        /// The cache kept the answer.
        stored: bool,
    },
    /// Fresh in the cache.
    Fresh,
    /// Stale, served while one background revalidation runs.
    StaleWhileRevalidate,
    /// Revalidated with the origin just now.
    Revalidated,
    /// Stale, served because the origin failed to revalidate it.
    StaleIfError,
}

/// The `Cache-Status` member of this cache (RFC 9211) for an answer of
/// `served` whose slices came `fetched` from the origin; `ttl` is the stored
/// object's freshness left (negative when stale), `fwd_status` the origin's
/// status when an origin answer is relayed.
pub(crate) fn cache_status(
    node: &str,
    served: Served,
    fetched: u64,
    ttl: i64,
    fwd_status: Option<u16>,
) -> HeaderValue {
    let mut v = String::with_capacity(48);
    v.push_str(node);
    let stale_hit = served == Served::StaleWhileRevalidate;
    match served {
        Served::Bypass => v.push_str("; fwd=bypass"),
        Served::Miss { .. } => v.push_str("; fwd=miss"),
        Served::Revalidated => v.push_str("; fwd=stale; fwd-status=304"),
        Served::StaleIfError => v.push_str("; fwd=stale"),
        Served::Fresh | Served::StaleWhileRevalidate if fetched > 0 => v.push_str("; fwd=partial"),
        Served::Fresh | Served::StaleWhileRevalidate => v.push_str("; hit"),
    }
    if let Some(status) = fwd_status {
        v.push_str(&format!("; fwd-status={status}"));
    }
    let stored = match served {
        Served::Miss { stored } => stored,
        Served::Fresh | Served::StaleWhileRevalidate => fetched > 0,
        _ => false,
    };
    if stored {
        v.push_str("; stored");
    }
    if !matches!(served, Served::Bypass | Served::Miss { .. }) {
        v.push_str(&format!("; ttl={ttl}"));
    }
    if served == Served::StaleIfError {
        v.push_str("; detail=stale-if-error");
    } else if stale_hit {
        v.push_str("; detail=stale-while-revalidate");
    }
    header_value(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values() {
        use Served::*;
        let cases: &[(Served, u64, i64, Option<u16>, &str)] = &[
            (Fresh, 0, 60, None, "n; hit; ttl=60"),
            (Fresh, 2, 60, None, "n; fwd=partial; stored; ttl=60"),
            (Miss { stored: true }, 4, 0, None, "n; fwd=miss; stored"),
            (
                Miss { stored: false },
                0,
                0,
                Some(503),
                "n; fwd=miss; fwd-status=503",
            ),
            (
                Revalidated,
                0,
                60,
                None,
                "n; fwd=stale; fwd-status=304; ttl=60",
            ),
            (
                StaleWhileRevalidate,
                0,
                -5,
                None,
                "n; hit; ttl=-5; detail=stale-while-revalidate",
            ),
            (
                StaleIfError,
                0,
                -5,
                None,
                "n; fwd=stale; ttl=-5; detail=stale-if-error",
            ),
            (Bypass, 0, 0, None, "n; fwd=bypass"),
        ];
        for (served, fetched, ttl, status, want) in cases {
            let got = cache_status("n", *served, *fetched, *ttl, *status);
            assert_eq!(got.to_str().unwrap(), *want, "{served:?}");
        }
    }
}
