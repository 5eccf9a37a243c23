//! The response bytes one HTTP/2 connection may hold queued in the h2 crate.
//!
//! h2 keeps the body bytes a stream hands it until their DATA frames are
//! written to the socket, up to 256 KiB a stream (`max_send_buffer_size`).
//! A client that opens many streams with large windows and then does not
//! read would make a connection hold that much for every stream. Every piece
//! an [`H2Client`](crate::server::h2::sink::H2Client) hands h2 is therefore
//! admitted on its connection's [`SendQueue`] before the stream takes it
//! (the driver asks before it takes a piece out of its order, so a piece
//! that must wait stays where the cache can swap it for its slot), and
//! counted until h2 lets go of its last byte (the count rides inside the
//! piece's `Bytes`): a connection holds at most [`CONNECTION_QUEUE`],
//! however many streams it has (one piece over it when it holds nothing).

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;

/// Bytes one connection may have queued in h2 before its streams wait.
pub const CONNECTION_QUEUE: usize = 1024 * 1024;

/// Bytes queued in h2 on one connection, and the streams waiting for room.
#[derive(Debug, Default)]
pub struct SendQueue {
    queued: AtomicUsize,
    waiting: Mutex<Vec<Waker>>,
}

impl SendQueue {
    /// An empty queue for a new connection.
    pub fn new() -> Arc<SendQueue> {
        Arc::new(SendQueue::default())
    }

    /// Bytes queued (or admitted to be) now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Count `bytes` more, once they fit under [`CONNECTION_QUEUE`] (or
    /// nothing is queued): a stream asks before it takes a piece to hand h2.
    pub async fn admit(&self, bytes: usize) {
        poll_fn(|cx| {
            if self.try_admit(bytes) {
                return Poll::Ready(());
            }
            lock(&self.waiting).push(cx.waker().clone());
            // Freed between the look and the registration: look again.
            match self.try_admit(bytes) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await
    }

    fn try_admit(&self, bytes: usize) -> bool {
        self.queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q == 0 || q + bytes <= CONNECTION_QUEUE).then_some(q + bytes)
            })
            .is_ok()
    }

    /// `bytes`, admitted before, counted until the last clone of what is
    /// returned is dropped.
    pub fn hand(self: &Arc<Self>, bytes: Bytes) -> Bytes {
        Bytes::from_owner(Counted {
            bytes,
            queue: self.clone(),
        })
    }

    /// Give back `bytes` admitted and never handed.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        let waiting = std::mem::take(&mut *lock(&self.waiting));
        waiting.into_iter().for_each(Waker::wake);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes counted on a [`SendQueue`] while they live.
struct Counted {
    bytes: Bytes,
    queue: Arc<SendQueue>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let was = self
            .queue
            .queued
            .fetch_sub(self.bytes.len(), Ordering::Relaxed);
        if was - self.bytes.len() < CONNECTION_QUEUE {
            let waiting = std::mem::take(&mut *lock(&self.queue.waiting));
            waiting.into_iter().for_each(Waker::wake);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_count_until_their_last_clone_goes() {
        let queue = SendQueue::new();
        assert!(queue.try_admit(1000));
        assert!(
            !queue.try_admit(CONNECTION_QUEUE),
            "over the cap beside another"
        );
        let piece = queue.hand(Bytes::from(vec![1u8; 1000]));
        let frame = piece.slice(0..100);
        drop(piece);
        assert_eq!(queue.queued(), 1000, "a frame still holds it");
        assert_eq!(&frame[..], &[1u8; 100][..]);
        drop(frame);
        assert_eq!(queue.queued(), 0);
    }
}
