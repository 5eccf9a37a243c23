//! `/metrics` on the admin listener: every counter moves by exactly the
//! traffic sent (a MISS, a HIT, a pass-through POST and a relayed 404 on a
//! fresh cached server), origin requests included.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Samples of a Prometheus text exposition, keyed `name{labels}` as written.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("metric line without a value: {l:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("metric value is not a number: {l:?}"));
            (key.to_string(), value)
        })
        .collect()
}

fn scrape(admin: SocketAddr) -> (String, HashMap<String, f64>) {
    let resp = get(admin, "/metrics", &[]).expect("GET /metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(resp.body).expect("metrics are UTF-8");
    let samples = parse_metrics(&text);
    (text, samples)
}

/// `after - before` for each key, a missing key being an error.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    let b = before
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing before"));
    let a = after
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing after"));
    a - b
}

/// Metrics before and after a known sequence of requests.
struct KnownTraffic {
    before: HashMap<String, f64>,
    after: HashMap<String, f64>,
    /// The scrape after, as text.
    text: String,
    /// Body bytes the four responses carried.
    sent: u64,
    /// Length of the POSTed (and echoed) body.
    posted: u64,
}

/// On a fresh cached server (S = 4, 2 workers, admin on): a full GET of a
/// 16-byte object (MISS, 4 slices), the same again (HIT), a POST to /echo
/// (pass-through), a GET answered 404 by the origin (relayed).
fn known_traffic(name: &str) -> KnownTraffic {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        workers: 2,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    };
    let _dir = TempDir(setup.cache.as_ref().unwrap().dir.clone());
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().expect("admin listener configured");
    let addr = server.local_addr();
    let (_, before) = scrape(admin);

    let miss = get(addr, "/obj/16/m", &[]).unwrap();
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.body, object_bytes("m", 0, 15));
    assert_eq!(origin.request_count(), 4, "{:?}", origin.requests());
    let hit = get(addr, "/obj/16/m", &[]).unwrap();
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, object_bytes("m", 0, 15));
    let echo_body = b"posted through edgeslice";
    let echo = HttpConnection::connect(addr)
        .and_then(|mut c| c.request("POST", "/echo/ops", &[], Some(echo_body)))
        .unwrap();
    assert_eq!(echo.status, 200);
    assert_eq!(echo.body, echo_body);
    let not_found = get(addr, "/status/404/x", &[]).unwrap();
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.body, b"status 404\n");
    // What reached the origin: 4 slices, the POST, the 404's probe.
    assert_eq!(origin.request_count(), 6, "{:?}", origin.requests());

    // Requests are counted when they end, just after their last byte went
    // out: wait until all four are, then compare.
    // A request's counters move one after another while a scrape reads
    // them one after another (a CI run caught a scrape between them: the
    // last request's duration counted, its status class and bytes not
    // yet): wait for all four, and for two scrapes in a row that agree.
    let (text, after) = wait_for(Duration::from_secs(5), "4 requests counted", || {
        let (_, first) = scrape(admin);
        let (text, after) = scrape(admin);
        let n = delta(&before, &after, "edgeslice_request_duration_seconds_count");
        (n >= 4.0 && first == after).then_some((text, after))
    });
    eprintln!("--- /metrics after the known traffic ---\n{text}");
    drop(server);
    KnownTraffic {
        before,
        after,
        text,
        sent: (16 + 16 + echo_body.len() + not_found.body.len()) as u64,
        posted: echo_body.len() as u64,
    }
}

/// Assert the delta of every `(name{labels}, expected)`, reporting all that differ.
fn assert_deltas(t: &KnownTraffic, expected: &[(&str, f64)]) {
    let wrong: Vec<(&str, f64, f64)> = expected
        .iter()
        .map(|(k, want)| (*k, delta(&t.before, &t.after, k), *want))
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "metric deltas (name, got, expected) that differ: {wrong:?}\n{}",
        t.text
    );
}

#[test]
fn metrics_counters_move_by_exactly_the_known_traffic() {
    let t = known_traffic("ops-metrics");
    let from_slot = delta(&t.before, &t.after, "edgeslice_slice_parts_from_slot_total");
    assert!(
        from_slot <= 4.0,
        "the miss had 4 slices: {from_slot} parts from slots"
    );
    assert_deltas(
        &t,
        &[
            ("edgeslice_requests_total{outcome=\"sliced\"}", 2.0),
            // The POST and the relayed 404: no slices, no cache result.
            ("edgeslice_requests_total{outcome=\"pass_through\"}", 2.0),
            ("edgeslice_requests_total{outcome=\"error\"}", 0.0),
            ("edgeslice_responses_total{class=\"2xx\"}", 3.0),
            ("edgeslice_responses_total{class=\"4xx\"}", 1.0),
            ("edgeslice_responses_total{class=\"5xx\"}", 0.0),
            ("edgeslice_cache_requests_total{result=\"hit\"}", 1.0),
            ("edgeslice_cache_requests_total{result=\"miss\"}", 1.0),
            ("edgeslice_cache_requests_total{result=\"partial\"}", 0.0),
            ("edgeslice_cache_slices_total{result=\"hit\"}", 4.0),
            ("edgeslice_cache_slices_total{result=\"miss\"}", 4.0),
            // The hit's 4 slices went out from the slot files (and, timing
            // permitting, the miss's parts still queued when stored: below).
            ("edgeslice_cache_slices_sendfile_total", 4.0 + from_slot),
            ("edgeslice_client_sent_bytes_total", t.sent as f64),
            ("edgeslice_request_duration_seconds_count", 4.0),
            (
                "edgeslice_request_duration_seconds_bucket{le=\"+Inf\"}",
                4.0,
            ),
            ("edgeslice_time_to_first_byte_seconds_count", 4.0),
            ("edgeslice_origin_retries_total", 0.0),
            (
                "edgeslice_origin_received_bytes_total",
                (16 + "status 404\n".len()) as f64 + t.posted as f64,
            ),
        ],
    );
    assert_eq!(t.after["edgeslice_requests_in_flight"], 0.0);
    assert_eq!(t.after["edgeslice_origin_requests_in_flight"], 0.0);
}

#[test]
fn origin_requests_total_counts_every_request_sent_to_the_origin() {
    let t = known_traffic("ops-origin-requests");
    // 4 slices of the miss, the POST, the 404's probe: 6 requests reached the origin.
    assert_deltas(
        &t,
        &[
            ("edgeslice_origin_requests_total", 6.0),
            ("edgeslice_origin_request_duration_seconds_count", 6.0),
        ],
    );
}

/// One worker: the manifest it decoded for the first hit is reused by the
/// next ones, with no decoding, until a purge changes it.
#[test]
fn hits_reuse_the_manifest_their_worker_decoded() {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        workers: 1,
        cache: Some(CacheSetup::fresh("ops-decoded")),
        ..Setup::default()
    };
    let _dir = TempDir(setup.cache.as_ref().unwrap().dir.clone());
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().expect("admin listener configured");
    let addr = server.local_addr();
    assert_eq!(
        get(addr, "/obj/16/d", &[]).unwrap().header("x-cache"),
        Some("MISS")
    );
    let (_, before) = scrape(admin);
    for _ in 0..3 {
        let hit = get(addr, "/obj/16/d", &[]).unwrap();
        assert_eq!(hit.header("x-cache"), Some("HIT"));
        assert_eq!(hit.body, object_bytes("d", 0, 15));
    }
    let (text, after) = scrape(admin);
    let reused = delta(&before, &after, "edgeslice_cache_manifests_reused_total");
    assert!(
        (2.0..=3.0).contains(&reused),
        "{reused} of 3 hits reused a decoded manifest, expected 2 or 3\n{text}"
    );
}
