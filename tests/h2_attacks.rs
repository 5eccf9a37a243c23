//! The known HTTP/2 attacks, each against a real edgeslice over h2c with
//! frames written by hand: more streams than allowed, a header list too
//! large, rapid reset (in one burst, and trickled so every stream is
//! accepted first), a CONTINUATION flood, SETTINGS and PING floods, and a
//! client that opens no window. Each is refused or survived cheaply, and
//! the server goes on serving other clients.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::h2c::*;
use common::rig::*;
use common::{object_bytes, wait_for, ADMIN};

const REFUSED_STREAM: u32 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A rig of one worker with `server` lines and an admin listener.
fn rig(server: &str) -> Rig {
    Rig::start(Knobs {
        server: server.into(),
        origin: format!("\n{ADMIN}"),
        ..Knobs::default()
    })
}

/// A fresh h2 connection is served whole: the worker goes on.
fn assert_h2_still_serving(addr: SocketAddr, what: &str) {
    let resp = block_on(async {
        let client = connect(addr).await;
        get(&client, "/obj/16/alive", &[]).await
    });
    assert_eq!(resp.status, 200, "{what}");
    assert_eq!(resp.body, object_bytes("alive", 0, 15), "{what}");
}

/// `RST_STREAM` payload: the error code.
fn code(c: u32) -> [u8; 4] {
    c.to_be_bytes()
}

/// A SETTINGS payload of (identifier, value) pairs.
fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    params
        .iter()
        .flat_map(|(id, v)| [id.to_be_bytes().to_vec(), v.to_be_bytes().to_vec()].concat())
        .collect()
}

/// Streams past `h2_max_concurrent_streams` are refused with
/// `REFUSED_STREAM`; those within it are answered.
#[test]
fn streams_beyond_the_concurrent_limit_are_refused() {
    let rig = rig("h2_max_concurrent_streams = 2");
    let mut s = raw_connect(rig.addr());
    let mut wire = frame(SETTINGS, ACK, 0, &[]);
    for id in [1, 3, 5] {
        let block = get_block("/obj/16/slow?delay_ms=300");
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
    }
    s.write_all(&wire).unwrap();
    let (frames, _) = read_frames(&mut s, Duration::from_millis(800));
    let limit = frames
        .iter()
        .find(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .expect("the server's SETTINGS");
    assert!(
        limit.payload.chunks(6).any(|p| p == [0, 3, 0, 0, 0, 2]),
        "MAX_CONCURRENT_STREAMS = 2 in {:?}",
        limit.payload
    );
    let reset = |id| {
        frames
            .iter()
            .find(|f| f.kind == RST_STREAM && f.stream == id)
    };
    let refused = reset(5).expect("stream 5 reset");
    assert_eq!(refused.payload, code(REFUSED_STREAM));
    for id in [1, 3] {
        assert!(reset(id).is_none(), "stream {id} reset");
        let ended = frames
            .iter()
            .any(|f| f.stream == id && f.kind == DATA && f.flags & END_STREAM != 0);
        assert!(ended, "stream {id} answered");
    }
}

/// A header list over `h2_max_header_list_size` gets 431 from the h2
/// layer, reaches no origin, and the connection serves on.
#[test]
fn a_header_list_too_large_is_refused() {
    let rig = rig("h2_max_header_list_size = 1024");
    let big = "v".repeat(2000);
    block_on(async {
        let client = connect(rig.addr()).await;
        let refused = send(
            &client,
            http::Method::GET,
            "/obj/16/big",
            &[("x-big", &big)],
            None,
        )
        .await
        .expect("an answer");
        assert_eq!(refused.status, 431);
        let small = get(&client, "/obj/16/small", &[("x-small", "v")]).await;
        assert_eq!(small.body, object_bytes("small", 0, 15));
    });
    assert_eq!(rig.requests_for("big"), 0);
}

/// Rapid reset in one burst: streams reset before they are accepted count
/// against `h2_max_pending_accept_reset_streams` in the h2 crate, which
/// closes the connection with GOAWAY `ENHANCE_YOUR_CALM`.
#[test]
fn a_burst_of_rapid_resets_gets_goaway() {
    let rig = rig("");
    let admin = rig.server.admin_addr().unwrap();
    let mut s = raw_connect(rig.addr());
    let mut wire = frame(SETTINGS, ACK, 0, &[]);
    for i in 0..200u32 {
        let id = 2 * i + 1;
        let block = get_block(&format!("/obj/16/rr{i}?delay_ms=500"));
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        wire.extend(frame(RST_STREAM, 0, id, &code(0x8)));
    }
    s.write_all(&wire).unwrap();
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(2));
    assert_eq!(goaway_code(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
    assert!(closed, "the connection stays open");
    assert!(
        rig.requests_for("rr") < 50,
        "{} origin requests",
        rig.requests_for("rr")
    );
    wait_for(Duration::from_secs(1), "the close counted", || {
        (metric(admin, "edgeslice_h2_calm_closes_total") == 1.0).then_some(())
    });
    assert_h2_still_serving(rig.addr(), "after rapid reset");
}

/// Rapid reset trickled in small batches, so each stream is accepted and
/// started before its reset (which h2's pending-accept counter, set out of
/// reach here, does not see): the resets spend the control-frame budget,
/// and past it the connection gets GOAWAY `ENHANCE_YOUR_CALM`.
#[test]
fn trickled_resets_spend_the_control_frame_budget() {
    let rig = rig("h2_max_control_frames_per_sec = 40
h2_max_pending_accept_reset_streams = 100000");
    let admin = rig.server.admin_addr().unwrap();
    let mut s = raw_connect(rig.addr());
    s.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap();
    for batch in 0..30u32 {
        let ids: Vec<u32> = (0..4).map(|i| 2 * (batch * 4 + i) + 1).collect();
        let mut opened = Vec::new();
        let mut resets = Vec::new();
        for id in &ids {
            let block = get_block(&format!("/obj/16/tr{id}?delay_ms=2000"));
            opened.extend(frame(HEADERS, END_HEADERS | END_STREAM, *id, &block));
            resets.extend(frame(RST_STREAM, 0, *id, &code(0x8)));
        }
        // Opened, then reset once the streams are surely accepted; a write
        // fails once the server has closed the connection.
        if s.write_all(&opened).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
        if s.write_all(&resets).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(2));
    assert_eq!(goaway_code(&frames), Some(ENHANCE_YOUR_CALM));
    assert!(closed);
    // About the budget's worth of streams was started and reset, not all 120.
    let started = metric(admin, "edgeslice_h2_streams_total");
    let resets = metric(admin, "edgeslice_h2_client_resets_total");
    assert!(
        (10.0..=60.0).contains(&started),
        "{started} streams started"
    );
    assert!(
        resets >= 1.0 && resets <= started,
        "{resets} of {started} streams reset"
    );
    assert_h2_still_serving(rig.addr(), "after trickled resets");
}

/// HEADERS without END_HEADERS and then CONTINUATION frames without end:
/// the h2 crate counts them (and the header block's size) and closes the
/// connection with GOAWAY `ENHANCE_YOUR_CALM` long before the client is
/// done; what the client got written is mostly the sockets' buffers.
#[test]
fn a_continuation_flood_is_cut_off() {
    let rig = rig("");
    let mut s = raw_connect(rig.addr());
    s.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap();
    // A literal header whose value claims 1 MiB, never finished.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 0x04, b't', b'e', b's', b't'];
    block.extend([0x00, 0x01, b'x', 0x7f, 0x81, 0xff, 0x3f]);
    s.write_all(&frame(HEADERS, END_STREAM, 1, &block)).unwrap();
    let piece = frame(CONTINUATION, 0, 1, &[b'a'; 64]);
    let started = Instant::now();
    let mut sent = 0usize;
    while sent < 64 << 20 && started.elapsed() < Duration::from_secs(5) {
        if s.write_all(&piece).is_err() {
            break;
        }
        sent += piece.len();
    }
    // The sockets' buffers on loopback autotune to a few MiB: what was
    // written is bounded by them, far from the 64 MiB the client had.
    assert!(sent < 16 << 20, "{sent} bytes of CONTINUATION taken");
    let (frames, closed) = read_frames(&mut s, Duration::from_millis(500));
    assert!(closed, "the connection stays open");
    assert_eq!(goaway_code(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
    assert_h2_still_serving(rig.addr(), "after a CONTINUATION flood");
}

/// SETTINGS and PING floods: with the default budget the connection gets
/// GOAWAY `ENHANCE_YOUR_CALM`; with the budget out of the way, what the h2
/// crate does itself shows: it answers every frame, one at a time (never
/// queueing answers), and the connection still serves a request.
#[test]
fn settings_and_ping_floods() {
    let flood = 5000usize;
    let floods = [
        (
            "SETTINGS",
            frame(SETTINGS, 0, 0, &settings(&[(0x4, 65_535)])),
        ),
        ("PING", frame(PING, 0, 0, &[7; 8])),
    ];
    for (budget, calm) in [
        ("", true),
        ("h2_max_control_frames_per_sec = 100000000", false),
    ] {
        let rig = rig(budget);
        for (name, one) in &floods {
            let what = format!("{name} flood, budget {budget:?}");
            let mut s = raw_connect(rig.addr());
            let mut wire = frame(SETTINGS, ACK, 0, &[]);
            wire.extend(one.repeat(flood));
            let block = get_block("/obj/16/after-flood");
            wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
            s.write_all(&wire).unwrap();
            let (frames, closed) = read_frames(&mut s, Duration::from_millis(1500));
            let acks = frames
                .iter()
                .filter(|f| f.kind == one[3] && f.flags & ACK != 0)
                .count();
            let answered = frames
                .iter()
                .any(|f| f.stream == 1 && f.kind == DATA && f.flags & END_STREAM != 0);
            if calm {
                assert_eq!(goaway_code(&frames), Some(ENHANCE_YOUR_CALM), "{what}");
                assert!(closed, "{what}");
                assert!(acks <= 1000, "{what}: {acks} answers");
            } else {
                assert_eq!(goaway_code(&frames), None, "{what}");
                // The first SETTINGS (before the flood) is answered too.
                let want = flood + usize::from(*name == "SETTINGS");
                assert_eq!(acks, want, "{what}: every frame answered");
                assert!(answered, "{what}: the request after the flood");
            }
            assert_h2_still_serving(rig.addr(), &what);
        }
    }
}

/// A client that opens no window (SETTINGS_INITIAL_WINDOW_SIZE 0, no
/// WINDOW_UPDATE): its stream is reset after the send timeout, the request
/// ends, and the idle connection is closed; nothing stays held.
#[test]
fn a_zero_window_stream_is_timed_out_and_the_connection_freed() {
    let rig = rig("client_send_timeout_ms = 300\nclient_header_timeout_ms = 400");
    let admin = rig.server.admin_addr().unwrap();
    let mut s = raw_connect(rig.addr());
    let mut wire = frame(SETTINGS, 0, 0, &settings(&[(0x4, 0)]));
    wire.extend(frame(SETTINGS, ACK, 0, &[]));
    let block = get_block("/obj/1000/zero");
    wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    s.write_all(&wire).unwrap();
    let started = Instant::now();
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(3));
    let took = started.elapsed();
    let head = frames.iter().any(|f| f.kind == HEADERS && f.stream == 1);
    let data: usize = frames
        .iter()
        .filter(|f| f.kind == DATA)
        .map(|f| f.payload.len())
        .sum();
    let reset = frames
        .iter()
        .find(|f| f.kind == RST_STREAM && f.stream == 1);
    assert!(head, "the head goes out: {frames:?}");
    assert_eq!(data, 0, "no body byte without a window");
    assert!(reset.is_some(), "the stream is reset: {frames:?}");
    assert!(
        goaway_code(&frames).is_some(),
        "the idle connection gets GOAWAY"
    );
    assert!(closed, "the connection is closed (after {took:?})");
    wait_for(Duration::from_secs(1), "no request in flight", || {
        (metric(admin, "edgeslice_requests_in_flight") == 0.0).then_some(())
    });
    assert_h2_still_serving(rig.addr(), "after a zero-window client");
}

/// Garbage after the preface closes that connection only.
#[test]
fn garbage_after_the_preface_closes_only_that_connection() {
    let rig = rig("");
    let mut s = TcpStream::connect(rig.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nthis is not a frame at all, not at all")
        .unwrap();
    let (_, closed) = read_frames(&mut s, Duration::from_secs(1));
    assert!(closed);
    assert_h2_still_serving(rig.addr(), "after garbage");
    rig.assert_still_serving("HTTP/1.1 after garbage");
}
