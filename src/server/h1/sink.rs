//! The HTTP/1.1 side of one request: the [`ResponseSink`] and [`BodySource`]
//! an HTTP/1.1 connection lends the driver for each request it reads.
//!
//! Everything HTTP/1.1-specific about answering lives here: the head's
//! encoding, `Connection: close` when the connection ends after this answer,
//! chunked framing for a body of unknown length (or the close, for an
//! HTTP/1.0 client), `100 Continue`, the request body's framing and its size
//! limit, and the deadline a client has to accept bytes.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use monoio::io::AsyncWriteRentExt;
use monoio_codec::FramedRead;
use monoio_http::h1::codec::decoder::RequestHeadDecoder;

use crate::disk;
use crate::error::{Error, Result};
use crate::http::h1::{self, BodyDecoder, BodyFraming, LimitedHead};
use crate::http::sink::{part_fault, BodyLength, BodySource, FilePart, ResponseSink};

use crate::server::stream::{ClientReadHalf, ClientWriteHalf};

/// The request-head reader of a client connection.
pub type ClientReader = FramedRead<ClientReadHalf, LimitedHead<RequestHeadDecoder>>;

/// One request's view of an HTTP/1.1 client connection.
pub struct H1Client<'a> {
    reader: &'a mut ClientReader,
    writer: &'a mut ClientWriteHalf,
    version: Version,
    send_timeout: Duration,
    body_timeout: Duration,
    max_body_bytes: u64,
    keep_alive: bool,
    /// The answer being written is chunk-encoded.
    chunked: bool,
    body: BodyDecoder,
    body_read: u64,
}

impl<'a> H1Client<'a> {
    /// The client side of a request of `version` whose body is framed as
    /// `framing`, on the connection `reader`/`writer`.
    pub fn new(
        reader: &'a mut ClientReader,
        writer: &'a mut ClientWriteHalf,
        version: Version,
        framing: BodyFraming,
        limits: &crate::server::limits::ClientLimits,
    ) -> H1Client<'a> {
        H1Client {
            reader,
            writer,
            version,
            send_timeout: limits.send_timeout,
            body_timeout: limits.body_timeout,
            max_body_bytes: limits.max_body_bytes,
            keep_alive: true,
            chunked: false,
            body: BodyDecoder::new(framing),
            body_read: 0,
        }
    }

    /// Whether the connection may carry another request afterwards.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        match monoio::time::timeout(self.send_timeout, self.writer.write_all(data)).await {
            Ok((res, _)) => res.map(|_| ()).map_err(Error::ClientIo),
            Err(_) => Err(Error::ClientSendTimeout(
                self.send_timeout.as_millis() as u64
            )),
        }
    }
}

impl H1Client<'_> {
    /// A cached part to the client. Plain HTTP/1.1: what the page cache
    /// holds goes by `sendfile`, from the page cache to the socket, never
    /// through this process. A part not all there is read in first, off the
    /// event loop ([`crate::disk::read_into`]: io_uring, or the legacy
    /// driver's disk threads), into a buffer the worker reuses, so the
    /// worker never waits for the disk; then, if its pages are in the page
    /// cache now, it too goes by `sendfile`, else from the buffer (a slice
    /// read from disk for the first time is read around the page cache).
    /// Over TLS the bytes must be encrypted here: they are always read into
    /// memory that way.
    async fn sendfile(&mut self, part: impl FilePart) -> Result<()> {
        let plain = self.plain().is_some();
        if plain && disk::sendable(part.file(), part.offset(), part.len()) {
            disk::resident_hit(part.file(), part.offset());
            return self.send_resident(&part, part.offset(), part.len()).await;
        }
        let mut done = 0;
        while done < part.len() {
            let len = (part.len() - done).min(READ_AT_ONCE);
            let at = part.offset() + done;
            let buffer = disk::Buffer::take(len);
            let (read, buffer) = disk::read_into(part.file(), at, len, buffer).await;
            read.map_err(|e| part_fault(&part, e))?;
            if plain && disk::sendable(part.file(), at, len) {
                drop(buffer);
                self.send_resident(&part, at, len).await?;
            } else {
                self.write(Bytes::from_owner(buffer)).await?;
            }
            done += len;
        }
        Ok(())
    }

    /// The plain socket of this connection, `None` over TLS.
    fn plain(&self) -> Option<&monoio::net::TcpStream> {
        // SAFETY: the connection's write half is only used through this
        // sink, on this thread, and no other borrow of it is alive.
        (unsafe { &*self.writer.0.get() }).plain()
    }

    /// `len` bytes of `part`'s file from `offset`, all in the page cache,
    /// by `sendfile`. The socket is non-blocking (set once when the
    /// connection was accepted, `server::connection`; no `fcntl` per call):
    /// when its buffer is full, the worker waits for it to drain, at most
    /// the send timeout.
    async fn send_resident(&mut self, part: &impl FilePart, offset: u64, len: u64) -> Result<()> {
        let send_timeout = self.send_timeout;
        let Some(stream) = self.plain() else {
            unreachable!("sendfile on a plain connection only");
        };
        let file = part.file();
        let socket = stream.as_raw_fd();
        debug_assert!(
            // SAFETY: fcntl on an open descriptor.
            unsafe { libc::fcntl(socket, libc::F_GETFL) } & libc::O_NONBLOCK != 0,
            "a plain client socket is non-blocking from its accept"
        );
        let mut at = offset as libc::off_t;
        let end = offset + len;
        while (at as u64) < end {
            let want = (end - at as u64).min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the duration of the call.
            let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut at, want) };
            if sent > 0 {
                continue;
            }
            if sent == 0 {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the slot file ends at {at}, {} bytes short",
                        end - at as u64
                    ),
                );
                return Err(part_fault(part, e));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    match monoio::time::timeout(send_timeout, stream.writable(false)).await {
                        Ok(ready) => ready.map_err(Error::ClientIo)?,
                        Err(_) => {
                            return Err(Error::ClientSendTimeout(send_timeout.as_millis() as u64))
                        }
                    }
                }
                // The file's side failed, not the client's.
                Some(libc::EIO) | Some(libc::EOVERFLOW) => return Err(part_fault(part, e)),
                _ => return Err(Error::ClientIo(e)),
            }
        }
        Ok(())
    }
}

/// A part the page cache does not hold whole is read and written in pieces
/// of at most this much: memory per connection stays small.
const READ_AT_ONCE: u64 = 1024 * 1024;

impl ResponseSink for H1Client<'_> {
    async fn send_head(
        &mut self,
        status: StatusCode,
        mut headers: HeaderMap,
        length: BodyLength,
    ) -> Result<()> {
        self.chunked = false;
        if length == BodyLength::Unknown {
            headers.remove(header::CONTENT_LENGTH);
            if self.version == Version::HTTP_11 {
                self.chunked = true;
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            } else {
                // An HTTP/1.0 client learns the end of an unknown length by the close.
                self.keep_alive = false;
            }
        }
        if !self.keep_alive {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut out = Vec::with_capacity(512);
        h1::encode_response_head(status, &headers, &mut out);
        self.write(Bytes::from(out)).await
    }

    async fn send_body(&mut self, data: Bytes) -> Result<()> {
        if self.chunked {
            self.write(h1::chunk_header(data.len())).await?;
            self.write(data).await?;
            self.write(Bytes::from_static(b"\r\n")).await
        } else {
            self.write(data).await
        }
    }

    async fn send_file(&mut self, part: impl FilePart) -> Result<()> {
        if self.chunked {
            self.write(h1::chunk_header(part.len() as usize)).await?;
        }
        self.sendfile(part).await?;
        if self.chunked {
            self.write(Bytes::from_static(b"\r\n")).await?;
        }
        Ok(())
    }

    async fn end_body(&mut self) -> Result<()> {
        if std::mem::take(&mut self.chunked) {
            self.write(Bytes::from_static(b"0\r\n\r\n")).await?;
        }
        Ok(())
    }

    async fn send_continue(&mut self) -> Result<()> {
        self.write(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"))
            .await
    }

    async fn send_interim(&mut self, status: StatusCode, headers: HeaderMap) -> Result<()> {
        // RFC 9110 15.2: never to an HTTP/1.0 client.
        if self.version != Version::HTTP_11 {
            return Ok(());
        }
        let mut out = Vec::with_capacity(256);
        h1::encode_response_head(status, &headers, &mut out);
        self.write(Bytes::from(out)).await
    }

    fn close_after(&mut self) {
        self.keep_alive = false;
    }
}

impl BodySource for H1Client<'_> {
    fn body_length(&self) -> BodyLength {
        match self.body.framing() {
            BodyFraming::Empty => BodyLength::Empty,
            BodyFraming::Length(n) => BodyLength::Known(n),
            BodyFraming::Chunked | BodyFraming::UntilClose => BodyLength::Unknown,
        }
    }

    async fn next_body_chunk(&mut self) -> Result<Option<Bytes>> {
        let next = h1::next_body_chunk(self.reader, &mut self.body);
        let piece = match monoio::time::timeout(self.body_timeout, next).await {
            Ok(piece) => piece.map_err(Error::ClientIo)?,
            Err(_) => {
                return Err(Error::ClientBodyTimeout(
                    self.body_timeout.as_millis() as u64
                ))
            }
        };
        self.body_read += piece.as_ref().map_or(0, |p| p.len() as u64);
        if self.body_read > self.max_body_bytes {
            return Err(Error::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        Ok(piece)
    }
}
