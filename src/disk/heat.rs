//! Which slices a read from disk brings into the page cache.
//!
//! A slice read from disk once goes around it (`read_direct`): on a node
//! whose cache is many times its memory, most hits that need the disk are
//! of slices not asked again for a long time, and filling the page cache
//! with them costs more CPU than sending them (allocating, charging and
//! listing each page, then a second pass to send it) and pushes out what
//! is asked again. A slice read from disk again within [`HOT_WINDOW`] is
//! read through the page cache, and stays so as long as that pays: as long
//! as, between two reads from disk, it was found in the page cache at least
//! once. Each time it did not pay, that slice's window shrinks eightfold. The
//! table is per thread (a worker's hits stay on it) and bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A slice read from disk twice within this is worth the page cache.
pub(super) const HOT_WINDOW: Duration = Duration::from_secs(10);
/// Slices remembered per thread; past it the oldest are forgotten.
const REMEMBERED: usize = 1 << 16;
/// Slices are told apart by their descriptor and their megabyte.
const GRAIN: u32 = 20;

#[derive(Clone, Copy)]
struct Seen {
    /// The last read from disk.
    at: Instant,
    /// `None`: that read went around the page cache; `Some(n)`: it
    /// went through it, and the slice was found there `n` times since.
    kept: Option<u32>,
    /// How many times reading it through the page cache did not pay.
    strikes: u8,
}

thread_local! {
    static SEEN: RefCell<HashMap<(i32, u64), Seen>> = RefCell::new(HashMap::new());
}

fn key(file: &File, offset: u64) -> (i32, u64) {
    (file.as_raw_fd(), offset >> GRAIN)
}

/// The slice at `offset` was found in the page cache.
pub(crate) fn resident_hit(file: &File, offset: u64) {
    SEEN.with(|seen| {
        if let Some(Seen { kept: Some(n), .. }) = seen.borrow_mut().get_mut(&key(file, offset)) {
            *n = n.saturating_add(1);
        }
    });
}

/// Whether the read from disk of the slice at `offset`, about to be
/// made, goes through the page cache.
pub(crate) fn through_page_cache(file: &File, offset: u64) -> bool {
    let now = Instant::now();
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() >= REMEMBERED {
            seen.retain(|_, s| now.duration_since(s.at) < HOT_WINDOW);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
        }
        let (through, strikes) = match seen.get(&key(file, offset)) {
            None => (false, 0),
            Some(&Seen {
                kept: None,
                at,
                strikes,
            }) => (
                now.duration_since(at) < HOT_WINDOW / (1 << (3 * strikes)),
                strikes,
            ),
            Some(&Seen {
                kept: Some(0),
                strikes,
                ..
            }) => (false, (strikes + 1).min(4)),
            Some(&Seen { strikes, .. }) => (true, strikes),
        };
        let kept = through.then_some(0);
        seen.insert(
            key(file, offset),
            Seen {
                at: now,
                kept,
                strikes,
            },
        );
        through
    })
}
