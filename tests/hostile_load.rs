//! Hostile load (review 2026-12-05, T7 and T8): idle or stalled clients cost
//! a worker neither CPU nor memory beyond what the configuration bounds, and
//! other clients are served meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, object_bytes, Harness, Setup};
use edgeslice::config::DriverChoice;

/// Tests that measure this process's CPU take turns.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// T7 (H6): a thousand connections that send only `P` (the first byte of
/// the HTTP/2 preface, and of POST/PUT) leave the worker idle: on f2b8ad1
/// each was peeked every millisecond. Other clients are served meanwhile,
/// and each `P` connection is closed at `client_header_timeout_ms`.
fn partial_prefaces_cost_nothing(driver: DriverChoice) {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let h = Harness::start(Setup {
        workers: 1,
        driver,
        server: "client_header_timeout_ms = 4000\n".into(),
        ..Setup::default()
    });
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(h.addr()).expect("connect");
            s.write_all(b"P").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds();
    let window = Instant::now();
    let mut served = 0;
    while window.elapsed() < Duration::from_secs(2) {
        let resp = get(h.addr(), "/obj/64/alive", &[]).unwrap();
        assert_eq!(resp.body, object_bytes("alive", 0, 63));
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let spent = cpu_seconds() - before;
    assert!(served >= 10, "only {served} GETs served in 2 s");
    assert!(
        spent < 0.3,
        "{spent:.2} CPU seconds in 2 s with 1000 connections that sent only \"P\""
    );
    // Closed at the header timeout (4 s after they opened), not before.
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a P connection got an answer");
    }
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_millis(3900),
        "closed after {closed_after:?}, before the 4 s header timeout"
    );
    // A connection that completes the preface after a pause is HTTP/2.
    let mut s = TcpStream::connect(h.addr()).unwrap();
    s.write_all(b"PRI * HT").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"TP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&common::h2c::frame(common::h2c::SETTINGS, 0, 0, &[]))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[3], common::h2c::SETTINGS, "the server's SETTINGS");
    // And one that turns out to be `PUT` after a pause is HTTP/1.1.
    let mut s = TcpStream::connect(h.addr()).unwrap();
    s.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut conn = common::HttpConnection::over(s);
    let resp = conn
        .raw(b"UT /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hi");
}

#[test]
fn partial_prefaces_cost_nothing_io_uring() {
    partial_prefaces_cost_nothing(DriverChoice::Auto);
}

#[test]
fn partial_prefaces_cost_nothing_legacy() {
    partial_prefaces_cost_nothing(DriverChoice::Legacy);
}
