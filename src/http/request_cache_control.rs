//! A request's `Cache-Control` (RFC 9111 5.2.1): what the client asks of a
//! stored answer. Read once by the driver's "classify" phase from the
//! client's header; the "lookup" phase asks it whether a stored answer of
//! some age and freshness will do ([`RequestCacheControl::wants_validation`],
//! [`RequestCacheControl::accepts_stale`]) and whether this request's
//! answer may be stored (`no-store`) or the origin asked (`only-if-cached`).
//! Pure, tested here.

use http::{header, HeaderMap};

/// The request directives a cache acts on; unknown ones and ones with a
/// value that is not delta-seconds are left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCacheControl {
    /// `max-age=N`: no stored answer older than N seconds.
    pub max_age: Option<u64>,
    /// `max-stale[=N]`: a stale answer will do, up to N seconds past its
    /// freshness (any, without N).
    pub max_stale: Option<u64>,
    /// `min-fresh=N`: an answer still fresh N seconds from now.
    pub min_fresh: Option<u64>,
    /// `no-cache`: a stored answer only once the origin validated it.
    pub no_cache: bool,
    /// `no-store`: nothing of this request or its answer is stored.
    pub no_store: bool,
    /// `only-if-cached`: a stored answer or a 504, never the origin.
    pub only_if_cached: bool,
}

/// The request directives read, as RFC 9111 5.2.1 spells them.
const NAMES: [&str; 6] = [
    "max-age",
    "max-stale",
    "min-fresh",
    "no-cache",
    "no-store",
    "only-if-cached",
];

impl RequestCacheControl {
    /// The directives of every `Cache-Control` field of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> RequestCacheControl {
        let mut cc = RequestCacheControl::default();
        let fields = headers.get_all(header::CACHE_CONTROL).iter();
        for directive in fields
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(delta_seconds(value.trim()))),
                None => (directive.trim(), None),
            };
            // Names are case-insensitive (RFC 9111 5.2); matched without a copy.
            let known = NAMES.into_iter().find(|k| name.eq_ignore_ascii_case(k));
            match (known, value) {
                (Some("max-age"), Some(Some(n))) => cc.max_age = Some(n),
                (Some("max-stale"), Some(Some(n))) => cc.max_stale = Some(n),
                (Some("max-stale"), None) => cc.max_stale = Some(u64::MAX),
                (Some("min-fresh"), Some(Some(n))) => cc.min_fresh = Some(n),
                (Some("no-cache"), _) => cc.no_cache = true,
                (Some("no-store"), _) => cc.no_store = true,
                (Some("only-if-cached"), _) => cc.only_if_cached = true,
                _ => {}
            }
        }
        cc
    }

    /// Whether the client asks that a fresh stored answer, `age` seconds
    /// old with `ttl` seconds of freshness left, be validated with the
    /// origin before it is served: `no-cache`, a `max-age` it has reached
    /// (ages are whole seconds: one of `max-age` is older by a fraction),
    /// a `min-fresh` longer than what it has left.
    pub fn wants_validation(&self, age: u64, ttl: i64) -> bool {
        self.no_cache
            || self.max_age.is_some_and(|max| age >= max)
            || self
                .min_fresh
                .is_some_and(|min| ttl < i64::try_from(min).unwrap_or(i64::MAX))
    }

    /// Whether a stale answer, `stale_for` seconds past its freshness, will
    /// do for the client (`max-stale`), when its own `max-age` allows its age.
    pub fn accepts_stale(&self, stale_for: u64, age: u64) -> bool {
        self.max_stale.is_some_and(|max| stale_for <= max)
            && self.max_age.is_none_or(|max| age < max)
    }
}

/// RFC 9111 1.2.2 delta-seconds, also quoted (5.2: both forms are read); a
/// value too large for the clock is as large as it can be.
fn delta_seconds(value: &str) -> Option<u64> {
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(values: &[&str]) -> RequestCacheControl {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::CACHE_CONTROL, v.parse().unwrap());
        }
        RequestCacheControl::from_headers(&headers)
    }

    #[test]
    fn directives_are_read_as_rfc_9111_5_2_1_defines_them() {
        let none = RequestCacheControl::default();
        let table: &[(&[&str], RequestCacheControl)] = &[
            (&[], none),
            (
                &["no-cache"],
                RequestCacheControl {
                    no_cache: true,
                    ..none
                },
            ),
            (
                &["No-Store"],
                RequestCacheControl {
                    no_store: true,
                    ..none
                },
            ),
            (
                &["only-if-cached"],
                RequestCacheControl {
                    only_if_cached: true,
                    ..none
                },
            ),
            (
                &["max-age=0"],
                RequestCacheControl {
                    max_age: Some(0),
                    ..none
                },
            ),
            (
                &["max-age=\"60\""],
                RequestCacheControl {
                    max_age: Some(60),
                    ..none
                },
            ),
            (
                &["max-age = 60"],
                RequestCacheControl {
                    max_age: Some(60),
                    ..none
                },
            ),
            (&["max-age=abc", "max-age=-1"], none),
            (
                &["max-age=99999999999999999999999"],
                RequestCacheControl {
                    max_age: Some(u64::MAX),
                    ..none
                },
            ),
            (
                &["max-stale"],
                RequestCacheControl {
                    max_stale: Some(u64::MAX),
                    ..none
                },
            ),
            (
                &["max-stale=1000"],
                RequestCacheControl {
                    max_stale: Some(1000),
                    ..none
                },
            ),
            (
                &["min-fresh=2000"],
                RequestCacheControl {
                    min_fresh: Some(2000),
                    ..none
                },
            ),
            (
                &["max-age=10, min-fresh=5", "no-cache"],
                RequestCacheControl {
                    max_age: Some(10),
                    min_fresh: Some(5),
                    no_cache: true,
                    ..none
                },
            ),
            (&["private, x-ext=1"], none),
        ];
        for (values, want) in table {
            assert_eq!(cc(values), *want, "{values:?}");
        }
    }

    #[test]
    fn a_fresh_answer_is_validated_when_the_client_asks() {
        // (directives, age, ttl left, validated first)
        let table: &[(&str, u64, i64, bool)] = &[
            ("max-stale", 100, 10, false),
            ("no-cache", 0, 3600, true),
            ("max-age=0", 0, 3600, true),
            ("max-age=600", 1800, 1800, true),
            ("max-age=600", 600, 1800, true),
            ("max-age=600", 599, 1800, false),
            ("min-fresh=2000", 0, 1500, true),
            ("min-fresh=1000", 1000, 500, true),
            ("min-fresh=1000", 0, 1000, false),
        ];
        for (value, age, ttl, want) in table {
            assert_eq!(
                cc(&[value]).wants_validation(*age, *ttl),
                *want,
                "{value} age {age} ttl {ttl}"
            );
        }
    }

    #[test]
    fn a_stale_answer_does_only_within_max_stale() {
        // (directives, seconds stale, age, served stale)
        let table: &[(&str, u64, u64, bool)] = &[
            ("no-cache", 1, 10, false),
            ("max-stale", 1_000_000, 10, true),
            ("max-stale=1000", 1000, 10, true),
            ("max-stale=1000", 1001, 10, false),
            ("max-stale=1000, max-age=10", 1, 10, false),
            ("max-stale=1000, max-age=11", 1, 10, true),
        ];
        for (value, stale_for, age, want) in table {
            assert_eq!(
                cc(&[value]).accepts_stale(*stale_for, *age),
                *want,
                "{value} {stale_for} s stale"
            );
        }
    }
}
