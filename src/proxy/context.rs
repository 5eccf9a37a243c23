//! What every phase of the driver shares: the worker's [`Proxy`] (settings,
//! origin pool, cache) and one request's context, [`ObjectRequest`].

use crate::http::request_cache_control::RequestCacheControl;
use std::rc::Rc;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use monoio_http::common::request::RequestHead;

use crate::cache::manifest::StaleWindows;
use crate::cache::SliceCache;
use crate::cluster::Peers;
use crate::config::SliceSize;
use crate::http::range::RangeRequest;
use crate::origin::pool::OriginPool;
use crate::proxy::cache_status::Served;
use crate::proxy::rules::SliceRules;
use crate::slice::stream;

/// Settings of the pipeline, converted once from the configuration.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Bytes per slice, or `"auto"`.
    pub slice_size: SliceSize,
    /// Slices of one request in flight at once.
    pub window: usize,
    /// Host header sent to the origin instead of the client's, if set.
    pub host_header: Option<HeaderValue>,
    /// Host header sent when the client gave none.
    pub default_host: HeaderValue,
    /// Client networks allowed to PURGE.
    pub purge_allow: Vec<ipnet::IpNet>,
    /// Bearer token that allows PURGE.
    pub purge_token: Option<crate::config::Secret>,
    /// Retries allowed per slice (and for the probe).
    pub max_retries: u32,
    /// Deadline of one attempt at a whole slice.
    pub slice_timeout: std::time::Duration,
    /// What is sliced and what passes through.
    pub rules: SliceRules,
    /// Slices after the first carry `If-Match` (or `If-Unmodified-Since`).
    pub origin_if_match: bool,
    /// Slices fetched ahead for sequential readers (0 = off).
    pub prefetch_slices: u64,
    /// Most parts of a multipart answer.
    pub max_ranges: usize,
    /// Cut whole answers into slices for the cache.
    pub cut_whole_answers: bool,
    /// Longest object length an origin or a peer may announce.
    pub max_object_bytes: u64,
    /// RFC 5861 windows when the origin gives none.
    pub stale_defaults: StaleWindows,
    /// Answers with `Set-Cookie` are stored (replayed to every client).
    pub store_set_cookie: bool,
    /// A request's `no-cache`, `max-age` or `min-fresh` revalidates a fresh object.
    pub client_revalidate: bool,
    /// Query parameters left out of the cache key (`"*"`: all).
    pub key_drop_query: Vec<String>,
    /// Longest whole answer cut into slices for the cache (see `fill`).
    pub fill_limit: u64,
    /// This cache's name in `Cache-Status`.
    pub node_name: Arc<str>,
    /// This process's `received-by` in `Via` (`server.node_name` and an id
    /// of its own): a request that comes back with it has gone round a loop.
    pub via: HeaderValue,
    /// This node's entry in a forwarded request's `Via`: `1.1 ` and [`ProxySettings::via`].
    pub via_entry: HeaderValue,
}

/// One worker's proxy: its settings, its own origin pool, the node's cache.
pub struct Proxy {
    /// Pipeline settings.
    pub settings: ProxySettings,
    /// This worker's connections to the origin.
    pub pool: Rc<OriginPool>,
    /// This worker's view of the cluster; `None` runs alone.
    pub peers: Option<Rc<Peers>>,
    /// The node's slice cache, shared by all workers; `None` when disabled.
    pub cache: Option<Arc<SliceCache>>,
    /// This worker's budget of slice bytes in flight, shared by its routes.
    pub budget: Rc<stream::SliceBudget>,
    /// Where this worker's sequential readers are, for prefetch.
    pub prefetch: crate::proxy::prefetch::Prefetch,
}

/// The request context every phase reads: what the client asked of one
/// object, and how the object's stored state was had.
pub(crate) struct ObjectRequest<'a> {
    pub(crate) req: &'a RequestHead,
    /// Path and query, forwarded unchanged.
    pub(crate) target: &'a str,
    /// Request headers for the origin (see [`Proxy::forwarded_headers`]).
    /// Shared with the answer's slice tasks (no copy per request).
    pub(crate) forwarded: Rc<HeaderMap>,
    pub(crate) range: RangeRequest,
    /// The client's `Cache-Control` (RFC 9111 5.2.1).
    pub(crate) cc: RequestCacheControl,
    pub(crate) served: Served,
    /// Age and freshness left of the stored object, when served from the cache.
    pub(crate) age: u64,
    pub(crate) ttl: i64,
}
