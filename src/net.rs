//! A connection's byte stream: plain TCP, or TLS over TCP.
//!
//! Clients ([`crate::server::stream::ClientStream`], TLS by this crate's
//! own rustls driver) and origins ([`crate::origin::stream::OriginStream`],
//! TLS by monoio-rustls) read and write a [`MaybeTls`] and never learn
//! which variant they hold, except where the difference matters to the
//! bytes' path: a cached slice goes from the page cache to a plain socket
//! with `sendfile` ([`MaybeTls::plain`]), while over TLS it must pass
//! through rustls to be encrypted. Each user says for its own TLS type why
//! the stream may be split into halves (`monoio::io::Split`).
//!
//! Performance: one match per read or write.

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A connection: plain TCP, or `T` (a TLS session) over TCP.
pub enum MaybeTls<T> {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP; boxed, a rustls session is a few KiB.
    Tls(Box<T>),
}

impl<T> MaybeTls<T> {
    /// The TCP socket, when no TLS sits on it (bytes may bypass this process).
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            MaybeTls::Plain(tcp) => Some(tcp),
            MaybeTls::Tls(_) => None,
        }
    }
}

impl<T: AsyncReadRent> AsyncReadRent for MaybeTls<T> {
    async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            MaybeTls::Plain(s) => s.read(buf).await,
            MaybeTls::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<B: IoVecBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            MaybeTls::Plain(s) => s.readv(buf).await,
            MaybeTls::Tls(s) => s.readv(buf).await,
        }
    }
}

impl<T: AsyncWriteRent> AsyncWriteRent for MaybeTls<T> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            MaybeTls::Plain(s) => s.write(buf).await,
            MaybeTls::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<B: IoVecBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            MaybeTls::Plain(s) => s.writev(buf).await,
            MaybeTls::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush().await,
            MaybeTls::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.shutdown().await,
            MaybeTls::Tls(s) => s.shutdown().await,
        }
    }
}
