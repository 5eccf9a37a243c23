//! Every metric, declared in one place, counted per worker and merged at scrape.
//!
//! Each worker owns a [`WorkerMetrics`] and is the only writer of it (relaxed
//! atomics on the worker's own cache lines, so the hot path contends on
//! nothing); code on a worker thread reaches it through [`with`]. The admin
//! listener sums all workers when `/metrics` is scraped and renders the
//! Prometheus text format. Names follow `edgeslice_<component>_<what>[_total]`;
//! labels are few and fixed.
//!
//! Here: the label values and each worker's and the node's metrics;
//! `kinds`: counters, histograms and labelled counters; `exposition`: the
//! table of every exported name, help text and type, and its rendering.

pub mod exposition;
mod kinds;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

pub use kinds::{Counter, Histogram, Label, Labelled, BUCKETS};

/// Declares label enums: each variant, in export order, with its text.
macro_rules! labels {
    ($($(#[$doc:meta])* $name:ident = $label:literal { $($variant:ident => $text:literal,)+ })+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            #[allow(missing_docs)]
            pub enum $name { $($variant),+ }

            impl Label for $name {
                const NAME: &'static str = $label;
                const VALUES: &'static [&'static str] = &[$($text),+];
                fn index(self) -> usize {
                    self as usize
                }
            }
        )+
    };
}

labels! {
    /// How a request ended, the `outcome` label.
    RequestOutcome = "outcome" {
        Sliced => "sliced", PassThrough => "pass_through", Error => "error",
        ClientAbort => "client_abort",
    }

    /// The class of a response status, the `class` label.
    StatusClass = "class" {
        Informational => "1xx", Success => "2xx", Redirection => "3xx",
        ClientError => "4xx", ServerError => "5xx",
    }

    /// The cache's answer to a cacheable request, the `result` label.
    CacheResult = "result" {
        Hit => "hit", Miss => "miss", Partial => "partial",
    }

    /// Whether a slice was found in this node's cache, the `result` label.
    SliceResult = "result" {
        Hit => "hit", Miss => "miss",
    }

    /// Where the bytes of a slice sent to a client came from, the `source`
    /// label, and the one answer to that question on the request path
    /// (re-exported as `slice::source::SliceSource`): this node's store
    /// (its slices are in memory files when `disk_bytes` is 0, else in slot
    /// files on disk), a peer node (the slice's home), or the origin (by
    /// this request or by another one it followed).
    SliceSource = "source" {
        Memory => "memory", Disk => "disk", Peer => "peer", Origin => "origin",
    }

    /// Why a subrequest failed, the `reason` label.
    FailureReason = "reason" {
        Timeout => "timeout", ServerError => "5xx", ClientError => "4xx",
        Connect => "connect", Tls => "tls", Mismatch => "mismatch",
    }

    /// How a revalidation of a stale object ended, the `result` label.
    RevalidationResult = "result" {
        NotModified => "not_modified", Changed => "changed", Failed => "failed",
        Unconfirmed => "unconfirmed",
    }
}

impl StatusClass {
    /// The class of `status`; out-of-range codes count in the nearest class.
    pub fn of(status: u16) -> StatusClass {
        match status {
            ..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Requests by outcome.
    pub requests: Labelled<RequestOutcome, 4>,
    /// Responses by status class.
    pub responses: Labelled<StatusClass, 5>,
    /// Requests being answered now.
    pub in_flight: Counter,
    /// Open client connections.
    pub connections: Counter,
    /// TLS handshakes with clients that completed.
    pub tls_handshakes: Counter,
    /// TLS handshakes with clients that failed or timed out.
    pub tls_handshake_failures: Counter,
    /// Whole-request latency.
    pub request_duration: Histogram,
    /// Time until the response head went out.
    pub first_byte: Histogram,
    /// Body bytes sent to clients.
    pub sent_bytes: Counter,
    /// Cacheable requests by result.
    pub cache_requests: Labelled<CacheResult, 3>,
    /// Slices served from the cache (hit) and fetched from the origin (miss).
    pub slices: Labelled<SliceResult, 2>,
    /// Slices stored.
    pub cache_inserts: Counter,
    /// Times an insert waited for the disk flushers (backpressure).
    pub cache_insert_waits: Counter,
    /// Revalidations by result.
    pub revalidations: Labelled<RevalidationResult, 4>,
    /// PURGE requests that dropped an object.
    pub purges: Counter,
    /// Subrequests sent to the origin.
    pub origin_requests: Counter,
    /// Subrequests waiting for their response head now.
    pub origin_in_flight: Counter,
    /// Failed subrequests by reason.
    pub origin_failures: Labelled<FailureReason, 6>,
    /// Subrequests retried.
    pub origin_retries: Counter,
    /// Slice fetches that followed another request's fetch instead of asking the origin.
    pub coalesced_waits: Counter,
    /// Slices an answer's head counted as cached that were gone when read.
    pub slices_vanished: Counter,
    /// Requests that reused a manifest their worker had decoded already.
    pub manifests_reused: Counter,
    /// Slices sent to clients straight from the slot files (`sendfile`).
    pub slices_sent_from_files: Counter,
    /// Cached parts not in the page cache, read through io_uring (or the
    /// legacy driver's disk threads) while the worker served others.
    pub disk_reads: Counter,
    /// Reads around the page cache that waited for one of the worker's
    /// turns (`cache.disk_reads_per_worker`).
    pub disk_read_waits: Counter,
    /// Slot writes the kernel held past `disk::write::HELD` (throttled for
    /// the disk, or reclaiming memory); the worker's writes then went off
    /// its loop for a while.
    pub slow_writes: Counter,
    /// Slot writes the kernel answered `EAGAIN` to (`RWF_NOWAIT`: it would
    /// have made the worker wait), finished off its loop.
    pub deferred_writes: Counter,
    /// Cached slices that could not be read as stored, dropped from the cache.
    pub slot_faults: Counter,
    /// Slices recovered at start whose bytes matched their checksum on
    /// their first read.
    pub slices_checked: Counter,
    /// Slice parts still queued for a client when the slice was stored,
    /// sent from its slot instead of memory.
    pub slice_parts_from_slot: Counter,
    /// Slices fetched whole that could not be stored (no free slot, or a
    /// write to the slot file failed); they were still served.
    pub slices_not_stored: Counter,
    /// Requests for the rest of a slice an origin answered only part of.
    pub origin_part_answers: Counter,
    /// Time from sending a subrequest to its response head.
    pub origin_duration: Histogram,
    /// Body bytes received from the origin.
    pub origin_bytes: Counter,
    /// Slices fetched ahead for sequential readers.
    pub prefetched: Counter,
    /// Prefetched slices a later request read (waste = prefetched - used).
    pub prefetch_used: Counter,
    /// HTTP/2 client connections accepted.
    pub h2_connections: Counter,
    /// HTTP/2 streams answered (each one request).
    pub h2_streams: Counter,
    /// HTTP/2 streams the client reset before their answer ended.
    pub h2_client_resets: Counter,
    /// HTTP/2 connections closed with GOAWAY `ENHANCE_YOUR_CALM` (floods, rapid reset).
    pub h2_calm_closes: Counter,
    /// Slices sent to clients, by where they came from.
    pub slice_sources: Labelled<SliceSource, 4>,
    /// Time from a request to a peer to its answer's head.
    pub peer_duration: Histogram,
    /// Body bytes received from peers.
    pub peer_bytes: Counter,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<WorkerMetrics>>> = const { RefCell::new(None) };
}

/// Make `metrics` the current thread's (called once by each worker).
pub fn install(metrics: Arc<WorkerMetrics>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(metrics));
}

/// Run `f` on this thread's metrics; nothing happens off the workers.
pub fn with(f: impl FnOnce(&WorkerMetrics)) {
    CURRENT.with(|c| {
        if let Some(m) = c.borrow().as_ref() {
            f(m);
        }
    });
}

/// Values that are not per worker, read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct NodeGauges {
    /// Bytes held by the cache's memory tier.
    pub cache_memory_bytes: u64,
    /// Bytes the cache's disk tier occupies on disk.
    pub cache_disk_bytes: u64,
    /// Bytes written to and read from the disk tier.
    pub cache_disk_written: u64,
    /// Bytes read from the disk tier.
    pub cache_disk_read: u64,
    /// Seconds the store took to open and recover.
    pub cache_recovery_seconds: f64,
    /// Each origin (by address) and whether its circuit breaker is open.
    pub breakers: Vec<(String, bool)>,
    /// Resident memory of the process.
    pub resident_bytes: u64,
    /// CPU seconds used by the process.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The cluster's nodes, this one included; empty when running alone.
    pub peers: Vec<PeerGauge>,
}

/// One node of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGauge {
    /// The node as `cluster.peers` names it.
    pub addr: String,
    /// Whether it is this node.
    pub is_self: bool,
    /// Requests sent to it (slices, probes, PURGEs).
    pub requests: u64,
    /// Of those, the ones that failed (and marked it down).
    pub failures: u64,
    /// How long it is still skipped; `None` when it is up.
    pub down_for: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_clamp_out_of_range_codes() {
        let cases = [
            (0, "1xx"),
            (199, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (499, "4xx"),
        ];
        for (status, class) in cases.into_iter().chain([(500, "5xx"), (999, "5xx")]) {
            let got = StatusClass::VALUES[StatusClass::of(status).index()];
            assert_eq!(got, class, "status {status}: got {got}, expected {class}");
        }
    }
}
