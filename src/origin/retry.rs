//! When a failed origin subrequest is tried again, and after how long.
//!
//! Server errors (5xx) and timeouts are retried after 100 ms, doubling up to
//! 1600 ms. A refused or reset connection is retried once at once (a pooled
//! connection the origin closed, a restarting origin), then with the same
//! backoff. Client errors (4xx), answers of another object version and an open
//! circuit breaker are never retried. Pure: the caller sleeps.

use std::io;
use std::time::Duration;

use crate::error::Error;

/// First backoff delay.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest backoff delay.
pub const MAX_BACKOFF: Duration = Duration::from_millis(1600);

/// The retry state of one subrequest.
#[derive(Debug, Clone)]
pub struct Retry {
    max_retries: u32,
    retries: u32,
    backoffs: u32,
    immediate_used: bool,
}

/// How a failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Backoff,
    Connection,
    Never,
}

fn kind(e: &Error) -> Kind {
    match e {
        Error::Peer { source, .. } => kind(source),
        Error::OriginStatus { .. } | Error::OriginTimeout(_) => Kind::Backoff,
        Error::OriginConnect { .. } => Kind::Connection,
        Error::OriginIo(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Kind::Connection,
            _ => Kind::Backoff,
        },
        _ => Kind::Never,
    }
}

impl Retry {
    /// A subrequest allowed `max_retries` retries.
    pub fn new(max_retries: u32) -> Retry {
        Retry {
            max_retries,
            retries: 0,
            backoffs: 0,
            immediate_used: false,
        }
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// After failure `e`: `Some(delay)` to try again after `delay`, `None` to give up.
    pub fn after(&mut self, e: &Error) -> Option<Duration> {
        if self.retries >= self.max_retries {
            return None;
        }
        let delay = match kind(e) {
            Kind::Never => return None,
            Kind::Connection if !self.immediate_used => {
                self.immediate_used = true;
                Duration::ZERO
            }
            Kind::Connection | Kind::Backoff => {
                let d = INITIAL_BACKOFF
                    .saturating_mul(1u32 << self.backoffs.min(16))
                    .min(MAX_BACKOFF);
                self.backoffs += 1;
                d
            }
        };
        self.retries += 1;
        Some(delay)
    }

    /// After a server error answer with `status` (the probe relays the last one).
    pub fn after_status(&mut self, index: u64, status: u16) -> Option<Duration> {
        self.after(&Error::OriginStatus { index, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> Option<u64> {
        d.map(|d| d.as_millis() as u64)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let e = Error::OriginStatus {
            index: 0,
            status: 503,
        };
        let mut r = Retry::new(7);
        let got: Vec<_> = (0..8).map(|_| ms(r.after(&e))).collect();
        assert_eq!(
            got,
            vec![
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1600),
                Some(1600),
                Some(1600),
                None
            ]
        );
        assert_eq!(r.retries(), 7);
    }

    #[test]
    fn connection_failures_retry_once_at_once() {
        let reset = Error::OriginIo(io::Error::from(io::ErrorKind::ConnectionReset));
        let refused = Error::OriginConnect {
            addr: "o:80".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        let mut r = Retry::new(3);
        assert_eq!(ms(r.after(&refused)), Some(0));
        assert_eq!(ms(r.after(&reset)), Some(100));
        assert_eq!(ms(r.after(&refused)), Some(200));
        assert_eq!(ms(r.after(&refused)), None);
    }

    #[test]
    fn some_failures_are_never_retried() {
        let never = [
            Error::mismatch(1, "got ETag a, expected b"),
            Error::OriginProtocol("bad head".into()),
            Error::OriginUnavailable {
                origin: "o:80".into(),
                retry_after: 1,
            },
            Error::BadRequest("x".into()),
        ];
        for e in never {
            assert_eq!(Retry::new(3).after(&e), None, "{e}");
        }
        assert_eq!(
            Retry::new(0).after(&Error::OriginTimeout(crate::error::Waiting::ResponseHead)),
            None
        );
        assert_eq!(
            ms(Retry::new(1).after(&Error::OriginTimeout(crate::error::Waiting::ResponseHead))),
            Some(100)
        );
    }
}
