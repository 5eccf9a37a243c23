//! HTTP/2 to clients (h2c with prior knowledge on the plain listener): every
//! request form answered as over HTTP/1.1 by the same driver, many streams
//! on one connection, flow control that holds a stalled stream to its
//! window, and a reset stream that stops its slice fetches. The attacks are
//! in `h2_attacks.rs`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cache::{cached, dir_guard};
use common::h2c::{self, block_on, connect, connect_with, send};
use common::*;
use edgeslice::config::DriverChoice;
use http::Method;

/// Request headers of a case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// Headers both protocols must agree on.
const SAME: [&str; 4] = ["content-length", "content-range", "content-type", "etag"];

/// Each request form over h2 gets what HTTP/1.1 gets: status, body and
/// framing headers, on a cache miss (h2 first) and a hit (h2 after h1).
#[test]
fn every_request_form_answers_as_over_http1() {
    let setup = cached("h2-forms", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let etag = h
        .get("/obj/100/e.bin", &[])
        .header("etag")
        .unwrap()
        .to_string();
    // (method, target, headers)
    let cases: Vec<(Method, &str, Headers)> = vec![
        (Method::GET, "/obj/100/a.bin", vec![]),
        (
            Method::GET,
            "/obj/100/b.bin",
            vec![("range", "bytes=10-19")],
        ),
        (Method::GET, "/obj/100/c.bin", vec![("range", "bytes=-7")]),
        (Method::GET, "/obj/100/d.bin", vec![("range", "bytes=200-")]),
        (Method::HEAD, "/obj/100/a.bin", vec![]),
        (
            Method::GET,
            "/obj/100/e.bin",
            vec![("if-none-match", &etag)],
        ),
        (
            Method::GET,
            "/obj/100/e.bin",
            vec![("if-match", "\"other\"")],
        ),
        (Method::GET, "/nolen/100/f.bin", vec![]),
        (Method::GET, "/status/404/g", vec![]),
    ];
    for first_h2 in [true, false] {
        for (method, target, headers) in &cases {
            let what = format!("{method} {target} {headers:?} (h2 first: {first_h2})");
            let over_h2 = || {
                block_on(async {
                    let client = connect(h.addr()).await;
                    send(&client, method.clone(), target, headers, None).await
                })
                .unwrap_or_else(|e| panic!("{what}: {e}"))
            };
            let over_h1 = || {
                HttpConnection::connect(h.addr())
                    .and_then(|mut c| c.request(method.as_str(), target, headers, None))
                    .expect("h1 request")
            };
            let (two, one) = if first_h2 {
                let two = over_h2();
                (two, over_h1())
            } else {
                let one = over_h1();
                (over_h2(), one)
            };
            assert_eq!(two.status, one.status, "{what}: status");
            assert_eq!(two.body, one.body, "{what}: body");
            for name in SAME {
                assert_eq!(two.header(name), one.header(name), "{what}: {name}");
            }
        }
        h.origin.clear();
    }
}

/// Several ranges in one request: a multipart answer with every part's bytes.
#[test]
fn multiple_ranges_get_a_multipart_answer() {
    let h = Harness::with_slices(4);
    let resp = block_on(async {
        let client = connect(h.addr()).await;
        h2c::get(&client, "/obj/100/m.bin", &[("range", "bytes=0-1,50-54")]).await
    });
    assert_eq!(resp.status, 206);
    let ctype = resp.header("content-type").unwrap();
    assert!(
        ctype.starts_with("multipart/byteranges; boundary="),
        "{ctype}"
    );
    let body = String::from_utf8_lossy(&resp.body);
    assert!(body.contains("Content-Range: bytes 0-1/100"), "{body}");
    assert!(body.contains("Content-Range: bytes 50-54/100"), "{body}");
    let part = object_bytes("m.bin", 50, 54);
    assert!(resp.body.windows(part.len()).any(|w| w == part));
    assert_eq!(
        resp.header("content-length")
            .map(|n| n.parse::<usize>().unwrap()),
        Some(resp.body.len())
    );
}

/// A POST passes through with its body, with and without a length, larger
/// than the stream window; a body over `max_request_body_bytes` gets 413.
#[test]
fn request_bodies_pass_through_and_their_limit_holds() {
    let h = Harness::start(Setup {
        server: "max_request_body_bytes = \"1MiB\"\nh2_stream_window = 65535".into(),
        ..Setup::default()
    });
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let len = body.len().to_string();
    let big = vec![7u8; (1 << 20) + 1];
    let big_len = big.len().to_string();
    // (headers, body, status, echoed length)
    let cases: Vec<(Headers, Vec<u8>, u16, Option<&str>)> = vec![
        (
            vec![("content-length", &len)],
            body.clone(),
            200,
            Some(&len),
        ),
        (vec![], body.clone(), 200, Some(&len)),
        (vec![], vec![], 200, Some("0")),
        (vec![("content-length", &big_len)], big.clone(), 413, None),
        (vec![], big, 413, None),
    ];
    block_on(async {
        let client = connect(h.addr()).await;
        for (headers, body, status, echoed) in cases {
            let what = format!("{headers:?} {} bytes", body.len());
            let resp = send(
                &client,
                Method::POST,
                "/echo/0/p",
                &headers,
                Some(Bytes::from(body)),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(resp.status, status, "{what}");
            assert_eq!(resp.header("x-echo-body-len"), echoed, "{what}");
        }
    });
}

/// Fifty streams at once on one connection, objects of many sizes around
/// the slice size, some ranged: every body exact, on both drivers.
#[test]
fn many_concurrent_streams_on_one_connection_return_exact_bytes() {
    for driver in [DriverChoice::IoUring, DriverChoice::Legacy] {
        if driver == DriverChoice::IoUring && !monoio::utils::detect_uring() {
            continue;
        }
        fifty_streams(Harness::start(Setup {
            slice_size: 64,
            driver,
            ..Setup::default()
        }));
    }
}

fn fifty_streams(h: Harness) {
    let answers = block_on(async {
        let client = connect(h.addr()).await;
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                let client = client.clone();
                monoio::spawn(async move {
                    let len = 1 + i * 97;
                    let range = format!("bytes={}-", i);
                    let ranged = i % 3 == 0 && i < len;
                    let headers: Vec<(&str, &str)> = if ranged {
                        vec![("range", &range)]
                    } else {
                        vec![]
                    };
                    let target = format!("/obj/{len}/s{i}");
                    let resp = h2c::get(&client, &target, &headers).await;
                    (i, len, ranged, resp)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await);
        }
        answers
    });
    for (i, len, ranged, resp) in answers {
        let first = if ranged { i } else { 0 };
        assert_eq!(resp.status, if ranged { 206 } else { 200 }, "stream {i}");
        assert_eq!(
            resp.body,
            object_bytes(&format!("s{i}"), first, len - 1),
            "stream {i}"
        );
    }
}

/// A stream whose client reads nothing holds its window: the driver stops
/// fetching slices for it (a few past the window of 64 KiB, never the
/// object), and another stream on the same connection is answered meanwhile.
#[test]
fn a_stream_whose_client_does_not_read_holds_at_most_its_window() {
    const SLICE: u64 = 64 * 1024;
    let h = Harness::start(Setup {
        slice_size: SLICE,
        window: 2,
        workers: 1,
        ..Setup::default()
    });
    let slices = 64;
    let target = format!("/obj/{}/stalled", slices * SLICE);
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(65_535)
        .initial_connection_window_size(8 << 20);
    block_on(async {
        let client = connect_with(h.addr(), builder).await;
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("http://t{target}"))
            .body(())
            .unwrap();
        let (stalled, _) = c.send_request(req, true).unwrap();
        let stalled = stalled.await.unwrap();
        assert_eq!(stalled.status(), 200);
        // Never read: the body's window stays closed.
        monoio::time::sleep(Duration::from_millis(300)).await;
        let other = h2c::get(&client, "/obj/1000/other", &[]).await;
        assert_eq!(other.body, object_bytes("other", 0, 999));
        monoio::time::sleep(Duration::from_millis(300)).await;
        let fetched = h
            .origin
            .requests()
            .iter()
            .filter(|r| r.target.contains("stalled"))
            .count();
        assert!(
            fetched <= 8,
            "{fetched} of {slices} slices fetched for a stream that reads nothing"
        );
        drop(stalled);
    });
}

/// A client's RST_STREAM stops the stream's slice fetches at once, as a
/// closed HTTP/1.1 connection does, even while the driver waits on a stalled
/// origin: the request ends within moments, no more slices are asked for,
/// and the connection serves on.
#[test]
fn a_reset_stream_stops_its_slice_fetches() {
    let h = Harness::start(Setup {
        slice_size: 16,
        window: 2,
        workers: 1,
        extra: format!("\n{ADMIN}"),
        ..Setup::default()
    });
    let admin = h.server.admin_addr().unwrap();
    let slices = 40;
    // Every slice answer holds back its second half for 3 s.
    let target = format!("/stall/{}/reset?stall_ms=3000", slices * 16);
    let asked = || {
        h.origin
            .requests()
            .iter()
            .filter(|r| r.target.contains("reset"))
            .count()
    };
    block_on(async {
        let client = connect(h.addr()).await;
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("http://t{target}"))
            .body(())
            .unwrap();
        let (response, _) = c.send_request(req, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(h2c::metric(admin, "edgeslice_requests_in_flight"), 1.0);
        // Dropping the stream's handles sends RST_STREAM(CANCEL).
        drop(response);
        let reset_at = Instant::now();
        while h2c::metric(admin, "edgeslice_requests_in_flight") > 0.0 {
            assert!(
                reset_at.elapsed() < Duration::from_secs(1),
                "the request outlived its reset"
            );
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h2c::metric(admin, "edgeslice_h2_client_resets_total"), 1.0);
        let settled = asked();
        monoio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(asked(), settled, "fetches went on after the reset");
        assert!(settled <= 4, "{settled} of {slices} slices asked for");
        let after = h2c::get(&client, "/obj/16/after", &[]).await;
        assert_eq!(after.body, object_bytes("after", 0, 15));
    });
}

#[test]
fn tiny_slices_go_out_in_data_frames_of_a_useful_size() {
    // 64-byte slices: each part alone would be a 64-byte DATA frame, which
    // a careful client counts as abuse. Parts are joined to 1 KiB at least.
    let h = Harness::start(Setup {
        slice_size: 64,
        ..Setup::default()
    });
    let mut s = h2c::raw_connect(h.addr());
    let block = h2c::get_block("/obj/5000/t");
    s.write_all(&h2c::frame(
        h2c::HEADERS,
        h2c::END_STREAM | h2c::END_HEADERS,
        1,
        &block,
    ))
    .unwrap();
    let (frames, _) = h2c::read_frames(&mut s, Duration::from_millis(1500));
    let data: Vec<&h2c::Frame> = frames
        .iter()
        .filter(|f| f.kind == h2c::DATA && f.stream == 1)
        .collect();
    let body: Vec<u8> = data.iter().flat_map(|f| f.payload.clone()).collect();
    assert!(body == object_bytes("t", 0, 4999), "{} bytes", body.len());
    // Every frame but the one with the body's remainder carries 1 KiB or
    // more; the stream ends with END_STREAM (on an empty frame, or that one).
    let sizes: Vec<usize> = data.iter().map(|f| f.payload.len()).collect();
    let carrying: Vec<usize> = sizes.iter().copied().filter(|n| *n > 0).collect();
    let (_, rest) = carrying.split_last().unwrap();
    assert!(
        rest.iter().all(|n| *n >= 1024),
        "DATA frame sizes {sizes:?}"
    );
    assert!(
        data.last().unwrap().flags & h2c::END_STREAM != 0,
        "{sizes:?}"
    );
}
