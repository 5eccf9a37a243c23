//! The seam between the request driver and the client connection.
//!
//! The driver ([`crate::proxy`]) answers every request through a
//! [`ResponseSink`] the connection lends it, and reads a request body through
//! the same value as a [`BodySource`]. It never learns which protocol the
//! client speaks: HTTP/1.1 (chunked framing, `Connection: close`, `100
//! Continue`) is the sink's business (`crate::server::sink`); HTTP/2 will be
//! another implementation of the same two traits.
//!
//! Errors: a client that is gone or too slow is an
//! [`Error::ClientIo`] or
//! [`Error::ClientSendTimeout`].

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::error::{Error, Result};

/// How long the body after a head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body follows (HEAD, 304, an empty answer).
    Empty,
    /// Exactly this many bytes; `Content-Length` is in the head.
    Known(u64),
    /// Not known in advance: the connection frames it (chunked, or until close).
    Unknown,
}

/// Where one answer goes.
#[allow(async_fn_in_trait)] // single-threaded runtimes: futures need not be Send
pub trait ResponseSink {
    /// Write the response head, then a body of `length`.
    async fn send_head(
        &mut self,
        status: StatusCode,
        headers: HeaderMap,
        length: BodyLength,
    ) -> Result<()>;

    /// Write body bytes.
    async fn send_body(&mut self, data: Bytes) -> Result<()>;

    /// Write `len` body bytes from `file` at `offset` (a cached slice). This
    /// default reads them into memory and sends them as [`send_body`] does;
    /// the HTTP/1.1 sink sends them from the page cache without copying them
    /// through the process.
    ///
    /// [`send_body`]: ResponseSink::send_body
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Result<()> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::CacheRead(e.to_string()))?;
        self.send_body(Bytes::from(buf)).await
    }

    /// The body is complete (a body of unknown length ends here).
    async fn end_body(&mut self) -> Result<()>;

    /// Tell a client that sent `Expect: 100-continue` to send its body.
    async fn send_continue(&mut self) -> Result<()>;

    /// The connection will not carry another request after this one.
    fn close_after(&mut self);
}

/// Where a request body comes from.
#[allow(async_fn_in_trait)]
pub trait BodySource {
    /// The body's length: [`BodyLength::Empty`] when there is none.
    fn body_length(&self) -> BodyLength;

    /// The next piece of the body, `None` at its end.
    async fn next_body_chunk(&mut self) -> Result<Option<Bytes>>;
}
