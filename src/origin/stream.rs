//! The byte stream under one origin connection: plain TCP, or TLS over TCP.
//!
//! [`crate::origin::pool`] connects ([`crate::origin::tls`] does the
//! handshake), splits an [`OriginStream`] into an [`OriginReadHalf`] under the
//! response decoder and an [`OriginWriteHalf`] for request heads and bodies,
//! and from then on neither it nor the keep-alive, retry, timeout and breaker
//! logic above it knows which kind it holds: every call dispatches on the
//! variant.
//!
//! Performance: one match per read or write; TLS records are decrypted into
//! the same framed read buffer a plain connection reads into.

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

/// A connection to an origin, plain or TLS.
pub enum OriginStream {
    /// `http://` or a bare `host:port`.
    Plain(TcpStream),
    /// `https://`: boxed, a rustls session is a few KiB.
    Tls(Box<ClientTlsStream<TcpStream>>),
}

/// Read half of an origin connection.
pub type OriginReadHalf = OwnedReadHalf<OriginStream>;
/// Write half of an origin connection.
pub type OriginWriteHalf = OwnedWriteHalf<OriginStream>;

// SAFETY: both variants are `Split` (TcpStream, and monoio-rustls's stream
// over a `Split` IO); the enum adds no state shared between the halves.
unsafe impl Split for OriginStream {}

impl AsyncReadRent for OriginStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            OriginStream::Plain(s) => s.read(buf).await,
            OriginStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            OriginStream::Plain(s) => s.readv(buf).await,
            OriginStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for OriginStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            OriginStream::Plain(s) => s.write(buf).await,
            OriginStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            OriginStream::Plain(s) => s.writev(buf).await,
            OriginStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            OriginStream::Plain(s) => s.flush().await,
            OriginStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            OriginStream::Plain(s) => s.shutdown().await,
            OriginStream::Tls(s) => s.shutdown().await,
        }
    }
}
