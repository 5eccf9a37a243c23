//! Hostile input against a POP (review 2026-12-05, T5 and T6): a client can
//! neither mark peers down nor get past the token.

mod common;

use std::collections::HashMap;

use common::pop::{assert_once_per_slice, Pop, SLICE};
use common::{get, raw_once};

/// Every peer of `node` as /status shows it: address to state.
fn peer_states(pop: &Pop, node: usize) -> HashMap<String, String> {
    let status = pop.status(node);
    status["cluster"]["peers"]
        .as_array()
        .expect("cluster.peers")
        .iter()
        .map(|p| {
            let addr = p["addr"].as_str().unwrap().to_string();
            (addr, p["state"].as_str().unwrap().to_string())
        })
        .collect()
}

/// T6 (H7): objects the origin answers 403 or 500, asked through one node,
/// are answered as the origin answered (relayed by their home), and no peer
/// is marked down for it: on f2b8ad1 one such request marked the home down,
/// then each stand-in, and the node fetched every peer's share itself.
#[test]
fn an_origin_error_relayed_by_a_peer_does_not_mark_it_down() {
    let pop = Pop::start("h7");
    for i in 0..6 {
        let status = if i % 2 == 0 { 403 } else { 500 };
        let target = format!("/status/{status}/deny-{i}");
        let resp = get(pop.addr(0), &target, &[]).unwrap();
        assert_eq!(resp.status, status, "{target}");
    }
    let states = peer_states(&pop, 0);
    for node in 1..3 {
        assert_eq!(states[&pop.addrs[node].to_string()], "up", "{states:?}");
    }
    // A 403 costs the origin one request for the POP; a 500 the home's tries.
    let asked = |name: &str| {
        pop.origin
            .requests()
            .iter()
            .filter(|r| r.target.ends_with(name))
            .count()
    };
    assert_eq!(
        asked("deny-0"),
        1,
        "a 403 asked of the origin more than once"
    );
    assert!(
        asked("deny-1") <= 4,
        "a 500 was asked {} times",
        asked("deny-1")
    );
    // The POP still fetches each slice once.
    let len = 12 * SLICE;
    pop.get_whole(0, "after.bin", len);
    pop.get_whole(1, "after.bin", len);
    assert_once_per_slice(&pop.origin_counts("after.bin"), len);
}

/// A node that refuses a peer's token says so (X-Edgeslice-Peer-Error), so
/// the asking node can tell its peer's failure from an answer it relays.
#[test]
fn a_refused_token_is_marked_as_the_peer_s_own_failure() {
    let pop = Pop::start("h7-token");
    let wire = "GET /obj/64/t.bin HTTP/1.1\r\nHost: x\r\nX-Edgeslice-Peer: wrong\r\n\r\n";
    let resp = raw_once(pop.addr(1), wire.as_bytes());
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("x-edgeslice-peer-error"), Some("token"));
    // An origin's 403 relayed to a client carries no such mark.
    let resp = get(pop.addr(1), "/status/403/plain", &[]).unwrap();
    assert_eq!(resp.status, 403);
    assert!(resp.header("x-edgeslice-peer-error").is_none());
}

/// Requests every peer of `node` has been sent, summed from its metrics.
fn peer_requests(pop: &Pop, node: usize) -> f64 {
    (0..3)
        .filter(|&n| n != node)
        .map(|n| {
            let name = format!("edgeslice_peer_requests_total{{peer=\"{}\"}}", pop.addrs[n]);
            pop.metric(node, &name)
        })
        .sum()
}

/// T5: PURGE and the peer token. (a) a PURGE from an address not allowed,
/// (b) with a wrong peer token, (c) with a wrong purge token, (d) a GET with
/// two peer-token fields, the first wrong: 403, with no origin or peer
/// request. (e) the right token first: served, and the origin never sees
/// the field. (Passed on f2b8ad1 too: kept as the review's test.)
#[test]
fn purge_and_the_peer_token_refuse_what_they_should() {
    let lines = "purge_allow = [\"10.0.0.0/8\"]\npurge_token = \"purge-secret\"\n";
    let pop = Pop::start_with_cache("t5", lines);
    // 16 slices: each has its home on one of the three nodes (the ring
    // follows the nodes' ports, which differ from run to run), so with 4
    // all of them were node 0's in about one run in 81 and no peer was asked.
    pop.get_whole(0, "p.bin", 16 * SLICE);
    let (origin_before, peers_before) = (pop.origin.request_count(), peer_requests(&pop, 0));
    assert!(peers_before > 0.0, "the warm-up asked no peer");
    let purge = |headers: &str| {
        let wire = format!(
            "PURGE /obj/{}/p.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n",
            16 * SLICE
        );
        raw_once(pop.addr(0), wire.as_bytes()).status
    };
    assert_eq!(purge(""), 403, "(a) an address not allowed");
    assert_eq!(
        purge("X-Edgeslice-Peer: wrong\r\n"),
        403,
        "(b) a wrong peer token"
    );
    assert_eq!(
        purge("Authorization: Bearer purge-secretx\r\n"),
        403,
        "(c) a wrong purge token"
    );
    let wire = format!(
        "GET /obj/64/q.bin HTTP/1.1\r\nHost: x\r\nX-Edgeslice-Peer: wrong\r\n\
         X-Edgeslice-Peer: {}\r\n\r\n",
        common::pop::TOKEN
    );
    assert_eq!(raw_once(pop.addr(0), wire.as_bytes()).status, 403, "(d)");
    assert_eq!(
        pop.origin.request_count(),
        origin_before,
        "the origin was asked"
    );
    assert_eq!(peer_requests(&pop, 0), peers_before, "a peer was asked");
    let wire = format!(
        "GET /obj/64/q.bin HTTP/1.1\r\nHost: x\r\nX-Edgeslice-Peer: {}\r\n\
         X-Edgeslice-Peer: wrong\r\n\r\n",
        common::pop::TOKEN
    );
    let resp = raw_once(pop.addr(0), wire.as_bytes());
    assert_eq!(resp.status, 200, "(e)");
    pop.origin_counts("q.bin"); // asserts no request carried the token
                                // The right purge token purges.
    assert_eq!(purge("Authorization: Bearer purge-secret\r\n"), 200);
}

/// L1: on a `[::]` listener an IPv4 client is `::ffff:127.0.0.1`; PURGE by
/// address matches it as 127.0.0.1 (on f2b8ad1 it matched no IPv4 network).
#[test]
fn purge_by_address_sees_ipv4_clients_of_a_dual_stack_listener() {
    let origin = common::DemoOrigin::start().unwrap();
    let setup = common::Setup {
        server: String::new(),
        ..common::cache::cached("l1-v6", SLICE)
    };
    let _dir = common::cache::dir_guard(&setup);
    let text = common::config_text(origin.addr(), &setup)
        .replace("listen = \"127.0.0.1:0\"", "listen = \"[::]:0\"");
    let server = common::start_server(&text);
    let port = server.local_addr().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(addr, "/obj/64/p6.bin", &[]).unwrap().status, 200);
    let wire = "PURGE /obj/64/p6.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_eq!(raw_once(addr, wire.as_bytes()).status, 200);
}

/// Three nodes whose peers talk TLS: each serves clients on a plain
/// listener and peers on its TLS listener (the addresses `[cluster]` names),
/// with a certificate for 127.0.0.1 from `ca`; a node's `trusted` CA is the
/// one it verifies its peers with.
struct TlsPop {
    origin: common::DemoOrigin,
    nodes: Vec<edgeslice::Server>,
    _dir: common::TempDir,
}

fn tls_pop(name: &str, trusts: [&common::tls::TestCa; 3], ca: &common::tls::TestCa) -> TlsPop {
    let origin = common::DemoOrigin::start().unwrap();
    let dir = common::TempDir::new(name);
    let tls = common::pop::free_addrs(3);
    let peers: Vec<String> = tls.iter().map(|a| format!("\"{a}\"")).collect();
    let nodes = (0..3)
        .map(|i| {
            let (cert, key) = ca.write_leaf(dir.path(), &format!("node{i}"), &["127.0.0.1"]);
            let trusted = dir.path().join(format!("trust{i}.pem"));
            std::fs::write(&trusted, trusts[i].pem()).unwrap();
            let text = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\ntls_listen = \"{}\"\n\
                 tls_cert = {cert:?}\ntls_key = {key:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n\
                 [origin]\naddress = \"{}\"\n[slice]\nslice_size = {SLICE}\n\
                 [cache]\ndir = {:?}\nmemory_bytes = 16777216\ndisk_bytes = 67108864\n\
                 [cluster]\nself = \"{}\"\npeers = [{}]\ntoken = \"{}\"\n\
                 peer_timeout_ms = 1000\nmarkdown_ms = 60000\ntls = true\nca_file = {trusted:?}\n",
                tls[i],
                origin.addr(),
                dir.path().join(format!("cache{i}")),
                tls[i],
                peers.join(", "),
                common::pop::TOKEN
            );
            common::start_server(&text)
        })
        .collect();
    TlsPop {
        origin,
        nodes,
        _dir: dir,
    }
}

fn origin_asks(origin: &common::DemoOrigin, name: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in origin
        .requests()
        .into_iter()
        .filter(|r| r.target.ends_with(name))
    {
        *counts.entry(r.range.unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

/// M8: peers can talk TLS, each verifying the others' certificates: three
/// nodes serve one object through each of them with one origin request per
/// slice (the peers served each other). A node that does not trust the
/// peers' CA never speaks to them in clear: it marks them down and fetches
/// from the origin itself, with every byte right.
#[test]
fn peers_talk_tls_and_verify_each_other() {
    let ca = common::tls::TestCa::new("pop-ca");
    let pop = tls_pop("m8", [&ca, &ca, &ca], &ca);
    let len = 12 * SLICE;
    for node in &pop.nodes {
        let resp = get(node.local_addr(), &format!("/obj/{len}/t.bin"), &[]).unwrap();
        assert!(resp.body == common::object_bytes("t.bin", 0, len - 1));
    }
    assert_once_per_slice(&origin_asks(&pop.origin, "t.bin"), len);
    drop(pop);

    let other = common::tls::TestCa::new("not-the-pop-ca");
    let pop = tls_pop("m8-bad", [&other, &ca, &ca], &ca);
    let resp = get(pop.nodes[0].local_addr(), &format!("/obj/{len}/u.bin"), &[]).unwrap();
    assert!(resp.body == common::object_bytes("u.bin", 0, len - 1));
    let admin = pop.nodes[0].admin_addr().unwrap();
    let status = get(admin, "/status", &[]).unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    let down = status["cluster"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "down")
        .count();
    assert!(
        down >= 1,
        "an unverified peer was not marked down: {status}"
    );
}
