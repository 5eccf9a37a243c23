//! One error type for the request path, tagged with where it came from.
//!
//! Every failure a request can meet is an [`Error`]; [`Error::source_kind`] says
//! whether the client, the origin or edgeslice itself caused it, and
//! [`Error::status`] is the answer a client gets when the failure happens before
//! a response head was sent. After the head, any error aborts the connection.

use std::io;

use http::StatusCode;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The downstream client: bad request, closed connection.
    Client,
    /// The upstream origin: refused, broke, timed out, or answered wrongly.
    Origin,
    /// A peer node of the cluster, asked for a slice before the origin.
    Peer,
    /// edgeslice itself.
    Internal,
}

/// What edgeslice was waiting for when an origin (or a peer) ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The connection (`origin.connect_timeout_ms`).
    Connect,
    /// The answer's head (`origin.head_timeout_ms`).
    ResponseHead,
    /// Room to write the request body (`origin.read_timeout_ms`).
    RequestBody,
    /// The next body bytes (`origin.read_timeout_ms`).
    BodyBytes,
    /// The whole slice (`origin.slice_timeout_ms`).
    WholeSlice,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::Connect => "connecting",
            Waiting::ResponseHead => "waiting for the response head",
            Waiting::RequestBody => "writing the request body",
            Waiting::BodyBytes => "waiting for body bytes",
            Waiting::WholeSlice => "for the whole slice",
        })
    }
}

/// A failure on the request path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's request cannot be served as sent.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The client's request head is larger than the configured limit.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Reading from or writing to the client failed.
    #[error("client connection: {0}")]
    ClientIo(#[source] io::Error),
    /// The client sent nothing within the header timeout.
    #[error("client sent no complete request head within {0} ms")]
    ClientTimeout(u64),
    /// The client sent more header fields than the limit.
    #[error("more than {limit} request header fields")]
    TooManyHeaders {
        /// The configured limit (`server.max_headers`).
        limit: usize,
    },
    /// The request uses a transfer coding edgeslice does not implement.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// The client stopped reading the response.
    #[error("client accepted no response bytes within {0} ms")]
    ClientSendTimeout(u64),
    /// The client stopped sending its request body.
    #[error("client sent no request body bytes within {0} ms")]
    ClientBodyTimeout(u64),
    /// The request target is longer than the limit.
    #[error("request target longer than {limit} bytes")]
    UriTooLong {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A cached slice could not be read from its slot file.
    #[error("reading {len} bytes at {offset} of a slot file: {source}")]
    CacheRead {
        /// Bytes asked.
        len: u64,
        /// Where in the slot file.
        offset: u64,
        /// What the read returned (`UnexpectedEof`: the file is shorter).
        #[source]
        source: io::Error,
    },
    /// The request body is larger than the limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// No connection to the origin could be made.
    #[error("connect to origin {addr}: {source}")]
    OriginConnect {
        /// The origin address as configured.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake with an `https://` origin failed: its certificate
    /// did not verify, it sent an alert, or it does not speak TLS.
    #[error("TLS handshake with origin {origin} failed: {reason}")]
    OriginTls {
        /// The origin as configured.
        origin: String,
        /// What rustls said, e.g. `invalid peer certificate: UnknownIssuer`.
        reason: String,
    },
    /// Reading from or writing to the origin failed.
    #[error("origin connection: {0}")]
    OriginIo(#[source] io::Error),
    /// The origin did not answer in time.
    #[error("origin timed out {0}")]
    OriginTimeout(Waiting),
    /// The origin answered a slice with a server error.
    #[error("origin answered {status} for slice {index}")]
    OriginStatus {
        /// Index of the slice asked for.
        index: u64,
        /// The 5xx status.
        status: u16,
    },
    /// The origin's circuit breaker is open: failing fast instead of piling on.
    #[error("origin {origin} is unreachable: circuit breaker open, retry in {retry_after} s")]
    OriginUnavailable {
        /// The origin as configured.
        origin: String,
        /// Seconds until the breaker lets a probe through (`Retry-After`).
        retry_after: u64,
    },
    /// The origin's answer is not valid HTTP/1.1.
    #[error("origin sent an invalid response: {0}")]
    OriginProtocol(String),
    /// A peer node answered a slice request with a server error or 403; the
    /// slice goes to the origin instead, so a client never sees this.
    #[error("peer {peer} answered {status}")]
    PeerStatus {
        /// The peer as configured in `cluster.peers`.
        peer: std::net::SocketAddr,
        /// Its status.
        status: u16,
    },
    /// Asking a peer node for a slice failed (its connection, its answer's
    /// head or body, its time): the slice goes to the origin instead, and
    /// the peer is marked down.
    #[error("peer {peer}: {source}")]
    Peer {
        /// The peer as configured in `cluster.peers`.
        peer: std::net::SocketAddr,
        /// What failed, as it would have for an origin.
        #[source]
        source: Box<Error>,
    },
    /// A slice answer failed a check: the object changed or the origin is broken.
    #[error("slice {index}: {detail}")]
    SliceMismatch {
        /// Index of the slice whose answer failed.
        index: u64,
        /// What was got and what was expected.
        detail: String,
    },
}

impl Error {
    /// Who caused this failure.
    pub fn source_kind(&self) -> ErrorSource {
        match self {
            Error::BadRequest(_)
            | Error::HeadTooLarge { .. }
            | Error::TooManyHeaders { .. }
            | Error::NotImplemented(_)
            | Error::ClientIo(_)
            | Error::ClientTimeout(_)
            | Error::ClientSendTimeout(_)
            | Error::ClientBodyTimeout(_)
            | Error::UriTooLong { .. }
            | Error::BodyTooLarge { .. } => ErrorSource::Client,
            Error::OriginConnect { .. }
            | Error::OriginTls { .. }
            | Error::OriginIo(_)
            | Error::OriginTimeout(_)
            | Error::OriginStatus { .. }
            | Error::OriginUnavailable { .. }
            | Error::OriginProtocol(_)
            | Error::SliceMismatch { .. } => ErrorSource::Origin,
            Error::PeerStatus { .. } | Error::Peer { .. } => ErrorSource::Peer,
            Error::CacheRead { .. } => ErrorSource::Internal,
        }
    }

    /// The status a client gets when this happens before the response head.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::HeadTooLarge { .. } | Error::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::ClientIo(_) => StatusCode::BAD_REQUEST,
            Error::ClientTimeout(_) | Error::ClientSendTimeout(_) | Error::ClientBodyTimeout(_) => {
                StatusCode::REQUEST_TIMEOUT
            }
            Error::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::OriginUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Peer { source, .. } => source.status(),
            Error::OriginTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::OriginConnect { .. }
            | Error::OriginTls { .. }
            | Error::OriginIo(_)
            | Error::OriginProtocol(_)
            | Error::OriginStatus { .. }
            | Error::PeerStatus { .. }
            | Error::SliceMismatch { .. } => StatusCode::BAD_GATEWAY,
            Error::CacheRead { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The client went away (closed, reset, or stopped reading): nobody is
    /// left to answer, and it is not a failure of the origin or of edgeslice.
    pub fn is_client_gone(&self) -> bool {
        use io::ErrorKind::*;
        match self {
            Error::ClientSendTimeout(_) => true,
            Error::ClientIo(e) => matches!(
                e.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected
            ),
            _ => false,
        }
    }

    /// This failure, met while asking the peer at `peer`: a peer's failure.
    pub fn of_peer(self, peer: std::net::SocketAddr) -> Error {
        match self {
            e @ (Error::Peer { .. } | Error::PeerStatus { .. }) => e,
            e => Error::Peer {
                peer,
                source: Box::new(e),
            },
        }
    }

    /// Build a slice check failure; `detail` says what was got and what was expected.
    pub fn mismatch(index: u64, detail: impl Into<String>) -> Error {
        Error::SliceMismatch {
            index,
            detail: detail.into(),
        }
    }
}

/// Result on the request path.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_source() {
        let cases: Vec<(Error, ErrorSource, u16)> = vec![
            (Error::BadRequest("x".into()), ErrorSource::Client, 400),
            (Error::HeadTooLarge { limit: 1 }, ErrorSource::Client, 431),
            (
                Error::OriginTimeout(Waiting::ResponseHead),
                ErrorSource::Origin,
                504,
            ),
            (
                Error::mismatch(3, "got a, expected b"),
                ErrorSource::Origin,
                502,
            ),
            (
                Error::OriginProtocol("bad".into()),
                ErrorSource::Origin,
                502,
            ),
            (
                Error::OriginTls {
                    origin: "https://o".into(),
                    reason: "invalid peer certificate: UnknownIssuer".into(),
                },
                ErrorSource::Origin,
                502,
            ),
            (
                Error::PeerStatus {
                    peer: "127.0.0.1:1".parse().unwrap(),
                    status: 503,
                },
                ErrorSource::Peer,
                502,
            ),
            (
                Error::OriginTimeout(Waiting::BodyBytes).of_peer("127.0.0.1:1".parse().unwrap()),
                ErrorSource::Peer,
                504,
            ),
            (
                Error::CacheRead {
                    len: 1,
                    offset: 0,
                    source: io::ErrorKind::UnexpectedEof.into(),
                },
                ErrorSource::Internal,
                500,
            ),
        ];
        for (err, source, status) in cases {
            assert_eq!(err.source_kind(), source, "{err}");
            assert_eq!(err.status().as_u16(), status, "{err}");
        }
        let refused = Error::OriginConnect {
            addr: "127.0.0.1:1".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        let of_peer = refused.of_peer("127.0.0.1:1".parse().unwrap());
        assert!(
            of_peer
                .to_string()
                .starts_with("peer 127.0.0.1:1: connect to"),
            "{of_peer}"
        );
        assert!(std::error::Error::source(&of_peer).is_some());
        assert_eq!(
            Error::mismatch(3, "got 4-5, expected 2-3").to_string(),
            "slice 3: got 4-5, expected 2-3"
        );
    }
}
