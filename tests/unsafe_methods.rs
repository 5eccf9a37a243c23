//! Unsafe methods and the cache: a non-error answer to one invalidates
//! what is stored for its target and for the URIs its `Location` and
//! `Content-Location` name on the same host (RFC 9111 4.4), and a POST's answer that
//! names its own target with explicit freshness is stored for GETs (RFC
//! 9110 9.3.3).

mod common;

use common::cache::*;
use common::*;

/// RFC 9111 4.4: a non-error answer to an unsafe method (POST, PUT,
/// DELETE, and methods the cache does not know) invalidates the stored
/// answer for its target; an error answer does not.
#[test]
fn an_unsafe_method_invalidates_what_is_stored_for_its_target() {
    let setup = cached("invalidate", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let send = |method: &str, target: &str| {
        HttpConnection::connect(h.server.local_addr())
            .and_then(|mut c| c.request(method, target, &[], Some(b"x")))
            .expect("request through edgeslice")
    };
    for method in ["POST", "PUT", "DELETE", "M-SEARCH"] {
        let target = format!("/obj/32/inv-{method}?unsafe=ok");
        let name = format!("inv-{method}");
        assert!(second_is_hit(&h, &target, &name), "{method}: cached first");
        assert_eq!(send(method, &target).status, 200, "{method}");
        let after = h.get(&target, &[]);
        assert_eq!(
            after.header("x-cache"),
            Some("MISS"),
            "{method} did not invalidate"
        );
        assert_eq!(after.body, object_bytes(&name, 0, 31));
    }
    // The origin refuses (405): nothing is invalidated.
    assert!(second_is_hit(&h, "/obj/32/kept", "kept"));
    assert_eq!(send("POST", "/obj/32/kept").status, 405);
    assert_eq!(h.get("/obj/32/kept", &[]).header("x-cache"), Some("HIT"));
}

/// RFC 9111 4.4: the answer's `Location` and `Content-Location`, resolved
/// against the target, are invalidated too when they are on the target's
/// host, and not when they are on another. Before 3e88dc4+1 only the target
/// was.
#[test]
fn an_unsafe_method_invalidates_what_its_answer_locates_on_the_same_host() {
    let setup = cached("invalidate-located", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let post = |target: &str| {
        HttpConnection::connect(h.server.local_addr())
            .and_then(|mut c| c.request("POST", target, &[], Some(b"x")))
            .expect("request through edgeslice")
    };
    for name in ["loc-a", "loc-b", "loc-c", "loc-d"] {
        assert!(
            second_is_hit(&h, &format!("/obj/32/{name}"), name),
            "{name}"
        );
    }
    // `Location` an absolute path, `Content-Location` relative to the target.
    let answer = post("/obj/32/made?unsafe=ok&loc=/obj/32/loc-a&cl=loc-b&cc=none");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("location"), Some("/obj/32/loc-a"));
    // Another host's URI, and this host's as an absolute URI.
    let elsewhere = "/obj/32/other?unsafe=ok&loc=http://elsewhere.test/obj/32/loc-c";
    assert_eq!(post(elsewhere).status, 200);
    let here = "/obj/32/same?unsafe=ok&loc=http://127.0.0.1/obj/32/loc-d";
    assert_eq!(post(here).status, 200);
    for (name, invalidated) in [
        ("loc-a", true),
        ("loc-b", true),
        ("loc-c", false),
        ("loc-d", true),
    ] {
        let after = h.get(&format!("/obj/32/{name}"), &[]);
        let expected = if invalidated { "MISS" } else { "HIT" };
        assert_eq!(after.header("x-cache"), Some(expected), "{name}");
        assert_eq!(after.body, object_bytes(name, 0, 31));
    }
}

/// RFC 9110 9.3.3: a POST's answer with explicit freshness and a
/// `Content-Location` that is the POST's own target is stored for later
/// GETs of it; one without either, naming another target, or that may not
/// be stored, is relayed only.
#[test]
fn a_post_answer_naming_its_own_target_is_stored_for_gets() {
    let setup = cached("post-store", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let cases = [
        ("/obj/32/p1?unsafe=ok&cl=self", true),
        ("/obj/32/p2?unsafe=ok&cl=abs", true),
        ("/obj/32/p3?unsafe=ok", false),
        ("/obj/32/p4?unsafe=ok&cl=self&cc=none", false),
        ("/obj/32/p5?unsafe=ok&cl=/obj/32/p1", false),
        ("/obj/32/p6?unsafe=ok&cl=self&cc=no-store", false),
    ];
    for (target, stored) in cases {
        let posted = HttpConnection::connect(h.server.local_addr())
            .and_then(|mut c| c.request("POST", target, &[], Some(b"x")))
            .expect("POST through edgeslice");
        assert_eq!(posted.status, 200, "{target}");
        assert_eq!(posted.body, b"POST done\n", "{target}");
        let after = h.get(target, &[]);
        match stored {
            true => {
                assert_eq!(after.header("x-cache"), Some("HIT"), "{target}");
                assert_eq!(after.body, b"POST done\n", "{target}");
                let asked = h.origin.requests();
                let gets = asked
                    .iter()
                    .filter(|r| r.method == "GET" && r.target == target);
                assert_eq!(gets.count(), 0, "{target}: the GET reached the origin");
            }
            false => {
                assert_eq!(after.header("x-cache"), Some("MISS"), "{target}");
                assert_eq!(after.body.len(), 32, "{target}");
            }
        }
    }
}
