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
//! membership. A peer that cannot be reached, times out, or says an answer
//! is its own failure ([`PEER_ERROR_HEADER`]: a token that differs, a
//! configuration error) is skipped for `markdown_ms` and the next node on the
//! ring stands in for it, the same one on every node, so a lost node's share
//! is fetched from the origin once, not once per node; when the stand-in is
//! this node, the slice goes to the origin. An answer the peer relays (an
//! origin's 403 or 5xx) is an answer, not the peer's fault: a probe relays
//! it to the client, a slice that fails its checks goes to the origin, and
//! the peer stays up.

pub mod ring;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::error::{Error, Result};
use crate::ops::metrics::{self, PeerGauge};
use crate::origin::pool::{OriginPool, OriginResponse, OriginSettings};
use ring::Ring;

/// The header a peer request carries, with the cluster's token.
pub const PEER_HEADER: HeaderName = HeaderName::from_static("x-edgeslice-peer");

/// The header a node puts on an answer to a peer request that is its own
/// failure as a peer (today: `token`, a token it does not share), so the
/// asking node tells it from an answer the node relays (an origin's 403 or
/// 5xx), which is no fault of the peer's.
pub const PEER_ERROR_HEADER: HeaderName = HeaderName::from_static("x-edgeslice-peer-error");

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
    /// TLS to each peer (by position in the ring's peers), when `[cluster]
    /// tls` asks for it.
    pub tls: Vec<Option<crate::origin::tls::OriginTls>>,
    /// Keep a copy of a slice homed elsewhere once it is asked again
    /// (`cluster.keep_hot_copies`).
    pub keep_hot_copies: bool,
    /// What every worker knows of each peer, by position in the ring's peers.
    states: Vec<PeerState>,
    /// Where the markdown clocks start.
    epoch: Instant,
}

/// What the node knows of one peer, shared by its workers: a peer one
/// worker found down is skipped by all of them, so a stopped peer costs
/// `peer_timeout_ms` once per node, not once per worker.
#[derive(Debug, Default)]
struct PeerState {
    /// Requests sent to it: slices, probes, PURGEs.
    requests: AtomicU64,
    /// Of those, the ones that failed.
    failures: AtomicU64,
    /// Skipped until this many ms after the epoch; 0 when up.
    down_until_ms: AtomicU64,
}

impl ClusterSettings {
    /// The cluster of `ring`, this node at `self_index`, every peer up.
    pub fn new(
        ring: Ring,
        self_index: usize,
        token: HeaderValue,
        peer_timeout: Duration,
        markdown: Duration,
        idle_timeout: Duration,
    ) -> ClusterSettings {
        let states = ring.peers().iter().map(|_| PeerState::default()).collect();
        ClusterSettings {
            tls: vec![None; ring.peers().len()],
            ring,
            self_index,
            token,
            peer_timeout,
            markdown,
            idle_timeout,
            keep_hot_copies: false,
            states,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the epoch, never 0 (0 means up).
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// How long `peer` is still skipped; `None` when it is up.
    fn down_for(&self, peer: PeerId) -> Option<Duration> {
        let until = self.states[peer].down_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Every peer as `/metrics` and `/status` show it, this node included.
    pub fn gauges(&self) -> Vec<PeerGauge> {
        let peers = self.ring.peers().iter().zip(&self.states).enumerate();
        peers
            .map(|(i, (addr, state))| PeerGauge {
                addr: addr.to_string(),
                is_self: i == self.self_index,
                requests: state.requests.load(Ordering::Relaxed),
                failures: state.failures.load(Ordering::Relaxed),
                down_for: self.down_for(i),
            })
            .collect()
    }
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

/// One worker's way to the cluster: a pool per peer, and the node's shared
/// view of which are down.
pub struct Peers {
    settings: Arc<ClusterSettings>,
    pools: Vec<Rc<OriginPool>>,
}

impl Peers {
    /// This worker's pools to every peer of `settings`.
    pub fn new(settings: Arc<ClusterSettings>) -> Rc<Peers> {
        let pools = settings
            .ring
            .peers()
            .iter()
            .enumerate()
            .map(|(i, addr)| OriginPool::new(peer_origin(&settings, i, *addr)))
            .collect();
        Rc::new(Peers { settings, pools })
    }

    /// Whether a slice homed elsewhere is copied here once it is hot.
    pub fn keep_hot_copies(&self) -> bool {
        self.settings.keep_hot_copies
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
        self.settings.down_for(peer).is_some()
    }

    /// Count a failure of `peer` and skip it for `markdown_ms`, on every
    /// worker of this node. Logged once per markdown, not per worker.
    pub fn mark_down(&self, peer: PeerId) {
        let settings = &self.settings;
        let state = &settings.states[peer];
        state.failures.fetch_add(1, Ordering::Relaxed);
        let now = settings.now_ms();
        let until = now + settings.markdown.as_millis() as u64;
        let before = state.down_until_ms.swap(until, Ordering::Relaxed);
        if before <= now {
            tracing::warn!(peer = %self.addr(peer), markdown_ms = settings.markdown.as_millis() as u64, "peer marked down");
        }
    }

    /// Count a request to `peer`.
    fn count_request(&self, peer: PeerId) {
        self.settings.states[peer]
            .requests
            .fetch_add(1, Ordering::Relaxed);
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
        same_secret(presented.as_bytes(), self.settings.token.as_bytes())
    }
}

/// Whether `given` is `secret`, compared in time that does not tell how
/// much of it matched (`subtle`).
pub fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.ct_eq(secret).into()
}

/// How a worker reaches peer `index` at `addr`: plain HTTP, or TLS with the
/// peer's certificate verified; `peer_timeout` for every wait, no circuit
/// breaker (markdown is the peer's).
fn peer_origin(settings: &ClusterSettings, index: usize, addr: SocketAddr) -> OriginSettings {
    OriginSettings {
        name: format!("peer {addr}"),
        addrs: vec![addr],
        tls: settings.tls.get(index).cloned().flatten(),
        connect_timeout: settings.peer_timeout,
        head_timeout: settings.peer_timeout,
        read_timeout: settings.peer_timeout,
        max_idle: PEER_MAX_IDLE,
        idle_timeout: settings.idle_timeout,
        breaker: Arc::new(crate::origin::breaker::Breaker::new(0, Duration::ZERO)),
        peer: true,
    }
}

/// Send a slice request (`headers` with its Range) to the node that stands
/// for `key`'s home, with the token and the client's `host` (so the peer
/// picks the same route, whatever Host the origin is sent); a peer that
/// fails is marked down and the next stand-in asked. `None` when this node
/// is the one to fetch it (from the origin); otherwise the answer and who
/// gave it.
pub async fn ask_home(
    peers: &Peers,
    key: &str,
    target: &str,
    headers: &HeaderMap,
    host: Option<&HeaderValue>,
) -> Option<(OriginResponse, PeerId)> {
    while let Some(peer) = peers.home_peer(key) {
        match ask_peer(peers, peer, target, headers, host).await {
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
/// token. Transport failures, timeouts and answers marked with
/// [`PEER_ERROR_HEADER`] are the peer's failures (the caller marks it down);
/// any other answer, a 403 or a 5xx the peer relays from the origin
/// included, is checked by the caller exactly as an origin's.
pub async fn ask_peer(
    peers: &Peers,
    peer: PeerId,
    target: &str,
    headers: &HeaderMap,
    host: Option<&HeaderValue>,
) -> Result<OriginResponse> {
    let mut headers = headers.clone();
    headers.insert(PEER_HEADER, peers.token().clone());
    if let Some(host) = host {
        headers.insert(http::header::HOST, host.clone());
    }
    peers.count_request(peer);
    let started = Instant::now();
    let resp = peers
        .pool(peer)
        .request(&Method::GET, target, &headers)
        .await;
    metrics::with(|m| m.peer_duration.observe(started.elapsed()));
    let mut resp = resp.map_err(|e| e.of_peer(peers.addr(peer)))?;
    // What the peer's cache says of its answer is not the object's: it
    // would be stored with the manifest here and repeated on every hit.
    resp.head.headers.remove("cache-status");
    resp.head.headers.remove("x-cache");
    if resp.head.headers.contains_key(PEER_ERROR_HEADER) {
        return Err(Error::PeerStatus {
            peer: peers.addr(peer),
            status: resp.head.status.as_u16(),
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
        peers.count_request(peer);
        match peers.pool(peer).request(&purge, target, &headers).await {
            Ok(resp) if resp.head.status == http::StatusCode::OK => purged += 1,
            Ok(resp) if resp.head.status == http::StatusCode::NOT_FOUND => {}
            Ok(resp) => {
                tracing::warn!(peer = %peers.addr(peer), status = resp.head.status.as_u16(), "PURGE refused by a peer");
                peers.settings.states[peer]
                    .failures
                    .fetch_add(1, Ordering::Relaxed);
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
