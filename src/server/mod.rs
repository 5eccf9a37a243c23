//! The server: pinned monoio workers ([`runtime`]) and what their
//! connections share ([`worker`]), their accept loops and HTTP/1.1
//! connections ([`connection`]) over plain TCP or TLS ([`stream`], [`tls`], [`tls_stream`])
//! and the response sink each lends a request ([`sink`]), HTTP/2
//! connections ([`h2`]) on their sockets ([`h2_io`]), their streams' sink ([`h2_sink`]), the bytes
//! a connection may hold queued ([`h2_queue`]) and control-frame budget ([`h2_frames`]), one request through the driver for either
//! ([`request`]), the limits every request head is checked against
//! ([`limits`]), what SIGHUP swaps ([`reload`]) and the cluster membership
//! kept from DNS ([`membership`]), where the configuration
//! becomes the runtime settings of every layer ([`settings`]), the admin
//! listener ([`admin`]) and the access log line each request ends with
//! ([`access`]).

pub mod access;
pub mod admin;
pub mod connection;
pub mod h2;
pub mod h2_frames;
pub mod h2_io;
pub mod h2_queue;
pub mod h2_sink;
pub mod limits;
pub mod membership;
pub mod reload;
pub mod request;
pub mod runtime;
pub mod settings;
pub mod sink;
pub mod stream;
pub mod tls;
pub mod tls_stream;
pub mod worker;
