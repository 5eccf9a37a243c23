//! Tests of the built-in origin, through its own client.
use crate::demo::client::{get, HttpConnection};
use crate::demo::content::{fnv1a, imf_fixdate, RangeSpec};
use crate::demo::origin::answer::BASE_LAST_MODIFIED;
use crate::demo::origin::*;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn object_bytes_agree_with_object_byte() {
    let bytes = object_bytes("a/b.bin", 3, 40);
    let one_by_one: Vec<u8> = (3..=40).map(|i| object_byte("a/b.bin", i)).collect();
    assert_eq!(bytes, one_by_one);
    assert_ne!(
        object_bytes("a/b.bin", 0, 63),
        object_bytes("a/c.bin", 0, 63)
    );
    assert!(object_bytes("x", 5, 4).is_empty());
}

#[test]
fn object_bytes_is_fast() {
    // Release must generate 100 MiB well under a second; debug only checks a slice.
    let len: u64 = if cfg!(debug_assertions) {
        8 << 20
    } else {
        100 << 20
    };
    let start = Instant::now();
    let bytes = object_bytes("big", 0, len - 1);
    let elapsed = start.elapsed();
    assert_eq!(bytes[len as usize - 1], object_byte("big", len - 1));
    if !cfg!(debug_assertions) {
        assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    }
}

/// `None`: ignored (200); `Some(None)`: 416; `Some(Some(range))`: 206.
type Resolved = Option<Option<(u64, u64)>>;

#[test]
fn range_spec_parse_and_resolve() {
    let cases: &[(&str, u64, Resolved)] = &[
        ("bytes=0-0", 100, Some(Some((0, 0)))),
        ("bytes=0-99", 100, Some(Some((0, 99)))),
        ("bytes=90-200", 100, Some(Some((90, 99)))),
        ("bytes=50-", 100, Some(Some((50, 99)))),
        ("bytes=-10", 100, Some(Some((90, 99)))),
        ("bytes=-200", 100, Some(Some((0, 99)))),
        (" Bytes = 1 - 2 ", 100, Some(Some((1, 2)))),
        ("bytes=100-", 100, Some(None)),
        ("bytes=0-0", 0, Some(None)),
        ("bytes=-0", 100, Some(None)),
        ("bytes=5-2", 100, None),
        ("bytes=0-1,3-4", 100, None),
        ("items=0-1", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes=+1-2", 100, None),
        ("bytes=", 100, None),
    ];
    for (header, len, expected) in cases {
        let got = RangeSpec::parse(header).map(|r| r.resolve(*len));
        assert_eq!(got, *expected, "{header:?} on len {len}");
    }
}

#[test]
fn imf_fixdate_formats_known_dates() {
    assert_eq!(
        imf_fixdate(BASE_LAST_MODIFIED),
        "Tue, 15 Nov 1994 08:12:31 GMT"
    );
    assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

#[test]
fn full_get_has_object_headers() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(origin.addr(), "/obj/200000/dir/big.bin", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(resp.body, object_bytes("dir/big.bin", 0, 199_999));
    assert_eq!(
        resp.header("etag"),
        Some(format!("\"30d40-{:x}\"", fnv1a("dir/big.bin")).as_str())
    );
    assert_eq!(
        resp.header("last-modified"),
        Some("Tue, 15 Nov 1994 08:12:31 GMT")
    );
    assert_eq!(resp.header("accept-ranges"), Some("bytes"));
    assert_eq!(resp.header("cache-control"), Some("max-age=3600"));
    assert_eq!(resp.header("x-origin-variant"), Some("none"));
    assert_eq!(resp.header("content-range"), None);
}

#[test]
fn range_gets_at_edges() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    // (Range, expected status, expected Content-Range, first, last)
    let cases = [
        ("bytes=0-0", 206, Some("bytes 0-0/16"), 0, 0),
        ("bytes=15-15", 206, Some("bytes 15-15/16"), 15, 15),
        ("bytes=0-15", 206, Some("bytes 0-15/16"), 0, 15),
        ("bytes=14-99", 206, Some("bytes 14-15/16"), 14, 15),
        ("bytes=7-", 206, Some("bytes 7-15/16"), 7, 15),
        ("bytes=-3", 206, Some("bytes 13-15/16"), 13, 15),
        ("bytes=0-1,4-5", 200, None, 0, 15),
        ("bytes=9-2", 200, None, 0, 15),
    ];
    for (range, status, content_range, first, last) in cases {
        let resp = conn
            .request("GET", "/obj/16/tiny", &[("Range", range)], None)
            .unwrap();
        assert_eq!(resp.status, status, "{range}");
        assert_eq!(resp.header("content-range"), content_range, "{range}");
        assert_eq!(resp.body, object_bytes("tiny", first, last), "{range}");
    }
    assert_eq!(origin.connections_accepted(), 1);
}

#[test]
fn unsatisfiable_ranges_answer_416() {
    let origin = DemoOrigin::start().unwrap();
    for (target, total) in [("/obj/16/t", "16"), ("/obj/0/empty", "0")] {
        let resp = get(origin.addr(), target, &[("Range", "bytes=16-20")]).unwrap();
        assert_eq!(resp.status, 416);
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes */{total}").as_str())
        );
        assert!(resp.body.is_empty() && resp.complete);
    }
}

#[test]
fn head_has_get_headers_and_no_body() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let head = conn
        .request("HEAD", "/obj/5000/h", &[("Range", "bytes=10-19")], None)
        .unwrap();
    let get = conn
        .request("GET", "/obj/5000/h", &[("Range", "bytes=10-19")], None)
        .unwrap();
    assert_eq!(head.status, 206);
    assert!(head.body.is_empty());
    assert_eq!(head.headers, get.headers);
    assert_eq!(get.body, object_bytes("h", 10, 19));
}

#[test]
fn keep_alive_serves_three_requests_on_one_connection() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            conn.request("GET", "/obj/100/k", &[], None).unwrap().status,
            200
        );
    }
    assert_eq!(origin.connections_accepted(), 1);
    let ids: Vec<u64> = origin.requests().iter().map(|r| r.connection).collect();
    assert_eq!(ids, [1, 1, 1]);
}

#[test]
fn connection_close_is_honoured() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let resp = conn
        .request("GET", "/obj/10/c", &[("Connection", "close")], None)
        .unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.request("GET", "/obj/10/c", &[], None).is_err());
}

#[test]
fn norange_ignores_range() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(origin.addr(), "/norange/100/n", &[("Range", "bytes=0-9")]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("n", 0, 99));
}

#[test]
fn truncate_sends_half_then_closes() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(
        origin.addr(),
        "/truncate/1000/t",
        &[("Range", "bytes=100-199")],
    )
    .unwrap();
    assert_eq!(
        (resp.status, resp.header("content-length")),
        (206, Some("100"))
    );
    assert_eq!(resp.header("content-range"), Some("bytes 100-199/1000"));
    assert!(!resp.complete);
    assert_eq!(resp.body, object_bytes("t", 100, 149));
    let one = get(origin.addr(), "/truncate/1000/t", &[("Range", "bytes=5-5")]).unwrap();
    assert!(!one.complete && one.body.is_empty());
}

#[test]
fn shift_moves_content_range_and_body() {
    let origin = DemoOrigin::start().unwrap();
    let cases = [
        ("bytes=0-9", "bytes 1-10/16", 1, 10),
        ("bytes=10-15", "bytes 11-15/16", 11, 15),
        ("bytes=15-15", "bytes 14-14/16", 14, 14),
    ];
    for (range, content_range, first, last) in cases {
        let resp = get(origin.addr(), "/shift/16/s", &[("Range", range)]).unwrap();
        assert_eq!(resp.status, 206);
        assert_eq!(resp.header("content-range"), Some(content_range), "{range}");
        assert_eq!(resp.body, object_bytes("s", first, last), "{range}");
    }
}

#[test]
fn nocr_omits_content_range() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(origin.addr(), "/nocr/100/n", &[("Range", "bytes=10-19")]).unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), None);
    assert_eq!(resp.body, object_bytes("n", 10, 19));
}

#[test]
fn chunked_streams_whole_object_without_length_or_etag() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(origin.addr(), "/chunked/40000/c", &[("Range", "bytes=0-9")]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("etag"), None);
    assert!(resp.complete);
    assert_eq!(resp.body, object_bytes("c", 0, 39_999));
}

#[test]
fn changing_validators_and_lengths() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let mut twice = |target: &str| {
        let a = conn
            .request("GET", target, &[("Range", "bytes=0-0")], None)
            .unwrap();
        let b = conn
            .request(
                "GET",
                &format!("{target}?again=1"),
                &[("Range", "bytes=0-0")],
                None,
            )
            .unwrap();
        (a, b)
    };
    let (a, b) = twice("/etag-changes/100/e");
    assert_ne!(a.header("etag"), b.header("etag"));
    assert!(a.header("etag").unwrap().starts_with("\"v1-"));
    let (a, b) = twice("/lm-changes/100/l");
    assert_eq!(a.header("etag"), b.header("etag"));
    assert_eq!(
        a.header("last-modified"),
        Some("Tue, 15 Nov 1994 08:12:32 GMT")
    );
    assert_eq!(
        b.header("last-modified"),
        Some("Tue, 15 Nov 1994 08:12:33 GMT")
    );
    let (a, b) = twice("/len-changes/100/n");
    assert_eq!(a.header("content-range"), Some("bytes 0-0/101"));
    assert_eq!(b.header("content-range"), Some("bytes 0-0/102"));
    let (a, b) = twice("/obj/100/o");
    assert_eq!(a.headers, b.headers);
}

#[test]
fn status_mode_answers_the_code() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let resp = conn.request("GET", "/status/503/x", &[], None).unwrap();
    assert_eq!(
        (resp.status, resp.body.as_slice()),
        (503, b"status 503\n".as_slice())
    );
    for code in [304, 204] {
        let resp = conn
            .request("GET", &format!("/status/{code}/x"), &[], None)
            .unwrap();
        assert_eq!(resp.status, code);
        assert!(resp.body.is_empty() && resp.header("content-length").is_none());
    }
    // Still in step after the bodiless answers.
    assert_eq!(
        conn.request("GET", "/obj/3/x", &[], None).unwrap().body,
        object_bytes("x", 0, 2)
    );
    assert_eq!(origin.connections_accepted(), 1);
}

#[test]
fn echo_returns_the_request_body() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let resp = conn
        .request("POST", "/echo/any?q=1", &[], Some(b"hello body"))
        .unwrap();
    assert_eq!(resp.body, b"hello body");
    assert_eq!(resp.header("x-echo-method"), Some("POST"));
    assert_eq!(resp.header("x-echo-target"), Some("/echo/any?q=1"));
    assert_eq!(resp.header("x-echo-body-len"), Some("10"));
    let chunked = conn
        .raw(b"PUT /echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(chunked.body, b"abcde");
    assert_eq!(origin.requests()[1].body, b"abcde");
}

#[test]
fn delay_ms_delays_the_head() {
    let origin = DemoOrigin::start().unwrap();
    let start = Instant::now();
    let resp = get(origin.addr(), "/obj/10/d?delay_ms=150", &[]).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.body, object_bytes("d", 0, 9));
}

#[test]
fn requests_are_recorded_and_cleared() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(
        origin.addr(),
        "/obj/100/r?x=1",
        &[("Range", "bytes=1-2"), ("X-Variant", "blue")],
    )
    .unwrap();
    assert_eq!(resp.header("x-origin-variant"), Some("blue"));
    get(origin.addr(), "/obj/100/r", &[]).unwrap();
    let reqs = origin.requests();
    assert_eq!(origin.request_count(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("GET", "/obj/100/r?x=1")
    );
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=1-2"));
    assert_eq!(reqs[0].header("x-variant"), Some("blue"));
    assert_eq!(reqs[1].range, None);
    assert_eq!((reqs[0].connection, reqs[1].connection), (1, 2));
    origin.clear();
    assert_eq!(origin.request_count(), 0);
    // Both answers' threads may still be leaving their request counts (a
    // loaded machine made that happen twice in 2026-12-06's runs).
    assert!(origin.peak_concurrency() <= 2);
}

#[test]
fn peak_concurrency_counts_overlapping_requests() {
    let origin = DemoOrigin::start().unwrap();
    let addr = origin.addr();
    let workers: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || get(addr, "/obj/10/p?delay_ms=300", &[]).unwrap()))
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap().status, 200);
    }
    assert!(
        origin.peak_concurrency() >= 2,
        "peak {}",
        origin.peak_concurrency()
    );
    assert_eq!(origin.connections_accepted(), 3);
}

#[test]
fn bad_input_answers_400_or_404_without_panicking() {
    let origin = DemoOrigin::start().unwrap();
    for target in [
        "/nope/10/x",
        "/obj/ten/x",
        "/obj/10",
        "/",
        "/status/99/x",
        "/status/abc/x",
    ] {
        assert_eq!(
            get(origin.addr(), target, &[]).unwrap().status,
            404,
            "{target}"
        );
    }
    let post = HttpConnection::connect(origin.addr())
        .unwrap()
        .request("POST", "/obj/10/x", &[], Some(b""))
        .unwrap();
    assert_eq!(post.status, 405);
    for wire in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        let mut conn = HttpConnection::connect(origin.addr()).unwrap();
        let resp = conn.raw(wire).unwrap();
        assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(wire));
        assert_eq!(resp.header("connection"), Some("close"));
    }
    assert_eq!(get(origin.addr(), "/obj/1/ok", &[]).unwrap().status, 200);
}

#[test]
fn drop_stops_accepting() {
    let origin = DemoOrigin::start().unwrap();
    let addr = origin.addr();
    drop(origin);
    assert!(get(addr, "/obj/1/x", &[]).is_err());
}

#[test]
fn a_range_is_answered_and_recorded() {
    let origin = DemoOrigin::start().unwrap();
    let resp = crate::demo::client::get(
        origin.addr(),
        "/obj/1000/a.bin",
        &[("Range", "bytes=10-19")],
    )
    .unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(resp.body, object_bytes("a.bin", 10, 19));
    assert_eq!(origin.requests()[0].range.as_deref(), Some("bytes=10-19"));
}

#[test]
fn cap_and_widen_answer_another_range() {
    let origin = DemoOrigin::start().unwrap();
    let range = [("Range", "bytes=10-29")];
    let capped = get(origin.addr(), "/obj/100/w?cap=5", &range).unwrap();
    assert_eq!(capped.status, 206);
    assert_eq!(capped.header("content-range"), Some("bytes 10-14/100"));
    assert_eq!(capped.body, object_bytes("w", 10, 14));
    let widened = get(origin.addr(), "/obj/100/w?widen=15", &range).unwrap();
    assert_eq!(widened.header("content-range"), Some("bytes 0-44/100"));
    assert_eq!(widened.body, object_bytes("w", 0, 44));
}
