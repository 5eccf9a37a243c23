//! Reading cached bytes from a slot file, and writing them there, without
//! making a worker wait for the disk.
//!
//! A hit's bytes are in a slot file. When they are in the page cache a
//! worker takes them at once; when they are not, the read goes where the
//! worker does not wait for it: to io_uring (the worker serves its other
//! connections and resumes when the kernel has the bytes), or, on the legacy
//! driver, to a thread of a small pool shared by the workers (as nginx's
//! `aio threads`). Nothing here maps a file: a page fault would wait for the
//! disk in the worker, and a file cut short would raise SIGBUS.
//!
//! - [`sendable`] says whether `sendfile` can send a range at once: the
//!   page cache holds all of it (`cachestat(2)`, Linux 6.5, asked without
//!   copying) and none of it is being read in. A page a read has added but
//!   the disk has not filled yet counts as cached, and a `sendfile` that
//!   meets it waits for the disk: so reads in flight are kept in a table,
//!   and slot files are read without readahead (which would add such pages
//!   beyond the range asked). On XFS a read takes the file's lock, which a
//!   write keeps while the kernel holds it: a write off the loop is in that
//!   table for its whole file, and such a file is read `O_DIRECT`.
//! - [`read`] brings a range into memory. A slice read from disk once is
//!   read around the page cache (`O_DIRECT` through io_uring): filling the
//!   page cache with bytes not asked again before it drops them costs more
//!   CPU than sending them. A slice asked again soon is read through it
//!   (`heat`): first what is resident, in one `preadv2(RWF_NOWAIT)`, then
//!   the rest by the way this thread was given ([`DiskWay`]). A large read
//!   around the page cache lands in a block of the thread's huge-page arena
//!   ([`arena`]): one contiguous run, one segment for the device, where
//!   heap memory is one per 4 KiB page.
//!
//! - [`write_all_at`] writes a slice's bytes into its slot: inline with
//!   `RWF_NOWAIT` and off the loop where the kernel would wait (XFS,
//!   btrfs); elsewhere inline, and for a while off the loop once the kernel
//!   held one (`disk/write.rs`): a buffered write can wait for the disk too.
//!
//! Errors are `io::Error`s; a file shorter than the range asked is
//! `UnexpectedEof`. The caller decides what a fault means for the slice.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use bytes::Bytes;

use local_sync::semaphore::{OwnedSemaphorePermit, Semaphore};

use crate::ops::metrics;

mod arena;
mod buffer;
mod heat;
mod residency;
mod way;
mod write;

pub use buffer::Buffer;
use buffer::{InBlock, DIRECT_ALIGN};
pub(crate) use heat::resident_hit;
use residency::Reading;
pub use residency::{locked_for_write, resident, sendable};
pub use way::{set_way, way, DiskWay};
pub use write::write_all_at;

thread_local! {
    /// The reads around the page cache this thread may have in flight;
    /// `None`: no bound (tools, tests).
    static COLD_READS: std::cell::RefCell<Option<Rc<Semaphore>>> = const { std::cell::RefCell::new(None) };
}

/// Bound the slices this thread reads around the page cache at once
/// (`cache.disk_reads_per_worker`): a read asked beyond it waits for one to
/// end. The disk serves its queue in order, so every read queued ahead of
/// a hot part's read delays it; 8 connections' 1 MiB reads queued at once
/// made a 64 KiB hit wait for 8 MiB of disk (bench (j): the probe's p99
/// 4.0x nginx's; 1.0x with 2 in flight, the 1 MiB ranges' rate unchanged).
pub fn bound_cold_reads(in_flight: u32) {
    let bound = Rc::new(Semaphore::new(in_flight.max(1) as usize));
    COLD_READS.with(|c| *c.borrow_mut() = Some(bound));
}

/// A turn to read around the page cache, when this thread has a bound;
/// a read that had to wait for it is counted.
async fn cold_read_turn() -> Option<OwnedSemaphorePermit> {
    let bound = COLD_READS.with(|c| c.borrow().clone())?;
    if let Ok(turn) = bound.clone().try_acquire_owned() {
        return Some(turn);
    }
    metrics::with(|m| m.disk_read_waits.inc());
    bound.acquire_owned().await.ok()
}

/// `len` bytes of `file` from `offset`, in memory: what the page cache has
/// at once, the rest read where the worker does not wait for it. The
/// memory is one of this thread's reusable buffers ([`Buffer`]): it goes
/// back to the thread that drops the bytes.
pub async fn read(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let (res, buf) = read_into(file, offset, len, Buffer::take(len)).await;
    res?;
    Ok(Bytes::from_owner(buf))
}

/// Fill `buf` (taken from [`Buffer::take`]) with `len` bytes of `file` from
/// `offset`, as [`read`] does; the buffer comes back whatever happened.
pub async fn read_into(
    file: &File,
    offset: u64,
    len: u64,
    mut buf: Buffer,
) -> (io::Result<()>, Buffer) {
    let Ok(len) = usize::try_from(len) else {
        return (Err(io::Error::other("a read longer than memory")), buf);
    };
    let mut bytes = std::mem::take(&mut buf.0);
    bytes.clear();
    bytes.reserve(len);
    buf.1 = 0;
    buf.2 = None;
    let res = fill(file, &mut bytes, &mut buf.2, offset, len).await;
    buf.0 = bytes;
    match res {
        Ok(start) => {
            buf.1 = start;
            (Ok(()), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// `bytes` (empty, at least `len` of capacity)
/// filled with `len` bytes of `file` from `offset`, the resident ones at
/// once, the rest off the loop; the bytes start at the index returned. A
/// large read around the page cache fills an arena block instead, left in
/// `block`.
async fn fill(
    file: &File,
    bytes: &mut Vec<u8>,
    block: &mut Option<InBlock>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let resident = resident(file, offset, len as u64);
    let locked = way() == DiskWay::Uring && residency::locked_for_write(file);
    if resident == Some(true) && !locked {
        heat::resident_hit(file, offset);
    } else if locked
        || resident == Some(false)
            && way() == DiskWay::Uring
            && !heat::through_page_cache(file, offset)
    {
        metrics::with(|m| m.disk_reads.inc());
        match read_direct(file, bytes, block, offset, len).await {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // The filesystem takes no O_DIRECT (or not at this
                // alignment): this thread reads through the page cache.
                NO_DIRECT.with(|n| n.set(true));
                bytes.clear();
            }
            done => return done,
        }
    }
    let got = read_resident(file, bytes, offset, len)?;
    if got == len {
        return Ok(0);
    }
    let at = offset + got as u64;
    metrics::with(|m| m.disk_reads.inc());
    let _reading = Reading::start(file, at, (len - got) as u64);
    let buf = std::mem::take(bytes);
    *bytes = match way() {
        DiskWay::Uring => read_uring(file, buf, at, len).await?,
        DiskWay::Pool => {
            let file = file.try_clone()?;
            let job = move || read_inline(&file, buf, at, len);
            monoio::spawn_blocking(job)
                .await
                .map_err(|_| io::Error::other("a disk read thread failed"))??
        }
        DiskWay::Inline => read_inline(file, buf, at, len)?,
    };
    Ok(0)
}

thread_local! {
    /// Set once an O_DIRECT read was refused on this thread.
    static NO_DIRECT: Cell<bool> = const { Cell::new(false) };
}

/// Into `bytes` (empty), `len` bytes of `file` from `offset` read around
/// the page cache (O_DIRECT, through io_uring): the disk's bytes land in
/// this buffer and nowhere else, with no page cache pages to allocate,
/// charge, list and drop for a read that would not be asked again before
/// they were gone. The aligned range around the one asked is read; the
/// bytes asked start at the index returned.
async fn read_direct(
    file: &File,
    bytes: &mut Vec<u8>,
    block: &mut Option<InBlock>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    if NO_DIRECT.with(|n| n.get()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // The turn first: a read waiting for it holds no descriptor.
    let _turn = cold_read_turn().await;
    let align = DIRECT_ALIGN as u64;
    let from = offset / align * align;
    let to = (offset + len as u64).div_ceil(align) * align;
    let want = (to - from) as usize;
    if (BLOCK_READ_FROM..=arena::BLOCK_BYTES).contains(&want) {
        if let Some(taken) = arena::take() {
            let (start, filled) =
                read_direct_into_block(file, taken, from, want, offset, len).await?;
            *block = Some(filled);
            return Ok(start);
        }
    }
    bytes.clear();
    // Room for the aligned range and the padding that aligns its start: a
    // kept buffer has it for any read it serves (`buffer::KEPT_CAPACITY`).
    if bytes.capacity() < want + DIRECT_ALIGN {
        bytes.reserve_exact(want + DIRECT_ALIGN);
    }
    let pad = bytes.as_ptr().align_offset(DIRECT_ALIGN);
    // SAFETY: the padding is within the capacity (reserved above); it is
    // never read as bytes of the file (they start after it).
    unsafe { bytes.set_len(pad) };
    let direct = open_direct(file)?;
    let tail = Tail {
        vec: std::mem::take(bytes),
        end: pad + want,
    };
    let (read, tail) = read_until_full(&direct, tail, from).await;
    let mut buf = tail.vec;
    let start = pad + (offset - from) as usize;
    let end = start + len;
    let res = match read {
        Ok(at) if buf.len() < end => Err(short(at, end - buf.len())),
        Ok(_) => Ok(start),
        Err(e) => Err(e),
    };
    buf.truncate(end.min(buf.len()));
    *bytes = buf;
    res
}

/// Reads into `buf` from `at` until it is full or the file ends: the offset
/// reached, and the buffer back whatever happened. Each read continues
/// where the last one stopped (`buf`'s write pointer moves with what was
/// read: [`Tail`], [`arena::Window`]).
async fn read_until_full<B: monoio::buf::IoBufMut>(
    file: &monoio::fs::File,
    mut buf: B,
    mut at: u64,
) -> (io::Result<u64>, B) {
    while buf.bytes_total() > 0 {
        let (read, back) = file.read_at(buf, at).await;
        buf = back;
        match read {
            Ok(0) => break,
            Ok(n) => at += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(at), buf)
}

/// A `Vec`'s spare capacity up to `end`, as the memory of a read: each read
/// lands after the bytes already there.
struct Tail {
    vec: Vec<u8>,
    end: usize,
}

// SAFETY: the pointer is past the `Vec`'s initialised bytes and
// `bytes_total` never passes `end`, which is within its capacity (the
// caller reserved it).
unsafe impl monoio::buf::IoBufMut for Tail {
    fn write_ptr(&mut self) -> *mut u8 {
        // SAFETY: `len <= end <= capacity`.
        unsafe { self.vec.as_mut_ptr().add(self.vec.len()) }
    }

    fn bytes_total(&mut self) -> usize {
        self.end - self.vec.len()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the read initialised `pos` more bytes after `len`.
        unsafe { self.vec.set_len(self.vec.len() + pos) };
    }
}

/// From this length on, a read around the page cache goes into an arena
/// block (one physically contiguous run) rather than heap memory: 32 pages
/// and up, where the segments begin to cost a virtual disk.
const BLOCK_READ_FROM: usize = 128 * 1024;

/// [`read_direct`]'s read of the aligned range `from..from + want` (at
/// most a block) into `block`: where the `len` bytes asked from `offset`
/// start in it, and the filled block.
async fn read_direct_into_block(
    file: &File,
    block: arena::Block,
    from: u64,
    want: usize,
    offset: u64,
    len: usize,
) -> io::Result<(usize, InBlock)> {
    let direct = open_direct(file)?;
    let (read, window) = read_until_full(&direct, arena::Window::new(block, want), from).await;
    let at = read?;
    let start = (offset - from) as usize;
    if window.filled < start + len {
        return Err(short(at, start + len - window.filled));
    }
    Ok((
        start,
        InBlock {
            block: window.block,
            len,
        },
    ))
}

/// A descriptor of its own for `file`, opened anew from this one (so it
/// can be nothing but this file) with `O_DIRECT`, that the runtime closes
/// after the read.
fn open_direct(file: &File) -> io::Result<monoio::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    monoio::fs::File::from_std(direct)
}

/// Into `buf` (empty, at least `len` of capacity), what the page cache
/// holds of `len` bytes from `offset`, without waiting for the disk: the
/// count read. A file that ends before `len` is `UnexpectedEof`.
fn read_resident(file: &File, buf: &mut Vec<u8>, offset: u64, len: usize) -> io::Result<usize> {
    while buf.len() < len {
        let want = len - buf.len();
        let spare = &mut buf.spare_capacity_mut()[..want];
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr() as *mut libc::c_void,
            iov_len: spare.len(),
        };
        let at = offset + buf.len() as u64;
        // SAFETY: one iovec over `buf`'s spare capacity, which the kernel
        // writes at most `iov_len` bytes of.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                at as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if n > 0 {
            // SAFETY: the kernel initialised `n` more bytes.
            unsafe { buf.set_len(buf.len() + n as usize) };
            continue;
        }
        if n == 0 {
            return Err(short(at, len - buf.len()));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            // Not resident (or the filesystem cannot say): the rest waits.
            Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP) => break,
            _ => return Err(e),
        }
    }
    Ok(buf.len())
}

/// `buf` (its first bytes read) filled to `len` bytes with io_uring reads
/// from `at`, the worker serving others meanwhile.
async fn read_uring(file: &File, buf: Vec<u8>, at: u64, len: usize) -> io::Result<Vec<u8>> {
    // A descriptor of our own: the runtime closes it when the read is done
    // (or abandoned), never the slot file's.
    let file = monoio::fs::File::from_std(file.try_clone()?)?;
    let (read, tail) = read_until_full(&file, Tail { vec: buf, end: len }, at).await;
    let at = read?;
    if tail.vec.len() < len {
        return Err(short(at, len - tail.vec.len()));
    }
    Ok(tail.vec)
}

/// `buf` filled to `len` bytes with `pread`s from `at`, on this thread.
fn read_inline(file: &File, mut buf: Vec<u8>, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let begin = buf.len();
    buf.resize(len, 0);
    file.read_exact_at(&mut buf[begin..], at)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => short(at, len - begin),
            _ => e,
        })?;
    Ok(buf)
}

fn short(at: u64, missing: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ends before {at}, {missing} bytes short"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(content: &[u8], name: &str) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("edgeslice-disk-{name}-{}", std::process::id()));
        let mut out = File::create(&path).unwrap();
        out.write_all(content).unwrap();
        // Written back, so that dropping it from the page cache drops it.
        out.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        (path, file)
    }

    fn drop_cache(file: &File) {
        // SAFETY: advice on an open descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }

    /// Every way reads the same bytes, whether the page cache has them or
    /// not, and a range past the file's end is an error, not short bytes.
    #[test]
    fn every_way_reads_the_bytes_and_a_short_file_is_an_error() {
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let (path, file) = file_of(&content, "ways");
        let ranges = [
            (0u64, 10u64),
            (4095, 2),
            (5000, 300_000),
            (0, 600_000),
            (599_999, 1),
            (7, 0),
        ];
        let check = |mut rt_read: Box<dyn FnMut(u64, u64) -> io::Result<Bytes> + '_>| {
            for (offset, len) in ranges {
                drop_cache(&file);
                let got = rt_read(offset, len).unwrap();
                assert_eq!(&got[..], &content[offset as usize..(offset + len) as usize]);
            }
            // Short, in heap memory and in an arena block.
            for (offset, len) in [(590_000, 20_000), (400_000, 300_000)] {
                drop_cache(&file);
                let err = rt_read(offset, len).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
            }
        };
        let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .unwrap();
        set_way(DiskWay::Uring);
        check(Box::new(|o, l| uring.block_on(read(&file, o, l))));
        let mut legacy = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .attach_thread_pool(Box::new(monoio::blocking::DefaultThreadPool::new(2)))
            .build()
            .unwrap();
        set_way(DiskWay::Pool);
        check(Box::new(|o, l| legacy.block_on(read(&file, o, l))));
        set_way(DiskWay::Inline);
        check(Box::new(|o, l| legacy.block_on(read(&file, o, l))));
        let _ = std::fs::remove_file(&path);
    }

    /// A large read around the page cache lands in a block of the
    /// thread's arena (one contiguous run for the device), a small one in
    /// heap memory; the block goes back when its bytes are dropped.
    #[test]
    fn a_large_read_from_disk_lands_in_an_arena_block() {
        let content: Vec<u8> = (0..4_000_000u32).map(|i| (i % 249) as u8).collect();
        let (path, file) = file_of(&content, "arena");
        let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .unwrap();
        set_way(DiskWay::Uring);
        let mut read_into_buffer = |offset: u64, len: u64| {
            drop_cache(&file);
            let (res, buf) = uring.block_on(read_into(&file, offset, len, Buffer::take(len)));
            res.unwrap();
            assert_eq!(
                buf.as_slice(),
                &content[offset as usize..(offset + len) as usize]
            );
            buf
        };
        // Each read in a megabyte of its own: one asked again would be read
        // through the page cache (`heat`).
        let small = read_into_buffer(2_097_152 + 4096, 64 * 1024);
        assert!(small.2.is_none(), "a 64 KiB read took a block");
        if NO_DIRECT.with(|n| n.get()) {
            eprintln!("{} takes no O_DIRECT: no block to check", path.display());
            let _ = std::fs::remove_file(&path);
            return;
        }
        let large = read_into_buffer(1_048_576, 1_048_576);
        assert!(large.2.is_some(), "a 1 MiB read from disk took no block");
        let unaligned = read_into_buffer(5, 1_040_000);
        let lent = unaligned.2.as_ref().map(|b| b.block.as_ptr());
        assert!(lent.is_some(), "an unaligned large read took no block");
        let first = large.2.as_ref().map(|b| b.block.as_ptr());
        assert_ne!(lent, first);
        drop(large);
        drop(unaligned);
        // Both came back: the lowest is lent again.
        let again = read_into_buffer(3_145_728, 300_000);
        assert_eq!(
            again.2.as_ref().map(|b| b.block.as_ptr()),
            first,
            "the lowest block, back from its first read"
        );
        let _ = std::fs::remove_file(&path);
    }

    /// A slice read from disk once is read around the page cache; read
    /// again soon, through it; and once the page cache did not keep it
    /// until it was asked again, around it again.
    #[test]
    fn only_slices_asked_again_are_read_into_the_page_cache() {
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let (path, file) = file_of(&content, "heat");
        if resident(&file, 0, 1).is_none() {
            eprintln!("cachestat(2) is not available here: nothing to check");
            return;
        }
        let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .build()
            .unwrap();
        set_way(DiskWay::Uring);
        let (offset, len) = (1_048_576 + 5000, 300_001);
        let mut read_and_check = || {
            let got = uring.block_on(read(&file, offset, len)).unwrap();
            assert_eq!(&got[..], &content[offset as usize..(offset + len) as usize]);
            resident(&file, offset, len).unwrap()
        };
        drop_cache(&file);
        let first = read_and_check();
        if NO_DIRECT.with(|n| n.get()) {
            eprintln!(
                "{} takes no O_DIRECT: nothing more to check",
                path.display()
            );
            let _ = std::fs::remove_file(&path);
            return;
        }
        assert!(!first, "a first read from disk filled the page cache");
        assert!(read_and_check(), "a second read soon after did not fill it");
        drop_cache(&file);
        assert!(
            !read_and_check(),
            "read again though the page cache kept nothing"
        );
        drop_cache(&file);
        // The window has shrunk for this slice, not for its neighbour.
        let (other, other_len) = (2_097_152 + 17, 4096);
        for expect in [false, true] {
            let got = uring.block_on(read(&file, other, other_len)).unwrap();
            assert_eq!(
                &got[..],
                &content[other as usize..(other + other_len) as usize]
            );
            assert_eq!(resident(&file, other, other_len), Some(expect));
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn residency_follows_the_page_cache() {
        let content = vec![7u8; 256 * 1024];
        let (path, file) = file_of(&content, "resident");
        let mut all = vec![0u8; content.len()];
        file.read_exact_at(&mut all, 0).unwrap();
        if resident(&file, 0, content.len() as u64).is_none() {
            eprintln!("cachestat(2) is not available here: nothing to check");
            return;
        }
        assert_eq!(resident(&file, 100, 5000), Some(true));
        drop_cache(&file);
        assert_eq!(resident(&file, 100, 5000), Some(false));
        assert_eq!(resident(&file, 0, 0), Some(true));
        let _ = std::fs::remove_file(&path);
    }
}
