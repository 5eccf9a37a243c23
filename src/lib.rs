//! edgeslice: a thread-per-core slicing reverse proxy for large objects.
//!
//! A client GET for a large object, or any byte range of it, becomes aligned
//! Range subrequests to the origin, fetched concurrently under a bound, each
//! checked, and streamed back strictly in order. The modules below follow a
//! request's journey:
//!
//! ```text
//! config ─> runtime (one pinned monoio worker per core, its own SO_REUSEPORT listener)
//!   server: accept, read the head (http1), limits ─> route: pick the origin by Host/path
//!     proxy: classify ─> lookup (cache) ─> probe ─> respond (range, plan) ─> stream
//!       cache: manifests + slices in foyer, single-flight fetches
//!       origin: pooled keep-alive subrequests, retry, breaker
//!       fetch: one slice, checked like nginx's slice module, stored whole
//!       stream: bounded window, reorder buffer, in-order body
//!   access: log line and metrics at the end; admin: /metrics /health /status
//! ```
//!
//! `demo` holds a built-in origin and a small client, used by `edgeslice demo`
//! and the tests.

// Start-up: configuration, errors, workers.
pub mod config;

pub mod size;

pub mod error;

pub mod runtime;

// A request's journey, in order.
pub mod server;

pub mod http1;

pub mod route;

pub mod proxy;

pub mod unsliced;

pub mod headers;

pub mod conditional;

pub mod multipart;

pub mod revalidate;

pub mod exchange;

pub mod range;

pub mod plan;

pub mod cache;

pub mod origin;

pub mod retry;

pub mod breaker;

pub mod fetch;

pub mod stream;

pub mod fill;

pub mod prefetch;

pub mod access;

// Seeing into it.
pub mod metrics;

pub mod admin;

// The built-in origin and client of the demo and the tests.
pub mod demo;
