//! Slices: which ones a request needs ([`plan`]), checking an origin's
//! answer like nginx's slice module ([`check`]), getting one from the source
//! that has it ([`fetch`]) for a [`job`] (asking a peer or the origin), the
//! client's part of each ([`part`]), and streaming them to the client in order within
//! a bounded window ([`stream`]) and the worker's [`budget`] of bytes in memory.

pub mod attempt;
pub mod budget;
pub mod check;
pub mod fetch;
pub mod job;
pub mod part;
pub mod plan;
pub mod source;
pub mod stream;
