//! How the cache is filled: sequential readers are prefetched (random ones
//! are not), small objects are cached whole as one slice, and whole answers
//! are cut into slices for later requests (or only relayed when cutting is off).

mod common;

use common::cache::*;
use common::*;

/// Read `/obj/{len}/{name}?delay_ms=10` as consecutive one-slice ranges, the
/// way a player does; returns (seconds, X-Cache values).
fn read_sequentially(h: &Harness, name: &str, slices: u64, s: u64) -> (f64, Vec<String>) {
    let target = format!("/obj/{}/{name}?delay_ms=10", slices * s);
    let started = std::time::Instant::now();
    let mut caches = Vec::new();
    for k in 0..slices {
        let range = format!("bytes={}-{}", k * s, (k + 1) * s - 1);
        let resp = h.get(&target, &[("Range", range.as_str())]);
        assert_eq!(resp.status, 206);
        assert_eq!(
            resp.body,
            object_bytes(name, k * s, (k + 1) * s - 1),
            "{range}"
        );
        caches.push(resp.header("x-cache").unwrap_or("-").to_string());
        // A player consumes what it got before asking for more.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (started.elapsed().as_secs_f64(), caches)
}

/// Sequential prefetch: a reader asking range after range finds the next
/// slices already cached; each slice still reaches the origin exactly once;
/// random access prefetches nothing.
#[test]
fn sequential_readers_are_prefetched_random_ones_are_not() {
    const S: u64 = 64 * 1024;
    const SLICES: u64 = 24;
    let plain = cached("no-prefetch", S);
    let _d1 = dir_guard(&plain);
    let h = Harness::start(plain);
    let (without, caches) = read_sequentially(&h, "seq", SLICES, S);
    assert!(caches.iter().all(|c| c == "MISS"), "{caches:?}");

    let mut setup = cached("prefetch", S);
    setup.extra = String::new();
    let _d2 = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\nprefetch_slices = 4\n")
        + "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    let (with, caches) = read_sequentially(&h, "seq", SLICES, S);
    let hits = caches.iter().filter(|c| *c == "HIT").count();
    assert!(
        hits >= (SLICES as usize) / 2,
        "prefetched ranges should be hits: {caches:?}"
    );
    let mut ranges = h.origin_ranges();
    ranges.sort();
    ranges.dedup();
    assert_eq!(
        ranges.len(),
        h.origin.request_count(),
        "every slice fetched once"
    );
    let metrics = get(h.server.admin_addr().unwrap(), "/metrics", &[]).unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    let (prefetched, used) = (
        value("edgeslice_prefetch_slices_total"),
        value("edgeslice_prefetch_used_total"),
    );
    assert!(prefetched > 0 && used <= prefetched);
    eprintln!(
        "prefetch: {SLICES} sequential 64 KiB ranges, 10 ms origin: {without:.2} s without, \
         {with:.2} s with prefetch_slices = 4 ({:.1}x); {hits} of {SLICES} were hits; \
         prefetched {prefetched}, used {used}, waste {}",
        without / with,
        prefetched - used
    );

    // Random access: ranges that do not start where the last one ended.
    h.origin.clear();
    let target = format!("/obj/{}/rnd", SLICES * S);
    for k in [7u64, 2, 15, 11] {
        let range = format!("bytes={}-{}", k * S + 5, k * S + 9);
        assert_eq!(h.get(&target, &[("Range", range.as_str())]).status, 206);
    }
    assert_eq!(
        h.origin.request_count(),
        4,
        "random access prefetches nothing"
    );
    h.server.shutdown();
}

/// Small-object fast path: an object under `min_slice_bytes` is fetched and
/// cached whole, as a single slice, and later served from it in one piece.
#[test]
fn small_objects_are_cached_whole_as_one_slice() {
    let setup = cached("small", 4);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\nmin_slice_bytes = 4096\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    let first = h.get("/obj/100/tiny", &[]);
    assert_eq!(first.body, object_bytes("tiny", 0, 99));
    assert_eq!(h.origin_ranges(), vec!["bytes=0-3", "bytes=0-4095"]);
    h.origin.clear();
    let again = h.get("/obj/100/tiny", &[("Range", "bytes=10-89")]);
    assert_eq!(again.status, 206);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, object_bytes("tiny", 10, 89));
    assert_eq!(h.origin.request_count(), 0);
    h.server.shutdown();
}

/// Origins that ignore Range (a 200 with a length), give no length at all
/// (chunked), or give no total (`bytes a-b/*`): the answer is relayed whole,
/// cut into slices on the way, and later requests are served sliced from the
/// cache.
#[test]
fn whole_answers_are_cut_into_slices_for_later_requests() {
    let setup = cached("whole", 4096);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // (target, object, length, origin requests of the first GET)
    for (target, name, len, first_requests) in [
        ("/norange/10000/nr", "nr", 10_000u64, 1),
        ("/chunked/100000/ck", "ck", 100_000, 1),
        // 206 with `bytes a-b/*`: then the whole object, without a Range.
        ("/nolen/10000/nl", "nl", 10_000, 2),
    ] {
        h.origin.clear();
        let first = h.get(target, &[]);
        assert_eq!(first.status, 200, "{target}");
        assert_eq!(first.body, object_bytes(name, 0, len - 1), "{target}");
        assert_eq!(h.origin.request_count(), first_requests, "{target}");
        h.origin.clear();
        let again = h.get(target, &[]);
        assert_eq!(again.status, 200, "{target}");
        assert_eq!(again.header("x-cache"), Some("HIT"), "{target}");
        assert_eq!(
            again.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(again.body, object_bytes(name, 0, len - 1), "{target}");
        let part = h.get(target, &[("Range", "bytes=5000-9999")]);
        assert_eq!(part.status, 206, "{target}");
        assert_eq!(part.body, object_bytes(name, 5000, 9999), "{target}");
        assert_eq!(
            h.origin.request_count(),
            0,
            "{target}: served from the cache"
        );
    }
}

/// A whole answer that names `Vary` (an origin that ignores Range) is stored
/// as the variant the request chose (RFC 9111 4.1), as a sliced one is: the
/// next request with the same value is a hit, another value a miss of its
/// own; the values are one list however they are written (`a, b`, `a,b`).
/// Before 7686c4b+1 such answers were only relayed, never stored.
#[test]
fn whole_answers_that_vary_are_stored_per_variant() {
    let setup = cached("whole-vary", 4096);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/norange/10000/wv?vary=X-Variant";
    let get = |variant: &str| h.get(target, &[("X-Variant", variant)]);
    for (variant, expected) in [
        ("blue", "MISS"),
        ("red, green", "MISS"),
        ("blue", "HIT"),
        ("red,green", "HIT"),
        ("red,\tgreen ", "HIT"),
        ("green, red", "MISS"),
    ] {
        let resp = get(variant);
        assert_eq!(resp.status, 200, "{variant}");
        // A whole answer relayed says no X-Cache; a hit says HIT.
        let hit = resp.header("x-cache") == Some("HIT");
        assert_eq!(hit, expected == "HIT", "{variant}: {:?}", resp.headers);
        assert_eq!(resp.body, object_bytes("wv", 0, 9999), "{variant}");
    }
    h.origin.clear();
    assert_eq!(get("blue").header("x-cache"), Some("HIT"));
    assert_eq!(h.origin.request_count(), 0);
}

/// Language tags and content codings are compared without case (RFC 9110
/// 12.5.4, 8.4.1): an answer that varies on them is one variant for
/// `en-US` and `EN-us`. Other fields keep their case; the order of a list
/// still tells variants apart (an origin may prefer the first of equals).
#[test]
fn variants_of_case_insensitive_fields_are_found_whatever_the_case() {
    let setup = cached("vary-case", 4);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    for (vary, sent, again, hit) in [
        ("Accept-Language", "en-US, de", "EN-us, DE", true),
        ("Accept-Encoding", "GZIP", "gzip", true),
        ("Accept-Language", "en, de", "de, en", false),
        ("X-Variant", "Red", "red", false),
    ] {
        let target = format!("/obj/16/vc-{vary}-{hit}?vary={vary}");
        let name = format!("vc-{vary}-{hit}");
        assert_eq!(
            h.get(&target, &[(vary, sent)]).header("x-cache"),
            Some("MISS")
        );
        let resp = h.get(&target, &[(vary, again)]);
        assert_eq!(resp.body, object_bytes(&name, 0, 15), "{vary}: {again}");
        let got = resp.header("x-cache") == Some("HIT");
        assert_eq!(got, hit, "{vary}: {sent} then {again}");
    }
}

/// A whole answer is stored with the header fields it came with (RFC 9111
/// 3.1), a `Content-Range` on a 200 included: the hit carries it as the
/// miss did. A Range asked of the stored object gets a 206 with its own
/// Content-Range. Before 7686c4b+4 the hit lost it (kept out of every
/// manifest as framing).
#[test]
fn a_whole_answer_keeps_its_content_range() {
    let setup = cached("whole-cr", 4096);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let target = "/norange/100/cr?cr=ananananan";
    let first = h.get(target, &[]);
    assert_eq!(first.header("content-range"), Some("ananananan"));
    h.origin.clear();
    let again = h.get(target, &[]);
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.header("content-range"), Some("ananananan"));
    assert_eq!(again.body, object_bytes("cr", 0, 99));
    let part = h.get(target, &[("Range", "bytes=10-19")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(part.body, object_bytes("cr", 10, 19));
    assert_eq!(h.origin.request_count(), 0);
}

/// A 304 that refreshes a stored whole answer (RFC 9111 4.3.4) keeps the
/// Content-Range it was stored with for the answers after it.
#[test]
fn a_whole_answers_content_range_outlives_a_304() {
    let setup = cached("whole-cr-304", 4096);
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    // Stored stale (max-age=0 with a validator): each use asks with If-None-Match.
    let target = "/norange/100/cr304?cr=ananananan&cc=max-age=0";
    let first = h.get(target, &[]);
    assert_eq!(first.header("content-range"), Some("ananananan"));
    for n in 1..=3 {
        let again = h.get(target, &[]);
        assert_eq!(again.status, 200, "use {n}");
        assert_eq!(again.header("content-range"), Some("ananananan"), "use {n}");
        assert_eq!(again.body, object_bytes("cr304", 0, 99), "use {n}");
    }
    // Each use after the first was a 304, not the object again.
    assert_eq!(h.origin.request_count(), 4);
}

/// `cut_whole_answers = false`: a whole answer is relayed only, not cached.
#[test]
fn whole_answers_are_only_relayed_when_cutting_is_off() {
    let setup = cached("whole-off", 4096);
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &setup)
        .replace("[slice]\n", "[slice]\ncut_whole_answers = false\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let h = Harness { origin, server };
    for _ in 0..2 {
        let resp = h.get("/norange/10000/off", &[]);
        assert_eq!(resp.body, object_bytes("off", 0, 9999));
    }
    assert_eq!(h.origin.request_count(), 2, "nothing was cached");
    h.server.shutdown();
}
