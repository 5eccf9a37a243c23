//! The files under the slots: opened or created on disk, anonymous memory
//! files without a disk tier, and holes punched where a slot was freed.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

pub(super) fn open_file(path: &PathBuf) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path:?}: {e}")))
}

/// `file`, read only by the pages asked: a read of one slice must not start
/// reading the next ones (slots are not read in file order), and pages a
/// readahead has added but not yet filled would make a `sendfile` that
/// found them in the page cache wait for the disk (see [`crate::disk`]).
pub(super) fn no_readahead(file: File) -> File {
    // SAFETY: advice on a descriptor the File owns.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    file
}

pub(super) fn memfd(name: &str) -> io::Result<File> {
    let name = std::ffi::CString::new(name).expect("no NUL in a memfd name");
    // SAFETY: a valid C string; the fd returned is owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Give `len` bytes at `offset` back to the filesystem; a filesystem that
/// cannot punch holes keeps them until the slot is written again.
pub(super) fn punch_hole(file: &File, offset: u64, len: u64) {
    // SAFETY: fallocate on a descriptor the File owns.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc != 0 {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!(error = %io::Error::last_os_error(), "cannot punch holes in the slot files: freed slots keep their disk blocks until reused");
        }
    }
}
