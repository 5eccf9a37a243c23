//! The origin connection pool: connections kept alive and reused, idle ones
//! expired, unfinished answers never reused, and a client leaving mid-body
//! leaves the pool sound. One worker, so the pool is that of one runtime.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::rig::*;
use common::{object_bytes, read_some};

/// Ten sequential one-slice requests share one kept-alive origin connection.
#[test]
fn origin_connections_are_kept_alive_and_reused() {
    let rig = Rig::start(Knobs::default());
    for i in 0..10 {
        let name = format!("p{i}");
        let resp = rig.get(&format!("/obj/16/{name}"), &[]);
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.body == object_bytes(&name, 0, 15), "{name}");
    }
    assert_eq!(rig.origin.request_count(), 10);
    let accepted = rig.origin.connections_accepted();
    assert_eq!(accepted, 1, "10 sequential requests, origin connections");
}

/// An idle origin connection older than pool_idle_timeout_ms is not reused.
#[test]
fn idle_origin_connections_expire() {
    let rig = Rig::start(Knobs::default().with_origin("pool_idle_timeout_ms = 200"));
    let connection_of_last = || rig.origin.requests().last().unwrap().connection;
    assert_eq!(rig.get("/obj/16/i1", &[]).status, 200);
    let first = connection_of_last();
    assert_eq!(rig.get("/obj/16/i2", &[]).status, 200);
    assert_eq!(connection_of_last(), first, "reused while fresh");
    let accepted = rig.origin.connections_accepted();
    thread::sleep(ms(400));
    assert_eq!(rig.get("/obj/16/i3", &[]).status, 200);
    assert_ne!(connection_of_last(), first, "reused after 400 ms idle");
    assert_eq!(
        rig.origin.connections_accepted(),
        accepted + 1,
        "a new connection"
    );
}

/// A connection whose answer was not read to its end (a stall past the read
/// timeout, a cut) never goes back to the pool: the next request is correct.
#[test]
fn unfinished_origin_answers_are_never_reused() {
    let rig = Rig::start(Knobs {
        slice_size: 1024,
        ..Knobs::retries(0).with_origin("read_timeout_ms = 300")
    });
    // A finished answer first, so the pool holds a good idle connection too.
    assert_eq!(rig.get("/obj/16/warm", &[]).status, 200);
    for (what, target) in [
        ("stalled past the read timeout", "/obj/1024/s?stall_ms=2000"),
        ("cut", "/obj/1024/c?cut=1"),
    ] {
        let resp = rig.get(target, &[]);
        assert_eq!(resp.status, 200, "{what}");
        assert!(!resp.complete, "{what}");
        let broken = rig.origin.requests().last().unwrap().connection;
        // Immediately after: a stale connection would hand on the rest of
        // the unfinished body as this answer's head or bytes.
        for name in ["after1", "after2", "after3"] {
            let resp = rig.get(&format!("/obj/1024/{name}"), &[]);
            assert_eq!(resp.status, 200, "{what}: {name}");
            assert!(resp.complete, "{what}: {name}");
            assert!(
                resp.body == object_bytes(name, 0, 1023),
                "{what}: {name}: wrong bytes"
            );
            let used = rig.origin.requests().last().unwrap().connection;
            assert_ne!(
                used, broken,
                "{what}: {name} went on the unfinished connection"
            );
        }
    }
}

/// A client that leaves mid-response: the next request is still correct.
#[test]
fn client_leaving_mid_body_leaves_the_pool_sound() {
    let rig = Rig::start(Knobs {
        slice_size: 8 << 20,
        ..Knobs::default()
    });
    let mut stream = TcpStream::connect(rig.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /obj/8388608/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut some = [0u8; 4096];
    let n = read_some(&mut stream, &mut some).unwrap();
    assert!(n > 0 && some.starts_with(b"HTTP/1.1 200"));
    drop(stream);
    for i in 0..3 {
        let name = format!("next{i}");
        let resp = rig.get(&format!("/obj/100000/{name}"), &[]);
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.complete, "{name}");
        assert!(
            resp.body == object_bytes(&name, 0, 99_999),
            "{name}: wrong bytes"
        );
    }
}
