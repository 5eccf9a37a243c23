//! Limits on what a client may send and how slowly it may read, checked on
//! every request head before it reaches a route.

use std::time::Duration;

use monoio_http::common::request::RequestHead;

use crate::config::LogFormat;
use crate::error::Error;
use crate::http::h1;

/// Limits on what a client may send and how slowly it may read.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Longest accepted request head in bytes.
    pub max_head_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Longest request target in bytes.
    pub max_url_bytes: usize,
    /// Largest request body passed through, in bytes.
    pub max_body_bytes: u64,
    /// Time allowed for a request head to arrive (and for an idle keep-alive connection).
    pub header_timeout: Duration,
    /// Time a client may take to accept response bytes.
    pub send_timeout: Duration,
    /// Longest gap between the bytes of a request body.
    pub body_timeout: Duration,
    /// Open connections per worker.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// How access log lines are written; `None` writes none.
    pub access_log: Option<LogFormat>,
    /// What an HTTP/2 connection allows.
    pub h2: H2Limits,
}

/// What an HTTP/2 connection allows its client (the `[server] h2_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams open at once; more are refused.
    pub max_concurrent_streams: u32,
    /// Largest decoded header list, in bytes.
    pub max_header_list_size: u32,
    /// Receive window of a stream (request bodies), in bytes.
    pub stream_window: u32,
    /// Receive window of the connection, in bytes.
    pub connection_window: u32,
    /// Streams reset by the client before they were accepted; past it, GOAWAY.
    pub max_pending_accept_reset_streams: usize,
    /// Streams reset for the client's protocol errors; past it, GOAWAY.
    pub max_local_error_reset_streams: usize,
    /// Control frames per second; past it, GOAWAY `ENHANCE_YOUR_CALM`.
    pub max_control_frames_per_sec: u32,
}

impl ClientLimits {
    /// Check a request head against the limits.
    pub(crate) fn check(&self, head: &RequestHead) -> Result<(), Error> {
        if head.headers.len() > self.max_headers {
            return Err(Error::TooManyHeaders {
                limit: self.max_headers,
            });
        }
        let target_len = head.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if target_len > self.max_url_bytes {
            return Err(Error::UriTooLong {
                limit: self.max_url_bytes,
            });
        }
        if let Ok(Some(n)) = h1::content_length(&head.headers) {
            if n > self.max_body_bytes {
                return Err(Error::BodyTooLarge {
                    limit: self.max_body_bytes,
                });
            }
        }
        Ok(())
    }
}
