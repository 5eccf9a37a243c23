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
    /// which stays pinned while `part` lives). This default reads or maps
    /// them ([`part_bytes`]) and sends them as [`send_body`] does, for a sink
    /// that must see the bytes (TLS in user space, HTTP/2): a mapping owns
    /// `part`, so the slot stays pinned until the last reference to the
    /// bytes goes, however long the sink queues them. The plain HTTP/1.1
    /// sink sends them from the page cache with `sendfile` instead.
    ///
    /// [`send_body`]: ResponseSink::send_body
    async fn send_file(&mut self, part: impl FilePart) -> Result<()> {
        self.send_body(part_bytes(part)?).await
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
}

/// The bytes of `part`: read (`pread`) when small, and `part` released at
/// once; mapped when large, the mapping owning `part`, so its file range is
/// kept as it is for as long as any clone of the bytes lives.
pub fn part_bytes(part: impl FilePart) -> Result<Bytes> {
    let (offset, len) = (part.offset(), part.len());
    if len <= READ_NOT_MAP {
        return file_range(part.file(), offset, len);
    }
    let (map, skip) = map_pages(part.file(), offset, len)?;
    let owner = PinnedMap { map, _part: part };
    Ok(Bytes::from_owner(owner).slice(skip..))
}

/// A mapping and what keeps its file range from changing.
struct PinnedMap<P> {
    map: memmap2::Mmap,
    _part: P,
}

impl<P> AsRef<[u8]> for PinnedMap<P> {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Parts up to this size are read into memory rather than mapped: a
/// mapping costs page faults and, when it goes, a TLB shootdown on every
/// core the process runs on, which cost more than copying a small part.
pub const READ_NOT_MAP: u64 = 256 * 1024;

/// `len` bytes of `file` from `offset`: read (`pread`) when small, mapped
/// when large.
pub fn file_range(file: &File, offset: u64, len: u64) -> Result<Bytes> {
    if len > READ_NOT_MAP {
        return map_range(file, offset, len);
    }
    let mut buf = vec![0u8; len as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset)
        .map_err(|e| Error::CacheRead(format!("reading {len} bytes at {offset}: {e}")))?;
    Ok(Bytes::from(buf))
}

/// `len` bytes of `file` from `offset`, mapped read-only: the bytes are the
/// page cache's, shared, not copied. The caller keeps the range from being
/// rewritten while they are in use ([`part_bytes`] does).
fn map_range(file: &File, offset: u64, len: u64) -> Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let (map, skip) = map_pages(file, offset, len)?;
    Ok(Bytes::from_owner(map).slice(skip..))
}

/// The pages holding `len` bytes of `file` from `offset`, mapped, and where
/// the bytes start in the mapping.
fn map_pages(file: &File, offset: u64, len: u64) -> Result<(memmap2::Mmap, usize)> {
    // Mappings start on a page: map from the page holding `offset`.
    // SAFETY: sysconf has no preconditions.
    let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64;
    let start = offset - offset % page;
    let skip = (offset - start) as usize;
    // SAFETY: the caller keeps the range from being rewritten while the
    // mapping lives (a pinned slot is never reused).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(skip + len as usize)
            .map(file)
    }
    .map_err(|e| Error::CacheRead(format!("mapping {len} bytes at {offset}: {e}")))?;
    Ok((map, skip))
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
    }

    impl Drop for Part {
        fn drop(&mut self) {
            self.released
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_sink_without_sendfile_gets_the_bytes_read_or_mapped() {
        let path = std::env::temp_dir().join(format!("edgeslice-map-{}", std::process::id()));
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&content)
            .unwrap();
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let part = |offset, len| Part {
            file: file.clone(),
            offset,
            len,
            released: released.clone(),
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
            // Past READ_NOT_MAP: mapped.
            (4097, 290_000),
        ] {
            sink.0.clear();
            rt.block_on(sink.send_file(part(offset, len))).unwrap();
            let want = &content[offset as usize..(offset + len) as usize];
            assert_eq!(sink.0, want, "{len} bytes at {offset}");
        }
        // Mapped bytes keep their part (its slot pinned) until they go.
        let seen = |r: &std::sync::atomic::AtomicBool| r.load(std::sync::atomic::Ordering::SeqCst);
        released.store(false, std::sync::atomic::Ordering::SeqCst);
        let mapped = part_bytes(part(4097, 290_000)).unwrap();
        let tail = mapped.slice(280_000..);
        drop(mapped);
        assert!(!seen(&released), "released while its bytes are still held");
        assert_eq!(&tail[..], &content[284_097..294_097]);
        drop(tail);
        assert!(seen(&released));
        // Read bytes are a copy: the part goes at once.
        released.store(false, std::sync::atomic::Ordering::SeqCst);
        let read = part_bytes(part(0, 100)).unwrap();
        assert!(seen(&released));
        assert_eq!(&read[..], &content[..100]);
        let _ = std::fs::remove_file(&path);
    }
}
