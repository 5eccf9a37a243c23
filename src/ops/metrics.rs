//! Every metric, declared in one place, counted per worker and merged at scrape.
//!
//! Each worker owns a [`WorkerMetrics`] and is the only writer of it (relaxed
//! atomics on the worker's own cache lines, so the hot path contends on
//! nothing); code on a worker thread reaches it through [`with`]. The admin
//! listener sums all workers when `/metrics` is scraped and renders the
//! Prometheus text format. Names follow `edgeslice_<component>_<what>[_total]`;
//! labels are few and fixed.

use std::cell::RefCell;
use std::fmt::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtract `n` (for gauges kept as counters of a level).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the [`BUCKETS`] bounds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; BUCKETS.len()],
    count: Counter,
    sum_micros: Counter,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        self.sum_micros.add(d.as_micros() as u64);
    }
}

/// A label whose values are the variants of a small enum, so a call site
/// names the value (`FailureReason::Timeout`) instead of a slot number.
pub trait Label: Copy + 'static {
    /// The label's name, as in `name="value"`.
    const NAME: &'static str;
    /// The label's values in export order; `index` is a position in it.
    const VALUES: &'static [&'static str];
    /// The slot of this value in a [`Labelled`] counter.
    fn index(self) -> usize;
}

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

    /// Where a slice came from, the `result` label.
    SliceResult = "result" {
        Hit => "hit", Miss => "miss",
    }

    /// Where a slice sent to a client came from, the `source` label: this
    /// node's store (its slices are in memory files when `disk_bytes` is 0,
    /// else in slot files on disk, sent from the page cache), a peer node,
    /// or the origin.
    SliceFrom = "source" {
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

/// One [`Counter`] per value of the label `E`; `N` is the number of values.
#[derive(Debug)]
pub struct Labelled<E, const N: usize> {
    counters: [Counter; N],
    label: PhantomData<E>,
}

impl<E: Label, const N: usize> Labelled<E, N> {
    // A wrong N fails the build where the counter is created.
    const SIZED: () = assert!(N == E::VALUES.len(), "N must be the number of label values");

    /// Add one to `value`'s count.
    pub fn inc(&self, value: E) {
        self.counters[value.index()].inc();
    }

    /// Add `n` to `value`'s count.
    pub fn add(&self, value: E, n: u64) {
        self.counters[value.index()].add(n);
    }

    /// `value`'s count.
    pub fn get(&self, value: E) -> u64 {
        self.counters[value.index()].get()
    }
}

impl<E: Label, const N: usize> Default for Labelled<E, N> {
    fn default() -> Self {
        let () = Self::SIZED;
        Labelled {
            counters: std::array::from_fn(|_| Counter::default()),
            label: PhantomData,
        }
    }
}

/// A [`Labelled`] counter as the renderer reads it, its label type erased.
trait Family {
    fn label(&self) -> &'static str;
    fn values(&self) -> &'static [&'static str];
    fn count(&self, index: usize) -> u64;
}

impl<E: Label, const N: usize> Family for Labelled<E, N> {
    fn label(&self) -> &'static str {
        E::NAME
    }
    fn values(&self) -> &'static [&'static str] {
        E::VALUES
    }
    fn count(&self, index: usize) -> u64 {
        self.counters[index].get()
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
    pub revalidations: Labelled<RevalidationResult, 3>,
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
    pub slice_sources: Labelled<SliceFrom, 4>,
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

/// Where a metric's samples come from at scrape time.
enum Source {
    /// A worker counter, summed over the workers.
    Sum(fn(&WorkerMetrics) -> &Counter),
    /// A worker counter per label value, summed over the workers.
    Labels(fn(&WorkerMetrics) -> &dyn Family),
    /// A worker counter, one sample per worker (`worker="N"`).
    PerWorker(fn(&WorkerMetrics) -> &Counter),
    /// A histogram per worker, merged.
    Buckets(fn(&WorkerMetrics) -> &Histogram),
    /// A value of the node, not of a worker.
    Node(fn(&NodeGauges) -> f64),
    /// Each origin's breaker, `origin="host:port"`, 1 when open.
    Breakers,
    /// A value of each other node of the cluster, `peer="host:port"`.
    Peers(fn(&PeerGauge) -> f64),
}

/// One exported metric: its name, help text, Prometheus type and source.
struct Metric(&'static str, &'static str, &'static str, Source);

use Source::*;

/// Every exported metric, in the order `/metrics` lists them (docs/operations.md: the table
/// documents them; tests/metrics.rs reads them).
#[rustfmt::skip]
const METRICS: &[Metric] = &[
    Metric("edgeslice_requests_total", "Client requests by outcome.",
        "counter", Labels(|w| &w.requests)),
    Metric("edgeslice_responses_total", "Responses by status class.",
        "counter", Labels(|w| &w.responses)),
    Metric("edgeslice_requests_in_flight", "Requests being answered now.",
        "gauge", Sum(|w| &w.in_flight)),
    Metric("edgeslice_client_sent_bytes_total", "Body bytes sent to clients.",
        "counter", Sum(|w| &w.sent_bytes)),
    Metric("edgeslice_cache_requests_total", "Cacheable requests by cache result.",
        "counter", Labels(|w| &w.cache_requests)),
    Metric("edgeslice_cache_slices_total", "Slices served, by where they came from.",
        "counter", Labels(|w| &w.slices)),
    Metric("edgeslice_cache_inserts_total", "Slices and manifests stored.",
        "counter", Sum(|w| &w.cache_inserts)),
    Metric("edgeslice_cache_insert_waits_total",
        "Inserts that waited for the disk flushers (backpressure, nothing dropped).",
        "counter", Sum(|w| &w.cache_insert_waits)),
    Metric("edgeslice_cache_revalidations_total", "Revalidations of stale objects by result.",
        "counter", Labels(|w| &w.revalidations)),
    Metric("edgeslice_cache_purges_total", "Objects purged.",
        "counter", Sum(|w| &w.purges)),
    Metric("edgeslice_cache_memory_bytes", "Bytes held by the memory tier.",
        "gauge", Node(|n| n.cache_memory_bytes as f64)),
    Metric("edgeslice_cache_disk_bytes", "Bytes the disk tier occupies.",
        "gauge", Node(|n| n.cache_disk_bytes as f64)),
    Metric("edgeslice_cache_disk_written_bytes_total", "Bytes written to the disk tier.",
        "counter", Node(|n| n.cache_disk_written as f64)),
    Metric("edgeslice_cache_disk_read_bytes_total", "Bytes read from the disk tier.",
        "counter", Node(|n| n.cache_disk_read as f64)),
    Metric("edgeslice_cache_recovery_seconds", "Time the store took to open and recover at start.",
        "gauge", Node(|n| n.cache_recovery_seconds)),
    Metric("edgeslice_origin_requests_total", "Subrequests sent to the origin.",
        "counter", Sum(|w| &w.origin_requests)),
    Metric("edgeslice_origin_requests_in_flight", "Subrequests waiting for their response head.",
        "gauge", Sum(|w| &w.origin_in_flight)),
    Metric("edgeslice_origin_failures_total", "Failed subrequests by reason.",
        "counter", Labels(|w| &w.origin_failures)),
    Metric("edgeslice_origin_retries_total", "Subrequests retried.",
        "counter", Sum(|w| &w.origin_retries)),
    Metric("edgeslice_origin_coalesced_waits_total",
        "Slice fetches that followed another request's fetch.",
        "counter", Sum(|w| &w.coalesced_waits)),
    Metric("edgeslice_cache_slices_vanished_total",
        "Slices counted as cached in an answer's head, gone from the store when read.",
        "counter", Sum(|w| &w.slices_vanished)),
    Metric("edgeslice_cache_manifests_reused_total",
        "Manifest reads answered by the worker's decoded copy, with no decoding.",
        "counter", Sum(|w| &w.manifests_reused)),
    Metric("edgeslice_cache_slices_sendfile_total",
        "Cached slice parts sent to clients from the page cache with sendfile.",
        "counter", Sum(|w| &w.slices_sent_from_files)),
    Metric("edgeslice_cache_disk_reads_total",
        "Cached parts not in the page cache, read off the event loop (io_uring, or the legacy driver's disk threads).",
        "counter", Sum(|w| &w.disk_reads)),
    Metric("edgeslice_cache_slot_faults_total",
        "Cached slices that could not be read as stored (I/O error, short slot file, checksum mismatch): dropped, fetched again.",
        "counter", Sum(|w| &w.slot_faults)),
    Metric("edgeslice_cache_slices_checked_total",
        "Slices recovered at start whose bytes matched their checksum on their first read.",
        "counter", Sum(|w| &w.slices_checked)),
    Metric("edgeslice_slice_parts_from_slot_total",
        "Slice parts still queued for a client when the slice was stored: sent from its slot, their memory given back.",
        "counter", Sum(|w| &w.slice_parts_from_slot)),
    Metric("edgeslice_cache_slices_not_stored_total",
        "Slices served but not stored: no free slot, or the slot file write failed.",
        "counter", Sum(|w| &w.slices_not_stored)),
    Metric("edgeslice_prefetch_slices_total", "Slices fetched ahead for sequential readers.",
        "counter", Sum(|w| &w.prefetched)),
    Metric("edgeslice_prefetch_used_total",
        "Prefetched slices a later request read; waste = prefetched - used.",
        "counter", Sum(|w| &w.prefetch_used)),
    Metric("edgeslice_origin_received_bytes_total", "Body bytes received from the origin.",
        "counter", Sum(|w| &w.origin_bytes)),
    Metric("edgeslice_origin_breaker_open",
        "1 while the origin's circuit breaker fails requests fast.",
        "gauge", Breakers),
    Metric("edgeslice_process_resident_memory_bytes", "Resident memory of the process.",
        "gauge", Node(|n| n.resident_bytes as f64)),
    Metric("edgeslice_process_cpu_seconds_total", "CPU seconds used by the process.",
        "counter", Node(|n| n.cpu_seconds)),
    Metric("edgeslice_process_open_fds", "Open file descriptors.",
        "gauge", Node(|n| n.open_fds as f64)),
    Metric("edgeslice_h2_connections_total", "HTTP/2 client connections accepted.",
        "counter", Sum(|w| &w.h2_connections)),
    Metric("edgeslice_h2_streams_total", "HTTP/2 streams answered, one request each.",
        "counter", Sum(|w| &w.h2_streams)),
    Metric("edgeslice_h2_client_resets_total",
        "HTTP/2 streams the client reset before their answer ended; their fetches stopped.",
        "counter", Sum(|w| &w.h2_client_resets)),
    Metric("edgeslice_h2_calm_closes_total",
        "HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM (frame floods, rapid reset).",
        "counter", Sum(|w| &w.h2_calm_closes)),
    Metric("edgeslice_worker_connections", "Open client connections per worker.",
        "gauge", PerWorker(|w| &w.connections)),
    Metric("edgeslice_tls_handshakes_total", "TLS handshakes with clients that completed.",
        "counter", Sum(|w| &w.tls_handshakes)),
    Metric("edgeslice_tls_handshake_failures_total",
        "TLS handshakes with clients that failed (not TLS, no shared version, a bad record) or timed out.",
        "counter", Sum(|w| &w.tls_handshake_failures)),
    Metric("edgeslice_slices_total",
        "Slices sent to clients by source: this node's memory or disk, a peer node, the origin.",
        "counter", Labels(|w| &w.slice_sources)),
    Metric("edgeslice_peer_requests_total", "Requests sent to each peer node.",
        "counter", Peers(|p| p.requests as f64)),
    Metric("edgeslice_peer_failures_total",
        "Requests to each peer node that failed (refused, timed out, or refused by the peer itself); each marks it down.",
        "counter", Peers(|p| p.failures as f64)),
    Metric("edgeslice_peer_up", "1 while a peer node is asked, 0 while it is marked down.",
        "gauge", Peers(|p| p.down_for.is_none() as u8 as f64)),
    Metric("edgeslice_peer_received_bytes_total", "Body bytes received from peer nodes.",
        "counter", Sum(|w| &w.peer_bytes)),
    Metric("edgeslice_peer_request_duration_seconds",
        "Time from a request to a peer node to its answer's head.",
        "histogram", Buckets(|w| &w.peer_duration)),
    Metric("edgeslice_request_duration_seconds", "Whole-request latency.",
        "histogram", Buckets(|w| &w.request_duration)),
    Metric("edgeslice_time_to_first_byte_seconds", "Time until the response head was sent.",
        "histogram", Buckets(|w| &w.first_byte)),
    Metric("edgeslice_origin_request_duration_seconds",
        "Time from a subrequest to its response head.",
        "histogram", Buckets(|w| &w.origin_duration)),
];

/// Render every metric in the Prometheus text format.
pub fn render(workers: &[Arc<WorkerMetrics>], node: &NodeGauges) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Label names and values are read from a worker's counters; this one
    // stands in when there are no workers.
    let empty = WorkerMetrics::default();
    let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| -> u64 { workers.iter().map(|w| f(w)).sum() };
    for Metric(name, help, kind, source) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        // `suffix` is what follows the name: `_bucket`, `_sum`, labels.
        let mut sample = |suffix: &str, v: f64| {
            let _ = writeln!(out, "{name}{suffix} {v}");
        };
        match source {
            Sum(f) => sample("", sum(&|w| f(w).get()) as f64),
            Labels(f) => {
                let family = f(&empty);
                for (i, value) in family.values().iter().enumerate() {
                    let labels = format!("{{{}=\"{value}\"}}", family.label());
                    sample(&labels, sum(&|w| f(w).count(i)) as f64);
                }
            }
            PerWorker(f) => {
                for (i, w) in workers.iter().enumerate() {
                    sample(&format!("{{worker=\"{i}\"}}"), f(w).get() as f64);
                }
            }
            Node(f) => sample("", f(node)),
            Breakers => {
                for (origin, open) in &node.breakers {
                    sample(&format!("{{origin=\"{origin}\"}}"), *open as u8 as f64);
                }
            }
            Peers(f) => {
                for p in node.peers.iter().filter(|p| !p.is_self) {
                    sample(&format!("{{peer=\"{}\"}}", p.addr), f(p));
                }
            }
            Buckets(f) => {
                let mut cumulative = 0;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    cumulative += sum(&|w| f(w).buckets[i].get());
                    sample(&format!("_bucket{{le=\"{bound}\"}}"), cumulative as f64);
                }
                let count = sum(&|w| f(w).count.get()) as f64;
                sample("_bucket{le=\"+Inf\"}", count);
                sample("_sum", sum(&|w| f(w).sum_micros.get()) as f64 / 1e6);
                sample("_count", count);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_over_workers_and_cumulative_buckets() {
        let a = Arc::new(WorkerMetrics::default());
        let b = Arc::new(WorkerMetrics::default());
        a.requests.add(RequestOutcome::Sliced, 2);
        b.requests.inc(RequestOutcome::Sliced);
        b.responses.inc(StatusClass::of(404));
        a.request_duration.observe(Duration::from_millis(3));
        b.request_duration.observe(Duration::from_secs(60));
        assert_eq!(a.requests.get(RequestOutcome::Sliced), 2);
        let text = render(&[a, b], &NodeGauges::default());
        assert!(
            text.contains("edgeslice_requests_total{outcome=\"sliced\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("edgeslice_responses_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("edgeslice_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("edgeslice_request_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("edgeslice_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("edgeslice_request_duration_seconds_count 2\n"));
        assert!(text.contains("edgeslice_worker_connections{worker=\"1\"} 0\n"));
    }

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
