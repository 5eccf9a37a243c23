//! Requests answered without slicing: methods other than GET and HEAD,
//! passed through to the origin with their bodies (a POST's answer that
//! names its own target is stored for GETs), GET/HEAD on paths a route
//! does not slice, and `PURGE`.
//!
//! All three are phases of [`Proxy`] that [`Proxy::handle`] hands a request
//! to before any cache lookup; each ends with the answer sent.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use monoio_http::common::request::RequestHead;

use crate::cache::freshness::explicit_freshness;
use crate::cache::key::key_target;
use crate::cache::ObjectKey;
use crate::cluster::{self, PEER_HEADER};
use crate::error::Result;
use crate::http::headers::{expects_continue, req_headers_unsliced};
use crate::http::request_cache_control::RequestCacheControl;
use crate::http::sink::{BodyLength, BodySource, ResponseSink};
use crate::ops::metrics;
use crate::origin::pool::OriginResponse;
use crate::proxy::context::Proxy;
use crate::proxy::exchange::Exchange;
use crate::proxy::lookup::Cold;

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
        self.invalidate_after(req, target, &resp);
        if let Some(cold) = self.post_answer_to_store(req, target, &headers, &resp) {
            return self.relay_and_fill(&headers, resp, Some(cold), ex).await;
        }
        ex.relay(resp).await
    }

    /// RFC 9110 9.3.3: a POST's answer "can be reused to satisfy a later
    /// GET or HEAD request" when it has explicit freshness and a
    /// `Content-Location` that is the POST's own target. Such a 200 on a
    /// path this node slices is stored as the target's object (after the
    /// invalidation above), when no other request is fetching it; whether
    /// it may be stored at all (`no-store`, credentials, ...) is decided
    /// as for any answer.
    fn post_answer_to_store(
        &self,
        req: &RequestHead,
        target: &str,
        forwarded: &HeaderMap,
        resp: &OriginResponse,
    ) -> Option<Cold> {
        let head = &resp.head;
        let stored = req.method == http::Method::POST
            && head.status == StatusCode::OK
            && self.settings.rules.slices(req.uri.path())
            && explicit_freshness(&head.headers)
            && names_target(&head.headers, target, forwarded);
        stored.then(|| self.lead_probe(self.object_key(req, target)))?
    }

    /// RFC 9111 4.4: a non-error answer (2xx, 3xx) to an unsafe method (any
    /// but GET, HEAD, OPTIONS and TRACE, unknown ones included) invalidates
    /// what this node stored for the target URI: its manifest goes, so the
    /// next GET asks the origin again; so does what it stored for the URIs
    /// the answer's `Location` and `Content-Location` name (a POST that
    /// made or changed `/items/5` says so), when they are on the target's
    /// host ("MUST NOT ... if the host part of that URI differs"). Other
    /// nodes of a `[cluster]` are not told (their copies live out their
    /// freshness; a PURGE reaches them).
    fn invalidate_after(&self, req: &RequestHead, target: &str, resp: &OriginResponse) {
        use http::Method;
        let safe = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE];
        let status = resp.head.status;
        if safe.contains(&req.method) || !(status.is_success() || status.is_redirection()) {
            return;
        }
        let Some(cache) = &self.cache else {
            return;
        };
        cache.forget(&self.object_key(req, target));
        let host = self.key_host(req);
        let named = [header::LOCATION, header::CONTENT_LOCATION]
            .into_iter()
            .flat_map(|name| resp.head.headers.get_all(name))
            .filter_map(|value| same_host_target(host, target, value));
        for named in named {
            let named = key_target(&named, &self.settings.key_drop_query);
            cache.forget(&ObjectKey::new(host, &named));
        }
    }

    /// A GET/HEAD this route does not slice: the client's request as it
    /// is (nothing is stored for it: `only-if-cached` gets its 504).
    pub(crate) async fn relay_unsliced<S: ResponseSink>(
        &self,
        req: &RequestHead,
        target: &str,
        ex: &mut Exchange<'_, S>,
    ) -> Result<()> {
        if RequestCacheControl::from_headers(&req.headers).only_if_cached {
            return ex.send_not_stored().await;
        }
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

/// Whether the answer's one `Content-Location` (RFC 9110 8.7) is `target`:
/// the same path and query, given as an absolute path or as an absolute URI
/// on the Host the origin was asked with (`forwarded`).
/// The target (path and query) of the URI reference `value` (a `Location`
/// or `Content-Location`) resolved against `target` on `host` (RFC 3986
/// 5.2), when it is on that host; `None` for another host, or a value that
/// is no URI reference.
fn same_host_target(host: &str, target: &str, value: &HeaderValue) -> Option<String> {
    let base = url::Url::parse(&format!("http://{host}{target}")).ok()?;
    let named = base.join(value.to_str().ok()?.trim()).ok()?;
    let host_of = |u: &url::Url| u.host_str().map(str::to_ascii_lowercase);
    if !matches!(named.scheme(), "http" | "https") || host_of(&named) != host_of(&base) {
        return None;
    }
    Some(match named.query() {
        Some(query) => format!("{}?{query}", named.path()),
        None => named.path().to_string(),
    })
}

fn names_target(answer: &HeaderMap, target: &str, forwarded: &HeaderMap) -> bool {
    let mut values = answer.get_all(header::CONTENT_LOCATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(uri) = value.to_str().unwrap_or("").parse::<http::Uri>() else {
        return false;
    };
    if uri.path_and_query().map(|p| p.as_str()) != Some(target) {
        return false;
    }
    match uri.authority() {
        None => value.as_bytes().starts_with(b"/"),
        Some(authority) => {
            let host = forwarded.get(header::HOST).map(|h| h.as_bytes());
            uri.scheme().is_some()
                && host.is_some_and(|h| h.eq_ignore_ascii_case(authority.as_str().as_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 5.2 against the target, the host compared without case;
    /// another host, another scheme or no URI reference names nothing.
    #[test]
    fn located_targets_resolve_against_the_target_on_its_host() {
        let on = |value: &str| {
            same_host_target(
                "Cache.Test",
                "/a/b/c?q=1",
                &HeaderValue::from_str(value).unwrap(),
            )
        };
        assert_eq!(on("d").as_deref(), Some("/a/b/d"));
        assert_eq!(on("../d?x=2").as_deref(), Some("/a/d?x=2"));
        assert_eq!(on("/e").as_deref(), Some("/e"));
        assert_eq!(on("?z").as_deref(), Some("/a/b/c?z"));
        assert_eq!(on("http://cache.test/f").as_deref(), Some("/f"));
        assert_eq!(on("https://CACHE.test/g").as_deref(), Some("/g"));
        assert_eq!(on("//cache.test/h").as_deref(), Some("/h"));
        assert_eq!(on("http://other.test/f"), None);
        assert_eq!(on("//other.test/h"), None);
        assert_eq!(on("ftp://cache.test/f"), None);
        assert_eq!(on("http://[::1"), None);
    }
}
