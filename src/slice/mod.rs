//! Slices: which ones a request needs ([`plan`]), fetching one and checking
//! it like nginx's slice module ([`fetch`]), and streaming them to the client
//! in order within a bounded window ([`stream`]).

pub mod fetch;
pub mod plan;
pub mod stream;
