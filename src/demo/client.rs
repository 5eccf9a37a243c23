//! A tiny blocking HTTP/1.1 client for `edgeslice demo` and the tests.
//!
//! It talks over a raw [`TcpStream`] so a test sees exactly what was sent and
//! exactly what came back, including a body cut short: such a response is
//! returned as `Ok` with [`HttpResponse::complete`] set to `false` and the bytes
//! that did arrive. [`HttpConnection`] keeps one connection open for many
//! requests (keep-alive); [`get`] is a single GET on a fresh connection.
//!
//! Body framing follows RFC 9110/9112: nothing after HEAD, 1xx, 204 or 304;
//! otherwise chunked, then `Content-Length`, else read to EOF. Errors are plain
//! [`std::io::Error`]s: a connection closed before the response head, a
//! malformed head (`InvalidData`), or the 30 s read timeout.
//!
//! The framing readers at the bottom are shared with the demo origin, which
//! reads request bodies the same way.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response or request head accepted, in bytes.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one head.
pub(crate) const MAX_HEADERS: usize = 100;
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CHUNK_LINE: usize = 1024;

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 206.
    pub status: u16,
    /// Header fields in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking; empty for HEAD, 204 and 304.
    pub body: Vec<u8>,
    /// False if the connection ended before the framed body (Content-Length
    /// or the chunked terminator) was fully read.
    pub complete: bool,
}

impl HttpResponse {
    /// Value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// One connection, many requests (keep-alive); over TCP, or any stream
/// (a TLS session in the tests).
pub struct HttpConnection<S = TcpStream> {
    reader: BufReader<S>,
}

impl HttpConnection {
    /// Connects to `addr`, with a 30 s read timeout.
    pub fn connect(addr: SocketAddr) -> io::Result<HttpConnection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection::over(stream))
    }
}

impl<S: Read + Write> HttpConnection<S> {
    /// Requests over `stream`, already connected.
    pub fn over(stream: S) -> HttpConnection<S> {
        HttpConnection {
            reader: BufReader::with_capacity(64 * 1024, stream),
        }
    }

    /// The stream under the connection.
    pub fn stream(&self) -> &S {
        self.reader.get_ref()
    }

    /// The stream, for reading what follows the last response.
    pub fn into_stream(self) -> BufReader<S> {
        self.reader
    }

    /// Sends `method target` with `headers` and reads one response.
    ///
    /// `Host: 127.0.0.1` is added unless given; `Content-Length` is added when
    /// `body` is `Some` unless given. A HEAD response is read without a body.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<HttpResponse> {
        let given = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        if !given("host") {
            head.push_str("Host: 127.0.0.1\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            if !given("content-length") {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.reader.get_mut().write_all(&bytes)?;
        self.read_response(method.eq_ignore_ascii_case("HEAD"))
    }

    /// Sends raw bytes (for malformed-request tests) and reads one response.
    ///
    /// The response is read without a body when `bytes` starts with `HEAD `.
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<HttpResponse> {
        self.reader.get_mut().write_all(bytes)?;
        self.read_response(bytes.starts_with(b"HEAD "))
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<HttpResponse> {
        loop {
            let head = read_head(&mut self.reader, MAX_HEAD_BYTES)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response head",
                )
            })?;
            let (status, headers) = parse_response_head(&head)?;
            // An interim 1xx (other than 101) is followed by the real response.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let mut body = Vec::new();
            let complete = if head_only || status == 204 || status == 304 || status < 200 {
                true
            } else if is_chunked(&headers) {
                read_chunked(&mut self.reader, &mut body, usize::MAX)?
            } else if let Some(value) = find_header(&headers, "content-length") {
                let len = value.trim().parse::<u64>().map_err(|_| {
                    invalid(format!(
                        "bad Content-Length in response: got {value:?}, expected digits"
                    ))
                })?;
                read_sized(&mut self.reader, len, &mut body)?
            } else {
                read_to_eof(&mut self.reader, &mut body)?
            };
            return Ok(HttpResponse {
                status,
                headers,
                body,
                complete,
            });
        }
    }
}

/// Convenience: a single GET on a fresh connection.
pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
    HttpConnection::connect(addr)?.request("GET", target, headers, None)
}

fn parse_response_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head".into())),
        Err(e) => return Err(invalid(format!("malformed response head: {e}"))),
    }
    let status = response.code.unwrap_or(0);
    Ok((status, owned_headers(response.headers)))
}

/// Header fields as owned `(name, value)` pairs; values decoded lossily.
pub(crate) fn owned_headers(fields: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Value of the first field called `name` (case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether the last transfer coding is `chunked`.
pub(crate) fn is_chunked(headers: &[(String, String)]) -> bool {
    find_header(headers, "transfer-encoding")
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Whether an IO error means the peer went away (the body was cut short).
fn is_cut(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Reads a message head up to and including its blank line.
///
/// `Ok(None)` on EOF before any byte; `UnexpectedEof` on EOF inside the head;
/// `InvalidData` when the head exceeds `limit`. Leading blank lines are skipped.
pub(crate) fn read_head(reader: &mut impl BufRead, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let remaining = (limit - head.len()) as u64;
        let start = head.len();
        let n = reader
            .by_ref()
            .take(remaining)
            .read_until(b'\n', &mut head)?;
        if n == 0 && head.is_empty() {
            return Ok(None);
        }
        if !head.ends_with(b"\n") {
            return Err(if head.len() >= limit {
                invalid(format!("message head larger than {limit} bytes"))
            } else {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a message head",
                )
            });
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// Appends exactly `len` body bytes to `out`; `Ok(false)` if the peer left first.
pub(crate) fn read_sized(
    reader: &mut impl BufRead,
    len: u64,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let start = out.len();
    out.reserve(len.min(1 << 20) as usize);
    match reader.by_ref().take(len).read_to_end(out) {
        Ok(_) => Ok((out.len() - start) as u64 == len),
        Err(e) if is_cut(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Appends everything up to EOF to `out`; always complete unless an error.
pub(crate) fn read_to_eof(reader: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<bool> {
    match reader.read_to_end(out) {
        Ok(_) => Ok(true),
        Err(e) if is_cut(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Appends a de-chunked body to `out`; `Ok(false)` if the peer left before the
/// terminating chunk, `InvalidData` on bad framing or a body over `limit`.
pub(crate) fn read_chunked(
    reader: &mut impl BufRead,
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<bool> {
    loop {
        let Some(line) = read_line(reader)? else {
            return Ok(false);
        };
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = String::from_utf8_lossy(size_text);
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|_| {
            invalid(format!(
                "bad chunk size: got {size_text:?}, expected hex digits"
            ))
        })?;
        if size == 0 {
            // Trailer fields end at a blank line.
            loop {
                match read_line(reader)? {
                    None => return Ok(false),
                    Some(l) if l.is_empty() => return Ok(true),
                    Some(_) => {}
                }
            }
        }
        if out.len().saturating_add(size) > limit {
            return Err(invalid(format!("chunked body larger than {limit} bytes")));
        }
        if !read_sized(reader, size as u64, out)? {
            return Ok(false);
        }
        match read_line(reader)? {
            None => return Ok(false),
            Some(l) if l.is_empty() => {}
            Some(l) => {
                return Err(invalid(format!(
                    "chunk not followed by CRLF: got {:?}",
                    String::from_utf8_lossy(&l)
                )));
            }
        }
    }
}

/// One line without its CRLF; `None` on EOF (even mid-line).
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    match reader
        .by_ref()
        .take(MAX_CHUNK_LINE as u64)
        .read_until(b'\n', &mut line)
    {
        Ok(_) => {}
        Err(e) if is_cut(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    if !line.ends_with(b"\n") {
        if line.len() >= MAX_CHUNK_LINE {
            return Err(invalid(format!(
                "chunk line longer than {MAX_CHUNK_LINE} bytes"
            )));
        }
        return Ok(None);
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(Some(line))
}
