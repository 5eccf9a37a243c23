//! Seeing into edgeslice: every metric declared in one place ([`metrics`]).
//! Every layer counts into it, each worker in its own relaxed atomics; the
//! admin listener ([`crate::server::admin`]) renders them. [`service`] tells
//! systemd when the process is ready, reloading or stopping. [`copies`]
//! sets how glibc copies memory on AMD CPUs, before the process does anything.

pub mod copies;
pub mod metrics;
pub mod service;
