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

    /// Whether answers of this version may be combined into one slice
    /// (RFC 9111 3.4): it has a strong ETag or a Last-Modified, which every
    /// answer is checked against, the same rule that lets slices of one
    /// object be joined at all.
    pub fn combinable(&self) -> bool {
        self.strong_etag().is_some() || self.last_modified.is_some()
    }

    /// The ETag, when it is a strong one (not `W/`).
    pub fn strong_etag(&self) -> Option<&HeaderValue> {
        self.etag
            .as_ref()
            .filter(|etag| !etag.as_bytes().starts_with(b"W/"))
    }
}
