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

/// If-Range (RFC 9110 section 13.1.5): a strong ETag or the exact Last-Modified must match.
pub(crate) fn if_range_allows(req: &RequestHead, version: &ObjectVersion) -> bool {
    let Some(cond) = req.headers.get(header::IF_RANGE) else {
        return true;
    };
    let cond = cond.as_bytes();
    if cond.starts_with(b"\"") {
        version.etag.as_ref().is_some_and(|e| e.as_bytes() == cond)
    } else if cond.starts_with(b"W/") {
        false
    } else {
        version
            .last_modified
            .as_ref()
            .is_some_and(|lm| lm.as_bytes() == cond)
    }
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

/// What a request's preconditions say about the stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on to Range (or the whole object).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition does not hold.
    Failed,
}

/// Evaluate `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` against `version` in the order of RFC 9110 section
/// 13.2.2; `If-Range` comes after, with the range.
pub(crate) fn preconditions(req: &RequestHead, version: &ObjectVersion) -> Precondition {
    let headers = &req.headers;
    let get_or_head = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let etag = version.etag.as_ref().map(|e| e.as_bytes());
    let modified = version
        .last_modified
        .as_ref()
        .and_then(|v| http_date(v.as_bytes()));
    if headers.contains_key(header::IF_MATCH) {
        if !etag_list_matches(headers, header::IF_MATCH, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(headers, header::IF_UNMODIFIED_SINCE) {
        if modified.is_none_or(|m| m > date) {
            return Precondition::Failed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if etag_list_matches(headers, header::IF_NONE_MATCH, etag, false) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head {
        if let Some(date) = single_date(headers, header::IF_MODIFIED_SINCE) {
            if modified.is_some_and(|m| m <= date) {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// The headers a 304 carries (RFC 9110 section 15.4.5), from the stored ones.
pub(crate) fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::ETAG,
        header::LAST_MODIFIED,
        header::CACHE_CONTROL,
        header::EXPIRES,
        header::VARY,
        header::CONTENT_LOCATION,
    ] {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

fn http_date(raw: &[u8]) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(raw).ok()?.trim()).ok()
}

/// The date of a conditional header; none when absent, repeated or not a
/// valid HTTP-date (the header is then ignored, RFC 9110 section 13.1.3).
fn single_date(headers: &HeaderMap, name: header::HeaderName) -> Option<std::time::SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    http_date(first.as_bytes())
}

/// Whether an entity-tag list header (`*`, or `"a", W/"b"`) matches `etag`:
/// strongly (both strong, same tag) or weakly (same tag).
fn etag_list_matches(
    headers: &HeaderMap,
    name: header::HeaderName,
    etag: Option<&[u8]>,
    strong: bool,
) -> bool {
    let Some(etag) = etag else {
        // No current tag: only `*` could match, and only a representation
        // that exists, which this one does.
        return headers
            .get_all(name)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() == b"*");
    };
    let (etag_weak, etag_tag) = split_weak(etag);
    headers.get_all(name).iter().any(|v| {
        let v = v.as_bytes();
        if v.trim_ascii() == b"*" {
            return true;
        }
        entity_tags(v).any(|(weak, tag)| tag == etag_tag && (!strong || (!weak && !etag_weak)))
    })
}

fn split_weak(tag: &[u8]) -> (bool, &[u8]) {
    match tag.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    }
}

/// The entity-tags of a list, as (weak, quoted tag); stops at the first malformed one.
fn entity_tags(mut list: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    std::iter::from_fn(move || {
        list = list.trim_ascii_start();
        while let Some(rest) = list.strip_prefix(b",") {
            list = rest.trim_ascii_start();
        }
        let (weak, rest) = split_weak(list);
        if !rest.starts_with(b"\"") {
            return None;
        }
        let end = rest[1..].iter().position(|b| *b == b'"')? + 2;
        let tag = &rest[..end];
        list = &rest[end..];
        Some((weak, tag))
    })
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
    use bytes::BytesMut;
    use monoio_codec::{Decoded, Decoder};

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut raw = format!("{method} /o HTTP/1.1\r\nHost: h\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut buf = BytesMut::from(raw.as_str());
        match monoio_http::h1::codec::decoder::RequestHeadDecoder.decode(&mut buf) {
            Ok(Decoded::Some(head)) => head,
            _ => panic!("{raw:?}"),
        }
    }

    #[test]
    fn preconditions_in_the_order_of_rfc_9110() {
        use Precondition::*;
        const LM: &str = "Tue, 15 Nov 1994 08:12:31 GMT";
        const BEFORE: &str = "Mon, 14 Nov 1994 08:12:31 GMT";
        const AFTER: &str = "Wed, 16 Nov 1994 08:12:31 GMT";
        let strong = ObjectVersion {
            len: 10,
            etag: Some(HeaderValue::from_static("\"v1\"")),
            last_modified: Some(HeaderValue::from_static(LM)),
        };
        let weak = ObjectVersion {
            etag: Some(HeaderValue::from_static("W/\"v1\"")),
            ..strong.clone()
        };
        let bare = ObjectVersion {
            len: 10,
            etag: None,
            last_modified: None,
        };
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a ObjectVersion,
            Precondition,
        );
        let cases: &[Case] = &[
            ("GET", &[], &strong, Proceed),
            ("GET", &[("if-match", "\"v1\"")], &strong, Proceed),
            ("GET", &[("if-match", "\"v0\", \"v1\"")], &strong, Proceed),
            ("GET", &[("if-match", "*")], &strong, Proceed),
            ("GET", &[("if-match", "\"v2\"")], &strong, Failed),
            ("GET", &[("if-match", "W/\"v1\"")], &strong, Failed),
            ("GET", &[("if-match", "\"v1\"")], &weak, Failed),
            ("GET", &[("if-match", "\"v1\"")], &bare, Failed),
            ("GET", &[("if-unmodified-since", LM)], &strong, Proceed),
            ("GET", &[("if-unmodified-since", AFTER)], &strong, Proceed),
            ("GET", &[("if-unmodified-since", BEFORE)], &strong, Failed),
            ("GET", &[("if-unmodified-since", LM)], &bare, Failed),
            (
                "GET",
                &[("if-unmodified-since", "yesterday")],
                &strong,
                Proceed,
            ),
            // If-Match wins over If-Unmodified-Since.
            (
                "GET",
                &[("if-match", "\"v1\""), ("if-unmodified-since", BEFORE)],
                &strong,
                Proceed,
            ),
            ("GET", &[("if-none-match", "\"v1\"")], &strong, NotModified),
            ("HEAD", &[("if-none-match", "\"v1\"")], &strong, NotModified),
            (
                "GET",
                &[("if-none-match", "W/\"v1\"")],
                &strong,
                NotModified,
            ),
            ("GET", &[("if-none-match", "\"v1\"")], &weak, NotModified),
            (
                "GET",
                &[("if-none-match", "\"a\",W/\"v1\"")],
                &strong,
                NotModified,
            ),
            ("GET", &[("if-none-match", "*")], &strong, NotModified),
            ("GET", &[("if-none-match", "\"v2\"")], &strong, Proceed),
            ("POST", &[("if-none-match", "\"v1\"")], &strong, Failed),
            ("GET", &[("if-modified-since", LM)], &strong, NotModified),
            ("GET", &[("if-modified-since", AFTER)], &strong, NotModified),
            ("GET", &[("if-modified-since", BEFORE)], &strong, Proceed),
            ("GET", &[("if-modified-since", LM)], &bare, Proceed),
            ("GET", &[("if-modified-since", "garbage")], &strong, Proceed),
            // If-None-Match wins over If-Modified-Since.
            (
                "GET",
                &[("if-none-match", "\"v2\""), ("if-modified-since", LM)],
                &strong,
                Proceed,
            ),
            // If-Match fails before If-None-Match is looked at.
            (
                "GET",
                &[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")],
                &strong,
                Failed,
            ),
        ];
        for (method, headers, version, want) in cases {
            let got = preconditions(&request(method, headers), version);
            assert_eq!(got, *want, "{method} {headers:?} on {:?}", version.etag);
        }
    }

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
