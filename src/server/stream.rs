//! A client connection's byte stream: plain TCP, or TLS over TCP
//! ([`crate::net::MaybeTls`] over this crate's rustls driver).
//!
//! Both HTTP/1.1 and HTTP/2 read and write a [`ClientStream`] and never
//! learn which it is, except where the difference matters to the bytes'
//! path: a cached slice goes from the page cache to a plain socket with
//! `sendfile` ([`crate::net::MaybeTls::plain`]), while over TLS it must
//! pass through rustls to be encrypted.

use monoio::io::{OwnedReadHalf, OwnedWriteHalf, Split};

use crate::net::MaybeTls;
use crate::server::tls::stream::TlsStream;

/// A client connection: plain TCP or TLS.
pub type ClientStream = MaybeTls<TlsStream>;
/// The read half of a client connection.
pub type ClientReadHalf = OwnedReadHalf<ClientStream>;
/// The write half of a client connection.
pub type ClientWriteHalf = OwnedWriteHalf<ClientStream>;

// SAFETY: TcpStream is `Split`, and a TLS session is one rustls state; the
// halves of one connection are used by one task at a time, a read and a
// write are never in flight together on a TLS session (the HTTP/1.1 loop
// reads a head or body, then writes the answer; HTTP/2 goes through its own
// single-task wrapper).
unsafe impl Split for ClientStream {}
