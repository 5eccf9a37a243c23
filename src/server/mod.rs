//! The server: pinned monoio workers ([`runtime`]), their accept loops and
//! HTTP/1.1 connections ([`connection`]) over plain TCP or TLS ([`stream`],
//! [`tls`]) and the response sink each lends a request ([`sink`]), the limits every request head is checked against
//! ([`limits`]), what SIGHUP swaps ([`reload`]), where the configuration
//! becomes the runtime settings of every layer ([`settings`]), the admin
//! listener ([`admin`]) and the access log line each request ends with
//! ([`access`]).

pub mod access;
pub mod admin;
pub mod connection;
pub mod limits;
pub mod reload;
pub mod runtime;
pub mod settings;
pub mod sink;
pub mod stream;
pub mod tls;
