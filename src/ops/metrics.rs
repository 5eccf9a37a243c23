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

/// Request outcomes, the `outcome` label.
pub const OUTCOMES: [&str; 4] = ["sliced", "pass_through", "error", "client_abort"];
/// Status classes, the `class` label.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Cache results per request, the `result` label.
pub const CACHE_RESULTS: [&str; 3] = ["hit", "miss", "partial"];
/// Why a subrequest failed, the `reason` label.
pub const FAILURES: [&str; 5] = ["timeout", "5xx", "4xx", "connect", "mismatch"];
/// Revalidation results, the `result` label.
pub const REVALIDATIONS: [&str; 3] = ["not_modified", "changed", "failed"];

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Requests by outcome ([`OUTCOMES`]).
    pub requests: [Counter; 4],
    /// Responses by status class ([`CLASSES`]).
    pub responses: [Counter; 5],
    /// Requests being answered now.
    pub in_flight: Counter,
    /// Open client connections.
    pub connections: Counter,
    /// Whole-request latency.
    pub request_duration: Histogram,
    /// Time until the response head went out.
    pub first_byte: Histogram,
    /// Body bytes sent to clients.
    pub sent_bytes: Counter,
    /// Cacheable requests by result ([`CACHE_RESULTS`]).
    pub cache_requests: [Counter; 3],
    /// Slices served from the cache.
    pub slice_hits: Counter,
    /// Slices fetched from the origin.
    pub slice_misses: Counter,
    /// Slices stored.
    pub cache_inserts: Counter,
    /// Times an insert waited for the disk flushers (backpressure).
    pub cache_insert_waits: Counter,
    /// Revalidations by result ([`REVALIDATIONS`]).
    pub revalidations: [Counter; 3],
    /// PURGE requests that dropped an object.
    pub purges: Counter,
    /// Subrequests sent to the origin.
    pub origin_requests: Counter,
    /// Subrequests waiting for their response head now.
    pub origin_in_flight: Counter,
    /// Failed subrequests by reason ([`FAILURES`]).
    pub origin_failures: [Counter; 5],
    /// Subrequests retried.
    pub origin_retries: Counter,
    /// Slice fetches that followed another request's fetch instead of asking the origin.
    pub coalesced_waits: Counter,
    /// Slices an answer's head counted as cached that were gone when read.
    pub slices_vanished: Counter,
    /// Time from sending a subrequest to its response head.
    pub origin_duration: Histogram,
    /// Body bytes received from the origin.
    pub origin_bytes: Counter,
    /// Slices fetched ahead for sequential readers.
    pub prefetched: Counter,
    /// Prefetched slices a later request read (waste = prefetched - used).
    pub prefetch_used: Counter,
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

/// Index of a status class in [`CLASSES`].
pub fn class_of(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
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
}

/// Render every metric in the Prometheus text format.
pub fn render(workers: &[Arc<WorkerMetrics>], node: &NodeGauges) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let sum = |f: &dyn Fn(&WorkerMetrics) -> &Counter| -> u64 {
        workers.iter().map(|w| f(w).get()).sum()
    };
    let counter =
        |out: &mut String, name: &str, help: &str, kind: &str, values: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in values {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
    let labelled = |label: &str, names: &[&str], f: &dyn Fn(&WorkerMetrics, usize) -> u64| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v: u64 = workers.iter().map(|w| f(w, i)).sum();
                (format!("{{{label}=\"{n}\"}}"), v as f64)
            })
            .collect::<Vec<_>>()
    };
    let one = |v: u64| vec![(String::new(), v as f64)];

    counter(
        &mut out,
        "edgeslice_requests_total",
        "Client requests by outcome.",
        "counter",
        &labelled("outcome", &OUTCOMES, &|w, i| w.requests[i].get()),
    );
    counter(
        &mut out,
        "edgeslice_responses_total",
        "Responses by status class.",
        "counter",
        &labelled("class", &CLASSES, &|w, i| w.responses[i].get()),
    );
    counter(
        &mut out,
        "edgeslice_requests_in_flight",
        "Requests being answered now.",
        "gauge",
        &one(sum(&|w| &w.in_flight)),
    );
    counter(
        &mut out,
        "edgeslice_client_sent_bytes_total",
        "Body bytes sent to clients.",
        "counter",
        &one(sum(&|w| &w.sent_bytes)),
    );
    counter(
        &mut out,
        "edgeslice_cache_requests_total",
        "Cacheable requests by cache result.",
        "counter",
        &labelled("result", &CACHE_RESULTS, &|w, i| w.cache_requests[i].get()),
    );
    counter(
        &mut out,
        "edgeslice_cache_slices_total",
        "Slices served, by where they came from.",
        "counter",
        &[
            (
                "{result=\"hit\"}".to_string(),
                sum(&|w| &w.slice_hits) as f64,
            ),
            (
                "{result=\"miss\"}".to_string(),
                sum(&|w| &w.slice_misses) as f64,
            ),
        ],
    );
    counter(
        &mut out,
        "edgeslice_cache_inserts_total",
        "Slices and manifests stored.",
        "counter",
        &one(sum(&|w| &w.cache_inserts)),
    );
    counter(
        &mut out,
        "edgeslice_cache_insert_waits_total",
        "Inserts that waited for the disk flushers (backpressure, nothing dropped).",
        "counter",
        &one(sum(&|w| &w.cache_insert_waits)),
    );
    counter(
        &mut out,
        "edgeslice_cache_revalidations_total",
        "Revalidations of stale objects by result.",
        "counter",
        &labelled("result", &REVALIDATIONS, &|w, i| w.revalidations[i].get()),
    );
    counter(
        &mut out,
        "edgeslice_cache_purges_total",
        "Objects purged.",
        "counter",
        &one(sum(&|w| &w.purges)),
    );
    counter(
        &mut out,
        "edgeslice_cache_memory_bytes",
        "Bytes held by the memory tier.",
        "gauge",
        &one(node.cache_memory_bytes),
    );
    counter(
        &mut out,
        "edgeslice_cache_disk_bytes",
        "Bytes the disk tier occupies.",
        "gauge",
        &one(node.cache_disk_bytes),
    );
    counter(
        &mut out,
        "edgeslice_cache_disk_written_bytes_total",
        "Bytes written to the disk tier.",
        "counter",
        &one(node.cache_disk_written),
    );
    counter(
        &mut out,
        "edgeslice_cache_disk_read_bytes_total",
        "Bytes read from the disk tier.",
        "counter",
        &one(node.cache_disk_read),
    );
    counter(
        &mut out,
        "edgeslice_cache_recovery_seconds",
        "Time the store took to open and recover at start.",
        "gauge",
        &[(String::new(), node.cache_recovery_seconds)],
    );
    counter(
        &mut out,
        "edgeslice_origin_requests_total",
        "Subrequests sent to the origin.",
        "counter",
        &one(sum(&|w| &w.origin_requests)),
    );
    counter(
        &mut out,
        "edgeslice_origin_requests_in_flight",
        "Subrequests waiting for their response head.",
        "gauge",
        &one(sum(&|w| &w.origin_in_flight)),
    );
    counter(
        &mut out,
        "edgeslice_origin_failures_total",
        "Failed subrequests by reason.",
        "counter",
        &labelled("reason", &FAILURES, &|w, i| w.origin_failures[i].get()),
    );
    counter(
        &mut out,
        "edgeslice_origin_retries_total",
        "Subrequests retried.",
        "counter",
        &one(sum(&|w| &w.origin_retries)),
    );
    counter(
        &mut out,
        "edgeslice_origin_coalesced_waits_total",
        "Slice fetches that followed another request's fetch.",
        "counter",
        &one(sum(&|w| &w.coalesced_waits)),
    );
    counter(
        &mut out,
        "edgeslice_cache_slices_vanished_total",
        "Slices counted as cached in an answer's head, gone from the store when read.",
        "counter",
        &one(sum(&|w| &w.slices_vanished)),
    );
    counter(
        &mut out,
        "edgeslice_prefetch_slices_total",
        "Slices fetched ahead for sequential readers.",
        "counter",
        &one(sum(&|w| &w.prefetched)),
    );
    counter(
        &mut out,
        "edgeslice_prefetch_used_total",
        "Prefetched slices a later request read; waste = prefetched - used.",
        "counter",
        &one(sum(&|w| &w.prefetch_used)),
    );
    counter(
        &mut out,
        "edgeslice_origin_received_bytes_total",
        "Body bytes received from the origin.",
        "counter",
        &one(sum(&|w| &w.origin_bytes)),
    );
    let breakers: Vec<(String, f64)> = node
        .breakers
        .iter()
        .map(|(origin, open)| (format!("{{origin=\"{origin}\"}}"), *open as u8 as f64))
        .collect();
    counter(
        &mut out,
        "edgeslice_origin_breaker_open",
        "1 while the origin's circuit breaker fails requests fast.",
        "gauge",
        &breakers,
    );
    counter(
        &mut out,
        "edgeslice_process_resident_memory_bytes",
        "Resident memory of the process.",
        "gauge",
        &one(node.resident_bytes),
    );
    counter(
        &mut out,
        "edgeslice_process_cpu_seconds_total",
        "CPU seconds used by the process.",
        "counter",
        &[(String::new(), node.cpu_seconds)],
    );
    counter(
        &mut out,
        "edgeslice_process_open_fds",
        "Open file descriptors.",
        "gauge",
        &one(node.open_fds),
    );
    let per_worker: Vec<(String, f64)> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("{{worker=\"{i}\"}}"), w.connections.get() as f64))
        .collect();
    counter(
        &mut out,
        "edgeslice_worker_connections",
        "Open client connections per worker.",
        "gauge",
        &per_worker,
    );
    histogram(
        &mut out,
        "edgeslice_request_duration_seconds",
        "Whole-request latency.",
        workers,
        |w| &w.request_duration,
    );
    histogram(
        &mut out,
        "edgeslice_time_to_first_byte_seconds",
        "Time until the response head was sent.",
        workers,
        |w| &w.first_byte,
    );
    histogram(
        &mut out,
        "edgeslice_origin_request_duration_seconds",
        "Time from a subrequest to its response head.",
        workers,
        |w| &w.origin_duration,
    );
    out
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    workers: &[Arc<WorkerMetrics>],
    f: impl Fn(&WorkerMetrics) -> &Histogram,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += workers.iter().map(|w| f(w).buckets[i].get()).sum::<u64>();
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count: u64 = workers.iter().map(|w| f(w).count.get()).sum();
    let sum: u64 = workers.iter().map(|w| f(w).sum_micros.get()).sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", sum as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
}

/// Resident bytes, CPU seconds and open fds of this process, from /proc.
pub fn process_gauges() -> (u64, f64, u64) {
    let page = 4096u64;
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    // utime and stime are fields 14 and 15, after the parenthesised command.
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (resident, cpu, fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_over_workers_and_cumulative_buckets() {
        let a = Arc::new(WorkerMetrics::default());
        let b = Arc::new(WorkerMetrics::default());
        a.requests[0].add(2);
        b.requests[0].inc();
        b.responses[class_of(404)].inc();
        a.request_duration.observe(Duration::from_millis(3));
        b.request_duration.observe(Duration::from_secs(60));
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
    fn process_gauges_read_proc() {
        let (rss, _cpu, fds) = process_gauges();
        assert!(rss > 0 && fds > 0);
    }
}
