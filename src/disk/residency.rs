//! Whether a range of a slot file can be sent without waiting for the disk.
//!
//! [`sendable`]: the page cache holds all of it (`cachestat(2)`, Linux 6.5,
//! asked without copying) and none of it is being read in. A page a read
//! has added but the disk has not filled yet counts as cached, and a
//! `sendfile` that meets it waits for the disk: so reads in flight are kept
//! in a table ([`Reading`]), process-wide since the workers share the slot
//! files. On XFS a read also takes the file's lock, which a write holds
//! while the kernel makes it wait for the disk: a write off the loop is in
//! the table too, for the whole file ([`Reading::whole_file_if_locked`]).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// `cachestat(2)`'s number: one for every architecture (the table shared
/// since Linux 5.1); libc does not name it for x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// Set once `cachestat(2)` answered ENOSYS (a kernel before 6.5, or a
/// seccomp filter): residency is unknown from then on.
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// Reads in flight off the event loop, all workers': the file (its
/// descriptor, open while a reader holds its slot) and the pages read.
static READING: Mutex<Vec<(RawFd, u64, u64)>> = Mutex::new(Vec::new());
/// How many entries `READING` has: the table is only locked when it has any.
static READS: AtomicUsize = AtomicUsize::new(0);

/// A read in flight, in `READING` while this lives.
pub(super) struct Reading((RawFd, u64, u64));

/// `statfs`'s `f_type` of XFS.
const XFS_SUPER_MAGIC: libc::c_long = 0x5846_5342;

impl Reading {
    pub(super) fn start(file: &File, offset: u64, len: u64) -> Reading {
        let entry = (file.as_raw_fd(), offset, offset.saturating_add(len));
        lock_reading().push(entry);
        READS.fetch_add(1, Ordering::AcqRel);
        Reading(entry)
    }

    /// For a write to `file` off the loop: the whole file, where a read
    /// waits for the lock such a write holds (XFS), so that no `sendfile`
    /// of it starts in a worker meanwhile; `None` elsewhere.
    pub(super) fn whole_file_if_locked(file: &File) -> Option<Reading> {
        let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: fstatfs fills the struct on success; read only then.
        let xfs = unsafe { libc::fstatfs(file.as_raw_fd(), fs.as_mut_ptr()) } == 0
            && unsafe { fs.assume_init() }.f_type as libc::c_long == XFS_SUPER_MAGIC;
        xfs.then(|| Reading::start(file, 0, u64::MAX))
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut reading = lock_reading();
        if let Some(i) = reading.iter().position(|e| *e == self.0) {
            reading.swap_remove(i);
            READS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn lock_reading() -> std::sync::MutexGuard<'static, Vec<(RawFd, u64, u64)>> {
    READING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a write off the loop may hold `file`'s lock (XFS; see
/// [`Reading::whole_file_if_locked`]): a buffered read of it through
/// io_uring would then wait in the worker (the kernel retries a buffered
/// read that could not go at once in the submitting thread, without
/// `IOCB_NOWAIT`), so it is read around the page cache instead.
pub fn locked_for_write(file: &File) -> bool {
    if READS.load(Ordering::Acquire) == 0 {
        return false;
    }
    let fd = file.as_raw_fd();
    lock_reading()
        .iter()
        .any(|&(f, from, to)| f == fd && from == 0 && to == u64::MAX)
}

/// Whether `sendfile` can send `len` bytes of `file` from `offset` without
/// waiting for the disk: all in the page cache, none being read in.
pub fn sendable(file: &File, offset: u64, len: u64) -> bool {
    if resident(file, offset, len) != Some(true) {
        return false;
    }
    if READS.load(Ordering::Acquire) == 0 {
        return true;
    }
    let (fd, end) = (file.as_raw_fd(), offset + len);
    !lock_reading()
        .iter()
        .any(|&(f, from, to)| f == fd && from < end && offset < to)
}

/// Whether all of `len` bytes of `file` from `offset` are in the page cache
/// (filled, or being filled); `None` when the kernel cannot tell.
pub fn resident(file: &File, offset: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    if NO_CACHESTAT.load(Ordering::Relaxed) {
        return None;
    }
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let page = page_size();
    let first = offset / page;
    let pages = (offset + len).div_ceil(page) - first;
    let range = Range {
        off: first * page,
        len: pages * page,
    };
    let mut stat = Stat::default();
    // SAFETY: cachestat(2) reads `range` and writes `stat`, both live and
    // laid out as the kernel's structs.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return None;
    }
    Some(stat.nr_cache >= pages)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64
}
