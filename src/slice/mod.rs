//! Slices: which ones a request needs ([`plan`]), checking an origin's
//! answer like nginx's slice module ([`check`]), getting one from the source
//! that has it ([`fetch`]), and streaming them to the client in order within
//! a bounded window ([`stream`]).

pub mod check;
pub mod fetch;
pub mod plan;
pub mod stream;
