//! Tests of the demo client, against canned answers and the demo origin.
use crate::demo::client::*;
use crate::demo::origin::{object_bytes, DemoOrigin};
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

/// A one-shot server that reads one request head, answers `canned`, then closes.
fn canned(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let _ = read_head(&mut reader, MAX_HEAD_BYTES);
        let mut stream = stream;
        let _ = stream.write_all(response);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // Drain so close sends FIN, not RST.
        let _ = reader.read_to_end(&mut Vec::new());
    });
    addr
}

/// (response bytes, method, expected status, expected body, expected complete)
type FramingCase = (&'static [u8], &'static str, u16, &'static [u8], bool);

#[test]
fn framing_cases() {
    let cases: &[FramingCase] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET", 200, b"hello", true),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", "GET", 200, b"hel", false),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil eof", "GET", 200, b"until eof", true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 200, b"", true),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET", 304, b"", true),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "GET", 204, b"", true),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", 200, b"ok", true),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            "GET",
            200,
            b"abcde",
            true,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\nde", "GET", 200, b"abcde", false),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "GET", 200, b"abc", false),
    ];
    for (i, (wire, method, status, body, complete)) in cases.iter().enumerate() {
        let mut conn = HttpConnection::connect(canned(wire)).unwrap();
        let resp = conn.request(method, "/", &[], None).unwrap();
        assert_eq!(resp.status, *status, "case {i}");
        assert_eq!(resp.body, *body, "case {i}");
        assert_eq!(resp.complete, *complete, "case {i}");
    }
}

#[test]
fn closed_before_head_and_bad_head_are_errors() {
    let err = get(canned(b""), "/", &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let err = get(canned(b"NOT HTTP\r\n\r\n"), "/", &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn header_lookup_is_case_insensitive() {
    let resp = get(
        canned(b"HTTP/1.1 200 OK\r\nX-Thing: a\r\nContent-Length: 0\r\n\r\n"),
        "/",
        &[],
    )
    .unwrap();
    assert_eq!(resp.header("x-thing"), Some("a"));
    assert_eq!(resp.header("X-THING"), Some("a"));
    assert_eq!(resp.header("missing"), None);
}

#[test]
fn host_and_content_length_are_added_unless_given() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    conn.request("POST", "/echo/0/a", &[], Some(b"abc"))
        .unwrap();
    conn.request("GET", "/obj/4/a", &[("host", "example.test")], None)
        .unwrap();
    let reqs = origin.requests();
    assert_eq!(reqs[0].header("Host"), Some("127.0.0.1"));
    assert_eq!(reqs[0].header("Content-Length"), Some("3"));
    assert_eq!(reqs[0].body, b"abc");
    assert_eq!(reqs[1].header("host"), Some("example.test"));
    assert_eq!(
        reqs[1]
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
            .count(),
        1
    );
    assert_eq!(reqs[1].header("content-length"), None);
}

#[test]
fn head_then_get_on_one_connection_keeps_framing() {
    let origin = DemoOrigin::start().unwrap();
    let mut conn = HttpConnection::connect(origin.addr()).unwrap();
    let head = conn.request("HEAD", "/obj/1000/h", &[], None).unwrap();
    assert_eq!(head.header("content-length"), Some("1000"));
    assert!(head.body.is_empty() && head.complete);
    let raw_head = conn
        .raw(b"HEAD /obj/10/h HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(raw_head.header("content-length"), Some("10"));
    assert!(raw_head.body.is_empty());
    let full = conn.request("GET", "/obj/1000/h", &[], None).unwrap();
    assert_eq!(full.body, object_bytes("h", 0, 999));
    assert_eq!(origin.connections_accepted(), 1);
}

#[test]
fn cut_body_is_ok_and_incomplete() {
    let origin = DemoOrigin::start().unwrap();
    let resp = get(origin.addr(), "/truncate/100/t", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.complete);
    assert_eq!(resp.body, object_bytes("t", 0, 49));
}
