//! The bytes under an HTTP/2 connection: the h2 crate's `AsyncRead` and
//! `AsyncWrite` on a client connection, plain or TLS, by readiness.
//!
//! The h2 crate polls tokio's I/O traits. monoio-compat adapts monoio's
//! owned-buffer I/O to them by copying every write into a buffer of its own
//! and every read out of one, a copy of each byte on top of the kernel's
//! (and of rustls's, over TLS). [`H2Io`] skips it: it sends with a
//! non-blocking `sendmsg` straight from h2's buffers (vectored: a DATA
//! frame's header and its payload go together) or hands them to rustls to
//! encrypt, reads with a non-blocking `recv` straight into h2's buffer (or
//! into rustls), and only when the socket is not ready waits for it, through
//! monoio's readiness futures. No kernel operation is ever in flight on
//! memory it does not own.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use monoio::net::TcpStream;
use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::server::stream::ClientStream;
use crate::server::tls::stream::SendNow;

/// A wait for the socket to be readable or writable.
type Ready = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// A TLS session's state when h2 runs over it.
struct Tls {
    conn: ServerConnection,
    /// Ciphertext received; `rbuf[rpos..rlen]` is not yet in rustls. The
    /// buffer keeps its length once grown to [`TLS_READ`], so a `recv` does
    /// not zero it again first.
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    /// Plaintext not handed to rustls yet (corked only): pieces too small
    /// for a record of their own, joined with what follows.
    stage: Vec<u8>,
}

/// The most plaintext a TLS record holds.
const RECORD: usize = 16 * 1024;
/// Corked, pieces shorter than this (with what is staged) are held for the
/// next: a frame's header, a HEADERS frame, the end of a frame that did not
/// fill its last record.
const STAGE_BELOW: usize = 1024;
/// Pieces of one write joined into records at most.
const JOINED: usize = 8;

/// An HTTP/2 connection's socket, plain or TLS: a handle h2 owns, and
/// the connection loop a second one ([`H2Io::sender`]).
///
/// Over TLS, records are corked while the loop lets h2 make a pass over its
/// frames ([`H2Io::cork`]): h2 flushes after every DATA frame, which would
/// cost a `sendmsg` (and a loopback packet) per frame; corked, its flushes
/// leave the records in rustls, and the loop sends them all at once when the
/// pass ends ([`H2Io::poll_uncork`]). rustls's buffer limit still bounds
/// them: when it is full, a write sends what it holds first, corked or not.
pub struct H2Io(Rc<RefCell<Io>>);

/// The connection's state, shared by the handles.
struct Io {
    tcp: Rc<TcpStream>,
    tls: Option<Box<Tls>>,
    read_ready: Option<Ready>,
    write_ready: Option<Ready>,
    corked: bool,
}

/// Ciphertext received at once.
const TLS_READ: usize = 32 * 1024;

impl H2Io {
    /// The connection `stream`, after its TLS handshake if it has one.
    pub fn new(stream: ClientStream) -> H2Io {
        H2Io(Rc::new(RefCell::new(Io::new(stream))))
    }

    /// A second handle on the same connection, for the loop that corks it.
    pub fn sender(&self) -> H2Io {
        H2Io(self.0.clone())
    }

    /// From now on, h2's flushes leave TLS records with rustls.
    pub fn cork(&self) {
        self.0.borrow_mut().corked = true;
    }

    /// Flushes send again, and what they left is sent now, as much as the
    /// socket takes (ready when all of it went, or with the socket's error).
    pub fn poll_uncork(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.0.borrow_mut();
        io.corked = false;
        io.poll_flush_tls(cx)
    }
}

impl Io {
    fn new(stream: ClientStream) -> Io {
        let (tcp, tls) = match stream {
            ClientStream::Plain(tcp) => (tcp, None),
            ClientStream::Tls(tls) => {
                let (tcp, conn, rbuf) = tls.into_parts();
                (
                    tcp,
                    Some(Box::new(Tls {
                        conn,
                        rlen: rbuf.len(),
                        rbuf,
                        rpos: 0,
                        stage: Vec::new(),
                    })),
                )
            }
        };
        Io {
            tcp: Rc::new(tcp),
            tls,
            read_ready: None,
            write_ready: None,
            corked: false,
        }
    }

    fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Ready when the socket may be readable (`write` false) or writable.
    fn poll_ready(&mut self, cx: &mut Context<'_>, write: bool) -> Poll<io::Result<()>> {
        let tcp = self.tcp.clone();
        let slot = if write {
            &mut self.write_ready
        } else {
            &mut self.read_ready
        };
        let wait = slot.get_or_insert_with(|| {
            Box::pin(async move {
                if write {
                    tcp.writable(false).await
                } else {
                    tcp.readable(false).await
                }
            })
        });
        let ready = wait.as_mut().poll(cx);
        if ready.is_ready() {
            *slot = None;
        }
        ready
    }

    /// Send what is staged and what rustls holds until it is all sent or
    /// the socket is full.
    fn poll_flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let fd = self.fd();
            let Some(tls) = self.tls.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if !tls.stage.is_empty() {
                let taken = tls.conn.writer().write(&tls.stage)?;
                tls.stage.drain(..taken);
            }
            if !tls.conn.wants_write() {
                if tls.stage.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match tls.conn.write_tls(&mut SendNow(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::task::ready!(self.poll_ready(cx, true))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Decrypted bytes into `buf`, reading ciphertext as needed.
    fn poll_read_tls(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let fd = self.fd();
            let tls = self.tls.as_mut().expect("a TLS connection");
            match tls.conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if tls.rpos == tls.rlen {
                if tls.rbuf.len() < TLS_READ {
                    tls.rbuf.resize(TLS_READ, 0);
                }
                match recv(fd, &mut tls.rbuf) {
                    Ok(n) => {
                        tls.rlen = n;
                        tls.rpos = 0;
                        if n == 0 {
                            // The end of the stream: rustls says whether it was clean.
                            let _ = tls.conn.read_tls(&mut io::empty());
                            let _ = tls.conn.process_new_packets();
                            continue;
                        }
                    }
                    Err(e) => {
                        tls.rlen = 0;
                        tls.rpos = 0;
                        if e.kind() == io::ErrorKind::WouldBlock {
                            std::task::ready!(self.poll_ready(cx, false))?;
                            continue;
                        }
                        if e.kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Poll::Ready(Err(e));
                    }
                }
            }
            let tls = self.tls.as_mut().expect("a TLS connection");
            let mut pending = &tls.rbuf[tls.rpos..tls.rlen];
            match tls.conn.read_tls(&mut pending) {
                Ok(n) => tls.rpos += n,
                // Plaintext not read yet fills rustls: it is read above first.
                Err(e) if e.kind() == io::ErrorKind::Other => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let processed = tls.conn.process_new_packets();
            // An alert for a bad record, or the answer to a key update.
            if let Poll::Ready(Err(e)) = self.poll_flush_tls(cx) {
                return Poll::Ready(Err(e));
            }
            if let Err(e) = processed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }
}

impl Tls {
    /// Hand `bufs` to rustls behind what is staged, in whole records: the
    /// bytes of `bufs` taken (0 when rustls is full). A small piece is
    /// staged; a longer one is cut at a record's end, so h2's frames (a
    /// 9-byte header before 16 KiB of payload) do not each leave a record
    /// of 9 bytes behind.
    fn write_corked(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Empty pieces are passed over: a write of something takes it.
        let bufs = || bufs.iter().filter(|b| !b.is_empty()).take(JOINED - 1);
        let staged = self.stage.len();
        let offered: usize = bufs().map(|b| b.len()).sum();
        let Some(mut left) = corked_cut(staged, offered) else {
            for b in bufs() {
                self.stage.extend_from_slice(b);
            }
            return Ok(offered);
        };
        let mut pieces = [IoSlice::new(&[]); JOINED];
        let mut n = 0;
        for piece in std::iter::once(&self.stage[..]).chain(bufs().map(|b| &b[..])) {
            if left == 0 || n == JOINED {
                break;
            }
            let cut = piece.len().min(left);
            pieces[n] = IoSlice::new(&piece[..cut]);
            left -= cut;
            n += 1;
        }
        let taken = self.conn.writer().write_vectored(&pieces[..n])?;
        if taken < staged {
            self.stage.drain(..taken);
            return Ok(0);
        }
        self.stage.clear();
        Ok(taken - staged)
    }
}

/// Corked, with `staged` bytes held and `offered` more: `None` to stage
/// them too, else how many of both to hand rustls (whole records when there
/// is more than one).
fn corked_cut(staged: usize, offered: usize) -> Option<usize> {
    let whole = staged + offered;
    if whole < STAGE_BELOW {
        return None;
    }
    Some(if whole > RECORD {
        whole / RECORD * RECORD
    } else {
        whole
    })
}

/// One non-blocking `recv` into `buf`.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length for the duration of the call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self.0.borrow_mut();
        if this.tls.is_some() {
            return this.poll_read_tls(cx, buf);
        }
        loop {
            // SAFETY: recv only writes into the unfilled part, and only the
            // `n` bytes it reports are marked initialised.
            let unfilled = unsafe { buf.unfilled_mut() };
            let into = unsafe {
                std::slice::from_raw_parts_mut(unfilled.as_mut_ptr().cast::<u8>(), unfilled.len())
            };
            match recv(this.fd(), into) {
                Ok(n) => {
                    // SAFETY: recv wrote `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::task::ready!(this.poll_ready(cx, false))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self.0.borrow_mut();
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        loop {
            let fd = this.fd();
            let Some(tls) = this.tls.as_mut() else {
                match SendNow(fd).write_vectored(bufs) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::task::ready!(this.poll_ready(cx, true))?;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            };
            if this.corked {
                match tls.write_corked(bufs) {
                    Ok(0) => {}
                    done => return Poll::Ready(done),
                }
                // rustls is full: send what it holds first.
                std::task::ready!(this.poll_flush_tls(cx))?;
                continue;
            }
            if !tls.stage.is_empty() {
                // Staged bytes left by a pass go first.
                std::task::ready!(this.poll_flush_tls(cx))?;
                continue;
            }
            // rustls takes what its buffer limit allows and encrypts it.
            let taken = match tls.conn.writer().write_vectored(bufs) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(e)),
            };
            // Send what the socket takes now; the rest stays in rustls,
            // bounded by its limit.
            let flushed = this.poll_flush_tls(cx);
            if taken > 0 {
                if let Poll::Ready(Err(e)) = flushed {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(taken));
            }
            std::task::ready!(flushed)?;
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.0.borrow_mut();
        if io.corked {
            return Poll::Ready(Ok(()));
        }
        io.poll_flush_tls(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self.0.borrow_mut();
        // What is staged goes before the close.
        std::task::ready!(this.poll_flush_tls(cx))?;
        if let Some(tls) = this.tls.as_mut() {
            tls.conn.send_close_notify();
        }
        std::task::ready!(this.poll_flush_tls(cx))?;
        // SAFETY: shutdown of this connection's own socket.
        unsafe { libc::shutdown(this.fd(), libc::SHUT_WR) };
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corked_frames_fill_whole_records() {
        // A DATA frame: 9 bytes of header, 16 KiB of payload. Its last 9
        // bytes are staged, then go before the next frame's.
        assert_eq!(corked_cut(0, 9 + RECORD), Some(RECORD));
        assert_eq!(corked_cut(0, 9), None);
        assert_eq!(corked_cut(9, 9 + RECORD), Some(RECORD));
        assert_eq!(corked_cut(18, 9 + RECORD), Some(RECORD));
        // A HEADERS frame is staged; with the next frame it fills a record.
        assert_eq!(corked_cut(0, 80), None);
        assert_eq!(corked_cut(80, 9 + 5000), Some(80 + 9 + 5000));
        // Less than a record, but not small: handed whole.
        assert_eq!(corked_cut(0, 2000), Some(2000));
        assert_eq!(corked_cut(100, 40_000), Some(2 * RECORD));
        assert_eq!(corked_cut(STAGE_BELOW - 1, 1), Some(STAGE_BELOW));
    }
}
