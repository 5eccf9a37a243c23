//! A request's own `Cache-Control` (RFC 9111 5.2.1): `only-if-cached`,
//! `no-store` and `max-stale` are honoured always; `no-cache`, `max-age`
//! and `min-fresh`, which send a fresh object to the origin, only with
//! `cache.client_revalidate`.

mod common;

use common::cache::*;
use common::*;

fn with_cc(h: &Harness, target: &str, cc: &str) -> HttpResponse {
    h.get(target, &[("Cache-Control", cc)])
}

/// How many requests the origin got while `f` ran.
fn origin_requests_during<T>(h: &Harness, f: impl FnOnce() -> T) -> (T, usize) {
    let before = h.origin.requests().len();
    let out = f();
    (out, h.origin.requests().len() - before)
}

/// RFC 9111 5.2.1.7: `only-if-cached` is answered from what is stored, or
/// with a 504; the origin is never asked.
#[test]
fn only_if_cached_is_answered_from_the_cache_or_with_a_504() {
    let setup = cached("cc-oic", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let (cold, asked) = origin_requests_during(&h, || with_cc(&h, "/obj/32/o", "only-if-cached"));
    assert_eq!((cold.status, asked), (504, 0), "cold");

    assert_eq!(h.get("/obj/32/o", &[]).status, 200);
    let (hit, asked) = origin_requests_during(&h, || with_cc(&h, "/obj/32/o", "only-if-cached"));
    assert_eq!((hit.status, asked), (200, 0), "stored whole");
    assert_eq!(hit.body, object_bytes("o", 0, 31));
    let (part, asked) = origin_requests_during(&h, || {
        h.get(
            "/obj/32/o",
            &[("Cache-Control", "only-if-cached"), ("Range", "bytes=5-9")],
        )
    });
    assert_eq!((part.status, asked), (206, 0), "a range of it");
    assert_eq!(part.body, object_bytes("o", 5, 9));

    // One slice of eight stored: not served in part.
    assert_eq!(h.get("/obj/32/p", &[("Range", "bytes=0-3")]).status, 206);
    let (partly, asked) = origin_requests_during(&h, || with_cc(&h, "/obj/32/p", "only-if-cached"));
    assert_eq!((partly.status, asked), (504, 0), "partly stored");

    // Stored, but to be validated before each use.
    assert_eq!(h.get("/obj/32/s?cc=max-age=0", &[]).status, 200);
    let target = "/obj/32/s?cc=max-age=0";
    let (stale, asked) = origin_requests_during(&h, || with_cc(&h, target, "only-if-cached"));
    assert_eq!((stale.status, asked), (504, 0), "stale");
    // ... unless the client takes it stale.
    let cc = "only-if-cached, max-stale";
    let (taken, asked) = origin_requests_during(&h, || with_cc(&h, target, cc));
    assert_eq!((taken.status, asked), (200, 0), "stale, max-stale");
}

/// RFC 9111 5.2.1.5: nothing of a `no-store` request's answer is stored;
/// what was stored before still serves it.
#[test]
fn a_no_store_request_leaves_nothing_stored() {
    let setup = cached("cc-no-store", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let first = with_cc(&h, "/obj/32/n", "no-store");
    assert_eq!(first.status, 200);
    assert_eq!(first.body, object_bytes("n", 0, 31));
    let second = h.get("/obj/32/n", &[]);
    assert_eq!(
        second.header("x-cache"),
        Some("MISS"),
        "stored from no-store"
    );
    assert_eq!(second.body, object_bytes("n", 0, 31));
    let (third, asked) = origin_requests_during(&h, || with_cc(&h, "/obj/32/n", "no-store"));
    assert_eq!((third.header("x-cache"), asked), (Some("HIT"), 0));
    assert_eq!(third.body, object_bytes("n", 0, 31));
}

/// RFC 9111 5.2.1.2: `max-stale` takes a stale object as it is, within its
/// bound, unless the answer forbids serving it stale (4.2.4:
/// `must-revalidate`).
#[test]
fn max_stale_takes_a_stale_object_unless_the_answer_forbids_it() {
    let setup = cached("cc-max-stale", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let (open, closed) = (
        "/obj/32/m?cc=max-age=0",
        "/obj/32/r?cc=max-age=0,must-revalidate",
    );
    assert_eq!(h.get(open, &[]).status, 200);
    assert_eq!(h.get(closed, &[]).status, 200);
    // A second past its freshness at least.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (taken, asked) = origin_requests_during(&h, || with_cc(&h, open, "max-stale=1000"));
    assert_eq!((taken.status, asked), (200, 0), "within max-stale");
    assert_eq!(taken.body, object_bytes("m", 0, 31));
    let status = taken.header("cache-status").unwrap_or("");
    assert!(status.contains("detail=max-stale"), "{status}");

    let (_, asked) = origin_requests_during(&h, || with_cc(&h, open, "max-stale=0"));
    assert_eq!(asked, 1, "past max-stale: validated");
    let (forbidden, asked) = origin_requests_during(&h, || with_cc(&h, closed, "max-stale"));
    assert_eq!(asked, 1, "must-revalidate: validated");
    assert_eq!(forbidden.body, object_bytes("r", 0, 31));
}

/// By default a client's `no-cache`, `max-age` and `min-fresh` are
/// answered from the cache: otherwise any client could send every request
/// to the origin (nginx, Varnish and Traffic Server do the same).
#[test]
fn a_clients_no_cache_is_answered_from_the_cache_by_default() {
    let setup = cached("cc-default", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    assert_eq!(h.get("/obj/32/d", &[]).status, 200);
    for cc in ["no-cache", "max-age=0", "min-fresh=999999"] {
        let (resp, asked) = origin_requests_during(&h, || with_cc(&h, "/obj/32/d", cc));
        assert_eq!((resp.header("x-cache"), asked), (Some("HIT"), 0), "{cc}");
    }
}

/// With `cache.client_revalidate`: RFC 9111 5.2.1.4 `no-cache`, 5.2.1.1
/// `max-age` (an age reached) and 5.2.1.3 `min-fresh` (more freshness than
/// is left) validate a fresh object with the origin before it is served.
#[test]
fn with_client_revalidate_a_fresh_object_is_validated_when_the_client_asks() {
    let setup = cached("cc-revalidate", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start_with_cache_lines(setup, "client_revalidate = true");
    assert_eq!(h.get("/obj/32/v", &[]).status, 200);
    let cases = [
        ("no-cache", true),
        ("max-age=0", true),
        ("min-fresh=999999", true),
        ("max-age=999999", false),
        ("min-fresh=1", false),
        ("max-stale", false),
    ];
    for (cc, validated) in cases {
        h.origin.clear();
        let resp = with_cc(&h, "/obj/32/v", cc);
        assert_eq!(resp.status, 200, "{cc}");
        assert_eq!(resp.body, object_bytes("v", 0, 31), "{cc}");
        let asked = h.origin.requests();
        match validated {
            true => {
                assert_eq!(asked.len(), 1, "{cc}: one revalidation");
                assert!(
                    asked[0].header("if-none-match").is_some(),
                    "{cc}: conditional"
                );
                let status = resp.header("cache-status").unwrap_or("");
                assert!(status.contains("fwd=request"), "{cc}: {status}");
            }
            false => assert!(asked.is_empty(), "{cc}: served from the cache"),
        }
    }
}
