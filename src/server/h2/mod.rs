//! HTTP/2 connections: each stream a request answered by the same driver
//! as HTTP/1.1, on the worker that accepted the connection.
//!
//! [`serve_h2`] takes any monoio stream that speaks HTTP/2 (plain TCP whose
//! first bytes were the connection preface, see [`sniff_preface`], or TLS
//! after ALPN chose `h2`), hands it to the hyperium `h2` crate through
//! [`crate::server::h2::transport`], and drives the connection in this task: `h2` is
//! poll-based and spawns nothing, so its I/O runs on the worker's loop.
//! Each accepted stream gets a task of its own, which turns the request into
//! a head ([`request_head`]), lends the driver an [`H2Client`] and races the
//! driver against the client's RST_STREAM: on a reset the driver's future
//! is dropped, and its slice fetches with it, as a closed HTTP/1.1
//! connection's are. An answer that fails after its head is reset with
//! `INTERNAL_ERROR`, never ended cleanly.
//!
//! Limits (`[server] h2_*`, [`H2Limits`]): concurrent streams (more are
//! refused), header list size, receive windows, the `h2` crate's own
//! rapid-reset and error-reset counters (GOAWAY past them), a control-frame
//! budget ([`crate::server::h2::frames`]), the preface within
//! `client_header_timeout_ms`, an idle connection (no stream open) closed
//! after the same time, and a stream whose client grants no window for
//! `client_send_timeout_ms` reset.

pub mod frames;
pub mod queue;
pub mod sink;
pub mod transport;

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::server::h2::transport::H2Io;
use crate::server::stream::ClientStream;
use bytes::Bytes;
use h2::server::{Builder, SendResponse};
use h2::{Reason, RecvStream};
use monoio::net::TcpStream;
use tracing::debug;

use crate::ops::metrics;
use crate::proxy::Exchange;
use crate::server::access::{self, Outcome};
use crate::server::h2::frames::{FrameBudget, FrameWatch, PREFACE};
use crate::server::h2::queue::SendQueue;
use crate::server::h2::sink::{request_head, H2Client};
use crate::server::limits::H2Limits;
use crate::server::reload::WorkerRoutes;
use crate::server::request;
use crate::server::worker::WorkerState;

/// Response bytes h2 may hold queued per stream beyond what was sent.
const SEND_BUFFER: usize = 256 * 1024;

/// What the first bytes of a plain connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The HTTP/2 connection preface: h2c with prior knowledge.
    H2,
    /// Anything else: HTTP/1.1.
    Other,
    /// The client closed, failed, or sent nothing in time.
    Closed,
}

/// Look at the first bytes of a freshly accepted connection without taking
/// them: the HTTP/2 preface, or not. Waits at most `within` for bytes; a
/// connection that sent none by then is [`Preface::Closed`], as an HTTP/1.1
/// client that sends no head would be.
///
/// Bytes that are only the start of the preface (a lone `P`) stay in the
/// socket, which therefore stays readable: the wait for more sets
/// `SO_RCVLOWAT` one past what is there, so the socket is ready again only
/// when another byte comes (or it closes), and a connection that sends `P`
/// and nothing else costs no wake-up until its deadline.
pub async fn sniff_preface(stream: &TcpStream, within: Duration) -> Preface {
    let deadline = Instant::now() + within;
    let seen = sniff(stream, deadline).await;
    set_rcvlowat(stream, 1);
    seen
}

async fn sniff(stream: &TcpStream, deadline: Instant) -> Preface {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        // SAFETY: a non-blocking peek into a local buffer of the length
        // given, on a socket this connection owns.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if n == 0 {
            return Preface::Closed;
        }
        if n > 0 {
            let n = n as usize;
            if buf[..n] != PREFACE[..n] {
                return Preface::Other;
            }
            if n == PREFACE.len() {
                return Preface::H2;
            }
            // Part of the preface: ready again when one more byte is there.
            if !set_rcvlowat(stream, n + 1) || left.is_zero() {
                return Preface::Closed;
            }
            match monoio::time::timeout(left, stream.readable(false)).await {
                Ok(Ok(())) => continue,
                _ => return Preface::Closed,
            }
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                match monoio::time::timeout(left, stream.readable(false)).await {
                    Ok(Ok(())) => {}
                    _ => return Preface::Closed,
                }
            }
            _ => return Preface::Closed,
        }
    }
}

/// `SO_RCVLOWAT`: the socket reads as readable once `bytes` are queued.
fn set_rcvlowat(stream: &TcpStream, bytes: usize) -> bool {
    let value = bytes as libc::c_int;
    // SAFETY: setsockopt on this connection's own socket, with an int.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The h2 settings of a connection from the limits.
fn builder(limits: &H2Limits) -> Builder {
    let mut b = Builder::new();
    b.max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .initial_window_size(limits.stream_window)
        .initial_connection_window_size(limits.connection_window)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .max_send_buffer_size(SEND_BUFFER);
    b
}

/// A stream the client opened: its request, and where its answer goes.
type NewStream = (http::Request<RecvStream>, SendResponse<Bytes>);

/// What woke the connection loop.
enum Event {
    /// A new stream (boxed: it is large and rare next to ticks), or the
    /// connection's end (`None`) or failure.
    Stream(Option<Result<Box<NewStream>, h2::Error>>),
    /// The client spent its control-frame budget.
    Flood,
    /// Time to look at the idle and closing deadlines.
    Tick,
    /// Sending what a pass left failed: the connection is gone.
    Broken(io::Error),
}

/// Serve an HTTP/2 connection on `io` (its preface not yet read) until it
/// closes. The caller counts the connection as open.
pub async fn serve_h2(
    io: ClientStream,
    peer: SocketAddr,
    client: u64,
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
) {
    let (_, limits) = routes.current();
    metrics::with(|m| m.h2_connections.inc());
    let budget = Rc::new(FrameBudget::new(limits.h2.max_control_frames_per_sec));
    let io = H2Io::new(io);
    let sender = io.sender();
    let handshake = builder(&limits.h2).handshake::<_, Bytes>(FrameWatch::new(io, budget.clone()));
    let mut conn = match monoio::time::timeout(limits.header_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return debug!(%peer, error = %e, "h2 handshake failed"),
        Err(_) => return debug!(%peer, "h2 preface timed out"),
    };
    let tick = (limits.header_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut idle_since = Some(Instant::now());
    let queue = SendQueue::new();
    // When GOAWAY went out: the connection gets the send timeout to finish.
    let mut closing: Option<Instant> = None;
    loop {
        let sleep = monoio::time::sleep(tick);
        let mut sleep = std::pin::pin!(sleep);
        let event = poll_fn(|cx| {
            if closing.is_none() && budget.tripped() {
                return Poll::Ready(Event::Flood);
            }
            // h2 flushes after every DATA frame of its pass; corked, the
            // records of the whole pass go out in one send after it.
            sender.cork();
            let accepted = conn.poll_accept(cx);
            if let Poll::Ready(Err(e)) = sender.poll_uncork(cx) {
                return Poll::Ready(Event::Broken(e));
            }
            if let Poll::Ready(next) = accepted {
                return Poll::Ready(Event::Stream(next.map(|r| r.map(Box::new))));
            }
            sleep.as_mut().poll(cx).map(|()| Event::Tick)
        })
        .await;
        match event {
            Event::Stream(None) => break,
            Event::Stream(Some(Err(e))) => {
                if e.reason() == Some(Reason::ENHANCE_YOUR_CALM) {
                    metrics::with(|m| m.h2_calm_closes.inc());
                }
                debug!(%peer, error = %e, "h2 connection failed");
                break;
            }
            Event::Stream(Some(Ok(stream))) => {
                let (req, mut respond) = *stream;
                if state.draining() {
                    respond.send_reset(Reason::REFUSED_STREAM);
                } else {
                    monoio::spawn(serve_stream(
                        req,
                        respond,
                        (peer, client),
                        routes.clone(),
                        state.clone(),
                        queue.clone(),
                    ));
                }
            }
            Event::Flood => {
                debug!(%peer, "h2 control frame budget spent: GOAWAY");
                metrics::with(|m| m.h2_calm_closes.inc());
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                closing = Some(Instant::now());
            }
            Event::Tick => {}
            Event::Broken(e) => {
                debug!(%peer, error = %e, "h2 connection failed");
                break;
            }
        }
        let now = Instant::now();
        if conn.has_streams() {
            idle_since = None;
        } else if idle_since.is_none() {
            idle_since = Some(now);
        }
        let idle = idle_since.is_some_and(|t| now.duration_since(t) >= limits.header_timeout);
        if closing.is_none() && (idle || state.draining()) {
            conn.graceful_shutdown();
            closing = Some(now);
        }
        if closing.is_some_and(|t| now.duration_since(t) >= limits.send_timeout) {
            debug!(%peer, "h2 connection did not close in time: dropped");
            break;
        }
    }
}

/// Answer one stream's request through the driver, racing it against the
/// client's reset of the stream.
async fn serve_stream(
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    (peer, client): (SocketAddr, u64),
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
    queue: Arc<SendQueue>,
) {
    let _busy = state.start_request();
    metrics::with(|m| m.h2_streams.inc());
    let started = Instant::now();
    let (router, limits) = routes.current();
    let (parts, body) = req.into_parts();
    let (head, length, checked) = request_head(parts, body.is_end_stream(), &limits);
    let head_only = head.method == http::Method::HEAD;
    let mut sink = H2Client::new(respond, body, length, head_only, &limits, queue);
    let watch = sink.watch();
    let mut ex = Exchange::new(&mut sink, peer, head_only).from_connection(client);
    let outcome = monoio::select! {
        outcome = request::serve(&router, &head, &mut ex, checked) => outcome,
        reason = watch.reset() => {
            metrics::with(|m| m.h2_client_resets.inc());
            Outcome::ClientAbort(format!("stream reset by the client: {reason}"))
        }
    };
    ex.sink.finish(outcome == Outcome::Ok);
    access::finish(&head, &ex, started, &outcome, limits.access_log);
}
