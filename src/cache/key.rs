//! Cache keys: which object a request names, and where its slices live.
//!
//! An object is named by the request's host, path and query; when the origin
//! answers with `Vary`, the values of the request headers it names are added,
//! so each variant is its own object. A slice key adds the manifest's
//! generation and the slice index to that.

use http::HeaderMap;
use monoio_http::common::request::RequestHead;

/// `target` as a cache key sees it: without the query parameters named in
/// `drop` (`"*"`: the whole query). The origin is still asked the full
/// target; the first answer then stands for every query that drops to
/// the same key.
///
/// ```
/// use edgeslice::cache::key::key_target;
/// let drop = ["utm_source".to_string(), "t".to_string()];
/// assert_eq!(key_target("/v.mp4?t=9&q=1&utm_source=x", &drop), "/v.mp4?q=1");
/// assert_eq!(key_target("/v.mp4?t=9", &drop), "/v.mp4");
/// assert_eq!(key_target("/v.mp4?t=9", &["*".to_string()]), "/v.mp4");
/// assert_eq!(key_target("/v.mp4?a=1", &[]), "/v.mp4?a=1");
/// ```
pub fn key_target<'a>(target: &'a str, drop: &[String]) -> std::borrow::Cow<'a, str> {
    let Some((path, query)) = target.split_once('?') else {
        return target.into();
    };
    if drop.is_empty() {
        return target.into();
    }
    if drop.iter().any(|d| d == "*") {
        return path.into();
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|param| {
            let name = param.split_once('=').map_or(*param, |(n, _)| n);
            !drop.iter().any(|d| d == name)
        })
        .collect();
    match kept.is_empty() {
        true => path.into(),
        false => format!("{path}?{}", kept.join("&")).into(),
    }
}

/// The cache name of one object (or one variant of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Host (lower-case; an absolute-form target's is in Host) + path + query.
    pub fn from_request(req: &RequestHead, target: &str) -> ObjectKey {
        ObjectKey::new(crate::http::h1::request_host(req), target)
    }

    /// The object `host` (lower-cased) and `target` name. Host is checked
    /// to hold no `/` and a target starts with one
    /// ([`crate::http::h1::request_target_form`]): two (host, target) pairs
    /// never make one key.
    pub fn new(host: &str, target: &str) -> ObjectKey {
        let mut key = String::with_capacity(host.len() + target.len());
        key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        key.push_str(target);
        ObjectKey(key)
    }

    /// The variant of this object selected by `vary` names in `headers`.
    /// A field's lines are taken as one list (RFC 9111 4.1: lines combined,
    /// the whitespace around commas left out, so `a, b` and `a,b` and the
    /// lines `a` and `b` choose one variant); a value that is not UTF-8 is
    /// kept as `\u{1}` and its bytes in hex: a header value never holds
    /// `\u{1}`, so two different values never make one key. The values of
    /// fields whose tokens are case-insensitive (language tags, RFC 9110
    /// 12.5.4; content codings, 8.4.1; and their `q` parameters) are taken
    /// in lower case: `en-US` and `en-us` choose one variant.
    pub fn variant(&self, vary: &[String], headers: &HeaderMap) -> ObjectKey {
        use std::fmt::Write;
        let mut key = self.0.clone();
        for name in vary {
            key.push('\u{0}');
            key.push_str(name);
            key.push('=');
            let fold = CASE_INSENSITIVE.contains(&name.as_str());
            for value in headers.get_all(name.as_str()) {
                match std::str::from_utf8(value.as_bytes()) {
                    Ok(text) if fold => push_list(&mut key, &text.to_ascii_lowercase()),
                    Ok(text) => push_list(&mut key, text),
                    Err(_) => {
                        key.push('\u{1}');
                        for b in value.as_bytes() {
                            let _ = write!(key, "{b:02x}");
                        }
                    }
                }
                key.push(',');
            }
        }
        ObjectKey(key)
    }

    /// Where this object's manifest is stored.
    pub fn manifest_key(&self) -> String {
        format!("m|{}", self.0)
    }

    /// Where slice `index` of the manifest with `generation` is stored.
    pub fn slice_key(&self, generation: u64, index: u64) -> String {
        format!("s|{generation:016x}|{index}|{}", self.0)
    }

    /// The id slice `index` of the manifest with `generation` is indexed
    /// under: [`crate::cache::store::slice_id`] of [`ObjectKey::slice_key`], the
    /// key written on the stack rather than the heap when it is of usual
    /// length (a hit looks up each of its slices by it).
    pub fn slice_id(&self, generation: u64, index: u64) -> u128 {
        use std::fmt::Write;
        let mut text = StackText::default();
        match write!(text, "s|{generation:016x}|{index}|{}", self.0) {
            Ok(()) => crate::cache::store::hash_key(text.as_bytes()),
            Err(_) => crate::cache::store::slice_id(&self.slice_key(generation, index)),
        }
    }

    /// The key as text, for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text written into a fixed buffer; writing past its end fails.
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Request fields (named lower case, as `Vary` names are kept) whose
/// values are compared without case.
const CASE_INSENSITIVE: [&str; 3] = ["accept-language", "accept-encoding", "accept-charset"];

/// A field line's list elements, the whitespace around its commas left out.
fn push_list(key: &mut String, text: &str) {
    let mut elements = text.split(',').map(|e| e.trim_matches([' ', '\t']));
    key.push_str(elements.next().unwrap_or_default());
    for element in elements {
        key.push(',');
        key.push_str(element);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(host: Option<&str>, uri: &str, extra: &[(&str, &str)]) -> RequestHead {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_name_host_path_query_variant_and_slice() {
        let a = ObjectKey::from_request(&head(Some("Edge.Example"), "/v?a=1", &[]), "/v?a=1");
        assert_eq!(a.as_str(), "edge.example/v?a=1");
        let b = ObjectKey::from_request(&head(Some("edge.example"), "/v?a=2", &[]), "/v?a=2");
        assert_ne!(a, b);
        // An absolute-form target names the host (the server copies it to Host first).
        let mut absolute = head(None, "http://h:81/v", &[]);
        crate::http::h1::request_target_form(&mut absolute).unwrap();
        let c = ObjectKey::from_request(&absolute, "/v");
        assert_eq!(c.as_str(), "h:81/v");

        let vary = vec!["x-variant".to_string()];
        let blue = head(Some("h"), "/v", &[("x-variant", "blue")]);
        let red = head(Some("h"), "/v", &[("x-variant", "red")]);
        let base = ObjectKey::from_request(&blue, "/v");
        let kb = base.variant(&vary, &blue.headers);
        let kr = base.variant(&vary, &red.headers);
        assert_ne!(kb, kr);
        assert_eq!(kb, base.variant(&vary, &blue.headers));

        // Values that are not UTF-8 are told apart (they were all U+FFFD).
        let raw = |bytes: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("x-variant", http::HeaderValue::from_bytes(bytes).unwrap());
            base.variant(&vary, &h)
        };
        assert_ne!(raw(b"\xff"), raw(b"\xfe"));
        assert_ne!(raw(b"\xff"), raw("\u{fffd}".as_bytes()));
        assert_eq!(raw(b"red"), kr, "UTF-8 values keep their keys");
        // One list however it is written (RFC 9111 4.1).
        let lines = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-variant", http::HeaderValue::from_str(v).unwrap());
            }
            base.variant(&vary, &h)
        };
        assert_eq!(lines(&["a, b"]), lines(&["a,b"]));
        assert_eq!(lines(&["a,\tb "]), lines(&["a", "b"]));
        assert_ne!(lines(&["a,b"]), lines(&["ab"]));
        assert_ne!(lines(&["a b"]), lines(&["ab"]));
        // Language tags and codings without case; other values with it.
        let fields = |name: &str, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
            base.variant(&[name.to_string()], &h)
        };
        let lang = "accept-language";
        assert_eq!(
            fields(lang, "en-US, De;Q=0.5"),
            fields(lang, "en-us,de;q=0.5")
        );
        assert_ne!(fields(lang, "en, de"), fields(lang, "de, en"));
        let coding = "accept-encoding";
        assert_eq!(fields(coding, "GZIP, br"), fields(coding, "gzip, br"));
        assert_ne!(fields("x-variant", "Red"), fields("x-variant", "red"));

        // The id written on the stack is the id of the key, short or long.
        for key in [a.clone(), ObjectKey::new("h", &"/long".repeat(200))] {
            for (generation, index) in [(0, 0), (u64::MAX, 7), (1, u64::MAX)] {
                let text = key.slice_key(generation, index);
                assert_eq!(
                    key.slice_id(generation, index),
                    crate::cache::store::slice_id(&text)
                );
            }
        }
        assert_ne!(a.slice_key(1, 0), a.slice_key(2, 0));
        assert_ne!(a.slice_key(1, 0), a.slice_key(1, 1));
        assert_ne!(a.manifest_key(), a.slice_key(0, 0));
    }
}
