//! Header rules of the pipeline: what a request may be cached as, which
//! conditionals go where, and the framing headers of sliced answers.
//!
//! Pure functions over header maps, used by [`crate::proxy`].

use http::{header, HeaderMap, HeaderValue};
use monoio_http::common::request::RequestHead;

use crate::http::content_range::{parse_content_range, ContentRange};
use crate::http::h1;
use crate::http::object_version::ObjectVersion;

/// Whether a request asks for `100-continue` before it sends its body.
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
        match (v.strong_etag(), &v.last_modified) {
            (Some(etag), _) => {
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
    h1::strip_hop_by_hop(headers);
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

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("generated header values are ASCII")
}
