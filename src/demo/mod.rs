//! A built-in origin and a small blocking client, used by `edgeslice demo` and
//! the tests, and the demo itself: the proxy's main job with nothing to set up.

pub mod client;
pub mod content;
pub mod origin;
mod run;

pub use run::run;
