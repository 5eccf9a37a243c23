//! edgeslice: a thread-per-core slicing reverse proxy for large objects.
//!
//! The request's journey, in module order:
//!
//! ```text
//! client ──> server (accept, HTTP/1.1 head)
//!              └─> proxy: plan ─> fetch (bounded window of slice subrequests) ─> stream (in order)
//!                    range: parse client Range        origin: pooled keep-alive Range GETs,
//!                    plan: byte range -> slices               each answer checked like nginx
//! ```

pub mod config;
pub mod range;
pub mod plan;
pub mod demo;
