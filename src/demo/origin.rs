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
//! (`cc=none` drops it); `vary=NAME` adds `Vary: NAME`; `date=N` and
//! `expires=N` add `Date` and `Expires` N seconds from now (N may be
//! negative), `lm=N` a `Last-Modified`, `age=VALUE` an `Age` of that value,
//! `cr=VALUE` a `Content-Range` on `norange`'s 200, `validators=none`
//! leaves out an object's ETag and Last-Modified (`validators=etag` the
//! Last-Modified only), `cap=N` answers a
//! range with at most its first N bytes, `widen=N` with N bytes more on
//! each side,
//! `cdn=VALUE` a `CDN-Cache-Control` of that value (`cc`, `date`,
//! `expires`, `lm` and `numbered` also on `/status/..`),
//! `numbered=1` an `X-Origin-Request`
//! with the path's request number (also on a 304); `unsafe=ok` answers
//! methods other than GET and HEAD with 200 (else 405), `cl=self`, `cl=abs`
//! or `cl=VALUE` adding a `Content-Location` and `cc`'s `Cache-Control`. Faults on demand:
//! `fail=N` (the first N requests to a path answer `fail_status`, default
//! 503), `cut=N` (the first N get half their body, then a close), `flaky=P`
//! (each request fails with P% chance, as a 503 or a cut), `stall_ms=N` on
//! any mode. If-Match / If-Unmodified-Since that do not hold get 412. A GET whose If-None-Match is the ETag, or whose
//! If-Modified-Since is the Last-Modified, gets 304.
//! Unknown modes answer 404, malformed requests 400 and a close.
//!
//! This file holds the server and its recording; the answers (modes, faults,
//! conditionals) are chosen in `origin_answer.rs`, and requests are read and
//! replies written in `origin_wire.rs`.
//!
//! Threads: one accept thread plus one blocking thread per connection.
//! Bodies are generated and written in 64 KiB pieces, never whole.
//!
//! For example (the test `a_range_is_answered_and_recorded`):
//!
//! ```text
//! let origin = DemoOrigin::start().unwrap();
//! let resp = client::get(origin.addr(), "/obj/1000/a.bin", &[("Range", "bytes=10-19")]).unwrap();
//! assert_eq!(resp.status, 206);
//! assert_eq!(resp.header("content-range"), Some("bytes 10-19/1000"));
//! assert_eq!(resp.body, object_bytes("a.bin", 10, 19));
//! assert_eq!(origin.requests()[0].range.as_deref(), Some("bytes=10-19"));
//! ```

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::client::{find_header, read_head, MAX_HEAD_BYTES};
pub use super::content::{object_byte, object_bytes, versioned_name};
use answer::{answer, stall_of};
use wire::{close_gently, read_request, reject, write_reply, RequestError};

/// Size of the pieces a body is generated and written in.
const PIECE: usize = 64 * 1024;

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
#[path = "origin_answer.rs"]
pub(crate) mod answer;
#[path = "origin_wire.rs"]
mod wire;
