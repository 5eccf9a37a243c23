//! Three nodes of one POP in this process, each with its own cache, in front
//! of one demo origin that counts its requests: each slice is fetched from
//! the origin once for the whole POP, peers prove themselves with the token,
//! and a stopped node costs only its share.

mod common;

use std::net::{SocketAddr, TcpListener};

use common::pop::{assert_once_per_slice, free_addrs, node_config, Pop, SLICE, TOKEN};
use common::{get, object_bytes, raw_once, CacheSetup, DemoOrigin, TempDir};

#[test]
fn a_cold_object_through_three_nodes_costs_one_origin_request_per_slice() {
    let pop = Pop::start("cold");
    let len = 10 * SLICE;
    for node in 0..3 {
        pop.get_whole(node, "a.bin", len);
    }
    assert_once_per_slice(&pop.origin_counts("a.bin"), len);

    // Warm: every node serves it again, the origin hears nothing more.
    let before = pop.origin.request_count();
    for node in [2, 0, 1] {
        pop.get_whole(node, "a.bin", len);
    }
    assert_eq!(
        pop.origin.request_count(),
        before,
        "a warm pass went to the origin"
    );
}

#[test]
fn a_range_through_another_node_is_fetched_at_its_home_once() {
    let pop = Pop::start("range");
    let len = 12 * SLICE;
    // Different parts through different nodes, then the whole through each.
    for (node, range) in [(0, "bytes=20-70"), (1, "bytes=100-191"), (2, "bytes=0-5")] {
        let resp = get(
            pop.addr(node),
            &format!("/obj/{len}/r.bin"),
            &[("Range", range)],
        )
        .unwrap();
        assert_eq!(resp.status, 206, "{range}");
        let (a, b) = range[6..].split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!(resp.body == object_bytes("r.bin", a, b), "{range}");
    }
    for node in 0..3 {
        pop.get_whole(node, "r.bin", len);
    }
    assert_once_per_slice(&pop.origin_counts("r.bin"), len);
}

/// Issue 23: a node that will not store a peer's slice asks its home only
/// for the bytes its client needs, not the whole slice: peer bytes per
/// client byte stay at 1 for ranges (they were the slice size over the range).
#[test]
fn a_range_asks_the_home_only_for_the_bytes_it_needs() {
    let pop = Pop::start("peerbytes");
    let len = 16 * SLICE;
    let name = "pb.bin";
    // Warm: each slice is at its home (through nodes 1 and 2: node 0's own
    // whole GET would be a slice's worth of asks, and the ranges below would
    // be kept here as hot copies, as they should).
    for node in [1, 2] {
        pop.get_whole(node, name, len);
    }
    // Node 0 learns the object (its probe asks slice 0 whole).
    let head = common::HttpConnection::connect(pop.addr(0))
        .and_then(|mut c| c.request("HEAD", &format!("/obj/{len}/{name}"), &[], None))
        .expect("HEAD through node 0");
    assert_eq!(head.status, 200);
    let peer_bytes = || pop.settled_metric(0, "edgeslice_peer_received_bytes_total");
    let peer_slices = || pop.settled_metric(0, "edgeslice_slices_total{source=\"peer\"}");
    let (before, slices_before) = (peer_bytes(), peer_slices());
    let mut client = 0;
    for k in 1..len / SLICE {
        // 4 bytes in the middle of slice k, through node 0.
        let (a, b) = (k * SLICE + 5, k * SLICE + 8);
        let range = format!("bytes={a}-{b}");
        let resp = get(
            pop.addr(0),
            &format!("/obj/{len}/{name}"),
            &[("Range", &range)],
        )
        .unwrap();
        assert_eq!(resp.status, 206, "{range}");
        assert!(resp.body == object_bytes(name, a, b), "{range}");
        client += b - a + 1;
    }
    let peer = peer_bytes() - before;
    let from_peers = peer_slices() - slices_before;
    assert!(from_peers > 0.0, "no range came from a peer");
    // Exactly the 4 bytes each of those ranges needed; the whole slice was 16.
    assert_eq!(
        peer,
        4.0 * from_peers,
        "{peer} bytes from peers for {from_peers} ranges of 4 bytes ({client} bytes to the client)"
    );
    // Nothing more reached the origin: the homes had every slice.
    assert_once_per_slice(&pop.origin_counts(name), len);
}

/// Issue 23: `Cache-Status` said `stored` of slices this node relayed from
/// their home and did not store. Now it says `stored` only of what this
/// node stores, and `peer=N` of slices asked of another node, which the
/// node's own count of slices by source bears out.
#[test]
fn cache_status_says_stored_only_of_what_this_node_stores() {
    let pop = Pop::start("stored");
    let peer_slices = || pop.settled_metric(0, "edgeslice_slices_total{source=\"peer\"}");
    let (mut stored, mut relayed) = (0, 0);
    for i in 0..12 {
        // One slice each: homed at node 0 or at another node.
        let target = format!("/obj/{SLICE}/st-{i}.bin");
        let before = peer_slices();
        let resp = get(pop.addr(0), &target, &[]).unwrap();
        assert_eq!(resp.status, 200, "{target}");
        let status = resp.header("cache-status").unwrap_or_default().to_string();
        let from_peer = peer_slices() - before;
        if from_peer > 0.0 {
            relayed += 1;
            assert!(
                status.contains("peer=1") && !status.contains("stored"),
                "{target}: its slice came from a peer, Cache-Status {status}"
            );
        } else {
            stored += 1;
            assert!(
                status.contains("stored") && !status.contains("peer="),
                "{target}: its slice was fetched and stored here, Cache-Status {status}"
            );
        }
    }
    assert!(
        stored > 0 && relayed > 0,
        "stored {stored}, relayed {relayed}: the ring put every object on one side"
    );
}

/// Issue 23: a slice homed on another node that this node's clients ask for
/// again is kept here too: from then on it is a hit on this node, and its
/// home is not asked. A PURGE reaches the copy as it reaches the home.
#[test]
fn a_hot_slice_homed_elsewhere_is_kept_where_it_is_asked() {
    let pop = Pop::start("hot");
    let peer_slices = || pop.settled_metric(0, "edgeslice_slices_total{source=\"peer\"}");
    // A one-slice object whose home is not node 0: its first GET there is
    // relayed from that home.
    let target = (0..20)
        .map(|i| format!("/obj/{SLICE}/hot-{i}.bin"))
        .find(|target| {
            let resp = get(pop.addr(0), target, &[]).unwrap();
            resp.header("cache-status")
                .is_some_and(|s| s.contains("peer=1"))
        })
        .expect("one of 20 objects is homed on another node");
    let name = target.rsplit('/').next().unwrap().to_string();
    let body = object_bytes(&name, 0, SLICE - 1);

    // Asked again: fetched from its home once more, and kept.
    let before = peer_slices();
    let again = get(pop.addr(0), &target, &[]).unwrap();
    assert!(again.body == body);
    assert_eq!(
        peer_slices() - before,
        1.0,
        "the second ask comes from the home"
    );
    let status = again.header("cache-status").unwrap_or_default().to_string();
    assert!(
        status.contains("stored") && !status.contains("peer="),
        "{status}"
    );

    // From then on: a hit here, nothing asked of the home.
    let before = peer_slices();
    for _ in 0..3 {
        let hit = get(pop.addr(0), &target, &[]).unwrap();
        assert_eq!(hit.header("x-cache"), Some("HIT"), "{target}");
        assert!(hit.body == body);
    }
    assert_eq!(peer_slices(), before, "a kept copy asked its home");
    assert_once_per_slice(&pop.origin_counts(&name), SLICE);

    // A PURGE through another node reaches the copy.
    let purged = common::HttpConnection::connect(pop.addr(1))
        .and_then(|mut c| c.request("PURGE", &target, &[], None))
        .expect("PURGE through a node");
    assert_eq!(purged.status, 200);
    let after = get(pop.addr(0), &target, &[]).unwrap();
    assert_eq!(
        after.header("x-cache"),
        Some("MISS"),
        "the copy survived the PURGE"
    );
    assert!(after.body == body);
}

#[test]
fn a_wrong_token_gets_403_before_any_origin_work() {
    let pop = Pop::start("token");
    let wire = "GET /obj/64/t.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-15\r\n\
                X-Edgeslice-Peer: not-the-token\r\n\r\n";
    let resp = raw_once(pop.addr(0), wire.as_bytes());
    assert_eq!(resp.status, 403);
    assert_eq!(pop.origin.request_count(), 0);

    // The right token is served, and the token goes no further.
    let wire = wire.replace("not-the-token", TOKEN);
    let resp = raw_once(pop.addr(0), wire.as_bytes());
    assert_eq!(resp.status, 206);
    assert!(resp.body == object_bytes("t.bin", 0, 15));
    assert!(pop.origin.request_count() > 0);
    pop.origin_counts("t.bin");
}

#[test]
fn a_stopped_node_costs_only_its_share_and_no_client_error() {
    let mut pop = Pop::start("stopped");
    let len = 10 * SLICE;
    pop.get_whole(0, "warm.bin", len);
    pop.stop(2);

    // A cold object: the stopped node's slices come from the origin, each once.
    pop.get_whole(0, "cold.bin", len);
    pop.get_whole(1, "cold.bin", len);
    assert_once_per_slice(&pop.origin_counts("cold.bin"), len);

    // A warm object through the other survivor: only what the stopped node
    // held (and node 1 does not) is fetched again, and the bytes are exact.
    pop.get_whole(1, "warm.bin", len);
    let counts = pop.origin_counts("warm.bin");
    assert!(counts.values().all(|&n| n <= 2), "{counts:?}");
}

/// A listener that counts connections and closes each at once: a peer that
/// is there but fails every request.
fn closing_peer() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (addr, count)
}

#[test]
fn a_peer_request_is_never_forwarded_and_a_failing_peer_is_skipped() {
    use std::sync::atomic::Ordering;
    let origin = DemoOrigin::start().unwrap();
    let (bad, connections) = closing_peer();
    let me = free_addrs(1)[0];
    let cache = CacheSetup::fresh("cluster-onehop");
    let _dir = TempDir(cache.dir.clone());
    let node = common::start_server(&node_config(origin.addr(), me, &[me, bad], &cache));
    // 16 slices: some are surely homed at the failing peer.
    let len = 16 * SLICE;

    // With the token: served from here and the origin, the peer never asked.
    let wire =
        format!("GET /obj/{len}/hop.bin HTTP/1.1\r\nHost: x\r\nX-Edgeslice-Peer: {TOKEN}\r\n\r\n");
    let resp = raw_once(node.local_addr(), wire.as_bytes());
    assert_eq!(resp.status, 200);
    assert!(resp.body == object_bytes("hop.bin", 0, len - 1));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a peer request was forwarded"
    );

    // Without it: the failing peer is tried, skipped, and the bytes still exact.
    let resp = get(node.local_addr(), &format!("/obj/{len}/other.bin"), &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.body == object_bytes("other.bin", 0, len - 1));
    assert!(
        connections.load(Ordering::SeqCst) > 0,
        "the peer was never asked"
    );
    node.shutdown();
}

#[test]
fn three_nodes_asking_at_once_cost_one_origin_request_per_slice() {
    let pop = Pop::start("atonce");
    let len = 12 * SLICE;
    std::thread::scope(|s| {
        for node in 0..3 {
            let pop = &pop;
            s.spawn(move || pop.get_whole(node, "once.bin", len));
        }
    });
    assert_once_per_slice(&pop.origin_counts("once.bin"), len);
}

/// Issue 23: with 2 workers per node and 2 clients per node asking one cold
/// object at once, a slice was now and then fetched twice by its home (once
/// for its own client, once for a peer's request). Repeated until it would
/// have shown, a fresh object each round, the origin a little slow (each
/// answer's head 10 ms late) as a remote one is.
#[test]
fn two_clients_per_node_at_once_cost_one_origin_request_per_slice_every_round() {
    let pop = Pop::start("race");
    let len = 12 * SLICE;
    for round in 0..ROUNDS {
        let name = format!("race-{round}.bin");
        let target = format!("/obj/{len}/{name}?delay_ms=10");
        std::thread::scope(|s| {
            for node in [0, 1, 2, 0, 1, 2] {
                let (pop, name, target) = (&pop, &name, &target);
                s.spawn(move || {
                    let resp = get(pop.addr(node), target, &[]).expect("request through a node");
                    assert_eq!(resp.status, 200, "round {round}, node {node}");
                    assert!(
                        resp.body == object_bytes(name, 0, len - 1),
                        "round {round}, node {node}: body differs"
                    );
                });
            }
        });
        let mut counts = std::collections::HashMap::new();
        for r in pop.origin.requests() {
            if r.target.contains(&format!("/{name}?")) {
                *counts
                    .entry(r.range.unwrap_or_else(|| "-".into()))
                    .or_insert(0) += 1;
            }
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty() && counts.len() as u64 == len / SLICE,
            "round {round}: origin requests by range other than one per slice: {twice:?} ({} ranges for {} slices)",
            counts.len(),
            len / SLICE
        );
    }
}

const ROUNDS: usize = 50;

#[test]
fn purge_on_one_node_reaches_every_peer() {
    let pop = Pop::start("purge");
    let len = 6 * SLICE;
    for node in 0..3 {
        pop.get_whole(node, "p.bin", len);
    }
    assert_once_per_slice(&pop.origin_counts("p.bin"), len);
    let purge = |node: usize| {
        common::HttpConnection::connect(pop.addr(node))
            .and_then(|mut c| c.request("PURGE", &format!("/obj/{len}/p.bin"), &[], None))
            .expect("PURGE through a node")
    };
    let resp = purge(1);
    assert_eq!(
        resp.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(resp.header("x-edgeslice-purge-failed").is_none());
    // Gone on every node: each slice's home dropped it, so node 2's fetch
    // (its own share, and its peers' through them) reaches the origin again
    // for every slice.
    pop.get_whole(2, "p.bin", len);
    let counts = pop.origin_counts("p.bin");
    assert_eq!(counts.len() as u64, len.div_ceil(SLICE), "{counts:?}");
    for (range, n) in &counts {
        assert!(*n >= 2, "{range} not fetched again: {counts:?}");
    }
    // Issue 23: and once for the POP, not once per node: slice 0 (the
    // probe, or a revalidation of the purged manifest) reached the origin
    // from every node.
    pop.get_whole(0, "p.bin", len);
    pop.get_whole(1, "p.bin", len);
    let counts = pop.origin_counts("p.bin");
    for (range, n) in &counts {
        assert_eq!(
            *n, 2,
            "{range}: once before the PURGE, once after: {counts:?}"
        );
    }
}
