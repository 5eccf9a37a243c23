//! The client's `Range` (RFC 9110 section 14.2). Pure.
//!
//! In: the raw bytes of the header. Out: a [`RangeRequest`] whose specs
//! [`ByteRangeSpec::resolve`] turns into the inclusive byte range the driver's
//! "respond" phase answers and [`crate::slice::plan`] slices. A `Range` that
//! does not parse is ignored (the whole object is served), as RFC 9110
//! allows, so [`parse_range`] never fails; the origin's `Content-Range`,
//! which must parse, is [`super::content_range`]'s.
//!
//! ```
//! use edgeslice::http::range::{parse_range, ByteRangeSpec, RangeRequest};
//!
//! let RangeRequest::Single(spec) = parse_range(b"bytes=-500") else { unreachable!() };
//! assert_eq!(spec, ByteRangeSpec::Suffix(500));
//! assert_eq!(spec.resolve(10_000), Some((9_500, 9_999)));
//! ```
//!
//! Allocation-free on success except for the `Vec` of a multi-range request.

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

pub(super) enum DecimalError {
    Malformed,
    Overflow,
}

/// `1*DIGIT` as u64; signs, spaces and empty strings are malformed.
pub(super) fn parse_decimal(digits: &[u8]) -> Result<u64, DecimalError> {
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
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
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
