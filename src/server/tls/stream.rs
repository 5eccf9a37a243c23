//! A client's TLS session on a monoio TCP stream, sending records straight
//! from rustls to the socket.
//!
//! monoio-rustls (which the origin side uses) copies every record from
//! rustls into a 16 KiB buffer of its own and writes that, one write per
//! 16 KiB. On the hit path, where the bytes of every answer pass through
//! here, `memmove` was 15% of the CPU samples (`perf` on bench scenario
//! (f)), that copy one of the two made per byte.
//! This stream lets rustls encrypt up to [`WRITE_LIMIT`] at a time and hands
//! its records to the kernel with one `sendmsg(MSG_DONTWAIT)` over all of
//! them: no copy, no buffer of our own, and nothing the kernel reads after
//! the call returns, so a dropped future leaves no operation in flight on
//! rustls's memory. When the socket is full the task waits until it is
//! writable. Reads go through monoio's owned-buffer reads, as for plain TCP.
//!
//! Errors: rustls's refusals (a bad record, an alert) are `InvalidData`; a
//! peer that closes without `close_notify` is `UnexpectedEof`.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ServerConfig, ServerConnection};

/// Plaintext rustls takes (and encrypts) per write; records of it go out in
/// one `sendmsg`.
pub const WRITE_LIMIT: usize = 256 * 1024;

/// Ciphertext read from the socket at once.
const READ_BUFFER: usize = 32 * 1024;

/// A server-side TLS session over TCP.
pub struct TlsStream {
    tcp: TcpStream,
    conn: ServerConnection,
    /// Ciphertext read from the socket; `rbuf[rpos..]` is not yet in rustls.
    rbuf: Vec<u8>,
    rpos: usize,
}

impl TlsStream {
    /// Run the server side of a handshake on `tcp` with `config`.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(WRITE_LIMIT));
        let mut stream = TlsStream {
            tcp,
            conn,
            rbuf: Vec::with_capacity(READ_BUFFER),
            rpos: 0,
        };
        while stream.conn.is_handshaking() {
            stream.flush_tls().await?;
            if !stream.conn.is_handshaking() {
                break;
            }
            if !stream.fill().await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed during the TLS handshake",
                ));
            }
        }
        // TLS 1.3 session tickets follow the handshake.
        stream.flush_tls().await?;
        Ok(stream)
    }

    /// The socket, the session and the ciphertext received but not yet
    /// given to rustls, for a reader of another kind (HTTP/2).
    pub fn into_parts(self) -> (TcpStream, ServerConnection, Vec<u8>) {
        let pending = self.rbuf[self.rpos..].to_vec();
        (self.tcp, self.conn, pending)
    }

    /// The protocol ALPN chose, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Hand rustls the ciphertext read so far and decrypt what it can; a
    /// rustls refusal is sent to the client as an alert, then returned.
    async fn feed(&mut self) -> io::Result<()> {
        while self.rpos < self.rbuf.len() {
            let mut pending = &self.rbuf[self.rpos..];
            match self.conn.read_tls(&mut pending) {
                Ok(0) => break,
                Ok(n) => self.rpos += n,
                // Plaintext not yet read fills rustls: the reader takes it first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush_tls().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(())
    }

    /// Feed ciphertext to rustls: what is left of the last read, else a new
    /// read from the socket. `false` at the end of the TCP stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.rpos < self.rbuf.len() {
            self.feed().await?;
            return Ok(true);
        }
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.clear();
        let (res, buf) = self.tcp.read(buf).await;
        self.rbuf = buf;
        self.rpos = 0;
        let n = res?;
        if n == 0 {
            // The end of the stream: rustls decides whether it was clean.
            let _ = self.conn.read_tls(&mut io::empty());
            let _ = self.conn.process_new_packets();
            return Ok(false);
        }
        self.feed().await?;
        Ok(true)
    }

    /// Send every record rustls holds.
    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut socket = SendNow(self.tcp.as_raw_fd());
            match self.conn.write_tls(&mut socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.tcp.writable(false).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Decrypted bytes into `out`: `Ok(0)` after the client's close_notify.
    async fn read_plain(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let more = self.fill().await?;
            // Answer what the client's records asked for (a key update).
            self.flush_tls().await?;
            if !more {
                // No close_notify came: the next read reports it.
                return match self.conn.reader().read(out) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    }
                    Err(e) => Err(e),
                };
            }
        }
    }

    /// Encrypt and send up to [`WRITE_LIMIT`] bytes of `data`.
    async fn write_plain(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.conn.writer().write(data)?;
            self.flush_tls().await?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

/// `io::Write` onto a socket with one non-blocking `sendmsg` per call:
/// rustls passes all its pending records at once.
pub(crate) struct SendNow(pub(crate) RawFd);

impl Write for SendNow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: a zeroed msghdr is valid; it points at `bufs` (IoSlice is
        // ABI-compatible with iovec) only for the duration of the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        // SAFETY: the descriptor is this connection's open socket.
        let sent = unsafe { libc::sendmsg(self.0, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the slice covers the buffer's capacity, which it owns; the
        // bytes written are marked initialised below.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        match self.read_plain(out).await {
            Ok(n) => {
                // SAFETY: `n` bytes were just written.
                unsafe { buf.set_init(n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // The first buffer only: a short read is allowed.
        // SAFETY: the raw buffer stands for the first iovec of `buf`, alive
        // for this call.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes of the first iovec were written.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the buffer's initialised bytes, alive for this call.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plain(data).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer stands for the first iovec of `buf`.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.tcp.shutdown().await
    }
}
