//! Checking one slice answer before a byte of it is passed on.
//!
//! The first answer of a request (the probe) fixes the [`ObjectVersion`]:
//! length, ETag and Last-Modified. Every later slice must match it exactly,
//! the way nginx's slice module checks, and more: status 206, a Content-Range
//! that parses, carries a total length and equals the slice asked for, the same
//! total, the same ETag and the same Last-Modified. A mismatch is an
//! [`Error::SliceMismatch`] whose message says what was got and what was
//! expected; the caller answers 502 or aborts the client connection.
//!
//! An origin may answer another range than the one asked (RFC 9110 15.3.7
//! lets a client check Content-Range rather than trust it; some origins cap
//! how much one answer carries). Such an answer is taken when it holds the
//! first byte asked for and either reaches the last or comes with a
//! validator to combine it with the answer for the rest under (a strong
//! ETag or a Last-Modified, RFC 9111 3.4): [`crate::slice::fetch`] skips
//! what comes before, stops at the slice's end and asks for what is
//! missing ([`answered_range`]). A probe's answer that stops short with no
//! validator ([`short_without_validator`]) has the object asked for whole.

use http::{header, HeaderValue, StatusCode};
use monoio_http::common::response::ResponseHead;

use crate::error::{Error, Result};
use crate::http::content_range::{parse_content_range, ContentRange};
use crate::http::object_version::ObjectVersion;
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
    let (first, last, total) = ranged_answer(index, head)?;
    if let Some(v) = version {
        if total != v.len {
            return Err(Error::mismatch(
                index,
                format!("got total length {total}, expected {}", v.len),
            ));
        }
    }
    let got = ObjectVersion::from_headers(total, &head.headers);
    let expected = bounds(total);
    let usable = match expected {
        Some(asked) if asked == (first, last) => true,
        // Another range: it must hold the first byte asked for and, when
        // it stops short of the last, be combinable with the rest.
        Some((a, b)) => {
            let combinable = version.unwrap_or(&got).combinable();
            first <= a && a <= last && (last >= b || combinable)
        }
        None => false,
    };
    if !usable {
        let want = match expected {
            Some((a, b)) => format!("{a}-{b}/{total}"),
            None => format!("nothing: slice {index} is past the end of {total} bytes"),
        };
        return Err(Error::mismatch(
            index,
            format!("unexpected range in slice response: {first}-{last}/{total}, expected: {want}"),
        ));
    }
    if let Some(n) = other_length(head, first, last) {
        return Err(Error::mismatch(
            index,
            format!("got Content-Length {n}, expected {}", last - first + 1),
        ));
    }
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

/// The first and last byte and the total length of `head`, a 206 with a
/// Content-Range that carries a total length; the mismatch named otherwise.
fn ranged_answer(index: u64, head: &ResponseHead) -> Result<(u64, u64, u64)> {
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
    match parse_content_range(raw.as_bytes()) {
        Ok(ContentRange::Bytes {
            first,
            last,
            total: Some(total),
        }) => Ok((first, last, total)),
        Ok(other) => Err(Error::mismatch(
            index,
            format!("got Content-Range \"{other}\", expected a range with a total length"),
        )),
        Err(e) => Err(Error::mismatch(index, e.to_string())),
    }
}

/// A Content-Length of `head` that is not the length of bytes
/// `first..=last` (an unreadable one never gets here: the origin's reader
/// refuses its framing).
fn other_length(head: &ResponseHead, first: u64, last: u64) -> Option<u64> {
    match crate::http::h1::content_length(&head.headers) {
        Ok(Some(n)) if n != last - first + 1 => Some(n),
        _ => None,
    }
}

/// Whether `head`, the probe's answer for slice `index`, is a well-formed
/// 206 (a Content-Range with a total length, a Content-Length that agrees
/// with it) that [`check_slice_head`] turned down only because it cannot
/// be combined: it holds the slice's first byte but stops short of its
/// last, with no validator to combine it with an answer for the rest under
/// (RFC 9111 3.4; an origin that caps its answers and sends no ETag or
/// Last-Modified). Such an answer does not fail the request: the object is
/// asked for whole instead. An answer that does not hold the first byte
/// asked for is not the origin capping but answering wrong, and stays a 502.
pub fn short_without_validator(index: u64, slice_size: u64, head: &ResponseHead) -> bool {
    let Ok((first, last, total)) = ranged_answer(index, head) else {
        return false;
    };
    let short = plan::slice_bounds(index, slice_size, total)
        .is_some_and(|(a, b)| first <= a && a <= last && last < b);
    short
        && other_length(head, first, last).is_none()
        && !ObjectVersion::from_headers(total, &head.headers).combinable()
}

/// The range (first and last byte) an answer that passed the checks above
/// carries; `None` for one without a byte range.
pub fn answered_range(head: &ResponseHead) -> Option<(u64, u64)> {
    let raw = head.headers.get(header::CONTENT_RANGE)?;
    match parse_content_range(raw.as_bytes()) {
        Ok(ContentRange::Bytes { first, last, .. }) => Some((first, last)),
        _ => None,
    }
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
        // The whole slice holds the part: taken, the rest skipped.
        assert!(check_part_head(2, (9, 10), &part("bytes 8-11/16"), &v1()).is_ok());
        let late = check_part_head(2, (9, 10), &part("bytes 10-11/16"), &v1()).unwrap_err();
        assert!(late.to_string().contains("expected: 9-10/16"), "{late}");
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
    fn another_range_is_taken_when_it_holds_the_first_byte_and_can_be_combined() {
        let answer = |range: &str, etag: &str, lm: Option<&str>| {
            let mut pairs = vec![("content-range", range.to_string())];
            if !etag.is_empty() {
                pairs.push(("etag", etag.to_string()));
            }
            if let Some(lm) = lm {
                pairs.push(("last-modified", lm.to_string()));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            head(206, &pairs)
        };
        // Slice 1 of 16 bytes in slices of 4 is 4-7.
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, bool);
        let cases: &[Case] = &[
            // Fewer bytes than asked, with a validator to combine the rest under.
            ("bytes 4-5/16", "\"a\"", None, true),
            ("bytes 4-5/16", "", Some(LM), true),
            // ... without one (or with a weak ETag only): two answers could
            // be two versions.
            ("bytes 4-5/16", "", None, false),
            ("bytes 4-5/16", "W/\"a\"", None, false),
            // More than asked, starting before or at the slice: the slice is in it.
            ("bytes 0-15/16", "", None, true),
            ("bytes 2-9/16", "", None, true),
            // Starting before the slice and stopping inside it.
            ("bytes 2-5/16", "\"a\"", None, true),
            // Not holding the slice's first byte: of no use.
            ("bytes 5-7/16", "\"a\"", None, false),
            ("bytes 0-3/16", "\"a\"", None, false),
        ];
        for (range, etag, lm, taken) in cases {
            let got = check_slice_head(1, 4, &answer(range, etag, *lm), None);
            assert_eq!(
                got.is_ok(),
                *taken,
                "{range} etag {etag:?} lm {lm:?}: {got:?}"
            );
        }
        // Later answers are held to the probe's version as before.
        let v = v1();
        let later = check_slice_head(1, 4, &answer("bytes 4-5/16", "\"a\"", Some(LM)), Some(&v));
        assert!(later.is_ok());
        let other = check_slice_head(1, 4, &answer("bytes 4-5/16", "\"b\"", Some(LM)), Some(&v));
        assert!(other.unwrap_err().to_string().contains("got ETag"));
        let h = answer("bytes 2-5/16", "\"a\"", None);
        assert_eq!(answered_range(&h), Some((2, 5)));
    }

    #[test]
    fn only_a_short_answer_without_a_validator_is_asked_for_whole() {
        let answer = |range: &str, more: &[(&str, &str)]| {
            let mut pairs = vec![("content-range", range)];
            pairs.extend_from_slice(more);
            head(206, &pairs)
        };
        // Slice 0 of 8 bytes, a 10-byte object: 0-7 asked.
        let bare = answer("bytes 0-4/10", &[("content-length", "5")]);
        assert!(check_slice_head(0, 8, &bare, None).is_err());
        assert!(short_without_validator(0, 8, &bare));
        // With a validator it is taken (and the rest asked for).
        let dated = answer(
            "bytes 0-4/10",
            &[("last-modified", "Sat, 01 Jan 2000 00:00:00 GMT")],
        );
        assert!(check_slice_head(0, 8, &dated, None).is_ok());
        assert!(!short_without_validator(0, 8, &dated));
        // Not the first byte asked for: the origin answers wrong, not short.
        assert!(!short_without_validator(0, 8, &answer("bytes 1-4/10", &[])));
        // A Content-Length that disagrees with the range: malformed.
        assert!(!short_without_validator(
            0,
            8,
            &answer("bytes 0-4/10", &[("content-length", "4")])
        ));
        // No total length, or not a 206.
        assert!(!short_without_validator(0, 8, &answer("bytes 0-4/*", &[])));
        assert!(!short_without_validator(
            0,
            8,
            &head(200, &[("content-range", "bytes 0-4/10")])
        ));
        // The whole slice asked for is no short answer.
        assert!(!short_without_validator(0, 8, &answer("bytes 0-7/10", &[])));
    }

    #[test]
    fn last_slice_may_be_short() {
        let h = head(206, &[("content-range", "bytes 4-4/5")]);
        assert_eq!(check_slice_head(2, 2, &h, None).unwrap().len, 5);
        let h = head(206, &[("content-range", "bytes 4-5/5")]);
        assert!(check_slice_head(2, 2, &h, None).is_err());
    }
}
