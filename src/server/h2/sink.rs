//! The HTTP/2 side of one request: the head an HTTP/2 stream's request
//! becomes ([`request_head`]), and the [`ResponseSink`] and [`BodySource`]
//! the stream lends the driver ([`H2Client`]).
//!
//! Everything HTTP/2-specific about answering lives here: hop-by-hop headers
//! stripped from the head (HTTP/2 forbids them), body bytes handed to the
//! stream only as flow control grants capacity, so a stream whose client
//! does not read holds at most its window and never the object; the end of
//! the stream, or its reset when the answer cannot be completed; and the
//! request body read from the stream, its capacity released as it is read.
//!
//! Errors: a stream the client reset, or a connection that went away, is an
//! [`Error::ClientIo`] of kind `ConnectionReset` (so the driver treats it as
//! a client that is gone); a client that grants no window for the send
//! timeout is an [`Error::ClientSendTimeout`].

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use monoio_http::common::request::RequestHead;

use crate::error::{Error, Result};
use crate::http::h1;
use crate::http::sink::{part_bytes, part_range, BodyLength, BodySource, FilePart, ResponseSink};
use crate::server::h2::queue::{SendQueue, CONNECTION_QUEUE};
use crate::server::limits::ClientLimits;

/// The head the driver reads, from an HTTP/2 request: `:authority` becomes
/// `Host` (as an HTTP/1.1 absolute-form target does), the target becomes
/// origin-form, and split `cookie` fields are joined again (RFC 9113
/// section 8.2.3) for the HTTP/1.1 origin. Also the body's length, and the
/// verdict of the client limits on the head.
pub fn request_head(
    mut head: RequestHead,
    end_stream: bool,
    limits: &ClientLimits,
) -> (RequestHead, BodyLength, Result<()>) {
    let mut checked = h1::request_target_form(&mut head);
    if let Some(target) = head.uri.path_and_query().cloned() {
        head.uri = Uri::from(target);
    }
    join_cookies(&mut head.headers);
    let length = match h1::content_length(&head.headers) {
        Ok(Some(0)) => BodyLength::Empty,
        Ok(Some(n)) => BodyLength::Known(n),
        Ok(None) if end_stream => BodyLength::Empty,
        Ok(None) => BodyLength::Unknown,
        Err(e) => {
            checked = checked.and(Err(Error::BadRequest(e)));
            BodyLength::Unknown
        }
    };
    let checked = checked.and_then(|()| limits.check(&head));
    (head, length, checked)
}

/// One `cookie` field from the crumbs an HTTP/2 client may split it into.
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Where the answer of a stream stands.
enum Responder {
    /// No head sent yet.
    Head(SendResponse<Bytes>),
    /// The head went out, the body is being sent.
    Body(SendStream<Bytes>),
    /// The stream ended (END_STREAM or a reset).
    Ended,
}

/// The answer side of a stream, shared between the sink and the task that
/// watches for the client's reset while the driver runs.
#[derive(Clone)]
pub struct StreamWatch(Rc<RefCell<Responder>>);

impl StreamWatch {
    /// Resolves when the client resets the stream (or the connection goes
    /// away) before its answer ended; never after.
    pub async fn reset(&self) -> Reason {
        poll_fn(|cx| self.poll_reset(cx)).await
    }

    fn poll_reset(&self, cx: &mut Context<'_>) -> Poll<Reason> {
        let polled = match &mut *self.0.borrow_mut() {
            Responder::Head(r) => r.poll_reset(cx),
            Responder::Body(s) => s.poll_reset(cx),
            Responder::Ended => return Poll::Pending,
        };
        polled.map(|r| r.unwrap_or(Reason::CANCEL))
    }
}

/// One request's view of an HTTP/2 stream.
pub struct H2Client {
    answer: StreamWatch,
    body: RecvStream,
    body_length: BodyLength,
    body_read: u64,
    max_body_bytes: u64,
    send_timeout: Duration,
    body_timeout: Duration,
    head_only: bool,
    /// Body bytes the head promised (`Content-Length`), and those sent.
    promised: Option<u64>,
    sent: u64,
    /// Body pieces too small for a DATA frame of their own, held until
    /// more comes or the body ends.
    pending: BytesMut,
    /// What the connection holds queued in h2.
    queue: Arc<SendQueue>,
    /// Bytes admitted on `queue` for this stream and not handed to h2 yet.
    admitted: usize,
}

/// Body pieces shorter than this are joined with what follows before they
/// go out as a DATA frame. A client may take a stream of tiny DATA frames
/// for abuse (the h2 crate's client does below 256 bytes); multipart
/// boundaries, the edges of ranges and tiny slices would make them.
const MIN_DATA_FRAME: usize = 1024;

/// A small piece held is copied in front of a following piece up to this
/// size; before a larger one it goes out alone.
const JOIN_AT_MOST: usize = 64 * 1024;

impl H2Client {
    /// The client side of a stream whose request body is `body` of
    /// `body_length`; `head_only` for a HEAD (the head ends the stream).
    /// What it hands h2 is counted on its connection's `queue`.
    pub fn new(
        respond: SendResponse<Bytes>,
        body: RecvStream,
        body_length: BodyLength,
        head_only: bool,
        limits: &ClientLimits,
        queue: Arc<SendQueue>,
    ) -> H2Client {
        H2Client {
            queue,
            admitted: 0,
            answer: StreamWatch(Rc::new(RefCell::new(Responder::Head(respond)))),
            body,
            body_length,
            body_read: 0,
            max_body_bytes: limits.max_body_bytes,
            send_timeout: limits.send_timeout,
            body_timeout: limits.body_timeout,
            head_only,
            promised: None,
            sent: 0,
            pending: BytesMut::new(),
        }
    }

    /// A handle that watches for the client's reset of this stream.
    pub fn watch(&self) -> StreamWatch {
        self.answer.clone()
    }

    /// After the driver: end a complete answer cleanly (the driver succeeded,
    /// or the body has the length its head promised, as an error answer's
    /// has), reset one that is not, so a client never takes a short body for
    /// a whole one.
    pub fn finish(&mut self, succeeded: bool) {
        let held = std::mem::take(&mut self.pending).freeze();
        let complete = succeeded || self.promised == Some(self.sent + held.len() as u64);
        match std::mem::replace(&mut *self.answer.0.borrow_mut(), Responder::Ended) {
            Responder::Body(mut s) if complete => {
                if s.send_data(held, true).is_err() {
                    s.send_reset(Reason::INTERNAL_ERROR);
                }
            }
            Responder::Body(mut s) => s.send_reset(Reason::INTERNAL_ERROR),
            Responder::Head(mut r) => r.send_reset(Reason::INTERNAL_ERROR),
            Responder::Ended => {}
        }
    }

    /// Send `data` as the stream's window allows, in as many DATA frames.
    async fn send_now(&mut self, mut data: Bytes) -> Result<()> {
        while !data.is_empty() {
            let granted = self.capacity(data.len()).await?;
            let piece = data.split_to(granted.min(data.len()));
            self.hand(piece).await?;
        }
        Ok(())
    }

    /// `len` more bytes admitted on the connection's queue for this stream.
    async fn admit_on_queue(&mut self, len: usize) -> Result<()> {
        let more = len.min(CONNECTION_QUEUE).saturating_sub(self.admitted);
        if more == 0 {
            return Ok(());
        }
        match monoio::time::timeout(self.send_timeout, self.queue.admit(more)).await {
            Ok(()) => {
                self.admitted += more;
                Ok(())
            }
            Err(_) => Err(Error::ClientSendTimeout(
                self.send_timeout.as_millis() as u64
            )),
        }
    }

    /// One DATA frame's worth of bytes to h2, admitted on the queue first
    /// and counted there until h2 lets go of them.
    async fn hand(&mut self, piece: Bytes) -> Result<()> {
        self.admit_on_queue(piece.len()).await?;
        self.admitted = self.admitted.saturating_sub(piece.len());
        self.sent += piece.len() as u64;
        let mut answer = self.answer.0.borrow_mut();
        let Responder::Body(s) = &mut *answer else {
            return Err(gone("the stream has ended"));
        };
        s.send_data(self.queue.hand(piece), false)
            .map_err(client_error)
    }

    /// Wait for flow-control capacity on `stream`: the bytes the client's
    /// stream and connection windows allow now (never 0), or an error when
    /// the stream is gone or the client grants nothing for the send timeout.
    async fn capacity(&self, want: usize) -> Result<usize> {
        let granted = poll_fn(|cx| {
            let mut answer = self.answer.0.borrow_mut();
            let Responder::Body(s) = &mut *answer else {
                return Poll::Ready(Err(gone("the stream has ended")));
            };
            s.reserve_capacity(want);
            loop {
                let now = s.capacity();
                if now > 0 {
                    return Poll::Ready(Ok(now));
                }
                match s.poll_capacity(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(client_error(e))),
                    Poll::Ready(None) => return Poll::Ready(Err(gone("the stream was reset"))),
                }
            }
        });
        match monoio::time::timeout(self.send_timeout, granted).await {
            Ok(granted) => granted,
            Err(_) => Err(Error::ClientSendTimeout(
                self.send_timeout.as_millis() as u64
            )),
        }
    }
}

impl ResponseSink for H2Client {
    async fn send_head(
        &mut self,
        status: StatusCode,
        mut headers: HeaderMap,
        length: BodyLength,
    ) -> Result<()> {
        h1::strip_hop_by_hop(&mut headers);
        if length == BodyLength::Unknown {
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        let end = self.head_only || length == BodyLength::Empty;
        if let BodyLength::Known(n) = length {
            self.promised = Some(n);
        }
        let mut answer = self.answer.0.borrow_mut();
        let Responder::Head(respond) = &mut *answer else {
            return Err(Error::ClientIo(io::Error::other("a second response head")));
        };
        let stream = respond.send_response(response, end).map_err(client_error)?;
        *answer = if end {
            Responder::Ended
        } else {
            Responder::Body(stream)
        };
        Ok(())
    }

    async fn admit(&mut self, len: u64) -> Result<()> {
        if self.head_only {
            return Ok(());
        }
        self.admit_on_queue(len.min(CONNECTION_QUEUE as u64) as usize)
            .await
    }

    /// A cached part, read from its slot only as h2 takes it: each DATA
    /// frame's worth is admitted on the queue and read then (no mapping, no
    /// copy of the part held while the client's window is shut).
    async fn send_file(&mut self, part: impl FilePart) -> Result<()> {
        if self.head_only {
            return Ok(());
        }
        if part.len() < MIN_DATA_FRAME as u64 {
            let bytes = part_bytes(&part).await?;
            drop(part);
            return self.send_body(bytes).await;
        }
        if !self.pending.is_empty() {
            let held = std::mem::take(&mut self.pending).freeze();
            self.send_now(held).await?;
        }
        let mut done = 0;
        while done < part.len() {
            let left = (part.len() - done) as usize;
            let granted = self.capacity(left).await?.min(left);
            self.admit_on_queue(granted).await?;
            let bytes = part_range(&part, done, granted as u64).await?;
            self.hand(bytes).await?;
            done += granted as u64;
        }
        Ok(())
    }

    async fn send_body(&mut self, data: Bytes) -> Result<()> {
        if self.head_only {
            return Ok(());
        }
        let held = (self.pending.len() + data.len()) as u64;
        // The last piece of a body of known length goes out at once: no
        // end_body follows to send it.
        let last = self.promised.is_some_and(|p| self.sent + held >= p);
        if held < MIN_DATA_FRAME as u64 && !last {
            self.pending.extend_from_slice(&data);
            return Ok(());
        }
        let data = if self.pending.is_empty() {
            data
        } else if data.len() <= JOIN_AT_MOST {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(&data);
            joined.freeze()
        } else {
            let held = std::mem::take(&mut self.pending).freeze();
            self.send_now(held).await?;
            data
        };
        self.send_now(data).await
    }

    async fn end_body(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let held = std::mem::take(&mut self.pending).freeze();
            self.send_now(held).await?;
        }
        let mut answer = self.answer.0.borrow_mut();
        if let Responder::Body(s) = &mut *answer {
            s.send_data(Bytes::new(), true).map_err(client_error)?;
            *answer = Responder::Ended;
        }
        Ok(())
    }

    async fn send_continue(&mut self) -> Result<()> {
        if let Responder::Head(respond) = &mut *self.answer.0.borrow_mut() {
            let mut head = http::Response::new(());
            *head.status_mut() = StatusCode::CONTINUE;
            respond.send_informational(head).map_err(client_error)?;
        }
        Ok(())
    }

    async fn send_interim(&mut self, status: StatusCode, headers: HeaderMap) -> Result<()> {
        if let Responder::Head(respond) = &mut *self.answer.0.borrow_mut() {
            let mut head = http::Response::new(());
            *head.status_mut() = status;
            *head.headers_mut() = headers;
            respond.send_informational(head).map_err(client_error)?;
        }
        Ok(())
    }

    /// An HTTP/2 connection outlives any one of its streams: nothing to do.
    fn close_after(&mut self) {}
}

impl Drop for H2Client {
    fn drop(&mut self) {
        self.queue.release(self.admitted);
    }
}

impl BodySource for H2Client {
    fn body_length(&self) -> BodyLength {
        self.body_length
    }

    async fn next_body_chunk(&mut self) -> Result<Option<Bytes>> {
        let next = poll_fn(|cx| self.body.poll_data(cx));
        let Ok(next) = monoio::time::timeout(self.body_timeout, next).await else {
            return Err(Error::ClientBodyTimeout(
                self.body_timeout.as_millis() as u64
            ));
        };
        let Some(piece) = next else {
            return Ok(None);
        };
        let piece = piece.map_err(client_error)?;
        // Read: the client may send as much again.
        let _ = self.body.flow_control().release_capacity(piece.len());
        self.body_read += piece.len() as u64;
        if self.body_read > self.max_body_bytes {
            return Err(Error::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        Ok(Some(piece))
    }
}

/// An h2 error as a client error: the I/O error itself, or a reset (the
/// client is gone from this stream) with h2's reason.
fn client_error(e: h2::Error) -> Error {
    if e.is_io() {
        if let Some(io) = e.into_io() {
            return Error::ClientIo(io);
        }
        return gone("the connection failed");
    }
    Error::ClientIo(io::Error::new(io::ErrorKind::ConnectionReset, e))
}

fn gone(why: &'static str) -> Error {
    Error::ClientIo(io::Error::new(io::ErrorKind::ConnectionReset, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn limits() -> ClientLimits {
        ClientLimits::from(&Config::from_toml("[origin]\naddress = \"127.0.0.1:9\"").unwrap())
    }

    fn head(uri: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut b = http::Request::builder()
            .uri(uri)
            .version(http::Version::HTTP_2);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn request_heads_from_h2() {
        // (uri, headers, end of stream) -> (Host, target, body length, status)
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            bool,
            &'a str,
            &'a str,
            BodyLength,
            u16,
        );
        let cases: &[Case] = &[
            (
                "https://a.test/x?q",
                &[],
                true,
                "a.test",
                "/x?q",
                BodyLength::Empty,
                0,
            ),
            (
                "https://a.test:8443/x",
                &[("host", "b")],
                true,
                "a.test:8443",
                "/x",
                BodyLength::Empty,
                0,
            ),
            (
                "/x",
                &[("host", "b")],
                false,
                "b",
                "/x",
                BodyLength::Unknown,
                0,
            ),
            ("/x", &[], false, "", "/x", BodyLength::Unknown, 0),
            (
                "https://a/x",
                &[("content-length", "7")],
                false,
                "a",
                "/x",
                BodyLength::Known(7),
                0,
            ),
            (
                "https://a/x",
                &[("content-length", "0")],
                false,
                "a",
                "/x",
                BodyLength::Empty,
                0,
            ),
            (
                "https://a/x",
                &[("content-length", "x")],
                false,
                "a",
                "/x",
                BodyLength::Unknown,
                400,
            ),
            (
                "https://a/x",
                &[("content-length", "9999999999999")],
                false,
                "a",
                "/x",
                BodyLength::Known(9_999_999_999_999),
                413,
            ),
        ];
        for (uri, headers, end, host, target, length, status) in cases {
            let (head, got_length, checked) = request_head(head(uri, headers), *end, &limits());
            let got_status = checked.err().map_or(0, |e| e.status().as_u16());
            assert_eq!(
                (
                    h1::request_host(&head),
                    head.uri.to_string().as_str(),
                    got_length,
                    got_status
                ),
                (*host, *target, *length, *status),
                "{uri} {headers:?}"
            );
        }
    }

    #[test]
    fn cookie_crumbs_are_joined() {
        let (head, _, _) = request_head(
            head("https://a/x", &[("cookie", "a=1"), ("cookie", "b=2")]),
            true,
            &limits(),
        );
        let all: Vec<_> = head.headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2"]);
    }
}
