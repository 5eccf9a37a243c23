//! Reaching an origin: one keep-alive pool per worker ([`pool`]), the retry
//! rules of a slice ([`retry`]) and the per-origin circuit breaker
//! ([`breaker`]).

pub mod breaker;
pub mod pool;
pub mod retry;
