//! The built-in origin's wire: reading one request (head and body) off a
//! connection, and writing a [`Reply`] back, its body generated piece by piece,
//! with the `stall_ms` pause halfway through. A child of `origin`; the answers
//! themselves are chosen in `origin_answer.rs`.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use super::super::client::MAX_HEADERS;
use super::super::client::{find_header, is_chunked, owned_headers, read_chunked, read_sized};
use super::super::content::{fill_object, reason};
use super::{OriginRequest, PIECE};

/// Chunk size in the `chunked` mode.
const CHUNK: usize = 16 * 1024;
/// Largest request body read (echo), in bytes.
const MAX_BODY: usize = 64 << 20;

pub(super) enum RequestError {
    /// Answer 400 and close.
    Malformed(String),
    /// The client left mid-request.
    Gone,
}

/// Parses the head and reads the body; also returns whether it is HTTP/1.0.
pub(super) fn read_request(
    head: &[u8],
    reader: &mut BufReader<TcpStream>,
    connection: u64,
) -> Result<(OriginRequest, bool), RequestError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(RequestError::Malformed("incomplete head".into()))
        }
        Err(e) => return Err(RequestError::Malformed(format!("malformed head: {e}"))),
    }
    let method = parsed.method.unwrap_or_default().to_string();
    let target = parsed.path.unwrap_or_default().to_string();
    let http10 = parsed.version == Some(0);
    let headers = owned_headers(parsed.headers);
    let mut body = Vec::new();
    let content_length = find_header(&headers, "content-length");
    if find_header(&headers, "transfer-encoding").is_some() {
        if !is_chunked(&headers) || content_length.is_some() {
            return Err(RequestError::Malformed(
                "unsupported Transfer-Encoding".into(),
            ));
        }
        match read_chunked(reader, &mut body, MAX_BODY) {
            Ok(true) => {}
            Ok(false) => return Err(RequestError::Gone),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(RequestError::Malformed(e.to_string()));
            }
            Err(_) => return Err(RequestError::Gone),
        }
    } else if let Some(value) = content_length {
        let len = value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&len| len <= MAX_BODY as u64)
            .ok_or_else(|| RequestError::Malformed(format!("bad Content-Length: got {value:?}")))?;
        if !matches!(read_sized(reader, len, &mut body), Ok(true)) {
            return Err(RequestError::Gone);
        }
    }
    let range = find_header(&headers, "range").map(str::to_string);
    Ok((
        OriginRequest {
            method,
            target,
            headers,
            range,
            body,
            connection,
        },
        http10,
    ))
}

/// What to send back, before it is written.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    /// `None` omits the header (204, 304, chunked).
    pub(super) content_length: Option<u64>,
    pub(super) body: Body,
    /// Close the connection after writing (faults).
    pub(super) close: bool,
}

pub(super) enum Body {
    Bytes(Vec<u8>),
    /// `count` object bytes from `first`, generated while writing.
    Object {
        name_hash: u64,
        first: u64,
        count: u64,
    },
    /// The whole object, chunked.
    Chunked {
        name_hash: u64,
        len: u64,
    },
}

impl Reply {
    pub(super) fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            content_length: Some(text.len() as u64),
            body: Body::Bytes(text.as_bytes().to_vec()),
            close: false,
        }
    }
}

/// Writes the head, then the body in 64 KiB pieces (none for HEAD).
pub(super) fn write_reply(
    out: &mut BufWriter<TcpStream>,
    reply: &Reply,
    head_only: bool,
    close: bool,
    stall: Option<Duration>,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = reply.content_length {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if matches!(reply.body, Body::Chunked { .. }) {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        let mut piece = vec![0u8; PIECE];
        match reply.body {
            Body::Bytes(ref bytes) => out.write_all(bytes)?,
            Body::Object {
                name_hash,
                first,
                count,
            } => {
                let mut offset = first;
                let mut stall_at = stall.map(|pause| (first + count / 2, pause));
                while offset < first + count {
                    if let Some((_, pause)) = stall_at.filter(|(at, _)| offset >= *at) {
                        out.flush()?;
                        thread::sleep(pause);
                        stall_at = None;
                    }
                    let mut n = (first + count - offset).min(PIECE as u64) as usize;
                    if let Some((at, _)) = stall_at {
                        n = n.min((at - offset).max(1) as usize);
                    }
                    fill_object(name_hash, offset, &mut piece[..n]);
                    out.write_all(&piece[..n])?;
                    offset += n as u64;
                }
            }
            Body::Chunked { name_hash, len } => {
                let mut offset = 0;
                while offset < len {
                    let n = (len - offset).min(CHUNK as u64) as usize;
                    fill_object(name_hash, offset, &mut piece[..n]);
                    write!(out, "{n:x}\r\n")?;
                    out.write_all(&piece[..n])?;
                    out.write_all(b"\r\n")?;
                    offset += n as u64;
                }
                out.write_all(b"0\r\n\r\n")?;
            }
        }
    }
    out.flush()
}

/// Answers 400 to a request that could not be parsed, then closes.
pub(super) fn reject(mut out: BufWriter<TcpStream>, why: &str) {
    let reply = Reply::text(400, &format!("bad request: {why}\n"));
    if write_reply(&mut out, &reply, false, true, None).is_ok() {
        close_gently(out);
    }
}

/// Closes with FIN after draining briefly, so unread input does not turn the
/// close into a RST that could destroy the response still in flight.
pub(super) fn close_gently(out: BufWriter<TcpStream>) {
    let Ok(mut stream) = out.into_inner() else {
        return;
    };
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (1 << 20) {
        match stream.read(&mut sink) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
