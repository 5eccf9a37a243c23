//! HTTP as edgeslice speaks it, pure where possible: HTTP/1.1 framing and
//! heads ([`h1`]), the request's target and Host ([`target`]), the normalised request path ([`path`]), byte ranges ([`range`]), an object's version
//! ([`object_version`]), conditionals ([`conditional`]), a request's `Cache-Control`
//! ([`request_cache_control`]) and an answer's ([`response_cache_control`]), the header rules of the
//! pipeline ([`headers`]), and the seam a connection offers the driver
//! ([`sink`]). Imports nothing above [`crate::error`].

pub mod body;
pub mod conditional;
pub mod content_range;
pub mod date;
pub mod h1;
pub mod headers;
pub mod object_version;
pub mod path;
pub mod range;
pub mod request_cache_control;
pub mod response_cache_control;
pub mod sink;
pub mod target;
