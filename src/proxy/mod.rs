//! The request driver: one function, [`Proxy::handle`], that reads top to
//! bottom and runs each phase in the order a request meets it. Each phase
//! returns a decision to the driver; none calls the next.
//!
//! 1. **classify** (`classify`, below): PURGE, a method passed through with
//!    its body, a path this route does not slice, or a sliced GET/HEAD.
//! 2. **lookup** (`lookup.rs`): a usable manifest in the cache (fresh, served
//!    stale, or revalidated once per object), or a cold object whose probe
//!    this request leads, or no cache for this request.
//! 3. **probe** (`probe.rs`): ask the origin for the slice holding the first
//!    wanted byte; it tells the object's length and validators and becomes the
//!    manifest, or its answer is relayed as the origin gave it.
//! 4. **respond** (`respond.rs`): preconditions, then the range against the
//!    length: 304/412, 416, or the status and bytes to send.
//! 5. **stream** (`respond.rs`): plan the slices, send the head, then the
//!    slices in order, each from the source that has it (cache, a fetch in
//!    flight, the origin: [`crate::slice::fetch`]).
//!
//! The driver knows neither the client's protocol (it writes through the
//! [`ResponseSink`] the connection lends, in an [`Exchange`]) nor where a
//! slice comes from. Errors before the response head become a 4xx/5xx answer
//! (see [`Error::status`](crate::error::Error::status)); after it, the
//! connection is aborted.

pub(crate) mod cache_status;
pub(crate) mod context;
pub mod exchange;
pub mod fill;
pub(crate) mod lookup;
pub mod multipart;
pub mod prefetch;
pub(crate) mod probe;
pub(crate) mod respond;
pub mod revalidate;
pub mod route;
pub mod rules;
pub mod unsliced;

use std::rc::Rc;

use http::{header, HeaderMap, HeaderValue, Method};
use monoio_http::common::request::RequestHead;

use crate::cache::key::key_target;
use crate::cache::ObjectKey;
use crate::cluster::{Peers, PEER_ERROR_HEADER, PEER_HEADER};
use crate::error::{Error, Result};
use crate::http::h1;
use crate::http::range::{parse_range, RangeRequest};
use crate::http::request_cache_control::RequestCacheControl;
use crate::http::sink::{BodyLength, BodySource, ResponseSink};
use crate::proxy::cache_status::{cache_status, Fetch, Served};
use crate::proxy::context::ObjectRequest;
pub use crate::proxy::context::{Proxy, ProxySettings};
pub use crate::proxy::exchange::Exchange;
use crate::proxy::lookup::Lookup;
use crate::proxy::probe::Probe;
use crate::proxy::respond::{Respond, StoredObject};
pub use crate::proxy::rules::SliceRules;

/// What phase "classify" found the request to be.
enum Class<'a> {
    /// `PURGE /path`.
    Purge,
    /// A method other than GET/HEAD: passed through with its body.
    PassThrough,
    /// A GET/HEAD this route does not slice: the client's request as it is.
    Unsliced,
    /// A GET/HEAD to slice.
    Sliced(ObjectRequest<'a>),
}

impl Proxy {
    /// The driver: serve one request whose head has been read, through
    /// whatever connection `ex` writes to.
    pub async fn handle<S: ResponseSink + BodySource>(
        &self,
        req: &RequestHead,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        if let Some(presented) = req.headers.get(PEER_HEADER) {
            if !self.peers.as_ref().is_some_and(|p| p.accepts(presented)) {
                // Before any origin work: a wrong token costs nothing upstream.
                // Marked as this node's own refusal, not an answer it relays.
                let mut headers = HeaderMap::new();
                headers.insert(PEER_ERROR_HEADER, HeaderValue::from_static("token"));
                let status = http::StatusCode::FORBIDDEN;
                return ex.send_plain(status, headers, "forbidden\n").await;
            }
        }
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        if self.came_round(req) {
            // This node forwarded it already: an origin (or a chain of them)
            // points back here. Answered now, rather than until the fds run out.
            let status = http::StatusCode::LOOP_DETECTED;
            let text = "loop detected: this request already passed this node (Via)\n";
            return ex.send_plain(status, HeaderMap::new(), text).await;
        }
        if (req.method == Method::GET || req.method == Method::HEAD)
            && ex.sink.body_length() != BodyLength::Empty
        {
            // A body has no meaning on GET/HEAD, and an origin that reads one
            // would take the next request on its connection for it: refused
            // before anything is forwarded (the connection closes after).
            return Err(Error::BadRequest(format!(
                "a {} request with a body (Content-Length or Transfer-Encoding) is not accepted",
                req.method
            )));
        }
        let mut ask = match self.classify(req, target, ex) {
            Class::Purge => return self.purge(req, target, ex).await,
            Class::PassThrough => return self.pass_through(req, target, ex).await,
            Class::Unsliced => return self.relay_unsliced(req, target, ex).await,
            Class::Sliced(ask) => ask,
        };
        let cold = match self.lookup(&mut ask).await {
            Lookup::Stored(object) => return self.answer(&ask, object, ex).await,
            Lookup::Cold(cold) => Some(cold),
            Lookup::Uncached => None,
            Lookup::Unavailable => return ex.send_not_stored().await,
            Lookup::Relay(resp) => {
                let status = Some(resp.head.status.as_u16());
                ex.cache_status = Some(self.relay_status(Served::StaleRelayed, status));
                ex.x_cache = Served::StaleRelayed.cache_result();
                return ex.relay(*resp).await;
            }
        };
        match self.probe(&mut ask, cold, ex).await? {
            Probe::Sliced(object) => self.answer(&ask, object, ex).await,
            Probe::Relay(resp) => ex.relay(resp).await,
            Probe::Fill(resp, cold) => self.relay_and_fill(&ask.forwarded, resp, cold, ex).await,
        }
    }

    /// Phases "respond" and "stream" for an object whose version is known.
    async fn answer<S: ResponseSink>(
        &self,
        ask: &ObjectRequest<'_>,
        object: StoredObject,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        if !matches!(ask.served, Served::Bypass | Served::Miss { .. }) {
            ex.age = Some(ask.age);
        }
        match self.respond(ask, &object) {
            Respond::Send(answer) => self.stream(ask, object, answer, ex).await,
            Respond::Precondition(verdict) => {
                let headers = self.settle_probe(ask, object, ex);
                ex.x_cache = ask.served.cache_result();
                ex.cache_status = Some(self.cache_status_of(ask, (0, 0)));
                ex.answer_precondition(verdict, &headers).await
            }
            Respond::Unsatisfiable => {
                let len = object.version.len;
                self.settle_probe(ask, object, ex);
                ex.send_unsatisfiable(len).await
            }
            Respond::Empty => {
                let mut headers = object.headers;
                let status = object.status;
                // A 204 has no Content-Length (RFC 9110 8.6).
                if status == http::StatusCode::NO_CONTENT {
                    return ex.send_head(status, headers, BodyLength::Empty).await;
                }
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                ex.send_head(status, headers, BodyLength::Known(0)).await
            }
        }
    }

    /// Phase "classify": what kind of request this is; a sliced GET/HEAD
    /// becomes the context the later phases read.
    fn classify<'a, S: BodySource + ResponseSink>(
        &self,
        req: &'a RequestHead,
        target: &'a str,
        ex: &mut Exchange<'_, S>,
    ) -> Class<'a> {
        if req.method.as_str() == "PURGE" {
            return Class::Purge;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            ex.cache_status = Some(self.relay_status(Served::Method, None));
            return Class::PassThrough;
        }
        if !self.settings.rules.slices(req.uri.path()) {
            ex.cache_status = Some(self.relay_status(Served::Bypass, None));
            return Class::Unsliced;
        }
        let range = match req.headers.get(header::RANGE) {
            Some(v) => parse_range(v.as_bytes()),
            None => RangeRequest::Full,
        };
        Class::Sliced(ObjectRequest {
            req,
            target,
            forwarded: Rc::new(self.forwarded_headers(req)),
            range,
            cc: RequestCacheControl::from_headers(&req.headers),
            served: Served::Bypass,
            age: 0,
            ttl: 0,
        })
    }

    /// The cache key of the object `req` names: the Host the origin is
    /// asked with (the route's `host_header` when it has one, so a random
    /// client Host cannot make a new object of one the origin serves as
    /// the same), and the target without the query parameters the route
    /// leaves out of keys.
    pub(crate) fn object_key(&self, req: &RequestHead, target: &str) -> ObjectKey {
        let host = self.key_host(req);
        ObjectKey::new(host, &key_target(target, &self.settings.key_drop_query))
    }

    /// The host of the keys of the objects `req` may name (see
    /// [`Proxy::object_key`]).
    pub(crate) fn key_host<'r>(&'r self, req: &'r RequestHead) -> &'r str {
        match &self.settings.host_header {
            Some(host) => host.to_str().unwrap_or(""),
            None => h1::request_host(req),
        }
    }

    /// This cache's `Cache-Status` member for an origin answer relayed as it
    /// is (`fwd_status`: its status, once known).
    fn relay_status(&self, served: Served, fwd_status: Option<u16>) -> HeaderValue {
        let fetch = Fetch::default();
        cache_status(&self.settings.node_name, served, fetch, 0, fwd_status)
    }

    /// The cluster's peers, when this request may ask them: not when it
    /// came from a peer itself (its token was checked in [`Proxy::handle`]),
    /// so a slice is forwarded one hop at most.
    pub(crate) fn peers_for(&self, req: &RequestHead) -> Option<Rc<Peers>> {
        self.peers
            .clone()
            .filter(|_| !req.headers.contains_key(PEER_HEADER))
    }

    /// Whether `req` carries this node's own `Via` entry.
    fn came_round(&self, req: &RequestHead) -> bool {
        let ours = self.settings.via.as_bytes();
        req.headers.get_all(header::VIA).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|hop| hop.split(|b| b.is_ascii_whitespace()).any(|w| w == ours))
        })
    }

    /// Request headers for the origin: end-to-end ones, without Range and
    /// If-Range (each slice sets its own Range), with the Host to use and
    /// this node added to `Via` (RFC 9110 7.6.3).
    fn forwarded_headers(&self, req: &RequestHead) -> HeaderMap {
        let mut headers = req.headers.clone();
        h1::strip_hop_by_hop(&mut headers);
        headers.remove(header::RANGE);
        headers.remove(header::IF_RANGE);
        headers.remove(header::EXPECT);
        // The token is for this node only; a peer request is asked onward
        // (to the origin) without it.
        headers.remove(PEER_HEADER);
        // Always set here, after the strip: a client's `Connection: host`
        // must not leave the origin request without one.
        let host = match (&self.settings.host_header, req.headers.get(header::HOST)) {
            (Some(configured), _) => configured.clone(),
            (None, Some(host)) if !host.is_empty() => host.clone(),
            (None, _) => self.settings.default_host.clone(),
        };
        headers.insert(header::HOST, host);
        if !req.headers.contains_key(header::VIA) {
            // The usual case: this node's entry alone, made once.
            headers.insert(header::VIA, self.settings.via_entry.clone());
            return headers;
        }
        let mut via = Vec::with_capacity(64);
        for earlier in req.headers.get_all(header::VIA) {
            via.extend_from_slice(earlier.as_bytes());
            via.extend_from_slice(b", ");
        }
        via.extend_from_slice(self.settings.via_entry.as_bytes());
        if let Ok(via) = HeaderValue::from_bytes(&via) {
            headers.insert(header::VIA, via);
        }
        headers
    }
}
