//! The cache across restarts: a graceful restart keeps it, and after a
//! SIGKILL (also mid-transfer) the restarted binary serves exact bytes, never
//! a half-stored slice.

mod common;

use common::cache::*;
use common::process::Edgeslice;
use common::*;

#[test]
fn graceful_restart_keeps_the_cache() {
    let setup = cached("restart", 64 << 10);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup.clone());
    let objects = [
        ("/obj/1000/r1", "r1", 1000),
        ("/obj/1048576/r2", "r2", 1 << 20),
    ];
    for (target, name, len) in objects {
        let first = h.get(target, &[]);
        assert_eq!(first.header("x-cache"), Some("MISS"), "{target}");
        assert_eq!(first.body, object_bytes(name, 0, len - 1), "{target}");
    }
    let h = h.restart(&setup);
    h.origin.clear();
    for (target, name, len) in objects {
        let again = h.get(target, &[]);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(again.body, object_bytes(name, 0, len - 1), "{target}");
        let part = h.get(target, &[("Range", "bytes=100-899")]);
        assert_eq!(part.status, 206, "{target}");
        assert_eq!(part.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(part.body, object_bytes(name, 100, 899), "{target}");
    }
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

/// Every object fully and in a few ranges: the bytes must be exact, whatever
/// X-Cache says (a killed process may lose recent slices, never corrupt them).
fn check_exact(addr: std::net::SocketAddr, objects: &[(&str, &str, u64)]) {
    for &(target, name, len) in objects {
        let full = get(addr, target, &[]).expect("GET through edgeslice");
        assert_eq!(full.status, 200, "{target}");
        assert!(full.complete, "{target}: body cut short");
        assert!(
            full.body == object_bytes(name, 0, len - 1),
            "{target}: wrong bytes (X-Cache {:?})",
            full.header("x-cache")
        );
        for (a, b) in [
            (0, 0),
            (len / 3, len / 2),
            (len - 1, len - 1),
            (1, len.saturating_sub(2)),
        ] {
            if b < a || b >= len {
                continue;
            }
            let range = format!("bytes={a}-{b}");
            let part = get(addr, target, &[("Range", &range)]).expect("ranged GET");
            assert_eq!(part.status, 206, "{target} {range}");
            assert!(
                part.body == object_bytes(name, a, b),
                "{target} {range}: wrong bytes (X-Cache {:?})",
                part.header("x-cache")
            );
        }
    }
}

#[test]
fn sigkill_then_restart_serves_exact_bytes() {
    use std::io::Write;
    let setup = Setup {
        workers: 2,
        ..cached("sigkill", 64 << 10)
    };
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().expect("origin starts");
    std::fs::create_dir_all(&setup.cache.as_ref().unwrap().dir).expect("cache dir");
    let config = setup
        .cache
        .as_ref()
        .unwrap()
        .dir
        .join("edgeslice-test.toml");
    std::fs::write(&config, config_text(origin.addr(), &setup)).expect("config written");
    let objects = [
        ("/obj/1/k1", "k1", 1),
        ("/obj/1000/k2", "k2", 1000),
        ("/obj/65536/k3", "k3", 65536),
        ("/obj/300001/k4", "k4", 300_001),
        ("/obj/2097152/k5", "k5", 2 << 20),
    ];

    let first = Edgeslice::start(&config);
    check_exact(first.addr, &objects);
    first.kill();
    let second = Edgeslice::start(&config);
    check_exact(second.addr, &objects);

    // Killed during a transfer: the slices in flight are never stored half.
    let big = ("/obj/8388608/big?delay_ms=20", "big", 8u64 << 20);
    let mut conn = std::net::TcpStream::connect(second.addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(conn, "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", big.0).expect("request sent");
    let mut seen = 0;
    let mut buf = vec![0; 64 << 10];
    while seen < 512 << 10 {
        let n = read_some(&mut conn, &mut buf).expect("response bytes");
        assert!(n > 0, "edgeslice closed after {seen} bytes");
        seen += n;
    }
    second.kill();
    drop(conn);
    let third = Edgeslice::start(&config);
    let mut all = objects.to_vec();
    all.push(big);
    check_exact(third.addr, &all);
    // And once more, when the big object is surely cached.
    check_exact(third.addr, &all);
}

/// Issue 23: a node killed with SIGKILL lost the manifests of its last
/// moments (their slices, on disk, were then unreachable). What was stored
/// a little more than the slot files' flush interval (1 s) before the kill
/// is served after the restart with no origin request.
#[test]
fn a_sigkill_keeps_what_was_stored_before_it() {
    let setup = Setup {
        workers: 2,
        ..cached("sigkill-kept", 64 << 10)
    };
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().expect("origin starts");
    let dir = setup.cache.as_ref().unwrap().dir.clone();
    std::fs::create_dir_all(&dir).expect("cache dir");
    let config = dir.join("edgeslice-test.toml");
    std::fs::write(&config, config_text(origin.addr(), &setup)).expect("config written");
    let objects: Vec<(String, String, u64)> = (0..6)
        .map(|i| {
            let len = 1000 + 70_000 * i;
            (format!("/obj/{len}/kept{i}"), format!("kept{i}"), len)
        })
        .collect();

    let first = Edgeslice::start(&config);
    for (target, _, _) in &objects {
        let resp = get(first.addr, target, &[]).expect("GET");
        assert_eq!(resp.header("x-cache"), Some("MISS"), "{target}");
    }
    // Slices are made durable and indexed every second (slab FLUSH_EVERY).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    first.kill();
    origin.clear();
    let second = Edgeslice::start(&config);
    for (target, name, len) in &objects {
        let resp = get(second.addr, target, &[]).expect("GET");
        assert!(resp.body == object_bytes(name, 0, len - 1), "{target}");
        assert_eq!(
            resp.header("x-cache"),
            Some("HIT"),
            "{target} stored 2.5 s before the SIGKILL was lost"
        );
    }
    assert_eq!(origin.request_count(), 0, "{:?}", origin.requests());
}
