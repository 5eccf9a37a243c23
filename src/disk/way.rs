//! How a thread reaches the disk where the page cache does not answer: set
//! once by each worker when its runtime is built, read by every read and
//! write of a slot file.

use std::cell::Cell;

/// How a thread reads (and, when its writes are held, writes) what is not
/// in the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskWay {
    /// io_uring on this thread's monoio runtime.
    Uring,
    /// `spawn_blocking` on the thread pool attached to this thread's runtime.
    Pool,
    /// A plain `pread` or `pwritev` on this thread: tools, tests, threads
    /// that may block.
    Inline,
}

thread_local! {
    static WAY: Cell<DiskWay> = const { Cell::new(DiskWay::Inline) };
}

/// Say how this thread reaches the disk; a worker says it once its runtime
/// is built.
pub fn set_way(way: DiskWay) {
    WAY.with(|w| w.set(way));
}

/// How this thread reaches the disk.
pub fn way() -> DiskWay {
    WAY.with(|w| w.get())
}
