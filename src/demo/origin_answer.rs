//! The built-in origin's answers: the URL's mode and query pick the object,
//! its validators and the fault to inject (`fail=N`, `cut=N`, `flaky=P`, the
//! `*-changes` modes, `shift`, `truncate`...), and conditionals get 304 or 412.
//! A child of `origin`; the reply is written by `origin_wire.rs`.

use std::thread;
use std::time::Duration;

use super::super::content::{fnv1a, imf_fixdate, RangeSpec};
use super::wire::{Body, Reply};
use super::{lock, versioned_name, OriginRequest, Shared};

/// Longest `delay_ms` honoured, so a typo cannot hang a test for hours.
const MAX_DELAY_MS: u64 = 60_000;
/// `Tue, 15 Nov 1994 08:12:31 GMT` as Unix seconds.
pub(crate) const BASE_LAST_MODIFIED: u64 = 784_887_151;

/// The object-serving modes, named as in the URL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Obj,
    NoRange,
    EtagChanges,
    LmChanges,
    LenChanges,
    Truncate,
    Shift,
    NoContentRange,
    NoLength,
    Chunked,
    Stall,
    Mutable,
}

impl Mode {
    fn parse(segment: &str) -> Option<Mode> {
        Some(match segment {
            "obj" => Mode::Obj,
            "norange" => Mode::NoRange,
            "etag-changes" => Mode::EtagChanges,
            "lm-changes" => Mode::LmChanges,
            "len-changes" => Mode::LenChanges,
            "truncate" => Mode::Truncate,
            "shift" => Mode::Shift,
            "nocr" => Mode::NoContentRange,
            "nolen" => Mode::NoLength,
            "chunked" => Mode::Chunked,
            "stall" => Mode::Stall,
            "mut" => Mode::Mutable,
            _ => return None,
        })
    }
}

/// The value of query parameter `key` in `target`.
fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// 304 for a GET whose If-None-Match names the ETag, or whose
/// If-Modified-Since is the Last-Modified exactly.
fn conditional_reply(request: &OriginRequest, headers: &[(&'static str, String)]) -> Option<Reply> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    // If-Match / If-Unmodified-Since that do not hold: 412 (RFC 9110 13.1.1, 13.1.4).
    let match_fails = matches!(request.header("if-match"), Some(tag) if Some(tag) != find("ETag"));
    let unmodified_fails = request.header("if-match").is_none()
        && matches!(request.header("if-unmodified-since"), Some(d) if Some(d) != find("Last-Modified"));
    if match_fails || unmodified_fails {
        return Some(Reply::text(412, "precondition failed\n"));
    }
    let etag_matches =
        matches!((request.header("if-none-match"), find("ETag")), (Some(a), Some(b)) if a == b);
    let date_matches = request.header("if-none-match").is_none()
        && matches!((request.header("if-modified-since"), find("Last-Modified")), (Some(a), Some(b)) if a == b);
    if !(etag_matches || date_matches) {
        return None;
    }
    let kept = headers
        .iter()
        .filter(|(n, _)| {
            matches!(
                *n,
                "ETag" | "Last-Modified" | "Cache-Control" | "X-Origin-Request"
            )
        })
        .cloned()
        .collect();
    Some(Reply {
        status: 304,
        headers: kept,
        content_length: None,
        body: Body::Bytes(Vec::new()),
        close: false,
    })
}

/// The mid-body pause `stall_ms` asks for (any object mode).
pub(super) fn stall_of(target: &str) -> Option<Duration> {
    query_param(target, "stall_ms")
        .and_then(|value| value.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(MAX_DELAY_MS)))
}

/// Routes one request to its mode, after the optional `delay_ms` sleep.
pub(super) fn answer(shared: &Shared, request: &OriginRequest) -> Reply {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let number = {
        let mut counts = lock(&shared.path_counts);
        let n = counts.entry(path.to_string()).or_insert(0);
        *n += 1;
        *n
    };
    let delay = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "delay_ms")
        .and_then(|(_, value)| value.parse::<u64>().ok());
    if let Some(ms) = delay {
        thread::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS)));
    }
    let mut segments = path.strip_prefix('/').unwrap_or(path).splitn(3, '/');
    let (mode, len, name) = (
        segments.next().unwrap_or(""),
        segments.next(),
        segments.next(),
    );
    match (mode, len, name) {
        ("echo", _, _) => echo_reply(request),
        ("status", Some(code), _) => {
            let mut reply = status_reply(code);
            if let Some(cc) = query_param(&request.target, "cc") {
                reply.headers.push(("Cache-Control", cc.to_string()));
            }
            reply
                .headers
                .extend(relative_dates(&request.target, &DATES));
            if query_param(&request.target, "numbered") == Some("1") {
                reply.headers.push(("X-Origin-Request", number.to_string()));
            }
            reply
        }
        (mode, Some(len), Some(name)) => match (Mode::parse(mode), len.parse::<u64>()) {
            (Some(mode), Ok(len)) => {
                if let Some(failure) = injected_failure(&request.target, number) {
                    return failure;
                }
                let version = lock(&shared.versions).get(name).copied().unwrap_or(0);
                let mut reply = object_reply(mode, len, name, number, version, request);
                if wants_cut(&request.target, number) {
                    cut_short(&mut reply);
                }
                reply
            }
            _ => Reply::text(404, "not found\n"),
        },
        _ => Reply::text(404, "not found\n"),
    }
}

/// `fail=N` (first N requests to the path answer `fail_status`, default 503)
/// and `flaky=P` (each request fails with P% chance, half of those as a 503).
fn injected_failure(target: &str, number: u64) -> Option<Reply> {
    let number_param = |key| query_param(target, key).and_then(|v| v.parse::<u64>().ok());
    let status = number_param("fail_status").unwrap_or(503) as u16;
    if number_param("fail").is_some_and(|n| number <= n) {
        return Some(Reply::text(status, "injected failure\n"));
    }
    let flaky = number_param("flaky").unwrap_or(0);
    if flaky > 0 && fastrand::u64(0..200) < flaky {
        return Some(Reply::text(503, "injected failure\n"));
    }
    None
}

/// `cut=N`: the first N requests to the path get their body cut in half;
/// `flaky=P` cuts the other half of its failures.
fn wants_cut(target: &str, number: u64) -> bool {
    let number_param = |key| query_param(target, key).and_then(|v| v.parse::<u64>().ok());
    let flaky = number_param("flaky").unwrap_or(0);
    number_param("cut").is_some_and(|n| number <= n) || (flaky > 0 && fastrand::u64(0..200) < flaky)
}

/// Send half the body announced, then close (the `truncate` fault).
fn cut_short(reply: &mut Reply) {
    if let Body::Object { count, .. } = &mut reply.body {
        *count /= 2;
        reply.close = true;
    }
}

fn echo_reply(request: &OriginRequest) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type", "application/octet-stream".into()),
            ("X-Echo-Method", request.method.clone()),
            ("X-Echo-Target", request.target.clone()),
            ("X-Echo-Body-Len", request.body.len().to_string()),
        ],
        content_length: Some(request.body.len() as u64),
        body: Body::Bytes(request.body.clone()),
        close: false,
    }
}

/// The query's relative dates: `date=N`, `expires=N`, `lm=N`.
const DATES: [(&str, &str); 3] = [
    ("date", "Date"),
    ("expires", "Expires"),
    ("lm", "Last-Modified"),
];

/// Of `Date`, `Expires` and `Last-Modified` (`LM`: not on objects, which
/// have their own), those the query asks for with `date=N`, `expires=N`,
/// `lm=N`: N seconds from now (may be negative).
fn relative_dates(target: &str, fields: &[(&str, &'static str)]) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    fields
        .iter()
        .filter_map(|&(key, name)| {
            let offset = query_param(target, key)?.parse::<i64>().ok()?;
            Some((name, imf_fixdate(now.saturating_add(offset).max(0) as u64)))
        })
        .collect()
}

fn status_reply(code: &str) -> Reply {
    match code.parse::<u16>() {
        Ok(status @ (204 | 304)) => Reply {
            status,
            headers: Vec::new(),
            content_length: None,
            body: Body::Bytes(Vec::new()),
            close: false,
        },
        Ok(status @ 200..=599) => Reply::text(status, &format!("status {status}\n")),
        _ => Reply::text(404, "not found\n"),
    }
}

/// The 200 of `unsafe=ok`. With `cl=self` (the target as received), `cl=abs`
/// (the same as an absolute URI, on the request's Host) or `cl=VALUE`, it
/// carries that `Content-Location` and the `cc` query's `Cache-Control`
/// (`max-age=3600` by default, `cc=none` none): a POST answer a cache may
/// store for later GETs of its target (RFC 9110 9.3.3). With `loc=VALUE`
/// it carries that `Location` (a cache invalidates what it names, RFC 9111
/// 4.4).
fn unsafe_done(request: &OriginRequest) -> Reply {
    let mut reply = Reply::text(200, &format!("{} done\n", request.method));
    if let Some(location) = query_param(&request.target, "loc") {
        reply.headers.push(("Location", location.to_string()));
    }
    let Some(cl) = query_param(&request.target, "cl") else {
        return reply;
    };
    let location = match cl {
        "self" => request.target.clone(),
        "abs" => format!(
            "http://{}{}",
            request.header("host").unwrap_or(""),
            request.target
        ),
        other => other.to_string(),
    };
    reply.headers.push(("Content-Location", location));
    match query_param(&request.target, "cc") {
        Some("none") => {}
        cc => reply
            .headers
            .push(("Cache-Control", cc.unwrap_or("max-age=3600").into())),
    }
    reply
}

/// Serves an object in `mode`; `number` is this path's request number (from 1).
fn object_reply(
    mode: Mode,
    len: u64,
    name: &str,
    number: u64,
    version: u64,
    request: &OriginRequest,
) -> Reply {
    if request.method != "GET" && request.method != "HEAD" {
        if query_param(&request.target, "unsafe") == Some("ok") {
            return unsafe_done(request);
        }
        let mut reply = Reply::text(405, "method not allowed\n");
        reply.headers.push(("Allow", "GET, HEAD".into()));
        return reply;
    }
    let len = if mode == Mode::LenChanges {
        len.saturating_add(number)
    } else {
        len
    };
    let (name_hash, last_modified) = match mode {
        Mode::Mutable => (
            fnv1a(&versioned_name(name, version)),
            BASE_LAST_MODIFIED + 1000 * version,
        ),
        Mode::LmChanges => (fnv1a(name), BASE_LAST_MODIFIED + number),
        _ => (fnv1a(name), BASE_LAST_MODIFIED),
    };
    let cache_control = query_param(&request.target, "cc").unwrap_or("max-age=3600");
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Last-Modified", imf_fixdate(last_modified)),
        (
            "X-Origin-Variant",
            request.header("x-variant").unwrap_or("none").to_string(),
        ),
    ];
    match mode {
        Mode::Chunked => {
            return Reply {
                status: 200,
                headers,
                content_length: None,
                body: Body::Chunked { name_hash, len },
                close: false,
            };
        }
        Mode::EtagChanges => headers.push(("ETag", format!("\"v{number}-{len:x}-{name_hash:x}\""))),
        _ => headers.push(("ETag", format!("\"{len:x}-{name_hash:x}\""))),
    }
    if cache_control != "none" {
        headers.push(("Cache-Control", cache_control.to_string()));
    }
    // Dates relative to now, in seconds (may be negative), and a raw Age.
    headers.extend(relative_dates(&request.target, &DATES[..2]));
    if let Some(age) = query_param(&request.target, "age") {
        headers.push(("Age", age.to_string()));
    }
    if query_param(&request.target, "numbered") == Some("1") {
        headers.push(("X-Origin-Request", number.to_string()));
    }
    if let Some(cdn) = query_param(&request.target, "cdn") {
        headers.push(("CDN-Cache-Control", cdn.to_string()));
    }
    if let Some(range) = query_param(&request.target, "cr").filter(|_| mode == Mode::NoRange) {
        headers.push(("Content-Range", range.to_string()));
    }
    if let Some(vary) = query_param(&request.target, "vary") {
        headers.push(("Vary", vary.to_string()));
    }
    match query_param(&request.target, "validators") {
        Some("none") => headers.retain(|(name, _)| *name != "ETag" && *name != "Last-Modified"),
        Some("etag") => headers.retain(|(name, _)| *name != "Last-Modified"),
        _ => {}
    }
    if let Some(not_modified) = conditional_reply(request, &headers) {
        return not_modified;
    }
    headers.push(("Accept-Ranges", "bytes".into()));
    let range = match mode {
        Mode::NoRange => None,
        _ => request.range.as_deref().and_then(RangeSpec::parse),
    };
    let Some(range) = range else {
        // Full object; `truncate` sends half of it and closes.
        let sent = if mode == Mode::Truncate { len / 2 } else { len };
        let body = Body::Object {
            name_hash,
            first: 0,
            count: sent,
        };
        return Reply {
            status: 200,
            headers,
            content_length: Some(len),
            body,
            close: mode == Mode::Truncate,
        };
    };
    let Some((first, last)) = range.resolve(len) else {
        headers.push(("Content-Range", format!("bytes */{len}")));
        return Reply {
            status: 416,
            headers,
            content_length: Some(0),
            body: Body::Bytes(Vec::new()),
            close: false,
        };
    };
    let (first, last) = if mode == Mode::Shift {
        shifted(first, last, len)
    } else {
        (first, last)
    };
    // Another range than the one asked, as some origins answer: `widen=N`
    // N bytes more on each side, `cap=N` at most N bytes (its first N).
    let number = |key| query_param(&request.target, key).and_then(|v| v.parse::<u64>().ok());
    let (first, last) = match number("widen") {
        Some(n) => (first.saturating_sub(n), last.saturating_add(n).min(len - 1)),
        None => (first, last),
    };
    let last = match number("cap").filter(|n| *n > 0) {
        Some(n) => last.min(first + n - 1),
        None => last,
    };
    match mode {
        Mode::NoContentRange => {}
        // The origin does not say how long the object is.
        Mode::NoLength => headers.push(("Content-Range", format!("bytes {first}-{last}/*"))),
        _ => headers.push(("Content-Range", format!("bytes {first}-{last}/{len}"))),
    }
    let count = last - first + 1;
    let sent = if mode == Mode::Truncate {
        count / 2
    } else {
        count
    };
    let body = Body::Object {
        name_hash,
        first,
        count: sent,
    };
    Reply {
        status: 206,
        headers,
        content_length: Some(count),
        body,
        close: mode == Mode::Truncate,
    }
}

/// The `shift` fault: one byte later (end clipped to the object), or one byte
/// earlier when the range is only the last byte.
fn shifted(first: u64, last: u64, len: u64) -> (u64, u64) {
    if first + 1 < len {
        (first + 1, (last + 1).min(len - 1))
    } else {
        (first.saturating_sub(1), last.saturating_sub(1))
    }
}
