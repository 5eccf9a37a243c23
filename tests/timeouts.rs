//! Origin timeouts, end to end: an origin hanging before the head is a
//! gateway timeout, one hanging mid-body aborts the response after the head,
//! and the slice deadline aborts a slow slice (`stall_ms=N`, `delay_ms=N`).

mod common;

use std::time::Instant;

use common::rig::*;

/// The origin holds its response head for 8 s; head_timeout_ms = 300 turns
/// each attempt into a timeout: 504 long before the origin would answer.
#[test]
fn origin_hanging_before_the_head_is_a_gateway_timeout() {
    // (max_retries, earliest answer in ms: timeouts + backoffs)
    for (max_retries, earliest) in [(0u32, 300), (1, 300 + 100 + 300)] {
        let rig = Rig::start(Knobs::retries(max_retries).with_origin("head_timeout_ms = 300"));
        let started = Instant::now();
        let resp = rig.get("/obj/16/h?delay_ms=8000", &[]);
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(resp.status, 504, "{what}");
        assert!(resp.complete, "{what}");
        assert_eq!(
            rig.ranges(),
            vec!["bytes=0-15".to_string(); 1 + max_retries as usize],
            "{what}: origin attempts"
        );
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(6000), &what);
    }
}

/// The origin sends the head and half of every body, then stalls for 8 s.
/// The 200 head has gone out, so the connection is aborted after a correct
/// prefix; retries stall the same way and change nothing but the count.
#[test]
fn origin_hanging_mid_body_aborts_after_the_head() {
    const LEN: u64 = 4096;
    const S: u64 = 1024;
    // (max_retries, earliest abort in ms: read timeouts + backoffs)
    for (max_retries, earliest) in [(0u32, 300), (2, 300 + 100 + 300 + 200 + 300)] {
        let rig = Rig::start(Knobs {
            slice_size: S,
            ..Knobs::retries(max_retries).with_origin("read_timeout_ms = 300")
        });
        let started = Instant::now();
        let resp = rig.get("/obj/4096/m?stall_ms=8000", &[]);
        let elapsed = started.elapsed();
        let what = format!("max_retries {max_retries}");
        assert_eq!(
            resp.status, 200,
            "{what}: the head went out before the stall"
        );
        assert_eq!(resp.header("content-length"), Some("4096"), "{what}");
        // Slice 0 never completes: at most its first half reaches the client.
        assert_prefix(&resp, "m", LEN, S as usize / 2, &what);
        assert_eq!(
            rig.asked("bytes=0-1023"),
            1 + max_retries as usize,
            "{what}: attempts at slice 0"
        );
        assert_at_least(elapsed, ms(earliest), &what);
        assert_under(elapsed, ms(6000), &what);
        rig.assert_still_serving(&what);
    }
}

/// A stall shorter than read_timeout_ms but a slice longer than
/// slice_timeout_ms: the whole-slice deadline aborts it.
#[test]
fn slice_deadline_aborts_a_slow_slice() {
    let rig = Rig::start(Knobs {
        slice_size: 1024,
        ..Knobs::retries(0).with_origin("read_timeout_ms = 5000\nslice_timeout_ms = 400")
    });
    let started = Instant::now();
    let resp = rig.get("/obj/4096/d?stall_ms=3000", &[]);
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 200, "the head went out before the stall");
    // Without the deadline the stall would end and the body complete.
    assert_prefix(&resp, "d", 4096, 512, "slice deadline");
    assert_at_least(elapsed, ms(400), "slice deadline");
    assert_eq!(rig.asked("bytes=0-1023"), 1, "no retries allowed");
    rig.assert_still_serving("slice deadline");
}
