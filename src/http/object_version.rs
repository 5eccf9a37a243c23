//! The version of an object: its length and validators.
//!
//! The first answer of a request (the probe) fixes it; every later slice,
//! every cached manifest and every conditional is judged against it.

use http::{header, HeaderMap, HeaderValue};

/// The version of an object a response is assembled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Total length in bytes.
    pub len: u64,
    /// The origin's ETag, if it sent one.
    pub etag: Option<HeaderValue>,
    /// The origin's Last-Modified, if it sent one.
    pub last_modified: Option<HeaderValue>,
}

impl ObjectVersion {
    /// The version of `len` bytes whose validators are in `headers`.
    pub fn from_headers(len: u64, headers: &HeaderMap) -> ObjectVersion {
        ObjectVersion {
            len,
            etag: headers.get(header::ETAG).cloned(),
            last_modified: headers.get(header::LAST_MODIFIED).cloned(),
        }
    }
}
