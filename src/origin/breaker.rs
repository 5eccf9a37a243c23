//! A circuit breaker per origin, shared by all workers: "the origin is down",
//! never "one object is broken".
//!
//! Only transport failures count ([`Failure`]): a refused or reset connect, a
//! connect timeout, a reset or timeout before the response head. A 5xx answer
//! proves the origin is reachable, so it counts as a success, like every other
//! answer. After `threshold` consecutive transport failures the breaker opens:
//! requests that would reach the origin fail fast (503 with `Retry-After`)
//! for `cooldown`, and the cache keeps serving what it holds.
//!
//! Only an origin that is down opens it, never URLs that fail while others
//! succeed: failures after the connection was made (the head never came)
//! belong to the request's target, and they count only while nothing has
//! succeeded for [`QUIET`] (an origin that closes the connection on a few
//! URLs while it answers the rest is up), and open the breaker only when
//! they span at least two targets. A failure to connect belongs to no
//! object and always counts; any success starts the count again.
//!
//! After the cooldown the first request goes through as the probe and moves
//! the reopening point one cooldown ahead: others still fail fast meanwhile.
//! Its success closes the breaker at once; its failure reopens it. A probe
//! that never reports (its client left) only delays the next probe by one
//! cooldown; nothing stays stuck.
//!
//! The success path only reads shared state; it writes only when the breaker
//! was not already closed and clean, so healthy traffic contends on nothing.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A transport failure, by where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: refused, reset, or timed out. Object-blind.
    Connect,
    /// Connected, but no response head came (reset or timeout), asking for
    /// the target whose hash this is.
    Head(u64),
}

/// The breaker of one origin.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Hash of the target of the last head failure (0: none yet).
    last_target: AtomicU64,
    /// The consecutive failures are not all one target's.
    spread: AtomicBool,
    /// Milliseconds since `epoch` until which the breaker is open; 0 = closed.
    open_until: AtomicU64,
    /// Milliseconds since `epoch` of the last success, to within
    /// [`SUCCESS_GRAIN`]; 0 = none yet.
    last_success: AtomicU64,
}

/// How long nothing must have succeeded before failures after the connect
/// (no head came) count against the origin.
pub const QUIET: Duration = Duration::from_secs(10);

/// The last success is written at most this often (ms): the success path
/// stays read-only on shared state.
const SUCCESS_GRAIN: u64 = 100;

impl Breaker {
    /// A closed breaker; `threshold` 0 never opens.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            last_target: AtomicU64::new(0),
            spread: AtomicBool::new(false),
            open_until: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn cooldown_ms(&self) -> u64 {
        self.cooldown.as_millis() as u64
    }

    /// Whether a request may go to the origin now. After the cooldown the
    /// first caller is admitted as the probe and the breaker stays open for
    /// the others until the probe reports or one more cooldown passes.
    pub fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if self.threshold == 0 || until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        self.open_until
            .compare_exchange(
                until,
                now + self.cooldown_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Whether the breaker is open (failing fast) now.
    pub fn is_open(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    /// Whole seconds until a request may be admitted again, at least 1: the
    /// `Retry-After` of a fail-fast answer.
    pub fn retry_after_secs(&self) -> u64 {
        let until = self.open_until.load(Ordering::Acquire);
        until.saturating_sub(self.now_ms()).div_ceil(1000).max(1)
    }

    /// The origin answered (any status, 5xx included): it is up.
    pub fn success(&self) {
        let (now, last) = (self.now_ms(), self.last_success.load(Ordering::Relaxed));
        if last == 0 || now.saturating_sub(last) >= SUCCESS_GRAIN {
            self.last_success.store(now, Ordering::Relaxed);
        }
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.spread.store(false, Ordering::Relaxed);
            self.last_target.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(0, Ordering::Release);
        }
    }

    /// Whether a request succeeded within [`QUIET`].
    fn succeeded_lately(&self) -> bool {
        let last = self.last_success.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) < QUIET.as_millis() as u64
    }

    /// A request failed in transport.
    pub fn failure(&self, failure: Failure) {
        if self.threshold == 0 {
            return;
        }
        match failure {
            Failure::Connect => self.spread.store(true, Ordering::Relaxed),
            Failure::Head(_) if self.succeeded_lately() => return,
            Failure::Head(target) => {
                let last = self.last_target.swap(target | 1, Ordering::AcqRel);
                if last != 0 && last != target | 1 {
                    self.spread.store(true, Ordering::Relaxed);
                }
            }
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let until = self.open_until.load(Ordering::Acquire);
        // A probe that failed (admitted while open) reopens at once; otherwise
        // the threshold must be reached by failures of more than one object.
        let probe_failed = until != 0;
        if probe_failed || (n >= self.threshold && self.spread.load(Ordering::Relaxed)) {
            let until = self.now_ms() + self.cooldown_ms();
            self.open_until.store(until, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_open_it_and_one_probe_goes_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.failure(Failure::Connect);
            assert!(b.admit());
        }
        b.failure(Failure::Connect);
        assert!(b.is_open());
        assert!(!b.admit(), "open: fail fast");
        assert_eq!(b.retry_after_secs(), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit(), "after the cooldown one probe goes");
        assert!(!b.admit(), "only one");
        b.failure(Failure::Connect);
        assert!(!b.admit(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit());
        b.success();
        assert!(b.admit() && b.admit(), "a good probe closes it");
        assert!(!b.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_delays_the_next_by_one_cooldown() {
        let b = Breaker::new(1, Duration::from_millis(40));
        b.failure(Failure::Connect);
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.admit(), "the probe");
        assert!(!b.admit());
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.admit(), "the next probe, the first never reported");
    }

    #[test]
    fn one_objects_head_failures_never_open_it() {
        let b = Breaker::new(3, Duration::from_secs(60));
        for _ in 0..10 {
            b.failure(Failure::Head(42));
        }
        assert!(!b.is_open(), "one target only");
        b.failure(Failure::Head(7));
        assert!(b.is_open(), "a second target: the origin, not the object");
    }

    #[test]
    fn urls_that_fail_while_others_succeed_never_open_it() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.success();
        for target in 0..50 {
            b.failure(Failure::Head(target));
        }
        assert!(!b.is_open(), "the origin answered within QUIET: it is up");
        // Connect failures still count: no connection is a down origin.
        b.failure(Failure::Connect);
        b.failure(Failure::Connect);
        assert!(b.is_open());
    }

    #[test]
    fn success_resets_the_count_and_zero_never_opens() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure(Failure::Connect);
        b.success();
        b.failure(Failure::Connect);
        assert!(b.admit());
        let off = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.failure(Failure::Connect);
        }
        assert!(off.admit());
    }
}
