//! Slicing end to end: a real origin and a real edgeslice on 127.0.0.1:0,
//! tiny objects and tiny slices so every boundary is cheap, and every case
//! asserts on what reached the origin as well as on what the client got.

mod common;

use common::*;
use edgeslice::config::DriverChoice;
use edgeslice::server::runtime::Driver;

/// A harness on `driver`, or `None` (with a note) when io_uring is asked for
/// on a kernel without it.
fn start_on(driver: DriverChoice, slice_size: u64, window: usize) -> Option<Harness> {
    if driver == DriverChoice::IoUring && !monoio::utils::detect_uring() {
        eprintln!("skipped: io_uring is not available on this kernel");
        return None;
    }
    let h = Harness::start(Setup {
        slice_size,
        window,
        driver,
        ..Setup::default()
    });
    let want = match driver {
        DriverChoice::IoUring => Some(Driver::IoUring),
        DriverChoice::Legacy => Some(Driver::Legacy),
        DriverChoice::Auto => None,
    };
    if let Some(want) = want {
        assert_eq!(h.server.driver(), want, "the driver asked for");
    }
    Some(h)
}

/// Indices of the slices holding bytes `first..=last`.
fn slices_of(first: u64, last: u64, s: u64) -> Vec<u64> {
    (first / s..=last / s).collect()
}

/// The Range header of slice `k`.
fn slice_range(k: u64, s: u64) -> String {
    slice_ranges([k], s).remove(0)
}

/// The response is complete and its body is bytes `first..=last` of `name`,
/// without dumping megabytes on a mismatch.
fn assert_body(resp: &HttpResponse, name: &str, first: u64, last: u64, ctx: &str) {
    assert!(resp.complete, "{ctx}: body cut short");
    let want = object_bytes(name, first, last);
    if resp.body != want {
        let at = resp.body.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{ctx}: got {} body bytes, expected {} (bytes {first}-{last} of {name:?}); first difference at {at:?}",
            resp.body.len(),
            want.len()
        );
    }
}

/// Full GETs of objects around the slice size each ask exactly the slices the
/// object spans; the empty object is one probe and an empty 200.
fn tiny_objects_on_tiny_slices(driver: DriverChoice) {
    const S: u64 = 4;
    let Some(h) = start_on(driver, S, 4) else {
        return;
    };
    for len in [1u64, 3, 4, 5, 8, 9] {
        let name = format!("tiny{len}");
        let ctx = format!("{driver:?}, {len}-byte object, {S}-byte slices");
        h.origin.clear();
        let resp = h.get(&format!("/obj/{len}/{name}"), &[]);
        assert_eq!(resp.status, 200, "{ctx}");
        assert_eq!(
            resp.header("content-length"),
            Some(len.to_string().as_str()),
            "{ctx}"
        );
        assert_eq!(resp.header("content-range"), None, "{ctx}");
        assert_body(&resp, &name, 0, len - 1, &ctx);
        assert_eq!(
            h.origin_ranges_sorted(),
            slice_ranges(0..len.div_ceil(S), S),
            "{ctx}"
        );
    }

    h.origin.clear();
    let resp = h.get("/obj/0/e", &[]);
    assert_eq!(resp.status, 200, "{driver:?}, empty object");
    assert_eq!(resp.header("content-length"), Some("0"), "{driver:?}");
    assert!(resp.body.is_empty() && resp.complete, "{driver:?}");
    assert_eq!(h.origin_ranges(), slice_ranges([0], S), "{driver:?}");
}

/// `(Range, first, last, suffix)` over the 16-byte object of nginx-tests slice.t.
const SINGLE_RANGES: &[(&str, u64, u64, bool)] = &[
    ("bytes=0-0", 0, 0, false),
    ("bytes=0-1", 0, 1, false),
    ("bytes=1-2", 1, 2, false),
    ("bytes=3-12", 3, 12, false),
    ("bytes=15-15", 15, 15, false),
    ("bytes=15-", 15, 15, false),
    ("bytes=5-", 5, 15, false),
    ("bytes=-1", 15, 15, true),
    ("bytes=-3", 13, 15, true),
    ("bytes=-16", 0, 15, true),
    ("bytes=-100", 0, 15, true),
    ("bytes=10-99", 10, 15, false),
    ("bytes=0-15", 0, 15, false),
];

/// Each single range answers 206 with the right bytes, and the origin sees the
/// probe first, then exactly the other slices the range needs.
fn single_ranges_of_a_16_byte_object(driver: DriverChoice) {
    const S: u64 = 2;
    let Some(h) = start_on(driver, S, 4) else {
        return;
    };
    for &(range, first, last, suffix) in SINGLE_RANGES {
        let ctx = format!("{driver:?}, Range: {range}");
        h.origin.clear();
        let resp = h.get("/obj/16/t", &[("Range", range)]);
        assert_eq!(resp.status, 206, "{ctx}");
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes {first}-{last}/16").as_str()),
            "{ctx}"
        );
        assert_eq!(
            resp.header("content-length"),
            Some((last - first + 1).to_string().as_str()),
            "{ctx}"
        );
        assert_body(&resp, "t", first, last, &ctx);

        // Suffix ranges probe slice 0: the length is not known before it.
        let probe = if suffix { 0 } else { first / S };
        let needed = slices_of(first, last, S);
        let ranges = h.origin_ranges();
        assert_eq!(ranges.first(), Some(&slice_range(probe, S)), "{ctx}: probe");
        // The probe's answer is reused when it is the first needed slice.
        let rest: Vec<u64> = if needed[0] == probe {
            needed[1..].to_vec()
        } else {
            needed.clone()
        };
        let mut after_probe = ranges[1..].to_vec();
        after_probe.sort_by_key(|r| slice_start(r));
        assert_eq!(after_probe, slice_ranges(rest, S), "{ctx}: after the probe");
        let extra = usize::from(!needed.contains(&0) && suffix);
        assert_eq!(ranges.len(), needed.len() + extra, "{ctx}: {ranges:?}");
    }
}

fn slice_start(range: &str) -> u64 {
    range
        .trim_start_matches("bytes=")
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[test]
fn tiny_objects_on_tiny_slices_legacy() {
    tiny_objects_on_tiny_slices(DriverChoice::Legacy);
}

#[test]
fn tiny_objects_on_tiny_slices_io_uring() {
    tiny_objects_on_tiny_slices(DriverChoice::IoUring);
}

#[test]
fn single_ranges_of_a_16_byte_object_legacy() {
    single_ranges_of_a_16_byte_object(DriverChoice::Legacy);
}

#[test]
fn single_ranges_of_a_16_byte_object_io_uring() {
    single_ranges_of_a_16_byte_object(DriverChoice::IoUring);
}

#[test]
fn ranges_past_the_end_answer_416_after_one_probe() {
    let h = Harness::with_slices(2);
    let cases = [
        ("/obj/16/t", "bytes=16-", "bytes */16"),
        ("/obj/16/t", "bytes=100-200", "bytes */16"),
        ("/obj/0/e", "bytes=0-", "bytes */0"),
    ];
    for (target, range, content_range) in cases {
        let ctx = format!("{target} Range: {range}");
        h.origin.clear();
        let resp = h.get(target, &[("Range", range)]);
        assert_eq!(resp.status, 416, "{ctx}");
        assert_eq!(resp.header("content-range"), Some(content_range), "{ctx}");
        assert!(resp.complete, "{ctx}");
        assert_eq!(
            h.origin.request_count(),
            1,
            "{ctx}: {:?}",
            h.origin_ranges()
        );
    }
}

#[test]
fn invalid_ranges_answer_200_with_the_whole_object() {
    const S: u64 = 2;
    let h = Harness::with_slices(S);
    for range in ["bytes=5-2", "bytes=abc", "items=0-1", "bytes="] {
        let ctx = format!("Range: {range}");
        h.origin.clear();
        let resp = h.get("/obj/16/t", &[("Range", range)]);
        assert_eq!(resp.status, 200, "{ctx}");
        assert_eq!(resp.header("content-range"), None, "{ctx}");
        assert_eq!(resp.header("content-length"), Some("16"), "{ctx}");
        assert_body(&resp, "t", 0, 15, &ctx);
        assert_eq!(h.origin_ranges_sorted(), slice_ranges(0..8, S), "{ctx}");
    }
}

#[test]
fn head_answers_what_get_would_without_a_body() {
    let h = Harness::with_slices(2);
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/obj/16/t", &[]),
        ("/obj/16/t", &[("Range", "bytes=3-12")]),
        ("/obj/16/t", &[("Range", "bytes=-3")]),
        ("/obj/16/t", &[("Range", "bytes=15-")]),
        ("/obj/0/e", &[]),
    ];
    for &(target, headers) in cases {
        let ctx = format!("{target} {headers:?}");
        let get = h.get(target, headers);
        let head = HttpConnection::connect(h.addr())
            .expect("connect")
            .request("HEAD", target, headers, None)
            .expect("HEAD through edgeslice");
        assert_eq!(head.status, get.status, "{ctx}");
        for name in [
            "content-length",
            "content-range",
            "etag",
            "last-modified",
            "accept-ranges",
        ] {
            assert_eq!(head.header(name), get.header(name), "{ctx}: {name}");
        }
        assert!(head.body.is_empty(), "{ctx}");
    }
    let empty = HttpConnection::connect(h.addr())
        .expect("connect")
        .request("HEAD", "/obj/0/e", &[], None)
        .expect("HEAD through edgeslice");
    assert_eq!(empty.status, 200);
    assert_eq!(empty.header("content-length"), Some("0"));
}

#[test]
fn head_of_an_unsatisfiable_range_keeps_the_connection_in_step() {
    let h = Harness::with_slices(2);
    let mut conn = HttpConnection::connect(h.addr()).expect("connect");
    let head = conn
        .request("HEAD", "/obj/16/t", &[("Range", "bytes=16-")], None)
        .expect("HEAD through edgeslice");
    assert_eq!(head.status, 416);
    assert_eq!(head.header("content-range"), Some("bytes */16"));
    // A HEAD answer has no body: whatever follows must be the next response.
    let next = conn
        .request("GET", "/obj/16/t", &[("Range", "bytes=0-1")], None)
        .expect("GET after HEAD on the same connection");
    assert_eq!(next.status, 206);
    assert_body(&next, "t", 0, 1, "GET after HEAD 416");
}

#[test]
fn if_range_serves_the_range_only_for_the_same_version() {
    let h = Harness::with_slices(2);
    // The origin's Date, now: long after its Last-Modified, which is strong.
    let path = "/obj/16/t?date=0";
    let full = h.get(path, &[]);
    let etag = full.header("etag").expect("the origin sends an ETag");
    let weak = format!("W/{etag}");
    let lm = "Tue, 15 Nov 1994 08:12:31 GMT";
    assert_eq!(full.header("last-modified"), Some(lm));
    let cases = [
        (etag, 206),
        ("\"some-other-etag\"", 200),
        (weak.as_str(), 200),
        (lm, 206),
        ("Wed, 16 Nov 1994 08:12:31 GMT", 200),
    ];
    for (if_range, status) in cases {
        let ctx = format!("If-Range: {if_range}");
        let resp = h.get(path, &[("Range", "bytes=5-9"), ("If-Range", if_range)]);
        assert_eq!(resp.status, status, "{ctx}");
        if status == 206 {
            assert_eq!(resp.header("content-range"), Some("bytes 5-9/16"), "{ctx}");
            assert_body(&resp, "t", 5, 9, &ctx);
        } else {
            assert_eq!(resp.header("content-range"), None, "{ctx}");
            assert_eq!(resp.header("content-length"), Some("16"), "{ctx}");
            assert_body(&resp, "t", 0, 15, &ctx);
        }
    }
}

/// RFC 9110 13.1.5 and 8.8.2.2: a Last-Modified in If-Range is strong only
/// when the answer's Date is at least a second after it (two versions made
/// in one second share it). One made in the same second gets the whole
/// object, not a range to join to another version's bytes (a 206 before).
#[test]
fn if_range_with_a_last_modified_as_old_as_the_answer_gets_the_whole_object() {
    let h = Harness::with_slices(2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The demo origin's Last-Modified, 784887151 (Tue, 15 Nov 1994
    // 08:12:31 GMT), as its Date, or a second before if the origin's clock
    // ticks on from ours: either is within the second.
    let path = format!("/obj/16/t?date={}", 784_887_151 - now - 1);
    let lm = "Tue, 15 Nov 1994 08:12:31 GMT";
    let full = h.get(&path, &[]);
    let date = full.header("date");
    assert!(
        date == Some(lm) || date == Some("Tue, 15 Nov 1994 08:12:30 GMT"),
        "{:?}",
        full.headers
    );
    let resp = h.get(&path, &[("Range", "bytes=5-9"), ("If-Range", lm)]);
    assert_eq!(resp.status, 200, "{:?}", resp.headers);
    assert_body(&resp, "t", 0, 15, "If-Range with a weak date");
    let etag = full.header("etag").unwrap();
    let resp = h.get(&path, &[("Range", "bytes=5-9"), ("If-Range", etag)]);
    assert_eq!(resp.status, 206);
}

#[test]
fn subrequests_in_flight_stay_within_the_window() {
    const S: u64 = 4;
    for (window, lowest_peak) in [(3usize, 2usize), (1, 1)] {
        let ctx = format!("window {window}");
        let h = Harness::start(Setup {
            slice_size: S,
            window,
            ..Setup::default()
        });
        let resp = h.get("/obj/64/w?delay_ms=50", &[]);
        assert_eq!(resp.status, 200, "{ctx}");
        assert_body(&resp, "w", 0, 63, &ctx);
        assert_eq!(h.origin.request_count(), 16, "{ctx}");
        assert_eq!(h.origin_ranges_sorted(), slice_ranges(0..16, S), "{ctx}");
        let peak = h.origin.peak_concurrency();
        assert!(
            (lowest_peak..=window).contains(&peak),
            "{ctx}: got peak {peak}, expected {lowest_peak}..={window}"
        );
    }
}

#[test]
fn large_objects_arrive_whole_in_one_request_per_slice() {
    const MIB: u64 = 1024 * 1024;
    for (len, s) in [(10 * MIB, MIB), (3 * MIB, 1_000_003)] {
        let ctx = format!("{len}-byte object, {s}-byte slices");
        let h = Harness::with_slices(s);
        let resp = h.get(&format!("/obj/{len}/large.bin"), &[]);
        assert_eq!(resp.status, 200, "{ctx}");
        assert_body(&resp, "large.bin", 0, len - 1, &ctx);
        let count = len.div_ceil(s);
        assert_eq!(h.origin.request_count() as u64, count, "{ctx}");
        assert_eq!(h.origin_ranges_sorted(), slice_ranges(0..count, s), "{ctx}");
    }
}

/// (method, Range, status, body bytes or None for an unchecked body)
type MixedCase<'a> = (&'a str, Option<&'a str>, u16, Option<(u64, u64)>);

#[test]
fn one_client_connection_carries_mixed_requests() {
    let h = Harness::with_slices(2);
    let mut conn = HttpConnection::connect(h.addr()).expect("connect");
    let cases: &[MixedCase] = &[
        ("GET", None, 200, Some((0, 15))),
        ("GET", Some("bytes=3-12"), 206, Some((3, 12))),
        ("HEAD", Some("bytes=-3"), 206, None),
        ("GET", Some("bytes=16-"), 416, None),
        ("GET", Some("bytes=-5"), 206, Some((11, 15))),
    ];
    for (i, &(method, range, status, bytes)) in cases.iter().enumerate() {
        let ctx = format!("request {i}: {method} Range: {range:?}");
        let headers: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
        let resp = conn
            .request(method, "/obj/16/t", &headers, None)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(resp.status, status, "{ctx}");
        assert_eq!(resp.header("connection"), None, "{ctx}");
        match bytes {
            Some((first, last)) => assert_body(&resp, "t", first, last, &ctx),
            None if method == "HEAD" => assert!(resp.body.is_empty(), "{ctx}"),
            None => assert!(resp.complete, "{ctx}"),
        }
    }
}

#[test]
fn origin_connections_are_reused_across_requests() {
    let h = Harness::with_slices(2);
    for i in 0..10 {
        let resp = h.get("/obj/16/t", &[]);
        assert_eq!(resp.status, 200, "request {i}");
        assert_body(&resp, "t", 0, 15, &format!("request {i}"));
    }
    let (requests, connections) = (h.origin.request_count(), h.origin.connections_accepted());
    assert_eq!(requests, 80);
    // Without reuse there would be one connection per slice request.
    assert!(
        connections * 4 <= requests,
        "got {connections} origin connections for {requests} requests, expected at most {}",
        requests / 4
    );
}

#[test]
fn every_origin_request_asks_one_whole_slice_and_the_probe_comes_first() {
    const S: u64 = 4;
    let h = Harness::with_slices(S);
    // (Range or None, probe slice, needed slices) over a 30-byte object:
    // its last slice is asked unclipped, `bytes=28-31`.
    let cases: &[(Option<&str>, u64, &[u64])] = &[
        (Some("bytes=9-12"), 2, &[2, 3]),
        (Some("bytes=27-"), 6, &[6, 7]),
        (Some("bytes=-5"), 0, &[6, 7]),
        (Some("bytes=4-4"), 1, &[1]),
        (None, 0, &[0, 1, 2, 3, 4, 5, 6, 7]),
    ];
    for &(range, probe, needed) in cases {
        let ctx = format!("Range: {range:?}");
        h.origin.clear();
        let headers: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
        let resp = h.get("/obj/30/p", &headers);
        assert!(resp.complete, "{ctx}");
        let requests = h.origin.requests();
        assert_eq!(
            requests[0].range.as_deref(),
            Some(slice_range(probe, S).as_str()),
            "{ctx}: the first origin request is the probe"
        );
        for r in &requests {
            assert_eq!(r.method, "GET", "{ctx}");
            let range = r
                .range
                .as_deref()
                .expect("every origin request has a Range");
            let start = slice_start(range);
            assert_eq!(
                range,
                slice_range(start / S, S),
                "{ctx}: got {range}, expected one aligned slice"
            );
        }
        let mut asked: Vec<u64> = requests
            .iter()
            .map(|r| slice_start(r.range.as_deref().unwrap()) / S)
            .collect();
        asked.sort_unstable();
        asked.dedup();
        let mut want = needed.to_vec();
        if !want.contains(&probe) {
            want.insert(0, probe);
        }
        assert_eq!(asked, want, "{ctx}");
    }
}

#[test]
fn target_and_end_to_end_headers_reach_the_origin_on_every_slice() {
    let h = Harness::with_slices(2);
    let target = "/obj/16/a%20b?x=1&y=2";
    let resp = h.get(
        target,
        &[
            ("X-Variant", "blue"),
            ("Connection", "x-secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
        ],
    );
    assert_eq!(resp.status, 200);
    assert_body(&resp, "a%20b", 0, 15, target);
    assert_eq!(resp.header("x-origin-variant"), Some("blue"));
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 8);
    for r in &requests {
        let ctx = format!("origin request {:?}", r.range);
        assert_eq!(r.target, target, "{ctx}");
        assert_eq!(r.header("x-variant"), Some("blue"), "{ctx}");
        assert_eq!(r.header("x-secret"), None, "{ctx}");
        assert_eq!(r.header("keep-alive"), None, "{ctx}");
        let connection = r.header("connection").unwrap_or("");
        assert!(
            !connection.to_ascii_lowercase().contains("x-secret"),
            "{ctx}: got Connection: {connection}"
        );
    }
}

/// `slice_size = "auto"`: each object is cut into min(max(len/10, 512 KiB),
/// 2 MiB) slices. The probe asks on the 2 MiB grid; on another grid its
/// answer is dropped and the object's own slices are fetched.
#[test]
fn auto_slice_size_follows_each_objects_length() {
    const MIB: u64 = 1024 * 1024;
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &Setup::default())
        .replace("slice_size = 2\n", "slice_size = \"auto\"\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    // (length, slice size chosen, whether the 2 MiB probe is reused)
    let cases = [
        (30 * MIB, 2 * MIB, true),
        (10 * MIB, MIB, false),
        (MIB, MIB / 2, false),
    ];
    for (len, size, reused) in cases {
        h.origin.clear();
        let name = format!("auto{len}");
        let resp = h.get(&format!("/obj/{len}/{name}"), &[]);
        assert_eq!(resp.status, 200);
        assert!(
            resp.body == object_bytes(&name, 0, len - 1),
            "{len}: body differs"
        );
        let ranges = h.origin_ranges();
        assert_eq!(
            ranges[0],
            format!("bytes=0-{}", 2 * MIB - 1),
            "{len}: the probe"
        );
        let slices = len.div_ceil(size);
        let mut rest: Vec<String> = ranges[if reused { 0 } else { 1 }..].to_vec();
        rest.sort_by_key(|r| {
            r.trim_start_matches("bytes=")
                .split('-')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        });
        assert_eq!(
            rest,
            slice_ranges(0..slices, size),
            "{len}: slices of {size}"
        );
    }
    let text = edgeslice::config::Config::from_toml(
        "[origin]\naddress = \"127.0.0.1:1\"\n[slice]\nslice_size = \"auto\"\n",
    )
    .unwrap()
    .to_toml();
    assert!(text.contains("slice_size = \"auto\""), "{text}");
    edgeslice::config::Config::from_toml(&text).expect("the effective config reads back");
}
