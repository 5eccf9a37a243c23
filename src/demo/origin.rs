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
//! `shift`, `nocr`, `nolen` (`Content-Range: bytes a-b/*`), `chunked`, `stall` (like `obj`, but the query `stall_ms=N`
//! holds back the second half of every body for N ms), `mut` (like `obj`, with
//! a version set by [`DemoOrigin::set_version`]), plus `/status/{code}/..` and
//! `/echo/..`. The query `cc=VALUE` replaces `Cache-Control: max-age=3600`
//! (`cc=none` drops it); `vary=NAME` adds `Vary: NAME`. Faults on demand:
//! `fail=N` (the first N requests to a path answer `fail_status`, default
//! 503), `cut=N` (the first N get half their body, then a close), `flaky=P`
//! (each request fails with P% chance, as a 503 or a cut), `stall_ms=N` on
//! any mode. If-Match / If-Unmodified-Since that do not hold get 412. A GET whose If-None-Match is the ETag, or whose
//! If-Modified-Since is the Last-Modified, gets 304.
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
use super::content::{fill_object, fnv1a, imf_fixdate, reason, RangeSpec};
pub use super::content::{object_byte, object_bytes, versioned_name};

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
    /// Versions of `mut` objects by name, set by [`DemoOrigin::set_version`].
    versions: Mutex<HashMap<String, u64>>,
    active: AtomicUsize,
    peak: AtomicUsize,
    connections: AtomicU64,
}

impl DemoOrigin {
    /// Binds `127.0.0.1:0` and spawns the accept thread.
    pub fn start() -> io::Result<DemoOrigin> {
        DemoOrigin::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Binds `addr` (an origin that comes back on the port it had) and
    /// spawns the accept thread.
    pub fn start_on(addr: SocketAddr) -> io::Result<DemoOrigin> {
        let listener = TcpListener::bind(addr)?;
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

    /// Set the version of the `mut` object `name` (at any length): its bytes
    /// become those of [`versioned_name`], its ETag and Last-Modified change.
    pub fn set_version(&self, name: &str, version: u64) {
        lock(&self.shared.versions).insert(name.to_string(), version);
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
        let stall = stall_of(&request.target);
        let written = write_reply(&mut writer, &reply, request.method == "HEAD", close, stall);
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
        .filter(|(n, _)| matches!(*n, "ETag" | "Last-Modified" | "Cache-Control"))
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
fn stall_of(target: &str) -> Option<Duration> {
    query_param(target, "stall_ms")
        .and_then(|value| value.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(MAX_DELAY_MS)))
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
fn object_reply(
    mode: Mode,
    len: u64,
    name: &str,
    number: u64,
    version: u64,
    request: &OriginRequest,
) -> Reply {
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
    if let Some(vary) = query_param(&request.target, "vary") {
        headers.push(("Vary", vary.to_string()));
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

/// Writes the head, then the body in 64 KiB pieces (none for HEAD).
fn write_reply(
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
fn reject(mut out: BufWriter<TcpStream>, why: &str) {
    let reply = Reply::text(400, &format!("bad request: {why}\n"));
    if write_reply(&mut out, &reply, false, true, None).is_ok() {
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

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
