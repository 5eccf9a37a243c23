//! Origins that answer another range than the one asked (RFC 9110 15.3.7):
//! fewer bytes (an origin that caps its answers), or more. The client still
//! gets exactly the object's bytes; answers are combined into one slice only
//! under the same validator (RFC 9111 3.4), and the slices stored from them
//! serve later hits. The built-in origin's `cap=N` and `widen=N` make it
//! answer that way.

mod common;

use common::cache::dir_guard;
use common::h2c::metric;
use common::*;

/// A harness with 8-byte slices, a cache and the admin listener, and its
/// cache directory's guard (drop it last).
fn cached(name: &str) -> (TempDir, Harness) {
    let setup = Setup {
        slice_size: 8,
        cache: Some(CacheSetup::fresh(name)),
        ..Setup::default()
    };
    let origin = DemoOrigin::start().expect("origin starts");
    let text = format!("{}{ADMIN}", config_text(origin.addr(), &setup));
    let dir = dir_guard(&setup);
    (
        dir,
        Harness {
            origin,
            server: start_server(&text),
        },
    )
}

fn assert_bytes(resp: &HttpResponse, name: &str, first: u64, last: u64, ctx: &str) {
    assert!(resp.complete, "{ctx}: body cut short");
    assert_eq!(resp.body, object_bytes(name, first, last), "{ctx}");
}

#[test]
fn an_origin_that_answers_fewer_bytes_is_asked_for_the_rest() {
    let (_dir, h) = cached("partial-capped");
    let admin = h.server.admin_addr().expect("admin listener");
    // 20 bytes in slices of 8; the origin answers at most 3 bytes at a time.
    let full = h.get("/obj/20/capped?cap=3", &[]);
    assert_eq!(full.status, 200);
    assert_bytes(&full, "capped", 0, 19, "full GET");
    // Each slice is asked once, then its rest until it is whole.
    let mut asked = h.origin_ranges_sorted();
    asked.dedup();
    assert_eq!(
        asked,
        [
            "bytes=0-7",
            "bytes=3-7",
            "bytes=6-7",
            "bytes=8-15",
            "bytes=11-15",
            "bytes=14-15",
            "bytes=16-23",
            "bytes=19-19",
        ]
    );
    assert_eq!(metric(admin, "edgeslice_origin_part_answers_total"), 5.0);
    // The slices were stored whole: a range across them is a hit.
    let before = h.origin.requests().len();
    let part = h.get("/obj/20/capped?cap=3", &[("Range", "bytes=5-17")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 5-17/20"));
    assert_eq!(part.header("x-cache"), Some("HIT"));
    assert_bytes(&part, "capped", 5, 17, "range from the cache");
    assert_eq!(
        h.origin.requests().len(),
        before,
        "no origin request for a hit"
    );
}

#[test]
fn a_range_from_an_origin_that_answers_fewer_bytes_is_whole_without_the_cache() {
    let h = Harness::with_slices(8);
    let part = h.get("/obj/40/capped-nc?cap=5", &[("Range", "bytes=6-21")]);
    assert_eq!(part.status, 206);
    assert_bytes(&part, "capped-nc", 6, 21, "range without the cache");
    // Without the cache only what the client wants is asked for: slice 2
    // (16-23) stops at its first answer, which holds bytes 16-20 of 16-21.
    let mut asked = h.origin_ranges_sorted();
    asked.dedup();
    assert!(asked.contains(&"bytes=21-23".to_string()), "{asked:?}");
    assert!(
        !asked.iter().any(|r| r.starts_with("bytes=22-")),
        "{asked:?}"
    );
}

#[test]
fn an_origin_that_answers_more_bytes_is_cut_to_the_slice() {
    let (_dir, h) = cached("partial-widened");
    // Every answer starts 5 bytes early and ends 5 bytes late.
    let full = h.get("/obj/30/wide?widen=5", &[]);
    assert_eq!(full.status, 200);
    assert_bytes(&full, "wide", 0, 29, "full GET");
    let part = h.get("/obj/30/wide?widen=5", &[("Range", "bytes=9-26")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("x-cache"), Some("HIT"));
    assert_bytes(&part, "wide", 9, 26, "range from the cache");
    // One request per slice, none for a rest.
    assert_eq!(h.origin_ranges_sorted(), slice_ranges(0..4, 8));
}

/// An answer that stops short with neither ETag nor Last-Modified cannot be
/// combined with an answer for the rest (they could be two versions, RFC
/// 9111 3.4), and it does not fail the request either (issue 24: "an
/// origin answering with another range than the one asked does not fail
/// the request"): the object is asked for whole, one answer, one version.
/// Until 2026-12-07 the client got a 502.
#[test]
fn an_answer_without_a_validator_that_stops_short_is_asked_for_whole() {
    let (_dir, h) = cached("partial-unversioned");
    // One slice of 6 bytes; the origin answers at most 3 bytes of a range.
    let resp = h.get("/obj/6/bare?cap=3&validators=none", &[]);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_bytes(&resp, "bare", 0, 5, "full GET");
    // The probe, then the whole object; never a range for the rest.
    assert_eq!(h.origin_ranges(), ["bytes=0-7", "-"]);
    // A client's range: the whole answer is relayed, as when an origin
    // ignores Range (RFC 9110 14.2), and stored; the next one is a hit.
    let (_dir2, h2) = cached("partial-unversioned-range");
    let target = "/obj/20/bare-range?cap=3&validators=none";
    let whole = h2.get(target, &[("Range", "bytes=2-12")]);
    assert_eq!(whole.status, 200);
    assert_bytes(&whole, "bare-range", 0, 19, "range relayed whole");
    assert_eq!(h2.origin_ranges(), ["bytes=0-7", "-"]);
    let part = h2.get(target, &[("Range", "bytes=2-12")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 2-12/20"));
    assert_eq!(part.header("x-cache"), Some("HIT"));
    assert_bytes(&part, "bare-range", 2, 12, "range from the cache");
}
