//! HTTP/1.1 framing for both sides of the proxy, on monoio-http's codecs.
//!
//! Heads are decoded with monoio-http's `RequestHeadDecoder` and
//! `ResponseHeadDecoder` through a `monoio_codec::FramedRead`; bodies are read
//! through the same framed buffer with [`BodyDecoder`] ([`crate::http::body`]), which hands on bytes as
//! they arrive (monoio-http's own fixed-length payload waits for the whole
//! body, and its encoder drops a Content-Length we set, so heads are written
//! here with [`encode_response_head`] and [`encode_request_head`]).
//!
//! Errors: a head larger than the limit is [`HeadError::TooLarge`]; malformed
//! framing headers are [`Error::BadRequest`] (client) or
//! [`Error::OriginProtocol`] (origin).

use std::io;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::DecodeError;

use crate::error::Error;
pub use crate::http::body::{next_body_chunk, BodyDecoder, BodyFraming};
pub use crate::http::target::{request_host, request_target_form, valid_host};

/// Capacity of a client connection's read buffer (request heads and bodies).
pub const READ_BUFFER: usize = 64 * 1024;

/// Capacity of an origin connection's read buffer. Body bytes are handed on
/// without a copy, so each piece keeps the block it was read into: after
/// the first, `bytes` grows a shared buffer in blocks of 64 KiB whatever
/// this says, and a first block of the same size keeps an idle pooled
/// connection, or a small answer, from holding more.
pub const ORIGIN_READ_BUFFER: usize = 64 * 1024;

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The head is larger than the limit.
    #[error("head larger than {0} bytes")]
    TooLarge(usize),
    /// The head is not valid HTTP/1.x.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Decode(DecodeError::Io(e))
    }
}

/// A head decoder (request or response) that refuses heads over `limit` bytes.
pub struct LimitedHead<D> {
    inner: D,
    limit: usize,
}

impl<D> LimitedHead<D> {
    /// Wrap `inner`, refusing heads longer than `limit` bytes.
    pub fn new(inner: D, limit: usize) -> Self {
        LimitedHead { inner, limit }
    }
}

impl<D: Decoder<Error = DecodeError>> Decoder for LimitedHead<D> {
    type Item = D::Item;
    type Error = HeadError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Decoded<D::Item>, HeadError> {
        // Judge the size before the inner decoder sees the head: monoio-http
        // unwraps header names that `http` refuses (over 65535 bytes), so an
        // oversized name must never reach it.
        let end = memchr::memmem::find(src, b"\r\n\r\n").map(|at| at + 4);
        match end {
            None if src.len() > self.limit => return Err(HeadError::TooLarge(self.limit)),
            None => return Ok(Decoded::Insufficient),
            Some(end) if end > self.limit => return Err(HeadError::TooLarge(self.limit)),
            Some(end) if end > MAX_HEADER_NAME && has_long_name(&src[..end]) => {
                return Err(HeadError::TooLarge(self.limit))
            }
            Some(_) => {}
        }
        let before = src.len();
        match self.inner.decode(src)? {
            Decoded::Some(_) if before - src.len() > self.limit => {
                Err(HeadError::TooLarge(self.limit))
            }
            Decoded::Some(head) => Ok(Decoded::Some(head)),
            _ if before > self.limit => Err(HeadError::TooLarge(self.limit)),
            other => Ok(other),
        }
    }
}

/// Longest header name the `http` crate accepts.
const MAX_HEADER_NAME: usize = 65535;

/// Whether a header line of `head` has a name longer than [`MAX_HEADER_NAME`].
fn has_long_name(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').any(|line| {
        let name_end = line.iter().position(|b| *b == b':').unwrap_or(line.len());
        name_end > MAX_HEADER_NAME
    })
}

/// Framing of a request body (RFC 9112 section 6): conflicting or malformed
/// framing headers, or a last transfer coding other than chunked, are a 400;
/// a coding besides chunked (which edgeslice does not apply) is a 501.
pub fn request_framing(headers: &HeaderMap) -> Result<BodyFraming, Error> {
    let chunked = transfer_chunked(headers).map_err(Error::BadRequest)?;
    if chunked == Some(true) {
        if let Some(other) = transfer_codings(headers).find(|c| !c.eq_ignore_ascii_case("chunked"))
        {
            return Err(Error::NotImplemented(format!(
                "Transfer-Encoding {other:?} (only chunked is supported)"
            )));
        }
    }
    let length = content_length(headers).map_err(Error::BadRequest)?;
    match (chunked, length) {
        (Some(_), Some(_)) => Err(Error::BadRequest(
            "both Content-Length and Transfer-Encoding given".into(),
        )),
        (Some(true), None) => Ok(BodyFraming::Chunked),
        (Some(false), None) => Err(Error::BadRequest(
            "Transfer-Encoding other than chunked".into(),
        )),
        (None, Some(0)) | (None, None) => Ok(BodyFraming::Empty),
        (None, Some(n)) => Ok(BodyFraming::Length(n)),
    }
}

/// Framing of a response body to a request with `method` (RFC 9112 section 6.3).
pub fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<BodyFraming, Error> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::Empty);
    }
    match transfer_chunked(headers).map_err(Error::OriginProtocol)? {
        Some(true) => return Ok(BodyFraming::Chunked),
        Some(false) => return Ok(BodyFraming::UntilClose),
        None => {}
    }
    match content_length(headers).map_err(Error::OriginProtocol)? {
        Some(0) => Ok(BodyFraming::Empty),
        Some(n) => Ok(BodyFraming::Length(n)),
        None => Ok(BodyFraming::UntilClose),
    }
}

/// Every transfer coding named, in order.
fn transfer_codings(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// `Some(true)` when the final transfer coding is chunked, `Some(false)` for another coding.
fn transfer_chunked(headers: &HeaderMap) -> Result<Option<bool>, String> {
    let mut last = None;
    let mut present = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        present = true;
        let text = value
            .to_str()
            .map_err(|_| "Transfer-Encoding is not ASCII".to_string())?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            last = Some(coding.eq_ignore_ascii_case("chunked"));
        }
    }
    if present && last.is_none() {
        // A Transfer-Encoding header naming no coding: framing is ambiguous.
        return Err("empty Transfer-Encoding".to_string());
    }
    Ok(last)
}

/// The Content-Length, if any; differing or malformed values are an error naming them.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().unwrap_or("");
        for part in text.split(',').map(str::trim) {
            let n = part
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<u64>().ok())
                .flatten()
                .filter(|_| !part.is_empty())
                .ok_or_else(|| format!("invalid Content-Length {text:?}"))?;
            if found.is_some_and(|f| f != n) {
                return Err(format!("conflicting Content-Length values {text:?}"));
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Remove hop-by-hop headers, including those the Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Whether the client wants the connection kept open after this exchange.
pub fn wants_keep_alive(version: http::Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == http::Version::HTTP_11 {
        !has("close")
    } else {
        has("keep-alive")
    }
}

/// Append a response head to `out`.
pub fn encode_response_head(status: StatusCode, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    encode_fields(headers.iter(), out);
}

/// Append a request head to `out`, its framing headers as given.
pub fn encode_request_head(method: &Method, target: &str, headers: &HeaderMap, out: &mut Vec<u8>) {
    encode_request_line(method, target, out);
    encode_fields(headers.iter(), out);
}

/// Append the head of a request that has no body to `out`: whatever framing
/// headers `headers` hold are left out, so no Content-Length or
/// Transfer-Encoding can make the receiver wait for (and take the next
/// request on the connection for) a body that is not there. A method other
/// than GET and HEAD says `content-length: 0`, as RFC 9110 section 8.6 asks
/// of a request whose method gives content a meaning.
pub fn encode_bodiless_request_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    out: &mut Vec<u8>,
) {
    encode_request_line(method, target, out);
    let framing =
        |name: &HeaderName| name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
    let fields = headers.iter().filter(|(name, _)| !framing(name));
    if method == Method::GET || method == Method::HEAD {
        encode_fields(fields, out);
    } else {
        let zero = HeaderValue::from_static("0");
        encode_fields(fields.chain([(&header::CONTENT_LENGTH, &zero)]), out);
    }
}

fn encode_request_line(method: &Method, target: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Each field on its line, then the blank line that ends a head.
fn encode_fields<'a>(
    fields: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    out: &mut Vec<u8>,
) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The chunk-size line that precedes `len` bytes of a chunked body.
pub fn chunk_header(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio_http::common::request::RequestHead;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn request_framing_table() {
        use BodyFraming::*;
        // Ok(framing), or Err(status of the refusal).
        let cases: &[(Pairs, Result<BodyFraming, u16>)] = &[
            (&[], Ok(Empty)),
            (&[("content-length", "0")], Ok(Empty)),
            (&[("content-length", "12")], Ok(Length(12))),
            (&[("content-length", "12, 12")], Ok(Length(12))),
            (
                &[("content-length", "12"), ("content-length", "13")],
                Err(400),
            ),
            (&[("content-length", "+12")], Err(400)),
            (&[("content-length", "")], Err(400)),
            (&[("content-length", "1x")], Err(400)),
            (&[("transfer-encoding", "chunked")], Ok(Chunked)),
            (&[("transfer-encoding", "Chunked")], Ok(Chunked)),
            // A coding edgeslice does not apply: 501 (RFC 9112 section 6.1).
            (&[("transfer-encoding", "gzip, chunked")], Err(501)),
            (&[("transfer-encoding", "foo, chunked")], Err(501)),
            (
                &[
                    ("transfer-encoding", "foo"),
                    ("transfer-encoding", "chunked"),
                ],
                Err(501),
            ),
            // Chunked not last: the length cannot be known, 400 (section 6.3).
            (&[("transfer-encoding", "gzip")], Err(400)),
            (&[("transfer-encoding", "chunked, foo")], Err(400)),
            (
                &[("transfer-encoding", " , "), ("content-length", "3")],
                Err(400),
            ),
            (
                &[("transfer-encoding", "chunked"), ("content-length", "3")],
                Err(400),
            ),
        ];
        for (pairs, want) in cases {
            let got = request_framing(&headers(pairs)).map_err(|e| e.status().as_u16());
            assert_eq!(got, *want, "{pairs:?}");
        }
    }

    fn head_of(raw: &str) -> RequestHead {
        use monoio_codec::Decoder;
        let mut buf = BytesMut::from(raw);
        match monoio_http::h1::codec::decoder::RequestHeadDecoder.decode(&mut buf) {
            Ok(Decoded::Some(head)) => head,
            _ => panic!("{raw:?} does not parse"),
        }
    }

    #[test]
    fn host_values_of_rfc_9110() {
        let good = [
            "",
            "h",
            "h.test",
            "H.Test:8080",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:80",
            "a-b_c~d.e",
            "%41b",
            "x!$&'()*+,;=y",
            "h:",
        ];
        for host in good {
            assert!(valid_host(host.as_bytes()), "{host:?} should be valid");
        }
        let bad = [
            "h/evil", "h.test/x", "u@h", "h:8x", "h:123456", "[::1", "[::1]x", "[zz]", "h test",
            "h?q", "h#f", ":80", "%4", "%zz", "h\\x", "a:b:c",
        ];
        for host in bad {
            assert!(!valid_host(host.as_bytes()), "{host:?} should be refused");
        }
    }

    #[test]
    fn request_target_forms() {
        // (request head, Err(status) or Ok(Host afterwards))
        let cases: &[(&str, Result<&str, u16>)] = &[
            ("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", Ok("h")),
            ("GET /a HTTP/1.1\r\n\r\n", Err(400)),
            ("GET /a HTTP/1.0\r\n\r\n", Ok("")),
            ("GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Err(400)),
            ("GET http://t:81/a HTTP/1.1\r\nHost: h\r\n\r\n", Ok("t:81")),
            ("GET http://t/a HTTP/1.1\r\n\r\n", Ok("t")),
            ("GET http://t/a HTTP/1.0\r\n\r\n", Ok("t")),
            ("GET /a HTTP/1.1\r\nHost: h/x\r\n\r\n", Err(400)),
            ("GET http://u@t/a HTTP/1.1\r\n\r\n", Err(400)),
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", Err(400)),
            ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", Ok("h")),
        ];
        for (raw, want) in cases {
            let mut head = head_of(raw);
            let got = request_target_form(&mut head).map_err(|e| e.status().as_u16());
            let host = head
                .headers
                .get(header::HOST)
                .map_or("", |h| h.to_str().unwrap());
            assert_eq!(got.map(|()| host), *want, "{raw:?}");
        }
        let mut head = head_of("GET http://t/a?q HTTP/1.1\r\n\r\n");
        request_target_form(&mut head).unwrap();
        assert_eq!(head.uri.path_and_query().unwrap().as_str(), "/a?q");
    }

    #[test]
    fn response_framing_table() {
        let get = Method::GET;
        let ok = StatusCode::OK;
        let h = headers(&[("content-length", "5")]);
        assert_eq!(
            response_framing(&get, ok, &h).unwrap(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            response_framing(&Method::HEAD, ok, &h).unwrap(),
            BodyFraming::Empty
        );
        assert_eq!(
            response_framing(&get, StatusCode::NOT_MODIFIED, &h).unwrap(),
            BodyFraming::Empty
        );
        assert_eq!(
            response_framing(&get, ok, &HeaderMap::new()).unwrap(),
            BodyFraming::UntilClose
        );
    }

    #[test]
    fn bodiless_request_heads_carry_no_framing() {
        let h = headers(&[
            ("host", "h"),
            ("content-length", "40"),
            ("transfer-encoding", "chunked"),
            ("x-a", "1"),
        ]);
        let head = |method: Method| {
            let mut out = Vec::new();
            encode_bodiless_request_head(&method, "/x", &h, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            head(Method::GET),
            "GET /x HTTP/1.1\r\nhost: h\r\nx-a: 1\r\n\r\n"
        );
        assert_eq!(
            head(Method::HEAD),
            "HEAD /x HTTP/1.1\r\nhost: h\r\nx-a: 1\r\n\r\n"
        );
        assert_eq!(
            head(Method::POST),
            "POST /x HTTP/1.1\r\nhost: h\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = headers(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-variant", "a"),
            ("etag", "\"e\""),
        ]);
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-variant", "etag"]);
    }

    #[test]
    fn keep_alive_by_version() {
        use http::Version;
        assert!(wants_keep_alive(Version::HTTP_11, &HeaderMap::new()));
        assert!(!wants_keep_alive(
            Version::HTTP_11,
            &headers(&[("connection", "Close")])
        ));
        assert!(!wants_keep_alive(Version::HTTP_10, &HeaderMap::new()));
        assert!(wants_keep_alive(
            Version::HTTP_10,
            &headers(&[("connection", "keep-alive")])
        ));
    }
}
