//! The client side of one request: writing the response head and body, and
//! relaying an origin answer as it is.
//!
//! [`Exchange`] remembers whether the head went out: before it, a failure can
//! still become a 4xx/5xx answer; after it, the connection must be aborted.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use monoio::io::AsyncWriteRentExt;
use monoio_codec::FramedRead;
use monoio_http::h1::codec::decoder::RequestHeadDecoder;

use crate::cache::CacheStatus;
use crate::error::{Error, Result};
use crate::http::conditional::{not_modified_headers, Precondition};
use crate::http::h1::{self, BodyFraming, LimitedHead, ReadHalf, WriteHalf};
use crate::origin::pool::OriginResponse;

/// The `Cache-Status` header (RFC 9211).
pub const CACHE_STATUS: header::HeaderName = header::HeaderName::from_static("cache-status");

/// Write `data` to a client that must accept it within `timeout`.
pub async fn write_to_client(writer: &mut WriteHalf, data: Bytes, timeout: Duration) -> Result<()> {
    match monoio::time::timeout(timeout, writer.write_all(data)).await {
        Ok((res, _)) => res.map(|_| ()).map_err(Error::ClientIo),
        Err(_) => Err(Error::ClientSendTimeout(timeout.as_millis() as u64)),
    }
}

/// The client side of one request/response exchange.
pub struct Exchange<'a> {
    /// Where the request (head and body) is read from.
    pub reader: &'a mut FramedRead<ReadHalf, LimitedHead<RequestHeadDecoder>>,
    /// Where the response goes.
    pub writer: &'a mut WriteHalf,
    /// The client's address.
    pub peer: SocketAddr,
    /// HTTP version the client spoke.
    pub version: Version,
    /// Time the client may take to accept response bytes.
    pub send_timeout: Duration,
    /// Largest request body passed through.
    pub max_body_bytes: u64,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
    /// The request is a HEAD: heads only, never a body.
    pub head_only: bool,
    /// Whether the response head went out (after it, failures abort).
    pub head_sent: bool,
    /// Status sent to the client.
    pub status: u16,
    /// Body bytes sent to the client.
    pub body_bytes: u64,
    /// Slices the response was assembled from.
    pub slices: u64,
    /// Of those, slices served from the cache.
    pub slices_cached: u64,
    /// What `X-Cache` said, if anything.
    pub cache: Option<CacheStatus>,
    /// When the response head went out.
    pub head_at: Option<std::time::Instant>,
    /// Requests this exchange sent to the origin (retries included).
    pub origin_attempts: Rc<Cell<u64>>,
    /// This cache's `Cache-Status` member for the answer, once decided.
    pub cache_status: Option<HeaderValue>,
    /// `Age` of an answer served from the cache, in seconds.
    pub age: Option<u64>,
}

/// The current time as an HTTP-date, formatted once per second per thread.
fn date_now() -> HeaderValue {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, HeaderValue)> =
            const { std::cell::RefCell::new((0, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            *d = (
                secs,
                HeaderValue::from_str(&text).expect("an HTTP-date is ASCII"),
            );
        }
        d.1.clone()
    })
}

impl Exchange<'_> {
    /// Write the response head; `Connection: close` is added when the
    /// connection will not be reused. Every answer gets a `Date` (RFC 9110
    /// section 6.6.1) unless the origin's is relayed; answers from the cache
    /// get their `Age`; this cache's `Cache-Status` member goes after any
    /// the origin sent (RFC 9211 section 2).
    pub async fn send_head(&mut self, status: StatusCode, mut headers: HeaderMap) -> Result<()> {
        if !self.keep_alive {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if !headers.contains_key(header::DATE) {
            headers.insert(header::DATE, date_now());
        }
        if let Some(age) = self.age {
            headers.insert(header::AGE, HeaderValue::from(age));
        }
        if let Some(ours) = &self.cache_status {
            let value = match headers.get(CACHE_STATUS).map(|v| v.as_bytes()) {
                Some(theirs) if !theirs.is_empty() => {
                    let mut joined = theirs.to_vec();
                    joined.extend_from_slice(b", ");
                    joined.extend_from_slice(ours.as_bytes());
                    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| ours.clone())
                }
                _ => ours.clone(),
            };
            headers.insert(CACHE_STATUS, value);
        }
        let mut out = Vec::with_capacity(512);
        h1::encode_response_head(status, &headers, &mut out);
        self.head_sent = true;
        self.head_at = Some(std::time::Instant::now());
        self.status = status.as_u16();
        self.write(Bytes::from(out)).await
    }

    /// Write body bytes (or an interim response) to the client.
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        write_to_client(self.writer, data, self.send_timeout).await
    }

    /// Answer with a short plain-text body (errors, 403, 416).
    pub async fn send_plain(
        &mut self,
        status: StatusCode,
        mut headers: HeaderMap,
        body: &str,
    ) -> Result<()> {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.send_head(status, headers).await?;
        if self.head_only {
            return Ok(());
        }
        self.body_bytes += body.len() as u64;
        self.write(Bytes::copy_from_slice(body.as_bytes())).await
    }

    /// Answer `verdict`: 304 with the validators and freshness of `stored`, or
    /// 412 (RFC 9110 section 13.2.2), without a body and without asking the origin.
    pub(crate) async fn answer_precondition(
        &mut self,
        verdict: Precondition,
        stored: &HeaderMap,
    ) -> Result<()> {
        if verdict == Precondition::NotModified {
            let mut headers = not_modified_headers(stored);
            if let Some(status) = &self.cache_status {
                headers.insert(CACHE_STATUS, status.clone());
                self.cache_status = None;
            }
            return self.send_head(StatusCode::NOT_MODIFIED, headers).await;
        }
        self.send_plain(
            StatusCode::PRECONDITION_FAILED,
            HeaderMap::new(),
            "precondition failed\n",
        )
        .await
    }

    /// Count what a slice stream delivered (also when it failed part-way).
    pub fn record(&mut self, delivered: &crate::slice::stream::Delivery) {
        self.body_bytes += delivered.bytes;
        self.slices_cached = delivered.from_cache;
        self.slices = delivered.from_cache + delivered.from_origin;
    }

    /// 416 with `Content-Range: bytes */len`.
    pub async fn send_unsatisfiable(&mut self, len: u64) -> Result<()> {
        self.send_plain(
            StatusCode::RANGE_NOT_SATISFIABLE,
            crate::http::headers::unsatisfied_headers(len),
            "range not satisfiable\n",
        )
        .await
    }

    /// Phase "relay": stream an origin answer to the client as it is,
    /// re-framed (chunked to HTTP/1.1 clients when its length is unknown).
    pub async fn relay(&mut self, resp: OriginResponse) -> Result<()> {
        self.relay_observed(resp, &mut |_| {}).await
    }

    /// [`Exchange::relay`], showing each body chunk to `observe` on the way.
    pub async fn relay_observed(
        &mut self,
        mut resp: OriginResponse,
        observe: &mut dyn FnMut(&Bytes),
    ) -> Result<()> {
        let mut headers = resp.head.headers.clone();
        h1::strip_hop_by_hop(&mut headers);
        let status = resp.head.status;
        let head_only = self.head_only;
        let chunked = matches!(
            resp.framing(),
            BodyFraming::Chunked | BodyFraming::UntilClose
        );
        let client_chunked = chunked && self.version == Version::HTTP_11;
        if chunked && !head_only {
            headers.remove(header::CONTENT_LENGTH);
            if client_chunked {
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            } else {
                // An HTTP/1.0 client learns the end of an unknown length by the close.
                self.keep_alive = false;
            }
        }
        self.send_head(status, headers).await?;
        if head_only {
            return Ok(());
        }
        while let Some(data) = resp.chunk().await? {
            self.body_bytes += data.len() as u64;
            observe(&data);
            if client_chunked {
                self.write(h1::chunk_header(data.len())).await?;
                self.write(data).await?;
                self.write(Bytes::from_static(b"\r\n")).await?;
            } else {
                self.write(data).await?;
            }
        }
        if client_chunked {
            self.write(Bytes::from_static(b"0\r\n\r\n")).await?;
        }
        Ok(())
    }
}
