//! Checking one slice answer before a byte of it is passed on.
//!
//! The first answer of a request (the probe) fixes the [`ObjectVersion`]:
//! length, ETag and Last-Modified. Every later slice must match it exactly,
//! the way nginx's slice module checks, and more: status 206, a Content-Range
//! that parses, carries a total length and equals the slice asked for, the same
//! total, the same ETag and the same Last-Modified. A mismatch is an
//! [`Error::SliceMismatch`] whose message says what was got and what was
//! expected; the caller answers 502 or aborts the client connection.

use http::{header, HeaderValue, StatusCode};
use monoio_http::common::response::ResponseHead;

use crate::error::{Error, Result};
use crate::http::object_version::ObjectVersion;
use crate::http::range::{parse_content_range, ContentRange};
use crate::slice::plan;

/// Check the head of the answer to slice `index`. With `version` None this is
/// the probe and the version is learned from it; otherwise the answer must
/// match `version` exactly.
pub fn check_slice_head(
    index: u64,
    slice_size: u64,
    head: &ResponseHead,
    version: Option<&ObjectVersion>,
) -> Result<ObjectVersion> {
    check_head(index, head, version, |total| {
        plan::slice_bounds(index, slice_size, total)
    })
}

/// Check the head of the answer to bytes `first..=last` of slice `index`
/// (a part of it, asked of the slice's home peer): the same checks as
/// [`check_slice_head`], the range being that part.
pub fn check_part_head(
    index: u64,
    (first, last): (u64, u64),
    head: &ResponseHead,
    version: &ObjectVersion,
) -> Result<()> {
    check_head(index, head, Some(version), |_| Some((first, last))).map(|_| ())
}

/// The checks of an answer's head; `bounds` says, from the total length,
/// which range it must carry.
fn check_head(
    index: u64,
    head: &ResponseHead,
    version: Option<&ObjectVersion>,
    bounds: impl FnOnce(u64) -> Option<(u64, u64)>,
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
    let expected = bounds(total);
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
    if let Ok(Some(n)) = crate::http::h1::content_length(&head.headers) {
        if n != last - first + 1 {
            return Err(Error::mismatch(
                index,
                format!("got Content-Length {n}, expected {}", last - first + 1),
            ));
        }
    }
    let got = ObjectVersion::from_headers(total, &head.headers);
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
    fn a_part_of_a_slice_is_checked_against_the_part() {
        let part = |range: &str| {
            head(
                206,
                &[
                    ("content-range", range),
                    ("etag", "\"a\""),
                    ("last-modified", LM),
                ],
            )
        };
        // Bytes 9-10 of slice 2 (8-11) of 16, in slices of 4.
        assert!(check_part_head(2, (9, 10), &part("bytes 9-10/16"), &v1()).is_ok());
        let whole = check_part_head(2, (9, 10), &part("bytes 8-11/16"), &v1()).unwrap_err();
        assert!(whole.to_string().contains("expected: 9-10/16"), "{whole}");
        let other = check_part_head(2, (9, 10), &part("bytes 9-10/17"), &v1()).unwrap_err();
        assert!(other.to_string().contains("total length 17"), "{other}");
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
