//! edgeslice: a thread-per-core slicing reverse proxy for large objects.
//!
//! A client GET for a large object, or any byte range of it, becomes aligned
//! Range subrequests to the origin, fetched concurrently under a bound, each
//! checked, and streamed back strictly in order. The layers, in the order a
//! request meets them; each imports only the layers below it:
//!
//! ```text
//! server   pinned monoio workers, SO_REUSEPORT accept loops; HTTP/1.1 and
//!          HTTP/2 connections (plain, or TLS by rustls) and the response sink
//!          each lends a request; client limits, SIGHUP reload, DNS membership
//!          of the POP, admin listener and dashboard, access log; the
//!          configuration turned into every layer's settings (server::settings)
//!   proxy  route by Host/path, then the driver: classify -> lookup -> probe ->
//!          respond -> stream; pass-through, PURGE, revalidation, multipart
//!     slice    plan the slices, choose each one's source, check an origin's
//!              answer, stream them in order
//!     cluster  the home node of each slice (consistent hash), a pool per peer
//!     cache    manifests and slices in foyer (memory + disk), single flight
//!     origin   keep-alive pool, retry rules, circuit breaker
//!       http   framing, heads, ranges, versions, conditionals: pure
//!       net    a connection's byte stream, plain or TLS
//!       disk   slot bytes read and written without a worker waiting for the disk
//!       config the TOML file, validated
//!       error  one error type, tagged with its source
//! ops      metrics, declared in one place; every layer counts into them;
//!          systemd notifications (ready, reloading, stopping)
//! ```
//!
//! The built-in origin and client of `edgeslice demo` and the tests are not
//! part of the library: `src/demo/` is mounted by the binary and by
//! `tests/common`.

pub mod server;

pub mod proxy;

pub mod slice;

pub mod cluster;

pub mod cache;

pub mod origin;

pub mod http;

pub mod net;

pub mod disk;

pub mod config;

pub mod error;

pub mod ops;

// What a user of the crate starts with: a configuration, a running server,
// and the error every request-path failure is.
pub use config::Config;
pub use error::{Error, ErrorSource};
pub use server::runtime::Server;
