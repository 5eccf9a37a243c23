//! Seeing into edgeslice: every metric declared in one place ([`metrics`]).
//! Every layer counts into it, each worker in its own relaxed atomics; the
//! admin listener ([`crate::server::admin`]) renders them. [`service`] tells
//! systemd when the process is ready, reloading or stopping.

pub mod metrics;
pub mod service;
