//! Writing a slice's bytes into its slot file without making a worker wait
//! for the disk for long.
//!
//! A buffered write mostly copies into the page cache, at once. But it
//! waits for the disk when the kernel throttles a writer that dirties pages
//! faster than the disk takes them (`balance_dirty_pages`, pauses of up to
//! 200 ms), or makes it reclaim memory: a worker waiting in a write stops
//! every connection on its core. Moving every write off the loop costs: on
//! ext4 io_uring hands each buffered write to a kernel thread (ext4 takes no
//! `RWF_NOWAIT` buffered write), and bench (a) took 1.2-1.5x the CPU per GiB
//! at 0.6-0.9x the rate. So a worker writes inline, and a write the kernel
//! held past [`HELD`] sends this thread's writes off the loop for
//! [`AWAY_FOR`] (counted, `edgeslice_cache_slow_writes_total`): io_uring on
//! its runtime, a thread of its pool on the legacy driver. A disk that
//! stays slow holds the worker for one write each [`AWAY_FOR`], not for
//! every one.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;

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
}

/// Write `parts`, one after the other, into `file` from `at`, all of them:
/// inline, or off the loop while this thread's writes are being held.
pub async fn write_all_at(file: &File, parts: Vec<Bytes>, at: u64) -> io::Result<()> {
    let way = way();
    if way == DiskWay::Inline {
        return write_inline(file, &parts, at);
    }
    let began = Instant::now();
    if AWAY_UNTIL
        .with(|a| a.get())
        .is_some_and(|until| began < until)
    {
        return match way {
            DiskWay::Uring => write_uring(file, parts, at).await,
            _ => {
                let file = file.try_clone()?;
                monoio::spawn_blocking(move || write_inline(&file, &parts, at))
                    .await
                    .map_err(|_| io::Error::other("a disk write thread failed"))?
            }
        };
    }
    let wrote = write_inline(file, &parts, at);
    let took = began.elapsed();
    if took > HELD {
        AWAY_UNTIL.with(|a| a.set(Some(began + took + AWAY_FOR)));
        metrics::with(|m| m.slow_writes.inc());
    }
    wrote
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

/// [`write_all_at`] on this thread: `pwritev` (more than one if the kernel
/// takes less).
fn write_inline(file: &File, parts: &[Bytes], mut at: u64) -> io::Result<()> {
    let (mut first, mut skip) = (0, 0usize);
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
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                at as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(wrote_nothing());
        }
        at += n as u64;
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
