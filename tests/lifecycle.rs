//! Life cycle: graceful shutdown lets in-flight responses finish; SIGTERM exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn shutdown_finishes_the_response_in_flight_and_stops_accepting() {
    let h = Harness::start(Setup {
        slice_size: 4 << 20,
        ..Setup::default()
    });
    let addr = h.addr();
    let client = thread::spawn(move || get(addr, "/stall/200000/s?stall_ms=600", &[]).unwrap());
    // Let the request reach the origin's stall before shutting down.
    while h.origin.request_count() == 0 {
        thread::sleep(Duration::from_millis(5));
    }
    let Harness { origin, server } = h;
    server.shutdown();
    let resp = client.join().unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the in-flight response was cut");
    assert_eq!(resp.body, object_bytes("s", 0, 199_999));
    assert!(
        get(addr, "/obj/10/x", &[]).is_err(),
        "still accepting after shutdown"
    );
    drop(origin);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let origin = DemoOrigin::start().unwrap();
    let dir = std::env::temp_dir().join(format!("edgeslice-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("edgeslice.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n[origin]\naddress = \"{}\"\n\
             [cache]\ndir = {:?}\nmemory_bytes = \"16MiB\"\ndisk_bytes = \"64MiB\"\n",
            origin.addr(),
            dir.join("cache")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The log line "edgeslice listening addr=127.0.0.1:PORT" names the port.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("edgeslice exited before listening")
            .unwrap();
        if let Some(rest) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
        {
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            break addr.trim_matches(|c: char| !c.is_ascii_digit()).to_string();
        }
    };
    let addr: std::net::SocketAddr = addr.parse().expect("listening address parses");
    let resp = get(addr, "/obj/1000/a", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("a", 0, 999));
    let pid = child.id() as i32;
    // SAFETY: sending a signal to the child this test started.
    assert_eq!(unsafe { libc_kill(pid, 15) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
