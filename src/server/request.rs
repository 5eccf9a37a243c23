//! One request through the driver, whatever the connection it came on: the
//! route is picked, the driver answers, and a failure becomes an error answer
//! (before the head) or an abort (after it).
//!
//! HTTP/1.1 connections (`connection`) and HTTP/2 streams (`h2`) both call
//! [`serve`] with a head they have checked and the sink they lend the
//! request; what comes back says how the request ended, for the access log
//! and for what the connection does next (close it, or reset the stream).

use http::{HeaderMap, StatusCode};
use monoio_http::common::request::RequestHead;

use crate::error::Error;
use crate::http::h1;
use crate::http::sink::{BodySource, ResponseSink};
use crate::proxy::route::Router;
use crate::proxy::Exchange;
use crate::server::access::Outcome;

/// Answer `head` through `ex` with the route `router` picks; `checked` is the
/// connection's verdict on the head (its limits, its body framing). An error
/// before the response head is answered with its status, and the sink is told
/// to close after it; an error after the head is left to the connection to
/// abort (close, or reset the stream) and only reported.
pub async fn serve<S: ResponseSink + BodySource>(
    router: &Router,
    head: &RequestHead,
    ex: &mut Exchange<'_, S>,
    checked: Result<(), Error>,
) -> Outcome {
    let host = h1::request_host(head);
    let result = match checked {
        Ok(()) if !router.serves(host) => {
            // Not a host of this node's: never relayed to an origin.
            ex.send_plain(
                StatusCode::MISDIRECTED_REQUEST,
                HeaderMap::new(),
                "this node does not serve this host\n",
            )
            .await
        }
        Ok(()) => match router.pick(host, head.uri.path()) {
            Some(proxy) => proxy.handle(head, ex).await,
            None => {
                ex.send_plain(
                    StatusCode::NOT_FOUND,
                    HeaderMap::new(),
                    "no route for this host and path\n",
                )
                .await
            }
        },
        Err(e) => Err(e),
    };
    let e = match result {
        Ok(()) => return Outcome::Ok,
        Err(e) => e,
    };
    if ex.head_sent {
        return if e.is_client_gone() {
            Outcome::ClientAbort(e.to_string())
        } else {
            Outcome::Error(format!("aborted: {e}"))
        };
    }
    let status = e.status();
    // After a failed request the connection state is unknown: close it.
    ex.sink.close_after();
    if ex
        .send_plain(
            status,
            error_headers(&e),
            &format!("{}\n", short_reason(status, &e)),
        )
        .await
        .is_err()
    {
        ex.status = status.as_u16();
    }
    if e.is_client_gone() {
        Outcome::ClientAbort(e.to_string())
    } else {
        Outcome::Error(format!("error: {e}"))
    }
}

/// Headers of an error answer: when to come back, for a fail-fast 503.
fn error_headers(e: &Error) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Error::OriginUnavailable { retry_after, .. } = e {
        headers.insert(http::header::RETRY_AFTER, (*retry_after).into());
    }
    headers
}

/// The body of an error answer: the client's own mistakes are explained,
/// origin failures are named by kind only.
fn short_reason(status: StatusCode, e: &Error) -> String {
    if status.is_client_error() {
        e.to_string()
    } else {
        match status {
            StatusCode::GATEWAY_TIMEOUT => "origin timed out".to_string(),
            StatusCode::SERVICE_UNAVAILABLE => {
                "origin unreachable: failing fast until it answers again".to_string()
            }
            _ => "bad gateway: the origin failed or its answer did not check out".to_string(),
        }
    }
}
