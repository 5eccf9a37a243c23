//! A scripted origin for the hostile-input tests: it reads each request head,
//! answers with the raw bytes a script returns (interim 1xx heads, absurd
//! lengths, pauses, closes), and then, as nginx does for a GET, discards a
//! body the head declared by Content-Length: the next bytes on the
//! connection, whatever they are. A request line it cannot read gets a 400
//! and a close.
//!
//! The demo origin ([`super::DemoOrigin`]) is a well-behaved origin with
//! fault modes; this one says exactly what a test wants on the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::object_bytes;

/// One request as the scripted origin read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Header fields in the order received, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The length of the body the head declared (discarded after the answer).
    pub declared: usize,
    /// Id of the TCP connection (1 for the first accepted).
    pub connection: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first and last byte of `Range: bytes=a-b`, if the request has one.
    pub fn range(&self) -> Option<(u64, u64)> {
        let spec = self.header("range")?.strip_prefix("bytes=")?;
        let (a, b) = spec.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

/// What the origin does next on a connection.
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Wait.
    Sleep(Duration),
    /// Close the connection (after what was sent).
    Close,
}

type Script = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;

/// A running scripted origin on 127.0.0.1; dropping it stops accepting.
pub struct ScriptedOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stopping: Arc<AtomicBool>,
    closed: Arc<AtomicU64>,
}

impl ScriptedOrigin {
    /// Start on `127.0.0.1:0`, answering each request with `script`.
    pub fn start(script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static) -> ScriptedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let closed = Arc::new(AtomicU64::new(0));
        let (s, stop, gone) = (seen.clone(), stopping.clone(), closed.clone());
        thread::spawn(move || {
            let ids = AtomicU64::new(0);
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let id = ids.fetch_add(1, Ordering::SeqCst) + 1;
                let (s, script, gone) = (s.clone(), script.clone(), gone.clone());
                thread::spawn(move || {
                    serve(conn, id, &s, &*script);
                    gone.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        ScriptedOrigin {
            addr,
            seen,
            stopping,
            closed,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections that have ended (closed by either side).
    pub fn closed(&self) -> u64 {
        self.closed.load(Ordering::SeqCst)
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, id: u64, seen: &Mutex<Vec<Seen>>, script: &Script) {
    let _ = conn.set_nodelay(true);
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let req = match read_request(&mut reader, id) {
            Some(Ok(req)) => req,
            Some(Err(())) => {
                let _ = writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            None => return,
        };
        seen.lock().unwrap().push(req.clone());
        for step in script(&req) {
            match step {
                Step::Send(bytes) => {
                    if writer.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => thread::sleep(d),
                Step::Close => {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        // After the answer, as nginx's lingering discard: the declared body.
        let mut body = vec![0; req.declared];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    }
}

/// The next request head: `None` when the connection ends, `Some(Err)` when
/// it is not a request head.
fn read_request(reader: &mut BufReader<TcpStream>, connection: u64) -> Option<Result<Seen, ()>> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let version = parts.next().unwrap_or("");
    let valid = !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && target.starts_with('/')
        && version.starts_with("HTTP/1.");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string())),
            None => return Some(Err(())),
        }
    }
    if !valid {
        return Some(Err(()));
    }
    let mut seen = Seen {
        method,
        target,
        headers,
        declared: 0,
        connection,
    };
    seen.declared = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Ok(seen))
}

/// A response head: status line, `headers`, and the blank line.
pub fn head(status: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The answer to `req` for object `name` of `len` bytes: a 206 of the range
/// asked (clamped to the object), or a 200 of all of it, with a validator.
pub fn object_answer(req: &Seen, name: &str, len: u64) -> Vec<u8> {
    let etag = format!("\"{name}-{len}\"");
    let mut out;
    match req.range() {
        Some((a, b)) if a < len => {
            let b = b.min(len - 1);
            out = head(
                "206 Partial Content",
                &[
                    ("Content-Range", format!("bytes {a}-{b}/{len}")),
                    ("Content-Length", (b - a + 1).to_string()),
                    ("ETag", etag),
                    ("Cache-Control", "max-age=3600".into()),
                ],
            );
            out.extend(object_bytes(name, a, b));
        }
        _ => {
            out = head(
                "200 OK",
                &[
                    ("Content-Length", len.to_string()),
                    ("ETag", etag),
                    ("Cache-Control", "max-age=3600".into()),
                ],
            );
            if len > 0 {
                out.extend(object_bytes(name, 0, len - 1));
            }
        }
    }
    if req.method == "HEAD" {
        let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        out.truncate(end);
    }
    out
}

/// The object name and length of a `/obj/{len}/{name}` target (query dropped).
pub fn obj_of(target: &str) -> Option<(String, u64)> {
    let path = target.split('?').next()?;
    let rest = path.strip_prefix("/obj/")?;
    let (len, name) = rest.split_once('/')?;
    Some((name.to_string(), len.parse().ok()?))
}

/// An origin that serves `/obj/{len}/{name}` as [`object_answer`] does, and
/// 404 for anything else.
pub fn objects() -> ScriptedOrigin {
    ScriptedOrigin::start(|req| match obj_of(&req.target) {
        Some((name, len)) => vec![Step::Send(object_answer(req, &name, len))],
        None => vec![Step::Send(head(
            "404 Not Found",
            &[("Content-Length", "0".into())],
        ))],
    })
}

/// An edgeslice in front of a scripted origin; the proxy stops first.
pub struct Edge {
    pub server: edgeslice::Server,
    pub origin: ScriptedOrigin,
}

impl Edge {
    /// Start edgeslice with `setup` in front of `origin`.
    pub fn start(origin: ScriptedOrigin, setup: &super::Setup) -> Edge {
        let server = super::start_server(&super::config_text(origin.addr(), setup));
        Edge { server, origin }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}
