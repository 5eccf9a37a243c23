//! The request path as routes, slicing rules and cache keys see it, and as
//! the origin is asked for it: normalised per RFC 3986 section 6.2.2, so
//! `/vod/../live/x` and `/vod/%2e%2e/live/x` are `/live/x` everywhere (an
//! exclude rule for `/live/*` cannot be walked around, and one object has
//! one key). Percent-encoded unreserved characters are decoded, other
//! escapes get upper-case hex, and dot segments are removed (section
//! 5.2.4); the query is left as it is.
//!
//! ```
//! use edgeslice::http::path::normalize;
//! assert_eq!(normalize("/vod/../live/x?a=%2e"), "/live/x?a=%2e");
//! assert_eq!(normalize("/vod/%2E%2e/live/%7Ex"), "/live/~x");
//! assert_eq!(normalize("/a/b%2fc"), "/a/b%2Fc");
//! assert_eq!(normalize("/plain/path"), "/plain/path");
//! ```

use std::borrow::Cow;

/// `target` (a path and optional query) with its path normalised.
pub fn normalize(target: &str) -> Cow<'_, str> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let clean = !path.contains('%') && !has_dot_segment(path);
    if clean {
        return target.into();
    }
    let decoded = decode_unreserved(path);
    let mut out = remove_dot_segments(&decoded);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out.into()
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// `%XX` of an unreserved character (ALPHA, DIGIT, `-._~`) decoded; any
/// other escape kept, its hex upper-cased.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3);
        let value = hex
            .filter(|_| bytes[at] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match value {
            Some(v) if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => {
                out.push(v as char);
                at += 3;
            }
            Some(v) => {
                out.push_str(&format!("%{v:02X}"));
                at += 3;
            }
            None => {
                // Not an escape: the byte as it is (the path is ASCII or UTF-8).
                let ch = path[at..].chars().next().expect("in bounds");
                out.push(ch);
                at += ch.len_utf8();
            }
        }
    }
    out
}

/// RFC 3986 section 5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                kept.pop();
                trailing_slash = i == last;
            }
            s => {
                kept.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_as_rfc_3986_says() {
        let cases = [
            ("/", "/"),
            ("/a/b/c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../a", "/a"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/a//b", "/a//b"),
            ("/%2e%2e/x", "/x"),
            ("/a/%2E/b", "/a/b"),
            ("/%61%62c", "/abc"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%20b", "/a%20b"),
            ("/a%3a", "/a%3A"),
            ("/a%zz", "/a%zz"),
            ("/a%2", "/a%2"),
            ("/é/../x", "/x"),
            ("/a/../b?c=../d", "/b?c=../d"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }
}
