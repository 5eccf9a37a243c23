//! The end of a request: its access log line and its request metrics.
//!
//! One line per request, written when it ends: method, path, range, status,
//! body bytes, cache result, slices from the cache and from the origin,
//! origin attempts, duration and, for failures, what went wrong. Text
//! (`key=value`) or JSON, or off (`[log] access_log`).

use std::io::Write;
use std::time::Instant;

use http::header;
use monoio_http::common::request::RequestHead;
use tracing::info;

use crate::config::LogFormat;
use crate::ops::metrics::{self, RequestOutcome, SliceResult, SliceSource, StatusClass};
use crate::proxy::exchange::Exchange;

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered in full.
    Ok,
    /// The client closed or stopped reading before the answer was complete.
    ClientAbort(String),
    /// edgeslice or the origin failed; what went wrong.
    Error(String),
}

impl Outcome {
    /// The access log's `outcome` value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientAbort(_) => "client_abort",
            Outcome::Error(_) => "error",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::Ok => "",
            Outcome::ClientAbort(why) | Outcome::Error(why) => why,
        }
    }
}

/// Record the end of a request: metrics always, the access log line if on.
pub fn finish<S>(
    head: &RequestHead,
    ex: &Exchange<'_, S>,
    started: Instant,
    outcome: &Outcome,
    log: Option<LogFormat>,
) {
    let took = started.elapsed();
    let cached = ex.slices.cached();
    let from_peer = ex.slices.get(SliceSource::Peer);
    let from_origin = ex.slices.get(SliceSource::Origin);
    let failure = outcome.detail();
    metrics::with(|m| {
        m.requests.inc(match outcome {
            Outcome::Error(_) => RequestOutcome::Error,
            Outcome::ClientAbort(_) => RequestOutcome::ClientAbort,
            Outcome::Ok if ex.slices.total() > 0 || ex.x_cache.is_some() => RequestOutcome::Sliced,
            Outcome::Ok => RequestOutcome::PassThrough,
        });
        if ex.status != 0 {
            // 0: the client went away before any answer.
            m.responses.inc(StatusClass::of(ex.status));
        }
        m.request_duration.observe(took);
        if let Some(at) = ex.head_at {
            m.first_byte.observe(at.duration_since(started));
        }
        m.sent_bytes.add(ex.body_bytes);
        m.slices.add(SliceResult::Hit, cached);
        m.slices.add(SliceResult::Miss, from_peer + from_origin);
        if let Some(result) = ex.x_cache {
            m.cache_requests.inc(result);
        }
    });
    let Some(format) = log else {
        return;
    };
    let range = head
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let cache = ex.x_cache.map_or("-", |c| c.as_str());
    let attempts = ex.origin_attempts.get();
    let ms = took.as_secs_f64() * 1e3;
    let proto = match head.version {
        http::Version::HTTP_2 => "h2",
        http::Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    };
    match format {
        LogFormat::Text => info!(
            target: "edgeslice::access",
            method = %head.method,
            path = %head.uri,
            proto,
            range,
            status = ex.status,
            bytes = ex.body_bytes,
            cache,
            slices_cached = cached,
            slices_peer = from_peer,
            slices_origin = from_origin,
            origin_attempts = attempts,
            ms = format!("{ms:.1}"),
            outcome = outcome.as_str(),
            error = failure,
            "request"
        ),
        LogFormat::Json => {
            let line = serde_json::json!({
                "method": head.method.as_str(),
                "path": head.uri.to_string(),
                "proto": proto,
                "range": range,
                "status": ex.status,
                "bytes": ex.body_bytes,
                "cache": cache,
                "slices_cached": cached,
                "slices_peer": from_peer,
                "slices_origin": from_origin,
                "origin_attempts": attempts,
                "ms": (ms * 10.0).round() / 10.0,
                "outcome": outcome.as_str(),
                "error": failure,
            });
            // A bare line, so log shippers can parse each line as JSON.
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}
