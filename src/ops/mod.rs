//! Seeing into edgeslice: every metric declared in one place ([`metrics`]).
//! Every layer counts into it, each worker in its own relaxed atomics; the
//! admin listener ([`crate::server::admin`]) renders them.

pub mod metrics;
