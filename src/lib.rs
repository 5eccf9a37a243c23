//! edgeslice: a thread-per-core slicing reverse proxy for large objects.
//!
//! A client GET for a large object, or any byte range of it, becomes aligned
//! Range subrequests to the origin, fetched concurrently under a bound, each
//! checked, and streamed back strictly in order. The modules below follow a
//! request's journey:
//!
//! ```text
//! config ─> runtime (one pinned monoio worker per core)
//!             └─ server: accept on the worker's SO_REUSEPORT listener, read the head (http1)
//!                  └─ proxy: classify ─> probe ─> plan ─> respond ─> stream
//!                       range: the client's Range      plan: byte range -> aligned slices
//!                       origin: pooled keep-alive subrequests
//!                       fetch: one slice, checked like nginx's slice module
//!                       stream: bounded window, reorder buffer, in-order body
//! ```
//!
//! `demo` holds a built-in origin and a small client, used by `edgeslice demo`
//! and the tests.

pub mod access;
pub mod admin;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod demo;
pub mod error;
pub mod exchange;
pub mod fetch;
pub mod http1;
pub mod metrics;
pub mod origin;
pub mod plan;
pub mod proxy;
pub mod range;
pub mod retry;
pub mod route;
pub mod runtime;
pub mod server;
pub mod stream;
