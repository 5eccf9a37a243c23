//! `edgeslice demo --nodes N`: N nodes in front of one built-in origin, first
//! each on its own, then as one POP (`[cluster]`), each fetching the same
//! object at once; the report is origin requests per slice, and where the
//! slices ended up.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};

use crate::demo::client::get;
use crate::demo::origin::{object_bytes, DemoOrigin};
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

const MIB: u64 = 1024 * 1024;

/// Run the POP demo with `nodes` nodes, a `size_mib` MiB object and an
/// origin that waits `delay_ms` before each answer.
pub fn run(nodes: usize, size_mib: u64, delay_ms: u64) -> anyhow::Result<()> {
    ensure!(
        (2..=16).contains(&nodes),
        "--nodes {nodes}: between 2 and 16"
    );
    let origin = DemoOrigin::start().context("starting the built-in origin")?;
    let len = size_mib * MIB;
    let slices = len.div_ceil(MIB);
    let base = std::env::temp_dir().join(format!("edgeslice-demo-pop-{}", std::process::id()));
    println!(
        "origin    http://{} (built in, {delay_ms} ms per answer)\nobject    {size_mib} MiB = {slices} slices of 1 MiB, fetched through every node at once\n",
        origin.addr()
    );

    let alone = Nodes::start(&origin, nodes, false, &base.join("alone"))?;
    let name = "demo/alone.bin";
    let took = alone.fetch_everywhere(name, len, delay_ms)?;
    let per_slice = origin.request_count() as f64 / slices as f64;
    println!("{nodes} nodes, each on its own (no [cluster]):");
    println!(
        "  {} origin requests = {per_slice:.2} per slice; every node stores every slice ({:.0} ms)",
        origin.request_count(),
        took.as_secs_f64() * 1e3
    );
    alone.report_stores();
    alone.stop();

    origin.clear();
    let mut pop = Nodes::start(&origin, nodes, true, &base.join("pop"))?;
    let name = "demo/pop.bin";
    let client_bytes = (len * nodes as u64) as f64;
    let peer_bytes = pop.peer_bytes();
    let took = pop.fetch_everywhere(name, len, delay_ms)?;
    let cold = origin.request_count();
    println!("\n{nodes} nodes as one POP ([cluster], each slice has one home node):");
    println!(
        "  {cold} origin requests = {:.2} per slice; each slice stored once, on its home ({:.0} ms)",
        cold as f64 / slices as f64,
        took.as_secs_f64() * 1e3
    );
    println!(
        "  peer bytes per client byte: {:.2} (each node asks the other nodes' share of their homes)",
        (pop.peer_bytes() - peer_bytes) / client_bytes
    );
    pop.report_stores();

    origin.clear();
    let peer_bytes = pop.peer_bytes();
    pop.fetch_everywhere(name, len, delay_ms)?;
    println!(
        "  again through every node: {} origin requests; peer bytes per client byte {:.2} (asked a second time, the slices are hot: each node keeps a copy)",
        origin.request_count(),
        (pop.peer_bytes() - peer_bytes) / client_bytes
    );
    pop.report_stores();
    let peer_bytes = pop.peer_bytes();
    pop.fetch_everywhere(name, len, delay_ms)?;
    println!(
        "  a third time: peer bytes per client byte {:.2} (every node serves the copies it kept)",
        (pop.peer_bytes() - peer_bytes) / client_bytes
    );

    // One node lost: only its share is fetched again, by its stand-in.
    let lost = pop.servers.len() - 1;
    let share = pop.stored_slices(lost);
    pop.servers.pop().expect("a node").shutdown();
    origin.clear();
    pop.fetch_everywhere(name, len, delay_ms)?;
    println!(
        "  node {} stopped: through the other {}, {} origin requests (it held {share} slices; the others kept copies of the slices they asked twice); no client error",
        lost + 1,
        nodes - 1,
        origin.request_count()
    );
    pop.stop();
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

/// The demo's nodes, on 127.0.0.1.
struct Nodes {
    servers: Vec<Server>,
}

impl Nodes {
    /// `n` nodes in front of `origin`, caching under `dir`; as a cluster
    /// when `cluster`.
    fn start(
        origin: &DemoOrigin,
        n: usize,
        cluster: bool,
        dir: &std::path::Path,
    ) -> anyhow::Result<Nodes> {
        // Peers must know each other's addresses before any starts: ports
        // bound to :0 and released (the race with another bind is accepted).
        let held: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let addrs: Vec<SocketAddr> = held
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()?;
        drop(held);
        let mut servers = Vec::new();
        for (i, me) in addrs.iter().enumerate() {
            let config = node_config(
                origin,
                *me,
                cluster.then_some(&addrs[..]),
                &dir.join(format!("node{i}")),
            )?;
            servers
                .push(Server::start(&config).with_context(|| format!("starting node {}", i + 1))?);
        }
        Ok(Nodes { servers })
    }

    /// GET the object through every node at once, every byte checked.
    fn fetch_everywhere(
        &self,
        name: &str,
        len: u64,
        delay_ms: u64,
    ) -> anyhow::Result<std::time::Duration> {
        let target = format!("/obj/{len}/{name}?delay_ms={delay_ms}");
        let started = Instant::now();
        std::thread::scope(|s| {
            let fetches: Vec<_> = self
                .servers
                .iter()
                .map(|server| {
                    let (addr, target) = (server.local_addr(), &target);
                    s.spawn(move || -> anyhow::Result<()> {
                        let resp = get(addr, target, &[])?;
                        ensure!(
                            resp.status == 200 && resp.complete,
                            "{addr}: status {}",
                            resp.status
                        );
                        ensure!(
                            resp.body == object_bytes(name, 0, len - 1),
                            "{addr}: the bytes differ from the object's"
                        );
                        Ok(())
                    })
                })
                .collect();
            fetches
                .into_iter()
                .try_for_each(|f| f.join().map_err(|_| anyhow::anyhow!("a client panicked"))?)
        })?;
        Ok(started.elapsed())
    }

    /// Body bytes all nodes received from their peers so far
    /// (`edgeslice_peer_received_bytes_total`, read from each admin
    /// listener once the requests just answered are counted).
    fn peer_bytes(&self) -> f64 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let name = "edgeslice_peer_received_bytes_total ";
        self.servers
            .iter()
            .filter_map(|s| s.admin_addr())
            .filter_map(|admin| get(admin, "/metrics", &[]).ok())
            .filter_map(|resp| {
                let text = String::from_utf8(resp.body).ok()?;
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            })
            .sum()
    }

    /// Slices of 1 MiB `node` holds in its store.
    fn stored_slices(&self, node: usize) -> u64 {
        let bytes = self.servers[node]
            .cache()
            .map_or(0, |c| c.store.slice_usage());
        bytes as u64 / MIB
    }

    fn report_stores(&self) {
        let held: Vec<String> = (0..self.servers.len())
            .map(|i| format!("node {}: {}", i + 1, self.stored_slices(i)))
            .collect();
        println!("  slices stored: {}", held.join(", "));
    }

    fn stop(self) {
        for server in self.servers {
            server.shutdown();
        }
    }
}

/// One node: 1 worker, 1 MiB slices, 4 in flight, a cache in `dir`, and
/// `[cluster]` over `peers` when given.
fn node_config(
    origin: &DemoOrigin,
    me: SocketAddr,
    peers: Option<&[SocketAddr]>,
    dir: &PathBuf,
) -> anyhow::Result<Config> {
    let cluster = match peers {
        Some(peers) => {
            let list: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
            format!(
                "[cluster]\nself = \"{me}\"\npeers = [{}]\ntoken = \"demo-pop-token-{}\"\n",
                list.join(", "),
                std::process::id()
            )
        }
        None => String::new(),
    };
    Ok(Config::from_toml(&format!(
        "[server]\nlisten = \"{me}\"\nworkers = 1\n\
         [origin]\naddress = \"{}\"\n\
         [slice]\nslice_size = \"1MiB\"\nmax_concurrent_subrequests = 4\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [cache]\ndir = {dir:?}\nmemory_bytes = \"64MiB\"\ndisk_bytes = \"512MiB\"\n{cluster}",
        origin.addr()
    ))?)
}
