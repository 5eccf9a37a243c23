//! Per-worker accept loop: each worker accepts on its own `SO_REUSEPORT`
//! listener and serves every connection it accepted on its own thread. A
//! connection is told apart here: TLS (handshake, then ALPN), HTTP/2 with
//! prior knowledge (the preface sniffed), or HTTP/1.1; then it goes to
//! [`crate::server::h2`] or [`crate::server::h1`].

use std::rc::Rc;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::ops::metrics;
use crate::server::h2::{self, Preface};
use crate::server::reload::WorkerRoutes;
use crate::server::stream::ClientStream;
use crate::server::tls::stream::TlsStream;
use rustls::ServerConfig;
use std::sync::Arc;

use crate::server::h1::serve_connection;
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
            _ = &mut stop => return stop_listening(&listener),
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
                // io_uring polls a socket that would block either way. The
                // HTTP/1.1 sink relies on it (no fcntl per sendfile).
                if let Err(e) = set_nonblocking(&stream) {
                    return debug!(%peer, error = %e, "cannot make the socket non-blocking: closed");
                }
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

/// Take `listener` out of its `SO_REUSEPORT` group at once. Closing it is
/// not enough: the accept abandoned in the ring still holds the socket
/// until the ring has run its cancellation, which a ring whose task work
/// waits for the worker's next wait for events (`DEFER_TASKRUN`) does
/// after the worker is gone; meanwhile the kernel still hands it new
/// connections, which are reset when it finally closes (a restarted node's
/// first clients, in `tests/cluster_ops.rs`).
fn stop_listening(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a descriptor `listener` owns; a listening
    // socket stops listening, its queued connections are reset.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
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
