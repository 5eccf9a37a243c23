//! HTTP/1.1 connections: the keep-alive loop of one client connection
//! (plain or TLS) and the [`sink::H1Client`] it lends each request.
//!
//! Read a request head (bounded in size and time), hand it to the route's
//! [`Proxy`](crate::proxy::Proxy), loop while keep-alive allows. A bad
//! request gets a 4xx and the connection closes; the worker goes on. A
//! failure after the response head closes the connection, so a client never
//! takes a short body for a complete one. One summary line is logged per
//! request.

pub mod sink;

use std::rc::Rc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use monoio::io::stream::Stream;
use monoio::io::{AsyncWriteRent, Splitable};
use monoio_codec::FramedRead;
use monoio_http::h1::codec::decoder::{DecodeError, RequestHeadDecoder};
use tracing::{debug, info};

use crate::error::Error;
use crate::http::h1::{self, BodyFraming, HeadError, LimitedHead, READ_BUFFER};
use crate::http::sink::ResponseSink;
use crate::proxy::Exchange;
use crate::server::h1::sink::{ClientReader, H1Client};
use crate::server::limits::ClientLimits;
use crate::server::reload::WorkerRoutes;
use crate::server::stream::{ClientStream, ClientWriteHalf};
use crate::server::{access, request};

use crate::server::worker::WorkerState;

/// Serve the HTTP/1.1 requests of one client connection.
pub async fn serve_connection(
    stream: ClientStream,
    peer: std::net::SocketAddr,
    client_id: u64,
    routes: Rc<WorkerRoutes>,
    state: Rc<WorkerState>,
) {
    let (_, limits) = routes.current();
    let (r, mut writer) = stream.into_split();
    let decoder = LimitedHead::new(RequestHeadDecoder, limits.max_head_bytes);
    let mut reader = FramedRead::with_capacity(r, decoder, READ_BUFFER);
    loop {
        let head = match monoio::time::timeout(limits.header_timeout, reader.next()).await {
            Err(_) | Ok(None) => return,
            Ok(Some(Ok(mut head))) => match h1::request_target_form(&mut head) {
                Ok(()) => head,
                Err(err) => {
                    let version = head.version;
                    return refuse(&mut reader, &mut writer, peer, version, &limits, err).await;
                }
            },
            Ok(Some(Err(e))) => {
                let err = match e {
                    HeadError::TooLarge(limit) => Error::HeadTooLarge { limit },
                    HeadError::Decode(DecodeError::Io(e)) => {
                        return debug!(error = %e, "client read")
                    }
                    HeadError::Decode(DecodeError::Parse(httparse::Error::TooManyHeaders)) => {
                        Error::TooManyHeaders {
                            limit: limits.max_headers,
                        }
                    }
                    HeadError::Decode(e) => Error::BadRequest(e.to_string()),
                };
                let version = http::Version::HTTP_11;
                return refuse(&mut reader, &mut writer, peer, version, &limits, err).await;
            }
        };
        if state.draining() {
            // Shutting down: this request was not started, the client may retry it elsewhere.
            return;
        }
        let _busy = state.start_request();
        let started = Instant::now();
        let (router, limits) = routes.current();
        // A body's framing is this protocol's business: checked here, before
        // the driver sees the request (400 or 501 when it is wrong).
        let framing = limits
            .check(&head)
            .and_then(|()| h1::request_framing(&head.headers));
        let mut client = H1Client::new(
            &mut reader,
            &mut writer,
            head.version,
            *framing.as_ref().unwrap_or(&BodyFraming::Empty),
            &limits,
        );
        if !h1::wants_keep_alive(head.version, &head.headers) {
            client.close_after();
        }
        let head_only = head.method == http::Method::HEAD;
        let mut ex = Exchange::new(&mut client, peer, head_only).from_connection(client_id);
        let outcome = request::serve(&router, &head, &mut ex, framing.map(|_| ())).await;
        access::finish(&head, &ex, started, &outcome, limits.access_log);
        if outcome != access::Outcome::Ok {
            return;
        }
        if !client.keep_alive() || state.draining() {
            return close_tls(&mut writer, limits.send_timeout).await;
        }
    }
}

/// End a TLS session whose last answer is complete with close_notify, so a
/// body framed by the close is known to be whole; an aborted answer is
/// dropped without it, which a TLS client reads as truncation.
async fn close_tls(writer: &mut ClientWriteHalf, timeout: Duration) {
    // SAFETY: the write half is used only here, after the last answer.
    if unsafe { &*writer.0.get() }.plain().is_none() {
        let _ = monoio::time::timeout(timeout, writer.shutdown()).await;
    }
}

/// Answer a request head that cannot be served at all (malformed, too
/// large, no Host), then close the connection.
async fn refuse(
    reader: &mut ClientReader,
    writer: &mut ClientWriteHalf,
    peer: std::net::SocketAddr,
    version: http::Version,
    limits: &ClientLimits,
    err: Error,
) {
    let mut client = H1Client::new(reader, writer, version, BodyFraming::Empty, limits);
    client.close_after();
    let mut ex = Exchange::new(&mut client, peer, false);
    let _ = ex
        .send_plain(err.status(), HeaderMap::new(), &format!("{err}\n"))
        .await;
    info!(status = err.status().as_u16(), error = %err, "bad request");
}
