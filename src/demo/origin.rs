//! A real HTTP/1.1 origin for `edgeslice demo` and the integration tests.
//!
//! The proxy's slice subrequests end here. Every object's bytes are a pure
//! function of its name and offset ([`object_byte`]), so any range the proxy
//! hands on can be checked against [`object_bytes`]. Fault modes chosen by the
//! URL path make the origin misbehave in the ways the proxy must catch, and
//! every request is recorded ([`DemoOrigin::requests`]) so tests can assert on
//! what reached the origin, not only on bodies.
//!
//! URL scheme: `/{mode}/{len}/{name}`, `name` may contain slashes, and the
//! query `delay_ms=N` sleeps before the response head. Modes: `obj`,
//! `norange`, `etag-changes`, `lm-changes`, `len-changes`, `truncate`,
//! `shift`, `nocr`, `chunked`, plus `/status/{code}/..` and `/echo/..`.
//! Unknown modes answer 404, malformed requests 400 and a close.
//!
//! Threads: one accept thread plus one blocking thread per connection.
//! Bodies are generated and written in 64 KiB pieces, never whole.
//!
//! ```
//! use edgeslice::demo::{client, origin::{object_bytes, DemoOrigin}};
//!
//! let origin = DemoOrigin::start().unwrap();
//! let resp = client::get(origin.addr(), "/obj/1000/a.bin", &[("Range", "bytes=10-19")]).unwrap();
//! assert_eq!(resp.status, 206);
//! assert_eq!(resp.header("content-range"), Some("bytes 10-19/1000"));
//! assert_eq!(resp.body, object_bytes("a.bin", 10, 19));
//! assert_eq!(origin.requests()[0].range.as_deref(), Some("bytes=10-19"));
//! ```

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::client::{find_header, is_chunked, owned_headers, read_chunked, read_head, read_sized};
use super::client::{MAX_HEADERS, MAX_HEAD_BYTES};

/// Size of the pieces a body is generated and written in.
const PIECE: usize = 64 * 1024;
/// Chunk size in the `chunked` mode.
const CHUNK: usize = 16 * 1024;
/// Largest request body read (echo), in bytes.
const MAX_BODY: usize = 64 << 20;
/// Longest `delay_ms` honoured, so a typo cannot hang a test for hours.
const MAX_DELAY_MS: u64 = 60_000;
/// `Tue, 15 Nov 1994 08:12:31 GMT` as Unix seconds.
const BASE_LAST_MODIFIED: u64 = 784_887_151;

/// Byte at `offset` of the object named `name`.
///
/// A splitmix64 of `fnv1a(name) ^ offset / 8`, taking byte `offset % 8`.
pub fn object_byte(name: &str, offset: u64) -> u8 {
    let word = splitmix64(fnv1a(name) ^ (offset / 8));
    word.to_le_bytes()[(offset % 8) as usize]
}

/// Bytes `[first, last]` inclusive of the object named `name`; empty if `last < first`.
pub fn object_bytes(name: &str, first: u64, last: u64) -> Vec<u8> {
    if last < first {
        return Vec::new();
    }
    let mut out = vec![0; (last - first + 1) as usize];
    fill_object(fnv1a(name), first, &mut out);
    out
}

/// Fills `out` with the object bytes starting at `offset`, eight at a time.
fn fill_object(name_hash: u64, mut offset: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let word = splitmix64(name_hash ^ (offset / 8)).to_le_bytes();
        let within = (offset % 8) as usize;
        let take = (8 - within).min(out.len() - i);
        out[i..i + take].copy_from_slice(&word[within..within + take]);
        i += take;
        offset += take as u64;
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    /// Header fields in the order received.
    pub headers: Vec<(String, String)>,
    /// The `Range` header value, if any.
    pub range: Option<String>,
    /// The request body (de-chunked).
    pub body: Vec<u8>,
    /// Id of the TCP connection it came on (1 for the first accepted).
    pub connection: u64,
}

impl OriginRequest {
    /// Value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    fn wants_close(&self, http10: bool) -> bool {
        let has = |token: &str| {
            self.header("connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        has("close") || (http10 && !has("keep-alive"))
    }
}

/// A running demo origin on `127.0.0.1`; dropping it stops accepting.
///
/// Connection threads finish the request in hand and close on their next one.
pub struct DemoOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// State seen by the accept thread and every connection thread.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    requests: Mutex<Vec<OriginRequest>>,
    /// Per-path (query excluded) request numbers, for the `*-changes` modes.
    path_counts: Mutex<HashMap<String, u64>>,
    active: AtomicUsize,
    peak: AtomicUsize,
    connections: AtomicU64,
}

impl DemoOrigin {
    /// Binds `127.0.0.1:0` and spawns the accept thread.
    pub fn start() -> io::Result<DemoOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("demo-origin-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(DemoOrigin {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshot of the recorded requests, in arrival order.
    pub fn requests(&self) -> Vec<OriginRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Number of recorded requests.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Forgets recorded requests and resets peak concurrency.
    ///
    /// Per-path request numbers are kept: `*-changes` objects keep changing.
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
        self.shared
            .peak
            .store(self.shared.active.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Most requests being answered at the same instant since start or [`clear`](Self::clear).
    pub fn peak_concurrency(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far, to assert keep-alive reuse.
    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst) as usize
    }
}

impl Drop for DemoOrigin {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked accept; once it sees the flag it drops the listener.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the recording from the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors or similar: back off instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let conn_shared = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name(format!("demo-origin-conn-{id}"))
            .spawn(move || serve_connection(stream, id, &conn_shared));
    }
}

/// Serves requests on one connection until the client or a fault closes it.
fn serve_connection(stream: TcpStream, id: u64, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(PIECE, stream);
    let mut writer = BufWriter::with_capacity(PIECE, write_half);
    loop {
        let head = match read_head(&mut reader, MAX_HEAD_BYTES) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return reject(writer, &e.to_string());
            }
            Err(_) => return,
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (request, http10) = match read_request(&head, &mut reader, id) {
            Ok(parsed) => parsed,
            Err(RequestError::Malformed(why)) => return reject(writer, &why),
            Err(RequestError::Gone) => return,
        };
        let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(active, Ordering::SeqCst);
        lock(&shared.requests).push(request.clone());
        let reply = answer(shared, &request);
        let mut close = reply.close || request.wants_close(http10);
        let written = write_reply(&mut writer, &reply, request.method == "HEAD", close);
        shared.active.fetch_sub(1, Ordering::SeqCst);
        close |= written.is_err();
        if close {
            return close_gently(writer);
        }
    }
}

enum RequestError {
    /// Answer 400 and close.
    Malformed(String),
    /// The client left mid-request.
    Gone,
}

/// Parses the head and reads the body; also returns whether it is HTTP/1.0.
fn read_request(
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
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// `None` omits the header (204, 304, chunked).
    content_length: Option<u64>,
    body: Body,
    /// Close the connection after writing (faults).
    close: bool,
}

enum Body {
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
    fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            content_length: Some(text.len() as u64),
            body: Body::Bytes(text.as_bytes().to_vec()),
            close: false,
        }
    }
}

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
    Chunked,
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
            "chunked" => Mode::Chunked,
            _ => return None,
        })
    }
}

/// Routes one request to its mode, after the optional `delay_ms` sleep.
fn answer(shared: &Shared, request: &OriginRequest) -> Reply {
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
        ("status", Some(code), _) => status_reply(code),
        (mode, Some(len), Some(name)) => match (Mode::parse(mode), len.parse::<u64>()) {
            (Some(mode), Ok(len)) => object_reply(mode, len, name, number, request),
            _ => Reply::text(404, "not found\n"),
        },
        _ => Reply::text(404, "not found\n"),
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

/// Serves an object in `mode`; `number` is this path's request number (from 1).
fn object_reply(mode: Mode, len: u64, name: &str, number: u64, request: &OriginRequest) -> Reply {
    if request.method != "GET" && request.method != "HEAD" {
        let mut reply = Reply::text(405, "method not allowed\n");
        reply.headers.push(("Allow", "GET, HEAD".into()));
        return reply;
    }
    let len = if mode == Mode::LenChanges {
        len.saturating_add(number)
    } else {
        len
    };
    let name_hash = fnv1a(name);
    let last_modified = BASE_LAST_MODIFIED + if mode == Mode::LmChanges { number } else { 0 };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Cache-Control", "max-age=3600".into()),
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
    if mode != Mode::NoContentRange {
        headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
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

/// A single `Range: bytes=` spec; anything else is ignored (answered 200).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangeSpec {
    /// `a-b` or `a-`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    fn parse(value: &str) -> Option<RangeSpec> {
        let (unit, spec) = value.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.trim().split_once('-')?;
        let number = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, _) => number(last).map(RangeSpec::Suffix),
            (false, true) => number(first).map(|a| RangeSpec::From(a, None)),
            (false, false) => {
                let (a, b) = (number(first)?, number(last)?);
                (a <= b).then_some(RangeSpec::From(a, Some(b)))
            }
        }
    }

    /// Inclusive `(first, last)` within `len`, or `None` when unsatisfiable (416).
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            _ if len == 0 => None,
            RangeSpec::From(first, _) if first >= len => None,
            RangeSpec::From(first, last) => Some((first, last.unwrap_or(u64::MAX).min(len - 1))),
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => Some((len - n.min(len), len - 1)),
        }
    }
}

/// Writes the head, then the body in 64 KiB pieces (none for HEAD).
fn write_reply(
    out: &mut BufWriter<TcpStream>,
    reply: &Reply,
    head_only: bool,
    close: bool,
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
                while offset < first + count {
                    let n = (first + count - offset).min(PIECE as u64) as usize;
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
fn reject(mut out: BufWriter<TcpStream>, why: &str) {
    let reply = Reply::text(400, &format!("bad request: {why}\n"));
    if write_reply(&mut out, &reply, false, true).is_ok() {
        close_gently(out);
    }
}

/// Closes with FIN after draining briefly, so unread input does not turn the
/// close into a RST that could destroy the response still in flight.
fn close_gently(out: BufWriter<TcpStream>) {
    let Ok(mut stream) = out.into_inner() else {
        return;
    };
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (1 << 20) {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Unix seconds as an IMF-fixdate, e.g. `Tue, 15 Nov 1994 08:12:31 GMT`.
fn imf_fixdate(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::client::{get, HttpConnection};
    use std::time::Instant;

    #[test]
    fn object_bytes_agree_with_object_byte() {
        let bytes = object_bytes("a/b.bin", 3, 40);
        let one_by_one: Vec<u8> = (3..=40).map(|i| object_byte("a/b.bin", i)).collect();
        assert_eq!(bytes, one_by_one);
        assert_ne!(
            object_bytes("a/b.bin", 0, 63),
            object_bytes("a/c.bin", 0, 63)
        );
        assert!(object_bytes("x", 5, 4).is_empty());
    }

    #[test]
    fn object_bytes_is_fast() {
        // Release must generate 100 MiB well under a second; debug only checks a slice.
        let len: u64 = if cfg!(debug_assertions) {
            8 << 20
        } else {
            100 << 20
        };
        let start = Instant::now();
        let bytes = object_bytes("big", 0, len - 1);
        let elapsed = start.elapsed();
        assert_eq!(bytes[len as usize - 1], object_byte("big", len - 1));
        if !cfg!(debug_assertions) {
            assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
        }
    }

    /// `None`: ignored (200); `Some(None)`: 416; `Some(Some(range))`: 206.
    type Resolved = Option<Option<(u64, u64)>>;

    #[test]
    fn range_spec_parse_and_resolve() {
        let cases: &[(&str, u64, Resolved)] = &[
            ("bytes=0-0", 100, Some(Some((0, 0)))),
            ("bytes=0-99", 100, Some(Some((0, 99)))),
            ("bytes=90-200", 100, Some(Some((90, 99)))),
            ("bytes=50-", 100, Some(Some((50, 99)))),
            ("bytes=-10", 100, Some(Some((90, 99)))),
            ("bytes=-200", 100, Some(Some((0, 99)))),
            (" Bytes = 1 - 2 ", 100, Some(Some((1, 2)))),
            ("bytes=100-", 100, Some(None)),
            ("bytes=0-0", 0, Some(None)),
            ("bytes=-0", 100, Some(None)),
            ("bytes=5-2", 100, None),
            ("bytes=0-1,3-4", 100, None),
            ("items=0-1", 100, None),
            ("bytes=a-b", 100, None),
            ("bytes=+1-2", 100, None),
            ("bytes=", 100, None),
        ];
        for (header, len, expected) in cases {
            let got = RangeSpec::parse(header).map(|r| r.resolve(*len));
            assert_eq!(got, *expected, "{header:?} on len {len}");
        }
    }

    #[test]
    fn imf_fixdate_formats_known_dates() {
        assert_eq!(
            imf_fixdate(BASE_LAST_MODIFIED),
            "Tue, 15 Nov 1994 08:12:31 GMT"
        );
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn full_get_has_object_headers() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(origin.addr(), "/obj/200000/dir/big.bin", &[]).unwrap();
        assert_eq!(resp.status, 200);
        assert!(resp.complete);
        assert_eq!(resp.body, object_bytes("dir/big.bin", 0, 199_999));
        assert_eq!(
            resp.header("etag"),
            Some(format!("\"30d40-{:x}\"", fnv1a("dir/big.bin")).as_str())
        );
        assert_eq!(
            resp.header("last-modified"),
            Some("Tue, 15 Nov 1994 08:12:31 GMT")
        );
        assert_eq!(resp.header("accept-ranges"), Some("bytes"));
        assert_eq!(resp.header("cache-control"), Some("max-age=3600"));
        assert_eq!(resp.header("x-origin-variant"), Some("none"));
        assert_eq!(resp.header("content-range"), None);
    }

    #[test]
    fn range_gets_at_edges() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        // (Range, expected status, expected Content-Range, first, last)
        let cases = [
            ("bytes=0-0", 206, Some("bytes 0-0/16"), 0, 0),
            ("bytes=15-15", 206, Some("bytes 15-15/16"), 15, 15),
            ("bytes=0-15", 206, Some("bytes 0-15/16"), 0, 15),
            ("bytes=14-99", 206, Some("bytes 14-15/16"), 14, 15),
            ("bytes=7-", 206, Some("bytes 7-15/16"), 7, 15),
            ("bytes=-3", 206, Some("bytes 13-15/16"), 13, 15),
            ("bytes=0-1,4-5", 200, None, 0, 15),
            ("bytes=9-2", 200, None, 0, 15),
        ];
        for (range, status, content_range, first, last) in cases {
            let resp = conn
                .request("GET", "/obj/16/tiny", &[("Range", range)], None)
                .unwrap();
            assert_eq!(resp.status, status, "{range}");
            assert_eq!(resp.header("content-range"), content_range, "{range}");
            assert_eq!(resp.body, object_bytes("tiny", first, last), "{range}");
        }
        assert_eq!(origin.connections_accepted(), 1);
    }

    #[test]
    fn unsatisfiable_ranges_answer_416() {
        let origin = DemoOrigin::start().unwrap();
        for (target, total) in [("/obj/16/t", "16"), ("/obj/0/empty", "0")] {
            let resp = get(origin.addr(), target, &[("Range", "bytes=16-20")]).unwrap();
            assert_eq!(resp.status, 416);
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes */{total}").as_str())
            );
            assert!(resp.body.is_empty() && resp.complete);
        }
    }

    #[test]
    fn head_has_get_headers_and_no_body() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let head = conn
            .request("HEAD", "/obj/5000/h", &[("Range", "bytes=10-19")], None)
            .unwrap();
        let get = conn
            .request("GET", "/obj/5000/h", &[("Range", "bytes=10-19")], None)
            .unwrap();
        assert_eq!(head.status, 206);
        assert!(head.body.is_empty());
        assert_eq!(head.headers, get.headers);
        assert_eq!(get.body, object_bytes("h", 10, 19));
    }

    #[test]
    fn keep_alive_serves_three_requests_on_one_connection() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                conn.request("GET", "/obj/100/k", &[], None).unwrap().status,
                200
            );
        }
        assert_eq!(origin.connections_accepted(), 1);
        let ids: Vec<u64> = origin.requests().iter().map(|r| r.connection).collect();
        assert_eq!(ids, [1, 1, 1]);
    }

    #[test]
    fn connection_close_is_honoured() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let resp = conn
            .request("GET", "/obj/10/c", &[("Connection", "close")], None)
            .unwrap();
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(conn.request("GET", "/obj/10/c", &[], None).is_err());
    }

    #[test]
    fn norange_ignores_range() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(origin.addr(), "/norange/100/n", &[("Range", "bytes=0-9")]).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, object_bytes("n", 0, 99));
    }

    #[test]
    fn truncate_sends_half_then_closes() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(
            origin.addr(),
            "/truncate/1000/t",
            &[("Range", "bytes=100-199")],
        )
        .unwrap();
        assert_eq!(
            (resp.status, resp.header("content-length")),
            (206, Some("100"))
        );
        assert_eq!(resp.header("content-range"), Some("bytes 100-199/1000"));
        assert!(!resp.complete);
        assert_eq!(resp.body, object_bytes("t", 100, 149));
        let one = get(origin.addr(), "/truncate/1000/t", &[("Range", "bytes=5-5")]).unwrap();
        assert!(!one.complete && one.body.is_empty());
    }

    #[test]
    fn shift_moves_content_range_and_body() {
        let origin = DemoOrigin::start().unwrap();
        let cases = [
            ("bytes=0-9", "bytes 1-10/16", 1, 10),
            ("bytes=10-15", "bytes 11-15/16", 11, 15),
            ("bytes=15-15", "bytes 14-14/16", 14, 14),
        ];
        for (range, content_range, first, last) in cases {
            let resp = get(origin.addr(), "/shift/16/s", &[("Range", range)]).unwrap();
            assert_eq!(resp.status, 206);
            assert_eq!(resp.header("content-range"), Some(content_range), "{range}");
            assert_eq!(resp.body, object_bytes("s", first, last), "{range}");
        }
    }

    #[test]
    fn nocr_omits_content_range() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(origin.addr(), "/nocr/100/n", &[("Range", "bytes=10-19")]).unwrap();
        assert_eq!(resp.status, 206);
        assert_eq!(resp.header("content-range"), None);
        assert_eq!(resp.body, object_bytes("n", 10, 19));
    }

    #[test]
    fn chunked_streams_whole_object_without_length_or_etag() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(origin.addr(), "/chunked/40000/c", &[("Range", "bytes=0-9")]).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.header("content-length"), None);
        assert_eq!(resp.header("etag"), None);
        assert!(resp.complete);
        assert_eq!(resp.body, object_bytes("c", 0, 39_999));
    }

    #[test]
    fn changing_validators_and_lengths() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let mut twice = |target: &str| {
            let a = conn
                .request("GET", target, &[("Range", "bytes=0-0")], None)
                .unwrap();
            let b = conn
                .request(
                    "GET",
                    &format!("{target}?again=1"),
                    &[("Range", "bytes=0-0")],
                    None,
                )
                .unwrap();
            (a, b)
        };
        let (a, b) = twice("/etag-changes/100/e");
        assert_ne!(a.header("etag"), b.header("etag"));
        assert!(a.header("etag").unwrap().starts_with("\"v1-"));
        let (a, b) = twice("/lm-changes/100/l");
        assert_eq!(a.header("etag"), b.header("etag"));
        assert_eq!(
            a.header("last-modified"),
            Some("Tue, 15 Nov 1994 08:12:32 GMT")
        );
        assert_eq!(
            b.header("last-modified"),
            Some("Tue, 15 Nov 1994 08:12:33 GMT")
        );
        let (a, b) = twice("/len-changes/100/n");
        assert_eq!(a.header("content-range"), Some("bytes 0-0/101"));
        assert_eq!(b.header("content-range"), Some("bytes 0-0/102"));
        let (a, b) = twice("/obj/100/o");
        assert_eq!(a.headers, b.headers);
    }

    #[test]
    fn status_mode_answers_the_code() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let resp = conn.request("GET", "/status/503/x", &[], None).unwrap();
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (503, b"status 503\n".as_slice())
        );
        for code in [304, 204] {
            let resp = conn
                .request("GET", &format!("/status/{code}/x"), &[], None)
                .unwrap();
            assert_eq!(resp.status, code);
            assert!(resp.body.is_empty() && resp.header("content-length").is_none());
        }
        // Still in step after the bodiless answers.
        assert_eq!(
            conn.request("GET", "/obj/3/x", &[], None).unwrap().body,
            object_bytes("x", 0, 2)
        );
        assert_eq!(origin.connections_accepted(), 1);
    }

    #[test]
    fn echo_returns_the_request_body() {
        let origin = DemoOrigin::start().unwrap();
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let resp = conn
            .request("POST", "/echo/any?q=1", &[], Some(b"hello body"))
            .unwrap();
        assert_eq!(resp.body, b"hello body");
        assert_eq!(resp.header("x-echo-method"), Some("POST"));
        assert_eq!(resp.header("x-echo-target"), Some("/echo/any?q=1"));
        assert_eq!(resp.header("x-echo-body-len"), Some("10"));
        let chunked = conn
            .raw(b"PUT /echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert_eq!(origin.requests()[1].body, b"abcde");
    }

    #[test]
    fn delay_ms_delays_the_head() {
        let origin = DemoOrigin::start().unwrap();
        let start = Instant::now();
        let resp = get(origin.addr(), "/obj/10/d?delay_ms=150", &[]).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(resp.body, object_bytes("d", 0, 9));
    }

    #[test]
    fn requests_are_recorded_and_cleared() {
        let origin = DemoOrigin::start().unwrap();
        let resp = get(
            origin.addr(),
            "/obj/100/r?x=1",
            &[("Range", "bytes=1-2"), ("X-Variant", "blue")],
        )
        .unwrap();
        assert_eq!(resp.header("x-origin-variant"), Some("blue"));
        get(origin.addr(), "/obj/100/r", &[]).unwrap();
        let reqs = origin.requests();
        assert_eq!(origin.request_count(), 2);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].target.as_str()),
            ("GET", "/obj/100/r?x=1")
        );
        assert_eq!(reqs[0].range.as_deref(), Some("bytes=1-2"));
        assert_eq!(reqs[0].header("x-variant"), Some("blue"));
        assert_eq!(reqs[1].range, None);
        assert_eq!((reqs[0].connection, reqs[1].connection), (1, 2));
        origin.clear();
        assert_eq!((origin.request_count(), origin.peak_concurrency()), (0, 0));
    }

    #[test]
    fn peak_concurrency_counts_overlapping_requests() {
        let origin = DemoOrigin::start().unwrap();
        let addr = origin.addr();
        let workers: Vec<_> = (0..3)
            .map(|_| thread::spawn(move || get(addr, "/obj/10/p?delay_ms=300", &[]).unwrap()))
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap().status, 200);
        }
        assert!(
            origin.peak_concurrency() >= 2,
            "peak {}",
            origin.peak_concurrency()
        );
        assert_eq!(origin.connections_accepted(), 3);
    }

    #[test]
    fn bad_input_answers_400_or_404_without_panicking() {
        let origin = DemoOrigin::start().unwrap();
        for target in [
            "/nope/10/x",
            "/obj/ten/x",
            "/obj/10",
            "/",
            "/status/99/x",
            "/status/abc/x",
        ] {
            assert_eq!(
                get(origin.addr(), target, &[]).unwrap().status,
                404,
                "{target}"
            );
        }
        let post = HttpConnection::connect(origin.addr())
            .unwrap()
            .request("POST", "/obj/10/x", &[], Some(b""))
            .unwrap();
        assert_eq!(post.status, 405);
        for wire in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            let mut conn = HttpConnection::connect(origin.addr()).unwrap();
            let resp = conn.raw(wire).unwrap();
            assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(resp.header("connection"), Some("close"));
        }
        assert_eq!(get(origin.addr(), "/obj/1/ok", &[]).unwrap().status, 200);
    }

    #[test]
    fn drop_stops_accepting() {
        let origin = DemoOrigin::start().unwrap();
        let addr = origin.addr();
        drop(origin);
        assert!(get(addr, "/obj/1/x", &[]).is_err());
    }
}
