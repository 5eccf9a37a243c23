//! Three nodes of one POP in this process, each with its own cache, in front
//! of one demo origin that counts its requests: each slice is fetched from
//! the origin once for the whole POP, peers prove themselves with the token,
//! and a stopped node costs only its share.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use common::{get, object_bytes, raw_once, CacheSetup, DemoOrigin, TempDir};
use edgeslice::server::runtime::Server;

const SLICE: u64 = 16;
const TOKEN: &str = "pop-secret";

/// A demo origin and three nodes that know each other.
struct Pop {
    origin: DemoOrigin,
    nodes: Vec<Option<Server>>,
    _dirs: Vec<TempDir>,
}

/// Three free ports: bound to :0 and released (peers must know each other's
/// addresses before any starts; the race with another bind is accepted).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind :0"))
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn node_config(
    origin: SocketAddr,
    me: SocketAddr,
    peers: &[SocketAddr],
    dir: &CacheSetup,
) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[server]\nlisten = \"{me}\"\nworkers = 2\n\
         [origin]\naddress = \"{origin}\"\nread_timeout_ms = 5000\n\
         [slice]\nslice_size = {SLICE}\nmax_concurrent_subrequests = 4\n\
         [cache]\ndir = {:?}\nmemory_bytes = {}\ndisk_bytes = {}\ncache_ttl = 3600\n\
         [cluster]\nself = \"{me}\"\npeers = [{}]\ntoken = \"{TOKEN}\"\n\
         peer_timeout_ms = 1000\nmarkdown_ms = 60000\n",
        dir.dir,
        dir.memory_bytes,
        dir.disk_bytes,
        peers.join(", ")
    )
}

impl Pop {
    fn start(name: &str) -> Pop {
        let origin = DemoOrigin::start().expect("origin starts");
        let addrs = free_addrs(3);
        let mut dirs = Vec::new();
        let mut nodes = Vec::new();
        for (i, me) in addrs.iter().enumerate() {
            let cache = CacheSetup::fresh(&format!("cluster-{name}-{i}"));
            dirs.push(TempDir(cache.dir.clone()));
            let text = node_config(origin.addr(), *me, &addrs, &cache);
            nodes.push(Some(common::start_server(&text)));
        }
        Pop {
            origin,
            nodes,
            _dirs: dirs,
        }
    }

    fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node]
            .as_ref()
            .expect("node running")
            .local_addr()
    }

    /// GET the whole of `target` through `node`, checked against the object.
    fn get_whole(&self, node: usize, name: &str, len: u64) {
        let target = format!("/obj/{len}/{name}");
        let resp = get(self.addr(node), &target, &[]).expect("request through a node");
        assert_eq!(resp.status, 200, "node {node} {target}");
        assert!(
            resp.body == object_bytes(name, 0, len - 1),
            "node {node} {target}: body differs"
        );
        // One member: a peer's own Cache-Status is not passed on as the object's.
        let status = resp.header("cache-status").unwrap_or_default();
        assert!(!status.contains(','), "node {node}: Cache-Status {status}");
    }

    /// Origin requests for `name`, counted by Range; none may carry the token.
    fn origin_counts(&self, name: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.origin.requests() {
            assert!(
                r.header("x-edgeslice-peer").is_none(),
                "the peer token reached the origin: {r:?}"
            );
            if r.target.ends_with(name) {
                *counts
                    .entry(r.range.unwrap_or_else(|| "-".into()))
                    .or_insert(0) += 1;
            }
        }
        counts
    }

    fn stop(&mut self, node: usize) {
        self.nodes[node].take().expect("node running").shutdown();
    }
}

/// Every slice of a `len`-byte object asked of the origin exactly once.
fn assert_once_per_slice(counts: &HashMap<String, usize>, len: u64) {
    let slices = len.div_ceil(SLICE);
    for k in 0..slices {
        let range = format!("bytes={}-{}", k * SLICE, (k + 1) * SLICE - 1);
        assert_eq!(counts.get(&range), Some(&1), "slice {k}: {counts:?}");
    }
    assert_eq!(counts.len() as u64, slices, "{counts:?}");
}

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
    // Gone on the other nodes too: node 2 held every slice (it stores what
    // its peers sent), and now asks the origin again for each of them.
    pop.get_whole(2, "p.bin", len);
    let counts = pop.origin_counts("p.bin");
    assert_eq!(counts.len() as u64, len.div_ceil(SLICE), "{counts:?}");
    for (range, n) in &counts {
        assert!(*n >= 2, "{range} not fetched again: {counts:?}");
    }
    pop.get_whole(0, "p.bin", len);
}
