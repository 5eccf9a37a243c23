//! Conditional requests answered from the cache (RFC 9110 section 13,
//! RFC 9111 section 4.3.2).
//!
//! `preconditions` judges `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match` and `If-Modified-Since` against the version the cache
//! holds (or the probe just learned), in the order of RFC 9110 section
//! 13.2.2, to go on, answer 304 or answer 412. `If-Range` comes last, with
//! the range (`if_range_allows`). Pure functions, table-tested below.

use http::{header, HeaderMap, HeaderValue};
use monoio_http::common::request::RequestHead;

use crate::http::object_version::ObjectVersion;

/// If-Range (RFC 9110 section 13.1.5): a strong ETag or the exact
/// Last-Modified must match, and a Last-Modified is strong only when the
/// stored answer's `date` is at least a second after it (RFC 9110 8.8.2.2:
/// two versions made within one second share it, and a range of one
/// joined to the client's bytes of the other would be a third object).
pub(crate) fn if_range_allows(
    req: &RequestHead,
    version: &ObjectVersion,
    date: Option<&HeaderValue>,
) -> bool {
    let Some(cond) = req.headers.get(header::IF_RANGE) else {
        return true;
    };
    let cond = cond.as_bytes();
    if cond.starts_with(b"\"") {
        version.etag.as_ref().is_some_and(|e| e.as_bytes() == cond)
    } else if cond.starts_with(b"W/") {
        false
    } else {
        let Some(lm) = version
            .last_modified
            .as_ref()
            .filter(|lm| lm.as_bytes() == cond)
        else {
            return false;
        };
        let made = date.and_then(|d| http_date(d.as_bytes()));
        match (http_date(lm.as_bytes()), made) {
            (Some(lm), Some(made)) => made >= lm + std::time::Duration::from_secs(1),
            _ => false,
        }
    }
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
/// 13.2.2; `If-Range` comes after, with the range. `date` is the stored
/// answer's `Date`: `If-Modified-Since` is judged by it when the version
/// has no `Last-Modified` (RFC 9111 section 4.3.2; the representation was
/// not modified after the answer that carries it was made).
pub(crate) fn preconditions(
    req: &RequestHead,
    version: &ObjectVersion,
    date: Option<&HeaderValue>,
) -> Precondition {
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
        // Without a modification date it is ignored (RFC 9110 13.1.4).
        if modified.is_some_and(|m| m > date) {
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
        if let Some(since) = single_date(headers, header::IF_MODIFIED_SINCE) {
            let modified = modified.or_else(|| date.and_then(|d| http_date(d.as_bytes())));
            if modified.is_some_and(|m| m <= since) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use http::HeaderValue;
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

    /// RFC 9110 13.1.5 and 8.8.2.2: a strong ETag that matches, or the
    /// exact Last-Modified of an answer made at least a second after it.
    #[test]
    fn if_range_takes_a_date_only_when_it_is_strong() {
        const LM: &str = "Tue, 15 Nov 1994 08:12:31 GMT";
        let version = ObjectVersion {
            len: 10,
            etag: Some(HeaderValue::from_static("\"v1\"")),
            last_modified: Some(HeaderValue::from_static(LM)),
        };
        let later = HeaderValue::from_static("Tue, 15 Nov 1994 08:12:32 GMT");
        let same = HeaderValue::from_static(LM);
        // (If-Range, the answer's Date, whether the range is served)
        let cases: &[(&str, Option<&HeaderValue>, bool)] = &[
            ("\"v1\"", None, true),
            ("W/\"v1\"", Some(&later), false),
            ("\"v2\"", Some(&later), false),
            (LM, Some(&later), true),
            (LM, Some(&same), false),
            (LM, None, false),
            ("Wed, 16 Nov 1994 08:12:31 GMT", Some(&later), false),
        ];
        for (cond, date, want) in cases {
            let req = request("GET", &[("range", "bytes=0-1"), ("if-range", cond)]);
            assert_eq!(
                if_range_allows(&req, &version, *date),
                *want,
                "{cond} {date:?}"
            );
        }
        assert!(if_range_allows(&request("GET", &[]), &version, None));
    }

    #[test]
    fn preconditions_in_the_order_of_rfc_9110() {
        use Precondition::*;
        const LM: &str = "Tue, 15 Nov 1994 08:12:31 GMT";
        const BEFORE: &str = "Mon, 14 Nov 1994 08:12:31 GMT";
        const AFTER: &str = "Wed, 16 Nov 1994 08:12:31 GMT";
        /// The stored answer's Date: after LM, before AFTER.
        const DATE: &str = "Tue, 15 Nov 1994 20:00:00 GMT";
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
            ("GET", &[("if-unmodified-since", BEFORE)], &bare, Proceed),
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
            // No Last-Modified: the stored Date stands for it (RFC 9111 4.3.2).
            ("GET", &[("if-modified-since", LM)], &bare, Proceed),
            ("GET", &[("if-modified-since", DATE)], &bare, NotModified),
            ("GET", &[("if-modified-since", AFTER)], &bare, NotModified),
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
            let date = HeaderValue::from_static(DATE);
            let got = preconditions(&request(method, headers), version, Some(&date));
            assert_eq!(got, *want, "{method} {headers:?} on {:?}", version.etag);
        }
    }
}
