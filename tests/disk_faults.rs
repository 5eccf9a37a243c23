//! Disk faults are misses, never wrong bytes and never a crash (issue 21,
//! finding M2 of the 2026-12-05 review): a slice whose bytes changed on disk
//! while the node was down, or whose slot file was cut short under a running
//! node, leaves the cache and is fetched again; the fault is counted.

mod common;

use std::net::SocketAddr;

use common::cache::*;
use common::h2c::{self, metric};
use common::*;
use edgeslice::config::DriverChoice;
use edgeslice::server::runtime::Server;

const SLICE: u64 = 64 << 10;

/// A node on `origin` with an admin listener, as `setup` says.
fn node(origin: &DemoOrigin, setup: &Setup) -> (Server, SocketAddr) {
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), setup)));
    let admin = server.admin_addr().expect("an admin listener");
    (server, admin)
}

/// The slot file that holds slices of `SLICE` bytes.
fn slot_file(setup: &Setup) -> std::path::PathBuf {
    let dir = &setup.cache.as_ref().unwrap().dir;
    dir.join(format!("slots-{SLICE}.data"))
}

/// One byte of the first slot flipped while the node is down: on the next
/// start that slice is checked on its first read, found wrong, dropped and
/// fetched again; the other slices are checked and served. On 1fec599 the
/// changed byte was served as the object's.
#[test]
fn a_slice_changed_on_disk_while_stopped_is_fetched_again() {
    let setup = Setup {
        workers: 1,
        ..cached("bitrot", SLICE)
    };
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let len = 5 * SLICE;
    let target = format!("/obj/{len}/rot");
    let (server, _) = node(&origin, &setup);
    let first = get(server.local_addr(), &target, &[]).unwrap();
    assert_eq!(first.body, object_bytes("rot", 0, len - 1));
    server.shutdown();
    let path = slot_file(&setup);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() as u64 >= len, "the slices are in {path:?}");
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    origin.clear();
    let (server, admin) = node(&origin, &setup);
    let again = get(server.local_addr(), &target, &[]).unwrap();
    assert!(again.complete);
    assert!(
        again.body == object_bytes("rot", 0, len - 1),
        "a changed byte was served"
    );
    assert_eq!(origin.request_count(), 1, "{:?}", origin.requests());
    assert_eq!(metric(admin, "edgeslice_cache_slot_faults_total"), 1.0);
    assert_eq!(metric(admin, "edgeslice_cache_slices_checked_total"), 4.0);
    // Stored again, and every slice checked once: hits from now on.
    let third = get(server.local_addr(), &target, &[]).unwrap();
    assert_eq!(third.header("x-cache"), Some("HIT"));
    assert!(third.body == object_bytes("rot", 0, len - 1));
    assert_eq!(origin.request_count(), 1);
    assert_eq!(metric(admin, "edgeslice_cache_slices_checked_total"), 4.0);
    server.shutdown();
}

/// The slot file cut to nothing under a running node (a disk that lost
/// it, an operator's mistake): the next answer is either right or cut off
/// (never a complete-looking wrong body), its slices leave the cache, and
/// the answer after is whole, from the origin. On 1fec599 every later hit
/// of those slices failed (the short file was never dropped), and over TLS
/// the mapped bytes raised SIGBUS.
fn a_slot_file_cut_short_turns_its_slices_into_misses(driver: DriverChoice, h2: bool) {
    let setup = Setup {
        workers: 1,
        driver,
        ..cached("cut", SLICE)
    };
    let _dir = dir_guard(&setup);
    let origin = DemoOrigin::start().unwrap();
    let len = 5 * SLICE;
    let target = format!("/obj/{len}/cut");
    let (server, admin) = node(&origin, &setup);
    let addr = server.local_addr();
    let want = object_bytes("cut", 0, len - 1);
    let fetch = || -> (bool, Vec<u8>) {
        if h2 {
            h2c::block_on(async {
                let client = h2c::connect(addr).await;
                match h2c::send(&client, http::Method::GET, &target, &[], None).await {
                    Ok(r) => (true, r.body),
                    Err(_) => (false, Vec::new()),
                }
            })
        } else {
            let r = get(addr, &target, &[]).unwrap();
            (r.complete, r.body)
        }
    };
    assert_eq!(fetch(), (true, want.clone()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(slot_file(&setup))
        .unwrap()
        .set_len(0)
        .unwrap();
    let (complete, body) = fetch();
    assert!(
        !complete || body == want,
        "a complete answer with wrong bytes"
    );
    // Every slice past the file's new end is dropped at the first fault.
    assert_eq!(metric(admin, "edgeslice_cache_slot_faults_total"), 5.0);
    let (complete, body) = fetch();
    assert!(complete, "the answer after the fault was cut short too");
    assert!(body == want, "wrong bytes after the fault");
    assert_eq!(metric(admin, "edgeslice_cache_slot_faults_total"), 5.0);
    server.shutdown();
}

#[test]
fn a_slot_file_cut_short_turns_its_slices_into_misses_io_uring() {
    a_slot_file_cut_short_turns_its_slices_into_misses(DriverChoice::IoUring, false);
}

#[test]
fn a_slot_file_cut_short_turns_its_slices_into_misses_legacy() {
    a_slot_file_cut_short_turns_its_slices_into_misses(DriverChoice::Legacy, false);
}

#[test]
fn a_slot_file_cut_short_turns_its_slices_into_misses_h2() {
    a_slot_file_cut_short_turns_its_slices_into_misses(DriverChoice::IoUring, true);
}
