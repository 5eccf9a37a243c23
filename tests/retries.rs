//! Retries, end to end: server errors retried until the slice succeeds or
//! the retries run out, never client errors; the backoff between attempts;
//! refused connections; a slice cut mid-body fetched again and resumed.
//!
//! Each test starts its own demo origin (faults on demand through the query:
//! `fail=N`, `cut=N`) and its own edgeslice with one worker; counts are
//! asserted on what reached the origin.

mod common;

use std::time::Instant;

use common::rig::*;
use common::{object_bytes, slice_ranges};

// ---------------------------------------------------------------------------
// Retries on server errors
// ---------------------------------------------------------------------------

/// 503 twice, then OK: the slice is asked again, the same Range each time,
/// until it succeeds, and the client gets the whole, correct answer.
#[test]
fn server_errors_are_retried_until_the_slice_succeeds() {
    // (what, target, request headers, slice size, status, body range,
    //  expected origin Ranges in order)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u64,
        u16,
        (u64, u64),
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "one-slice object, the probe fails twice",
            "/obj/16/a?fail=2",
            &[],
            16,
            200,
            (0, 15),
            vec!["bytes=0-15".to_string(); 3],
        ),
        (
            // The first origin request for the path is slice 2 of 4: the
            // failures land on a later slice of the object.
            "range from slice 2, slice 2 fails twice",
            "/obj/16/a?fail=2",
            &[("Range", "bytes=8-15")],
            4,
            206,
            (8, 15),
            [vec!["bytes=8-11".to_string(); 3], slice_ranges([3], 4)].concat(),
        ),
    ];
    for (what, target, headers, slice_size, status, (first, last), ranges) in cases {
        let rig = Rig::start(Knobs {
            slice_size,
            window: 1,
            ..Knobs::retries(3)
        });
        let resp = rig.get(target, headers);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}");
        assert!(
            resp.body == object_bytes("a", first, last),
            "{what}: wrong body bytes"
        );
        assert_eq!(rig.ranges(), ranges, "{what}: origin requests");
    }
}

/// When retries run out on a 5xx, the last 5xx is relayed as the origin sent it.
#[test]
fn retries_running_out_relay_the_last_server_error() {
    let rig = Rig::start(Knobs::retries(1));
    let resp = rig.get("/obj/16/r?fail=3", &[]);
    assert_eq!(resp.status, 503);
    assert!(resp.complete);
    assert_eq!(resp.body, b"injected failure\n", "the origin's own body");
    assert_eq!(
        rig.ranges(),
        vec!["bytes=0-15".to_string(); 2],
        "1 + 1 retry"
    );
}

/// A 500 on every request: exactly 1 + max_retries attempts, then the 500.
#[test]
fn permanent_server_error_is_tried_one_plus_max_retries_times() {
    for max_retries in [0, 1, 3] {
        let rig = Rig::start(Knobs::retries(max_retries));
        let resp = rig.get("/status/500/x", &[]);
        assert_eq!(resp.status, 500, "max_retries {max_retries}");
        assert_eq!(resp.body, b"status 500\n", "max_retries {max_retries}");
        assert_eq!(
            rig.origin.request_count(),
            1 + max_retries as usize,
            "max_retries {max_retries}: origin attempts"
        );
    }
}

/// A 4xx is the origin's answer, not a failure: never retried.
#[test]
fn client_errors_are_never_retried() {
    let cases = [
        ("/status/404/x", 404),
        ("/status/403/x", 403),
        ("/obj/16/x?fail=9&fail_status=404", 404),
        ("/obj/16/y?fail=9&fail_status=429", 429),
    ];
    for (target, status) in cases {
        let rig = Rig::start(Knobs::retries(3));
        let resp = rig.get(target, &[]);
        assert_eq!(resp.status, status, "{target}");
        assert!(resp.complete, "{target}");
        assert_eq!(rig.origin.request_count(), 1, "{target}: origin attempts");
    }
}

// ---------------------------------------------------------------------------
// Backoff spacing
// ---------------------------------------------------------------------------

/// Retries after a 503 wait 100, 200, 400 ms: the n-th attempt cannot reach
/// the origin before the sum of the backoffs before it.
#[test]
fn backoff_after_server_errors_doubles_from_100_ms() {
    let rig = Rig::start(Knobs::retries(3));
    let (resp, arrivals) = with_arrival_clock(&rig.origin, || rig.get("/obj/16/b?fail=3", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == object_bytes("b", 0, 15));
    assert_eq!(arrivals.len(), 4, "1 + 3 retries: {arrivals:?}");
    let earliest = [0, 100, 300, 700];
    for (n, (got, want)) in arrivals.iter().zip(earliest).enumerate() {
        assert_at_least(*got, ms(want), &format!("attempt {}", n + 1));
    }
    assert_under(arrivals[3], ms(700 + 5000), "the fourth attempt");
}

/// A refused connection is retried once at once, then with the backoff:
/// with 3 retries the waits are 0, 100 and 200 ms.
#[test]
fn refused_connection_is_retried_at_once_then_with_backoff() {
    let closed = closed_port();
    // One retry: no wait at all. Timed as the fastest of five, so that one
    // descheduled thread cannot fail it; a 100 ms backoff would show in every one.
    let server = proxy_for(closed, &Knobs::retries(1));
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
            assert_eq!(resp.status, 502, "refused with one retry");
            started.elapsed()
        })
        .min()
        .unwrap();
    assert!(
        fastest < ms(100),
        "the first retry of a refused connection waited: fastest of five took {fastest:?}"
    );
    drop(server);
    // Then 100 ms, then 200 ms.
    for (max_retries, earliest) in [(2, 100), (3, 300)] {
        let server = proxy_for(closed, &Knobs::retries(max_retries));
        let started = Instant::now();
        let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 502, "max_retries {max_retries}");
        assert_at_least(elapsed, ms(earliest), &format!("max_retries {max_retries}"));
        assert_under(
            elapsed,
            ms(earliest + 5000),
            &format!("max_retries {max_retries}"),
        );
    }
}

/// Nothing listens at the origin: a short plain-text 502, whatever the retries.
#[test]
fn refused_origin_is_a_short_bad_gateway() {
    let closed = closed_port();
    for max_retries in [0, 3] {
        let server = proxy_for(closed, &Knobs::retries(max_retries));
        let started = Instant::now();
        let resp = common::get(server.local_addr(), "/obj/16/x", &[]).expect("an answer");
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(resp.status, 502, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(resp.header("content-type"), Some("text/plain"), "{what}");
        assert!(
            !resp.body.is_empty() && resp.body.len() < 200 && resp.body.is_ascii(),
            "{what}: got body {:?}, expected a short explanation",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        // Backoffs 0 + 100 + 200 ms with three retries.
        let earliest = if max_retries == 3 { 300 } else { 0 };
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(earliest + 5000), &what);
    }
}

// ---------------------------------------------------------------------------
// Cut connections
// ---------------------------------------------------------------------------

/// The origin sends half a slice and closes: that slice alone is asked again
/// (same Range), the client's answer resumes after the bytes it already has
/// and is complete and byte-exact.
#[test]
fn slice_cut_mid_body_is_fetched_again_and_resumed() {
    const LEN: u64 = 400_000;
    const S: u64 = 65_536;
    let all: Vec<u64> = (0..=(LEN - 1) / S).collect();
    // (what, target, request headers, status, body range, cut slice, slices asked)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
        (u64, u64),
        u64,
        Vec<u64>,
    );
    let cases: Vec<Case> = vec![
        (
            "full GET, slice 0 cut",
            "/obj/400000/c?cut=1",
            &[],
            200,
            (0, LEN - 1),
            0,
            all.clone(),
        ),
        (
            "range from slice 3, slice 3 cut",
            "/obj/400000/c?cut=1",
            &[("Range", "bytes=200000-399999")],
            206,
            (200_000, LEN - 1),
            3,
            vec![3, 4, 5, 6],
        ),
    ];
    for (what, target, headers, status, (first, last), cut, asked) in cases {
        let rig = Rig::start(Knobs {
            slice_size: S,
            ..Knobs::retries(3)
        });
        let resp = rig.get(target, headers);
        assert_eq!(resp.status, status, "{what}");
        assert!(resp.complete, "{what}: the cut was not repaired");
        assert_eq!(resp.body.len() as u64, last - first + 1, "{what}");
        assert!(
            resp.body == object_bytes("c", first, last),
            "{what}: body bytes differ from the object"
        );
        let mut expected = slice_ranges(asked, S);
        expected.push(slice_ranges([cut], S)[0].clone());
        expected.sort();
        let mut got = rig.ranges();
        got.sort();
        // The last slice is short but asked for with a whole-slice Range.
        assert_eq!(
            got, expected,
            "{what}: one extra request, for the cut slice"
        );
    }
}

/// A second cut in a row is retried after the first backoff (100 ms); with
/// no retries allowed the cut aborts the response after a correct prefix.
#[test]
fn repeated_cuts_back_off_and_no_retries_abort() {
    const S: u64 = 65_536;
    let rig = Rig::start(Knobs {
        slice_size: S,
        ..Knobs::retries(3)
    });
    let started = Instant::now();
    let resp = rig.get("/obj/65536/k?cut=2", &[]);
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert!(resp.body == object_bytes("k", 0, S - 1));
    assert_eq!(rig.ranges(), vec!["bytes=0-65535".to_string(); 3]);
    assert_at_least(elapsed, ms(100), "cut, at once, cut, 100 ms, ok");

    let rig = Rig::start(Knobs {
        slice_size: S,
        ..Knobs::retries(0)
    });
    let resp = rig.get("/obj/131072/k?cut=1", &[]);
    assert_eq!(resp.status, 200, "the head went out before the cut");
    assert_prefix(&resp, "k", 131_072, S as usize / 2, "cut without retries");
    assert_eq!(rig.asked("bytes=0-65535"), 1, "no retries allowed");
    rig.assert_still_serving("cut without retries");
}

/// RFC 9111 4.2.1: a 5xx the origin gives explicit freshness is its
/// answer, relayed at once, not retried; so is a 501 with a Last-Modified
/// (cacheable by default, 4.2.2: heuristic freshness; retried before
/// 7686c4b+3). A bare 503 still is retried, and so is a 503 with only a
/// Last-Modified: no cache may reuse it, so it says nothing lasting.
#[test]
fn a_server_error_with_explicit_freshness_is_relayed_not_retried() {
    let rig = Rig::start(Knobs::retries(2));
    let mut asked = 0;
    for (target, status, retried) in [
        ("/status/503/fresh?cc=max-age=60", 503, false),
        ("/status/501/lm?lm=-1000", 501, false),
        ("/status/503/bare", 503, true),
        ("/status/503/lm?lm=-1000", 503, true),
    ] {
        let resp = rig.get(target, &[]);
        assert_eq!(resp.status, status, "{target}");
        asked += if retried { 3 } else { 1 };
        assert_eq!(rig.ranges().len(), asked, "{target}: {:?}", rig.ranges());
    }
}
