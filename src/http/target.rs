//! The request's target and Host (RFC 9112 section 3.2, RFC 9110 section
//! 7.2): which (host, target) pair a request names, checked before a route,
//! a cache key or an origin sees it. Pure functions; a bad pair is an
//! [`Error::BadRequest`].

use http::{header, HeaderValue, Method, Version};
use monoio_http::common::request::RequestHead;

use crate::error::Error;

/// Check the request line and Host (RFC 9112 section 3.2): an HTTP/1.1
/// request must carry a Host, none may carry two, and a Host must be
/// `host[:port]` ([`valid_host`]); an absolute-form target
/// (`GET http://host/path`) names the host itself, and that wins over any
/// Host header, which is rewritten to it (as nginx does). A GET or HEAD
/// target is a path (`/...`). Together these make host + target name one
/// (host, target) pair only: a Host holds no `/`, and a target starts with one.
pub fn request_target_form(head: &mut RequestHead) -> Result<(), Error> {
    let hosts = head.headers.get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(Error::BadRequest("more than one Host header".into()));
    }
    if let Some(authority) = head.uri.authority() {
        let host = HeaderValue::from_str(authority.as_str())
            .ok()
            .filter(|h| valid_host(h.as_bytes()))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "invalid authority {:?} in the request target: expected host[:port]",
                    authority.as_str()
                ))
            })?;
        head.headers.insert(header::HOST, host);
    } else if let Some(host) = head.headers.get(header::HOST) {
        if !valid_host(host.as_bytes()) {
            return Err(Error::BadRequest(format!(
                "invalid Host {:?}: expected host[:port]",
                String::from_utf8_lossy(host.as_bytes())
            )));
        }
    } else if head.version == Version::HTTP_11 {
        return Err(Error::BadRequest("HTTP/1.1 request without Host".into()));
    }
    let path = head.uri.path_and_query().map(|p| p.as_str());
    if path.is_none() && head.method != Method::OPTIONS {
        return Err(Error::BadRequest("request target is not a path".into()));
    }
    let bodiless = head.method == Method::GET || head.method == Method::HEAD;
    if bodiless && !path.is_some_and(|p| p.starts_with('/')) {
        return Err(Error::BadRequest(format!(
            "request target {:?} of a {}: expected a path starting with /",
            path.unwrap_or(""),
            head.method
        )));
    }
    // The path routes, rules, keys and the origin see: normalised, so dot
    // segments and escaped dots cannot walk around a rule (and an
    // absolute-form target becomes origin-form, its host now in Host).
    if let Some(target) = path.filter(|p| p.starts_with('/')) {
        let normal = crate::http::path::normalize(target);
        if normal != target || head.uri.authority().is_some() {
            head.uri = normal
                .parse()
                .map_err(|_| Error::BadRequest(format!("request target {target:?}")))?;
        }
    }
    Ok(())
}

/// Whether `host` is a Host field value of RFC 9110 section 7.2: `uri-host
/// [":" port]`, where uri-host is an IP-literal (`[v6]`), or a reg-name
/// (letters, digits, `-._~`, `%XX`, `!$&'()*+,;=`; an IPv4 address is
/// one), and port is digits. An empty value (no authority) is allowed.
pub fn valid_host(host: &[u8]) -> bool {
    let (name, port) = match host.strip_prefix(b"[") {
        Some(rest) => match memchr::memchr(b']', rest) {
            Some(end) => {
                let literal = std::str::from_utf8(&rest[..end]).ok();
                if literal.is_none_or(|l| l.parse::<std::net::Ipv6Addr>().is_err()) {
                    return false;
                }
                match &rest[end + 1..] {
                    [] => return true,
                    [b':', port @ ..] => (&b"v6"[..], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        },
        None => match memchr::memrchr(b':', host) {
            Some(at) => (&host[..at], Some(&host[at + 1..])),
            None => (host, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    let name_ok = match port {
        Some(_) => !name.is_empty() && reg_name(name),
        None => reg_name(name),
    };
    port_ok && name_ok
}

/// RFC 3986 reg-name: unreserved, pct-encoded and sub-delims only.
fn reg_name(name: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        match name[at] {
            b'%' => {
                let hex = name.get(at + 1..at + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                at += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        at += 1;
    }
    true
}

/// The host a request names: its Host header (an absolute-form target has
/// been copied there by [`request_target_form`]), or "" when it has none.
pub fn request_host(head: &RequestHead) -> &str {
    head.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}
