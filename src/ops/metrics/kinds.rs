//! The kinds of metric a worker counts into: [`Counter`], [`Histogram`],
//! and [`Labelled`] counters over a [`Label`]'s fixed values.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtract `n` (for gauges kept as counters of a level).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the [`BUCKETS`] bounds.
#[derive(Debug, Default)]
pub struct Histogram {
    pub(super) buckets: [Counter; BUCKETS.len()],
    pub(super) count: Counter,
    pub(super) sum_micros: Counter,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        self.sum_micros.add(d.as_micros() as u64);
    }
}

/// A label whose values are the variants of a small enum, so a call site
/// names the value (`FailureReason::Timeout`) instead of a slot number.
pub trait Label: Copy + 'static {
    /// The label's name, as in `name="value"`.
    const NAME: &'static str;
    /// The label's values in export order; `index` is a position in it.
    const VALUES: &'static [&'static str];
    /// The slot of this value in a [`Labelled`] counter.
    fn index(self) -> usize;
}

/// One [`Counter`] per value of the label `E`; `N` is the number of values.
#[derive(Debug)]
pub struct Labelled<E, const N: usize> {
    counters: [Counter; N],
    label: PhantomData<E>,
}

impl<E: Label, const N: usize> Labelled<E, N> {
    // A wrong N fails the build where the counter is created.
    const SIZED: () = assert!(N == E::VALUES.len(), "N must be the number of label values");

    /// Add one to `value`'s count.
    pub fn inc(&self, value: E) {
        self.counters[value.index()].inc();
    }

    /// Add `n` to `value`'s count.
    pub fn add(&self, value: E, n: u64) {
        self.counters[value.index()].add(n);
    }

    /// `value`'s count.
    pub fn get(&self, value: E) -> u64 {
        self.counters[value.index()].get()
    }
}

impl<E: Label, const N: usize> Default for Labelled<E, N> {
    fn default() -> Self {
        let () = Self::SIZED;
        Labelled {
            counters: std::array::from_fn(|_| Counter::default()),
            label: PhantomData,
        }
    }
}

/// A [`Labelled`] counter as the renderer reads it, its label type erased.
pub(super) trait Family {
    fn label(&self) -> &'static str;
    fn values(&self) -> &'static [&'static str];
    fn count(&self, index: usize) -> u64;
}

impl<E: Label, const N: usize> Family for Labelled<E, N> {
    fn label(&self) -> &'static str {
        E::NAME
    }
    fn values(&self) -> &'static [&'static str] {
        E::VALUES
    }
    fn count(&self, index: usize) -> u64 {
        self.counters[index].get()
    }
}
