//! What SIGHUP may change without a restart: the route table and the client
//! limits, swapped whole, and each worker's view of them.
//!
//! [`Reloadable`] holds the current pair for the node; each worker's
//! [`WorkerRoutes`] rebuilds its own [`Router`] (its origin pools) when the
//! generation moves, between requests.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cache::SliceCache;
use crate::proxy::route::{RouteTable, Router};
use crate::server::limits::ClientLimits;
use crate::slice::stream::SliceBudget;

/// What SIGHUP may change without a restart: routes and client limits.
pub struct Reloadable {
    generation: AtomicU64,
    current: Mutex<Arc<(RouteTable, ClientLimits)>>,
}

impl Reloadable {
    /// Start with `table` and `limits`.
    pub fn new(table: RouteTable, limits: ClientLimits) -> Reloadable {
        Reloadable {
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new((table, limits))),
        }
    }

    /// Hand a new table and limits to the workers.
    pub fn replace(&self, table: RouteTable, limits: ClientLimits) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new((table, limits));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The generation now (changes on every [`Reloadable::replace`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The table and limits now.
    pub fn current(&self) -> Arc<(RouteTable, ClientLimits)> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A worker's view of the reloadable routes and limits.
pub struct WorkerRoutes {
    reload: Arc<Reloadable>,
    cache: Option<Arc<SliceCache>>,
    budget: Rc<SliceBudget>,
    seen: std::cell::Cell<u64>,
    now: std::cell::RefCell<(Rc<Router>, Rc<ClientLimits>)>,
}

impl WorkerRoutes {
    /// This worker's routes from `reload`, with the node's cache and its own budget.
    pub fn new(
        reload: Arc<Reloadable>,
        cache: Option<Arc<SliceCache>>,
        budget: Rc<SliceBudget>,
    ) -> WorkerRoutes {
        let seen = reload.generation();
        let shared = reload.current();
        let router = Rc::new(Router::build(&shared.0, &cache, &budget));
        WorkerRoutes {
            reload,
            cache,
            budget,
            seen: std::cell::Cell::new(seen),
            now: std::cell::RefCell::new((router, Rc::new(shared.1.clone()))),
        }
    }

    /// The routes and limits in force, rebuilt here after a reload.
    pub fn current(&self) -> (Rc<Router>, Rc<ClientLimits>) {
        let generation = self.reload.generation();
        if generation != self.seen.get() {
            let shared = self.reload.current();
            let router = Rc::new(Router::build(&shared.0, &self.cache, &self.budget));
            *self.now.borrow_mut() = (router, Rc::new(shared.1.clone()));
            self.seen.set(generation);
        }
        self.now.borrow().clone()
    }
}
