//! Where a slice's bytes come from.
//!
//! [`choose_source`] picks, per slice, how its bytes are got ([`Choice`]):
//! the probe's answer already open, the cache (a pinned slot, checked
//! against its checksum on its first read after a restart), another
//! request's fetch in flight, or a fetch of its own, at the slice's home
//! peer (only the client's part, when that is less than the slice: this
//! node does not store a slice homed elsewhere) or the origin ([`crate::slice::job::SliceJob::open`], which sends it
//! as every request for a slice is sent, the probe's included:
//! [`crate::slice::attempt::open`]). Where the bytes came from in the end
//! is a [`SliceSource`] (memory, disk, peer, origin: the one enum for it),
//! which the answer's [`SliceCounts`], its `Cache-Status`, its log line and
//! `edgeslice_slices_total{source}` count.

use tracing::debug;

use crate::cache::flight::FlightLeader;
use crate::cache::{slice_id, FlightEvent, Joined, SlicePin};
use crate::ops::metrics;
use crate::slice::job::{CacheTarget, OpenedSlice, SliceJob};

pub use crate::ops::metrics::SliceSource;

/// How many slices of an answer came from each [`SliceSource`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SliceCounts([u64; 4]);

impl SliceCounts {
    /// One more slice from `source`.
    pub fn add(&mut self, source: SliceSource) {
        self.0[source as usize] += 1;
    }

    /// Slices from `source`.
    pub fn get(&self, source: SliceSource) -> u64 {
        self.0[source as usize]
    }

    /// Slices from this node's cache, in memory or on disk.
    pub fn cached(&self) -> u64 {
        self.get(SliceSource::Memory) + self.get(SliceSource::Disk)
    }

    /// All slices counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each source with its count, in the metric's label order.
    pub fn each(&self) -> impl Iterator<Item = (SliceSource, u64)> + '_ {
        use SliceSource::*;
        [Memory, Disk, Peer, Origin]
            .into_iter()
            .map(|s| (s, self.get(s)))
    }
}

/// Whether a slice homed on another node is copied into this node's cache
/// as it comes from its home ([`crate::cache::asked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepCopy(pub bool);

/// How one slice's bytes are got, chosen per slice by [`choose_source`].
// Chosen once per slice and consumed at once: a Box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Choice {
    /// The probe's answer for this slice, already open.
    Opened(OpenedSlice),
    /// The cache holds the whole slice: its slot, pinned.
    Cached(SlicePin),
    /// Another request is fetching it: follow its flight.
    Following(flume::Receiver<FlightEvent>),
    /// The origin (or the slice's home peer), leading the slice's flight
    /// when it is cacheable; `copy`: a slice homed elsewhere, hot, whose
    /// bytes from its home are stored here too.
    Origin(Option<FlightLeader>, KeepCopy),
    /// Only the client's part of a slice homed at another node, asked of
    /// that home alone (no flight here: the home fetches the slice once
    /// for the POP, and this node does not store it).
    HomePart,
}

/// Choose the source of slice `index`: the probe's answer when it is this
/// slice, else the cache, else a fetch in flight, else a fetch of its own
/// (at its home peer or the origin, [`SliceJob::open`]).
pub async fn choose_source(job: &SliceJob, index: u64, opened: Option<OpenedSlice>) -> Choice {
    let Some(target) = &job.cache else {
        return match opened {
            Some(opened) => Choice::Opened(opened),
            None => Choice::Origin(None, KeepCopy(false)),
        };
    };
    let key = target.slice_key(index);
    let id = slice_id(&key);
    if let Some(opened) = opened {
        // The probe's answer from the slice's home: its first ask here.
        if opened.from_peer.is_some() && job.keeps_hot_copies() {
            let len = job.slice_len(index);
            target.cache.asked.note(id, job.asked_of(index), len);
        }
        return Choice::Opened(opened);
    }
    // The head's count found it already: pin that slot, no second lookup.
    let found = match job.counted.locator(index) {
        Some(loc) => {
            let pin = target.cache.store.pin(&loc);
            if pin.is_none() {
                // Counted as cached when the head went out, evicted since:
                // the right bytes come from the origin, and the count tells
                // the operator the head said too much.
                metrics::with(|m| m.slices_vanished.inc());
                debug!(index, key, "slice counted as cached was gone when read");
            }
            pin
        }
        None => cached_slice(target, id),
    };
    let found = match found {
        Some(pin) => checked(target, id, pin).await,
        None => None,
    };
    if let Some(pin) = found {
        if pin.len() == job.slice_len(index) {
            target.cache.note_served(id);
            return Choice::Cached(pin);
        }
        // Never serve a slice whose size does not fit its manifest.
        target.cache.store.remove_slice(id);
    }
    // A slice homed elsewhere: relayed (its client part only) until a
    // slice's worth of it was asked, then copied.
    let copy = match job.homed_elsewhere(index) && job.keeps_hot_copies() {
        true => {
            let len = job.slice_len(index);
            KeepCopy(target.cache.asked.note(id, job.asked_of(index), len))
        }
        false => KeepCopy(false),
    };
    if !copy.0 && job.peer_part(index).is_some() {
        return Choice::HomePart;
    }
    match target.cache.flights.join(&key) {
        Joined::Leader(leader) => {
            // A leader that finished between our lookup and our join indexed
            // the slice before leaving the table: look once more.
            if let Some(pin) = cached_slice(target, id).filter(|p| p.len() == job.slice_len(index))
            {
                let read = crate::disk::read(pin.file(), pin.offset(), pin.len()).await;
                if read.is_err() {
                    pin.fault();
                }
                if let Ok(bytes) = read {
                    leader.publish(&bytes);
                    leader.complete(Ok(()));
                    leader.retire();
                    return Choice::Cached(pin);
                }
            }
            Choice::Origin(Some(leader), copy)
        }
        Joined::Follower(rx) => Choice::Following(rx),
    }
}

/// `pin` if its bytes may be served: a slice recovered at start and not
/// read since is read whole (off the event loop) and checked against the
/// checksum stored with it first. Bytes that changed on disk, or cannot be
/// read, drop the slice from the cache and make this read a miss.
async fn checked(target: &CacheTarget, id: u128, pin: SlicePin) -> Option<SlicePin> {
    let Some(sum) = pin.sum_to_check() else {
        return Some(pin);
    };
    let read = crate::disk::read(pin.file(), pin.offset(), pin.len()).await;
    match read {
        Ok(bytes) if twox_hash::XxHash3_64::oneshot(&bytes) == sum => {
            pin.checked();
            metrics::with(|m| m.slices_checked.inc());
            Some(pin)
        }
        Ok(_) | Err(_) => {
            if let Err(e) = read {
                debug!(error = %e, "reading a recovered slice to check it");
            }
            pin.fault();
            target.cache.store.remove_slice(id);
            None
        }
    }
}

/// Slice `id` from the cache, pinned: one index lookup and one CAS.
fn cached_slice(target: &CacheTarget, id: u128) -> Option<SlicePin> {
    let loc = target.cache.store.find_slice(id)?;
    target.cache.store.pin(&loc)
}
