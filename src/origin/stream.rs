//! The byte stream under one origin connection: plain TCP, or TLS over TCP.
//!
//! [`crate::origin::pool`] connects ([`crate::origin::tls`] does the
//! handshake), splits an [`OriginStream`] into an [`OriginReadHalf`] under the
//! response decoder and an [`OriginWriteHalf`] for request heads and bodies,
//! and from then on neither it nor the keep-alive, retry, timeout and breaker
//! logic above it knows which kind it holds: every call dispatches on the
//! variant.
//!
//! The stream is a [`crate::net::MaybeTls`]. Performance: one match per
//! read or write; TLS records are decrypted into the same framed read
//! buffer a plain connection reads into.

use monoio::io::{OwnedReadHalf, OwnedWriteHalf, Split};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;

use crate::net::MaybeTls;

/// A connection to an origin, plain (`http://` or a bare `host:port`) or
/// TLS (`https://`).
pub type OriginStream = MaybeTls<ClientTlsStream<TcpStream>>;

/// Read half of an origin connection.
pub type OriginReadHalf = OwnedReadHalf<OriginStream>;
/// Write half of an origin connection.
pub type OriginWriteHalf = OwnedWriteHalf<OriginStream>;

// SAFETY: both variants are `Split` (TcpStream, and monoio-rustls's stream
// over a `Split` IO); the enum adds no state shared between the halves.
unsafe impl Split for OriginStream {}
