//! A built-in origin and a small blocking client, used by `edgeslice demo` and the tests.

pub mod client;
pub mod origin;
