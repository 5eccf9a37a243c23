//! The cluster as an operator sees and changes it: slices counted by source
//! and peers' slices not stored twice, `/status` and `/metrics` per peer, a
//! restarted node serving its share from its own disk, membership changed by
//! SIGHUP, nodes that disagree about membership never looping, and routes
//! picked by the client's Host on every node.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::pop::{assert_once_per_slice, Pop, SLICE};
use common::{get_host, object_bytes, DemoOrigin};

/// Enough slices that each of three nodes is home to some: the chance
/// that one of them gets none of 24 is 3 x (2/3)^24, under 1 in 5000.
const LEN: u64 = 24 * SLICE;

/// Slices `node` sent to clients from its memory, its disk, peers and the
/// origin, once they add up to `total` (a request is counted just after
/// its last byte went out).
fn sources(pop: &Pop, node: usize, total: u64) -> [u64; 4] {
    let read = || {
        ["memory", "disk", "peer", "origin"].map(|source| {
            let name = format!("edgeslice_slices_total{{source=\"{source}\"}}");
            pop.metric(node, &name) as u64
        })
    };
    let what = format!("node {node} counting {total} slices");
    common::wait_for(Duration::from_secs(5), &what, || {
        let counts = read();
        (counts.iter().sum::<u64>() == total).then_some(counts)
    })
}

fn peer_metric(pop: &Pop, node: usize, name: &str, peer: usize) -> f64 {
    pop.metric(node, &format!("{name}{{peer=\"{}\"}}", pop.addrs[peer]))
}

#[test]
fn slices_are_counted_by_source_and_a_peers_slices_are_not_stored_again() {
    let pop = Pop::start("sources");
    pop.get_whole(0, "s.bin", LEN);
    let [_, _, from_peers, own] = sources(&pop, 0, 24);
    assert!(
        own > 0 && from_peers > 0,
        "own {own}, from peers {from_peers}"
    );

    // Warm, through the same node: its own share from its disk, the rest
    // from the peers again (not stored here), nothing from the origin.
    let before = pop.origin.request_count();
    pop.get_whole(0, "s.bin", LEN);
    assert_eq!(pop.origin.request_count(), before);
    assert_eq!(sources(&pop, 0, 48), [0, own, 2 * from_peers, own]);

    // Requests to peers are theirs, not the origin's: the nodes' origin
    // counters add up to what the origin saw.
    let origin_total: f64 = (0..3)
        .map(|n| pop.metric(n, "edgeslice_origin_requests_total"))
        .sum();
    assert_eq!(origin_total as usize, pop.origin.request_count());
    let asked: f64 = [1, 2]
        .iter()
        .map(|&p| peer_metric(&pop, 0, "edgeslice_peer_requests_total", p))
        .sum();
    assert!(asked >= 2.0 * from_peers as f64, "asked {asked}");
    for p in [1, 2] {
        assert_eq!(
            peer_metric(&pop, 0, "edgeslice_peer_failures_total", p),
            0.0
        );
        assert_eq!(peer_metric(&pop, 0, "edgeslice_peer_up", p), 1.0);
    }
    assert!(pop.metric(0, "edgeslice_peer_request_duration_seconds_count") >= asked);
    assert!(
        pop.metric(0, "edgeslice_peer_received_bytes_total") >= (2 * from_peers * SLICE) as f64
    );
}

#[test]
fn status_and_metrics_show_a_stopped_peer_down() {
    let mut pop = Pop::start("status");
    pop.stop(2);
    pop.get_whole(0, "d.bin", LEN);

    let status = pop.status(0);
    let peers = status["cluster"]["peers"]
        .as_array()
        .expect("cluster.peers");
    let by_addr: HashMap<String, &serde_json::Value> = peers
        .iter()
        .map(|p| (p["addr"].as_str().unwrap().to_string(), p))
        .collect();
    assert_eq!(by_addr.len(), 3, "{status}");
    let state = |n: usize| {
        by_addr[&pop.addrs[n].to_string()]["state"]
            .as_str()
            .unwrap()
    };
    assert_eq!(
        (state(0), state(1), state(2)),
        ("self", "up", "down"),
        "{status}"
    );
    let down = by_addr[&pop.addrs[2].to_string()];
    assert!(down["down_for_ms"].as_u64().unwrap() > 0, "{status}");
    assert!(down["failures"].as_u64().unwrap() >= 1, "{status}");

    assert_eq!(peer_metric(&pop, 0, "edgeslice_peer_up", 2), 0.0);
    assert_eq!(peer_metric(&pop, 0, "edgeslice_peer_up", 1), 1.0);
    // Marked down for the whole node at its first failure: only the
    // requests already in flight then (at most the 4 slices of the window)
    // failed, not one per slice homed there.
    let failures = peer_metric(&pop, 0, "edgeslice_peer_failures_total", 2);
    assert!((1.0..=4.0).contains(&failures), "{failures} failures");
}

#[test]
fn a_restarted_node_serves_its_share_from_its_own_disk() {
    let mut pop = Pop::start("restart");
    pop.get_whole(2, "r.bin", LEN);
    let [_, _, peer, own] = sources(&pop, 2, 24);
    assert!(own > 0 && peer > 0, "own {own}, peer {peer}");
    pop.stop(2);
    pop.restart(2);

    let before = pop.origin.request_count();
    pop.get_whole(2, "r.bin", LEN);
    assert_eq!(
        pop.origin.request_count(),
        before,
        "nothing from the origin"
    );
    // Its own share from its disk, the rest from the peers.
    assert_eq!(sources(&pop, 2, 24), [0, own, peer, 0]);
}

#[test]
fn sighup_changes_the_membership() {
    // Each node alone at first: every node fetches every slice itself.
    let mut pop = Pop::start_with("membership", "", |i, all| vec![all[i]]);
    pop.get_whole(0, "alone.bin", LEN);
    pop.get_whole(1, "alone.bin", LEN);
    let counts = pop.origin_counts("alone.bin");
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");

    let all = pop.addrs.clone();
    for node in 0..3 {
        pop.reload(node, all.clone());
    }
    for node in 0..3 {
        pop.get_whole(node, "pop.bin", LEN);
    }
    assert_once_per_slice(&pop.origin_counts("pop.bin"), LEN);
    let status = pop.status(1);
    assert_eq!(status["cluster"]["peers"].as_array().unwrap().len(), 3);
}

#[test]
fn nodes_that_disagree_about_membership_never_loop() {
    // Node 0 knows {0, 1}, node 1 knows all three, node 2 knows {1, 2}.
    let pop = Pop::start_with("lists", "", |i, all| match i {
        0 => vec![all[0], all[1]],
        1 => all.to_vec(),
        _ => vec![all[1], all[2]],
    });
    std::thread::scope(|s| {
        for node in 0..3 {
            let pop = &pop;
            s.spawn(move || pop.get_whole(node, "l.bin", LEN));
        }
    });
    // Each slice has at most one home per view of the ring: the origin is
    // asked at most once per view, whatever the nodes asked each other.
    let counts = pop.origin_counts("l.bin");
    assert_eq!(counts.len(), 24, "{counts:?}");
    assert!(counts.values().all(|&n| n <= 3), "{counts:?}");
    // A peer request is never sent on: each node asks a peer at most once
    // per slice it serves (and once for the probe), never in a cycle.
    for node in 0..3 {
        let sent: f64 = (0..3)
            .filter(|&p| p != node)
            .map(|p| peer_metric(&pop, node, "edgeslice_peer_requests_total", p))
            .sum();
        assert!(sent <= 25.0, "node {node} sent {sent} peer requests");
    }
    // Warm, through every node: at most once more per slice. A slice the
    // two views home differently can have been fetched, cold, by a node
    // for a peer while it followed its own fetch from another peer; then
    // nobody stored it, and the warm pass asks the origin for it once.
    pop.origin.clear();
    for node in [2, 1, 0] {
        pop.get_whole(node, "l.bin", LEN);
    }
    let warm = pop.origin_counts("l.bin");
    assert!(warm.values().all(|&n| n <= 1), "{warm:?}");
}

#[test]
fn peers_pick_the_route_of_the_clients_host() {
    // Host v.test goes to origin b with a Host of its own; the default
    // route is the Pop's origin, which must never see this object.
    let b = DemoOrigin::start().unwrap();
    let route = format!(
        "[[route]]\nhost = \"v.test\"\norigin = \"{}\"\nhost_header = \"b-internal\"\n",
        b.addr()
    );
    let pop = Pop::start_with("host", &route, |_, all| all.to_vec());
    for node in 0..3 {
        let resp = get_host(pop.addr(node), &format!("/obj/{LEN}/h.bin"), "v.test");
        assert_eq!(resp.status, 200);
        assert!(
            resp.body == object_bytes("h.bin", 0, LEN - 1),
            "node {node}"
        );
    }
    assert_eq!(pop.origin.request_count(), 0, "{:?}", pop.origin.requests());
    let mut counts = HashMap::new();
    for r in b.requests() {
        assert_eq!(r.header("host"), Some("b-internal"));
        *counts.entry(r.range.unwrap_or_default()).or_insert(0) += 1;
    }
    assert_once_per_slice(&counts, LEN);
}

#[test]
fn peers_dns_gives_the_membership_and_sighup_resolves_it_again() {
    let origin = DemoOrigin::start().unwrap();
    let addrs = common::pop::free_addrs(3);
    let cache = common::CacheSetup::fresh("cluster-dns");
    let _dir = common::TempDir(cache.dir.clone());
    let config = |other: std::net::SocketAddr| {
        // An address is a name that resolves to itself; this node is added.
        let text = common::pop::node_config(origin.addr(), addrs[0], &[addrs[0]], &cache);
        let text = text.replace(
            &format!("peers = [\"{}\"]", addrs[0]),
            &format!("peers_dns = \"{other}\"\npeers_dns_interval_s = 1"),
        );
        edgeslice::config::Config::from_toml(&text).expect("config")
    };
    let server = edgeslice::server::runtime::Server::start(&config(addrs[1])).unwrap();
    let admin = server.admin_addr().unwrap();
    let peers = || {
        let resp = common::get(admin, "/status", &[]).unwrap();
        let status: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut peers: Vec<String> = status["cluster"]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["addr"].as_str().unwrap().to_string())
            .collect();
        peers.sort();
        peers
    };
    let want = |other: std::net::SocketAddr| {
        let mut want = vec![addrs[0].to_string(), other.to_string()];
        want.sort();
        want
    };
    assert_eq!(peers(), want(addrs[1]));
    server.reload(&config(addrs[2])).unwrap();
    assert_eq!(peers(), want(addrs[2]));
    // The watcher re-resolves every second and finds nothing new.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(peers(), want(addrs[2]));
    server.shutdown();
}
