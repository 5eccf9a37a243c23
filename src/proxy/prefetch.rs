//! Sequential prefetch: a client reading an object range after range (a video
//! player, a download manager) finds the next slices already in the cache.
//!
//! After a cacheable ranged answer, the worker remembers where it ended; a
//! later request for the same object that starts right there (or at byte 0)
//! is sequential, and up to `prefetch_slices` slices after it are fetched
//! into the cache in the background. A request starting anywhere else is
//! random access and prefetches nothing. Prefetched slices are counted, and
//! so are those a later request used; the difference is the waste.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::ops::metrics;
use crate::slice::budget::SliceBudget;
use crate::slice::fetch::run_slice;
use crate::slice::job::SliceJob;
use crate::slice::plan::{slice_of, SlicePlan};

/// Objects remembered per worker and route before the memory is reset.
const REMEMBERED: usize = 4096;

/// One worker's record of where sequential readers are.
#[derive(Debug, Default)]
pub struct Prefetch {
    /// Slices to fetch ahead; 0 turns prefetch off.
    pub slices: u64,
    next_byte: RefCell<HashMap<String, u64>>,
}

impl Prefetch {
    /// Prefetch up to `slices` slices ahead.
    pub fn new(slices: u64) -> Prefetch {
        Prefetch {
            slices,
            next_byte: RefCell::default(),
        }
    }

    /// After an answer for bytes `first..=last` of `job`'s object: if the
    /// reader is sequential, fetch the slices after `last` into the cache,
    /// as many as `budget` has room for now (a prefetch never waits).
    /// Returns how many were started.
    pub fn after(
        &self,
        job: &Rc<SliceJob>,
        first: u64,
        last: u64,
        (budget, client): (&Rc<SliceBudget>, u64),
    ) -> u64 {
        let Some(target) = &job.cache else {
            return 0;
        };
        if self.slices == 0 {
            return 0;
        }
        let len = job.plan.object_len;
        let mut seen = self.next_byte.borrow_mut();
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        let key = target.key.as_str().to_string();
        let sequential = first == 0 || seen.get(&key) == Some(&first);
        seen.insert(key, last + 1);
        if !sequential || last + 1 >= len {
            return 0;
        }
        let size = job.plan.slice_size;
        let from = slice_of(last + 1, size);
        let to = (from + self.slices - 1).min(slice_of(len - 1, size));
        let ahead = Rc::new(job.with_plan(
            SlicePlan::new(from * size, ((to + 1) * size).min(len) - 1, len, size),
            Rc::default(),
        ));
        let mut started = 0;
        for k in from..=to {
            if target
                .cache
                .find_slice(&target.key, target.generation, k)
                .is_some()
            {
                continue;
            }
            let Some(reserved) = budget.try_reserve(size, client) else {
                break;
            };
            // Nobody reads these bytes now: the slice task leads a flight
            // (others may follow it) and stores the slice whole.
            let (tx, _) = local_sync::mpsc::unbounded::channel();
            target.cache.note_prefetched(target.slice_id(k));
            let task = run_slice(ahead.clone(), k, None, tx);
            monoio::spawn(async move {
                task.await;
                drop(reserved);
            });
            started += 1;
        }
        metrics::with(|m| m.prefetched.add(started));
        started
    }
}
