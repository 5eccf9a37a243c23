//! What a worker's connections share, whatever their protocol: how many are
//! open, the requests in flight, and whether the worker drains.
//!
//! Both connection kinds (HTTP/1.1 in `connection`, HTTP/2 in `h2`) count
//! themselves and each request through the guards here, so the connection
//! limit, `/metrics` and the drain on shutdown see every request the same.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::ops::metrics;

/// What a worker's connections share: requests in flight, and whether it drains.
#[derive(Debug, Default)]
pub struct WorkerState {
    in_flight: Cell<usize>,
    draining: Cell<bool>,
    connections: Cell<usize>,
    /// Connections opened since start: the next one's id.
    opened: Cell<u64>,
}

impl WorkerState {
    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Stop taking new requests; wait up to `timeout` for those in flight.
    /// Returns the number still in flight when it gave up (0 when all finished).
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining.set(true);
        let deadline = Instant::now() + timeout;
        while self.in_flight.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        self.in_flight.get()
    }

    /// Whether the worker is shutting down: no new requests are started.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Count a connection as open until the guard is dropped; the guard
    /// names it by an id of its own on this worker.
    pub fn open_connection(&self) -> OpenConnection<'_> {
        self.connections.set(self.connections.get() + 1);
        let id = self.opened.get();
        self.opened.set(id + 1);
        metrics::with(|m| m.connections.inc());
        OpenConnection(self, id)
    }

    /// Count a request as in flight until the guard is dropped.
    pub fn start_request(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        metrics::with(|m| m.in_flight.inc());
        InFlight(self)
    }
}

/// An open connection, counted until dropped.
pub struct OpenConnection<'a>(&'a WorkerState, u64);

impl OpenConnection<'_> {
    /// The connection's id on its worker (the budget's turns are by connection).
    pub fn id(&self) -> u64 {
        self.1
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        metrics::with(|m| m.connections.sub(1));
    }
}

/// A request being answered, counted until dropped (also when its task is
/// dropped mid-way, as an aborted HTTP/2 stream's is).
pub struct InFlight<'a>(&'a WorkerState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
        metrics::with(|m| m.in_flight.sub(1));
    }
}
