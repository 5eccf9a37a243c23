//! Requests answered without slicing: methods other than GET and HEAD,
//! passed through to the origin with their bodies, GET/HEAD on paths a route
//! does not slice, and `PURGE`.
//!
//! All three are phases of [`Proxy`] that [`Proxy::handle`] hands a request
//! to before any cache lookup; each ends with the answer sent.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use monoio_http::common::request::RequestHead;

use crate::cluster::{self, PEER_HEADER};
use crate::error::Result;
use crate::http::headers::{expects_continue, req_headers_unsliced};
use crate::http::sink::{BodyLength, BodySource, ResponseSink};
use crate::ops::metrics;
use crate::proxy::context::Proxy;
use crate::proxy::exchange::Exchange;

impl Proxy {
    /// Methods other than GET/HEAD: forward with the body, relay the answer.
    pub(crate) async fn pass_through<S: ResponseSink + BodySource>(
        &self,
        req: &RequestHead,
        target: &str,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        let mut headers = self.forwarded_headers(req);
        ex.origin_attempts.count_one();
        let resp = match ex.sink.body_length() {
            BodyLength::Empty => self.pool.request(&req.method, target, &headers).await?,
            length => {
                match length {
                    BodyLength::Known(n) => {
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
                    ex.sink.send_continue().await?;
                }
                self.pool
                    .request_with_body(&req.method, target, &headers, ex.sink)
                    .await?
            }
        };
        self.invalidate_after(req, target, resp.head.status);
        ex.relay(resp).await
    }

    /// RFC 9111 4.4: a non-error answer (2xx, 3xx) to an unsafe method (any
    /// but GET, HEAD, OPTIONS and TRACE, unknown ones included) invalidates
    /// what this node stored for the target URI: its manifest goes, so the
    /// next GET asks the origin again. Other nodes of a `[cluster]` are not
    /// told (their copies live out their freshness; a PURGE reaches them).
    fn invalidate_after(&self, req: &RequestHead, target: &str, status: http::StatusCode) {
        use http::Method;
        let safe = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE];
        if safe.contains(&req.method) || !(status.is_success() || status.is_redirection()) {
            return;
        }
        if let Some(cache) = &self.cache {
            cache.forget(&self.object_key(req, target));
        }
    }

    /// A GET/HEAD this route does not slice: the client's request as it is.
    pub(crate) async fn relay_unsliced<S: ResponseSink>(
        &self,
        req: &RequestHead,
        target: &str,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        let headers = req_headers_unsliced(req, &self.forwarded_headers(req));
        ex.origin_attempts.count_one();
        let resp = self.pool.request(&req.method, target, &headers).await?;
        ex.relay(resp).await
    }

    /// `PURGE /path`: drop every slice of the object by removing its
    /// manifest (persisted, so it holds across restarts).
    pub(crate) async fn purge<S: ResponseSink>(
        &self,
        req: &RequestHead,
        target: &str,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        // An IPv4 client of a `[::]` listener is `::ffff:a.b.c.d`: matched
        // as the IPv4 address it is.
        let client = ex.peer.ip().to_canonical();
        let by_address = self
            .settings
            .purge_allow
            .iter()
            .any(|net| net.contains(&client));
        let by_token = match (
            &self.settings.purge_token,
            req.headers.get(header::AUTHORIZATION),
        ) {
            (Some(token), Some(given)) => given
                .as_bytes()
                .strip_prefix(b"Bearer ")
                .is_some_and(|given| crate::cluster::same_secret(given, token.expose())),
            _ => false,
        };
        // A peer's PURGE: its token was checked in `handle`.
        let by_peer = req.headers.contains_key(PEER_HEADER);
        let none = HeaderMap::new();
        if !by_address && !by_token && !by_peer {
            return ex
                .send_plain(
                    StatusCode::FORBIDDEN,
                    none,
                    "PURGE is not allowed from here\n",
                )
                .await;
        }
        let Some(cache) = &self.cache else {
            return ex
                .send_plain(StatusCode::NOT_FOUND, none, "the cache is disabled\n")
                .await;
        };
        let here = cache.purge(&self.object_key(req, target)).await;
        if here {
            metrics::with(|m| m.purges.inc());
        }
        // Every other node of the POP drops it too (not for a peer's PURGE:
        // one hop).
        let fanned = self.peers_for(req).is_some();
        let (elsewhere, failed) = match self.peers_for(req) {
            Some(peers) => {
                let host = req
                    .headers
                    .get(header::HOST)
                    .cloned()
                    .unwrap_or_else(|| self.settings.default_host.clone());
                cluster::purge_peers(&peers, target, &host).await
            }
            None => (0, 0),
        };
        let mut headers = HeaderMap::new();
        if failed > 0 {
            // Said plainly: some node may still hold the object.
            headers.insert("x-edgeslice-purge-failed", HeaderValue::from(failed as u64));
        }
        if here || elsewhere > 0 {
            let body = if fanned {
                format!("purged on {} node(s)\n", usize::from(here) + elsewhere)
            } else {
                "purged\n".to_string()
            };
            ex.send_plain(StatusCode::OK, headers, &body).await
        } else {
            ex.send_plain(StatusCode::NOT_FOUND, headers, "not cached\n")
                .await
        }
    }
}
