//! Object manifests: what the cache knows of one version of one object.
//!
//! A manifest is written when a probe learns an object's length and
//! validators, and read before any slice of that object is served from the
//! cache. Every slice key carries the manifest's `generation`, a random number
//! drawn anew for each version and each purge, so a slice is only ever served
//! under the manifest it was fetched with, even across restarts and even if a
//! manifest is lost and written again.
//!
//! How long a manifest is fresh, how old its answer was when it came and
//! what it varies on are decided from the answer's headers by
//! [`crate::cache::freshness`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::cache::freshness::{current_age, forbids_stale, unshared_fields, vary_names};
use crate::http::object_version::ObjectVersion;
use crate::http::response_cache_control::split_directives;

/// One version of one object, as stored in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectManifest {
    /// Total length in bytes.
    pub len: u64,
    /// The origin's ETag, raw.
    pub etag: Option<Raw>,
    /// The origin's Last-Modified, raw.
    pub last_modified: Option<Raw>,
    /// Slice size the object was cached with; its slices use this grid forever.
    pub slice_size: u64,
    /// Random tag of this version's slices; a purge draws a new one.
    pub generation: u64,
    /// For a variant (the origin sent Vary): the generation of the base
    /// manifest it was stored under; a purge of the base retires every variant.
    pub parent: u64,
    /// Unix seconds after which the object must be revalidated.
    pub expires_at: u64,
    /// Request headers named by the origin's Vary, lower-case.
    pub vary: Vec<String>,
    /// The origin's end-to-end response headers to replay on a hit.
    pub headers: Vec<(String, Raw)>,
    /// How long past its expiry the object may still be served (RFC 5861).
    #[serde(default)]
    pub stale: StaleWindows,
    /// Cached from a whole answer (the origin ignored Range or gave no
    /// length): its slices cannot be fetched one by one, so it is served
    /// only while every slice is cached.
    #[serde(default)]
    pub whole_only: bool,
    /// Unix seconds when the origin last vouched for this version (stored or
    /// revalidated): the `Age` of an answer from the cache counts from here.
    #[serde(default)]
    pub validated_at: u64,
    /// The answer's status: 200 for an object; another one (203, 204, 3xx,
    /// 404, 410, a 5xx, ...) stored whole as the origin gave it, with its
    /// body, and answered as it is, whatever the request's Range.
    #[serde(default = "object_status")]
    pub status: u16,
}

fn object_status() -> u16 {
    200
}

/// A header value as stored: a JSON string when it is UTF-8 (nearly always:
/// one byte a byte), else an array of its bytes (3-4 bytes a byte). Both
/// are read back, so manifests stored before still decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl std::ops::Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw(v.as_bytes().to_vec()))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw(v.to_vec()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Raw(out))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// RFC 5861 windows, in seconds past expiry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleWindows {
    /// Served stale while one background revalidation runs.
    pub while_revalidate: u64,
    /// Served stale when revalidation fails (origin down, 5xx, timeout).
    pub if_error: u64,
}

impl StaleWindows {
    /// The windows `Cache-Control` gives (`stale-while-revalidate=N`,
    /// `stale-if-error=N`), else `defaults`; none for an answer that forbids
    /// being served stale (`no-cache`, `must-revalidate`, `s-maxage`...).
    pub fn from_headers(headers: &HeaderMap, defaults: &StaleWindows) -> StaleWindows {
        if forbids_stale(headers) {
            return StaleWindows::default();
        }
        let directive = |name: &str| {
            headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(split_directives)
                .find_map(|d| {
                    let (k, v) = d.trim().split_once('=')?;
                    k.eq_ignore_ascii_case(name)
                        .then(|| v.trim_matches('"').parse::<u64>().ok())
                        .flatten()
                })
        };
        StaleWindows {
            while_revalidate: directive("stale-while-revalidate")
                .unwrap_or(defaults.while_revalidate),
            if_error: directive("stale-if-error").unwrap_or(defaults.if_error),
        }
    }
}

impl ObjectManifest {
    /// A manifest for `version`, learned from a probe answer with `headers`.
    pub fn new(
        version: &ObjectVersion,
        slice_size: u64,
        headers: &HeaderMap,
        ttl: Duration,
    ) -> ObjectManifest {
        let unshared = unshared_fields(headers);
        ObjectManifest {
            len: version.len,
            etag: version.etag.as_ref().map(|v| Raw(v.as_bytes().to_vec())),
            last_modified: version
                .last_modified
                .as_ref()
                .map(|v| Raw(v.as_bytes().to_vec())),
            slice_size,
            generation: fastrand::u64(..),
            parent: 0,
            expires_at: expiry(ttl),
            // The answer was already this old when it came (its Age, or
            // how long ago its Date was): the Age this cache sends goes on
            // from there (RFC 9111 4.2.3).
            validated_at: unix_now().saturating_sub(current_age(headers).as_secs()),
            vary: vary_names(headers),
            headers: headers
                .iter()
                .filter(|(name, _)| stored_field(name, &unshared))
                .map(|(n, v)| (n.as_str().to_string(), Raw(v.as_bytes().to_vec())))
                .chain((!headers.contains_key(header::DATE)).then(received_date))
                .collect(),
            stale: StaleWindows::default(),
            whole_only: false,
            status: 200,
        }
    }

    /// The version every slice must match.
    pub fn version(&self) -> ObjectVersion {
        ObjectVersion {
            len: self.len,
            etag: self
                .etag
                .as_deref()
                .and_then(|v| HeaderValue::from_bytes(v).ok()),
            last_modified: self
                .last_modified
                .as_deref()
                .and_then(|v| HeaderValue::from_bytes(v).ok()),
        }
    }

    /// The stored response headers, as a map.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    /// The stored headers updated with those of a 304 that revalidated
    /// this version (RFC 9111 4.3.4): each field the 304 sends replaces the
    /// stored one, but its framing (`Content-Length`, `Content-Range`) and
    /// its validators, which name the same version. A 304 without a `Date`
    /// is stored with the time it was received (RFC 9110 6.6.1), as an
    /// answer stored without one is; the headers returned, to judge its
    /// freshness by, have no `Date` then.
    pub fn update_headers(&mut self, not_modified: &HeaderMap) -> HeaderMap {
        let mut merged = self.header_map();
        let kept = [
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ETAG,
            header::LAST_MODIFIED,
        ];
        for name in not_modified.keys() {
            if kept.contains(name) {
                continue;
            }
            merged.remove(name);
            for v in not_modified.get_all(name) {
                merged.append(name.clone(), v.clone());
            }
        }
        // The stored one is older than this answer. Stored, not returned:
        // a Date cut to the second would age the answer by up to a second.
        let received = (!not_modified.contains_key(header::DATE)).then(|| {
            merged.remove(header::DATE);
            received_date()
        });
        // A stored Content-Range is a whole answer's own field (a slice's
        // never reaches a manifest): kept, as the 304 cannot change it.
        let unshared = unshared_fields(&merged);
        self.headers = merged
            .iter()
            .filter(|(name, _)| *name == header::CONTENT_RANGE || stored_field(name, &unshared))
            .map(|(n, v)| (n.as_str().to_string(), Raw(v.as_bytes().to_vec())))
            .chain(received)
            .collect();
        merged
    }

    /// Seconds since the origin last vouched for this version (RFC 9111
    /// `Age`); 0 for a manifest stored before that time was kept.
    pub fn age(&self) -> u64 {
        match self.validated_at {
            0 => 0,
            at => unix_now().saturating_sub(at),
        }
    }

    /// Seconds of freshness left; negative once stale (RFC 9211 `ttl`).
    pub fn ttl(&self) -> i64 {
        i64::try_from(self.expires_at)
            .unwrap_or(i64::MAX)
            .saturating_sub(unix_now() as i64)
    }

    /// Whether the object may be served without asking the origin.
    pub fn is_fresh(&self) -> bool {
        unix_now() < self.expires_at
    }

    /// Encode for the store.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// Decode from the store; `None` for bytes that are not a manifest.
    pub fn decode(bytes: &[u8]) -> Option<ObjectManifest> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Headers not replayed from a manifest: framing is ours, Age is per
/// answer, and `Proxy-Authentication-Info` is for the hop that got it
/// ("MUST NOT be stored", RFC 9111 3.1; the other proxy fields never get
/// here, they are hop-by-hop). The origin's Date is replayed (RFC 9110
/// 6.6.1: a stored answer keeps the Date it was made with).
const SKIPPED: [header::HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::AGE,
    header::HeaderName::from_static("proxy-authentication-info"),
];

/// Whether a field of an answer goes into its manifest: not its framing
/// or age ([`SKIPPED`]), nor a field its `no-cache="..."` or
/// `private="..."` names (`unshared`, [`unshared_fields`]).
fn stored_field(name: &header::HeaderName, unshared: &[String]) -> bool {
    !SKIPPED.contains(name) && !unshared.iter().any(|f| f == name.as_str())
}

/// The `Date` field a cache records for an answer that came without one:
/// the time it was received (RFC 9110 6.6.1: a recipient with a clock
/// "MUST record the time it was received and append a corresponding Date
/// header field ... if it is cached").
fn received_date() -> (String, Raw) {
    let now = httpdate::fmt_http_date(SystemTime::now());
    (header::DATE.to_string(), Raw(now.into_bytes()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When something fresh for `ttl` from now stops being fresh, in unix
/// seconds: the exact time cut to the second (never later than it is, and
/// at most a second sooner), as late as the clock counts for a lifetime
/// longer than that (RFC 9111 1.2.2: a `max-age` too large to hold).
pub fn expiry(ttl: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.checked_add(ttl).map_or(u64::MAX, |at| at.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9111 1.2.2: a lifetime too long for the clock is the longest
    /// there is, never a wrap-around; a lifetime is cut to the second, not
    /// stretched.
    #[test]
    fn expiry_is_cut_to_the_second_and_saturates() {
        assert_eq!(expiry(Duration::MAX), u64::MAX);
        assert_eq!(expiry(Duration::from_secs(u64::MAX)), u64::MAX);
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        };
        let before = now();
        let at = expiry(Duration::from_millis(1500)) as f64;
        let after = now();
        assert!(
            at <= after + 1.5 && at > before + 0.5,
            "{before} {at} {after}"
        );
        let version = ObjectVersion::from_headers(1, &HeaderMap::new());
        let mut m = ObjectManifest::new(&version, 1, &HeaderMap::new(), Duration::MAX);
        assert!(m.is_fresh() && m.ttl() > 1 << 60, "{}", m.ttl());
        m.expires_at = 0;
        assert!(!m.is_fresh() && m.ttl() < 0);
    }
    use crate::cache::freshness::tests::headers;

    /// RFC 9111 4.2.4: an answer that forbids being served stale gets no
    /// stale window, not even the configured defaults (before, a route's
    /// `stale_if_error` served `must-revalidate` answers stale).
    #[test]
    fn answers_that_forbid_stale_get_no_window() {
        let defaults = StaleWindows {
            while_revalidate: 60,
            if_error: 60,
        };
        let windows = |cc: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, cc.parse().unwrap());
            StaleWindows::from_headers(&h, &defaults)
        };
        assert_eq!(windows("max-age=1"), defaults);
        let explicit = windows("max-age=1, stale-if-error=5");
        assert_eq!((explicit.if_error, explicit.while_revalidate), (5, 60));
        for cc in [
            "max-age=1, must-revalidate",
            "max-age=1, proxy-revalidate",
            "s-maxage=1",
            "no-cache",
            "max-age=1, stale-if-error=5, must-revalidate",
        ] {
            assert_eq!(windows(cc), StaleWindows::default(), "{cc}");
        }
    }

    /// L6: header values are stored as strings, one byte a byte (a 64 KiB
    /// head made a manifest of about 250 KiB of number arrays before);
    /// manifests stored before, as arrays, still decode, and a value that
    /// is not UTF-8 comes back as it was.
    #[test]
    fn header_values_are_stored_one_byte_a_byte_and_old_manifests_still_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-big",
            HeaderValue::from_str(&"v".repeat(64 * 1024)).unwrap(),
        );
        headers.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let version = ObjectVersion {
            len: 10,
            etag: Some(HeaderValue::from_static("\"e\"")),
            last_modified: None,
        };
        let m = ObjectManifest::new(&version, 4, &headers, Duration::from_secs(60));
        let encoded = m.encode();
        assert!(encoded.len() < 66 * 1024, "{} bytes", encoded.len());
        let back = ObjectManifest::decode(&encoded).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.header_map().get("x-raw").unwrap().as_bytes(),
            b"caf\xe9"
        );
        // The form before: every value an array of numbers.
        let old = r#"{"len":10,"etag":[34,101,34],"last_modified":null,"slice_size":4,
            "generation":7,"parent":0,"expires_at":1,"vary":[],
            "headers":[["x-a",[104,105]]]}"#;
        let old = ObjectManifest::decode(old.as_bytes()).unwrap();
        assert_eq!(&old.etag.unwrap()[..], b"\"e\"");
        assert_eq!(&old.headers[0].1[..], b"hi");
    }

    #[test]
    fn stale_windows_come_from_cache_control_or_defaults() {
        let defaults = StaleWindows {
            while_revalidate: 7,
            if_error: 9,
        };
        let given = headers(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, Stale-If-Error=\"600\"",
        )]);
        assert_eq!(
            StaleWindows::from_headers(&given, &defaults),
            StaleWindows {
                while_revalidate: 30,
                if_error: 600
            }
        );
        assert_eq!(
            StaleWindows::from_headers(&HeaderMap::new(), &defaults),
            defaults
        );
        // Manifests stored before the windows existed still decode.
        let old = br#"{"len":1,"etag":null,"last_modified":null,"slice_size":1,"generation":1,"parent":0,"expires_at":0,"vary":[],"headers":[]}"#;
        assert_eq!(
            ObjectManifest::decode(old).unwrap().stale,
            StaleWindows::default()
        );
    }

    #[test]
    fn manifest_round_trips_and_keeps_end_to_end_headers() {
        let h = headers(&[
            ("etag", "\"a\""),
            ("content-length", "2"),
            ("content-range", "bytes 0-1/16"),
            ("content-type", "video/mp4"),
            ("vary", "X-Variant, accept-encoding"),
            (
                "proxy-authentication-info",
                "nextnonce=\"47364c23432d2e131a5fb210812c\"",
            ),
        ]);
        let version = ObjectVersion {
            len: 16,
            etag: Some(HeaderValue::from_static("\"a\"")),
            last_modified: None,
        };
        let m = ObjectManifest::new(&version, 2, &h, Duration::from_secs(5));
        assert_eq!(m.vary, vec!["accept-encoding", "x-variant"]);
        assert_eq!(m.version(), version);
        assert!(m.is_fresh());
        let back = ObjectManifest::decode(&m.encode()).unwrap();
        assert_eq!(back, m);
        let replay = back.header_map();
        assert!(replay.get("content-length").is_none());
        assert!(replay.get("content-range").is_none());
        assert_eq!(replay.get("content-type").unwrap(), "video/mp4");
        assert!(replay.get("proxy-authentication-info").is_none());
        assert!(ObjectManifest::decode(b"not json").is_none());
        // Each manifest draws its own generation.
        let other = ObjectManifest::new(&version, 2, &h, Duration::from_secs(5));
        assert_ne!(other.generation, m.generation);
    }

    /// RFC 9110 6.6.1: an answer stored, or refreshed by a 304, without a
    /// `Date` is stored with the time it was received; the headers a 304
    /// refresh returns (its freshness is judged by them) have none.
    #[test]
    fn an_answer_without_a_date_is_stored_with_the_time_it_came() {
        let version = ObjectVersion {
            len: 16,
            etag: Some(HeaderValue::from_static("\"a\"")),
            last_modified: None,
        };
        let old = "Sun, 06 Nov 1994 08:49:37 GMT";
        let dated = |m: &ObjectManifest| {
            let date = m.header_map().get(header::DATE).cloned().unwrap();
            httpdate::parse_http_date(date.to_str().unwrap()).unwrap()
        };
        let just_now = |t: SystemTime| t.elapsed().unwrap_or_default() < Duration::from_secs(5);
        let mut m = ObjectManifest::new(&version, 2, &HeaderMap::new(), Duration::from_secs(5));
        assert!(just_now(dated(&m)));
        let refreshed = m.update_headers(&headers(&[("date", old)]));
        assert_eq!(refreshed.get(header::DATE).unwrap(), old);
        assert!(!just_now(dated(&m)));
        let refreshed = m.update_headers(&headers(&[("cache-control", "max-age=9")]));
        assert!(refreshed.get(header::DATE).is_none());
        assert!(just_now(dated(&m)));
        assert_eq!(m.header_map().get_all(header::DATE).iter().count(), 1);
    }
}
