//! SIGHUP reload: a route added to the file is served after the signal, and
//! connections open across the reload keep working. Runs the binary as a
//! subprocess, since a signal is the subject.

mod common;

use common::process::*;
use common::*;

#[test]
fn sighup_adds_a_route_and_keeps_connections() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let dir = TempDir::new("reload");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(&conf, subprocess_config(a.addr(), None, "")).unwrap();
    let proc = Edgeslice::start(&conf);

    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (2, 0));
    a.clear();
    let mut kept = HttpConnection::connect(proc.addr).unwrap();
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "other.test")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    assert_eq!(a.request_count(), 2);
    a.clear();

    let route = format!("[[route]]\nhost = \"h.test\"\norigin = \"{}\"\n", b.addr());
    std::fs::write(&conf, subprocess_config(a.addr(), None, &route)).unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    proc.wait_line(seen, "reloaded routes and limits");

    // The connection opened before the reload still serves, with the new routes.
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "other.test")], None)
        .expect("keep-alive connection survives the reload");
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "h.test")], None)
        .unwrap();
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (2, 2));
    a.clear();
    b.clear();
    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (0, 2));
    b.clear();

    // An invalid file is refused and the running routes stay.
    let bad = format!(
        "[[route]]\nhost = \"h.test\"\norigin = \"{}\"\nslice_size = 0\n",
        a.addr()
    );
    std::fs::write(&conf, subprocess_config(a.addr(), None, &bad)).unwrap();
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    let refused = proc.wait_line(seen, "reload refused");
    assert!(refused.contains("route[0].slice_size"), "{refused}");
    let resp = kept
        .request("GET", "/obj/8/k", &[("Host", "h.test")], None)
        .expect("keep-alive connection survives a refused reload");
    assert_eq!(resp.body, object_bytes("k", 0, 7));
    let resp = get_host(proc.addr, "/obj/8/r", "h.test");
    assert_eq!(resp.body, object_bytes("r", 0, 7));
    assert_eq!((a.request_count(), b.request_count()), (0, 4));
}
