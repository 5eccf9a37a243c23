//! An answer's caching directives as written (RFC 9111 5.2.2, RFC 9213):
//! `CDN-Cache-Control` when it is a valid Structured Field Dictionary, else
//! `Cache-Control`, read into [`Directives`]. The grammar only: what the
//! directives mean for storing and reuse is decided in
//! [`crate::cache::freshness`].

use http::{header, HeaderMap};

/// The targeted cache-control field of CDNs (RFC 9213).
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The caching directives an answer carries, lower-case, each as `name` or
/// `name=value` (a quoted value keeps its quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives(Vec<String>);

impl Directives {
    /// RFC 9213's `CDN-Cache-Control` when it is valid (a CDN, a cache like
    /// this one, follows it and ignores `Cache-Control`), else
    /// `Cache-Control`.
    pub fn from_headers(headers: &HeaderMap) -> Directives {
        Directives(cdn_directives(headers).unwrap_or_else(|| {
            headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(split_directives)
                .map(|d| d.trim().to_ascii_lowercase())
                .collect()
        }))
    }

    /// Whether `name` is there, bare or with a value.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|d| {
            d.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    }

    /// Whether `name` is there in its unqualified form: bare, or with a
    /// value that names no field (RFC 9111 5.2.2.4, 5.2.2.7: the qualified
    /// form of `no-cache` and `private` limits only the fields it lists). A
    /// value that is not a field list counts as unqualified.
    pub fn has_unqualified(&self, name: &str) -> bool {
        let field = |f: &str| {
            !f.is_empty()
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        self.0.iter().any(|d| match d.strip_prefix(name) {
            Some("") => true,
            Some(rest) => rest.strip_prefix('=').is_some_and(|value| {
                let mut names = value
                    .trim_matches('"')
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .peekable();
                names.peek().is_none() || !names.all(field)
            }),
            None => false,
        })
    }

    /// The field names a qualified `name="a, b"` lists, lower-case; empty
    /// when `name` is absent or bare, or lists nothing.
    pub fn listed(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|d| d.strip_prefix(name)?.strip_prefix('='))
            .flat_map(|v| v.trim_matches('"').split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// The first `name=N` (RFC 9111 1.2.2 delta-seconds, or the same in
    /// double quotes): `None` without one, `Some(None)` when its value is
    /// invalid (negative, single-quoted, a word), a number too large for
    /// 64 bits the largest there is.
    pub fn seconds(&self, name: &str) -> Option<Option<u64>> {
        self.0.iter().find_map(|d| {
            let value = d.strip_prefix(name)?.strip_prefix('=')?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let valid = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            Some(valid.then(|| value.parse::<u64>().unwrap_or(u64::MAX)))
        })
    }
}

/// The directives of `CDN-Cache-Control` (RFC 9213), as `name` or
/// `name=value`; `None` when there is none, or when it is not a valid
/// Structured Field Dictionary (RFC 9651) whose `max-age` and `s-maxage`
/// are integers: then `Cache-Control` decides, as if it were absent.
fn cdn_directives(headers: &HeaderMap) -> Option<Vec<String>> {
    let lines: Vec<&str> = headers
        .get_all(CDN_CACHE_CONTROL)
        .iter()
        .map(|v| v.to_str())
        .collect::<Result<_, _>>()
        .ok()?;
    let joined = lines.join(", ");
    if joined.trim().is_empty() {
        return None;
    }
    let dict: sfv::Dictionary = sfv::Parser::new(joined.as_str()).parse().ok()?;
    let mut out = Vec::with_capacity(dict.len());
    for (key, entry) in &dict {
        let sfv::ListEntry::Item(item) = entry else {
            return None;
        };
        let name = key.as_str();
        match name {
            "max-age" | "s-maxage" => {
                let n: i64 = item.bare_item.as_integer()?.into();
                out.push(format!("{name}={n}"));
            }
            _ if item.bare_item.as_boolean() == Some(true) => out.push(name.to_string()),
            // `no-cache="a"`, `private="a"`: the fields they name.
            _ => match item.bare_item.as_string() {
                Some(fields) => out.push(format!("{name}=\"{}\"", fields.as_str())),
                None => out.push(format!("{name}=")),
            },
        }
    }
    Some(out)
}

/// The comma-separated directives of one `Cache-Control` line, a comma
/// inside a quoted string kept (`no-cache="a, b"` is one directive,
/// RFC 9111 5.2: `token [ "=" ( token / quoted-string ) ]`).
pub fn split_directives(line: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    line.split(move |c| {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return true,
            _ => {}
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one directive with a comma inside its quotes is one.
    #[test]
    fn a_comma_inside_quotes_does_not_split() {
        let split: Vec<&str> =
            split_directives("no-cache=\"a, b\", max-age=5, x=\"\\\",\"").collect();
        assert_eq!(split, ["no-cache=\"a, b\"", " max-age=5", " x=\"\\\",\""]);
    }
}
