//! A circuit breaker per origin, shared by all workers.
//!
//! After `threshold` consecutive failures (connect errors, timeouts, 5xx) the
//! breaker opens: requests fail fast (503) for `cooldown` instead of piling
//! retries on a dead origin. Then exactly one request probes the origin; its
//! success closes the breaker, its failure opens it for another cooldown.
//! The success path only reads shared state; it writes only when the breaker
//! was not already closed and clean, so healthy traffic contends on nothing.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker of one origin.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 = closed.
    open_until: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    /// A closed breaker; `threshold` 0 never opens.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a request may go to the origin now.
    pub fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if self.threshold == 0 || until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        // Half open: exactly one probe goes through.
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the breaker is open (failing fast) now.
    pub fn is_open(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    /// A request reached the origin and got a usable answer.
    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A request failed at the origin.
    pub fn failure(&self) {
        if self.threshold == 0 {
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let probe_failed = self.probing.swap(false, Ordering::AcqRel);
        if probe_failed || n >= self.threshold {
            let until = self.now_ms() + self.cooldown.as_millis() as u64;
            self.open_until.store(until, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_once_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.failure();
            assert!(b.admit());
        }
        b.failure();
        assert!(b.is_open());
        assert!(!b.admit(), "open: fail fast");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit(), "after the cooldown one probe goes");
        assert!(!b.admit(), "only one");
        b.failure();
        assert!(!b.admit(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit());
        b.success();
        assert!(b.admit() && b.admit(), "a good probe closes it");
        assert!(!b.is_open());
    }

    #[test]
    fn success_resets_the_count_and_zero_never_opens() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure();
        b.success();
        b.failure();
        assert!(b.admit());
        let off = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.failure();
        }
        assert!(off.admit());
    }
}
