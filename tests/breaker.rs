//! The circuit breaker: a broken object never opens it; a stopped origin
//! opens it (failing fast) and the origin's return closes it.

mod common;

use std::thread;
use std::time::Instant;

use common::rig::*;
use common::{object_bytes, DemoOrigin};
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

/// One object that answers 5xx, or never answers, leaves every other object
/// alone: a 5xx shows the origin is up, and head timeouts of one target do
/// not open the breaker. Every failing request still reaches the origin.
#[test]
fn a_broken_object_never_opens_the_breaker() {
    let rig = Rig::start(Knobs {
        breaker_failures: 3,
        origin: "breaker_cooldown_ms = 60000\nhead_timeout_ms = 150".into(),
        ..Knobs::retries(0)
    });
    for n in 1..=8 {
        let resp = rig.get("/status/503/broken", &[]);
        assert_eq!(
            resp.body, b"status 503\n",
            "failure {n}: the origin's answer"
        );
        assert!(resp.header("date").is_some(), "failure {n}: no Date");
        assert_eq!(rig.requests_for("/status/503/broken"), n, "failure {n}");
    }
    for n in 1..=5 {
        let resp = rig.get("/obj/16/stuck?delay_ms=2000", &[]);
        assert_eq!(resp.status, 504, "stall {n}");
        assert_eq!(rig.requests_for("/obj/16/stuck"), n, "stall {n}");
    }
    let started = Instant::now();
    let resp = rig.get("/obj/16/healthy", &[]);
    assert_eq!(
        resp.status, 200,
        "another object, after its neighbours failed"
    );
    assert!(resp.body == object_bytes("healthy", 0, 15));
    assert!(started.elapsed() < ms(1000), "{:?}", started.elapsed());
}

/// A stopped origin: requests fail within the connect timeout, two refused
/// connects open the breaker, and then requests get 503 with Retry-After at
/// once while the cache keeps serving what it holds (fresh objects, and
/// stale ones within stale-if-error). Started again on its port, the origin
/// takes traffic within the cooldown plus a second.
#[test]
fn a_stopped_origin_opens_the_breaker_and_its_return_closes_it() {
    const COOLDOWN: u64 = 1000;
    const CONNECT: u64 = 500;
    let cache = common::CacheSetup::fresh("breaker");
    let _dir = common::TempDir(cache.dir.clone());
    let origin = DemoOrigin::start().expect("origin starts");
    let addr = origin.addr();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{addr}\"\nbreaker_failures = 2\nbreaker_cooldown_ms = {COOLDOWN}\n\
         connect_timeout_ms = {CONNECT}\n\
         [slice]\nslice_size = 16\nmax_retries = 0\n\
         [cache]\ndir = {:?}\nmemory_bytes = 16777216\ndisk_bytes = 0\n",
        cache.dir
    );
    let server = Server::start(&Config::from_toml(&config).unwrap()).unwrap();
    let get = |target: &str| common::get(server.local_addr(), target, &[]).unwrap();
    assert_eq!(get("/obj/40/kept").status, 200);
    let stale = "/obj/40/old?cc=max-age=1,stale-if-error=600";
    assert_eq!(get(stale).status, 200);
    drop(origin);

    for n in 1..=2 {
        let started = Instant::now();
        let resp = get(&format!("/obj/16/cold{n}"));
        assert_eq!(resp.status, 502, "refused connect {n}");
        assert!(started.elapsed() < ms(CONNECT), "{:?}", started.elapsed());
    }
    let started = Instant::now();
    let resp = get("/obj/16/cold3");
    assert_eq!(resp.status, 503, "open breaker");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(resp.header("date").is_some());
    assert!(
        started.elapsed() < ms(200),
        "fail fast: {:?}",
        started.elapsed()
    );
    // What the cache holds is served while the origin is down.
    let resp = get("/obj/40/kept");
    assert_eq!(resp.status, 200, "a fresh cached object");
    assert!(resp.body == object_bytes("kept", 0, 39));
    assert_eq!(resp.header("x-cache"), Some("HIT"));
    assert!(resp.header("age").is_some());
    thread::sleep(ms(COOLDOWN + 100));
    let resp = get(stale);
    assert_eq!(resp.status, 200, "stale-if-error");
    assert!(resp.body == object_bytes("old", 0, 39));
    let status = resp.header("cache-status").unwrap_or("");
    assert!(status.contains("detail=stale-if-error"), "{status}");
    // That revalidation was the probe: it failed, so the breaker is open again.
    assert_eq!(get("/obj/16/cold4").status, 503);

    let back = DemoOrigin::start_on(addr).expect("the origin comes back on its port");
    let restarted = Instant::now();
    loop {
        let resp = get("/obj/16/back");
        if resp.status == 200 {
            assert!(resp.body == object_bytes("back", 0, 15));
            break;
        }
        assert_eq!(resp.status, 503, "while the breaker is still open");
        assert!(
            restarted.elapsed() < ms(COOLDOWN + 1000),
            "no success within the cooldown + 1 s"
        );
        thread::sleep(ms(50));
    }
    assert_eq!(get("/obj/16/after").status, 200, "traffic flows at once");
    assert_eq!(back.request_count(), 2);
    server.shutdown();
}

/// Issue 20: an origin that closes the connection on a handful of URLs
/// while it answers everything else (the public cache test suite's `stale`
/// group does) never opens the breaker: on f2b8ad1, with retries, a few such
/// URLs opened it and every request after them got 503.
#[test]
fn urls_that_close_the_connection_never_open_the_breaker() {
    use common::scripted::{head, obj_of, object_answer, ScriptedOrigin, Step};
    let origin = ScriptedOrigin::start(|req| {
        if req.target.starts_with("/close/") {
            return vec![Step::Close];
        }
        match obj_of(&req.target) {
            Some((name, len)) => vec![Step::Send(object_answer(req, &name, len))],
            None => vec![Step::Send(head(
                "404 Not Found",
                &[("Content-Length", "0".into())],
            ))],
        }
    });
    let knobs = Knobs {
        breaker_failures: 3,
        origin: "breaker_cooldown_ms = 60000".into(),
        ..Knobs::retries(3)
    };
    let server = proxy_for(origin.addr(), &knobs);
    let ok = |name: &str| {
        let resp = common::get(server.local_addr(), &format!("/obj/40/{name}"), &[]).unwrap();
        assert_eq!(resp.status, 200, "{name}: the breaker opened");
        assert!(resp.body == object_bytes(name, 0, 39));
    };
    ok("first");
    // Several such URLs in a row, each tried 4 times: 12 failures on 3 targets.
    for n in 0..3 {
        let resp = common::get(server.local_addr(), &format!("/close/{n}"), &[]).unwrap();
        assert_eq!(resp.status, 502, "/close/{n}");
    }
    for n in 0..3 {
        ok(&format!("after-{n}"));
    }
}
