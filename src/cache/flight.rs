//! Single flight: one origin fetch per cold slice, however many clients want it.
//!
//! The first request for a missing key becomes the leader and fetches it; the
//! others, on any worker, become followers and receive the same bytes as they
//! arrive (chunks already received are replayed to a late follower), instead
//! of polling the store. The table is split into shards by key hash; a shard's
//! lock is taken once per join and once per chunk of a miss, never on a hit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

const SHARDS: usize = 64;

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum FlightEvent {
    /// The next bytes, in order.
    Data(Bytes),
    /// The leader got everything and checked it; `via_peer`: from a peer
    /// node of the cluster rather than the origin.
    Done {
        /// The bytes came from a peer node.
        via_peer: bool,
    },
    /// The leader failed; the follower should fetch on its own.
    Failed(LeaderFailed),
}

/// Why a flight ended without its value. A leader's own error goes up its
/// own request; what its followers learn is that they must fetch alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaderFailed {
    /// The leading request ended (failed, or its client left) before the
    /// value was whole.
    #[error("the fetching request went away")]
    Gone,
}

#[derive(Default)]
struct FlightState {
    chunks: Vec<Bytes>,
    via_peer: bool,
    outcome: Option<Result<(), LeaderFailed>>,
    followers: Vec<flume::Sender<FlightEvent>>,
}

type Table = Mutex<HashMap<String, Arc<Mutex<FlightState>>>>;

/// The node's fetches in flight, by cache key.
pub struct Flights {
    shards: Vec<Table>,
    hasher: RandomState,
}

/// The result of [`Flights::join`].
pub enum Joined {
    /// Nobody is fetching this key: the caller fetches and publishes.
    Leader(FlightLeader),
    /// Someone is: receive their bytes here.
    Follower(flume::Receiver<FlightEvent>),
}

impl Default for Flights {
    fn default() -> Self {
        Flights {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Flights {
    fn shard(&self, key: &str) -> &Table {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Lead the fetch of `key`, or follow the one in flight. A flight that
    /// failed is over even while its leader has not left the table yet
    /// (its followers are told before it is removed): the caller leads a
    /// new one, where following would only tell it to fetch alone.
    pub fn join(self: &Arc<Self>, key: &str) -> Joined {
        let mut table = lock(self.shard(key));
        if let Some(flight) = table.get(key) {
            let mut state = lock(flight);
            if !matches!(state.outcome, Some(Err(_))) {
                let (tx, rx) = flume::unbounded();
                for chunk in &state.chunks {
                    let _ = tx.send(FlightEvent::Data(chunk.clone()));
                }
                match &state.outcome {
                    Some(_) => {
                        let via_peer = state.via_peer;
                        let _ = tx.send(FlightEvent::Done { via_peer });
                    }
                    None => state.followers.push(tx),
                }
                return Joined::Follower(rx);
            }
        }
        let flight = Arc::new(Mutex::new(FlightState::default()));
        table.insert(key.to_string(), flight.clone());
        Joined::Leader(FlightLeader {
            flights: self.clone(),
            key: key.to_string(),
            flight,
            retired: false,
        })
    }

    /// Keys in flight now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The leader's side of a flight. Dropping it without [`FlightLeader::complete`]
/// fails the followers.
pub struct FlightLeader {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Mutex<FlightState>>,
    retired: bool,
}

impl FlightLeader {
    /// Hand the next bytes to every follower.
    pub fn publish(&self, chunk: &Bytes) {
        let mut state = lock(&self.flight);
        state.chunks.push(chunk.clone());
        state
            .followers
            .retain(|f| f.send(FlightEvent::Data(chunk.clone())).is_ok());
    }

    /// Whether a request follows this flight now.
    pub fn has_followers(&self) -> bool {
        !lock(&self.flight).followers.is_empty()
    }

    /// Say the bytes come from a peer node, not the origin (followers
    /// count their slice by where it came from).
    pub fn set_via_peer(&self, via_peer: bool) {
        lock(&self.flight).via_peer = via_peer;
    }

    /// Tell the followers how it ended. The flight stays joinable (late
    /// followers replay it) until [`FlightLeader::retire`], which the leader
    /// calls once the value is in the store.
    pub fn complete(&self, outcome: Result<(), LeaderFailed>) {
        let mut state = lock(&self.flight);
        let event = match &outcome {
            Ok(()) => FlightEvent::Done {
                via_peer: state.via_peer,
            },
            Err(e) => FlightEvent::Failed(*e),
        };
        for f in state.followers.drain(..) {
            let _ = f.send(event.clone());
        }
        state.outcome = Some(outcome);
    }

    /// The bytes published so far.
    pub fn chunks(&self) -> Vec<Bytes> {
        lock(&self.flight).chunks.clone()
    }

    /// Remove the flight from the table.
    pub fn retire(mut self) {
        self.remove();
    }

    /// Leave the table, unless a new flight of the key took this one's
    /// place there (see [`Flights::join`]).
    fn remove(&mut self) {
        if !self.retired {
            self.retired = true;
            let mut table = lock(self.flights.shard(&self.key));
            if table
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                table.remove(&self.key);
            }
        }
    }
}

impl Drop for FlightLeader {
    fn drop(&mut self) {
        if lock(&self.flight).outcome.is_none() {
            self.complete(Err(LeaderFailed::Gone));
        }
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &flume::Receiver<FlightEvent>) -> (Vec<u8>, Option<bool>) {
        let mut bytes = Vec::new();
        let mut end = None;
        while let Ok(ev) = rx.try_recv() {
            match ev {
                FlightEvent::Data(b) => bytes.extend_from_slice(&b),
                FlightEvent::Done { .. } => end = Some(true),
                FlightEvent::Failed(_) => end = Some(false),
            }
        }
        (bytes, end)
    }

    #[test]
    fn followers_get_the_leaders_bytes_even_when_late() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("first join leads")
        };
        let Joined::Follower(early) = flights.join("k") else {
            panic!("second join follows")
        };
        leader.publish(&Bytes::from_static(b"ab"));
        let Joined::Follower(late) = flights.join("k") else {
            panic!("third join follows")
        };
        leader.publish(&Bytes::from_static(b"cd"));
        leader.complete(Ok(()));
        let Joined::Follower(after) = flights.join("k") else {
            panic!("joins until retired")
        };
        leader.retire();
        for rx in [&early, &late, &after] {
            assert_eq!(drain(rx), (b"abcd".to_vec(), Some(true)));
        }
        assert!(flights.is_empty());
        assert!(matches!(flights.join("k"), Joined::Leader(_)));
    }

    #[test]
    fn a_dropped_leader_fails_its_followers() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(leader) = flights.join("k") else {
            panic!()
        };
        let Joined::Follower(rx) = flights.join("k") else {
            panic!()
        };
        leader.publish(&Bytes::from_static(b"x"));
        drop(leader);
        assert_eq!(drain(&rx), (b"x".to_vec(), Some(false)));
        assert!(flights.is_empty());
    }

    /// A leader tells its followers it failed before it leaves the table:
    /// one of them that looks again in between (on another worker) must
    /// lead the next flight, not follow the failed one (it was told to
    /// fetch alone, and a request that looks up an object only a few times
    /// ran out of looks: it was answered without being stored). The new
    /// flight stays when the old leader leaves.
    #[test]
    fn a_failed_flight_is_led_again_before_its_leader_leaves() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(old) = flights.join("k") else {
            panic!()
        };
        old.complete(Err(LeaderFailed::Gone));
        let Joined::Leader(new) = flights.join("k") else {
            panic!("a failed flight is not followed")
        };
        drop(old);
        let Joined::Follower(rx) = flights.join("k") else {
            panic!("the new flight is still there")
        };
        new.publish(&Bytes::from_static(b"y"));
        new.complete(Ok(()));
        new.retire();
        assert_eq!(drain(&rx), (b"y".to_vec(), Some(true)));
        assert!(flights.is_empty());
    }
}
