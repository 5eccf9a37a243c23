//! The Prometheus text exposition of every metric: the table of names,
//! help texts and types (`METRICS`), and [`render`], which sums the
//! workers' counters at scrape time.

use std::fmt::Write;
use std::sync::Arc;

use super::kinds::{Counter, Family, Histogram, BUCKETS};
use super::{NodeGauges, PeerGauge, WorkerMetrics};

/// Where a metric's samples come from at scrape time.
enum Samples {
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
struct Metric(&'static str, &'static str, &'static str, Samples);

use Samples::*;

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
    Metric("edgeslice_cache_slices_total", "Slices served, by whether this node's cache held them (hit) or not (miss).",
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
    Metric("edgeslice_origin_part_answers_total",
        "Requests for the rest of a slice the origin answered with fewer bytes than asked.",
        "counter", Sum(|w| &w.origin_part_answers)),
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
    Metric("edgeslice_cache_disk_read_waits_total",
        "Reads from disk around the page cache that waited for the worker's bound (cache.disk_reads_per_worker) to free a turn.",
        "counter", Sum(|w| &w.disk_read_waits)),
    Metric("edgeslice_cache_slow_writes_total",
        "Slot writes the kernel held past 5 ms where the file system takes no RWF_NOWAIT write (ext4) (throttled for the disk, or reclaiming memory): the worker's writes then went off its loop for 2 s.",
        "counter", Sum(|w| &w.slow_writes)),
    Metric("edgeslice_cache_deferred_writes_total",
        "Slot writes the kernel would have held (a buffered RWF_NOWAIT write answered EAGAIN; XFS, btrfs), finished off the worker's loop.",
        "counter", Sum(|w| &w.deferred_writes)),
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
    use crate::ops::metrics::{RequestOutcome, StatusClass};
    use std::time::Duration;

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
}
