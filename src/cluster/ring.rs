//! The home of each slice: a ketama ring over the peers (nginx
//! `hash ... consistent` compatible, through `pingora-ketama`).
//!
//! Every node builds the same ring from the same `peers`, so every node
//! names the same home for a slice; a node added or removed moves only
//! about 1/N of the slices.
//!
//! ```
//! use edgeslice::cluster::ring::{home_key, Ring};
//!
//! let peers = ["10.0.0.1:8080".parse().unwrap(), "10.0.0.2:8080".parse().unwrap()];
//! let ring = Ring::new(&peers);
//! let home = ring.home(&home_key("GET|example.com/a.mp4", 3));
//! assert!(peers.contains(home));
//! ```

use std::net::SocketAddr;

use pingora_ketama::{Bucket, Continuum};

/// What a slice is hashed by: the object's key and the slice's index, the
/// same on every node (unlike a store key, which carries this node's
/// manifest generation).
pub fn home_key(object: &str, index: u64) -> String {
    format!("{index}|{object}")
}

/// A consistent hash ring over the peers, each with weight 1.
pub struct Ring {
    continuum: Continuum,
    peers: Vec<SocketAddr>,
}

impl Ring {
    /// The ring of `peers`; at least one.
    pub fn new(peers: &[SocketAddr]) -> Ring {
        let buckets: Vec<Bucket> = peers.iter().map(|p| Bucket::new(*p, 1)).collect();
        Ring {
            continuum: Continuum::new(&buckets),
            peers: peers.to_vec(),
        }
    }

    /// The peers, in the order they were given.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// Position in [`Ring::peers`] of the home of `key`.
    pub fn home_index(&self, key: &str) -> usize {
        self.continuum
            .node(key.as_bytes())
            .and_then(|addr| self.peers.iter().position(|p| *p == addr))
            .unwrap_or(0)
    }

    /// Positions in [`Ring::peers`] of `key`'s home, then of the nodes that
    /// stand in for it when it is down, in ring order, each once: every node
    /// names the same stand-in, so a lost node's share is fetched once.
    pub fn homes(&self, key: &str) -> impl Iterator<Item = usize> + '_ {
        let mut seen = Vec::with_capacity(self.peers.len());
        self.continuum
            .node_iter(key.as_bytes())
            .filter_map(|addr| self.peers.iter().position(|p| p == addr))
            .filter(move |i| {
                let new = !seen.contains(i);
                seen.push(*i);
                new
            })
            .take(self.peers.len())
    }

    /// The home of `key` (see [`home_key`]).
    pub fn home(&self, key: &str) -> &SocketAddr {
        &self.peers[self.home_index(key)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1 + i as u8], 8080)))
            .collect()
    }

    #[test]
    fn every_peer_is_home_to_a_fair_share() {
        let ring = Ring::new(&peers(3));
        let mut counts = [0u32; 3];
        for i in 0..3000 {
            counts[ring.home_index(&home_key("GET|h/obj", i))] += 1;
        }
        for c in counts {
            assert!((600..=1400).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_lost_peer_moves_only_its_own_slices() {
        let all = peers(3);
        let three = Ring::new(&all);
        let two = Ring::new(&all[..2]);
        for i in 0..1000 {
            let key = home_key("GET|h/obj", i);
            let before = three.home(&key);
            if *before != all[2] {
                assert_eq!(two.home(&key), before, "slice {i} moved");
            }
        }
    }

    #[test]
    fn stand_ins_are_every_other_peer_once_home_first() {
        let ring = Ring::new(&peers(3));
        for i in 0..100 {
            let key = home_key("GET|h/obj", i);
            let mut homes: Vec<usize> = ring.homes(&key).collect();
            assert_eq!(homes[0], ring.home_index(&key));
            homes.sort();
            assert_eq!(homes, [0, 1, 2]);
        }
    }

    #[test]
    fn one_peer_is_home_to_everything() {
        let one = peers(1);
        let ring = Ring::new(&one);
        assert_eq!(ring.home(&home_key("x", 7)), &one[0]);
    }
}
