//! The request pipeline, one function per phase, called top to bottom:
//! classify -> probe -> plan -> respond -> stream.
//!
//! A GET or HEAD is sliced: the probe asks the origin for the slice holding
//! the first byte the client wants, which also tells the object's length and
//! validators; the client's range is then resolved against that length, a
//! [`SlicePlan`] made, and the slices streamed in order by
//! [`stream::send_slices`]. Anything not worth slicing (other methods, origins
//! that ignore Range, answers without a known length, 304/4xx/5xx) is relayed
//! as the origin sent it, streamed.
//!
//! Errors before the response head become a 4xx/5xx answer (see
//! [`Error::status`]); after it, the server aborts the connection.

use std::rc::Rc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use monoio::io::AsyncWriteRentExt;
use monoio_codec::FramedRead;
use monoio_http::common::request::RequestHead;
use monoio_http::h1::codec::decoder::RequestHeadDecoder;
use tracing::debug;

use crate::error::{Error, Result};
use crate::fetch::{check_slice_head, ObjectVersion, SliceJob};
use crate::http1::{self, BodyFraming, LimitedHead, ReadHalf, WriteHalf};
use crate::origin::{OriginPool, OriginResponse};
use crate::plan::{self, SlicePlan};
use crate::range::{parse_content_range, parse_range, ContentRange, RangeRequest};
use crate::stream;

/// Settings of the pipeline, converted once from the configuration.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Bytes per slice.
    pub slice_size: u64,
    /// Slices of one request in flight at once.
    pub window: usize,
    /// Host header sent to the origin instead of the client's, if set.
    pub host_header: Option<HeaderValue>,
    /// Host header sent when the client gave none.
    pub default_host: HeaderValue,
}

/// One worker's proxy: its settings and its own origin pool.
pub struct Proxy {
    /// Pipeline settings.
    pub settings: ProxySettings,
    /// This worker's connections to the origin.
    pub pool: Rc<OriginPool>,
}

/// The client side of one request/response exchange.
pub struct Exchange<'a> {
    /// Where the request (head and body) is read from.
    pub reader: &'a mut FramedRead<ReadHalf, LimitedHead<RequestHeadDecoder>>,
    /// Where the response goes.
    pub writer: &'a mut WriteHalf,
    /// HTTP version the client spoke.
    pub version: Version,
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
}

impl Exchange<'_> {
    async fn send_head(&mut self, status: StatusCode, mut headers: HeaderMap) -> Result<()> {
        if !self.keep_alive {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut out = Vec::with_capacity(512);
        http1::encode_response_head(status, &headers, &mut out);
        self.head_sent = true;
        self.status = status.as_u16();
        self.write(Bytes::from(out)).await
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        let (res, _) = self.writer.write_all(data).await;
        res.map(|_| ()).map_err(Error::ClientIo)
    }

    /// Answer with a short plain-text body (errors, 416).
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
}

impl Proxy {
    /// Serve one request whose head has been read.
    pub async fn handle(&self, req: &RequestHead, ex: &mut Exchange<'_>) -> Result<()> {
        let framing = http1::request_framing(&req.headers)?;
        let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let forwarded = self.forwarded_headers(req);
        if req.method != Method::GET && req.method != Method::HEAD {
            return self
                .pass_through(req, target, &forwarded, framing, ex)
                .await;
        }
        if framing != BodyFraming::Empty {
            // A body on GET/HEAD is not read; the connection cannot be reused.
            ex.keep_alive = false;
        }
        let range = match req.headers.get(header::RANGE) {
            Some(v) => parse_range(v.as_bytes()),
            None => RangeRequest::Full,
        };
        self.sliced(req, target, forwarded, range, ex).await
    }

    /// Request headers for the origin: end-to-end ones, without Range and
    /// If-Range (each slice sets its own Range), with the Host to use.
    fn forwarded_headers(&self, req: &RequestHead) -> HeaderMap {
        let mut headers = req.headers.clone();
        http1::strip_hop_by_hop(&mut headers);
        headers.remove(header::RANGE);
        headers.remove(header::IF_RANGE);
        headers.remove(header::EXPECT);
        if let Some(host) = &self.settings.host_header {
            headers.insert(header::HOST, host.clone());
        } else if !headers.contains_key(header::HOST) {
            let host = req
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.settings.default_host.clone());
            headers.insert(header::HOST, host);
        }
        headers
    }

    /// Phase "pass through": forward the request with its body, relay the answer.
    async fn pass_through(
        &self,
        req: &RequestHead,
        target: &str,
        forwarded: &HeaderMap,
        framing: BodyFraming,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let resp = match framing {
            BodyFraming::Empty => self.pool.request(&req.method, target, forwarded).await?,
            _ => {
                let mut headers = forwarded.clone();
                match framing {
                    BodyFraming::Length(n) => {
                        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                    }
                    _ => {
                        headers.insert(
                            header::TRANSFER_ENCODING,
                            HeaderValue::from_static("chunked"),
                        );
                    }
                }
                if expects_continue(&req.headers) {
                    ex.write(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"))
                        .await?;
                }
                self.pool
                    .request_with_body(&req.method, target, &headers, ex.reader, framing)
                    .await?
            }
        };
        relay(resp, req.method == Method::HEAD, ex).await
    }

    /// Phases "probe", "plan", "respond" and "stream" of a GET or HEAD.
    async fn sliced(
        &self,
        req: &RequestHead,
        target: &str,
        forwarded: HeaderMap,
        range: RangeRequest,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let size = self.settings.slice_size;
        let head_only = req.method == Method::HEAD;
        let probe_index = match &range {
            RangeRequest::Single(crate::range::ByteRangeSpec::FromTo(a, _))
            | RangeRequest::Single(crate::range::ByteRangeSpec::From(a)) => {
                plan::slice_of(*a, size)
            }
            _ => 0,
        };
        // Probe: the client's conditionals go with the first slice only, so a
        // 304 or 412 comes back as the origin means it.
        let mut probe_headers = forwarded.clone();
        probe_headers.insert(header::RANGE, range_value(probe_index, size));
        let probe = self
            .pool
            .request(&Method::GET, target, &probe_headers)
            .await?;
        match probe.head.status {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return self
                    .unsatisfiable(req, target, forwarded, range, probe, ex)
                    .await
            }
            // 200 (Range ignored), 304, 3xx, 4xx, 5xx: as the origin gave it.
            _ => return relay(probe, head_only, ex).await,
        }
        let version = match check_slice_head(probe_index, size, &probe.head, None) {
            Ok(v) => v,
            Err(_) if total_unknown(&probe.head.headers) => {
                drop(probe);
                let resp = self
                    .pool
                    .request(&req.method, target, &req_headers_unsliced(req, &forwarded))
                    .await?;
                return relay(resp, head_only, ex).await;
            }
            Err(e) => return Err(e),
        };

        // Plan: resolve the client's range against the object's length.
        let ranged = matches!(range, RangeRequest::Single(_)) && if_range_allows(req, &version);
        let (status, first, last) = match range {
            RangeRequest::Single(spec) if ranged => match spec.resolve(version.len) {
                Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
                None => {
                    return ex
                        .send_plain(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            unsatisfied_headers(version.len),
                            "range not satisfiable\n",
                        )
                        .await
                }
            },
            _ => (StatusCode::OK, 0, version.len - 1),
        };
        let plan = SlicePlan::new(first, last, version.len, size);
        debug!(
            first_slice = plan.first_slice,
            last_slice = plan.last_slice,
            len = version.len,
            "slice plan"
        );

        // Respond: the origin's end-to-end headers with our framing.
        let mut headers = probe.head.headers.clone();
        object_headers(&mut headers);
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(plan.content_length()),
        );
        if status == StatusCode::PARTIAL_CONTENT {
            let cr = ContentRange::Bytes {
                first,
                last,
                total: Some(version.len),
            };
            headers.insert(header::CONTENT_RANGE, header_value(&cr.to_string()));
        }
        ex.send_head(status, headers).await?;
        if head_only {
            return Ok(());
        }

        // Stream: the probe's answer is reused when it is the plan's first slice.
        let probe = (plan.first_slice == probe_index).then_some(probe);
        ex.slices = plan.slice_count();
        let job = Rc::new(SliceJob {
            pool: self.pool.clone(),
            target: Rc::from(target),
            headers: Rc::new(slice_headers(forwarded)),
            plan,
            version: Rc::new(version),
        });
        ex.body_bytes += stream::send_slices(job, self.settings.window, probe, ex.writer).await?;
        Ok(())
    }

    /// The probe was answered 416: an empty object, or a range past the end.
    async fn unsatisfiable(
        &self,
        req: &RequestHead,
        target: &str,
        forwarded: HeaderMap,
        range: RangeRequest,
        probe: OriginResponse,
        ex: &mut Exchange<'_>,
    ) -> Result<()> {
        let total = match probe
            .head
            .headers
            .get(header::CONTENT_RANGE)
            .map(|v| parse_content_range(v.as_bytes()))
        {
            Some(Ok(ContentRange::Unsatisfied { total })) => total,
            _ => {
                return Err(Error::mismatch(
                    0,
                    "got 416 without \"Content-Range: bytes */length\", expected one",
                ))
            }
        };
        let version = ObjectVersion {
            len: total,
            etag: probe.head.headers.get(header::ETAG).cloned(),
            last_modified: probe.head.headers.get(header::LAST_MODIFIED).cloned(),
        };
        let ranged = matches!(range, RangeRequest::Single(_)) && if_range_allows(req, &version);
        if ranged {
            return ex
                .send_plain(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    unsatisfied_headers(total),
                    "range not satisfiable\n",
                )
                .await;
        }
        if total == 0 {
            let mut headers = probe.head.headers.clone();
            object_headers(&mut headers);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return ex.send_head(StatusCode::OK, headers).await;
        }
        if !matches!(range, RangeRequest::Full) {
            // An If-Range that did not match sends the whole object, from slice 0.
            return Box::pin(self.sliced(req, target, forwarded, RangeRequest::Full, ex)).await;
        }
        Err(Error::mismatch(
            0,
            format!("got 416 for the first slice of a {total}-byte object, expected 206"),
        ))
    }
}

/// Phase "relay": stream an origin answer to the client as it is, re-framed.
async fn relay(mut resp: OriginResponse, head_only: bool, ex: &mut Exchange<'_>) -> Result<()> {
    let mut headers = resp.head.headers.clone();
    http1::strip_hop_by_hop(&mut headers);
    let status = resp.head.status;
    let framing = resp.framing();
    let chunked = matches!(framing, BodyFraming::Chunked | BodyFraming::UntilClose);
    let client_chunked = chunked && ex.version == Version::HTTP_11;
    if chunked {
        headers.remove(header::CONTENT_LENGTH);
        if client_chunked && !head_only {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        } else if !head_only {
            // An HTTP/1.0 client learns the end of an unknown length by the close.
            ex.keep_alive = false;
        }
    }
    ex.send_head(status, headers).await?;
    if head_only {
        return Ok(());
    }
    while let Some(data) = resp.chunk().await? {
        ex.body_bytes += data.len() as u64;
        if client_chunked {
            ex.write(http1::chunk_header(data.len())).await?;
            ex.write(data).await?;
            ex.write(Bytes::from_static(b"\r\n")).await?;
        } else {
            ex.write(data).await?;
        }
    }
    if client_chunked {
        ex.write(Bytes::from_static(b"0\r\n\r\n")).await?;
    }
    Ok(())
}

/// If-Range (RFC 9110 section 13.1.5): a strong ETag or the exact Last-Modified must match.
fn if_range_allows(req: &RequestHead, version: &ObjectVersion) -> bool {
    let Some(cond) = req.headers.get(header::IF_RANGE) else {
        return true;
    };
    let cond = cond.as_bytes();
    if cond.starts_with(b"\"") {
        version.etag.as_ref().is_some_and(|e| e.as_bytes() == cond)
    } else if cond.starts_with(b"W/") {
        false
    } else {
        version
            .last_modified
            .as_ref()
            .is_some_and(|lm| lm.as_bytes() == cond)
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn total_unknown(headers: &HeaderMap) -> bool {
    matches!(
        headers
            .get(header::CONTENT_RANGE)
            .map(|v| parse_content_range(v.as_bytes())),
        Some(Ok(ContentRange::Bytes { total: None, .. }))
    )
}

/// The client's own request for a pass-through: its Range and If-Range put back.
fn req_headers_unsliced(req: &RequestHead, forwarded: &HeaderMap) -> HeaderMap {
    let mut headers = forwarded.clone();
    for name in [header::RANGE, header::IF_RANGE] {
        if let Some(v) = req.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers
}

/// Headers for slices after the probe: conditionals removed, so every slice is a plain 206.
fn slice_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        headers.remove(name);
    }
    headers
}

/// The origin's end-to-end headers, without the framing of the slice answer.
fn object_headers(headers: &mut HeaderMap) {
    http1::strip_hop_by_hop(headers);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_RANGE);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

fn unsatisfied_headers(total: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_RANGE,
        header_value(&ContentRange::Unsatisfied { total }.to_string()),
    );
    headers
}

fn range_value(index: u64, size: u64) -> HeaderValue {
    header_value(&plan::slice_range_header(index, size))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("generated header values are ASCII")
}
