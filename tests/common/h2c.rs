//! An HTTP/2 client for the tests: the hyperium `h2` client speaking h2c
//! with prior knowledge, run on a monoio runtime of the test's own thread
//! through `monoio-compat` (the same glue the server uses), and raw frames
//! written by hand for the attacks.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request};
use monoio_compat::StreamWrapper;

/// Run `f` to completion on a fresh single-threaded monoio runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime")
        .block_on(f)
}

/// Open an h2c connection to `addr`; the connection is driven by a task of
/// the current runtime.
pub async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    connect_with(addr, h2::client::Builder::new()).await
}

/// Same, with the client settings of `builder` (windows, frame sizes).
pub async fn connect_with(addr: SocketAddr, builder: h2::client::Builder) -> SendRequest<Bytes> {
    let tcp = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    let io = StreamWrapper::new(tcp);
    let (client, conn) = builder.handshake(io).await.expect("h2 handshake");
    monoio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Open an HTTP/2 connection over TLS to `addr` for SNI `name`, ALPN as
/// `config` offers it; `None` when the server did not pick `h2`.
pub async fn connect_tls(
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: &str,
) -> Option<SendRequest<Bytes>> {
    let tcp = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let tls = monoio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    if tls.alpn_protocol().as_deref() != Some(&b"h2"[..]) {
        return None;
    }
    let (client, conn) = h2::client::Builder::new()
        .handshake(StreamWrapper::new(tls))
        .await
        .expect("h2 handshake");
    monoio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

/// An answer read whole.
#[derive(Debug)]
pub struct H2Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Send a request on `client` and read its answer whole.
pub async fn send(
    client: &SendRequest<Bytes>,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Result<H2Response, h2::Error> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://edgeslice.test{target}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut client = client.clone().ready().await?;
    let (response, mut stream) = client.send_request(b.body(()).unwrap(), body.is_none())?;
    if let Some(body) = body {
        stream.send_data(body, true)?;
    }
    let (parts, mut recv) = response.await?.into_parts();
    let mut body = Vec::new();
    while let Some(piece) = recv.data().await {
        let piece = piece?;
        let _ = recv.flow_control().release_capacity(piece.len());
        body.extend_from_slice(&piece);
    }
    Ok(H2Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// A GET of `target` read whole.
pub async fn get(
    client: &SendRequest<Bytes>,
    target: &str,
    headers: &[(&str, &str)],
) -> H2Response {
    send(client, Method::GET, target, headers, None)
        .await
        .unwrap_or_else(|e| panic!("GET {target} over h2: {e}"))
}

/// The value of the metric `name` (no labels) on the admin listener `admin`.
pub fn metric(admin: SocketAddr, name: &str) -> f64 {
    let resp = super::get(admin, "/metrics", &[]).expect("GET /metrics");
    let text = String::from_utf8(resp.body).expect("metrics are UTF-8");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// One frame: 3-byte length, type, flags, 4-byte stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// A HEADERS block (HPACK, literals without indexing) for `GET path`.
pub fn get_block(path: &str) -> Vec<u8> {
    // :method GET (static 2), :scheme http (static 6), :path (literal, name 4), :authority (literal, name 1).
    let mut b = vec![0x82, 0x86];
    b.push(0x04);
    b.push(path.len() as u8);
    b.extend_from_slice(path.as_bytes());
    b.push(0x01);
    b.push(4);
    b.extend_from_slice(b"test");
    b
}

/// A raw connection: preface and empty SETTINGS sent.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

/// A frame read from the server.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// Frames read from `s` until it closes or `limit` passes, and whether the
/// server closed the connection.
pub fn read_frames(s: &mut TcpStream, limit: Duration) -> (Vec<Frame>, bool) {
    let until = Instant::now() + limit;
    let mut wire = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < until {
        match super::read_some(s, &mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => wire.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while wire.len() >= at + 9 {
        let len = u32::from_be_bytes([0, wire[at], wire[at + 1], wire[at + 2]]) as usize;
        if wire.len() < at + 9 + len {
            break;
        }
        let id = u32::from_be_bytes(wire[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
        frames.push(Frame {
            kind: wire[at + 3],
            flags: wire[at + 4],
            stream: id,
            payload: wire[at + 9..at + 9 + len].to_vec(),
        });
        at += 9 + len;
    }
    (frames, closed)
}

/// The error code of the GOAWAY among `frames`, if one came.
pub fn goaway_code(frames: &[Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.kind == GOAWAY)
        .map(|f| u32::from_be_bytes(f.payload[4..8].try_into().unwrap()))
}

/// Read and drop whatever `s` has, so the server's writes never block.
pub fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    let _ = s.set_nonblocking(true);
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let _ = s.set_nonblocking(false);
}
