//! Answers the origin gives no freshness (no `Cache-Control` lifetime, no
//! `Expires`): by default RFC 9111 4.2.2's heuristic, a tenth of the time
//! since `Last-Modified` (at most `cache.heuristic_max_ttl`), and nothing
//! of the cache's own; `cache.cache_ttl` gives a 200 a lifetime instead.

mod common;

use common::cache::*;
use common::*;

/// The default configuration: no `cache_ttl` line.
fn default_ttl(name: &str) -> Setup {
    let mut setup = cached(name, 8);
    setup.cache.as_mut().expect("cached").ttl = 0;
    setup
}

/// (x-cache of the second GET, origin requests it made, whether the one it
/// made was conditional)
fn second_get(h: &Harness, target: &str, name: &str) -> (String, usize, bool) {
    let first = h.get(target, &[]);
    assert_eq!(first.status, 200, "{target}");
    assert_eq!(first.body, object_bytes(name, 0, 31), "{target}");
    h.origin.clear();
    let second = h.get(target, &[]);
    assert_eq!(second.status, 200, "{target}");
    assert_eq!(second.body, object_bytes(name, 0, 31), "{target}");
    let asked = h.origin.requests();
    let conditional = asked.iter().any(|r| r.header("if-none-match").is_some());
    let cache = second.header("x-cache").unwrap_or("-").to_string();
    (cache, asked.len(), conditional)
}

/// RFC 9111 4.2.2: "a cache MAY assign a heuristic expiration time when an
/// explicit time is not specified", typically "some fraction of the
/// interval since" `Last-Modified`. Without one, the default gives none:
/// an answer with an `ETag` is stored to be validated before each use
/// (4.3), one with no validator is not reused (the suite's `freshness-none`).
#[test]
fn by_default_an_answer_without_freshness_gets_only_the_heuristic() {
    let setup = default_ttl("heuristic-default");
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // Last-Modified in 1994: a day's heuristic lifetime.
    let (cache, asked, _) = second_get(&h, "/obj/32/lm?cc=none", "lm");
    assert_eq!((cache.as_str(), asked), ("HIT", 0), "Last-Modified");
    // An ETag alone: stored, validated before each use, served on the 304.
    let (cache, asked, conditional) = second_get(&h, "/obj/32/et?cc=none&validators=etag", "et");
    assert_eq!((asked, conditional), (1, true), "ETag only: {cache}");
    // Neither: not reused.
    let (cache, asked, _) = second_get(&h, "/obj/32/no?cc=none&validators=none", "no");
    assert_ne!(cache, "HIT", "no validator");
    assert!(asked >= 1, "no validator: the origin asked again");
}

/// `cache.heuristic_max_ttl = 0`: no heuristic lifetime either; an answer
/// with a `Last-Modified` is validated before each use.
#[test]
fn heuristic_max_ttl_zero_gives_no_heuristic_lifetime() {
    let setup = default_ttl("heuristic-none");
    let _dir = dir_guard(&setup);
    let h = Harness::start_with_cache_lines(setup, "heuristic_max_ttl = 0");
    let (_, asked, conditional) = second_get(&h, "/obj/32/lm0?cc=none", "lm0");
    assert_eq!((asked, conditional), (1, true), "validated");
}

/// `cache.cache_ttl` (the option for origins that send no freshness, as
/// nginx's `proxy_cache_valid`): a 200 without any stays fresh that long,
/// validators or not.
#[test]
fn cache_ttl_gives_a_200_without_freshness_a_lifetime() {
    let setup = cached("heuristic-ttl", 8);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for (target, name) in [
        ("/obj/32/t1?cc=none", "t1"),
        ("/obj/32/t2?cc=none&validators=etag", "t2"),
        ("/obj/32/t3?cc=none&validators=none", "t3"),
    ] {
        let (cache, asked, _) = second_get(&h, target, name);
        assert_eq!((cache.as_str(), asked), ("HIT", 0), "{target}");
    }
}

/// RFC 9111 1.2.2: a lifetime past what the cache can count is as long as
/// it can be ("the greatest positive integer it can represent"), not a
/// wrap-around (stale at once in a release build, a worker's panic in a
/// debug one), and whole seconds of it are not lost to rounding.
#[test]
fn a_lifetime_too_long_to_count_is_the_longest_there_is() {
    let setup = cached("heuristic-huge", 8);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for (target, name) in [
        ("/obj/32/h1?cc=max-age=99999999999999999999", "h1"),
        ("/obj/32/h2?cc=s-maxage=18446744073709551615", "h2"),
    ] {
        let (cache, asked, _) = second_get(&h, target, name);
        assert_eq!((cache.as_str(), asked), ("HIT", 0), "{target}");
        let hit = h.get(target, &[]);
        let status = hit.header("cache-status").unwrap_or("");
        let ttl: i64 = status
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("{target}: no ttl in {status:?}"));
        assert!(ttl > 1 << 40, "{target}: ttl {ttl}");
    }
}
