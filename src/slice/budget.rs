//! The worker's budget of slice bytes in memory (`server.max_buffered_bytes`).
//!
//! Every slice fetched from a peer or the origin (the probe of a cold
//! object included) reserves its size here before it is asked for, and
//! gives it back when its bytes have left memory: once the client has been
//! sent them or, for a slice stored in the cache, as soon as it is stored
//! (what the client has not read yet is then sent from the slot). A slice
//! found in the cache reserves nothing: its bytes are in the page cache.
//!
//! The limit is hard: when it is reached, a request waits for a
//! reservation before it asks for more. No client can make a worker hold
//! more than the limit, however many requests it opens and however slowly
//! it reads; a client that stops reading a cacheable answer holds nothing
//! once its slices are stored. One reservation larger than the whole limit
//! is let through when nothing else is reserved, so a limit below one slice
//! still makes progress.
//!
//! Waiters are served fairly by client connection: the next reservation
//! goes to the waiting connection that holds the fewest now (then to a
//! request's first slice before further ones, then in arrival order). A
//! client that opens a thousand streams gets its turns as one connection,
//! and a new client's request never queues behind them.
//!
//! ```
//! use edgeslice::slice::budget::SliceBudget;
//! let budget = SliceBudget::new(10);
//! let client = 1;
//! let a = budget.try_reserve(6, client).expect("6 of 10");
//! assert!(budget.try_reserve(6, client).is_none(), "12 would be over 10");
//! drop(a);
//! assert_eq!(budget.in_use(), 0);
//! assert!(budget.try_reserve(6, client).is_some());
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Slice bytes one worker may hold in memory, over all its requests.
#[derive(Debug)]
pub struct SliceBudget {
    limit: u64,
    used: Cell<u64>,
    /// Waiting reservations.
    queue: RefCell<Vec<Waiter>>,
    tickets: Cell<u64>,
    /// Reservations held, by client connection.
    holding: RefCell<HashMap<u64, u32>>,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    client: u64,
    first: bool,
    waker: Waker,
}

/// Bytes reserved from a [`SliceBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reserved {
    budget: Rc<SliceBudget>,
    bytes: u64,
    client: u64,
}

impl SliceBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Rc<SliceBudget> {
        Rc::new(SliceBudget {
            limit,
            used: Cell::new(0),
            queue: RefCell::new(Vec::new()),
            tickets: Cell::new(0),
            holding: RefCell::new(HashMap::new()),
        })
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        self.used.get()
    }

    fn fits(&self, bytes: u64) -> bool {
        let used = self.used.get();
        used == 0 || used + bytes <= self.limit
    }

    fn take(self: &Rc<Self>, bytes: u64, client: u64) -> Reserved {
        self.used.set(self.used.get() + bytes);
        *self.holding.borrow_mut().entry(client).or_default() += 1;
        Reserved {
            budget: self.clone(),
            bytes,
            client,
        }
    }

    /// `bytes` more for `client` now, if the limit allows and nobody waits.
    pub fn try_reserve(self: &Rc<Self>, bytes: u64, client: u64) -> Option<Reserved> {
        (self.queue.borrow().is_empty() && self.fits(bytes)).then(|| self.take(bytes, client))
    }

    /// `bytes` more for `client` (a connection's id), waiting for its turn;
    /// `first`: the request holds nothing yet.
    pub fn reserve(self: &Rc<Self>, bytes: u64, client: u64, first: bool) -> Reserve {
        Reserve {
            budget: self.clone(),
            bytes,
            client,
            first,
            ticket: None,
        }
    }

    fn enqueue(&self, client: u64, first: bool, waker: Waker) -> u64 {
        let ticket = self.tickets.get();
        self.tickets.set(ticket + 1);
        self.queue.borrow_mut().push(Waiter {
            ticket,
            client,
            first,
            waker,
        });
        ticket
    }

    /// The ticket whose turn it is: the fewest held by its client, then a
    /// first slice, then the oldest.
    fn head(&self) -> Option<u64> {
        let holding = self.holding.borrow();
        self.queue
            .borrow()
            .iter()
            .min_by_key(|w| {
                let held = holding.get(&w.client).copied().unwrap_or(0);
                (held, !w.first, w.ticket)
            })
            .map(|w| w.ticket)
    }

    fn wake_head(&self) {
        let Some(ticket) = self.head() else {
            return;
        };
        if let Some(w) = self.queue.borrow().iter().find(|w| w.ticket == ticket) {
            w.waker.wake_by_ref();
        }
    }

    fn give_back(&self, bytes: u64, client: u64) {
        self.used.set(self.used.get() - bytes);
        let mut holding = self.holding.borrow_mut();
        if let Some(n) = holding.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                holding.remove(&client);
            }
        }
        drop(holding);
        self.wake_head();
    }
}

/// A reservation waiting its turn ([`SliceBudget::reserve`]); dropping it
/// leaves the line.
#[derive(Debug)]
pub struct Reserve {
    budget: Rc<SliceBudget>,
    bytes: u64,
    client: u64,
    first: bool,
    ticket: Option<u64>,
}

impl Future for Reserve {
    type Output = Reserved;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reserved> {
        let budget = self.budget.clone();
        let Some(ticket) = self.ticket else {
            if let Some(r) = budget.try_reserve(self.bytes, self.client) {
                return Poll::Ready(r);
            }
            self.ticket = Some(budget.enqueue(self.client, self.first, cx.waker().clone()));
            return Poll::Pending;
        };
        if budget.head() == Some(ticket) && budget.fits(self.bytes) {
            budget.queue.borrow_mut().retain(|w| w.ticket != ticket);
            self.ticket = None;
            let r = budget.take(self.bytes, self.client);
            // Room may be left for the next in line.
            budget.wake_head();
            return Poll::Ready(r);
        }
        if let Some(w) = budget
            .queue
            .borrow_mut()
            .iter_mut()
            .find(|w| w.ticket == ticket)
        {
            w.waker.clone_from(cx.waker());
        }
        Poll::Pending
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let was_head = self.budget.head() == Some(ticket);
        self.budget
            .queue
            .borrow_mut()
            .retain(|w| w.ticket != ticket);
        if was_head {
            self.budget.wake_head();
        }
    }
}

impl Reserved {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes, self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn block_on<F: Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_reservation_over_the_limit_passes_only_alone() {
        let budget = SliceBudget::new(4);
        let big = budget.try_reserve(10, 1).expect("alone, it passes");
        assert!(budget.try_reserve(1, 1).is_none());
        drop(big);
        let small = budget.try_reserve(1, 1).unwrap();
        assert!(budget.try_reserve(10, 1).is_none(), "not beside another");
        drop(small);
    }

    #[test]
    fn turns_go_to_the_client_holding_least_then_first_slices_then_in_order() {
        block_on(async {
            let budget = SliceBudget::new(8);
            // Client 1 holds two reservations, client 2 one, client 9 one;
            // client 9's goes back, and each waiter then holds the 2 bytes
            // free in turn.
            let [a, b, c, freed] =
                [(1, 2), (1, 2), (2, 2), (9, 2)].map(|(c, n)| budget.try_reserve(n, c).unwrap());
            let served = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            // (name, client, first), in arrival order.
            let waiters = [
                ("1-more", 1, false),
                ("1-first", 1, true),
                ("2-more", 2, false),
                ("3-more", 3, false),
                ("3-first", 3, true),
            ];
            for (name, client, first) in waiters {
                let (budget, served) = (budget.clone(), served.clone());
                tasks.push(monoio::spawn(async move {
                    let r = budget.reserve(2, client, first).await;
                    served.borrow_mut().push(name);
                    monoio::time::sleep(Duration::from_millis(2)).await;
                    drop(r);
                }));
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(budget.try_reserve(1, 4).is_none(), "nobody jumps the line");
            drop(freed);
            for t in tasks {
                t.await;
            }
            // Client 3 holds nothing: its first, then its other; then
            // client 2 (holds one), then client 1 (holds two): first, other.
            let want = ["3-first", "3-more", "2-more", "1-first", "1-more"];
            assert_eq!(*served.borrow(), want);
            drop((a, b, c));
            assert_eq!(budget.in_use(), 0);
        });
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_line() {
        block_on(async {
            let budget = SliceBudget::new(4);
            let all = budget.try_reserve(4, 1).unwrap();
            let gave_up = budget.reserve(4, 2, true);
            let gave_up = monoio::time::timeout(Duration::from_millis(2), gave_up);
            assert!(gave_up.await.is_err());
            assert!(budget.queue.borrow().is_empty());
            drop(all);
            assert!(budget.try_reserve(4, 2).is_some());
        });
    }
}
