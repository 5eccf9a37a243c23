//! Per-worker accept loop and HTTP/1.1 keep-alive connections.
//!
//! Each worker accepts on its own `SO_REUSEPORT` listener and serves every
//! connection it accepted on its own thread: read a request head (bounded in
//! size and time), hand it to the route's [`Proxy`](crate::proxy::Proxy), loop while keep-alive allows.
//! A bad request gets a 4xx and the connection closes; the worker goes on.
//! A failure after the response head closes the connection, so a client never
//! takes a short body for a complete one. One summary line is logged per request.
//! A connection whose first bytes are the HTTP/2 preface (h2c with prior
//! knowledge) is handed to [`crate::server::h2`] instead.

use std::rc::Rc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use monoio::io::stream::Stream;
use monoio::io::{AsyncWriteRent, Splitable};
use monoio::net::{TcpListener, TcpStream};
use monoio_codec::FramedRead;
use monoio_http::h1::codec::decoder::{DecodeError, RequestHeadDecoder};
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::http::h1::{self, BodyFraming, HeadError, LimitedHead, READ_BUFFER};
use crate::http::sink::ResponseSink;
use crate::ops::metrics;
use crate::proxy::Exchange;
use crate::server::h2::{self, Preface};
use crate::server::limits::ClientLimits;
use crate::server::reload::WorkerRoutes;
use crate::server::sink::{ClientReader, H1Client};
use crate::server::stream::{ClientStream, ClientWriteHalf};
use crate::server::tls_stream::TlsStream;
use crate::server::{access, request};
use rustls::ServerConfig;
use std::sync::Arc;

use crate::server::worker::WorkerState;

/// Accept connections until `stop` resolves; each is served on this thread,
/// over TLS when `tls` is given.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        monoio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (_, limits) = routes.current();
                    if state.connections() >= limits.max_connections {
                        // Over the limit: close at once rather than queue without bound.
                        debug!(%peer, "connection limit reached, closing");
                        drop(stream);
                        continue;
                    }
                    monoio::spawn(serve_accepted(stream, peer, tls.clone(), routes.clone(), state.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Serve one accepted connection: the TLS handshake first when `tls` is
/// given (bounded by `tls_handshake_timeout`; a failure closes this
/// connection only), then its requests.
async fn serve_accepted(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
) {
    let _ = stream.set_nodelay(true);
    let open = state.open_connection();
    let client = open.id();
    let (_, limits) = routes.current();
    let stream = match tls {
        None => match h2::sniff_preface(&stream, limits.header_timeout).await {
            Preface::H2 => {
                let stream = ClientStream::Plain(stream);
                return h2::serve_h2(stream, peer, client, routes, state.clone()).await;
            }
            Preface::Closed => return,
            Preface::Other => {
                // sendfile needs a non-blocking socket; io_uring accepts
                // blocking ones. Set once here, not around every part:
                // io_uring polls a socket that would block either way.
                let _ = set_nonblocking(&stream);
                ClientStream::Plain(stream)
            }
        },
        Some(config) => {
            let handshake = TlsStream::accept(stream, config);
            match monoio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(tls)) => {
                    metrics::with(|m| m.tls_handshakes.inc());
                    let h2 = tls.alpn_protocol().is_some_and(|p| p == b"h2");
                    let stream = ClientStream::Tls(Box::new(tls));
                    if h2 {
                        return h2::serve_h2(stream, peer, client, routes, state.clone()).await;
                    }
                    stream
                }
                Ok(Err(e)) => {
                    metrics::with(|m| m.tls_handshake_failures.inc());
                    return debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics::with(|m| m.tls_handshake_failures.inc());
                    return debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    };
    serve_connection(stream, peer, client, routes, state.clone()).await
}

/// Serve the HTTP/1.1 requests of one client connection.
pub async fn serve_connection(
    stream: ClientStream,
    peer: std::net::SocketAddr,
    client_id: u64,
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
) {
    let (_, limits) = routes.current();
    let (r, mut writer) = stream.into_split();
    let decoder = LimitedHead::new(RequestHeadDecoder, limits.max_head_bytes);
    let mut reader = FramedRead::with_capacity(r, decoder, READ_BUFFER);
    loop {
        let head = match monoio::time::timeout(limits.header_timeout, reader.next()).await {
            Err(_) | Ok(None) => return,
            Ok(Some(Ok(mut head))) => match h1::request_target_form(&mut head) {
                Ok(()) => head,
                Err(err) => {
                    let version = head.version;
                    return refuse(&mut reader, &mut writer, peer, version, &limits, err).await;
                }
            },
            Ok(Some(Err(e))) => {
                let err = match e {
                    HeadError::TooLarge(limit) => Error::HeadTooLarge { limit },
                    HeadError::Decode(DecodeError::Io(e)) => {
                        return debug!(error = %e, "client read")
                    }
                    HeadError::Decode(DecodeError::Parse(httparse::Error::TooManyHeaders)) => {
                        Error::TooManyHeaders {
                            limit: limits.max_headers,
                        }
                    }
                    HeadError::Decode(e) => Error::BadRequest(e.to_string()),
                };
                let version = http::Version::HTTP_11;
                return refuse(&mut reader, &mut writer, peer, version, &limits, err).await;
            }
        };
        if state.draining() {
            // Shutting down: this request was not started, the client may retry it elsewhere.
            return;
        }
        let _busy = state.start_request();
        let started = Instant::now();
        let (router, limits) = routes.current();
        // A body's framing is this protocol's business: checked here, before
        // the driver sees the request (400 or 501 when it is wrong).
        let framing = limits
            .check(&head)
            .and_then(|()| h1::request_framing(&head.headers));
        let mut client = H1Client::new(
            &mut reader,
            &mut writer,
            head.version,
            *framing.as_ref().unwrap_or(&BodyFraming::Empty),
            &limits,
        );
        if !h1::wants_keep_alive(head.version, &head.headers) {
            client.close_after();
        }
        let head_only = head.method == http::Method::HEAD;
        let mut ex = Exchange::new(&mut client, peer, head_only).from_connection(client_id);
        let outcome = request::answer(&router, &head, &mut ex, framing.map(|_| ())).await;
        access::finish(&head, &ex, started, &outcome, limits.access_log);
        if outcome != access::Outcome::Ok {
            return;
        }
        if !client.keep_alive() || state.draining() {
            return close_tls(&mut writer, limits.send_timeout).await;
        }
    }
}

/// End a TLS session whose last answer is complete with close_notify, so a
/// body framed by the close is known to be whole; an aborted answer is
/// dropped without it, which a TLS client reads as truncation.
async fn close_tls(writer: &mut ClientWriteHalf, timeout: Duration) {
    // SAFETY: the write half is used only here, after the last answer.
    if unsafe { &*writer.0.get() }.plain().is_none() {
        let _ = monoio::time::timeout(timeout, writer.shutdown()).await;
    }
}

/// Answer a request head that cannot be served at all (malformed, too
/// large, no Host), then close the connection.
async fn refuse(
    reader: &mut ClientReader,
    writer: &mut ClientWriteHalf,
    peer: std::net::SocketAddr,
    version: http::Version,
    limits: &ClientLimits,
    err: Error,
) {
    let mut client = H1Client::new(reader, writer, version, BodyFraming::Empty, limits);
    client.close_after();
    let mut ex = Exchange::new(&mut client, peer, false);
    let _ = ex
        .send_plain(err.status(), HeaderMap::new(), &format!("{err}\n"))
        .await;
    info!(status = err.status().as_u16(), error = %err, "bad request");
}

/// `O_NONBLOCK` on `stream`'s descriptor.
fn set_nonblocking(stream: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    // SAFETY: fcntl on a descriptor `stream` owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
