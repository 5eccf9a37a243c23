//! Reaching an origin: one keep-alive pool per worker ([`pool`]) over plain
//! or TLS connections ([`stream`], [`tls`]), the retry rules of a slice
//! ([`retry`]) and the per-origin circuit breaker ([`breaker`]).

pub mod breaker;
pub mod pool;
pub mod retry;
pub mod stream;
pub mod tls;
