//! The server, by job:
//! - the runtime: pinned monoio workers ([`runtime`]), what their
//!   connections share ([`worker`]), their accept loops ([`connection`]),
//!   what SIGHUP swaps ([`reload`]), the cluster membership kept from DNS
//!   ([`membership`]), and where the configuration becomes the settings of
//!   every layer ([`settings`]);
//! - the protocols: HTTP/1.1 ([`h1`]: the keep-alive loop and its response
//!   sink), HTTP/2 ([`h2`]: the connection, its transport, its streams'
//!   sink, queued bytes and control-frame budget), TLS ([`tls`]: the
//!   certificate and handshake, and the stream rustls drives), over a
//!   plain-or-TLS client stream ([`stream`]);
//! - what both protocols share: one request through the driver
//!   ([`request`]), the limits a request head is checked against
//!   ([`limits`]), the access log line each request ends with ([`access`]);
//! - the operator's side: the admin listener and its dashboard ([`admin`]).

pub mod access;
pub mod admin;
pub mod connection;
pub mod h1;
pub mod h2;
pub mod limits;
pub mod membership;
pub mod reload;
pub mod request;
pub mod runtime;
pub mod settings;
pub mod stream;
pub mod tls;
pub mod worker;
