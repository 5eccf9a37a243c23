//! Slice subrequests: ask the origin for exactly one slice, check the answer
//! before a byte of it is passed on, and hand its bytes on as they arrive.
//!
//! The first answer of a request (the probe) fixes the [`ObjectVersion`]:
//! length, ETag and Last-Modified. Every later slice must match it exactly,
//! the way nginx's slice module checks, and more: status 206, a Content-Range
//! that parses, carries a total length and equals the slice asked for, the same
//! total, the same ETag and the same Last-Modified. A mismatch is an
//! [`Error::SliceMismatch`] whose message says what was got and what was
//! expected; the caller answers 502 or aborts the client connection.
//!
//! [`run_slice`] is spawned once per slice on the worker's runtime and sends
//! [`SliceEvent`]s to the request's stream.

use std::rc::Rc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use local_sync::mpsc::unbounded::Tx;
use monoio_http::common::response::ResponseHead;

use crate::error::{Error, Result};
use crate::origin::{OriginPool, OriginResponse};
use crate::plan::{self, SlicePlan};
use crate::range::{parse_content_range, ContentRange};

/// The version of an object a response is assembled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Total length in bytes.
    pub len: u64,
    /// The origin's ETag, if it sent one.
    pub etag: Option<HeaderValue>,
    /// The origin's Last-Modified, if it sent one.
    pub last_modified: Option<HeaderValue>,
}

/// Check the head of the answer to slice `index`. With `version` None this is
/// the probe and the version is learned from it; otherwise the answer must
/// match `version` exactly.
pub fn check_slice_head(
    index: u64,
    slice_size: u64,
    head: &ResponseHead,
    version: Option<&ObjectVersion>,
) -> Result<ObjectVersion> {
    if head.status != StatusCode::PARTIAL_CONTENT {
        return Err(Error::mismatch(
            index,
            format!("got status {}, expected 206", head.status.as_u16()),
        ));
    }
    let raw = head
        .headers
        .get(header::CONTENT_RANGE)
        .ok_or_else(|| Error::mismatch(index, "got no Content-Range, expected one"))?;
    let (first, last, total) = match parse_content_range(raw.as_bytes()) {
        Ok(ContentRange::Bytes {
            first,
            last,
            total: Some(total),
        }) => (first, last, total),
        Ok(other) => {
            return Err(Error::mismatch(
                index,
                format!("got Content-Range \"{other}\", expected a range with a total length"),
            ))
        }
        Err(e) => return Err(Error::mismatch(index, e.to_string())),
    };
    if let Some(v) = version {
        if total != v.len {
            return Err(Error::mismatch(
                index,
                format!("got total length {total}, expected {}", v.len),
            ));
        }
    }
    let expected = plan::slice_bounds(index, slice_size, total);
    if expected != Some((first, last)) {
        let want = match expected {
            Some((a, b)) => format!("{a}-{b}/{total}"),
            None => format!("nothing: slice {index} is past the end of {total} bytes"),
        };
        return Err(Error::mismatch(
            index,
            format!("unexpected range in slice response: {first}-{last}/{total}, expected: {want}"),
        ));
    }
    if let Ok(Some(n)) = crate::http1::content_length(&head.headers) {
        if n != last - first + 1 {
            return Err(Error::mismatch(
                index,
                format!("got Content-Length {n}, expected {}", last - first + 1),
            ));
        }
    }
    let got = ObjectVersion {
        len: total,
        etag: head.headers.get(header::ETAG).cloned(),
        last_modified: head.headers.get(header::LAST_MODIFIED).cloned(),
    };
    if let Some(v) = version {
        if got.etag != v.etag {
            return Err(Error::mismatch(
                index,
                format!("got ETag {}, expected {}", shown(&got.etag), shown(&v.etag)),
            ));
        }
        if got.last_modified != v.last_modified {
            return Err(Error::mismatch(
                index,
                format!(
                    "got Last-Modified {}, expected {}",
                    shown(&got.last_modified),
                    shown(&v.last_modified)
                ),
            ));
        }
    }
    Ok(got)
}

fn shown(v: &Option<HeaderValue>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v.as_bytes())),
        None => "none".to_string(),
    }
}

/// What a slice task tells the request's stream.
#[derive(Debug)]
pub enum SliceEvent {
    /// Bytes of slice `index` for the client, already trimmed, in order within the slice.
    Data(u64, Bytes),
    /// Slice `index` arrived whole and passed every check.
    Done(u64),
    /// Slice `index` failed.
    Failed(u64, Error),
}

/// Everything a slice task needs to ask for one slice.
pub struct SliceJob {
    /// The worker's origin pool.
    pub pool: Rc<OriginPool>,
    /// Request target (path and query) forwarded unchanged.
    pub target: Rc<str>,
    /// Forwarded request headers, without Range and conditionals.
    pub headers: Rc<HeaderMap>,
    /// The plan of the client's request.
    pub plan: SlicePlan,
    /// The version every slice must match.
    pub version: Rc<ObjectVersion>,
}

impl SliceJob {
    /// Request slice `index` and check its head.
    pub async fn open(&self, index: u64) -> Result<OriginResponse> {
        let mut headers = (*self.headers).clone();
        let range = plan::slice_range_header(index, self.plan.slice_size);
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(&range).expect("a range header is ASCII"),
        );
        let resp = self
            .pool
            .request(&Method::GET, &self.target, &headers)
            .await?;
        check_slice_head(index, self.plan.slice_size, &resp.head, Some(&self.version))?;
        Ok(resp)
    }
}

/// Fetch slice `index` (or stream the already opened probe answer) and send
/// its client part to `tx`, ending with Done or Failed.
pub async fn run_slice(
    job: Rc<SliceJob>,
    index: u64,
    opened: Option<OriginResponse>,
    tx: Tx<SliceEvent>,
) {
    let result = match opened {
        Some(resp) => stream_slice(&job, index, resp, &tx).await,
        None => match job.open(index).await {
            Ok(resp) => stream_slice(&job, index, resp, &tx).await,
            Err(e) => Err(e),
        },
    };
    let _ = match result {
        Ok(()) => tx.send(SliceEvent::Done(index)),
        Err(e) => tx.send(SliceEvent::Failed(index, e)),
    };
}

async fn stream_slice(
    job: &SliceJob,
    index: u64,
    mut resp: OriginResponse,
    tx: &Tx<SliceEvent>,
) -> Result<()> {
    let (slice_first, slice_last) = job.plan.slice_bounds(index);
    let expected = slice_last - slice_first + 1;
    let (skip, take) = job.plan.client_part(index);
    let mut offset = 0u64;
    while let Some(data) = resp.chunk().await? {
        let end = offset + data.len() as u64;
        if end > expected {
            return Err(Error::mismatch(
                index,
                format!("got more than {expected} body bytes"),
            ));
        }
        // The part of [offset, end) that falls inside [skip, skip + take).
        let lo = skip.max(offset);
        let hi = (skip + take).min(end);
        if lo < hi {
            let part = data.slice((lo - offset) as usize..(hi - offset) as usize);
            if tx.send(SliceEvent::Data(index, part)).is_err() {
                // The client went away: drop the origin connection mid-body.
                return Ok(());
            }
        }
        offset = end;
    }
    if offset != expected {
        return Err(Error::mismatch(
            index,
            format!("got {offset} body bytes, expected {expected}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, pairs: &[(&str, &str)]) -> ResponseHead {
        let mut b = http::Response::builder().status(status);
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn v1() -> ObjectVersion {
        ObjectVersion {
            len: 16,
            etag: Some(HeaderValue::from_static("\"a\"")),
            last_modified: Some(HeaderValue::from_static("Tue, 15 Nov 1994 08:12:31 GMT")),
        }
    }

    const LM: &str = "Tue, 15 Nov 1994 08:12:31 GMT";

    #[test]
    fn probe_learns_the_version() {
        let h = head(
            206,
            &[
                ("content-range", "bytes 2-3/16"),
                ("etag", "\"a\""),
                ("last-modified", LM),
            ],
        );
        assert_eq!(check_slice_head(1, 2, &h, None).unwrap(), v1());
    }

    #[test]
    fn every_mismatch_is_named() {
        let v = v1();
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (200, &[], "got status 200, expected 206"),
            (206, &[("etag", "\"a\"")], "got no Content-Range"),
            (
                206,
                &[
                    ("content-range", "bytes 4-5/16"),
                    ("etag", "\"a\""),
                    ("last-modified", LM),
                ],
                "unexpected range in slice response: 4-5/16, expected: 2-3/16",
            ),
            (
                206,
                &[("content-range", "bytes 2-3/*")],
                "expected a range with a total length",
            ),
            (
                206,
                &[("content-range", "bytes 2-3/18"), ("etag", "\"a\"")],
                "got total length 18, expected 16",
            ),
            (
                206,
                &[
                    ("content-range", "bytes 2-3/16"),
                    ("etag", "\"b\""),
                    ("last-modified", LM),
                ],
                "got ETag \"\\\"b\\\"\", expected \"\\\"a\\\"\"",
            ),
            (
                206,
                &[("content-range", "bytes 2-3/16"), ("etag", "\"a\"")],
                "got Last-Modified none, expected",
            ),
            (
                206,
                &[
                    ("content-range", "bytes 2-3/16"),
                    ("etag", "\"a\""),
                    ("last-modified", LM),
                    ("content-length", "3"),
                ],
                "got Content-Length 3, expected 2",
            ),
            (206, &[("content-range", "junk")], "Content-Range"),
        ];
        for (status, pairs, want) in cases {
            let err = check_slice_head(1, 2, &head(*status, pairs), Some(&v)).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{err} does not contain {want}"
            );
            assert!(err.to_string().starts_with("slice 1: "), "{err}");
        }
    }

    #[test]
    fn last_slice_may_be_short() {
        let h = head(206, &[("content-range", "bytes 4-4/5")]);
        assert_eq!(check_slice_head(2, 2, &h, None).unwrap().len, 5);
        let h = head(206, &[("content-range", "bytes 4-5/5")]);
        assert!(check_slice_head(2, 2, &h, None).is_err());
    }
}
