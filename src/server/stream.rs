//! A client connection's byte stream: plain TCP, or TLS over TCP.
//!
//! Both HTTP/1.1 and HTTP/2 read and write a [`ClientStream`] and never
//! learn which it is, except where the difference matters to the bytes'
//! path: a cached slice goes from the page cache to a plain socket with
//! `sendfile` ([`ClientStream::plain`]), while over TLS it must pass
//! through rustls to be encrypted.

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::server::tls::stream::TlsStream;

/// The read half of a client connection.
pub type ClientReadHalf = OwnedReadHalf<ClientStream>;
/// The write half of a client connection.
pub type ClientWriteHalf = OwnedWriteHalf<ClientStream>;

/// A client connection: plain TCP or TLS.
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (rustls) over TCP; boxed, the session state is large.
    Tls(Box<TlsStream>),
}

// SAFETY: TcpStream is `Split`, and a TLS session is one rustls state; the halves of one connection are used by one task
// at a time, a read and a write are never in flight together on a TLS
// session (the HTTP/1.1 loop reads a head or body, then writes the answer;
// HTTP/2 goes through its own single-task wrapper).
unsafe impl Split for ClientStream {}

impl ClientStream {
    /// The TCP socket, when no TLS sits on it (bytes may bypass this process).
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            ClientStream::Plain(tcp) => Some(tcp),
            ClientStream::Tls(_) => None,
        }
    }
}

impl AsyncReadRent for ClientStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.read(buf).await,
            ClientStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.readv(buf).await,
            ClientStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for ClientStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.write(buf).await,
            ClientStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.writev(buf).await,
            ClientStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush().await,
            ClientStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.shutdown().await,
            ClientStream::Tls(s) => s.shutdown().await,
        }
    }
}
