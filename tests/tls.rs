//! TLS for clients: HTTP/1.1 over rustls beside the plain listener, the
//! certificate picked by SNI, handshakes that fail or stall closing only
//! their own connection, certificate files refused with their path named,
//! and certificates reloaded on SIGHUP without dropping connections.
//! Certificates are made in each test (rcgen) and trusted by the client only.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::process::*;
use common::tls::*;
use common::*;
use edgeslice::config::{Config, DriverChoice};
use edgeslice::server::runtime::Server;

const BIG: u64 = 100_000;

/// `[server]` lines for a TLS listener with `cert`/`key`.
fn tls_lines(cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "tls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\ntls_handshake_timeout_ms = 300\n",
        cert, key
    )
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = get(server.admin_addr().unwrap(), "/metrics", &[]).unwrap();
    String::from_utf8_lossy(&text.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn https_serves_exact_bytes_beside_plain_http_and_from_the_cache() {
    for driver in [DriverChoice::IoUring, DriverChoice::Legacy] {
        https_on(driver);
    }
}

fn https_on(driver: DriverChoice) {
    let dir = TempDir::new("tls-basic");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let mut cache = CacheSetup::fresh("tls-basic-cache");
    cache.dir = dir.path().join("cache");
    let h = Harness::start(Setup {
        slice_size: 16 * 1024,
        server: tls_lines(&cert, &key),
        cache: Some(cache),
        driver,
        ..Setup::default()
    });
    let tls = h.server.tls_addr().expect("a TLS listener");
    let target = format!("/obj/{BIG}/t");
    let want = object_bytes("t", 0, BIG - 1);

    let mut conn = ca.http(tls, "localhost");
    assert_eq!(
        conn.stream().conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "a client offering only http/1.1 gets it"
    );
    // A miss, then the same object from the cache (mapped, then encrypted),
    // then a range: all on one keep-alive TLS connection.
    for round in ["miss", "hit"] {
        let resp = conn.request("GET", &target, &[], None).unwrap();
        assert_eq!(resp.status, 200, "{round}");
        assert!(resp.complete, "{round}");
        assert!(resp.body == want, "{round}: body differs");
    }
    let resp = conn
        .request("GET", &target, &[("Range", "bytes=20000-70000")], None)
        .unwrap();
    assert_eq!(resp.status, 206);
    assert!(resp.body == object_bytes("t", 20000, 70000));
    let slices = BIG.div_ceil(16 * 1024) as usize;
    assert_eq!(h.origin.request_count(), slices, "each slice fetched once");

    // A last answer ends with close_notify: the client can tell the end of
    // the session from a cut (rustls reads a bare TCP close as an error).
    let resp = conn
        .request("GET", "/obj/9/c", &[("Connection", "close")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("c", 0, 8));
    let mut stream = conn.into_stream();
    let mut rest = Vec::new();
    let end = std::io::Read::read_to_end(&mut stream, &mut rest);
    assert!(
        matches!(end, Ok(0)),
        "clean TLS close expected, got {end:?}"
    );

    // The plain listener serves the same object alongside.
    let resp = get(h.addr(), &target, &[]).unwrap();
    assert!(resp.body == want);
}

#[test]
fn h2_over_tls_by_alpn_serves_exact_bytes_from_origin_and_cache() {
    let dir = TempDir::new("tls-h2");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let mut cache = CacheSetup::fresh("tls-h2-cache");
    cache.dir = dir.path().join("cache");
    let h = Harness::start(Setup {
        slice_size: 16 * 1024,
        server: tls_lines(&cert, &key),
        cache: Some(cache),
        ..Setup::default()
    });
    let tls = h.server.tls_addr().unwrap();
    let target = format!("/obj/{BIG}/h");
    let want = object_bytes("h", 0, BIG - 1);
    h2c::block_on(async {
        let client = h2c::connect_tls(tls, ca.client_config(&[b"h2", b"http/1.1"]), "localhost")
            .await
            .expect("the server picks h2 when offered");
        // A miss, then hits: several streams at once on one connection.
        let resp = h2c::get(&client, &target, &[]).await;
        assert_eq!(resp.status, 200);
        assert!(resp.body == want, "miss: body differs");
        let (a, b, c) = monoio::join!(
            h2c::get(&client, &target, &[]),
            h2c::get(&client, &target, &[("range", "bytes=1000-50000")]),
            h2c::get(&client, &target, &[("range", "bytes=-10")]),
        );
        assert!(a.body == want, "hit: body differs");
        assert_eq!((b.status, c.status), (206, 206));
        assert!(b.body == object_bytes("h", 1000, 50000));
        assert!(c.body == object_bytes("h", BIG - 10, BIG - 1));
    });
    let slices = BIG.div_ceil(16 * 1024) as usize;
    assert_eq!(h.origin.request_count(), slices, "each slice fetched once");
    // A client offering only http/1.1 on the same listener gets HTTP/1.1.
    let mut conn = ca.http(tls, "localhost");
    let resp = conn.request("GET", &target, &[], None).unwrap();
    assert!(resp.body == want);
}

/// Many streams at once over TLS, bodies from a byte to several frames:
/// the records of a pass are corked and joined across frames and streams
/// (`server::h2::transport`), and every body still arrives exact.
#[test]
fn many_streams_over_tls_return_exact_bytes() {
    let dir = TempDir::new("tls-h2-many");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let h = Harness::start(Setup {
        slice_size: 5000,
        server: tls_lines(&cert, &key),
        ..Setup::default()
    });
    let tls = h.server.tls_addr().unwrap();
    for round in ["miss", "hit"] {
        let answers = h2c::block_on(async {
            let client = h2c::connect_tls(tls, ca.client_config(&[b"h2"]), "localhost")
                .await
                .expect("h2 by ALPN");
            let tasks: Vec<_> = (0..40u64)
                .map(|i| {
                    let client = client.clone();
                    monoio::spawn(async move {
                        let len = 1 + i * i * 31;
                        let range = format!("bytes={i}-");
                        let ranged = i % 3 == 0 && i < len;
                        let headers: Vec<(&str, &str)> = if ranged {
                            vec![("range", &range)]
                        } else {
                            vec![]
                        };
                        let resp = h2c::get(&client, &format!("/obj/{len}/m{i}"), &headers).await;
                        (i, len, ranged, resp)
                    })
                })
                .collect();
            let all = async {
                let mut answers = Vec::new();
                for t in tasks {
                    answers.push(t.await);
                }
                answers
            };
            monoio::time::timeout(Duration::from_secs(20), all).await
        });
        let answers = answers.unwrap_or_else(|_| panic!("{round}: streams stalled"));
        for (i, len, ranged, resp) in answers {
            let first = if ranged { i } else { 0 };
            assert_eq!(resp.status, if ranged { 206 } else { 200 }, "{round} {i}");
            assert!(
                resp.body == object_bytes(&format!("m{i}"), first, len - 1),
                "{round}: stream {i} ({len} bytes) differs"
            );
        }
    }
}

#[test]
fn a_client_that_reads_late_gets_every_byte_and_one_that_never_reads_is_cut_off() {
    let dir = TempDir::new("tls-slow");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let h = Harness::start(Setup {
        slice_size: 256 * 1024,
        server: format!("{}client_send_timeout_ms = 500\n", tls_lines(&cert, &key)),
        ..Setup::default()
    });
    let tls = h.server.tls_addr().unwrap();
    let size: u64 = 8 << 20;
    let target = format!("/obj/{size}/s");
    // The socket fills while the client sleeps: the server waits for it to
    // drain (records are sent without blocking), then goes on.
    let mut stream = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut conn = HttpConnection::over(stream);
    let resp = conn.raw(b"").unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete && resp.body == object_bytes("s", 0, size - 1));

    // A client that never reads holds its connection for the send timeout
    // only (an object larger than both sockets' buffers can hold).
    let size: u64 = 32 << 20;
    let mut stalled = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    write!(
        stalled,
        "GET /obj/{size}/n HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    stalled.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stalled
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let cut = loop {
        match std::io::Read::read(&mut stalled, &mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(n) => got += n,
        }
        if got as u64 > size {
            break false;
        }
    };
    assert!(cut && (got as u64) < size, "cut off after {got} bytes");
    let resp = get(h.addr(), "/obj/9/after", &[]).unwrap();
    assert_eq!(resp.body, object_bytes("after", 0, 8), "the worker goes on");
}

#[test]
fn sni_picks_the_route_certificate_else_the_default() {
    let dir = TempDir::new("tls-sni");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let (vcert, vkey) = ca.write_leaf(dir.path(), "video", &["*.video.test"]);
    let origin = DemoOrigin::start().unwrap();
    let text = format!(
        "{}[[route]]\nhost = \"*.video.test\"\norigin = \"{}\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        config_text(
            origin.addr(),
            &Setup {
                server: tls_lines(&cert, &key),
                ..Setup::default()
            }
        ),
        origin.addr(),
        vcert,
        vkey
    );
    let server = start_server(&text);
    let tls = server.tls_addr().unwrap();

    let s = ca.connect(tls, "a.video.test", &[b"http/1.1"]).unwrap();
    assert!(
        presented(&s, &vcert),
        "SNI a.video.test gets the route's certificate"
    );
    let s = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    assert!(presented(&s, &cert), "another name gets the default");

    let mut conn = ca.http(tls, "a.video.test");
    let resp = conn
        .request("GET", "/obj/9/v", &[("Host", "a.video.test")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("v", 0, 8));
}

#[test]
fn garbage_and_stalled_handshakes_close_only_their_connection() {
    let dir = TempDir::new("tls-garbage");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        server: tls_lines(&cert, &key),
        ..Setup::default()
    };
    let text = format!("{}{ADMIN}", config_text(origin.addr(), &setup));
    let server = start_server(&text);
    let tls = server.tls_addr().unwrap();

    // Plain HTTP instead of a ClientHello: an alert or a close, nothing else.
    let mut plain = TcpStream::connect(tls).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        closed_within(&mut plain, Duration::from_secs(5)),
        "garbage closes"
    );

    // Silence after connecting: closed after tls_handshake_timeout_ms.
    let mut silent = TcpStream::connect(tls).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a stalled handshake is closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    // A client that trusts another CA gives up; the server goes on.
    let other = TestCa::new("other CA");
    assert!(other.connect(tls, "localhost", &[b"http/1.1"]).is_err());

    let mut conn = ca.http(tls, "localhost");
    let resp = conn.request("GET", "/obj/9/g", &[], None).unwrap();
    assert_eq!(resp.body, object_bytes("g", 0, 8));
    assert!(metric(&server, "edgeslice_tls_handshake_failures_total") >= 3.0);
    assert!(metric(&server, "edgeslice_tls_handshakes_total") >= 1.0);
}

#[test]
fn an_expired_route_certificate_fails_at_the_client_and_the_default_goes_on() {
    let dir = TempDir::new("tls-expired");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let (old_cert, old_key) = ca.leaf(&["old.test"], true);
    std::fs::write(dir.path().join("old.crt"), old_cert).unwrap();
    std::fs::write(dir.path().join("old.key"), old_key).unwrap();
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        server: tls_lines(&cert, &key),
        ..Setup::default()
    };
    let text = format!(
        "{}[[route]]\nhost = \"old.test\"\norigin = \"{}\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        config_text(origin.addr(), &setup),
        origin.addr(),
        dir.path().join("old.crt"),
        dir.path().join("old.key"),
    );
    let server = start_server(&text);
    let tls = server.tls_addr().unwrap();
    // edgeslice serves the certificate it was given; a verifying client
    // refuses it for what it is.
    let Err(err) = ca.connect(tls, "old.test", &[b"http/1.1"]) else {
        panic!("an expired certificate is refused");
    };
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    let mut conn = ca.http(tls, "localhost");
    let resp = conn.request("GET", "/obj/9/x", &[], None).unwrap();
    assert_eq!(resp.body, object_bytes("x", 0, 8));
}

#[test]
fn certificate_files_are_checked_at_start_and_named() {
    let dir = TempDir::new("tls-files");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "default", &["localhost"]);
    let (_, other_key) = ca.write_leaf(dir.path(), "other", &["localhost"]);
    let origin = DemoOrigin::start().unwrap();
    let start = |server: String| {
        let text = config_text(
            origin.addr(),
            &Setup {
                server,
                ..Setup::default()
            },
        );
        Config::from_toml(&text)
            .map_err(|e| e.to_string())
            .and_then(|c| Server::start(&c).map(|_| ()).map_err(|e| e.to_string()))
    };
    let missing = dir.path().join("missing.crt");
    let cases = [
        (
            tls_lines(&missing, &key),
            "server.tls_cert",
            missing.display().to_string(),
        ),
        (
            tls_lines(&cert, &other_key),
            "server.tls_key",
            "not the certificate's key".into(),
        ),
        (
            tls_lines(&key, &key),
            "server.tls_cert",
            key.display().to_string(),
        ),
        (
            "tls_listen = \"127.0.0.1:0\"\n".into(),
            "server.tls_listen",
            "needs server.tls_cert".into(),
        ),
        (
            format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"),
            "server.tls_cert",
            "without server.tls_listen".into(),
        ),
    ];
    for (lines, key_named, detail) in cases {
        let err = start(lines.clone()).expect_err(&lines);
        assert!(
            err.contains(key_named) && err.contains(&detail),
            "{lines}: {err}"
        );
    }
    start(tls_lines(&cert, &key)).expect("a good pair starts");
}

#[test]
fn sighup_reloads_certificates_and_keeps_connections() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("tls-reload");
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.write_leaf(dir.path(), "live", &["localhost"]);
    let conf = dir.path().join("edgeslice.toml");
    let text = subprocess_config(origin.addr(), None, "").replace(
        "workers = 1\n",
        &format!("workers = 1\n{}", tls_lines(&cert, &key)),
    );
    std::fs::write(&conf, &text).unwrap();
    let proc = Edgeslice::start(&conf);
    let tls = proc.tls_addr();

    let first = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    assert!(presented(&first, &cert));
    let first_pem = std::fs::read(&cert).unwrap();
    let mut kept = HttpConnection::over(first);

    // New files at the same paths, then SIGHUP: new handshakes get them.
    let (new_cert, new_key) = ca.write_leaf(dir.path(), "next", &["localhost"]);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    proc.wait_line(seen, "reloaded routes and limits");
    let s = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    assert!(
        presented(&s, &new_cert),
        "the reloaded certificate is served"
    );
    assert!(std::fs::read(&cert).unwrap() != first_pem);
    let resp = kept
        .request("GET", "/obj/9/k", &[], None)
        .expect("the connection survives");
    assert_eq!(resp.body, object_bytes("k", 0, 8));

    // A broken file: refused, its path named, the running certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    let refused = proc.wait_line(seen, "reload refused");
    assert!(refused.contains(&cert.display().to_string()), "{refused}");
    let s = ca.connect(tls, "localhost", &[b"http/1.1"]).unwrap();
    assert!(presented(&s, &new_cert), "the running certificate stays");
    let resp = kept.request("GET", "/obj/9/k", &[], None).unwrap();
    assert_eq!(resp.body, object_bytes("k", 0, 8));
}

#[test]
fn an_expired_certificate_is_warned_about_at_start_and_still_served() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("tls-expiry-warning");
    let ca = TestCa::new("test CA");
    let (cert_pem, key_pem) = ca.leaf(&["localhost"], true);
    let (cert, key) = (dir.path().join("old.crt"), dir.path().join("old.key"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let conf = dir.path().join("edgeslice.toml");
    let text = subprocess_config(origin.addr(), None, "").replace(
        "workers = 1\n",
        &format!("workers = 1\n{}", tls_lines(&cert, &key)),
    );
    std::fs::write(&conf, &text).unwrap();
    let proc = Edgeslice::start(&conf);
    let line = proc.wait_line(0, "TLS certificate has expired");
    assert!(line.contains(&cert.display().to_string()), "{line}");
    assert!(line.contains("server.tls_cert"), "{line}");
    // Served as configured: a verifying client refuses it.
    let tls = proc.tls_addr();
    assert!(ca.connect(tls, "localhost", &[b"http/1.1"]).is_err());
}
