//! The origin's `Content-Range` (RFC 9110 section 14.4): what part of the
//! object an answer carries. Pure.
//!
//! In: the raw bytes of the header. Out: a [`ContentRange`] that
//! [`crate::slice::check`] compares with the slice it asked for, and whose
//! `Display` (and [`ContentRange::header_value`]) writes the header back for
//! the 206 or 416 sent to the client. Unlike the client's `Range`
//! ([`super::range`]), which is ignored when it does not parse, a
//! `Content-Range` that does not parse means the slice cannot be trusted:
//! [`parse_content_range`] is strict and says what it got.
//!
//! ```
//! use edgeslice::http::content_range::{parse_content_range, ContentRange};
//!
//! let got = parse_content_range(b"bytes 0-1023/10000").unwrap();
//! assert_eq!(got, ContentRange::Bytes { first: 0, last: 1023, total: Some(10_000) });
//! assert_eq!(got.to_string(), "bytes 0-1023/10000");
//! ```

use std::fmt;

use super::range::{parse_decimal, trim_ows, DecimalError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
