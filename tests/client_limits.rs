//! Clients that send too much, too slowly, or stop reading: oversized and
//! malformed requests get a 4xx, slow heads are closed after the header
//! timeout, a client that stops reading is dropped without the object being
//! buffered, and connections over the limit are closed at once.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::rig::*;
use common::{object_bytes, raw_once, read_some, HttpConnection};

/// Requests over a limit get 431/414/413 and bad ones 400, never reach the
/// origin, and the single worker goes on serving; requests exactly at a
/// limit pass.
#[test]
fn oversized_and_malformed_requests_get_a_4xx() {
    let rig = Rig::start(Knobs {
        server: "max_request_head_bytes = 1024\nmax_headers = 8\nmax_url_bytes = 64\n\
                 max_request_body_bytes = 1000"
            .into(),
        ..Knobs::default()
    });
    let headers = |n: usize| -> String {
        // Host plus n - 1 more.
        (1..n).map(|i| format!("X-H{i}: v\r\n")).collect()
    };
    let get_with = |target: &str, extra: &str| -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n").into_bytes()
    };
    let at_url_limit = format!("/obj/16/{}", "u".repeat(64 - 8));
    let over_url_limit = format!("/obj/16/{}", "u".repeat(65 - 8));
    let big_head = get_with("/obj/16/x", &format!("X-Big: {}\r\n", "a".repeat(1100)));
    let body_at_limit = [
        b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n".to_vec(),
        vec![b'b'; 1000],
    ]
    .concat();
    let chunked_over_limit = [
        b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n"
            .to_vec(),
        vec![b'b'; 1001],
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    // (what, wire, expected status, whether it reaches the origin)
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        ("head over max_request_head_bytes", big_head, 431, false),
        (
            "max_headers headers",
            get_with("/obj/16/x", &headers(8)),
            200,
            true,
        ),
        (
            "more than max_headers",
            get_with("/obj/16/x", &headers(9)),
            431,
            false,
        ),
        (
            "target of max_url_bytes",
            get_with(&at_url_limit, ""),
            200,
            true,
        ),
        (
            "target over max_url_bytes",
            get_with(&over_url_limit, ""),
            414,
            false,
        ),
        ("body of max_request_body_bytes", body_at_limit, 200, true),
        (
            // The body itself is not sent: the head alone must be refused.
            "Content-Length over max_request_body_bytes",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1001\r\n\r\n".to_vec(),
            413,
            false,
        ),
        (
            "chunked body over max_request_body_bytes",
            chunked_over_limit,
            413,
            false,
        ),
        (
            "malformed request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "header without a colon",
            b"GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /echo/0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
            false,
        ),
    ];
    for (what, wire, status, reaches_origin) in cases {
        rig.origin.clear();
        let resp = raw_once(rig.addr(), &wire);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        if status >= 400 {
            assert_eq!(resp.header("connection"), Some("close"), "{what}");
        }
        let reached = rig.origin.request_count() > 0;
        assert_eq!(reached, reaches_origin, "{what}: reached the origin");
        rig.assert_still_serving(what);
    }
}

/// Reads until the peer closes; `Err` if it has not within `limit`.
/// Returns the bytes read.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match read_some(stream, &mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("still open after {limit:?}"))
            }
            // Reset or aborted: closed too.
            Err(_) => return Ok(got),
        }
    }
}

/// A client that sends half a request head and stops, or trickles it a
/// byte at a time, is closed after client_header_timeout_ms, and another
/// client is served meanwhile by the same single worker.
#[test]
fn slow_request_heads_are_closed_after_the_header_timeout() {
    let rig = Rig::start(Knobs {
        server: "client_header_timeout_ms = 300".into(),
        ..Knobs::default()
    });
    // Half a head, then silence.
    let started = Instant::now();
    let mut slow = TcpStream::connect(rig.addr()).unwrap();
    slow.write_all(b"GET /obj/16/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    rig.assert_still_serving("while a head is half sent");
    let got = read_until_closed(&mut slow, Duration::from_secs(3)).expect("closed");
    let elapsed = started.elapsed();
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "got {:?}, expected a close (or a 408)",
        String::from_utf8_lossy(&got)
    );
    assert_at_least(elapsed, ms(300), "half a head");
    assert_under(elapsed, Duration::from_secs(3), "half a head");

    // A byte every 50 ms: each byte must not restart the timer; this head
    // would take over 3 s to arrive.
    let wire = b"GET /obj/16/trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut trickle = TcpStream::connect(rig.addr()).unwrap();
    let mut closed_after = None;
    for byte in wire.iter() {
        if trickle.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        thread::sleep(ms(50));
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    // Closed while the trickle went on, not 300 ms after its last byte.
    let elapsed = closed_after.expect("a trickled head still open after 2 s");
    let got = read_until_closed(&mut trickle, Duration::from_secs(3)).expect("closed");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "trickle: got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_at_least(elapsed, ms(300), "trickle");
    assert_eq!(
        rig.requests_for("trickle"),
        0,
        "a trickled head reached the origin"
    );
    rig.assert_still_serving("after the slow clients");
}

/// A client that reads the head and a few bytes of a 50 MiB answer, then
/// stops reading: the proxy does not buffer the object for it (the origin is
/// asked for a handful of slices, not 50), other clients are served, and
/// after client_send_timeout_ms the connection is closed.
#[test]
fn client_that_stops_reading_is_dropped_without_buffering_the_object() {
    const MIB: u64 = 1 << 20;
    const LEN: u64 = 50 * MIB;
    let rig = Rig::start(Knobs {
        slice_size: MIB,
        window: 4,
        server: "client_send_timeout_ms = 300".into(),
        ..Knobs::default()
    });
    // A small receive buffer, set before connecting, keeps the kernel from
    // soaking up megabytes on the client's behalf.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&rig.addr().into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    stalled
        .write_all(b"GET /obj/52428800/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 8192 {
        let n = read_some(&mut stalled, &mut buf).expect("the start of the answer");
        assert!(n > 0, "closed before the first bytes");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&seen[..64])
    );
    // Now stop reading. Other clients are served meanwhile.
    for i in 0..3 {
        rig.assert_still_serving(&format!("while a client stalls ({i})"));
    }
    thread::sleep(Duration::from_millis(2500));
    let asked = rig.requests_for("/big");
    // Resume reading: a proxy that gave up closes after what was in flight.
    let rest = read_until_closed(&mut stalled, Duration::from_secs(20)).expect("closed");
    let mut all = seen;
    all.extend_from_slice(&rest);
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let body = &all[head_end..];
    assert!(
        (body.len() as u64) < LEN,
        "the whole object was delivered: the stalled connection was never closed"
    );
    assert!(
        body == object_bytes("big", 0, body.len() as u64 - 1).as_slice(),
        "the bytes delivered are not the object's first bytes"
    );
    // A slice is asked for only once it is within the window of the slice
    // being delivered: at most the slices the client got (whole or in part)
    // plus the window.
    let delivered_slices = (body.len() as u64).div_ceil(MIB) as usize;
    assert!(
        asked <= delivered_slices + 4 && asked < 50,
        "a stalled client made the proxy ask the origin for {asked} of 50 slices, \
         expected at most the {delivered_slices} it was sent plus the window (4)"
    );
    assert_eq!(
        rig.requests_for("/big"),
        asked,
        "slices asked after the close"
    );
}

/// With max_connections = 2 on one worker, a third connection is closed at
/// once without an answer; once one of the two closes, a new one is served.
#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let rig = Rig::start(Knobs {
        server: "max_connections = 2".into(),
        ..Knobs::default()
    });
    let mut held: Vec<HttpConnection> = (0..2)
        .map(|i| {
            let mut c = HttpConnection::connect(rig.addr()).unwrap();
            let resp = c.request("GET", "/obj/16/held", &[], None).unwrap();
            assert_eq!(resp.status, 200, "held connection {i}");
            c
        })
        .collect();
    let mut third = TcpStream::connect(rig.addr()).unwrap();
    // The write may already fail: the proxy closed it.
    let _ = third.write_all(b"GET /obj/16/third HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let got = read_until_closed(&mut third, Duration::from_secs(5))
        .expect("the third connection is closed at once");
    assert!(
        got.is_empty(),
        "the third connection got an answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    // The held ones still work.
    let resp = held[1].request("GET", "/obj/16/held", &[], None).unwrap();
    assert_eq!(resp.status, 200, "a held connection");
    // Close one; the worker notices and serves a new connection.
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let served = HttpConnection::connect(rig.addr())
            .and_then(|mut c| c.request("GET", "/obj/16/new", &[], None));
        match served {
            Ok(resp) => {
                assert_eq!(resp.status, 200);
                assert!(resp.body == object_bytes("new", 0, 15));
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no new connection served after one of two closed: {e}"
            ),
        }
        thread::sleep(ms(20));
    }
    assert_eq!(
        rig.requests_for("/third"),
        0,
        "the refused connection reached the origin"
    );
}
