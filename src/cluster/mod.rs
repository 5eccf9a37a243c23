//! The cluster: the other nodes of this POP, as one more source of slices.
//!
//! Each slice has one home among the peers ([`ring`]); a node that does not
//! hold a slice asks its home, on the home's ordinary listener, before it
//! would ask the origin. [`ClusterSettings`] is built once from `[cluster]`
//! (in [`crate::server::settings`]) and shared by the workers; each worker
//! holds its own [`Peers`]: a keep-alive pool per peer and which peers are
//! marked down, with no lock on the request path.
//!
//! A peer request carries [`PEER_HEADER`] with the shared token. The node
//! receiving it answers 403 to a wrong token and never forwards a right one
//! to another peer: one hop at most, even when two nodes disagree about the
//! membership. A peer that cannot be reached, times out, or answers 5xx (or
//! 403: a token that differs is a configuration error, not the object's) is
//! skipped for `markdown_ms` (by this worker) and the next node on the ring
//! stands in for it, the same one on every node, so a lost node's share is
//! fetched from the origin once, not once per node; when the stand-in is this
//! node, the slice goes to the origin. No error reaches the client.

pub mod ring;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::error::{Error, Result};
use crate::origin::pool::{OriginPool, OriginResponse, OriginSettings};
use ring::Ring;

/// The header a peer request carries, with the cluster's token.
pub const PEER_HEADER: HeaderName = HeaderName::from_static("x-edgeslice-peer");

/// Idle keep-alive connections kept per worker and peer.
const PEER_MAX_IDLE: usize = 16;

/// The cluster of `[cluster]`, ready for any worker.
pub struct ClusterSettings {
    /// The ring over every peer, this node included.
    pub ring: Ring,
    /// This node's position in the ring's peers.
    pub self_index: usize,
    /// The token peer requests carry.
    pub token: HeaderValue,
    /// Bound on connecting to a peer, its answer's head, each body gap.
    pub peer_timeout: Duration,
    /// How long a failed peer is skipped.
    pub markdown: Duration,
    /// Peer connections idle longer than this are closed.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for ClusterSettings {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("peers", &self.ring.peers())
            .field("self_index", &self.self_index)
            .field("peer_timeout", &self.peer_timeout)
            .field("markdown", &self.markdown)
            .finish_non_exhaustive()
    }
}

/// A peer, by its position in the ring's peers.
pub type PeerId = usize;

/// One worker's view of the cluster: a pool per peer and which are down.
pub struct Peers {
    settings: Arc<ClusterSettings>,
    pools: Vec<Rc<OriginPool>>,
    down_until: Vec<Cell<Option<Instant>>>,
}

impl Peers {
    /// This worker's pools to every peer of `settings`.
    pub fn new(settings: Arc<ClusterSettings>) -> Rc<Peers> {
        let pools = settings
            .ring
            .peers()
            .iter()
            .map(|addr| OriginPool::new(peer_origin(&settings, *addr)))
            .collect();
        let down_until = settings
            .ring
            .peers()
            .iter()
            .map(|_| Cell::new(None))
            .collect();
        Rc::new(Peers {
            settings,
            pools,
            down_until,
        })
    }

    /// The node to ask for `key` (see [`ring::home_key`]): its home or, while
    /// that is marked down, the next node on the ring that is not; `None`
    /// when that is this node (fetch it here).
    pub fn home_peer(&self, key: &str) -> Option<PeerId> {
        let home = self
            .settings
            .ring
            .homes(key)
            .find(|&p| p == self.settings.self_index || !self.is_down(p))?;
        (home != self.settings.self_index).then_some(home)
    }

    /// Whether `peer` is marked down now.
    pub fn is_down(&self, peer: PeerId) -> bool {
        let cell = &self.down_until[peer];
        match cell.get() {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                cell.set(None);
                false
            }
            None => false,
        }
    }

    /// Skip `peer` for `markdown_ms` (on this worker).
    pub fn mark_down(&self, peer: PeerId) {
        let until = Instant::now() + self.settings.markdown;
        self.down_until[peer].set(Some(until));
        tracing::warn!(peer = %self.addr(peer), markdown_ms = self.settings.markdown.as_millis() as u64, "peer marked down");
    }

    /// This worker's connections to `peer`.
    pub fn pool(&self, peer: PeerId) -> &Rc<OriginPool> {
        &self.pools[peer]
    }

    /// The address of `peer`.
    pub fn addr(&self, peer: PeerId) -> SocketAddr {
        self.settings.ring.peers()[peer]
    }

    /// The value of [`PEER_HEADER`] on requests to peers.
    pub fn token(&self) -> &HeaderValue {
        &self.settings.token
    }

    /// Whether `presented` (a request's [`PEER_HEADER`]) is the token.
    pub fn accepts(&self, presented: &HeaderValue) -> bool {
        let (a, b) = (presented.as_bytes(), self.settings.token.as_bytes());
        // Compared in time that does not tell how much of it matched.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// How a worker reaches `addr`: plain HTTP, `peer_timeout` for every wait,
/// no circuit breaker (markdown is the peer's).
fn peer_origin(settings: &ClusterSettings, addr: SocketAddr) -> OriginSettings {
    OriginSettings {
        name: format!("peer {addr}"),
        addrs: vec![addr],
        tls: None,
        connect_timeout: settings.peer_timeout,
        head_timeout: settings.peer_timeout,
        read_timeout: settings.peer_timeout,
        max_idle: PEER_MAX_IDLE,
        idle_timeout: settings.idle_timeout,
        breaker: Arc::new(crate::origin::breaker::Breaker::new(0, Duration::ZERO)),
    }
}

/// Send a slice request (`headers` with its Range) to the node that stands
/// for `key`'s home, with the token; a peer that fails is marked down and
/// the next stand-in asked. `None` when this node is the one to fetch it
/// (from the origin); otherwise the answer and who gave it.
pub async fn ask_home(
    peers: &Peers,
    key: &str,
    target: &str,
    headers: &HeaderMap,
) -> Option<(OriginResponse, PeerId)> {
    while let Some(peer) = peers.home_peer(key) {
        match ask_peer(peers, peer, target, headers).await {
            Ok(resp) => return Some((resp, peer)),
            Err(e) => {
                tracing::debug!(peer = %peers.addr(peer), error = %e, "peer failed: asking the next");
                peers.mark_down(peer);
            }
        }
    }
    None
}

/// Send a slice request (`headers` with its Range) to `peer`, with the
/// token. Transport failures, timeouts, 5xx and 403 are the peer's failures
/// (the caller marks it down); any other answer is checked by the caller
/// exactly as an origin's.
pub async fn ask_peer(
    peers: &Peers,
    peer: PeerId,
    target: &str,
    headers: &HeaderMap,
) -> Result<OriginResponse> {
    let mut headers = headers.clone();
    headers.insert(PEER_HEADER, peers.token().clone());
    let mut resp = peers
        .pool(peer)
        .request(&Method::GET, target, &headers)
        .await?;
    // What the peer's cache says of its answer is not the object's: it
    // would be stored with the manifest here and repeated on every hit.
    resp.head.headers.remove("cache-status");
    resp.head.headers.remove("x-cache");
    let status = resp.head.status;
    if status.is_server_error() || status == http::StatusCode::FORBIDDEN {
        return Err(Error::PeerStatus {
            peer: peers.addr(peer),
            status: status.as_u16(),
        });
    }
    Ok(resp)
}

/// Send `PURGE target` (with `host`) to every other peer not marked down,
/// with the token, one after another, each bounded by `peer_timeout_ms`.
/// Returns how many dropped the object and how many failed (those are
/// marked down). A peer's PURGE is never sent onward: one hop.
pub async fn purge_peers(peers: &Peers, target: &str, host: &HeaderValue) -> (usize, usize) {
    let purge = Method::from_bytes(b"PURGE").expect("PURGE is a token");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, host.clone());
    headers.insert(PEER_HEADER, peers.token().clone());
    let (mut purged, mut failed) = (0, 0);
    for peer in 0..peers.settings.ring.peers().len() {
        if peer == peers.settings.self_index || peers.is_down(peer) {
            continue;
        }
        match peers.pool(peer).request(&purge, target, &headers).await {
            Ok(resp) if resp.head.status == http::StatusCode::OK => purged += 1,
            Ok(resp) if resp.head.status == http::StatusCode::NOT_FOUND => {}
            Ok(resp) => {
                tracing::warn!(peer = %peers.addr(peer), status = resp.head.status.as_u16(), "PURGE refused by a peer");
                failed += 1;
            }
            Err(e) => {
                tracing::warn!(peer = %peers.addr(peer), error = %e, "PURGE did not reach a peer");
                peers.mark_down(peer);
                failed += 1;
            }
        }
    }
    (purged, failed)
}
