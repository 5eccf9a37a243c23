//! Which slices homed on another node this node's clients ask for again:
//! the admission rule of local copies in a `[cluster]`.
//!
//! A slice homed elsewhere is relayed from its home, not stored here, while
//! it is cold: only the bytes clients ask for cross the network.
//! [`AskedAgain::note`] adds up the bytes of it asked for, each ask within
//! [`WINDOW`] of the one before; once they reach the slice's size (a
//! second whole-slice GET, or ranges that add up to a slice), the next ask
//! is hot, and the node keeps a copy (the slice tasks store it as they
//! store their own share), so the hottest slices stop crossing the network
//! and stop loading their home, while a copy never costs more peer bytes
//! than were relayed before it. A copy
//! lives under this node's manifest generation like any slice: a PURGE or
//! a new version of the object leaves it unreachable.
//!
//! One table per node (workers share clients' objects), in shards by slice
//! id, each a `Mutex` held for one map operation; bounded: a full shard is
//! emptied (what it forgets is asked of the home once more).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// How soon a second ask must follow the first for the slice to be hot.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

const SHARDS: usize = 16;
/// Slices remembered per shard before it is emptied.
const PER_SHARD: usize = 16_384;

/// When each slice homed elsewhere was last asked for, and how many of its
/// bytes were asked since the window opened, by slice id.
pub struct AskedAgain {
    shards: Vec<Mutex<HashMap<u128, Asked>>>,
    epoch: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Asked {
    /// Seconds since the table's epoch.
    last: u32,
    bytes: u64,
}

impl Default for AskedAgain {
    fn default() -> Self {
        AskedAgain {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: Instant::now(),
        }
    }
}

impl AskedAgain {
    fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    fn shard(&self, id: u128) -> std::sync::MutexGuard<'_, HashMap<u128, Asked>> {
        let shard = &self.shards[(id as usize) % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `bytes` of slice `id` (`slice_len` bytes long) are asked for now:
    /// true when the asks before this one, in the window, added up to the
    /// whole slice (keep a copy of it).
    pub fn note(&self, id: u128, bytes: u64, slice_len: u64) -> bool {
        let now = self.now();
        let mut shard = self.shard(id);
        if shard.len() >= PER_SHARD && !shard.contains_key(&id) {
            shard.clear();
        }
        let asked = shard.entry(id).or_insert(Asked {
            last: now,
            bytes: 0,
        });
        if now.saturating_sub(asked.last) >= WINDOW.as_secs() as u32 {
            asked.bytes = 0;
        }
        let hot = asked.bytes >= slice_len;
        asked.bytes = asked.bytes.saturating_add(bytes);
        asked.last = now;
        hot
    }

    /// Whether slice `id` would be copied if asked for now, without
    /// counting this as an ask.
    pub fn is_hot(&self, id: u128, slice_len: u64) -> bool {
        let now = self.now();
        self.shard(id).get(&id).is_some_and(|a| {
            now.saturating_sub(a.last) < WINDOW.as_secs() as u32 && a.bytes >= slice_len
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_hot_once_a_whole_slice_of_it_was_asked() {
        let asked = AskedAgain::default();
        assert!(!asked.is_hot(7, 100));
        assert!(!asked.note(7, 100, 100), "the first whole ask relays");
        assert!(asked.is_hot(7, 100));
        assert!(asked.note(7, 100, 100), "the second keeps a copy");
        assert!(!asked.note(8, 100, 100), "another slice is not hot");
        // Ranges: relayed until they add up to the slice.
        for _ in 0..4 {
            assert!(!asked.note(9, 25, 100));
        }
        assert!(
            asked.note(9, 25, 100),
            "a slice's worth of ranges was relayed"
        );
    }
}
