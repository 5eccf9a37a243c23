//! Writing a slice's bytes into its slot file without making a worker wait
//! for the disk.
//!
//! A buffered write mostly copies into the page cache, at once. But it
//! waits for the disk when the kernel throttles a writer that dirties pages
//! faster than the disk takes them (`balance_dirty_pages`, pauses of up to
//! 200 ms), or makes it reclaim memory: a worker waiting in a write stops
//! every connection on its core.
//!
//! Where the filesystem takes a buffered `RWF_NOWAIT` write (XFS, btrfs),
//! a worker writes inline with it: the kernel copies what it can without
//! waiting and answers `EAGAIN` where it would wait, and the rest goes off
//! the loop (counted, `edgeslice_cache_deferred_writes_total`): the worker
//! never waits in a write. ext4 refuses such writes (`EOPNOTSUPP`), and
//! moving every write off the loop costs: io_uring hands each one to a
//! kernel thread, and bench (a) took 1.2-1.5x the CPU per GiB at 0.6-0.9x
//! the rate. So there a worker writes inline, and a write the kernel held
//! past [`HELD`] sends this thread's writes off the loop for [`AWAY_FOR`]
//! (counted, `edgeslice_cache_slow_writes_total`): io_uring on its runtime,
//! a thread of its pool on the legacy driver. A disk that stays slow holds
//! the worker for one write each [`AWAY_FOR`], not for every one.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::residency::Reading;
use super::way::{way, DiskWay};
use crate::ops::metrics;

/// A write longer than this was held by the kernel: copying 256 KiB into
/// the page cache takes well under a millisecond.
pub const HELD: Duration = Duration::from_millis(5);
/// How long a thread's writes stay off its loop after one was held.
pub const AWAY_FOR: Duration = Duration::from_secs(2);

thread_local! {
    /// Until when this thread's writes go off its loop.
    static AWAY_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    /// This thread's slot files refused a buffered `RWF_NOWAIT` write.
    static NO_NOWAIT: Cell<bool> = const { Cell::new(false) };
}

/// Write `parts`, one after the other, into `file` from `at`, all of them:
/// inline as far as the kernel takes them without waiting, or off the loop.
pub async fn write_all_at(file: &File, mut parts: Vec<Bytes>, mut at: u64) -> io::Result<()> {
    let way = way();
    if way == DiskWay::Inline {
        return write_inline(file, &parts, at, 0).map_err(|(_, e)| e);
    }
    if !NO_NOWAIT.with(|n| n.get()) {
        match write_inline(file, &parts, at, libc::RWF_NOWAIT) {
            Ok(()) => return Ok(()),
            Err((wrote, e)) if e.raw_os_error() == Some(libc::EAGAIN) => {
                (parts, at) = (skip(parts, wrote), at + wrote);
                // XFS also answers EAGAIN to a write that starts past the
                // end of the file (it zeroes the gap first): not the disk,
                // so that one is written as where there is no RWF_NOWAIT.
                if !starts_past_end(file, at) {
                    metrics::with(|m| m.deferred_writes.inc());
                    return write_off_loop(way, file, parts, at).await;
                }
            }
            Err((0, e)) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                NO_NOWAIT.with(|n| n.set(true));
            }
            Err((_, e)) => return Err(e),
        }
    }
    let began = Instant::now();
    if AWAY_UNTIL
        .with(|a| a.get())
        .is_some_and(|until| began < until)
    {
        return write_off_loop(way, file, parts, at).await;
    }
    let wrote = write_inline(file, &parts, at, 0).map_err(|(_, e)| e);
    let took = began.elapsed();
    if took > HELD {
        AWAY_UNTIL.with(|a| a.set(Some(began + took + AWAY_FOR)));
        metrics::with(|m| m.slow_writes.inc());
    }
    wrote
}

fn starts_past_end(file: &File, at: u64) -> bool {
    file.metadata().is_ok_and(|m| at > m.len())
}

/// `parts` without their first `n` bytes.
fn skip(parts: Vec<Bytes>, mut n: u64) -> Vec<Bytes> {
    let mut rest = Vec::with_capacity(parts.len());
    for part in parts {
        let len = part.len() as u64;
        if n >= len {
            n -= len;
        } else {
            rest.push(part.slice(n as usize..));
            n = 0;
        }
    }
    rest
}

/// [`write_all_at`] where the worker does not wait: io_uring on its
/// runtime, a thread of its pool on the legacy driver.
async fn write_off_loop(way: DiskWay, file: &File, parts: Vec<Bytes>, at: u64) -> io::Result<()> {
    let _held = Reading::whole_file_if_locked(file);
    match way {
        DiskWay::Uring => write_uring(file, parts, at).await,
        _ => {
            let file = file.try_clone()?;
            monoio::spawn_blocking(move || write_inline(&file, &parts, at, 0).map_err(|(_, e)| e))
                .await
                .map_err(|_| io::Error::other("a disk write thread failed"))?
        }
    }
}

async fn write_uring(file: &File, parts: Vec<Bytes>, mut at: u64) -> io::Result<()> {
    // A descriptor of our own: the runtime closes it when the writes are
    // done (or abandoned), never the slot file's.
    let file = monoio::fs::File::from_std(file.try_clone()?)?;
    for mut part in parts {
        while !part.is_empty() {
            let (wrote, back) = file.write_at(part, at).await;
            part = back;
            match wrote {
                Ok(0) => return Err(wrote_nothing()),
                Ok(n) => {
                    at += n as u64;
                    part = part.slice(n..);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// [`write_all_at`] on this thread: `pwritev2` with `flags` (more than one
/// if the kernel takes less); on an error, how many bytes were written
/// before it.
fn write_inline(
    file: &File,
    parts: &[Bytes],
    at: u64,
    flags: libc::c_int,
) -> Result<(), (u64, io::Error)> {
    let (mut first, mut skip, mut wrote) = (0, 0usize, 0u64);
    while first < parts.len() {
        let iov: Vec<libc::iovec> = parts[first..]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = if i == 0 { &p[skip..] } else { &p[..] };
                libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                }
            })
            .take(libc::UIO_MAXIOV as usize)
            .collect();
        // SAFETY: every iovec points into a Bytes that outlives the call.
        let n = unsafe {
            libc::pwritev2(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                (at + wrote) as libc::off_t,
                flags,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err((wrote, e));
        }
        if n == 0 {
            return Err((wrote, wrote_nothing()));
        }
        wrote += n as u64;
        let mut n = n as usize;
        while n > 0 {
            let left = parts[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
}

fn wrote_nothing() -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        "a write to a slot file wrote nothing",
    )
}
