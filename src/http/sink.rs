//! The seam between the request driver and the client connection.
//!
//! The driver ([`crate::proxy`]) answers every request through a
//! [`ResponseSink`] the connection lends it, and reads a request body through
//! the same value as a [`BodySource`]. It never learns which protocol the
//! client speaks: HTTP/1.1 (chunked framing, `Connection: close`, `100
//! Continue`) is the business of `crate::server::h1::sink`, HTTP/2's (a stream
//! per request, flow control) that of `crate::server::h2::sink`.
//!
//! Errors: a client that is gone or too slow is an
//! [`Error::ClientIo`] or
//! [`Error::ClientSendTimeout`].

use std::fs::File;

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

    /// Wait until the sink can take `len` more body bytes from memory
    /// without holding them beyond its bound (an HTTP/2 connection's
    /// queue); the driver asks before it takes a piece out of its order, so
    /// a piece that waits stays where the cache can swap it for its slot.
    /// Most sinks take what they are given at once.
    async fn admit(&mut self, len: u64) -> Result<()> {
        let _ = len;
        Ok(())
    }

    /// Write body bytes.
    async fn send_body(&mut self, data: Bytes) -> Result<()>;

    /// Write the body bytes of `part` (a cached slice's, in its slot file,
    /// which stays pinned while `part` lives). This default copies them
    /// into memory without the worker waiting for the disk ([`part_bytes`])
    /// and sends them as [`send_body`] does, for a sink that must see the
    /// bytes (TLS in user space, HTTP/2); the copy is the sink's, so the
    /// slot is unpinned as soon as it is made. The plain HTTP/1.1 sink sends
    /// them from the page cache with `sendfile` when they are there.
    ///
    /// [`send_body`]: ResponseSink::send_body
    async fn send_file(&mut self, part: impl FilePart) -> Result<()> {
        let bytes = part_bytes(&part).await?;
        drop(part);
        self.send_body(bytes).await
    }

    /// The body is complete (a body of unknown length ends here).
    async fn end_body(&mut self) -> Result<()>;

    /// Tell a client that sent `Expect: 100-continue` to send its body.
    async fn send_continue(&mut self) -> Result<()>;

    /// Pass on an interim (1xx) answer before the final head, where the
    /// client's protocol can carry one (not to an HTTP/1.0 client).
    async fn send_interim(&mut self, status: StatusCode, headers: HeaderMap) -> Result<()> {
        let _ = (status, headers);
        Ok(())
    }

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

/// Bytes of a file that must not change while this value lives: a cached
/// slice's part, its slot pinned.
pub trait FilePart: Send + 'static {
    /// The file.
    fn file(&self) -> &File;
    /// Where the part starts in the file.
    fn offset(&self) -> u64;
    /// The part's length.
    fn len(&self) -> u64;
    /// Whether the part holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its bytes could not be read as stored: they are never to be served
    /// again (a cached slice leaves the cache).
    fn fault(&self) {}
}

/// The bytes of `part`, in memory: what the page cache holds at once, the
/// rest read off the event loop ([`crate::disk::read`]); no mapping, so no
/// page fault waits for the disk and a file cut short cannot raise SIGBUS.
/// A part that cannot be read is faulted ([`FilePart::fault`]).
pub async fn part_bytes(part: &impl FilePart) -> Result<Bytes> {
    part_range(part, 0, part.len()).await
}

/// `len` bytes of `part` from `skip` into it, as [`part_bytes`].
pub async fn part_range(part: &impl FilePart, skip: u64, len: u64) -> Result<Bytes> {
    let at = part.offset() + skip;
    crate::disk::read(part.file(), at, len)
        .await
        .map_err(|e| part_fault(part, e))
}

/// A read of `part` failed with `e`: the part is faulted, and the error
/// says what failed.
pub fn part_fault(part: &impl FilePart, e: std::io::Error) -> Error {
    part.fault();
    Error::CacheRead {
        len: part.len(),
        offset: part.offset(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A sink that keeps what it is sent.
    #[derive(Default)]
    struct Collect(Vec<u8>);

    impl ResponseSink for Collect {
        async fn send_head(&mut self, _: StatusCode, _: HeaderMap, _: BodyLength) -> Result<()> {
            Ok(())
        }
        async fn send_body(&mut self, data: Bytes) -> Result<()> {
            self.0.extend_from_slice(&data);
            Ok(())
        }
        async fn end_body(&mut self) -> Result<()> {
            Ok(())
        }
        async fn send_continue(&mut self) -> Result<()> {
            Ok(())
        }
        fn close_after(&mut self) {}
    }

    /// A part of a shared file that says when it is released.
    struct Part {
        file: std::sync::Arc<File>,
        offset: u64,
        len: u64,
        released: std::sync::Arc<std::sync::atomic::AtomicBool>,
        faulted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl FilePart for Part {
        fn file(&self) -> &File {
            &self.file
        }
        fn offset(&self) -> u64 {
            self.offset
        }
        fn len(&self) -> u64 {
            self.len
        }
        fn fault(&self) {
            self.faulted
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Drop for Part {
        fn drop(&mut self) {
            self.released
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_sink_without_sendfile_gets_the_bytes_copied_and_a_bad_part_is_faulted() {
        let path = std::env::temp_dir().join(format!("edgeslice-part-{}", std::process::id()));
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&content)
            .unwrap();
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let faulted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let part = |offset, len| Part {
            file: file.clone(),
            offset,
            len,
            released: released.clone(),
            faulted: faulted.clone(),
        };
        let mut sink = Collect::default();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        for (offset, len) in [
            (0u64, 10u64),
            (4095, 2),
            (5000, 12_000),
            (19_999, 1),
            (7, 0),
            (4097, 290_000),
        ] {
            sink.0.clear();
            released.store(false, std::sync::atomic::Ordering::SeqCst);
            rt.block_on(sink.send_file(part(offset, len))).unwrap();
            let want = &content[offset as usize..(offset + len) as usize];
            assert_eq!(sink.0, want, "{len} bytes at {offset}");
            assert!(released.load(std::sync::atomic::Ordering::SeqCst));
        }
        assert!(!faulted.load(std::sync::atomic::Ordering::SeqCst));
        // Past the file's end: an error, and the part is faulted.
        let err = rt
            .block_on(sink.send_file(part(299_000, 2000)))
            .unwrap_err();
        assert!(matches!(err, Error::CacheRead { .. }), "{err}");
        assert!(faulted.load(std::sync::atomic::Ordering::SeqCst));
        let _ = std::fs::remove_file(&path);
    }
}
