//! Byte ranges: the client's `Range` and the origin's `Content-Range`
//! (RFC 9110 sections 14.2 and 14.4). Pure.
//!
//! In: the raw bytes of either header. Out: a [`RangeRequest`] whose specs
//! [`ByteRangeSpec::resolve`] turns into the inclusive byte range the driver's
//! "respond" phase answers and [`crate::slice::plan`] slices, and a
//! [`ContentRange`] that [`crate::slice::check`] compares with the slice it
//! asked for. [`ContentRange`]'s `Display` writes the header back, for the
//! 206 or 416 sent to the client.
//!
//! The two parsers differ on purpose. A client `Range` that does not parse
//! is ignored (the whole object is served), as RFC 9110 allows, so
//! [`parse_range`] never fails. An origin `Content-Range` that does not parse
//! means the slice cannot be trusted, so [`parse_content_range`] is strict
//! and says what it got.
//!
//! ```
//! use edgeslice::http::range::{parse_content_range, parse_range, ByteRangeSpec, ContentRange, RangeRequest};
//!
//! let RangeRequest::Single(spec) = parse_range(b"bytes=-500") else { unreachable!() };
//! assert_eq!(spec, ByteRangeSpec::Suffix(500));
//! assert_eq!(spec.resolve(10_000), Some((9_500, 9_999)));
//!
//! let got = parse_content_range(b"bytes 0-1023/10000").unwrap();
//! assert_eq!(got, ContentRange::Bytes { first: 0, last: 1023, total: Some(10_000) });
//! assert_eq!(got.to_string(), "bytes 0-1023/10000");
//! ```
//!
//! Both parsers are allocation-free on success except for the `Vec` of a
//! multi-range request.

use std::fmt;

/// Most byte-range-specs accepted in one `Range` header; more and the header
/// is ignored, so a client cannot make one request cost many (RFC 9110 §17.15).
pub const MAX_RANGES: usize = 64;

/// One byte-range-spec of a client's Range header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRangeSpec {
    /// `a-b`: bytes a through b inclusive, `a <= b`.
    FromTo(u64, u64),
    /// `a-`: byte a through the end of the object.
    From(u64),
    /// `-n`: the last n bytes of the object.
    Suffix(u64),
}

impl ByteRangeSpec {
    /// Resolve against an object length: `Some((first, last))` inclusive, end
    /// clipped to `len - 1`; `None` when unsatisfiable (`first >= len`,
    /// `Suffix(0)`, or `len == 0`).
    pub fn resolve(&self, len: u64) -> Option<(u64, u64)> {
        if len == 0 {
            return None;
        }
        match *self {
            ByteRangeSpec::FromTo(first, last) if first < len => Some((first, last.min(len - 1))),
            ByteRangeSpec::From(first) if first < len => Some((first, len - 1)),
            ByteRangeSpec::Suffix(n) if n > 0 => Some((len - n.min(len), len - 1)),
            _ => None,
        }
    }
}

/// What the client's Range header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: serve the whole object with 200.
    Full,
    /// Exactly one range.
    Single(ByteRangeSpec),
    /// Two or more ranges, in the order the client sent them.
    Multi(Vec<ByteRangeSpec>),
}

/// Parse a Range header value.
///
/// Invalid syntax, a unit other than `bytes`, `a-b` with `b < a`, numbers
/// overflowing u64, an empty set or more than [`MAX_RANGES`] ranges give
/// [`RangeRequest::Full`]: RFC 9110 lets a server ignore an invalid Range.
/// The unit is matched case-insensitively; whitespace around entries and
/// empty list elements (`bytes=0-0,,5-6`) are accepted, as the RFC's list
/// syntax requires.
pub fn parse_range(value: &[u8]) -> RangeRequest {
    parse_range_set(value).unwrap_or(RangeRequest::Full)
}

fn parse_range_set(value: &[u8]) -> Option<RangeRequest> {
    let value = trim_ows(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = value[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
        .map(parse_spec);
    let first = specs.next()??;
    // Most requests carry one range; only a second one costs an allocation.
    let Some(second) = specs.next() else {
        return Some(RangeRequest::Single(first));
    };
    let mut all = vec![first, second?];
    for spec in specs {
        if all.len() == MAX_RANGES {
            return None;
        }
        all.push(spec?);
    }
    Some(RangeRequest::Multi(all))
}

fn parse_spec(element: &[u8]) -> Option<ByteRangeSpec> {
    let dash = element.iter().position(|&b| b == b'-')?;
    let (first, last) = (&element[..dash], &element[dash + 1..]);
    if first.is_empty() {
        return parse_decimal(last).ok().map(ByteRangeSpec::Suffix);
    }
    let first = parse_decimal(first).ok()?;
    if last.is_empty() {
        return Some(ByteRangeSpec::From(first));
    }
    let last = parse_decimal(last).ok()?;
    (first <= last).then_some(ByteRangeSpec::FromTo(first, last))
}

/// Most parts a multipart/byteranges answer is built with; more ranges than
/// this get the whole object (RFC 9110 lets a server ignore a Range).
pub const MAX_PARTS: usize = crate::config::MAX_RANGES_PER_ANSWER;

/// Resolve several ranges against `len`: unsatisfiable ones dropped, the rest
/// sorted and overlapping or adjacent ones merged (RFC 9110 section 14.2).
pub fn coalesce(specs: &[ByteRangeSpec], len: u64) -> Vec<(u64, u64)> {
    let mut parts: Vec<(u64, u64)> = specs.iter().filter_map(|s| s.resolve(len)).collect();
    parts.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
    for (a, b) in parts {
        match merged.last_mut() {
            Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// A parsed Content-Range header from an origin answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/total`, or `bytes first-last/*` (total `None`).
    Bytes {
        /// First byte of the part, inclusive.
        first: u64,
        /// Last byte of the part, inclusive.
        last: u64,
        /// Length of the whole object, when the origin knows it.
        total: Option<u64>,
    },
    /// `bytes */total`, as sent with 416.
    Unsatisfied {
        /// Length of the whole object.
        total: u64,
    },
}

impl ContentRange {
    /// As a header value, written without `fmt` (one per ranged answer).
    pub fn header_value(&self) -> http::HeaderValue {
        let mut out = Vec::with_capacity(64);
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b"bytes ");
        match *self {
            ContentRange::Bytes { first, last, total } => {
                out.extend_from_slice(number.format(first).as_bytes());
                out.push(b'-');
                out.extend_from_slice(number.format(last).as_bytes());
                out.push(b'/');
                match total {
                    Some(total) => out.extend_from_slice(number.format(total).as_bytes()),
                    None => out.push(b'*'),
                }
            }
            ContentRange::Unsatisfied { total } => {
                out.extend_from_slice(b"*/");
                out.extend_from_slice(number.format(total).as_bytes());
            }
        }
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
            .expect("digits, spaces and punctuation make a header value")
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContentRange::Bytes { first, last, total } => match total {
                Some(total) => write!(f, "bytes {first}-{last}/{total}"),
                None => write!(f, "bytes {first}-{last}/*"),
            },
            ContentRange::Unsatisfied { total } => write!(f, "bytes */{total}"),
        }
    }
}

/// Why an origin's Content-Range was refused; each message quotes the value got.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContentRangeError {
    /// The range unit is not `bytes`.
    #[error("invalid Content-Range {value:?}: unit is not \"bytes\"")]
    Unit {
        /// The header value as received.
        value: String,
    },
    /// The value does not follow the grammar.
    #[error("invalid Content-Range {value:?}: {reason}")]
    Syntax {
        /// The header value as received.
        value: String,
        /// What part of the grammar was broken.
        reason: &'static str,
    },
    /// A number does not fit in u64.
    #[error("invalid Content-Range {value:?}: number overflows u64")]
    Overflow {
        /// The header value as received.
        value: String,
    },
    /// `first-last` with `last < first`.
    #[error("invalid Content-Range {value:?}: last < first")]
    LastBeforeFirst {
        /// The header value as received.
        value: String,
    },
    /// `first-last/total` with `last >= total`.
    #[error("invalid Content-Range {value:?}: last >= total")]
    PastTotal {
        /// The header value as received.
        value: String,
    },
}

/// Parse an origin's Content-Range header value, strictly.
///
/// The unit must be `bytes` (any case) followed by one space; numbers are
/// plain digits (no sign, no junk, no overflow); `first <= last`, and
/// `last < total` when the total is known. Only the whitespace around the
/// whole value is ignored.
pub fn parse_content_range(value: &[u8]) -> Result<ContentRange, ContentRangeError> {
    let quoted = || String::from_utf8_lossy(value).into_owned();
    let syntax = |reason| ContentRangeError::Syntax {
        value: quoted(),
        reason,
    };
    let number = |digits: &[u8], reason| {
        parse_decimal(digits).map_err(|e| match e {
            DecimalError::Malformed => syntax(reason),
            DecimalError::Overflow => ContentRangeError::Overflow { value: quoted() },
        })
    };

    let trimmed = trim_ows(value);
    let Some(sp) = trimmed.iter().position(|&b| b == b' ') else {
        return Err(syntax("no space after the unit"));
    };
    if !trimmed[..sp].eq_ignore_ascii_case(b"bytes") {
        return Err(ContentRangeError::Unit { value: quoted() });
    }
    let rest = &trimmed[sp + 1..];
    let Some(slash) = rest.iter().position(|&b| b == b'/') else {
        return Err(syntax("no '/' before the complete length"));
    };
    let (range, total) = (&rest[..slash], &rest[slash + 1..]);

    if range == b"*" {
        let total = number(total, "complete length is not a number")?;
        return Ok(ContentRange::Unsatisfied { total });
    }
    let Some(dash) = range.iter().position(|&b| b == b'-') else {
        return Err(syntax("no '-' in the range"));
    };
    let first = number(&range[..dash], "first byte is not a number")?;
    let last = number(&range[dash + 1..], "last byte is not a number")?;
    let total = match total {
        b"*" => None,
        digits => Some(number(digits, "complete length is not a number")?),
    };
    if last < first {
        return Err(ContentRangeError::LastBeforeFirst { value: quoted() });
    }
    if total.is_some_and(|total| last >= total) {
        return Err(ContentRangeError::PastTotal { value: quoted() });
    }
    Ok(ContentRange::Bytes { first, last, total })
}

enum DecimalError {
    Malformed,
    Overflow,
}

/// `1*DIGIT` as u64; signs, spaces and empty strings are malformed.
fn parse_decimal(digits: &[u8]) -> Result<u64, DecimalError> {
    if digits.is_empty() {
        return Err(DecimalError::Malformed);
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(DecimalError::Malformed);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)
    })
}

/// Strip the optional whitespace (SP / HTAB) RFC 9110 allows around values and list elements.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRangeSpec::{From, FromTo, Suffix};
    use RangeRequest::{Full, Multi, Single};

    type Resolved = Option<(u64, u64)>;

    #[test]
    fn parse_range_table() {
        let cases: &[(&str, RangeRequest)] = &[
            // plain, open, suffix
            ("bytes=0-499", Single(FromTo(0, 499))),
            ("bytes=0-0", Single(FromTo(0, 0))),
            ("bytes=500-", Single(From(500))),
            ("bytes=-500", Single(Suffix(500))),
            ("bytes=-0", Single(Suffix(0))),
            ("bytes=007-010", Single(FromTo(7, 10))),
            ("bytes=18446744073709551615-", Single(From(u64::MAX))),
            // multi, in the order sent
            ("bytes=0-0,-1", Multi(vec![FromTo(0, 0), Suffix(1)])),
            (
                "bytes=500-600,601-999,0-1",
                Multi(vec![FromTo(500, 600), FromTo(601, 999), FromTo(0, 1)]),
            ),
            // whitespace and empty list elements
            ("bytes=0-0,,5-6", Multi(vec![FromTo(0, 0), FromTo(5, 6)])),
            (
                "bytes= 0-1 , 5- ,\t-3",
                Multi(vec![FromTo(0, 1), From(5), Suffix(3)]),
            ),
            ("bytes=,0-1,", Single(FromTo(0, 1))),
            ("  bytes=0-1\t", Single(FromTo(0, 1))),
            // unit case
            ("BYTES=0-1", Single(FromTo(0, 1))),
            ("Bytes=0-1", Single(FromTo(0, 1))),
            // ignored: wrong unit, empty sets, bad specs
            ("", Full),
            ("bytes", Full),
            ("items=0-1", Full),
            ("bytes =0-1", Full),
            ("bytes0-1", Full),
            ("bytes=", Full),
            ("bytes=,", Full),
            ("bytes= , ,", Full),
            ("bytes=-", Full),
            ("bytes=5-2", Full),
            ("bytes=0-1,5-2", Full),
            ("bytes=0-1,garbage", Full),
            ("bytes=abc", Full),
            ("bytes=1", Full),
            ("bytes=1-2-3", Full),
            ("bytes=0 -1", Full),
            ("bytes=0x10-20", Full),
            // overflow, signs
            ("bytes=99999999999999999999999-", Full),
            ("bytes=0-99999999999999999999999", Full),
            ("bytes=-99999999999999999999999", Full),
            ("bytes=18446744073709551616-", Full),
            ("bytes=--5", Full),
            ("bytes=-5-", Full),
            ("bytes=+5-10", Full),
            ("bytes=5-+10", Full),
            ("bytes=-+5", Full),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_range(input.as_bytes()), want, "input {input:?}");
        }
    }

    #[test]
    fn parse_range_caps_the_number_of_ranges() {
        let specs = |n: usize| {
            (0..n)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_cap = format!("bytes={}", specs(MAX_RANGES));
        let RangeRequest::Multi(got) = parse_range(at_cap.as_bytes()) else {
            panic!("{MAX_RANGES} ranges should parse");
        };
        assert_eq!(got.len(), MAX_RANGES);
        let over_cap = format!("bytes={}", specs(MAX_RANGES + 1));
        assert_eq!(parse_range(over_cap.as_bytes()), Full);
        // empty elements do not count against the cap
        let with_gaps = format!("bytes={},,,", specs(MAX_RANGES));
        assert!(matches!(parse_range(with_gaps.as_bytes()), Multi(_)));
    }

    #[test]
    fn parse_range_ignores_non_ascii_bytes() {
        assert_eq!(parse_range(b"bytes=0-1\xff"), Full);
    }

    #[test]
    fn resolve_table() {
        let max = u64::MAX;
        // (spec, object length, resolved)
        let cases: &[(ByteRangeSpec, u64, Resolved)] = &[
            // empty object: nothing is satisfiable
            (FromTo(0, 0), 0, None),
            (From(0), 0, None),
            (Suffix(1), 0, None),
            // one-byte object
            (FromTo(0, 0), 1, Some((0, 0))),
            (FromTo(0, 5), 1, Some((0, 0))),
            (FromTo(1, 1), 1, None),
            (From(0), 1, Some((0, 0))),
            (From(1), 1, None),
            (Suffix(1), 1, Some((0, 0))),
            (Suffix(5), 1, Some((0, 0))),
            (Suffix(0), 1, None),
            // clipping and edges on a ten-byte object
            (FromTo(0, 9), 10, Some((0, 9))),
            (FromTo(0, 10), 10, Some((0, 9))),
            (FromTo(3, max), 10, Some((3, 9))),
            (FromTo(9, 9), 10, Some((9, 9))),
            (FromTo(10, 12), 10, None),
            (From(9), 10, Some((9, 9))),
            (From(10), 10, None),
            (Suffix(3), 10, Some((7, 9))),
            (Suffix(10), 10, Some((0, 9))),
            (Suffix(max), 10, Some((0, 9))),
            // the largest object
            (From(max - 1), max, Some((max - 1, max - 1))),
            (Suffix(1), max, Some((max - 1, max - 1))),
        ];
        for (spec, len, want) in cases {
            assert_eq!(spec.resolve(*len), *want, "{spec:?} against len {len}");
        }
    }

    fn bytes(first: u64, last: u64, total: Option<u64>) -> ContentRange {
        ContentRange::Bytes { first, last, total }
    }

    #[test]
    fn parse_content_range_accepts() {
        let max = u64::MAX;
        let cases: &[(&str, ContentRange)] = &[
            ("bytes 0-9/100", bytes(0, 9, Some(100))),
            ("bytes 0-0/1", bytes(0, 0, Some(1))),
            ("bytes 99-99/100", bytes(99, 99, Some(100))),
            ("bytes 0-9/*", bytes(0, 9, None)),
            ("bytes 007-010/011", bytes(7, 10, Some(11))),
            ("bytes */100", ContentRange::Unsatisfied { total: 100 }),
            ("bytes */0", ContentRange::Unsatisfied { total: 0 }),
            ("Bytes 0-9/100", bytes(0, 9, Some(100))),
            (" bytes 0-9/100\t", bytes(0, 9, Some(100))),
            (
                "bytes 0-18446744073709551614/18446744073709551615",
                bytes(0, max - 1, Some(max)),
            ),
        ];
        for (input, want) in cases {
            let got = parse_content_range(input.as_bytes());
            assert_eq!(got.as_ref(), Ok(want), "input {input:?}");
        }
    }

    /// Each refusal names the value got and what is wrong with it.
    #[test]
    fn parse_content_range_refuses() {
        let cases: &[(&str, &str)] = &[
            // unit
            ("items 0-9/100", "unit is not \"bytes\""),
            ("bytes=0-9/100", "no space after the unit"),
            ("", "no space after the unit"),
            ("bytes", "no space after the unit"),
            ("bytes ", "no space after the unit"),
            // shape
            ("bytes 0-9", "no '/' before the complete length"),
            ("bytes 0/100", "no '-' in the range"),
            ("bytes -9/100", "first byte is not a number"),
            ("bytes 0-/100", "last byte is not a number"),
            ("bytes 0-9/", "complete length is not a number"),
            ("bytes 0-9/**", "complete length is not a number"),
            ("bytes */*", "complete length is not a number"),
            // junk and extra whitespace inside
            ("bytes  0-9/100", "first byte is not a number"),
            ("bytes 0 -9/100", "first byte is not a number"),
            ("bytes 0-9 /100", "last byte is not a number"),
            ("bytes 0-9/100x", "complete length is not a number"),
            ("bytes 0-9/100/100", "complete length is not a number"),
            ("bytes 0-9-10/100", "last byte is not a number"),
            ("bytes 0x0-9/100", "first byte is not a number"),
            // signs
            ("bytes +0-9/100", "first byte is not a number"),
            ("bytes 0-+9/100", "last byte is not a number"),
            ("bytes 0-9/+100", "complete length is not a number"),
            ("bytes 0-9/-100", "complete length is not a number"),
            ("bytes */-1", "complete length is not a number"),
            // overflow
            ("bytes 99999999999999999999999-0/1", "number overflows u64"),
            ("bytes 0-99999999999999999999999/*", "number overflows u64"),
            ("bytes 0-1/99999999999999999999999", "number overflows u64"),
            ("bytes */18446744073709551616", "number overflows u64"),
            // order
            ("bytes 5-2/10", "last < first"),
            ("bytes 5-2/*", "last < first"),
            ("bytes 0-10/10", "last >= total"),
            ("bytes 0-0/0", "last >= total"),
        ];
        for (input, reason) in cases {
            let got = parse_content_range(input.as_bytes()).map_err(|e| e.to_string());
            let want = format!("invalid Content-Range {input:?}: {reason}");
            assert_eq!(got, Err(want));
        }
    }

    #[test]
    fn content_range_error_variants() {
        let value = |v: &str| v.to_string();
        let cases: &[(&[u8], ContentRangeError)] = &[
            (
                b"items 0-1/10",
                ContentRangeError::Unit {
                    value: value("items 0-1/10"),
                },
            ),
            (
                b"bytes 0-1/1x",
                ContentRangeError::Syntax {
                    value: value("bytes 0-1/1x"),
                    reason: "complete length is not a number",
                },
            ),
            (
                b"bytes 0-1/99999999999999999999",
                ContentRangeError::Overflow {
                    value: value("bytes 0-1/99999999999999999999"),
                },
            ),
            (
                b"bytes 5-2/10",
                ContentRangeError::LastBeforeFirst {
                    value: value("bytes 5-2/10"),
                },
            ),
            (
                b"bytes 0-10/10",
                ContentRangeError::PastTotal {
                    value: value("bytes 0-10/10"),
                },
            ),
            // bytes that are not UTF-8 are shown replaced, not dropped
            (
                b"bytes \xff-1/10",
                ContentRangeError::Syntax {
                    value: value("bytes \u{fffd}-1/10"),
                    reason: "first byte is not a number",
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_content_range(input).as_ref(), Err(want));
        }
    }

    #[test]
    fn content_range_display_round_trips() {
        let cases: &[(ContentRange, &str)] = &[
            (bytes(0, 9, Some(100)), "bytes 0-9/100"),
            (bytes(0, 9, None), "bytes 0-9/*"),
            (ContentRange::Unsatisfied { total: 100 }, "bytes */100"),
            (
                bytes(u64::MAX - 1, u64::MAX - 1, Some(u64::MAX)),
                "bytes 18446744073709551614-18446744073709551614/18446744073709551615",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(value.to_string(), *want);
            assert_eq!(
                value.header_value(),
                *want,
                "header_value writes what Display does"
            );
            assert_eq!(parse_content_range(want.as_bytes()), Ok(*value));
        }
    }

    #[test]
    fn coalesce_sorts_merges_and_drops_unsatisfiable() {
        use ByteRangeSpec::*;
        type Case = (Vec<ByteRangeSpec>, Vec<(u64, u64)>);
        let cases: Vec<Case> = vec![
            (vec![FromTo(0, 1), FromTo(4, 5)], vec![(0, 1), (4, 5)]),
            (vec![FromTo(4, 5), FromTo(0, 1)], vec![(0, 1), (4, 5)]),
            (vec![FromTo(0, 3), FromTo(2, 5)], vec![(0, 5)]),
            (vec![FromTo(0, 1), FromTo(2, 3)], vec![(0, 3)]),
            (vec![FromTo(0, 1), FromTo(100, 200)], vec![(0, 1)]),
            (vec![Suffix(2), FromTo(0, 0)], vec![(0, 0), (14, 15)]),
            (vec![From(20), Suffix(0)], vec![]),
        ];
        for (specs, want) in cases {
            assert_eq!(coalesce(&specs, 16), want, "{specs:?}");
        }
    }
}
