//! A POP of three edgeslice nodes in this process, each with its own cache
//! and admin listener, in front of one demo origin that counts requests
//! (tests/cluster.rs, tests/cluster_ops.rs).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

use super::{get, object_bytes, CacheSetup, DemoOrigin, TempDir};

/// Slice size of every node.
pub const SLICE: u64 = 16;
/// The POP's token.
pub const TOKEN: &str = "pop-secret-for-the-tests";

/// A demo origin and three nodes that know each other.
pub struct Pop {
    pub origin: DemoOrigin,
    pub nodes: Vec<Option<Server>>,
    pub addrs: Vec<SocketAddr>,
    caches: Vec<CacheSetup>,
    peers: Vec<Vec<SocketAddr>>,
    /// Lines after `[cluster]` in every node's file (routes).
    extra: String,
    /// Lines in every node's `[cache]`.
    pub cache_lines: String,
    _dirs: Vec<TempDir>,
}

/// `n` free ports: bound to :0 and released (peers must know each other's
/// addresses before any starts; the race with another bind is accepted).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind :0"))
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// A node listening on `me`, one of `peers`, caching in `dir`, with an
/// admin listener.
pub fn node_config(
    origin: SocketAddr,
    me: SocketAddr,
    peers: &[SocketAddr],
    dir: &CacheSetup,
) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[server]\nlisten = \"{me}\"\nworkers = 2\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
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
    /// Three nodes that all list all three.
    pub fn start(name: &str) -> Pop {
        Pop::start_with(name, "", |_, all| all.to_vec())
    }

    /// Three nodes with `cache_lines` in their `[cache]`.
    pub fn start_with_cache(name: &str, cache_lines: &str) -> Pop {
        Pop::start_nodes(name, "", cache_lines, |_, all| all.to_vec())
    }

    /// Three nodes with `extra` at the end of their files; node `i` lists
    /// `peers(i, all three)` (itself among them).
    pub fn start_with(
        name: &str,
        extra: &str,
        peers: impl Fn(usize, &[SocketAddr]) -> Vec<SocketAddr>,
    ) -> Pop {
        Pop::start_nodes(name, extra, "", peers)
    }

    fn start_nodes(
        name: &str,
        extra: &str,
        cache_lines: &str,
        peers: impl Fn(usize, &[SocketAddr]) -> Vec<SocketAddr>,
    ) -> Pop {
        let origin = DemoOrigin::start().expect("origin starts");
        let mut pop = Pop {
            origin,
            nodes: Vec::new(),
            addrs: Vec::new(),
            caches: Vec::new(),
            peers: Vec::new(),
            extra: extra.to_string(),
            cache_lines: cache_lines.to_string(),
            _dirs: Vec::new(),
        };
        // The nodes' addresses are picked free, then let go so each node can
        // bind its own: another test may take one in between. Then the POP
        // starts again on other addresses.
        const ATTEMPTS: usize = 5;
        'attempt: for attempt in 1..=ATTEMPTS {
            for node in pop.nodes.drain(..).flatten() {
                node.shutdown();
            }
            pop.addrs = free_addrs(3);
            pop.caches.clear();
            pop.peers.clear();
            for i in 0..pop.addrs.len() {
                let cache = CacheSetup::fresh(&format!("cluster-{name}-{attempt}-{i}"));
                pop._dirs.push(TempDir(cache.dir.clone()));
                pop.caches.push(cache);
                pop.peers.push(peers(i, &pop.addrs));
                let text = pop.config(i);
                let config = edgeslice::config::Config::from_toml(&text)
                    .unwrap_or_else(|e| panic!("config: {e}\n{text}"));
                match edgeslice::server::runtime::Server::start(&config) {
                    Ok(server) => pop.nodes.push(Some(server)),
                    Err(e) if attempt < ATTEMPTS => {
                        eprintln!(
                            "POP {name}: node {i} did not start ({e}); again on other addresses"
                        );
                        continue 'attempt;
                    }
                    Err(e) => panic!("POP {name}: node {i} did not start: {e}"),
                }
            }
            break;
        }
        pop
    }

    fn config(&self, node: usize) -> String {
        let text = node_config(
            self.origin.addr(),
            self.addrs[node],
            &self.peers[node],
            &self.caches[node],
        );
        let text = text.replace("[cache]\n", &format!("[cache]\n{}", self.cache_lines));
        text + &self.extra
    }

    pub fn server(&self, node: usize) -> &Server {
        self.nodes[node].as_ref().expect("node running")
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.server(node).local_addr()
    }

    /// The value of metric `name` (with its labels) on `node`; 0 when absent.
    pub fn metric(&self, node: usize, name: &str) -> f64 {
        let admin = self.server(node).admin_addr().expect("admin listener");
        let resp = get(admin, "/metrics", &[]).expect("GET /metrics");
        let text = String::from_utf8(resp.body).expect("metrics are UTF-8");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// [`Pop::metric`] once the requests just answered are counted: a
    /// request's metrics are recorded just after its last body byte is
    /// sent, so a client can read its answer a moment before. Read until
    /// three reads 10 ms apart agree (at most 2 s).
    pub fn settled_metric(&self, node: usize, name: &str) -> f64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut last = self.metric(node, name);
        let mut same = 0;
        while same < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let now = self.metric(node, name);
            same = if now == last { same + 1 } else { 0 };
            last = now;
        }
        last
    }

    /// `/status` of `node`, parsed.
    pub fn status(&self, node: usize) -> serde_json::Value {
        let admin = self.server(node).admin_addr().expect("admin listener");
        let resp = get(admin, "/status", &[]).expect("GET /status");
        serde_json::from_slice(&resp.body).expect("/status is JSON")
    }

    /// GET the whole of `target` through `node`, checked against the object.
    pub fn get_whole(&self, node: usize, name: &str, len: u64) {
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
    pub fn origin_counts(&self, name: &str) -> HashMap<String, usize> {
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

    /// Stop `node` (draining, flushing its cache).
    pub fn stop(&mut self, node: usize) {
        self.nodes[node].take().expect("node running").shutdown();
    }

    /// Start a stopped `node` again on its address and cache directory.
    pub fn restart(&mut self, node: usize) {
        assert!(self.nodes[node].is_none(), "node {node} is running");
        self.nodes[node] = Some(super::start_server(&self.config(node)));
    }

    /// Give `node` a new peer list, as SIGHUP with an edited file does.
    pub fn reload(&mut self, node: usize, peers: Vec<SocketAddr>) {
        self.peers[node] = peers;
        let config = Config::from_toml(&self.config(node)).expect("config");
        self.server(node).reload(&config).expect("reload");
    }
}

/// Every slice of a `len`-byte object asked of the origin exactly once.
pub fn assert_once_per_slice(counts: &HashMap<String, usize>, len: u64) {
    let slices = len.div_ceil(SLICE);
    for k in 0..slices {
        let range = format!("bytes={}-{}", k * SLICE, (k + 1) * SLICE - 1);
        assert_eq!(counts.get(&range), Some(&1), "slice {k}: {counts:?}");
    }
    assert_eq!(counts.len() as u64, slices, "{counts:?}");
}
