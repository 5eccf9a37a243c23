//! The client side of one request: writing the response head and body, and
//! relaying an origin answer as it is.
//!
//! [`Exchange`] writes through the [`ResponseSink`] its connection lends, so
//! nothing here knows the client's protocol. It remembers whether the head
//! went out: before it, a failure can still become a 4xx/5xx answer; after
//! it, the connection must be aborted.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::cache::CacheResult;
use crate::error::Result;
use crate::http::conditional::{not_modified_headers, Precondition};
use crate::http::h1::{self, BodyFraming};
use crate::http::sink::{BodyLength, ResponseSink};
use crate::origin::pool::OriginResponse;
use crate::proxy::fill::Filler;
use crate::slice::source::SliceCounts;

/// The `Cache-Status` header (RFC 9211).
pub const CACHE_STATUS: header::HeaderName = header::HeaderName::from_static("cache-status");

/// The client side of one request/response exchange: the sink the
/// connection lends, and what the answer was, for the log and the metrics.
pub struct Exchange<'a, S> {
    /// Where the answer goes (and the request body comes from).
    pub sink: &'a mut S,
    /// The client's address.
    pub peer: SocketAddr,
    /// The request is a HEAD: heads only, never a body.
    pub head_only: bool,
    /// Whether the response head went out (after it, failures abort).
    pub head_sent: bool,
    /// Status sent to the client.
    pub status: u16,
    /// Body bytes sent to the client.
    pub body_bytes: u64,
    /// Slices the response was assembled from, by where their bytes came from.
    pub slices: SliceCounts,
    /// What `X-Cache` said, if anything.
    pub x_cache: Option<CacheResult>,
    /// When the response head went out.
    pub head_at: Option<std::time::Instant>,
    /// Requests this exchange sent to the origin (retries included).
    pub origin_attempts: crate::slice::attempt::OriginAttempts,
    /// This cache's `Cache-Status` member for the answer, once decided.
    pub cache_status: Option<HeaderValue>,
    /// `Age` of an answer served from the cache, in seconds.
    pub age: Option<u64>,
    /// The client connection's id on this worker: turns of the worker's
    /// budget are shared out by connection.
    pub client: u64,
}

impl<'a, S> Exchange<'a, S> {
    /// A new exchange with `peer` through `sink`; `head_only` for a HEAD.
    pub fn new(sink: &'a mut S, peer: SocketAddr, head_only: bool) -> Exchange<'a, S> {
        Exchange {
            sink,
            peer,
            head_only,
            head_sent: false,
            status: 0,
            body_bytes: 0,
            slices: SliceCounts::default(),
            x_cache: None,
            head_at: None,
            origin_attempts: Default::default(),
            cache_status: None,
            age: None,
            client: 0,
        }
    }

    /// The same exchange, on the connection the worker knows as `client`.
    pub fn from_connection(mut self, client: u64) -> Self {
        self.client = client;
        self
    }
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

impl<S: ResponseSink> Exchange<'_, S> {
    /// Write the response head, then a body of `length`. Every answer gets a
    /// `Date` (RFC 9110 section 6.6.1) unless the origin's is relayed;
    /// answers from the cache get their `Age`; this cache's `Cache-Status`
    /// member goes after any the origin sent (RFC 9211 section 2).
    pub async fn send_head(
        &mut self,
        status: StatusCode,
        mut headers: HeaderMap,
        length: BodyLength,
    ) -> Result<()> {
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
        self.head_sent = true;
        self.head_at = Some(std::time::Instant::now());
        self.status = status.as_u16();
        self.sink.send_head(status, headers, length).await
    }

    /// Write body bytes to the client.
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        self.sink.send_body(data).await
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
        let length = BodyLength::Known(body.len() as u64);
        self.send_head(status, headers, length).await?;
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
            let headers = not_modified_headers(stored);
            return self
                .send_head(StatusCode::NOT_MODIFIED, headers, BodyLength::Empty)
                .await;
        }
        self.send_plain(
            StatusCode::PRECONDITION_FAILED,
            HeaderMap::new(),
            "precondition failed\n",
        )
        .await
    }

    /// Count what a slice stream delivered (also when it failed part-way),
    /// here and in `edgeslice_slices_total` by source.
    pub fn record(&mut self, delivered: &crate::slice::stream::Delivery) {
        self.body_bytes += delivered.bytes;
        self.slices = delivered.slices;
        crate::ops::metrics::with(|m| {
            for (source, n) in delivered.slices.each() {
                m.slice_sources.add(source, n);
            }
        });
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

    /// The 504 of a request with `Cache-Control: only-if-cached` when
    /// nothing stored will do (RFC 9111 5.2.1.7): the origin is not asked.
    pub async fn send_not_stored(&mut self) -> Result<()> {
        let text = "only-if-cached: no stored answer will do\n";
        self.send_plain(StatusCode::GATEWAY_TIMEOUT, HeaderMap::new(), text)
            .await
    }

    /// Pass on the origin's interim (1xx) answers, each without its
    /// hop-by-hop fields, before the final head.
    pub async fn send_interim(&mut self, resp: &mut OriginResponse) -> Result<()> {
        for head in std::mem::take(&mut resp.interim) {
            let mut headers = head.headers;
            h1::strip_hop_by_hop(&mut headers);
            self.sink.send_interim(head.status, headers).await?;
        }
        Ok(())
    }

    /// Phase "relay": stream an origin answer to the client as it is; a body
    /// of unknown length is framed by the connection.
    pub async fn relay(&mut self, resp: OriginResponse) -> Result<()> {
        self.relay_filling(resp, None).await
    }

    /// [`Exchange::relay`], handing each body chunk to `filler` (which
    /// cuts it into slices and stores them) on the way.
    pub async fn relay_filling(
        &mut self,
        mut resp: OriginResponse,
        mut filler: Option<&mut Filler>,
    ) -> Result<()> {
        self.send_interim(&mut resp).await?;
        let mut headers = resp.head.headers.clone();
        h1::strip_hop_by_hop(&mut headers);
        let length = match resp.framing() {
            _ if self.head_only => BodyLength::Empty,
            BodyFraming::Chunked | BodyFraming::UntilClose => BodyLength::Unknown,
            BodyFraming::Length(n) => BodyLength::Known(n),
            BodyFraming::Empty => BodyLength::Empty,
        };
        self.send_head(resp.head.status, headers, length).await?;
        if self.head_only {
            return Ok(());
        }
        while let Some(data) = resp.chunk().await? {
            self.body_bytes += data.len() as u64;
            if let Some(f) = filler.as_deref_mut() {
                f.observe(&data).await;
            }
            self.write(data).await?;
        }
        self.sink.end_body().await
    }
}
