//! A built-in origin and a small blocking client, used by `edgeslice demo` and
//! the tests, and the demo itself: the proxy's main job with nothing to set up
//! (`run`), and several nodes as one POP (`run_pop`, `demo --nodes N`).

pub mod client;
pub mod content;
pub mod origin;
mod pop;
mod run;

pub use pop::run as run_pop;
pub use run::run;
