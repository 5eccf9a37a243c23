//! Origin subrequests: one keep-alive connection pool per worker and origin.
//!
//! [`OriginPool::request`] sends a request head and returns an
//! [`OriginResponse`] as soon as the response head has arrived; its body is
//! then pulled piece by piece with [`OriginResponse::chunk`], so the first bytes
//! of a slice can reach the client while the rest is still on the wire. A
//! connection goes back to the pool only when its response was read to the end.
//!
//! Connections are plain TCP or, for an `https://` origin, TLS over TCP
//! ([`crate::origin::stream`]); the handshake is part of connecting, inside
//! the connect timeout, and nothing past it knows which kind it holds.
//!
//! Errors: connect failures, socket errors and timeouts are origin errors
//! ([`Error::OriginConnect`], [`Error::OriginIo`], [`Error::OriginTimeout`]);
//! a refused TLS handshake is [`Error::OriginTls`], logged with rustls's
//! reason and counted by the breaker as a connect failure.
//! A pooled connection the origin closed while idle is retried once on a new
//! connection before any byte of the answer was seen.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use monoio::io::{AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use monoio_codec::FramedRead;
use monoio_http::common::response::ResponseHead;
use monoio_http::h1::codec::decoder::{DecodeError, ResponseHeadDecoder};
use tracing::warn;

use crate::error::{Error, Result, Waiting};
use crate::http::h1::{self, BodyDecoder, BodyFraming, HeadError, LimitedHead, ORIGIN_READ_BUFFER};
use crate::http::sink::{BodyLength, BodySource};
use crate::ops::metrics::{self, FailureReason};
use crate::origin::breaker::{Breaker, Failure};
use crate::origin::stream::{OriginReadHalf, OriginStream, OriginWriteHalf};
use crate::origin::tls::{HandshakeError, OriginTls};

/// A target's hash, to tell one object's failures from the origin's.
fn target_hash(target: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    h.finish()
}

/// Largest response head accepted from an origin.
const MAX_ORIGIN_HEAD: usize = 64 * 1024;

/// How a worker reaches one origin.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    /// The origin as configured (`host:port`, `https://host`), for messages.
    pub name: String,
    /// Resolved addresses, tried in order.
    pub addrs: Vec<SocketAddr>,
    /// TLS for an `https://` origin; `None` speaks plain HTTP.
    pub tls: Option<OriginTls>,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a response head.
    pub head_timeout: Duration,
    /// Bound on the gap between body bytes.
    pub read_timeout: Duration,
    /// Idle connections kept per worker.
    pub max_idle: usize,
    /// Idle connections older than this are closed instead of reused.
    pub idle_timeout: Duration,
    /// The origin's circuit breaker, shared by all workers.
    pub breaker: Arc<Breaker>,
    /// A peer node of the cluster, not an origin: its exchanges are kept
    /// out of the `edgeslice_origin_*` metrics (the cluster counts its own).
    pub peer: bool,
}

type HeadReader = FramedRead<OriginReadHalf, LimitedHead<ResponseHeadDecoder>>;

/// One HTTP/1.1 connection to the origin.
pub struct OriginConn {
    reader: HeadReader,
    writer: OriginWriteHalf,
    idle_since: Instant,
}

impl OriginConn {
    fn new(stream: OriginStream) -> OriginConn {
        let (r, w) = stream.into_split();
        let decoder = LimitedHead::new(ResponseHeadDecoder, MAX_ORIGIN_HEAD);
        OriginConn {
            reader: FramedRead::with_capacity(r, decoder, ORIGIN_READ_BUFFER),
            writer: w,
            idle_since: Instant::now(),
        }
    }
}

/// Keep-alive connections of one worker to one origin; single-threaded, no locks.
pub struct OriginPool {
    settings: OriginSettings,
    idle: RefCell<Vec<OriginConn>>,
}

impl OriginPool {
    /// An empty pool for `settings`.
    pub fn new(settings: OriginSettings) -> Rc<OriginPool> {
        Rc::new(OriginPool {
            settings,
            idle: RefCell::new(Vec::new()),
        })
    }

    /// The origin's settings.
    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    /// A new connection: each address in turn until one accepts, the TLS
    /// handshake included in the connect timeout. A refused handshake ends
    /// the attempt (another address would show the same certificate).
    async fn connect(&self) -> Result<OriginConn> {
        let mut last = None;
        for addr in &self.settings.addrs {
            match monoio::time::timeout(self.settings.connect_timeout, self.open(*addr)).await {
                Ok(Ok(stream)) => return Ok(OriginConn::new(stream)),
                Ok(Err(HandshakeError::Io(e))) => last = Some(e),
                Ok(Err(HandshakeError::Refused(reason))) => {
                    let origin = &self.settings.name;
                    warn!(origin, %addr, reason, "TLS handshake with the origin failed");
                    return Err(Error::OriginTls {
                        origin: origin.clone(),
                        reason,
                    });
                }
                Err(_) => return Err(Error::OriginTimeout(Waiting::Connect)),
            }
        }
        Err(Error::OriginConnect {
            addr: self.settings.name.clone(),
            source: last.unwrap_or_else(|| io::Error::other("no address")),
        })
    }

    /// A TCP connection to `addr`, with TLS over it for an `https://` origin.
    async fn open(&self, addr: SocketAddr) -> std::result::Result<OriginStream, HandshakeError> {
        let tcp = TcpStream::connect_addr(addr)
            .await
            .map_err(HandshakeError::Io)?;
        let _ = tcp.set_nodelay(true);
        match &self.settings.tls {
            None => Ok(OriginStream::Plain(tcp)),
            Some(tls) => Ok(OriginStream::Tls(Box::new(tls.handshake(tcp).await?))),
        }
    }

    fn checkout(&self) -> Option<OriginConn> {
        let mut idle = self.idle.borrow_mut();
        // Most recently used first; older ones past the idle timeout are closed.
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < self.settings.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, mut conn: OriginConn) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.settings.max_idle && conn.reader.read_buffer().is_empty() {
            conn.idle_since = Instant::now();
            idle.push(conn);
        }
    }

    /// Send a bodiless request and wait for the response head.
    pub async fn request(
        self: &Rc<Self>,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<OriginResponse> {
        self.measured(target, self.request_once(method, target, headers))
            .await
    }

    /// Run one origin exchange under the breaker, counting it in the metrics.
    async fn measured(
        &self,
        target: &str,
        exchange: impl std::future::Future<Output = Result<OriginResponse>>,
    ) -> Result<OriginResponse> {
        let breaker = &self.settings.breaker;
        if !breaker.admit() {
            return Err(Error::OriginUnavailable {
                origin: self.settings.name.clone(),
                retry_after: breaker.retry_after_secs(),
            });
        }
        if self.settings.peer {
            return exchange.await;
        }
        let started = Instant::now();
        metrics::with(|m| {
            m.origin_requests.inc();
            m.origin_in_flight.inc();
        });
        let result = exchange.await;
        metrics::with(|m| {
            m.origin_in_flight.sub(1);
            m.origin_duration.observe(started.elapsed());
            let reason = match &result {
                Err(Error::OriginTimeout(_)) => Some(FailureReason::Timeout),
                Ok(r) if r.head.status.is_server_error() => Some(FailureReason::ServerError),
                Ok(r) if r.head.status.is_client_error() => Some(FailureReason::ClientError),
                Err(Error::OriginTls { .. }) => Some(FailureReason::Tls),
                Err(Error::OriginConnect { .. } | Error::OriginIo(_)) => {
                    Some(FailureReason::Connect)
                }
                _ => None,
            };
            if let Some(reason) = reason {
                m.origin_failures.inc(reason);
            }
        });
        // Any answer, 5xx included, shows the origin is up; only transport
        // failures count against it (see crate::origin::breaker).
        match &result {
            Ok(_) => breaker.success(),
            Err(
                Error::OriginConnect { .. }
                | Error::OriginTls { .. }
                | Error::OriginTimeout(Waiting::Connect),
            ) => breaker.failure(Failure::Connect),
            Err(Error::OriginIo(_) | Error::OriginTimeout(_)) => {
                breaker.failure(Failure::Head(target_hash(target)))
            }
            Err(_) => {}
        }
        result
    }

    async fn request_once(
        self: &Rc<Self>,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<OriginResponse> {
        let mut head = Vec::with_capacity(512);
        h1::encode_bodiless_request_head(method, target, headers, &mut head);
        let head = Bytes::from(head);
        // A pooled connection may have been closed by the origin while idle:
        // if it fails before any answer byte, the request goes once more on a new one.
        if let Some(conn) = self.checkout() {
            match self.exchange(conn, head.clone(), method).await {
                Ok(resp) => return Ok(resp),
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
        }
        let conn = self.connect().await?;
        self.exchange_fresh(conn, head, method).await
    }

    /// Send a request whose body is streamed from `body`, on a new connection
    /// (a body cannot be replayed on a stale pooled one). `headers` carry its
    /// framing: `Content-Length`, or `Transfer-Encoding: chunked`.
    pub async fn request_with_body(
        self: &Rc<Self>,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &mut impl BodySource,
    ) -> Result<OriginResponse> {
        self.measured(target, self.send_with_body(method, target, headers, body))
            .await
    }

    async fn send_with_body(
        self: &Rc<Self>,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &mut impl BodySource,
    ) -> Result<OriginResponse> {
        let mut conn = self.connect().await?;
        let mut head = Vec::with_capacity(512);
        h1::encode_request_head(method, target, headers, &mut head);
        // An origin that stops reading the body is as slow as one that
        // stops sending: the gap allowed is the read timeout's.
        let gap = self.settings.read_timeout;
        let w = &mut conn.writer;
        write_within(w, Bytes::from(head), gap).await?;
        let chunked = body.body_length() == BodyLength::Unknown;
        while let Some(data) = body.next_body_chunk().await? {
            if chunked {
                write_within(w, h1::chunk_header(data.len()), gap).await?;
                write_within(w, data, gap).await?;
                write_within(w, Bytes::from_static(b"\r\n"), gap).await?;
            } else {
                write_within(w, data, gap).await?;
            }
        }
        if chunked {
            write_within(w, Bytes::from_static(b"0\r\n\r\n"), gap).await?;
        }
        self.read_head(conn, method).await
    }

    async fn exchange(
        self: &Rc<Self>,
        mut conn: OriginConn,
        head: Bytes,
        method: &Method,
    ) -> std::result::Result<OriginResponse, Option<Error>> {
        if write(&mut conn.writer, head).await.is_err() {
            return Err(None);
        }
        // Only a closed or reset socket means "stale"; a timeout is the origin's answer.
        self.read_head(conn, method).await.map_err(|e| match e {
            Error::OriginIo(_) => None,
            other => Some(other),
        })
    }

    async fn exchange_fresh(
        self: &Rc<Self>,
        mut conn: OriginConn,
        head: Bytes,
        method: &Method,
    ) -> Result<OriginResponse> {
        write(&mut conn.writer, head).await?;
        self.read_head(conn, method).await
    }

    async fn read_head(
        self: &Rc<Self>,
        mut conn: OriginConn,
        method: &Method,
    ) -> Result<OriginResponse> {
        let deadline = monoio::time::Instant::now() + self.settings.head_timeout;
        let mut count = 0;
        let mut interim = Vec::new();
        let head = loop {
            let head = next_head(&mut conn, deadline).await?;
            if !head.status.is_informational() {
                break head;
            }
            // 1xx (102, 103 Early Hints, an unasked 100 Continue) is not the
            // answer: it is kept to pass on, and the final head read within
            // the same deadline. A 100 answers an `Expect` this node never
            // sends (it answers the client's itself): dropped. 101 is never
            // asked for (Upgrade is not forwarded).
            count += 1;
            if head.status == StatusCode::SWITCHING_PROTOCOLS || count > MAX_INTERIM {
                return Err(Error::OriginProtocol(format!(
                    "got interim answer {} (number {count}), expected a final answer",
                    head.status
                )));
            }
            if head.status != StatusCode::CONTINUE {
                interim.push(head);
            }
        };
        let framing = h1::response_framing(method, head.status, &head.headers)?;
        let reusable =
            framing != BodyFraming::UntilClose && h1::wants_keep_alive(head.version, &head.headers);
        Ok(OriginResponse {
            head,
            interim,
            body: BodyDecoder::new(framing),
            conn: Some(conn),
            reusable,
            pool: self.clone(),
        })
    }
}

/// Interim (1xx) answers skipped before a final one; more is an origin fault.
const MAX_INTERIM: usize = 16;

/// The next response head on `conn`, by `deadline`.
async fn next_head(conn: &mut OriginConn, deadline: monoio::time::Instant) -> Result<ResponseHead> {
    match monoio::time::timeout_at(deadline, futures_next(&mut conn.reader)).await {
        Err(_) => Err(Error::OriginTimeout(Waiting::ResponseHead)),
        Ok(None) => Err(Error::OriginIo(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "origin closed the connection before a response head",
        ))),
        Ok(Some(Err(HeadError::TooLarge(n)))) => Err(Error::OriginProtocol(format!(
            "response head larger than {n} bytes"
        ))),
        // A socket error (a TLS connection closed without close_notify
        // is one) may mean a stale pooled connection, not a bad answer.
        Ok(Some(Err(HeadError::Decode(DecodeError::Io(e))))) => Err(Error::OriginIo(e)),
        Ok(Some(Err(HeadError::Decode(e)))) => {
            Err(Error::OriginProtocol(format!("response head: {e}")))
        }
        Ok(Some(Ok(head))) => Ok(head),
    }
}

async fn futures_next(
    reader: &mut HeadReader,
) -> Option<std::result::Result<ResponseHead, HeadError>> {
    use monoio::io::stream::Stream;
    reader.next().await
}

/// [`write`], within `gap`.
async fn write_within(writer: &mut OriginWriteHalf, data: Bytes, gap: Duration) -> Result<()> {
    match monoio::time::timeout(gap, write(writer, data)).await {
        Ok(written) => written,
        Err(_) => Err(Error::OriginTimeout(Waiting::RequestBody)),
    }
}

async fn write(writer: &mut OriginWriteHalf, data: Bytes) -> Result<()> {
    let (res, _) = writer.write_all(data).await;
    res.map(|_| ()).map_err(Error::OriginIo)
}

/// An origin answer whose head has arrived and whose body is read on demand.
pub struct OriginResponse {
    /// Status and headers as the origin sent them.
    pub head: ResponseHead,
    /// The interim (1xx) answers that came before, 100 left out: passed on
    /// to the client of the answer relayed, never stored.
    pub interim: Vec<ResponseHead>,
    body: BodyDecoder,
    conn: Option<OriginConn>,
    reusable: bool,
    pool: Rc<OriginPool>,
}

impl OriginResponse {
    /// How the body is delimited.
    pub fn framing(&self) -> BodyFraming {
        self.body.framing()
    }

    /// The next piece of the body, `None` once it is complete. The connection
    /// returns to the pool at that point when it can carry another request.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let timeout = self.pool.settings.read_timeout;
        let piece = match monoio::time::timeout(
            timeout,
            h1::next_body_chunk(&mut conn.reader, &mut self.body),
        )
        .await
        {
            Err(_) => {
                self.conn = None;
                return Err(Error::OriginTimeout(Waiting::BodyBytes));
            }
            Ok(Err(e)) => {
                self.conn = None;
                return Err(Error::OriginIo(e));
            }
            Ok(Ok(piece)) => piece,
        };
        match piece {
            Some(data) => {
                let n = data.len() as u64;
                match self.pool.settings.peer {
                    false => metrics::with(|m| m.origin_bytes.add(n)),
                    true => metrics::with(|m| m.peer_bytes.add(n)),
                }
                Ok(Some(data))
            }
            None => {
                if let Some(conn) = self.conn.take() {
                    if self.reusable {
                        self.pool.checkin(conn);
                    }
                }
                Ok(None)
            }
        }
    }
}
