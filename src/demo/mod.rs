//! A built-in origin and a small blocking client: test support, not part of
//! the library. The `edgeslice` binary mounts this module for `edgeslice
//! demo` (whose runs, `demo/run.rs` and `demo/pop.rs`, it mounts itself),
//! and the tests mount it in `tests/common`; paths inside stay relative, so
//! it compiles wherever it is mounted.

pub mod client;
pub mod content;
pub mod origin;
