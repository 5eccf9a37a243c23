//! HTTP semantics a cache owes its clients, end to end: conditional requests
//! answered from the cache (RFC 9110 13.2.2, RFC 9111 4.3.2), `Date`, `Age`
//! and `Cache-Status` on answers, and the request forms RFC 9112 says a
//! server must accept or refuse.
//!
//! Each test starts the demo origin and edgeslice on `127.0.0.1:0` with a
//! cache in a directory of its own, and counts what reached the origin.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::cache::dir_guard;
use common::{object_bytes, CacheSetup, Harness, HttpConnection, HttpResponse, Setup, TempDir};

/// 4-byte slices, a cache of its own, `server` lines added to `[server]`.
/// The cache directory's guard (drop it last) and the harness.
fn cached(name: &str, server: &str) -> (TempDir, Harness) {
    let setup = Setup {
        slice_size: 4,
        cache: Some(CacheSetup::fresh(name)),
        server: server.to_string(),
        ..Setup::default()
    };
    (dir_guard(&setup), Harness::start(setup))
}

fn header<'a>(resp: &'a HttpResponse, name: &str) -> &'a str {
    resp.header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", resp.headers))
}

/// Requests for `part` that reached the origin.
fn origin_hits(h: &Harness, part: &str) -> usize {
    h.origin
        .requests()
        .iter()
        .filter(|r| r.target.contains(part))
        .count()
}

// ---------------------------------------------------------------------------
// Conditional requests against a fresh cached object
// ---------------------------------------------------------------------------

/// Every precondition of RFC 9110 13.2.2 on a fresh cached object is
/// answered by edgeslice, in the RFC's order, without an origin request.
#[test]
fn conditionals_on_a_fresh_object_never_reach_the_origin() {
    let (_dir, h) = cached("cond-fresh", "");
    let miss = h.get("/obj/16/c.bin", &[]);
    assert_eq!(miss.status, 200);
    let etag = header(&miss, "etag").to_string();
    let lm = header(&miss, "last-modified").to_string();
    let asked = h.origin.request_count();
    const BEFORE: &str = "Mon, 14 Nov 1994 08:12:31 GMT";
    const LATER: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
    let other = "\"something-else\"";
    let weak = format!("W/{etag}");
    let list = format!("\"a\", {etag}");
    // (headers, status)
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("If-None-Match", &etag)], 304),
        (vec![("If-None-Match", &weak)], 304),
        (vec![("If-None-Match", &list)], 304),
        (vec![("If-None-Match", "*")], 304),
        (vec![("If-None-Match", other)], 200),
        (vec![("If-Modified-Since", &lm)], 304),
        (vec![("If-Modified-Since", LATER)], 304),
        (vec![("If-Modified-Since", BEFORE)], 200),
        (vec![("If-Modified-Since", "not a date")], 200),
        // If-None-Match wins over If-Modified-Since.
        (
            vec![("If-None-Match", other), ("If-Modified-Since", &lm)],
            200,
        ),
        (vec![("If-Match", &etag)], 200),
        (vec![("If-Match", "*")], 200),
        (vec![("If-Match", other)], 412),
        (vec![("If-Match", &weak)], 412),
        (vec![("If-Unmodified-Since", &lm)], 200),
        (vec![("If-Unmodified-Since", BEFORE)], 412),
        // If-Match wins over If-Unmodified-Since, and is judged before If-None-Match.
        (
            vec![("If-Match", &etag), ("If-Unmodified-Since", BEFORE)],
            200,
        ),
        (vec![("If-Match", other), ("If-None-Match", &etag)], 412),
        // Preconditions before Range: a matching If-None-Match is a 304, not a 206.
        (vec![("If-None-Match", &etag), ("Range", "bytes=2-5")], 304),
        (vec![("If-None-Match", other), ("Range", "bytes=2-5")], 206),
        // ... and before a range past the end.
        (vec![("If-Match", other), ("Range", "bytes=100-")], 412),
    ];
    for (headers, want) in &cases {
        let resp = h.get("/obj/16/c.bin", headers);
        assert_eq!(resp.status, *want, "{headers:?}");
        assert_eq!(
            h.origin.request_count(),
            asked,
            "{headers:?} reached the origin"
        );
        assert!(resp.header("date").is_some(), "{headers:?}: no Date");
        match want {
            304 => {
                assert!(resp.body.is_empty(), "{headers:?}");
                assert_eq!(header(&resp, "etag"), etag, "{headers:?}");
                assert_eq!(header(&resp, "last-modified"), lm, "{headers:?}");
                assert_eq!(header(&resp, "cache-control"), "max-age=3600");
                assert!(resp.header("content-length").is_none(), "{headers:?}");
                assert!(resp.header("age").is_some(), "{headers:?}: no Age");
                assert!(
                    header(&resp, "cache-status").starts_with("edgeslice; hit"),
                    "{headers:?}"
                );
            }
            200 => assert!(resp.body == object_bytes("c.bin", 0, 15), "{headers:?}"),
            206 => assert!(resp.body == object_bytes("c.bin", 2, 5), "{headers:?}"),
            _ => {}
        }
    }
    // HEAD follows the same rules.
    let mut conn = HttpConnection::connect(h.addr()).unwrap();
    let head = conn
        .request("HEAD", "/obj/16/c.bin", &[("If-None-Match", &etag)], None)
        .unwrap();
    assert_eq!(head.status, 304);
    assert_eq!(h.origin.request_count(), asked);
}

/// A cold object asked with a conditional: the probe goes to the origin
/// without the client's conditionals, so its answer is stored; the client
/// gets the 304 the stored version earns; the next plain GET is a HIT.
#[test]
fn a_conditional_on_a_cold_object_stores_it_and_answers_from_it() {
    let (_dir, h) = cached("cond-cold", "");
    let probe = common::get(
        h.origin.addr(),
        "/obj/16/cold.bin",
        &[("Range", "bytes=0-0")],
    )
    .unwrap();
    let etag = header(&probe, "etag").to_string();
    h.origin.clear();
    let resp = h.get("/obj/16/cold.bin", &[("If-None-Match", &etag)]);
    assert_eq!(resp.status, 304);
    assert!(
        h.origin
            .requests()
            .iter()
            .all(|r| r.header("if-none-match").is_none()),
        "the client's conditional reached the origin"
    );
    let resp = h.get("/obj/16/cold.bin", &[("If-Match", "\"nope\"")]);
    assert_eq!(resp.status, 412);
    let asked = h.origin.request_count();
    // The probe's slice was stored in the background: wait for it.
    let mut hit = h.get("/obj/16/cold.bin", &[]);
    for _ in 0..50 {
        if header(&hit, "x-cache") == "HIT" {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        hit = h.get("/obj/16/cold.bin", &[]);
    }
    assert_eq!(header(&hit, "x-cache"), "HIT");
    assert!(hit.body == object_bytes("cold.bin", 0, 15));
    assert!(
        h.origin.request_count() <= asked + 3,
        "the slices were not kept"
    );
}

/// RFC 9110 6.6.1: an answer the origin sent without `Date` is stored
/// with the time it was received, and every hit replays that time (before,
/// each hit got the time it was sent: a copy that looked made anew beside
/// an `Age` that said otherwise); an `If-Modified-Since` of it is a 304.
#[test]
fn an_answer_without_a_date_keeps_the_time_it_was_received() {
    let (_dir, h) = cached("date-received", "");
    let path = "/obj/16/nodate.bin?validators=none";
    let at_origin = common::get(h.origin.addr(), path, &[]).unwrap();
    assert!(
        at_origin.header("date").is_none(),
        "{:?}",
        at_origin.headers
    );
    assert_eq!(h.get(path, &[]).status, 200);
    // HTTP-dates count seconds: the hits come in other seconds.
    thread::sleep(Duration::from_millis(1100));
    let hit = h.get(path, &[]);
    assert_eq!(header(&hit, "x-cache"), "HIT");
    let date = header(&hit, "date").to_string();
    thread::sleep(Duration::from_millis(1100));
    let again = h.get(path, &[]);
    assert_eq!(header(&again, "date"), date, "the stored Date moved");
    let asked = h.origin.request_count();
    let resp = h.get(path, &[("If-Modified-Since", &date)]);
    assert_eq!(resp.status, 304, "{:?}", resp.headers);
    assert_eq!(h.origin.request_count(), asked);
}

/// RFC 9110 13.1.4: "A recipient MUST ignore the If-Unmodified-Since
/// header field if the resource does not have a modification date
/// available": on an object without `Last-Modified` it is the whole
/// answer, not a 412 (the 412 it was before).
#[test]
fn without_last_modified_if_unmodified_since_is_ignored() {
    let (_dir, h) = cached("cond-no-lm", "");
    let path = "/obj/16/undated.bin?validators=none";
    assert_eq!(h.get(path, &[]).status, 200);
    let asked = h.origin.request_count();
    const BEFORE: &str = "Mon, 14 Nov 1994 08:12:31 GMT";
    let resp = h.get(path, &[("If-Unmodified-Since", BEFORE)]);
    assert_eq!(resp.status, 200, "{:?}", resp.headers);
    assert!(resp.body == object_bytes("undated.bin", 0, 15));
    assert_eq!(h.origin.request_count(), asked, "it reached the origin");
}

/// RFC 9111 4.3.2: a stored answer without `Last-Modified` has
/// `If-Modified-Since` judged by its `Date` (the representation was not
/// modified after the answer was made): a date at or after it is a 304,
/// an earlier one the whole answer. Before, such an answer never earned a
/// 304 (`If-Modified-Since` was judged by `Last-Modified` alone).
#[test]
fn without_last_modified_if_modified_since_is_judged_by_the_date() {
    let (_dir, h) = cached("cond-date", "");
    let path = "/obj/16/dated.bin?validators=none&date=-100";
    let miss = h.get(path, &[]);
    assert_eq!(miss.status, 200);
    assert!(miss.header("last-modified").is_none(), "{:?}", miss.headers);
    let date = header(&miss, "date").to_string();
    let asked = h.origin.request_count();
    const BEFORE: &str = "Mon, 14 Nov 1994 08:12:31 GMT";
    const LATER: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
    for (since, want) in [(date.as_str(), 304), (LATER, 304), (BEFORE, 200)] {
        let resp = h.get(path, &[("If-Modified-Since", since)]);
        assert_eq!(
            resp.status, want,
            "If-Modified-Since: {since} on Date: {date}"
        );
        assert!(
            header(&resp, "cache-status").starts_with("edgeslice; hit"),
            "If-Modified-Since: {since}: {:?}",
            resp.headers
        );
        match want {
            304 => assert!(resp.body.is_empty()),
            _ => assert!(resp.body == object_bytes("dated.bin", 0, 15)),
        }
    }
    assert_eq!(
        h.origin.request_count(),
        asked,
        "a conditional reached the origin"
    );
}

/// A stale object is revalidated first (one conditional request with the
/// stored validator), then the client's conditional is answered.
#[test]
fn a_stale_object_is_revalidated_before_a_conditional_is_answered() {
    let (_dir, h) = cached("cond-stale", "");
    let target = "/obj/16/stale.bin?cc=max-age=1";
    let miss = h.get(target, &[]);
    let etag = header(&miss, "etag").to_string();
    thread::sleep(Duration::from_millis(2100));
    h.origin.clear();
    let resp = h.get(target, &[("If-None-Match", &etag)]);
    assert_eq!(resp.status, 304);
    let asked = h.origin.requests();
    assert_eq!(asked.len(), 1, "one revalidation: {asked:?}");
    assert_eq!(asked[0].header("if-none-match"), Some(etag.as_str()));
    assert_eq!(
        header(&resp, "cache-status"),
        "edgeslice; fwd=stale; fwd-status=304; ttl=1"
    );
    assert_eq!(header(&resp, "age"), "0");
}

// ---------------------------------------------------------------------------
// Date, Age, Cache-Status
// ---------------------------------------------------------------------------

/// Every answer carries Date; answers from the cache carry Age; each says
/// what the cache did in Cache-Status, under the configured node name.
#[test]
fn date_age_and_cache_status_on_every_answer() {
    let (_dir, h) = cached("headers", "node_name = \"edge-7\"");
    let now = std::time::SystemTime::now();
    let date_ok = |resp: &HttpResponse, what: &str| {
        let date = httpdate::parse_http_date(header(resp, "date")).expect("an HTTP-date");
        let skew = date
            .duration_since(now)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap();
        assert!(skew < Duration::from_secs(30), "{what}: Date {skew:?} off");
    };
    let miss = h.get("/obj/16/h.bin", &[("Range", "bytes=0-5")]);
    assert_eq!(miss.status, 206);
    date_ok(&miss, "206 MISS");
    assert!(miss.header("age").is_none(), "a miss has no Age");
    assert_eq!(header(&miss, "cache-status"), "edge-7; fwd=miss; stored");
    assert_eq!(header(&miss, "x-cache"), "MISS");

    let partial = h.get("/obj/16/h.bin", &[]);
    assert_eq!(header(&partial, "x-cache"), "PARTIAL");
    let status = header(&partial, "cache-status");
    assert!(
        status.starts_with("edge-7; fwd=partial; stored; ttl="),
        "{status}"
    );
    assert!(partial.header("age").is_some());

    thread::sleep(Duration::from_millis(1100));
    let hit = h.get("/obj/16/h.bin", &[("Range", "bytes=4-9")]);
    assert_eq!(hit.status, 206);
    date_ok(&hit, "206 HIT");
    let age: u64 = header(&hit, "age").parse().expect("Age is whole seconds");
    assert!((1..30).contains(&age), "Age {age}");
    let status = header(&hit, "cache-status");
    let ttl: i64 = status
        .strip_prefix("edge-7; hit; ttl=")
        .unwrap_or_else(|| panic!("{status}"))
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{status}");

    for (target, status) in [
        ("/obj/16/h.bin?x", 200),
        ("/nope/16/x", 404),
        ("/status/503/x", 503),
    ] {
        let resp = h.get(target, &[]);
        assert_eq!(resp.status, status, "{target}");
        date_ok(&resp, target);
    }
    let relayed = h.get("/status/503/y", &[]);
    assert_eq!(
        header(&relayed, "cache-status"),
        "edge-7; fwd=miss; fwd-status=503"
    );
    let unsat = h.get("/obj/16/h.bin", &[("Range", "bytes=99-")]);
    assert_eq!(unsat.status, 416);
    date_ok(&unsat, "416");
    let post = HttpConnection::connect(h.addr())
        .unwrap()
        .request("POST", "/echo/p", &[], Some(b"x"))
        .unwrap();
    date_ok(&post, "POST");
    assert_eq!(header(&post, "cache-status"), "edge-7; fwd=method");
}

// ---------------------------------------------------------------------------
// Request forms (RFC 9112)
// ---------------------------------------------------------------------------

/// Send raw bytes on a new connection and read every answer until it closes
/// or `answers` arrived.
fn raw(h: &Harness, bytes: &[u8]) -> HttpResponse {
    HttpConnection::connect(h.addr())
        .unwrap()
        .raw(bytes)
        .expect("an answer")
}

#[test]
fn host_is_required_of_http_11_and_taken_from_an_absolute_target() {
    let (_dir, h) = cached("forms", "");
    let resp = raw(&h, b"GET /obj/16/f HTTP/1.1\r\n\r\n");
    assert_eq!(resp.status, 400, "HTTP/1.1 without Host");
    assert!(String::from_utf8_lossy(&resp.body).contains("without Host"));
    let resp = raw(&h, b"GET /obj/16/f HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(resp.status, 400, "two Hosts");
    assert_eq!(origin_hits(&h, "/obj/16/f"), 0);

    let resp = raw(&h, b"GET /obj/16/f10 HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200, "HTTP/1.0 without Host");
    assert!(resp.body == object_bytes("f10", 0, 15));

    let resp = raw(
        &h,
        b"GET http://origin.example:8080/obj/16/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "absolute-form");
    assert!(resp.body == object_bytes("abs", 0, 15));
    let seen = h.origin.requests();
    let abs: Vec<_> = seen.iter().filter(|r| r.target.contains("abs")).collect();
    assert!(!abs.is_empty());
    for r in abs {
        assert_eq!(
            r.target.split('?').next(),
            Some("/obj/16/abs"),
            "origin-form to the origin"
        );
        assert_eq!(
            r.header("host"),
            Some("origin.example:8080"),
            "Host from the target"
        );
    }
    // The same object named by Host and origin-form is the same cache entry.
    let again = h.get("/obj/16/abs?q=1", &[("Host", "origin.example:8080")]);
    assert_eq!(header(&again, "x-cache"), "HIT");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_dir, h) = cached("pipeline", "");
    let mut stream = TcpStream::connect(h.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut burst = Vec::new();
    for (i, range) in ["0-3", "4-9", "10-15"].iter().enumerate() {
        burst.extend_from_slice(
            format!("GET /obj/16/p{i} HTTP/1.1\r\nHost: h\r\nRange: bytes={range}\r\n\r\n")
                .as_bytes(),
        );
    }
    burst.extend_from_slice(b"GET /obj/16/p3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    stream.write_all(&burst).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let heads: Vec<usize> = all
        .windows(9)
        .enumerate()
        .filter(|(_, w)| *w == b"HTTP/1.1 ")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(heads.len(), 4, "{}", String::from_utf8_lossy(&all));
    let expect = [
        ("206", object_bytes("p0", 0, 3)),
        ("206", object_bytes("p1", 4, 9)),
        ("206", object_bytes("p2", 10, 15)),
        ("200", object_bytes("p3", 0, 15)),
    ];
    for (n, (status, body)) in expect.iter().enumerate() {
        let end = heads.get(n + 1).copied().unwrap_or(all.len());
        let answer = &all[heads[n]..end];
        assert!(
            answer.starts_with(format!("HTTP/1.1 {status}").as_bytes()),
            "answer {n}"
        );
        assert!(
            answer.ends_with(body),
            "answer {n}: not its body, or out of order: {:?}",
            String::from_utf8_lossy(answer)
        );
    }
}

#[test]
fn obs_fold_and_transfer_codings_are_refused() {
    let (_dir, h) = cached("codings", "");
    let cases: &[(&[u8], u16)] = &[
        (b"GET /obj/16/o HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", 400),
        (
            b"POST /echo/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            b"POST /echo/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        (
            b"POST /echo/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            501,
        ),
        (
            b"POST /echo/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            501,
        ),
    ];
    for (bytes, status) in cases {
        let resp = raw(&h, bytes);
        assert_eq!(resp.status, *status, "{}", String::from_utf8_lossy(bytes));
        assert!(resp.header("date").is_some());
    }
    assert_eq!(
        h.origin.request_count(),
        0,
        "a refused request reached the origin"
    );
    let ok = raw(
        &h,
        b"POST /echo/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    );
    assert_eq!(ok.status, 200, "chunked alone is fine");
    assert_eq!(ok.body, b"x");
}

/// Too many header fields: the 431 names the header-count limit.
#[test]
fn too_many_headers_names_the_count_limit() {
    let (_dir, h) = cached("count", "max_headers = 10");
    let mut req = String::from("GET /obj/16/n HTTP/1.1\r\nHost: h\r\n");
    for i in 0..12 {
        req.push_str(&format!("X-{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let resp = raw(&h, req.as_bytes());
    assert_eq!(resp.status, 431);
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        body.contains("more than 10 request header fields"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------
// Revalidation keeps the route's stale windows
// ---------------------------------------------------------------------------

/// A route's stale-if-error outlives a 304 refresh: after the refresh the
/// object goes stale again, the origin stops, and it is still served.
#[test]
fn a_304_refresh_keeps_the_routes_stale_windows() {
    use edgeslice::config::Config;
    use edgeslice::server::runtime::Server;
    let origin = common::DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        cache: Some(CacheSetup::fresh("route-stale")),
        ..Setup::default()
    };
    let _dir = dir_guard(&setup);
    let routes = format!(
        "[[route]]\npath_prefix = \"/obj/\"\norigin = \"{}\"\nstale_if_error = 600\n",
        origin.addr()
    );
    let text = format!("{}{routes}", common::config_text(origin.addr(), &setup));
    let server = Server::start(&Config::from_toml(&text).unwrap()).unwrap();
    let target = "/obj/16/rsw?cc=max-age=1";
    let get = || common::get(server.local_addr(), target, &[]).unwrap();
    assert_eq!(get().status, 200);
    thread::sleep(Duration::from_millis(2100));
    let refreshed = get();
    assert_eq!(
        header(&refreshed, "cache-status"),
        "edgeslice; fwd=stale; fwd-status=304; ttl=1"
    );
    thread::sleep(Duration::from_millis(2100));
    drop(origin);
    let resp = get();
    assert_eq!(
        resp.status, 200,
        "the route's stale-if-error was lost in the refresh"
    );
    assert!(resp.body == object_bytes("rsw", 0, 15));
    assert!(header(&resp, "cache-status").contains("detail=stale-if-error"));
    server.shutdown();
}

// ---------------------------------------------------------------------------
// X-Cache / Cache-Status tell the truth
// ---------------------------------------------------------------------------

/// A slice the head counted as cached is served from the cache, even when
/// it leaves the memory tier before its disk write is done: with a memory
/// tier of a few slices and other objects filling it at the same time, no
/// answer that says HIT sends a request to the origin for its object.
#[test]
fn a_hit_never_goes_to_the_origin() {
    const SLICE: u64 = 16 * 1024;
    let setup = Setup {
        slice_size: SLICE,
        workers: 2,
        cache: Some(CacheSetup {
            memory_bytes: 4 * SLICE,
            ..CacheSetup::fresh("truthful-hit")
        }),
        ..Setup::default()
    };
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let addr = h.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                let _ = common::get(addr, &format!("/obj/262144/churn{n}"), &[]);
                n += 1;
            }
        })
    };
    let mut hits = 0;
    for i in 0..30 {
        let target = format!("/obj/524288/warm{i}");
        assert_eq!(h.get(&target, &[]).status, 200);
        let before = origin_hits(&h, &target);
        let again = h.get(&target, &[]);
        assert!(again.body == object_bytes(&format!("warm{i}"), 0, 524_287));
        if header(&again, "x-cache") == "HIT" {
            hits += 1;
            assert!(header(&again, "cache-status").starts_with("edgeslice; hit"));
            assert_eq!(
                origin_hits(&h, &target),
                before,
                "{target}: said HIT, asked the origin"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    eprintln!("{hits} of 30 second requests were HITs");
}
