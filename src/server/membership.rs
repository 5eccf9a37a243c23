//! `cluster.peers_dns`: the POP's membership from DNS, kept current.
//!
//! A thread of its own resolves the name every `peers_dns_interval_s` (the
//! workers never wait on a resolver). When the set of addresses changes, the
//! route table is rebuilt from the configuration in force, exactly as SIGHUP
//! does, and the workers pick the new ring up between requests; a name that
//! fails to resolve keeps the membership as it is, with a warning. Started
//! only when the configuration uses `peers_dns`; stopped with the server.

use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::proxy::route::RouteTable;
use crate::server::limits::ClientLimits;
use crate::server::reload::Reloadable;

/// The running watcher; dropping it stops the thread.
pub struct Membership {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Membership {
    /// Watch `config`'s `peers_dns` (the configuration in force, replaced on
    /// every reload) and apply changes through `reload`.
    pub fn start(
        config: Arc<Mutex<Config>>,
        reload: Arc<Reloadable>,
    ) -> std::io::Result<Membership> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("edgeslice-dns".into())
            .spawn(move || watch(&config, &reload, &stopped))?;
        Ok(Membership {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(config: &Mutex<Config>, reload: &Reloadable, stopped: &mpsc::Receiver<()>) {
    let in_force = || config.lock().unwrap_or_else(|p| p.into_inner()).clone();
    loop {
        let interval = in_force()
            .cluster
            .as_ref()
            .filter(|c| c.peers_dns.is_some())
            .map_or(Duration::from_secs(30), |c| c.peers_dns_interval());
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        // Held until the new table is in place, so that a SIGHUP (which
        // takes it too) is never undone by a table of the file before it.
        let guard = config.lock().unwrap_or_else(|p| p.into_inner());
        let current = &*guard;
        let Some(cluster) = current.cluster.as_ref().filter(|c| c.peers_dns.is_some()) else {
            continue;
        };
        let name = cluster.peers_dns.as_deref().unwrap_or_default();
        let resolved = match cluster.resolve_peers() {
            Ok(peers) => peers,
            Err(e) => {
                warn!(peers_dns = name, error = %e, "cannot resolve the cluster's peers: membership unchanged");
                continue;
            }
        };
        let known = reload.current();
        let now: Vec<SocketAddr> = known
            .0
            .cluster()
            .map(|c| c.ring.peers().to_vec())
            .unwrap_or_default();
        if sorted(now.clone()) == resolved {
            continue;
        }
        // The table is built from the configuration in force, which
        // resolves the name once more: what is applied is what it says now.
        match RouteTable::try_from(current) {
            Ok(table) => {
                let peers: Vec<String> = table
                    .cluster()
                    .map(|c| c.ring.peers().iter().map(|p| p.to_string()).collect())
                    .unwrap_or_default();
                info!(peers_dns = name, before = ?now, after = ?peers, "cluster membership changed");
                reload.replace(table, ClientLimits::from(current));
            }
            Err(e) => {
                warn!(peers_dns = name, error = %e, "membership changed but the routes did not build: unchanged")
            }
        }
    }
}

fn sorted(mut peers: Vec<SocketAddr>) -> Vec<SocketAddr> {
    peers.sort();
    peers
}
