//! Freshness: TTL expiry revalidates once for the whole object, a changed
//! object is served old until expiry and new after (never a mix),
//! uncacheable answers always reach the origin, and stale-if-error /
//! stale-while-revalidate.

mod common;

use common::cache::*;
use common::demo::origin::versioned_name;
use common::*;

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Sleep until a little after the next whole second, so the few requests
/// that follow all fall within one second of the cache's 1 s clock.
fn sleep_to_second_start() {
    let now = unix_seconds();
    let until = now.floor() + 1.03;
    std::thread::sleep(std::time::Duration::from_secs_f64(until - now));
}

/// Sleep until an answer fetched by `fetched_by` (unix seconds) with
/// `max-age=max_age` is stale whether the cache counts in whole seconds or
/// not; lands just after a whole second, so the next second is left for the
/// requests that follow.
fn sleep_until_stale(fetched_by: f64, max_age: u64) {
    let until = (fetched_by + max_age as f64 + 0.2).ceil() + 0.03;
    let now = unix_seconds();
    if until > now {
        std::thread::sleep(std::time::Duration::from_secs_f64(until - now));
    }
}

#[test]
fn ttl_expiry_revalidates_once_for_the_whole_object() {
    let setup = cached("ttl", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/obj/32/t?cc=max-age=1";
    let first = h.get(target, &[]);
    let fetched_by = unix_seconds();
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, object_bytes("t", 0, 31));
    h.origin.clear();
    sleep_until_stale(fetched_by, 1);
    let stale = h.get(target, &[]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, object_bytes("t", 0, 31));
    let requests = h.origin.requests();
    assert_eq!(
        requests.len(),
        1,
        "one revalidation: {:?}",
        h.origin_ranges()
    );
    assert!(
        requests[0].header("if-none-match").is_some(),
        "revalidation is conditional: {:?}",
        requests[0].headers
    );
    assert_eq!(requests[0].range.as_deref(), Some("bytes=0-3"));
    // The demo origin answered 304, so every slice is still good.
    assert_eq!(stale.header("x-cache"), Some("HIT"));
    h.origin.clear();
    let again = h.get(target, &[]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, object_bytes("t", 0, 31));
    assert_eq!(h.origin.request_count(), 0, "freshness was renewed");
}

#[test]
fn changed_before_expiry_serves_the_old_version_and_after_expiry_the_new_never_a_mix() {
    let setup = cached("changed", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/mut/32/m?cc=max-age=1";
    let v0 = object_bytes(&versioned_name("m", 0), 0, 31);
    let v1 = object_bytes(&versioned_name("m", 1), 0, 31);
    assert_ne!(v0, v1);
    // Start at the top of a second, so the cache stays fresh for what follows.
    sleep_to_second_start();
    let first = h.get(target, &[]);
    let fetched_by = unix_seconds();
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, v0);
    h.origin.set_version("m", 1);
    h.origin.clear();
    // Changed before expiry: the cache is fresh, so the old version is served.
    let fresh = h.get(target, &[]);
    assert_eq!(fresh.header("x-cache"), Some("HIT"));
    assert_eq!(fresh.body, v0);
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());

    sleep_until_stale(fetched_by, 1);
    let changed = h.get(target, &[]);
    assert_eq!(changed.status, 200);
    assert!(
        changed.body == v1,
        "after expiry: got {:?}, expected version 1 {:?} (version 0 is {:?})",
        changed.body,
        v1,
        v0
    );
    // One conditional request finds the change, and its answer is the new
    // version's first slice: then the 7 others (9 requests before 7686c4b+3,
    // which asked for the first slice again).
    assert_eq!(h.origin.request_count(), 8, "{:?}", h.origin_ranges());
    assert!(h.origin.requests()[0].header("if-none-match").is_some());
    h.origin.clear();
    let after = h.get(target, &[]);
    assert_eq!(after.header("x-cache"), Some("HIT"));
    assert_eq!(after.body, v1);
    let part = h.get(target, &[("Range", "bytes=3-29")]);
    assert_eq!(part.header("x-cache"), Some("HIT"));
    assert_eq!(part.body, v1[3..=29].to_vec());
    assert_eq!(h.origin.request_count(), 0, "{:?}", h.origin_ranges());
}

#[test]
fn uncacheable_answers_reach_the_origin_every_time() {
    let setup = cached("nostore", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for cc in ["no-store", "private"] {
        let target = format!("/obj/16/n-{cc}?cc={cc}");
        let name = format!("n-{cc}");
        for round in 0..2 {
            h.origin.clear();
            let resp = h.get(&target, &[]);
            assert_eq!(resp.status, 200, "{cc} round {round}");
            assert_eq!(resp.header("x-cache"), Some("MISS"), "{cc} round {round}");
            assert_eq!(resp.body, object_bytes(&name, 0, 15), "{cc} round {round}");
            assert_eq!(
                h.origin_ranges_sorted(),
                slice_ranges(0..4, 4),
                "{cc} round {round}"
            );
        }
    }
}

/// `must-understand` (RFC 9111 5.2.2.3): with `no-store` beside it, an
/// answer whose status this cache knows is stored (before, `no-store` kept
/// it out); one whose status it does not know never is.
#[test]
fn must_understand_answers_are_stored_when_the_status_is_known() {
    let setup = cached("mustunderstand", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let cc = "max-age=3600,no-store,must-understand";
    let object = format!("/obj/16/mu?cc={cc}");
    assert_eq!(h.get(&object, &[]).header("x-cache"), Some("MISS"));
    h.origin.clear();
    let again = h.get(&object, &[]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, object_bytes("mu", 0, 15));
    assert_eq!(h.origin.request_count(), 0);
    for status in [404, 299] {
        let target = format!("/status/{status}/mu?cc={cc}");
        for _ in 0..2 {
            assert_eq!(h.get(&target, &[]).status, status);
        }
    }
    // The 404 was asked once, the unknown 299 every time.
    assert_eq!(h.origin.request_count(), 3);
}

/// `no-cache` (RFC 9111 5.2.2.4) and `max-age=0` answers with a validator
/// are stored, but never used without asking the origin: each later request
/// sends one conditional request, and its 304 serves the stored answer
/// (4.3.3); an answer that changed is fetched anew. Without a validator
/// there is nothing to ask with: fetched whole each time. Before 7686c4b+3
/// they were never stored, so every request fetched every slice again.
#[test]
fn no_cache_answers_are_validated_before_each_use() {
    let setup = cached("nocache", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for cc in ["no-cache", "max-age=0", "max-age=3600,no-cache"] {
        let target = format!("/obj/16/nc?cc={cc}");
        let first = h.get(&target, &[]);
        assert_eq!(first.body, object_bytes("nc", 0, 15), "{cc}");
        for round in 0..2 {
            h.origin.clear();
            let resp = h.get(&target, &[]);
            assert_eq!(resp.status, 200, "{cc} round {round}");
            assert_eq!(resp.body, object_bytes("nc", 0, 15), "{cc} round {round}");
            let requests = h.origin.requests();
            assert_eq!(
                requests.len(),
                1,
                "{cc} round {round}: {:?}",
                h.origin_ranges()
            );
            assert!(
                requests[0].header("if-none-match").is_some(),
                "{cc} round {round}: the one request is conditional"
            );
            assert_eq!(resp.header("x-cache"), Some("HIT"), "{cc} round {round}");
        }
        let purge = HttpConnection::connect(h.addr())
            .unwrap()
            .request("PURGE", &target, &[], None)
            .unwrap();
        assert_eq!(purge.status, 200);
    }
}

/// stale-if-error (RFC 5861): past its expiry, with the origin down, the
/// cached object is still served within the window the origin gave; without
/// the window the client gets an error.
#[test]
fn stale_if_error_serves_the_cached_object_while_the_origin_is_down() {
    let setup = cached("stale-if-error", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let with_window = "/obj/16/sie?cc=max-age=1,stale-if-error=600";
    let without = "/obj/16/nowin?cc=max-age=1";
    let fetched_by = unix_seconds();
    assert_eq!(h.get(with_window, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(h.get(without, &[]).header("x-cache"), Some("MISS"));
    sleep_until_stale(fetched_by, 1);
    let Harness { origin, server } = h;
    drop(origin); // the origin is down: connections are refused
    let stale = get(server.local_addr(), with_window, &[]).expect("an answer");
    assert_eq!(stale.status, 200);
    assert!(stale.complete);
    assert_eq!(stale.body, object_bytes("sie", 0, 15));
    let gone = get(server.local_addr(), without, &[]).expect("an answer");
    assert!(gone.status >= 500, "got {}, expected a 5xx", gone.status);
    server.shutdown();
}

/// An object with no validator (no ETag, no Last-Modified) is revalidated
/// with a plain request: a changed object costs that one request (its
/// answer is the new version's), and with the origin down it is served
/// stale within stale-if-error (RFC 5861) like any other. Before 7686c4b+5
/// it was forgotten before asking, so stale-if-error could not apply.
#[test]
fn an_object_without_validators_is_revalidated_plainly() {
    let setup = cached("no-validators", 64);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let changing = "/mut/16/nvm?cc=max-age=1&validators=none";
    let down = "/obj/16/nvd?cc=max-age=1,stale-if-error=600&validators=none";
    let fetched_by = unix_seconds();
    let first = h.get(changing, &[]);
    assert!(first.header("etag").is_none() && first.header("last-modified").is_none());
    assert_eq!(first.body, object_bytes(&versioned_name("nvm", 0), 0, 15));
    assert_eq!(h.get(down, &[]).header("x-cache"), Some("MISS"));
    h.origin.set_version("nvm", 1);
    sleep_until_stale(fetched_by, 1);
    h.origin.clear();
    let changed = h.get(changing, &[]);
    assert_eq!(changed.body, object_bytes(&versioned_name("nvm", 1), 0, 15));
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 1, "{:?}", h.origin_ranges());
    assert!(requests[0].header("if-none-match").is_none());
    let Harness { origin, server } = h;
    drop(origin);
    let stale = get(server.local_addr(), down, &[]).expect("an answer");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, object_bytes("nvd", 0, 15));
    server.shutdown();
}

/// stale-while-revalidate (RFC 5861): past its expiry the object is served at
/// once, and one conditional request refreshes it in the background.
#[test]
fn stale_while_revalidate_serves_at_once_and_refreshes_in_the_background() {
    let setup = cached("swr", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/obj/16/swr?cc=max-age=1,stale-while-revalidate=600";
    let fetched_by = unix_seconds();
    assert_eq!(h.get(target, &[]).header("x-cache"), Some("MISS"));
    sleep_until_stale(fetched_by, 1);
    h.origin.clear();
    let stale = h.get(target, &[]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("x-cache"), Some("HIT"));
    assert_eq!(stale.body, object_bytes("swr", 0, 15));
    // The background revalidation: one conditional request, answered 304.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while h.origin.request_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let requests = h.origin.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].header("if-none-match").is_some());
}

/// RFC 9111 4.2.1 and 1.2.2: a `max-age` that is not delta-seconds
/// (negative, in single quotes) is invalid, and the answer is stale: it is
/// not served from the cache (it was, for `cache_ttl`). (A double-quoted
/// value, which is accepted, cannot be written in a request target: the
/// unit test `freshness_follows_rfc_9111_section_4_2` has it.)
#[test]
fn an_invalid_max_age_makes_the_answer_stale() {
    let setup = cached("maxage-invalid", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    assert!(!second_is_hit(&h, "/obj/32/neg?cc=max-age=-3600", "neg"));
    assert!(!second_is_hit(&h, "/obj/32/sq?cc=max-age='3600'", "sq"));
    assert!(second_is_hit(&h, "/obj/32/ok?cc=max-age=3600", "ok"));
}

/// RFC 9111 5.1: of an `Age` line holding a list, the first value counts
/// (`7200, 0` is older than `max-age=3600`; `0, 7200` is fresh).
#[test]
fn the_first_value_of_age_counts() {
    let setup = cached("age-first", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    assert!(!second_is_hit(&h, "/obj/32/old?age=7200,0", "old"));
    assert!(second_is_hit(&h, "/obj/32/young?age=0,7200", "young"));
}

/// RFC 9111 4.2.1 and 4.2.3: the lifetime `Expires` gives is counted from
/// `Date`, not from now, and the current age is the larger of `Age` and
/// how long ago `Date` was.
#[test]
fn expires_counts_from_date_and_age_is_spent() {
    let setup = cached("expires-date", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // Expires 300 s from now, but before Date (400 s from now): stale.
    assert!(!second_is_hit(
        &h,
        "/obj/32/e1?cc=none&date=400&expires=300",
        "e1"
    ));
    // 20 s of lifetime (Date 10 s ago, Expires in 10 s), Age 25: stale.
    assert!(!second_is_hit(
        &h,
        "/obj/32/e2?cc=none&date=-10&expires=10&age=25",
        "e2"
    ));
    // A fast Date: 10 s of lifetime, Age 15: stale.
    assert!(!second_is_hit(
        &h,
        "/obj/32/e3?cc=none&date=10&expires=20&age=15",
        "e3"
    ));
    // Date now, Expires in a minute: fresh.
    assert!(second_is_hit(
        &h,
        "/obj/32/e4?cc=none&date=0&expires=60",
        "e4"
    ));
}

/// RFC 9213: `CDN-Cache-Control`, when the origin sends a valid one (a
/// Structured Field Dictionary, RFC 9651), decides for this cache instead
/// of `Cache-Control`.
#[test]
fn cdn_cache_control_decides_over_cache_control() {
    let setup = cached("cdn-cc", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    assert!(!second_is_hit(&h, "/obj/32/c0?cdn=max-age=0", "c0"));
    assert!(!second_is_hit(&h, "/obj/32/c1?cdn=no-store", "c1"));
    assert!(!second_is_hit(&h, "/obj/32/c2?cdn=private", "c2"));
    assert!(second_is_hit(
        &h,
        "/obj/32/c3?cdn=max-age=3600&cc=no-store",
        "c3"
    ));
    // Not a valid Structured Field Dictionary: ignored, Cache-Control decides.
    assert!(!second_is_hit(
        &h,
        "/obj/32/c4?cdn=max-age=3600,!!!&cc=no-store",
        "c4"
    ));
    assert!(second_is_hit(
        &h,
        "/obj/32/c5?cdn=max-age=0,!!!&cc=max-age=60",
        "c5"
    ));
}

/// RFC 9111 4.2.3 and 5.1, RFC 9110 6.6.1: an answer served from the cache
/// carries the age it had when it came (its Age) plus the time it was kept,
/// and the Date it was made with.
#[test]
fn a_hit_keeps_the_age_it_came_with_and_its_date() {
    let setup = cached("age-date", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let first = h.get("/obj/32/aged?age=30&date=-5", &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let date = first.header("date").expect("a Date").to_string();
    let hit = h.get("/obj/32/aged?age=30&date=-5", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let age: u64 = hit
        .header("age")
        .expect("an Age")
        .parse()
        .expect("Age is a number");
    assert!(age >= 30, "Age {age}: the 30 s it came with were lost");
    assert_eq!(
        hit.header("date"),
        Some(date.as_str()),
        "the stored answer's Date"
    );
}

/// RFC 9111 4.3.4: the headers of a 304 that revalidates a stored answer
/// update it; the answer served then, and later hits, carry the new ones.
#[test]
fn a_304_updates_the_stored_headers() {
    let setup = cached("update304", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/obj/32/upd?cc=max-age=1&numbered=1";
    let first = h.get(target, &[]);
    let fetched_by = unix_seconds();
    assert_eq!(first.header("x-origin-request"), Some("1"));
    sleep_until_stale(fetched_by, 1);
    // The revalidation is the path's next request (after the probe and 7 slices).
    let next = (h.origin.request_count() + 1).to_string();
    let revalidated = h.get(target, &[]);
    assert_eq!(revalidated.body, object_bytes("upd", 0, 31));
    assert_eq!(
        revalidated.header("x-origin-request"),
        Some(next.as_str()),
        "the 304's header replaces the stored one"
    );
    let hit = h.get(target, &[]);
    assert_eq!(
        hit.header("x-origin-request"),
        Some(next.as_str()),
        "and it is stored"
    );
}

/// A HEAD on a stale object, sent as a HEAD (RFC 9111 4.3.5).
fn head(h: &Harness, target: &str) -> HttpResponse {
    HttpConnection::connect(h.addr())
        .and_then(|mut c| c.request("HEAD", target, &[], None))
        .expect("a HEAD answer")
}

/// RFC 9111 4.3.5: a HEAD on a stale object is revalidated with a HEAD, not
/// a GET that moves a slice. A 304 to it (the object has validators) or a
/// 200 whose validators and `Content-Length` are the stored ones (it has
/// none) freshens every slice, and a 200's fields update the stored ones.
/// Before f88eec5+1 the HEAD became a GET of slice 0, and an object without
/// validators was replaced by its answer.
#[test]
fn a_head_on_a_stale_object_is_revalidated_with_a_head() {
    let setup = cached("head-reval", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let with_validators = "/obj/32/hv?cc=max-age=1";
    // One slice (the object is shorter than the 4 bytes' grid would allow
    // without validators: it is stored whole, as one slice of 64).
    let without = "/obj/3/hn?cc=max-age=1&numbered=1&validators=none";
    let fetched_by = unix_seconds();
    assert_eq!(h.get(with_validators, &[]).header("x-cache"), Some("MISS"));
    let first = h.get(without, &[]);
    assert_eq!(first.header("x-origin-request"), Some("1"));
    assert_eq!(h.get(without, &[]).header("x-cache"), Some("HIT"));
    sleep_until_stale(fetched_by, 1);
    h.origin.clear();

    let answer = head(&h, with_validators);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some("32"));
    let asked = h.origin.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].method, "HEAD", "{asked:?}");
    assert!(asked[0].header("if-none-match").is_some(), "{asked:?}");
    assert_eq!(asked[0].range, None, "a HEAD asks for no range");

    let answer = head(&h, without);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-cache"), Some("HIT"));
    assert_eq!(
        answer.header("x-origin-request"),
        Some("2"),
        "the HEAD's fields update the stored ones"
    );
    let asked = h.origin.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[1].method, "HEAD");

    h.origin.clear();
    let hit = h.get(with_validators, &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, object_bytes("hv", 0, 31));
    let hit = h.get(without, &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("x-origin-request"), Some("2"));
    assert_eq!(hit.body, object_bytes("hn", 0, 2));
    assert_eq!(h.origin.request_count(), 0, "both were freshened");
}

/// RFC 9111 4.3.5: a HEAD's answer that does not vouch for the stored
/// version (another `ETag`, another `Content-Length`) goes to the client as
/// it is and leaves the object stale: the next GET revalidates it with a
/// GET and gets the new version whole, never a mix.
#[test]
fn a_head_answer_for_another_version_is_relayed_and_leaves_the_object_stale() {
    let setup = cached("head-other", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let changing = "/mut/32/hm?cc=max-age=1";
    let growing = "/len-changes/3/hl?cc=max-age=1&validators=none";
    let v0 = object_bytes(&versioned_name("hm", 0), 0, 31);
    let v1 = object_bytes(&versioned_name("hm", 1), 0, 31);
    let fetched_by = unix_seconds();
    let first = h.get(changing, &[]);
    assert_eq!(first.body, v0);
    let old_etag = first.header("etag").expect("an ETag").to_string();
    assert_eq!(h.get(growing, &[]).header("content-length"), Some("4"));
    h.origin.set_version("hm", 1);
    sleep_until_stale(fetched_by, 1);
    h.origin.clear();

    let answer = head(&h, changing);
    assert_eq!(answer.status, 200);
    let new_etag = answer.header("etag").expect("the origin's ETag");
    assert_ne!(new_etag, old_etag, "the origin's answer, relayed");
    assert!(
        answer
            .header("cache-status")
            .is_some_and(|v| v.contains("fwd=stale") && v.contains("fwd-status=200")),
        "{:?}",
        answer.header("cache-status")
    );
    let answer = head(&h, growing);
    assert_eq!(answer.header("content-length"), Some("5"));
    let asked = h.origin.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked.iter().all(|r| r.method == "HEAD"), "{asked:?}");

    h.origin.clear();
    let changed = h.get(changing, &[]);
    assert_eq!(changed.body, v1, "the new version, whole");
    let asked = h.origin.requests();
    assert_eq!(asked[0].method, "GET");
    assert!(
        asked[0].header("if-none-match").is_some(),
        "still stale: revalidated"
    );
    // Still stale: asked again (and, grown past one slice with no
    // validator, asked whole once more), the length of the latest answer.
    let grown = h.get(growing, &[]);
    let len: usize = grown.header("content-length").unwrap().parse().unwrap();
    assert!(len > 5, "asked again: {len}");
    assert_eq!(grown.body, object_bytes("hl", 0, len as u64 - 1));
}

/// A final status other than 200 that the origin gives freshness is stored
/// whole and answered as it was (RFC 9111 3; 4.2.2 for a status cacheable
/// by default with only a Last-Modified: a tenth of its age), whatever the
/// later request's Range; one without freshness is not stored, nor is a
/// heuristic applied to a status not cacheable by default unless the
/// answer is marked `public` (RFC 9111 3, 4.2.2). Before
/// 7686c4b+2 only 200 and 206 answers were stored.
#[test]
fn other_statuses_with_freshness_are_stored_whole() {
    let setup = cached("status", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // (target, stored, status, body)
    let cases: [(&str, bool, u16, &[u8]); 10] = [
        ("/status/404/a?cc=max-age=60", true, 404, b"status 404\n"),
        ("/status/301/b?cc=max-age=60", true, 301, b"status 301\n"),
        ("/status/500/c?cc=max-age=60", true, 500, b"status 500\n"),
        ("/status/204/d?cc=max-age=60", true, 204, b""),
        // Heuristic: Last-Modified 1000 s ago, fresh for 100 s.
        ("/status/410/e?lm=-1000", true, 410, b"status 410\n"),
        ("/status/404/f", false, 404, b"status 404\n"),
        ("/status/403/g?lm=-1000", false, 403, b"status 403\n"),
        // `public` makes any final status storable, with the heuristic
        // (4.2.2); a server error so marked is the origin's answer: relayed
        // at once, not retried.
        (
            "/status/403/i?lm=-1000&cc=public",
            true,
            403,
            b"status 403\n",
        ),
        (
            "/status/599/j?lm=-1000&cc=public",
            true,
            599,
            b"status 599\n",
        ),
        (
            "/status/404/h?cc=max-age=60,no-store",
            false,
            404,
            b"status 404\n",
        ),
    ];
    for (target, stored, status, body) in cases {
        let sep = if target.contains('?') { '&' } else { '?' };
        let target = &format!("{target}{sep}numbered=1");
        let first = h.get(target, &[]);
        assert_eq!(first.status, status, "{target}");
        assert_eq!(first.body, body, "{target}");
        assert_eq!(first.header("x-origin-request"), Some("1"), "{target}");
        let again = h.get(target, &[("Range", "bytes=0-3")]);
        assert_eq!(again.status, status, "{target}: answered as stored, whole");
        assert_eq!(again.body, body, "{target}");
        let expected = if stored { "1" } else { "2" };
        assert_eq!(
            again.header("x-origin-request"),
            Some(expected),
            "{target}: {}",
            if stored { "a hit" } else { "not stored" }
        );
        if status == 204 {
            assert_eq!(again.header("content-length"), None, "{target}");
        }
    }
}
