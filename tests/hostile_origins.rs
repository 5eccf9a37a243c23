//! Hostile origins (review 2026-12-05, T4 and L3): what an origin sends never
//! reaches another request's answer, never sizes an allocation, never aborts
//! the process. A scripted origin ([`common::scripted`]) says exactly what
//! goes on the wire.

mod common;

use std::time::Duration;

use common::cache::{cached, dir_guard};
use common::scripted::{head, obj_of, object_answer, Edge, ScriptedOrigin, Step};
use common::{get, object_bytes, HttpConnection, Setup};
use edgeslice::config::DriverChoice;

fn one_worker(name: &str, driver: DriverChoice) -> Setup {
    Setup {
        workers: 1,
        driver,
        ..cached(name, 64 * 1024)
    }
}

/// Objects under `/obj/`; a target with `hints` gets `103 Early Hints` first
/// (then the answer 50 ms later), `cont` an unasked `100 Continue`, `many`
/// forty 103s, `switch` a `101`.
fn interim_origin() -> ScriptedOrigin {
    ScriptedOrigin::start(|req| {
        let Some((name, len)) = obj_of(&req.target) else {
            return vec![Step::Send(head(
                "404 Not Found",
                &[("Content-Length", "0".into())],
            ))];
        };
        let hints = head(
            "103 Early Hints",
            &[("Link", "</s.css>; rel=preload".into())],
        );
        let mut steps = Vec::new();
        if name.contains("hints") {
            steps.push(Step::Send(hints.clone()));
            steps.push(Step::Sleep(Duration::from_millis(50)));
        }
        if name.contains("cont") {
            steps.push(Step::Send(head("100 Continue", &[])));
        }
        if name.contains("many") {
            steps.push(Step::Send(hints.repeat(40)));
        }
        if name.contains("switch") {
            steps.push(Step::Send(head("101 Switching Protocols", &[])));
        }
        steps.push(Step::Send(object_answer(req, &name, len)));
        steps
    })
}

/// T4 (H1): a 103 or an unasked 100 before the answer is skipped: the client
/// gets the final answer once, and the next object on the same worker (and
/// the same pooled origin connection) gets its own bytes and length.
fn interim_answers_are_skipped(driver: DriverChoice, name: &str) {
    let setup = one_worker(name, driver);
    let _dir = dir_guard(&setup);
    let edge = Edge::start(interim_origin(), &setup);
    let mut conn = HttpConnection::connect(edge.addr()).unwrap();
    for (i, name) in ["hints-a", "plain-b", "cont-c", "plain-d", "hints-e"]
        .iter()
        .enumerate()
    {
        let len = 200_000 + i as u64 * 1000;
        // Alternate a fresh and a kept-alive client connection.
        let resp = if i % 2 == 0 {
            get(edge.addr(), &format!("/obj/{len}/{name}"), &[]).unwrap()
        } else {
            conn.request("GET", &format!("/obj/{len}/{name}"), &[], None)
                .unwrap()
        };
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.complete, "{name}");
        assert_eq!(resp.body.len() as u64, len, "{name}: its own length");
        assert!(
            resp.body == object_bytes(name, 0, len - 1),
            "{name}: its own bytes"
        );
        assert!(
            resp.header("link").is_none(),
            "{name}: a 103's header in the answer"
        );
        // Warm: the same bytes from the cache.
        let again = get(edge.addr(), &format!("/obj/{len}/{name}"), &[]).unwrap();
        assert_eq!(again.header("x-cache"), Some("HIT"), "{name}");
        assert!(again.body == resp.body, "{name}: the cached copy differs");
    }
    // A ranged cold request and a HEAD behind a 103.
    let resp = get(
        edge.addr(),
        "/obj/300000/hints-f",
        &[("Range", "bytes=70000-70009")],
    )
    .unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, object_bytes("hints-f", 70000, 70009));
    let resp = HttpConnection::connect(edge.addr())
        .unwrap()
        .request("HEAD", "/obj/300000/hints-g", &[], None)
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("300000"));
}

#[test]
fn interim_answers_are_skipped_io_uring() {
    interim_answers_are_skipped(DriverChoice::Auto, "t4-uring");
}

#[test]
fn interim_answers_are_skipped_legacy() {
    interim_answers_are_skipped(DriverChoice::Legacy, "t4-legacy");
}

/// Everything one request on a fresh connection gets back, as text.
fn raw_exchange(edge: &Edge, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(edge.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 9110 15.2: a proxy passes on the 1xx answers it did not ask for
/// (the 103 and its Link before the final head), never to an HTTP/1.0
/// client, and a cache does not store them: the hit has none (RFC 9111 3).
/// Before 7686c4b+6 every 1xx was dropped.
#[test]
fn interim_answers_are_passed_on_not_stored() {
    let setup = one_worker("t4-pass", DriverChoice::Auto);
    let _dir = dir_guard(&setup);
    let edge = Edge::start(interim_origin(), &setup);
    let ask = |version: &str| {
        format!("GET /obj/1000/hints-p HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n")
    };
    let first = raw_exchange(&edge, &ask("1.1"));
    let (interim, rest) = first.split_once("\r\n\r\n").unwrap();
    assert!(
        interim.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "{first}"
    );
    assert!(
        interim
            .to_ascii_lowercase()
            .contains("link: </s.css>; rel=preload"),
        "{first}"
    );
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    let hit = raw_exchange(&edge, &ask("1.1"));
    assert!(
        hit.starts_with("HTTP/1.1 200 OK\r\n"),
        "the hit has no 103: {hit}"
    );
    assert!(hit.to_ascii_lowercase().contains("x-cache: hit"), "{hit}");
    let old = raw_exchange(&edge, &ask("1.0").replace("hints-p", "hints-q"));
    assert!(
        old.starts_with("HTTP/1.1 200 OK\r\n"),
        "no 1xx to HTTP/1.0: {old}"
    );
}

/// An origin that sends endless 1xx or a 101 nobody asked for gets a 502,
/// and its connection is never reused for another request.
#[test]
fn endless_or_switching_interim_answers_are_a_bad_gateway() {
    let setup = one_worker("t4-bad", DriverChoice::Auto);
    let _dir = dir_guard(&setup);
    let edge = Edge::start(interim_origin(), &setup);
    for name in ["many-a", "switch-b"] {
        let resp = get(edge.addr(), &format!("/obj/100000/{name}"), &[]).unwrap();
        assert_eq!(resp.status, 502, "{name}");
        let next = get(edge.addr(), "/obj/100000/plain-z", &[]).unwrap();
        assert_eq!(next.status, 200, "after {name}");
        assert!(
            next.body == object_bytes("plain-z", 0, 99_999),
            "after {name}"
        );
    }
}

/// Answers for `/huge/...`: every 206 says the object is `total` bytes long.
fn lying_total_origin(total: u64) -> ScriptedOrigin {
    ScriptedOrigin::start(move |req| {
        if !req.target.starts_with("/huge/") {
            let (name, len) = obj_of(&req.target).unwrap_or(("x".into(), 10));
            return vec![Step::Send(object_answer(req, &name, len))];
        }
        let (a, b) = req.range().unwrap_or((0, 65535));
        let mut out = head(
            "206 Partial Content",
            &[
                ("Content-Range", format!("bytes {a}-{b}/{total}")),
                ("Content-Length", (b - a + 1).to_string()),
                ("ETag", "\"huge\"".into()),
            ],
        );
        if req.method != "HEAD" {
            out.extend(vec![7u8; (b - a + 1) as usize]);
        }
        vec![Step::Send(out)]
    })
}

/// L3: an origin that says an object is 2^60 bytes long does not make the
/// node allocate by it (it aborted the process on f2b8ad1): the answer is a
/// 502 naming the length, and the next request is served.
#[test]
fn an_absurd_length_from_the_origin_is_a_bad_gateway_not_an_abort() {
    let setup = one_worker("l3", DriverChoice::Auto);
    let _dir = dir_guard(&setup);
    let edge = Edge::start(lying_total_origin(1 << 60), &setup);
    for method in ["HEAD", "GET"] {
        let resp = HttpConnection::connect(edge.addr())
            .unwrap()
            .request(method, "/huge/x", &[], None)
            .unwrap();
        assert_eq!(resp.status, 502, "{method}");
        let next = get(edge.addr(), "/obj/1000/after", &[]).unwrap();
        assert_eq!(next.status, 200, "after {method}: the node still serves");
        assert_eq!(next.body, object_bytes("after", 0, 999));
    }
}

/// Under `slice.max_object_bytes` a huge object is served: its head (8
/// million slices of 64 KiB) and a range at its end, without a lookup or an
/// allocation per slice of the object.
#[test]
fn a_huge_object_under_the_limit_is_served() {
    let setup = one_worker("l3-huge", DriverChoice::Auto);
    let _dir = dir_guard(&setup);
    let total: u64 = 512 << 30;
    let edge = Edge::start(lying_total_origin(total), &setup);
    let resp = HttpConnection::connect(edge.addr())
        .unwrap()
        .request("HEAD", "/huge/y", &[], None)
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-length"),
        Some(total.to_string().as_str())
    );
    let range = format!("bytes={}-{}", total - 1000, total - 1);
    let resp = get(edge.addr(), "/huge/y", &[("Range", range.as_str())]).unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, vec![7u8; 1000]);
    let resp = get(edge.addr(), "/huge/y", &[("Range", range.as_str())]).unwrap();
    assert_eq!(resp.header("x-cache"), Some("HIT"));
}

/// Objects whose answers set a cookie: `Set-Cookie: session=N`, N counting
/// the origin's answers, and `X-Secret: N`, with the header lines `extra`
/// (each ending in CRLF) after them.
fn cookie_origin(extra: &'static str) -> ScriptedOrigin {
    let n = std::sync::atomic::AtomicU64::new(0);
    ScriptedOrigin::start(move |req| {
        let (name, len) = obj_of(&req.target).unwrap_or(("x".into(), 10));
        let mut answer = object_answer(req, &name, len);
        let at = answer.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let n = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cookie = format!("Set-Cookie: session={n}\r\nX-Secret: {n}\r\n{extra}");
        answer.splice(at..at, cookie.into_bytes());
        vec![Step::Send(answer)]
    })
}

/// M6: an answer that sets a cookie is relayed, not stored, so the next
/// client never gets the first one's cookie; `cache.store_set_cookie`
/// opts in. On f2b8ad1 the second client got `session=0` from the cache.
#[test]
fn an_answer_that_sets_a_cookie_is_not_stored() {
    let setup = one_worker("m6", DriverChoice::Auto);
    let _dir = dir_guard(&setup);
    let edge = Edge::start(cookie_origin(""), &setup);
    let first = get(edge.addr(), "/obj/1000/c", &[]).unwrap();
    let second = get(edge.addr(), "/obj/1000/c", &[]).unwrap();
    assert_eq!(first.header("set-cookie"), Some("session=0"));
    assert_eq!(
        second.header("set-cookie"),
        Some("session=1"),
        "another client's cookie"
    );
    assert_eq!(second.header("x-cache"), Some("MISS"));
    assert_eq!(second.body, object_bytes("c", 0, 999));
    drop(edge);

    let opted = one_worker("m6-opt", DriverChoice::Auto);
    let _dir = dir_guard(&opted);
    let origin = cookie_origin("");
    // config_text ends in [cache].
    let text = common::config_text(origin.addr(), &opted) + "store_set_cookie = true\n";
    let server = common::start_server(&text);
    let first = get(server.local_addr(), "/obj/1000/c", &[]).unwrap();
    let second = get(server.local_addr(), "/obj/1000/c", &[]).unwrap();
    assert_eq!(
        second.header("x-cache"),
        Some("HIT"),
        "stored when the operator says so"
    );
    assert_eq!(second.header("set-cookie"), first.header("set-cookie"));
}

/// RFC 9111 5.2.2.4 and 5.2.2.7: `no-cache="Set-Cookie"` (how an origin
/// lets a page be cached but not its cookie) and `private="X-Secret"` hold
/// back only the fields they name. The answer is stored without them, and
/// a hit sends neither the first client's cookie nor its secret, with
/// `cache.store_set_cookie` off. Before, the first was revalidated at every
/// use and its cookie kept it out of the cache; the second was never
/// stored.
#[test]
fn an_answer_is_stored_without_the_fields_its_no_cache_or_private_names() {
    for (extra, case) in [
        (
            "Cache-Control: no-cache=\"Set-Cookie, X-Secret\"\r\n",
            "no-cache",
        ),
        (
            "Cache-Control: no-cache=\"Set-Cookie\", private=\"X-Secret\"\r\n",
            "private",
        ),
    ] {
        let setup = one_worker(&format!("qualified-{case}"), DriverChoice::Auto);
        let _dir = dir_guard(&setup);
        let edge = Edge::start(cookie_origin(extra), &setup);
        let first = get(edge.addr(), "/obj/1000/q", &[]).unwrap();
        assert_eq!(first.header("set-cookie"), Some("session=0"), "{case}");
        assert_eq!(first.header("x-secret"), Some("0"), "{case}");
        let second = get(edge.addr(), "/obj/1000/q", &[]).unwrap();
        assert_eq!(
            second.header("x-cache"),
            Some("HIT"),
            "{case}: {:?}",
            second.headers
        );
        assert_eq!(second.header("set-cookie"), None, "{case}");
        assert_eq!(second.header("x-secret"), None, "{case}");
        assert_eq!(second.header("etag"), first.header("etag"), "{case}");
        assert_eq!(second.body, object_bytes("q", 0, 999), "{case}");
        // A range of it, served from the same stored answer.
        let range = get(edge.addr(), "/obj/1000/q", &[("Range", "bytes=10-19")]).unwrap();
        assert_eq!(range.status, 206, "{case}");
        assert_eq!(range.header("set-cookie"), None, "{case}");
        assert_eq!(range.body, object_bytes("q", 10, 19), "{case}");
    }
}

/// An origin whose objects have no ETag and no Last-Modified and change at
/// every request: each answer's bytes are the number of that answer.
fn unversioned_origin() -> ScriptedOrigin {
    let n = std::sync::atomic::AtomicU8::new(1);
    ScriptedOrigin::start(move |req| {
        let version = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let len = 256u64;
        let (status, range, (a, b)) = match req.range() {
            Some((a, b)) => {
                let b = b.min(len - 1);
                (
                    "206 Partial Content",
                    Some(format!("bytes {a}-{b}/{len}")),
                    (a, b),
                )
            }
            None => ("200 OK", None, (0, len - 1)),
        };
        let mut fields = vec![
            ("Content-Length", (b - a + 1).to_string()),
            ("Cache-Control", "max-age=3600".into()),
        ];
        if let Some(range) = range {
            fields.push(("Content-Range", range));
        }
        let mut out = head(status, &fields);
        out.extend(vec![version; (b - a + 1) as usize]);
        vec![Step::Send(out)]
    })
}

/// L2: an object of several slices with neither ETag nor Last-Modified
/// cannot be told from another version of it, so it is not sliced: it is
/// fetched whole (one answer, one version) and cut for the cache. On
/// f2b8ad1 its four slices came from four versions, spliced into one body.
#[test]
fn an_object_without_validators_is_never_spliced() {
    let setup = Setup {
        workers: 1,
        slice_size: 64,
        cache: Some(common::CacheSetup::fresh("l2")),
        ..Setup::default()
    };
    let _dir = dir_guard(&setup);
    let edge = Edge::start(unversioned_origin(), &setup);
    let resp = get(edge.addr(), "/u", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 256);
    let first = resp.body[0];
    assert!(
        resp.body.iter().all(|b| *b == first),
        "versions spliced into one body: {:?}",
        resp.body.iter().collect::<std::collections::BTreeSet<_>>()
    );
    // Stored whole and served again as the same version.
    let again = get(edge.addr(), "/u", &[]).unwrap();
    assert_eq!(again.body, resp.body);
}

/// An origin that ignores Range: a 200 of the whole object, of `len` bytes;
/// `close` sends it without a length, and only its first half, then closes.
fn range_ignoring_origin(len: u64, close: bool) -> ScriptedOrigin {
    ScriptedOrigin::start(move |_req| {
        let mut fields = vec![("Cache-Control", "max-age=3600".to_string())];
        if !close {
            fields.push(("Content-Length", len.to_string()));
        }
        let mut out = head("200 OK", &fields);
        let sent = if close { len / 2 } else { len };
        out.extend(vec![5u8; sent as usize]);
        let mut steps = vec![Step::Send(out)];
        if close {
            steps.push(Step::Close);
        }
        steps
    })
}

fn cached_256mib(name: &str) -> Setup {
    Setup {
        workers: 1,
        slice_size: 1 << 20,
        cache: Some(common::CacheSetup {
            disk_bytes: 256 << 20,
            ..common::CacheSetup::fresh(name)
        }),
        ..Setup::default()
    }
}

/// L4: a whole answer (the origin ignored Range) longer than 1/64 of the
/// cache (4 MiB here) is relayed and not stored, so one answer cannot flush
/// the cache; on f2b8ad1 every slice of it was stored, whatever its length.
#[test]
fn a_whole_answer_too_long_for_the_cache_is_relayed_only() {
    let setup = cached_256mib("l4-long");
    let _dir = dir_guard(&setup);
    let edge = Edge::start(range_ignoring_origin(8 << 20, false), &setup);
    for round in 0..2 {
        let resp = get(edge.addr(), "/long", &[]).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), 8 << 20, "round {round}");
        assert!(resp.complete);
        // Its announced length says so before a byte is written to the
        // cache (slices written up to the limit would push others out).
        let status = resp.header("cache-status").unwrap_or_default();
        assert!(!status.contains("stored"), "round {round}: {status}");
    }
    // The second request went to the origin too: nothing was stored.
    assert_eq!(edge.origin.requests().len(), 2);
}

/// L4: a body delimited by the close, cut short by the origin, cannot be
/// told from a whole one: it is relayed and never stored (on f2b8ad1 the
/// short body was cached, whole_only, for the TTL).
#[test]
fn a_close_delimited_answer_is_never_stored() {
    let setup = cached_256mib("l4-close");
    let _dir = dir_guard(&setup);
    let edge = Edge::start(range_ignoring_origin(2 << 20, true), &setup);
    for _ in 0..2 {
        let resp = get(edge.addr(), "/cut", &[]).unwrap();
        assert_eq!(resp.status, 200);
    }
    assert_eq!(
        edge.origin.requests().len(),
        2,
        "the short body was served from the cache"
    );
}
