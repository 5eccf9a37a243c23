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

/// A raw HTTP/2 request with no `:authority` and a `host` field instead.
fn h2_get_with_host_field(addr: std::net::SocketAddr, path: &str, host: &str) -> Vec<h2c::Frame> {
    let mut s = h2c::raw_connect(addr);
    // :method GET (static 2), :scheme http (static 6), :path (literal, name 4),
    // host (literal without indexing, name index 38).
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend([0x0f, 38 - 15, host.len() as u8]);
    block.extend_from_slice(host.as_bytes());
    let flags = h2c::END_HEADERS | h2c::END_STREAM;
    s.write_all(&h2c::frame(h2c::HEADERS, flags, 1, &block))
        .unwrap();
    h2c::read_frames(&mut s, Duration::from_millis(500)).0
}

/// T2 (H2): a Host that is not `host[:port]` is refused, so a client cannot
/// make its request's cache key equal to another path's: `Host: h.test/obj/1000`
/// with `GET /obj/100/x` would be stored under the key of `GET /obj/1000/obj/100/x`.
#[test]
fn a_host_with_a_path_in_it_is_refused_and_poisons_nothing() {
    let setup = cached("t2", 64);
    let _dir = dir_guard(&setup);
    let h = common::Harness::start(setup);
    let first = raw_once(
        h.addr(),
        b"GET /obj/100/x HTTP/1.1\r\nHost: h.test/obj/1000\r\n\r\n",
    );
    assert_eq!(first.status, 400, "Host: h.test/obj/1000");
    // The h2 form: no :authority, a host field.
    let frames = h2_get_with_host_field(h.addr(), "/obj/100/x", "h.test/obj/1000");
    let head = frames
        .iter()
        .find(|f| f.kind == h2c::HEADERS && f.stream == 1)
        .expect("an answer on stream 1");
    assert_eq!(
        head.payload[0], 0x8c,
        "h2: expected :status 400 (static index 12)"
    );
    let second = common::get_host(h.addr(), "/obj/1000/obj/100/x", "h.test");
    assert_eq!(second.status, 200);
    assert_eq!(second.body.len(), 1000, "its own length, not x's");
    assert!(
        second.body == object_bytes("obj/100/x", 0, 999),
        "its own bytes"
    );
    // Hosts RFC 9110 allows are served.
    for host in [
        "h.test",
        "h.test:8080",
        "127.0.0.1",
        "[::1]:80",
        "a-b_c~d.e%41",
    ] {
        let resp = common::get_host(h.addr(), "/obj/10/ok", host);
        assert_eq!(resp.status, 200, "Host: {host}");
    }
    for host in [
        "h.test/x",
        "u@h.test",
        "h.test:8x",
        "[::1",
        "h test",
        "h.test?q",
        "h#f",
    ] {
        let resp = raw_once(
            h.addr(),
            format!("GET /obj/10/no HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(resp.status, 400, "Host: {host}");
    }
    for r in h.origin.requests() {
        let host = r.header("host").unwrap_or("");
        assert!(
            !host.contains('/') && !host.contains('@'),
            "the origin got Host: {host}"
        );
    }
}

/// T3 (H3): a header the client names in `Connection` is removed before the
/// origin sees the request, so it cannot select the variant the answer is
/// stored as: the variant is keyed on what the origin saw.
#[test]
fn a_connection_nominated_header_does_not_choose_the_variant() {
    let setup = cached("t3", 4);
    let _dir = dir_guard(&setup);
    let h = common::Harness::start(setup);
    let target = "/obj/16/v?vary=X-Variant";
    let sneaky = h.get(target, &[("X-Variant", "red"), ("Connection", "x-variant")]);
    assert_eq!(sneaky.status, 200);
    assert_eq!(sneaky.header("x-origin-variant"), Some("none"));
    let red = h.get(target, &[("X-Variant", "red")]);
    assert_eq!(
        red.header("x-origin-variant"),
        Some("red"),
        "the red variant"
    );
    let plain = h.get(target, &[]);
    assert_eq!(plain.header("x-origin-variant"), Some("none"));
    assert_eq!(
        plain.header("x-cache"),
        Some("HIT"),
        "stored as the plain variant"
    );
}

/// L8: variant values that are not UTF-8 are told apart (they all became
/// U+FFFD and shared one variant), and `Connection: host` (H3) still sends
/// the origin a Host.
#[test]
fn variants_of_raw_bytes_are_their_own_and_host_is_always_sent() {
    let setup = cached("l8", 4);
    let _dir = dir_guard(&setup);
    let h = common::Harness::start(setup);
    let ask = |value: &[u8]| {
        let mut wire =
            b"GET /obj/16/raw?vary=X-Variant HTTP/1.1\r\nHost: t\r\nX-Variant: ".to_vec();
        wire.extend_from_slice(value);
        wire.extend_from_slice(b"\r\n\r\n");
        raw_once(h.addr(), &wire)
    };
    assert_eq!(ask(b"\xff").header("x-cache"), Some("MISS"));
    assert_eq!(
        ask(b"\xfe").header("x-cache"),
        Some("MISS"),
        "another variant"
    );
    assert_eq!(ask(b"\xff").header("x-cache"), Some("HIT"));
    h.origin.clear();
    let resp = h.get("/obj/16/nohost", &[("Host", "t"), ("Connection", "host")]);
    assert_eq!(resp.status, 200);
    let seen = h.origin.requests();
    assert!(
        seen.iter().all(|r| r.header("host") == Some("t")),
        "the origin got {:?}",
        seen.iter().map(|r| r.header("host")).collect::<Vec<_>>()
    );
}

/// T9 (M3): a request body that trickles (1 byte, then nothing) is cut off
/// at client_body_timeout_ms with a 408, over HTTP/1.1 and HTTP/2, and the
/// origin connection it was being forwarded on is closed. On f2b8ad1 both
/// were held for as long as the client cared to.
#[test]
fn a_trickling_request_body_is_cut_off() {
    let setup = Setup {
        workers: 1,
        server: "client_body_timeout_ms = 500\n".into(),
        ..Setup::default()
    };
    let edge = Edge::start(scripted::objects(), &setup);
    let mut s = TcpStream::connect(edge.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nx")
        .unwrap();
    let started = std::time::Instant::now();
    let resp = common::HttpConnection::over(s).raw(b"").expect("an answer");
    assert_eq!(resp.status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    common::wait_for(
        Duration::from_secs(5),
        "the origin connection closed",
        || (edge.origin.closed() >= 1).then_some(()),
    );

    // HTTP/2: HEADERS without END_STREAM, one DATA byte, then nothing.
    let status = h2c::block_on(async {
        let client = h2c::connect(edge.addr()).await;
        let mut client = client.ready().await.unwrap();
        let req = http::Request::post("http://t/up2").body(()).unwrap();
        let (response, mut body) = client.send_request(req, false).unwrap();
        body.send_data(bytes::Bytes::from_static(b"x"), false)
            .unwrap();
        let answer = monoio::time::timeout(Duration::from_secs(5), response).await;
        answer
            .expect("an answer within 5 s")
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.expect("an answer, not a reset"), 408, "h2");
    common::wait_for(
        Duration::from_secs(5),
        "the origin connections closed",
        || (edge.origin.closed() >= 2).then_some(()),
    );
}

/// M7: with `server.server_names`, a Host the node does not serve gets 421
/// and nothing reaches the origin: the node relays no arbitrary virtual
/// host (on f2b8ad1 any Host went to the default origin).
#[test]
fn hosts_a_node_does_not_serve_get_421() {
    let setup = Setup {
        server: "server_names = [\"video.test\", \"*.cdn.test\"]\n".into(),
        ..Setup::default()
    };
    let h = common::Harness::start(setup);
    for host in [
        "video.test",
        "VIDEO.test:8080",
        "a.cdn.test",
        "x.y.cdn.test",
    ] {
        let resp = common::get_host(h.addr(), "/obj/10/ok", host);
        assert_eq!(resp.status, 200, "Host: {host}");
    }
    h.origin.clear();
    for host in ["admin.internal", "cdn.test", "video.test.evil", "127.0.0.1"] {
        let resp = common::get_host(h.addr(), "/obj/10/no", host);
        assert_eq!(resp.status, 421, "Host: {host}");
    }
    assert_eq!(
        h.origin.request_count(),
        0,
        "a misdirected request reached the origin"
    );
}

/// T12 (M5): `Range: bytes=0-0` on URLs made unique by a query parameter,
/// each client closing after the head. With the parameter left out of the
/// key (`cache.key_drop_query`), all share one object: one probe and one
/// slice from the origin, instead of a slice per request. With a route's
/// `host_header`, a random client Host no longer makes a new object either.
#[test]
fn cache_busting_queries_and_hosts_can_be_left_out_of_the_key() {
    let setup = Setup {
        extra: "host_header = \"origin.test\"\n".into(),
        ..cached("t12", 1 << 20)
    };
    let _dir = dir_guard(&setup);
    let origin = common::DemoOrigin::start().unwrap();
    let text = common::config_text(origin.addr(), &setup) + "key_drop_query = [\"r\"]\n";
    let server = common::start_server(&text);
    for i in 0..100 {
        let host = format!("h{i}.test");
        let target = format!("/obj/4194304/amp?r={i}");
        let wire = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nRange: bytes=0-0\r\n\r\n");
        let resp = raw_once(server.local_addr(), wire.as_bytes());
        assert_eq!(resp.status, 206, "{i}");
        assert_eq!(resp.body, object_bytes("amp", 0, 0));
    }
    let asked = origin.requests().len();
    assert!(
        asked <= 2,
        "{asked} origin requests for 100 cache-busting ranges"
    );
    // The origin still gets each request's own query and the route's Host.
    let first = &origin.requests()[0];
    assert_eq!(first.header("host"), Some("origin.test"));
    assert!(first.target.contains("?r="), "{}", first.target);
}

/// L7: dot segments and escaped dots in a path are resolved before routes,
/// slicing rules, keys and the origin see it: `/zzz/../obj/16/a` and
/// `/zzz/%2e%2e/obj/16/a` are `/obj/16/a`, which an exclude rule passes
/// through unsliced. On f2b8ad1 the raw path missed the rule (and the
/// origin got `/zzz/../obj/16/a`).
#[test]
fn dot_segments_cannot_walk_around_a_rule() {
    let setup = Setup {
        workers: 1,
        ..Setup::default()
    };
    let origin = common::DemoOrigin::start().unwrap();
    let text = common::config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\nexclude = [\"/obj/16/*\"]\n");
    let server = common::start_server(&text);
    for raw in ["/zzz/../obj/16/a", "/zzz/%2e%2E/obj/16/a", "/obj/./16/a"] {
        origin.clear();
        let resp = get(server.local_addr(), raw, &[]).unwrap();
        assert_eq!(resp.status, 200, "{raw}");
        assert_eq!(resp.body, object_bytes("a", 0, 15), "{raw}");
        let seen = origin.requests();
        assert_eq!(
            seen.len(),
            1,
            "{raw}: sliced, so the exclude rule was missed"
        );
        assert_eq!(seen[0].target, "/obj/16/a", "{raw}");
        assert!(seen[0].range.is_none(), "{raw}");
    }
}

/// L9: a node whose origin is itself (a misconfiguration, or an origin that
/// routes back) answers 508 at once instead of looping until its file
/// descriptors run out: each request it forwards carries its own `Via`.
#[test]
fn a_request_that_comes_round_gets_508() {
    let me = common::pop::free_addrs(1)[0];
    let text = format!(
        "[server]\nlisten = \"{me}\"\nworkers = 1\n[origin]\naddress = \"{me}\"\n\
         head_timeout_ms = 3000\n[slice]\nslice_size = 16\n[cache]\nenabled = false\n"
    );
    let server = common::start_server(&text);
    let started = std::time::Instant::now();
    let resp = get(server.local_addr(), "/obj/64/loop", &[]).unwrap();
    assert_eq!(resp.status, 508);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A Via from elsewhere is no loop.
    let origin = common::DemoOrigin::start().unwrap();
    let fine = common::start_server(&common::config_text(origin.addr(), &Setup::default()));
    let resp = get(
        fine.local_addr(),
        "/obj/16/v",
        &[("Via", "1.1 other-proxy")],
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let via = origin.requests()[0].header("via").unwrap().to_string();
    assert!(via.starts_with("1.1 other-proxy, 1.1 edgeslice-"), "{via}");
}
