//! What an answer's headers say about caching it (RFC 9111, RFC 9213):
//! whether it may be stored and for how long ([`freshness`]), how old it
//! already is ([`current_age`]), whether the origin gave it a lifetime of
//! its own ([`explicit_freshness`]), and what it varies on
//! ([`vary_names`]). Freshness: `CDN-Cache-Control` when valid, else
//! `Cache-Control`; `s-maxage`, then `max-age`, then `Expires` minus
//! `Date`, else `cache.cache_ttl` when the operator sets one, else RFC
//! 9111 4.2.2's heuristic from `Last-Modified` ([`Heuristics`]); `no-store`, `private` and
//! `no-cache` make an answer not storable here, their qualified forms
//! only the fields they name ([`unshared_fields`]). Dates are read by
//! [`crate::http::date`], the directives by
//! [`crate::http::response_cache_control`]. Pure functions of the
//! headers and the clock, tested here; the manifest ([`super::manifest`])
//! keeps what they decide.

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap};

use crate::http::date::{date_field, parse_date};
use crate::http::response_cache_control::{split_directives, Directives, CDN_CACHE_CONTROL};

/// Lower-case header names listed in Vary; `["*"]` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The lifetime this cache gives an answer the origin gave none (RFC 9111
/// 4.2.2): `cache.cache_ttl` for a 200 when the operator sets one, else a
/// heuristic, a tenth of the time since its `Last-Modified`, at most
/// `cache.heuristic_max_ttl`, and none without a `Last-Modified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heuristics {
    /// A 200's lifetime when it has no explicit one (`cache.cache_ttl`;
    /// `None`: the heuristic).
    pub fixed: Option<Duration>,
    /// The longest heuristic lifetime (`cache.heuristic_max_ttl`).
    pub max: Duration,
}

impl Heuristics {
    /// RFC 9111 4.2.2 only: no lifetime of this cache's own.
    pub fn rfc(max: Duration) -> Heuristics {
        Heuristics { fixed: None, max }
    }
}

/// How long an answer may be served from the cache; `None` when it must not
/// be stored, or when it is already stale (RFC 9111 section 4.2): its
/// freshness lifetime (`s-maxage`, `max-age`, else `Expires` minus `Date`,
/// else what `heuristics` give it) less its current age (the larger of its
/// `Age`, from a cache before this one, and how long ago its `Date` was).
pub fn freshness(headers: &HeaderMap, heuristics: Heuristics) -> Option<Duration> {
    let now = SystemTime::now();
    let date = date_field(headers, header::DATE);
    let lifetime = lifetime(headers, date, now, heuristics)?;
    lifetime
        .checked_sub(current_age(headers))
        .filter(|left| !left.is_zero())
}

/// How long an answer of `status` may be stored (see [`freshness`]). A
/// 200 is an object: without freshness of its own it gets what
/// `heuristics` give it. Another final status is stored when the origin
/// gives it explicit freshness (RFC 9111 3: any status the cache
/// understands), or, for a status cacheable by default (RFC 9110 15.1:
/// 203, 204, 300, 301, 308, 404, 405, 410, 414, 501) or marked `public`
/// (any final status: RFC 9111 3 lets it be stored, and 4.2.2's heuristics
/// apply to it), with the heuristic lifetime (never `cache.cache_ttl`). A
/// 206 is a slice (stored by its own path), a 304 or 1xx never.
pub fn freshness_of(
    status: http::StatusCode,
    headers: &HeaderMap,
    heuristics: Heuristics,
) -> Option<Duration> {
    if Directives::from_headers(headers).has("must-understand") && !understood(status) {
        // Stored only by a cache that knows the status's caching rules
        // (RFC 9111 5.2.2.3), whatever else the answer says.
        return None;
    }
    let heuristic = Heuristics::rfc(heuristics.max);
    match status.as_u16() {
        200 => freshness(headers, heuristics),
        100..=199 | 206 | 304 => None,
        203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501 => freshness(headers, heuristic),
        _ if explicit_freshness(headers) || Directives::from_headers(headers).has("public") => {
            freshness(headers, heuristic)
        }
        _ => None,
    }
}

/// A heuristic lifetime (RFC 9111 4.2.2): a tenth of the time from the
/// answer's `Last-Modified` to its `Date` (or now), at most `max`; `None`
/// without a `Last-Modified` (or with one after that time).
fn heuristic_lifetime(
    headers: &HeaderMap,
    date: Option<SystemTime>,
    now: SystemTime,
    max: Duration,
) -> Option<Duration> {
    let modified = date_field(headers, header::LAST_MODIFIED)?;
    let lifetime = date.unwrap_or(now).duration_since(modified).ok()? / 10;
    Some(lifetime.min(max))
}

/// Whether an answer says how long it is fresh (RFC 9111 4.2.1): a
/// `max-age` or `s-maxage` (in `CDN-Cache-Control` or `Cache-Control`) or an
/// `Expires`. An origin that gives a server error explicit freshness means
/// it as its answer, to be relayed (and stored), not retried.
pub fn explicit_freshness(headers: &HeaderMap) -> bool {
    let directive = |field: &str| {
        headers
            .get_all(field)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_directives)
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d.starts_with("max-age=") || d.starts_with("s-maxage="))
    };
    directive(CDN_CACHE_CONTROL)
        || directive(header::CACHE_CONTROL.as_str())
        || headers.contains_key(header::EXPIRES)
}

/// How old an answer is as it arrives (RFC 9111 4.2.3): the larger of its
/// `Age` and how long ago its `Date` was.
pub fn current_age(headers: &HeaderMap) -> Duration {
    let apparent_age = date_field(headers, header::DATE)
        .and_then(|d| SystemTime::now().duration_since(d).ok())
        .unwrap_or_default();
    age_value(headers).unwrap_or_default().max(apparent_age)
}

/// The `Age` an answer carries (RFC 9111 5.1): the first value of its
/// first line (`Age: 7200, 0` is 7200); a number too large for 64 bits is
/// the largest; anything else is no `Age`.
fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let first = headers
        .get(header::AGE)?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        first.parse::<u64>().unwrap_or(u64::MAX),
    ))
}

/// The header fields a shared cache must not store with an answer (RFC
/// 9111 5.2.2.4: qualified `no-cache`, "MUST NOT be sent in the response to
/// a subsequent request without successful revalidation"; 5.2.2.7:
/// qualified `private`, "MUST NOT store the listed header fields"): the
/// rest of the answer is stored without them. `no-cache="Set-Cookie"` is
/// how an origin lets a page be cached but not its cookie.
pub fn unshared_fields(headers: &HeaderMap) -> Vec<String> {
    let cc = Directives::from_headers(headers);
    let mut fields = cc.listed("no-cache");
    fields.extend(cc.listed("private"));
    fields
}

/// Whether this cache knows the caching rules of `status`: the final
/// statuses RFC 9110 defines (a `must-understand` answer of any other is
/// not stored).
fn understood(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505)
}

/// Whether a shared cache may store an answer at all (RFC 9111 3): not
/// `no-store`, not `private`, not `Vary: *`. It may still be stale from the
/// start (`no-cache`, `max-age=0`, an `Expires` past). `must-understand`
/// overrides `no-store` (RFC 9111 5.2.2.3: the status is checked by
/// [`freshness_of`]).
fn storable(headers: &HeaderMap) -> bool {
    let cc = Directives::from_headers(headers);
    (!cc.has("no-store") || cc.has("must-understand"))
        && !cc.has_unqualified("private")
        && !vary_names(headers).iter().any(|n| n == "*")
}

/// Whether an answer to a request with credentials (`Authorization`) may
/// be stored and reused by a shared cache (RFC 9111 3.5): only when it
/// says so with `public`, `s-maxage` or `must-revalidate`.
pub fn shared_despite_credentials(headers: &HeaderMap) -> bool {
    let cc = Directives::from_headers(headers);
    ["public", "s-maxage", "must-revalidate"]
        .iter()
        .any(|name| cc.has(name))
}

/// Whether an answer with no freshness left is still worth storing, to be
/// validated before each use (RFC 9111 4.3): it may be stored and it has a
/// validator (`ETag` or `Last-Modified`) a conditional request can send.
/// `no-cache` and `max-age=0` answers are such: the next request asks
/// the origin whether they changed, and a 304 serves them.
pub fn revalidatable(headers: &HeaderMap) -> bool {
    storable(headers)
        && (headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED))
}

/// Whether an answer forbids serving it stale (RFC 9111 4.2.4): `no-cache`,
/// `must-revalidate`, and for a shared cache `proxy-revalidate` and
/// `s-maxage` (5.2.2.10). Then no stale window applies, not even the
/// configured defaults.
pub fn forbids_stale(headers: &HeaderMap) -> bool {
    let cc = Directives::from_headers(headers);
    cc.has_unqualified("no-cache")
        || ["must-revalidate", "proxy-revalidate", "s-maxage"]
            .iter()
            .any(|name| cc.has(name))
}

/// How long an answer is fresh for from when it was made (RFC 9111 4.2.1);
/// `None` when it must not be stored or is stale from the start.
fn lifetime(
    headers: &HeaderMap,
    date: Option<SystemTime>,
    now: SystemTime,
    heuristics: Heuristics,
) -> Option<Duration> {
    let cc = Directives::from_headers(headers);
    if !storable(headers) || cc.has_unqualified("no-cache") {
        return None;
    }
    // The first of a directive's values (RFC 9111 4.2.1); an answer whose
    // lifetime is invalid is stale.
    if let Some(s) = cc.seconds("s-maxage").or_else(|| cc.seconds("max-age")) {
        return s.filter(|&s| s > 0).map(Duration::from_secs);
    }
    if let Some(expires) = headers.get(header::EXPIRES) {
        let at = expires.to_str().ok().and_then(parse_date);
        // Expires minus Date, or minus now without a Date; an invalid or
        // earlier Expires means already stale (RFC 9111 section 5.3).
        return at.and_then(|at| at.duration_since(date.unwrap_or(now)).ok());
    }
    match heuristics.fixed {
        Some(fixed) => Some(fixed),
        None => heuristic_lifetime(headers, date, now, heuristics.max),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http::HeaderValue;

    /// A header map of `pairs`, in order (the cache's tests share it).
    pub(in crate::cache) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// With `cache.cache_ttl = 3600` (an operator's lifetime for answers
    /// without one).
    #[test]
    fn freshness_table() {
        let ttl = Heuristics {
            fixed: Some(Duration::from_secs(3600)),
            max: DAY,
        };
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<u64>);
        let cases: Vec<Case> = vec![
            (vec![], Some(3600)),
            (vec![("cache-control", "max-age=60")], Some(60)),
            (
                vec![("cache-control", "public, max-age=60, s-maxage=10")],
                Some(10),
            ),
            (vec![("cache-control", "max-age=\"30\"")], Some(30)),
            (vec![("cache-control", "max-age=0")], None),
            (vec![("cache-control", "no-store")], None),
            (vec![("cache-control", "private, max-age=60")], None),
            (vec![("cache-control", "no-cache")], None),
            (vec![("expires", "Thu, 01 Jan 1970 00:00:00 GMT")], None),
            (vec![("expires", "garbage")], None),
            (vec![("vary", "*")], None),
            (
                vec![("cache-control", "max-age=60"), ("expires", "garbage")],
                Some(60),
            ),
            // Age, from a cache before this one, is spent of the lifetime.
            (
                vec![("cache-control", "max-age=60"), ("age", "45")],
                Some(15),
            ),
            (vec![("cache-control", "max-age=60"), ("age", "60")], None),
            (vec![("age", "600")], Some(3000)),
            (vec![("age", "garbage")], Some(3600)),
        ];
        for (pairs, want) in cases {
            let got = freshness(&headers(&pairs), ttl).map(|d| d.as_secs());
            assert_eq!(got, want, "{pairs:?}");
        }
        let got = freshness(&headers(&[("expires", &future)]), ttl).unwrap();
        assert!((590..=600).contains(&got.as_secs()), "{got:?}");
    }

    /// The default (`cache.cache_ttl = 0`): RFC 9111 4.2.2's heuristic, a
    /// tenth of the time from `Last-Modified` to `Date`, at most
    /// `cache.heuristic_max_ttl`, less the age; nothing without a
    /// `Last-Modified`. An operator's `cache_ttl` is a 200's alone.
    #[test]
    fn without_a_lifetime_of_its_own_an_answer_gets_the_heuristic() {
        let rfc = Heuristics::rfc(DAY);
        let date = httpdate::fmt_http_date(SystemTime::now());
        let ago =
            |secs: u64| httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(secs));
        let (h10, d100, later) = (ago(36_000), ago(100 * 86_400), ago(0));
        let secs = |pairs: &[(&str, &str)], h: Heuristics| {
            freshness(&headers(pairs), h).map(|d| d.as_secs())
        };
        // (headers, seconds fresh)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<u64>);
        let table: &[Case] = &[
            (&[], None),
            (&[("etag", "\"a\"")], None),
            (&[("date", &date), ("last-modified", &h10)], Some(3600)),
            (
                &[("date", &date), ("last-modified", &h10), ("age", "600")],
                Some(3000),
            ),
            (&[("date", &date), ("last-modified", &d100)], Some(86_400)),
            (&[("date", &date), ("last-modified", &later)], None),
            (
                &[("last-modified", &h10), ("cache-control", "max-age=60")],
                Some(60),
            ),
            (
                &[("last-modified", &h10), ("cache-control", "no-store")],
                None,
            ),
        ];
        for (pairs, want) in table {
            let got = secs(pairs, rfc);
            let near = match (got, want) {
                (Some(g), Some(w)) => g.abs_diff(*w) <= 1,
                (g, w) => g == *w,
            };
            assert!(near, "{pairs:?}: got {got:?}, want {want:?}");
        }
        // No heuristic at all: `cache.heuristic_max_ttl = 0`.
        let none = Heuristics::rfc(Duration::ZERO);
        assert_eq!(
            secs(&[("date", &date), ("last-modified", &h10)], none),
            None
        );
        // An operator's lifetime: a 200's, over the heuristic; never another status's.
        let fixed = Heuristics {
            fixed: Some(Duration::from_secs(60)),
            max: DAY,
        };
        let lm = [("date", date.as_str()), ("last-modified", h10.as_str())];
        let of = |status: u16, pairs: &[(&str, &str)]| {
            let status = http::StatusCode::from_u16(status).unwrap();
            freshness_of(status, &headers(pairs), fixed).map(|d| d.as_secs())
        };
        assert!(of(200, &lm).is_some_and(|s| s.abs_diff(60) <= 1));
        assert_eq!(of(200, &[]), Some(60));
        assert!(of(404, &lm).is_some_and(|s| s.abs_diff(3600) <= 1));
        assert_eq!(of(404, &[]), None);
    }

    /// RFC 9111 5.2.2.4, 5.2.2.7: `no-cache="a, b"` and `private="a"` hold
    /// back only the fields they name; the answer is stored (and fresh for
    /// its max-age) without them. Bare, empty or not a list of field names,
    /// they hold back the whole answer, as before. Before, a qualified
    /// `no-cache` made every hit a revalidation and a qualified `private`
    /// kept the answer out of the cache.
    #[test]
    fn qualified_no_cache_and_private_hold_back_only_the_fields_they_name() {
        let h = |cc: &str| headers(&[("cache-control", cc)]);
        let secs = |cc: &str| freshness(&h(cc), Heuristics::rfc(DAY)).map(|d| d.as_secs());
        for (cc, fresh, unshared) in [
            ("max-age=60, no-cache=\"a\"", Some(60), vec!["a"]),
            ("no-cache=\"A, b\", max-age=60", Some(60), vec!["a", "b"]),
            (
                "max-age=60, private=\"Set-Cookie\"",
                Some(60),
                vec!["set-cookie"],
            ),
            ("max-age=60, no-cache=a", Some(60), vec!["a"]),
            ("max-age=60, no-cache", None, vec![]),
            ("max-age=60, no-cache=\"\"", None, vec![]),
            ("max-age=60, no-cache=\"a b\"", None, vec!["a b"]),
            ("max-age=60, private", None, vec![]),
            ("max-age=60, private=\"a, b c\"", None, vec!["a", "b c"]),
        ] {
            assert_eq!(secs(cc), fresh, "{cc}");
            assert_eq!(unshared_fields(&h(cc)), unshared, "{cc}");
        }
        // Only an unqualified no-cache forbids serving stale.
        assert!(!forbids_stale(&h("max-age=1, no-cache=\"a\"")));
        assert!(forbids_stale(&h("max-age=1, no-cache")));
        // RFC 9213: the same in CDN-Cache-Control (a Structured Field string).
        let cdn = headers(&[
            ("cdn-cache-control", "max-age=60, no-cache=\"X-A\""),
            ("cache-control", "no-store"),
        ]);
        assert_eq!(
            freshness(&cdn, Heuristics::rfc(DAY)).map(|d| d.as_secs()),
            Some(60)
        );
        assert_eq!(unshared_fields(&cdn), ["x-a"]);
    }

    /// RFC 9111 4.2: lifetime from `max-age` (invalid values make the
    /// answer stale) or `Expires` minus `Date`; current age the larger of
    /// `Age` (its first value) and how long ago `Date` was.
    #[test]
    fn freshness_follows_rfc_9111_section_4_2() {
        let ttl = Heuristics {
            fixed: Some(Duration::from_secs(3600)),
            max: DAY,
        };
        let at = |offset: i64| {
            let now = SystemTime::now();
            let t = match offset >= 0 {
                true => now + Duration::from_secs(offset as u64),
                false => now - Duration::from_secs((-offset) as u64),
            };
            httpdate::fmt_http_date(t)
        };
        let secs = |pairs: &[(&str, &str)]| freshness(&headers(pairs), ttl).map(|d| d.as_secs());
        // Invalid max-age: stale, not the default.
        assert_eq!(secs(&[("cache-control", "max-age=-3600")]), None);
        assert_eq!(secs(&[("cache-control", "max-age='3600'")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=\"3600\"")]), Some(3600));
        assert_eq!(
            secs(&[("cache-control", "max-age=99999999999999999999")]),
            Some(u64::MAX)
        );
        // Age: its first value.
        assert_eq!(
            secs(&[("cache-control", "max-age=3600"), ("age", "7200, 0")]),
            None
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=3600"), ("age", "0, 7200")]),
            Some(3600)
        );
        // Expires minus Date, not minus now.
        let (d400, e300) = (at(400), at(300));
        assert_eq!(secs(&[("expires", &e300), ("date", &d400)]), None);
        let (d_10, e10) = (at(-10), at(10));
        assert_eq!(
            secs(&[("date", &d_10), ("expires", &e10), ("age", "25")]),
            None
        );
        let (d10, e20) = (at(10), at(20));
        assert_eq!(
            secs(&[("date", &d10), ("expires", &e20), ("age", "15")]),
            None
        );
        // RFC 9213: CDN-Cache-Control, when present, instead of Cache-Control.
        let cdn = |cdn: &str, cc: &str| secs(&[("cdn-cache-control", cdn), ("cache-control", cc)]);
        assert_eq!(cdn("max-age=0", "max-age=3600"), None);
        assert_eq!(cdn("max-age=1", "max-age=3600"), Some(1));
        assert_eq!(cdn("private", "max-age=3600"), None);
        assert_eq!(cdn("no-cache", "max-age=3600"), None);
        assert_eq!(cdn("no-store", "max-age=3600"), None);
        assert_eq!(cdn("max-age=3600", "no-store"), Some(3600));
        // Not a valid dictionary, or max-age not an integer: Cache-Control decides.
        assert_eq!(cdn("max-age=10000, &&&&&", "no-store"), None);
        assert_eq!(cdn("max-age=\"10000\"", "no-store"), None);
        assert_eq!(cdn("max-age=\"10000\"", "max-age=60"), Some(60));
        // A Date an hour ago is an hour of age.
        let d_3600 = at(-3600);
        assert_eq!(
            secs(&[("cache-control", "max-age=3600"), ("date", &d_3600)]),
            None
        );
        let got = secs(&[("cache-control", "max-age=7200"), ("date", &d_3600)]).unwrap();
        assert!((3590..=3600).contains(&got), "{got}");
    }

    /// RFC 9111 5.2.2.3: `must-understand` stores an answer despite
    /// `no-store` when the cache knows its status's rules, and never
    /// stores one whose status it does not know.
    #[test]
    fn must_understand_overrides_no_store_for_known_statuses() {
        let ttl = Heuristics::rfc(Duration::from_secs(60));
        let cc = |status: u16, value: &str| {
            let status = http::StatusCode::from_u16(status).unwrap();
            freshness_of(status, &headers(&[("cache-control", value)]), ttl).map(|d| d.as_secs())
        };
        let both = "max-age=3600, no-store, must-understand";
        assert_eq!(cc(200, both), Some(3600));
        assert_eq!(cc(404, both), Some(3600));
        assert_eq!(cc(599, both), None);
        assert_eq!(cc(599, "max-age=3600, must-understand"), None);
        assert_eq!(cc(599, "max-age=3600"), Some(3600));
        assert_eq!(cc(200, "max-age=3600, no-store"), None);
        // private still keeps it out of a shared cache.
        assert_eq!(cc(200, "max-age=3600, private, must-understand"), None);
    }
}
