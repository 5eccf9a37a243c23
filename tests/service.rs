//! systemd notifications (`Type=notify`): the binary, run as a subprocess with
//! `NOTIFY_SOCKET` naming a datagram socket the test bound, says READY=1 once
//! it serves, RELOADING=1 and READY=1 around each SIGHUP, STOPPING=1 when
//! SIGTERM starts the drain; without a usable socket it serves all the same.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::process::*;
use common::*;

/// The `KEY=value` lines of the next notification.
fn next_notification(socket: &UnixDatagram) -> Vec<(String, String)> {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the read timeout");
    let text = std::str::from_utf8(&buf[..n]).expect("notifications are text");
    text.lines()
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line:?} in {text:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

fn value<'a>(notification: &'a [(String, String)], key: &str) -> Option<&'a str> {
    notification
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// CLOCK_MONOTONIC in microseconds, the clock of MONOTONIC_USEC.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) },
        0
    );
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[test]
fn ready_reloading_and_stopping_are_notified() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let cache = dir.path().join("cache");
    let conf = dir.config(&subprocess_config(origin.addr(), Some(&cache), admin));
    let mut proc = Edgeslice::start_with_env(&conf, &[("NOTIFY_SOCKET", &socket_path)]);

    // The first word is READY=1, and by then requests are served.
    let ready = next_notification(&socket);
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    let status = value(&ready, "STATUS").expect("READY=1 comes with a STATUS");
    let serving = format!("serving on {}, workers 1 (", proc.addr);
    assert!(status.starts_with(&serving), "{status:?}");
    assert!(status.contains("admin on 127.0.0.1:"), "{status:?}");
    assert!(
        status.contains(&format!("cache {} recovered in", cache.display())),
        "{status:?}"
    );
    let resp = get(proc.addr, "/obj/8/r", &[]).unwrap();
    assert_eq!(resp.body, object_bytes("r", 0, 7));

    // SIGHUP: RELOADING=1 stamped with the monotonic clock, then READY=1.
    let before = monotonic_usec();
    proc.signal(SIGHUP);
    let reloading = next_notification(&socket);
    let after = monotonic_usec();
    assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let stamp: u64 = value(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"));
    assert!(
        (before..=after).contains(&stamp),
        "MONOTONIC_USEC={stamp}, expected between {before} and {after}"
    );
    let reloaded = next_notification(&socket);
    assert_eq!(value(&reloaded, "READY"), Some("1"), "{reloaded:?}");
    let status = value(&reloaded, "STATUS").unwrap();
    assert!(status.starts_with(&serving), "{status:?}");
    assert!(status.contains("; reloaded "), "{status:?}");

    // A file that does not validate ends its reload with READY=1 too: the
    // running configuration serves on, and the status says so.
    std::fs::write(&conf, "[slice]\nslice_size = 0\n").unwrap();
    proc.signal(SIGHUP);
    let reloading = next_notification(&socket);
    assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let refused = next_notification(&socket);
    assert_eq!(value(&refused, "READY"), Some("1"), "{refused:?}");
    let status = value(&refused, "STATUS").unwrap();
    assert!(
        status.contains("reload refused, kept the running configuration"),
        "{status:?}"
    );
    let resp = get(proc.addr, "/obj/8/r", &[]).unwrap();
    assert_eq!(resp.status, 200);

    // SIGTERM: STOPPING=1 as the drain starts, then a clean exit.
    proc.signal(SIGTERM);
    let stopping = next_notification(&socket);
    assert_eq!(value(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    let status = value(&stopping, "STATUS").unwrap();
    assert!(status.starts_with("draining"), "{status:?}");
    let exit = proc.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
}

#[test]
fn without_a_usable_notify_socket_it_serves_all_the_same() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("notify-none");
    let conf = dir.config(&subprocess_config(origin.addr(), None, ""));

    // Unset (a shell, the tests): not a word about a service manager.
    let mut proc = Edgeslice::start(&conf);
    assert_eq!(get(proc.addr, "/obj/8/a", &[]).unwrap().status, 200);
    proc.signal(SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
    proc.wait_line(0, "stopped");
    let stderr = proc.stderr();
    assert!(!stderr.contains("service manager"), "{stderr}");

    // Set to a socket nobody bound: a warning, and serving goes on.
    let missing = dir.path().join("nobody.sock");
    let mut proc = Edgeslice::start_with_env(&conf, &[("NOTIFY_SOCKET", &missing)]);
    assert_eq!(get(proc.addr, "/obj/8/b", &[]).unwrap().status, 200);
    proc.wait_line(0, "service manager: could not send ready");
    proc.signal(SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(20)).success());
}
