//! Origin faults, pass-through and bad client input, end to end.
//!
//! Every test runs a real demo origin and a real edgeslice on `127.0.0.1:0`.
//! Objects are tiny (16 bytes, 4-byte slices) so each fault lands on a known
//! slice: the probe (slice 0 or the first wanted) fails before the response
//! head and must become a 502; a later slice fails after it and must abort the
//! connection with a body shorter than its Content-Length, never one carrying
//! bytes of a second version.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{
    object_bytes, raw_once, read_some, Harness, HttpConnection, HttpResponse, OriginRequest, Setup,
};
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

/// Slice size of the 16-byte fault objects: four slices each.
const S: u64 = 4;

/// Header fields that describe one connection and must never be relayed
/// (RFC 9110 section 7.6.1), besides `Connection: close` which the proxy
/// may add on its own account.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn assert_no_hop_by_hop(resp: &HttpResponse, what: &str) {
    for name in HOP_BY_HOP {
        assert_eq!(resp.header(name), None, "{what}: {name} relayed");
    }
    if let Some(conn) = resp.header("connection") {
        assert!(
            conn.eq_ignore_ascii_case("close") || conn.eq_ignore_ascii_case("keep-alive"),
            "{what}: got Connection: {conn:?}, expected none, close or keep-alive"
        );
    }
}

/// `body` is the start of object `name` (of `len` bytes) and no longer than `max`.
fn assert_object_prefix(body: &[u8], name: &str, len: u64, max: usize, what: &str) {
    assert!(
        body.len() <= max,
        "{what}: got {} body bytes, expected at most {max}",
        body.len()
    );
    assert!(
        (body.len() as u64) < len,
        "{what}: got the whole {len}-byte object, expected a cut body"
    );
    let expected = match body.len() as u64 {
        0 => Vec::new(),
        n => object_bytes(name, 0, n - 1),
    };
    assert_eq!(
        body,
        expected.as_slice(),
        "{what}: delivered bytes are not the object's first bytes"
    );
}

/// A 502 from a failure found before the response head: short plain text, closed.
fn assert_bad_gateway(resp: &HttpResponse, what: &str) {
    assert_eq!(resp.status, 502, "{what}");
    assert!(resp.complete, "{what}: the 502 body itself was cut");
    assert_eq!(resp.header("content-type"), Some("text/plain"), "{what}");
    assert!(
        !resp.body.is_empty() && resp.body.len() < 200,
        "{what}: got a {}-byte body, expected a short explanation",
        resp.body.len()
    );
    assert!(
        resp.body.is_ascii(),
        "{what}: body is not plain text: {:?}",
        resp.body
    );
    assert_eq!(resp.header("connection"), Some("close"), "{what}");
}

/// A normal sliced GET on a fresh connection: the proxy is still serving.
fn assert_still_serving(h: &Harness, what: &str) {
    let resp = h.get("/obj/16/alive", &[]);
    assert_eq!(resp.status, 200, "{what}: proxy stopped serving");
    assert!(resp.complete, "{what}");
    assert_eq!(resp.body, object_bytes("alive", 0, 15), "{what}");
}

/// The one request the origin saw since the last `clear`.
fn single_origin_request(h: &Harness, what: &str) -> OriginRequest {
    let mut seen = h.origin.requests();
    let lines: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {} range={:?}", r.method, r.target, r.range))
        .collect();
    assert_eq!(seen.len(), 1, "{what}: origin saw {lines:?}");
    seen.remove(0)
}

/// The object changes between the probe and a later slice, after the 200
/// head went out: the connection is aborted, nothing of a second version is
/// delivered, and the proxy keeps serving.
#[test]
fn object_change_after_head_aborts_with_a_prefix_of_the_first_version() {
    // (target, name, length the probe reports)
    let cases = [
        ("/etag-changes/16/x", "x", 16),
        ("/lm-changes/16/x", "x", 16),
        // The n-th request of len-changes reports 16 + n bytes.
        ("/len-changes/16/x", "x", 17),
    ];
    for (target, name, len) in cases {
        let h = Harness::with_slices(S);
        let resp = h.get(target, &[]);
        assert_eq!(resp.status, 200, "{target}: the probe checked out");
        assert_eq!(
            resp.header("content-length"),
            Some(len.to_string().as_str()),
            "{target}"
        );
        assert!(!resp.complete, "{target}: a changed object was not aborted");
        // Every slice after the probe mismatches: only the probe's bytes may pass.
        assert_object_prefix(&resp.body, name, len, S as usize, target);
        let ranges = h.origin_ranges();
        assert_eq!(
            ranges.first().map(String::as_str),
            Some("bytes=0-3"),
            "{target}: probe first"
        );
        assert_still_serving(&h, target);
    }
}

/// A probe whose answer does not check out is a 502 before any head.
#[test]
fn probe_mismatch_is_bad_gateway_before_the_head() {
    // (target, client Range, probe Range the origin must see)
    let cases = [
        ("/shift/16/x", None, "bytes=0-3"),
        ("/nocr/16/x", None, "bytes=0-3"),
        // The probe is the slice holding the first wanted byte: slice 2.
        ("/shift/16/x", Some("bytes=8-15"), "bytes=8-11"),
        ("/nocr/16/x", Some("bytes=9-"), "bytes=8-11"),
    ];
    for (target, range, probe) in cases {
        let what = format!("{target} Range {range:?}");
        let h = Harness::with_slices(S);
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let mut conn = HttpConnection::connect(h.addr()).unwrap();
        let resp = conn.request("GET", target, &headers, None).unwrap();
        assert_bad_gateway(&resp, &what);
        assert_eq!(resp.header("content-range"), None, "{what}");
        // No slice beyond the failed probe was asked for.
        let ranges = h.origin_ranges();
        assert!(
            !ranges.is_empty() && ranges.iter().all(|r| r == probe),
            "{what}: origin saw {ranges:?}, expected only {probe}"
        );
        assert!(
            conn.request("GET", "/obj/16/alive", &[], None).is_err(),
            "{what}: connection left open after a 502"
        );
        assert_still_serving(&h, &what);
    }
}

/// The probe's head checks out but its body is cut: the 200 head is out, so
/// the connection is aborted after the correct bytes that did arrive.
#[test]
fn truncated_probe_body_aborts_after_the_head() {
    let h = Harness::with_slices(S);
    let resp = h.get("/truncate/16/x", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("16"));
    assert!(!resp.complete, "a cut slice was passed off as complete");
    // Slice 0 carries only its first half; nothing past it can follow in order.
    assert_object_prefix(&resp.body, "x", 16, (S / 2) as usize, "/truncate/16/x");
    assert_still_serving(&h, "after truncate");
}

/// An object that fits in the probe has no later slice to disagree with.
#[test]
fn single_slice_object_cannot_mismatch() {
    let h = Harness::with_slices(S);
    let resp = h.get("/etag-changes/3/x", &[]);
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(resp.body, object_bytes("x", 0, 2));
    assert_eq!(h.origin_ranges(), ["bytes=0-3"]);
}

/// An origin that ignores Range answers 200: relayed whole, one request.
#[test]
fn origin_ignoring_range_is_relayed_whole() {
    for range in [None, Some("bytes=2-5")] {
        let h = Harness::with_slices(S);
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let resp = h.get("/norange/16/n", &headers);
        assert_eq!(resp.status, 200, "Range {range:?}");
        assert!(resp.complete, "Range {range:?}");
        assert_eq!(resp.body, object_bytes("n", 0, 15), "Range {range:?}");
        assert_eq!(resp.header("content-range"), None, "Range {range:?}");
        assert_eq!(h.origin.request_count(), 1, "Range {range:?}");
        assert_no_hop_by_hop(&resp, "norange");
    }
}

/// A chunked origin answer (no length) goes chunked to HTTP/1.1 and
/// close-delimited to HTTP/1.0.
#[test]
fn chunked_origin_is_relayed_by_client_version() {
    let h = Harness::with_slices(S);
    let expected = object_bytes("c", 0, 99_999);

    let resp = h.get("/chunked/100000/c", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.header("content-length"), None);
    assert!(resp.complete, "chunked terminator missing");
    assert_eq!(resp.body.len(), expected.len());
    assert!(resp.body == expected, "HTTP/1.1 chunked body differs");

    let resp = raw_once(h.addr(), b"GET /chunked/100000/c HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("transfer-encoding"),
        None,
        "HTTP/1.0 got chunked"
    );
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.body.len(), expected.len());
    assert!(
        resp.body == expected,
        "HTTP/1.0 close-delimited body differs"
    );
    assert_no_hop_by_hop(&resp, "chunked to HTTP/1.0");
}

/// Non-206 probe answers are relayed as the origin gave them, after one request.
#[test]
fn probe_statuses_are_relayed() {
    let h = Harness::with_slices(S);
    // (code, expected body)
    let cases: [(u16, &[u8]); 4] = [
        (404, b"status 404\n"),
        (500, b"status 500\n"),
        (304, b""),
        (412, b"status 412\n"),
    ];
    for (code, body) in cases {
        h.origin.clear();
        let target = format!("/status/{code}/x");
        let resp = h.get(&target, &[]);
        assert_eq!(resp.status, code, "{target}");
        assert!(resp.complete, "{target}");
        assert_eq!(resp.body, body, "{target}");
        // A 5xx probe is retried (max_retries = 3) before it is relayed.
        let attempts = if code >= 500 { 4 } else { 1 };
        assert_eq!(h.origin.request_count(), attempts, "{target}");
        assert_no_hop_by_hop(&resp, &target);
    }

    // A relayed 404 leaves the connection usable.
    let mut conn = HttpConnection::connect(h.addr()).unwrap();
    let first = conn.request("GET", "/status/404/x", &[], None).unwrap();
    assert_eq!(first.status, 404);
    let second = conn
        .request("GET", "/obj/16/after-404", &[], None)
        .expect("keep-alive after a 404");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, object_bytes("after-404", 0, 15));
}

/// Methods other than GET/HEAD reach the origin with their bodies, unsliced.
#[test]
fn other_methods_pass_through_with_their_bodies() {
    let h = Harness::with_slices(S);
    let mut conn = HttpConnection::connect(h.addr()).unwrap();

    let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
    let resp = conn.request("POST", "/echo/0/x", &[], Some(&body)).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(resp.header("x-echo-method"), Some("POST"));
    assert_eq!(resp.header("x-echo-body-len"), Some("102400"));
    assert!(resp.body == body, "POST body not echoed");
    let seen = single_origin_request(&h, "POST");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/echo/0/x");
    assert_eq!(seen.range, None, "POST was sliced");
    assert!(seen.body == body, "origin got a different POST body");

    h.origin.clear();
    let resp = conn
        .raw(
            b"PUT /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello world");
    assert_eq!(resp.header("x-echo-method"), Some("PUT"));
    let seen = single_origin_request(&h, "PUT");
    assert_eq!(
        (seen.method.as_str(), seen.body.as_slice()),
        ("PUT", &b"hello world"[..])
    );
    assert_eq!(seen.range, None);

    h.origin.clear();
    let resp = conn.request("DELETE", "/echo/0/x", &[], None).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("x-echo-method"), Some("DELETE"));
    let seen = single_origin_request(&h, "DELETE");
    assert_eq!(seen.method, "DELETE");
    assert!(seen.body.is_empty());

    // Still in step on the same connection.
    let resp = conn
        .request("GET", "/obj/16/after-pass", &[], None)
        .expect("keep-alive after pass-through");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("after-pass", 0, 15));
}

/// Malformed client requests get a 4xx, never reach the origin, and the
/// single worker goes on serving.
#[test]
fn bad_client_input_gets_a_4xx_and_the_worker_survives() {
    // One worker: a panic would take the only listener down with it.
    let h = Harness::start(Setup {
        slice_size: S,
        workers: 1,
        ..Setup::default()
    });
    let huge = format!(
        "GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(65 * 1024)
    );
    // (what, wire, expected status)
    let cases: [(&str, &[u8], u16); 5] = [
        ("malformed request line", b"GARBAGE\r\n\r\n", 400),
        (
            "header without a colon",
            b"GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n",
            400,
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        (
            "conflicting Content-Length values",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
              Content-Length: 6\r\n\r\nhello!",
            400,
        ),
        ("request head over 64 KiB", huge.as_bytes(), 431),
    ];
    for (what, wire, status) in cases {
        h.origin.clear();
        let resp = raw_once(h.addr(), wire);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        assert_eq!(h.origin.request_count(), 0, "{what}: reached the origin");
        assert_still_serving(&h, what);
    }
}

/// Nothing listens at the origin's address: 502 with a short body.
#[test]
fn unreachable_origin_is_bad_gateway() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{closed}\"\nconnect_timeout_ms = 2000\nread_timeout_ms = 2000\n\
         [slice]\nslice_size = {S}\n[cache]\nenabled = false\n"
    );
    let config = Config::from_toml(&text).expect("test config is valid");
    let server = Server::start(&config).expect("edgeslice starts");
    for (i, target) in ["/obj/16/x", "/status/404/x"].into_iter().enumerate() {
        let started = Instant::now();
        let resp = common::get(server.local_addr(), target, &[]).expect("an answer");
        if i > 0 && resp.status == 503 {
            // Retries of the first request opened the circuit breaker: fail fast.
            assert!(resp.complete, "{target}");
        } else {
            assert_bad_gateway(&resp, target);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{target}: a refused connection took {:?}",
            started.elapsed()
        );
    }
    server.shutdown();
}

/// Bytes are streamed as they arrive: the client sees the first half of a
/// one-slice object while the origin still holds back the second half.
#[test]
fn body_streams_before_the_origin_finishes() {
    const LEN: usize = 2_000_000;
    const STALL: Duration = Duration::from_millis(1500);
    let h = Harness::with_slices(4 << 20);
    let mut stream = TcpStream::connect(h.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /stall/2000000/s?stall_ms=1500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let sent = Instant::now();

    let mut buf = Vec::with_capacity(LEN + 1024);
    let mut piece = vec![0u8; 64 * 1024];
    let (head_end, first_byte_at) = loop {
        let n = read_some(&mut stream, &mut piece).expect("read head");
        assert!(n > 0, "closed before the first body byte");
        buf.extend_from_slice(&piece[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() > end + 4 {
                break (end + 4, sent.elapsed());
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "head: {head}");
    assert!(head.contains("content-length: 2000000\r\n"), "head: {head}");
    assert!(
        first_byte_at < Duration::from_millis(1400),
        "first body byte after {first_byte_at:?}, expected before the {STALL:?} stall ends"
    );

    let mut body = buf.split_off(head_end);
    while body.len() < LEN {
        match stream.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the body: {e}"),
        }
    }
    let total = sent.elapsed();
    assert_eq!(body.len(), LEN, "body length");
    assert!(
        body == object_bytes("s", 0, LEN as u64 - 1),
        "body bytes differ"
    );
    assert!(
        total >= STALL,
        "whole body after {total:?}, expected the origin's {STALL:?} stall"
    );
}

/// Sliced answers advertise byte ranges and carry only end-to-end headers.
#[test]
fn sliced_answers_carry_accept_ranges_and_no_hop_by_hop() {
    let h = Harness::with_slices(S);
    // (Range, expected status, first, last)
    let cases = [
        (None, 200, 0, 15),
        (Some("bytes=5-10"), 206, 5, 10),
        (Some("bytes=-3"), 206, 13, 15),
    ];
    for (range, status, first, last) in cases {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let resp = h.get("/obj/16/hdr", &headers);
        let what = format!("Range {range:?}");
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.body, object_bytes("hdr", first, last), "{what}");
        assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{what}");
        assert_eq!(resp.header("transfer-encoding"), None, "{what}");
        let lengths = resp
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .count();
        assert_eq!(lengths, 1, "{what}: one Content-Length");
        assert_no_hop_by_hop(&resp, &what);
    }
}

/// Slices after the first carry If-Match with the probe's ETag, so the origin
/// itself refuses another version (412): the transfer is aborted as for any
/// version mismatch. With `origin_if_match = false` no If-Match is sent.
#[test]
fn later_slices_ask_the_origin_to_refuse_another_version() {
    let h = Harness::with_slices(4);
    let resp = h.get("/etag-changes/16/im", &[]);
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "a changed object must not arrive whole");
    let requests = h.origin.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests[0].header("if-match").is_none(),
        "the probe has no If-Match"
    );
    let probe_etag = "\"v1-10-";
    for r in &requests[1..] {
        let tag = r.header("if-match").expect("later slices carry If-Match");
        assert!(
            tag.starts_with(probe_etag),
            "If-Match {tag} is not the probe's ETag"
        );
    }

    let h = Harness::with_slices(4);
    let same = h.get("/obj/16/im", &[]);
    assert_eq!(same.status, 200);
    assert!(same.complete);
    assert_eq!(same.body, object_bytes("im", 0, 15));
    let etag = same.header("etag").unwrap().to_string();
    assert!(h.origin.requests()[1..]
        .iter()
        .all(|r| r.header("if-match") == Some(etag.as_str())));

    let origin = common::DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let config = common::config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\norigin_if_match = false\n");
    let config = Config::from_toml(&config).unwrap();
    let server = Server::start(&config).unwrap();
    let resp = common::get(server.local_addr(), "/obj/16/off", &[]).unwrap();
    assert_eq!(resp.body, object_bytes("off", 0, 15));
    assert_eq!(origin.request_count(), 4);
    assert!(origin
        .requests()
        .iter()
        .all(|r| r.header("if-match").is_none()));
    server.shutdown();
}
