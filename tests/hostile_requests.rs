//! Hostile clients (review 2026-12-05, tests T1-T3): what one client sends
//! never reaches another client's answer, the origin's connections or the
//! cache. Each test starts a real origin and a real edgeslice on 127.0.0.1.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::cache::{cached, dir_guard};
use common::h2c;
use common::scripted::{self, Edge};
use common::{get, object_bytes, raw_once, Setup};

/// The origin never sees a GET or HEAD with framing headers.
fn assert_no_framing_on_bodiless(h: &Edge, what: &str) {
    for r in h.origin.requests() {
        if r.method == "GET" || r.method == "HEAD" {
            for name in ["content-length", "transfer-encoding"] {
                assert!(
                    r.header(name).is_none(),
                    "{what}: the origin got {} {} with {name}: {:?}",
                    r.method,
                    r.target,
                    r.header(name)
                );
            }
        }
    }
}

/// Fifty clients ask distinct cold objects at once; each gets its own bytes.
fn fifty_cold_objects_are_exact(h: &Edge, tag: &str) {
    let addr = h.addr();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let tag = tag.to_string();
            thread::spawn(move || {
                let name = format!("{tag}-{i}");
                let target = format!("/obj/200000/{name}");
                let resp = get(addr, &target, &[]).expect("a response");
                (name, resp)
            })
        })
        .collect();
    for h in handles {
        let (name, resp) = h.join().unwrap();
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.complete, "{name}");
        assert!(
            resp.body == object_bytes(&name, 0, 199_999),
            "{name}: not its own bytes"
        );
    }
}

fn one_worker_cached(name: &str) -> Setup {
    Setup {
        workers: 1,
        ..cached(name, 64 * 1024)
    }
}

/// T1 (C1): a GET with a declared body is refused, and its Content-Length
/// never reaches a pooled origin connection, where an origin that answers
/// first and discards the body afterwards (nginx) would eat the next
/// client's request.
#[test]
fn a_get_with_a_body_is_refused_and_desyncs_nothing() {
    let setup = one_worker_cached("t1-h1");
    let _dir = dir_guard(&setup);
    let h = Edge::start(scripted::objects(), &setup);
    let mut a = TcpStream::connect(h.addr()).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = b"GET /obj/1048576/a HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n".to_vec();
    wire.extend([b'x'; 40]);
    a.write_all(&wire).unwrap();
    fifty_cold_objects_are_exact(&h, "t1");
    let mut conn = common::HttpConnection::over(a);
    let resp = conn.raw(b"").expect("an answer to the GET with a body");
    assert_eq!(resp.status, 400, "a GET with a body");
    assert_eq!(resp.header("connection"), Some("close"));
    assert_no_framing_on_bodiless(&h, "GET with Content-Length: 40");

    // HEAD and chunked GET alike; Content-Length: 0 is no body and is served.
    for wire in [
        &b"HEAD /obj/100/b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"GET /obj/100/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ] {
        let resp = raw_once(h.addr(), wire);
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(wire));
    }
    let resp = raw_once(
        h.addr(),
        b"GET /obj/100/d HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("d", 0, 99));
    assert_no_framing_on_bodiless(&h, "GET with Content-Length: 0");
}

/// T1 over HTTP/2: HEADERS(GET, content-length: 40) + DATA(40).
#[test]
fn an_h2_get_with_a_body_is_refused_and_desyncs_nothing() {
    let setup = one_worker_cached("t1-h2");
    let _dir = dir_guard(&setup);
    let h = Edge::start(scripted::objects(), &setup);
    let status = h2c::block_on(async {
        let client = h2c::connect(h.addr()).await;
        let resp = h2c::send(
            &client,
            http::Method::GET,
            "/obj/1048576/a",
            &[("content-length", "40")],
            Some(bytes::Bytes::from(vec![b'x'; 40])),
        )
        .await
        .expect("an answer");
        resp.status
    });
    assert_eq!(status, 400, "an h2 GET with a body");
    fifty_cold_objects_are_exact(&h, "t1h2");
    assert_no_framing_on_bodiless(&h, "h2 GET with content-length: 40");
}
