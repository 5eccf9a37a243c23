//! A budget on the HTTP/2 control frames a client sends, kept by reading the
//! frame headers as the bytes go by on their way to the h2 crate.
//!
//! The h2 crate answers every SETTINGS and PING before it reads the next
//! frame, so a flood of them never queues answers without bound, but it
//! answers each one, as fast as the client sends; and it drops PRIORITY
//! and unknown frames at no limit. [`FrameWatch`] wraps the connection's
//! I/O, follows the frame boundaries (9-byte header, then `length` bytes of
//! payload) and counts the frames that cost work but carry no request:
//! SETTINGS, PING, PRIORITY, RST_STREAM, empty DATA and frame types h2 does
//! not know. Past [`FrameBudget`]'s limit in one second it stops reading and
//! trips, and the connection loop closes the connection with GOAWAY
//! `ENHANCE_YOUR_CALM`. Counting costs a few comparisons per frame.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many control frames a connection may send per second, and how many
/// it sent in the current second.
#[derive(Debug)]
pub struct FrameBudget {
    per_sec: u32,
    window_start: Cell<Instant>,
    spent: Cell<u32>,
    tripped: Cell<bool>,
}

impl FrameBudget {
    /// A budget of `per_sec` control frames per second.
    pub fn new(per_sec: u32) -> FrameBudget {
        FrameBudget {
            per_sec,
            window_start: Cell::new(Instant::now()),
            spent: Cell::new(0),
            tripped: Cell::new(false),
        }
    }

    /// Whether the client went over the budget.
    pub fn tripped(&self) -> bool {
        self.tripped.get()
    }

    /// Count one control frame; false once over the budget.
    fn spend(&self, now: Instant) -> bool {
        if now.duration_since(self.window_start.get()) >= Duration::from_secs(1) {
            self.window_start.set(now);
            self.spent.set(0);
        }
        self.spent.set(self.spent.get() + 1);
        if self.spent.get() > self.per_sec {
            self.tripped.set(true);
        }
        !self.tripped.get()
    }
}

/// Whether a frame costs the server work without carrying a request.
fn is_control(kind: u8, flags: u8, len: u32) -> bool {
    const END_STREAM: u8 = 0x1;
    match kind {
        0x0 => len == 0 && flags & END_STREAM == 0, // empty DATA
        0x2..=0x4 | 0x6 => true,                    // PRIORITY, RST_STREAM, SETTINGS, PING
        0x1 | 0x5 | 0x7..=0x9 => false, // HEADERS, PUSH_PROMISE, GOAWAY, WINDOW_UPDATE, CONTINUATION
        _ => true,                      // unknown types are read and dropped
    }
}

/// Where the reader is in the frame stream.
#[derive(Debug)]
struct FrameScanner {
    /// Preface bytes still to pass.
    preface_left: usize,
    /// The frame header being read.
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: u64,
}

impl FrameScanner {
    fn new() -> FrameScanner {
        FrameScanner {
            preface_left: PREFACE.len(),
            header: [0; 9],
            have: 0,
            payload_left: 0,
        }
    }

    /// Follow `data`, calling `frame(type, flags, length)` for each frame
    /// header completed in it, until it returns false. Returns how many
    /// bytes were followed: all of `data`, or up to the end of the header
    /// that stopped it.
    fn feed(&mut self, data: &[u8], mut frame: impl FnMut(u8, u8, u32) -> bool) -> usize {
        let whole = data.len();
        let mut data = data;
        while !data.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(data.len());
                self.preface_left -= n;
                data = &data[n..];
            } else if self.payload_left > 0 {
                let n = (self.payload_left.min(data.len() as u64)) as usize;
                self.payload_left -= n as u64;
                data = &data[n..];
            } else {
                let n = (9 - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 9 {
                    let h = self.header;
                    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                    self.have = 0;
                    self.payload_left = len.into();
                    if !frame(h[3], h[4], len) {
                        break;
                    }
                }
            }
        }
        whole - data.len()
    }
}

/// A connection's I/O that counts the control frames read through it
/// against a [`FrameBudget`], and stops reading once it is spent.
pub struct FrameWatch<IO> {
    io: IO,
    scanner: FrameScanner,
    budget: Rc<FrameBudget>,
}

impl<IO> FrameWatch<IO> {
    /// Watch the frames read from `io`.
    pub fn new(io: IO, budget: Rc<FrameBudget>) -> FrameWatch<IO> {
        FrameWatch {
            io,
            scanner: FrameScanner::new(),
            budget,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FrameWatch<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.budget.tripped() {
            // Read nothing more; the connection loop closes the connection.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() {
            let now = Instant::now();
            let budget = &this.budget;
            let followed = this
                .scanner
                .feed(&buf.filled()[before..], |kind, flags, len| {
                    !is_control(kind, flags, len) || budget.spend(now)
                });
            if budget.tripped() {
                // h2 never sees the frame over the budget, nor what follows;
                // the connection loop, woken, closes the connection.
                buf.set_filled(before + followed.saturating_sub(9));
                cx.waker().wake_by_ref();
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FrameWatch<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags, 0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_found_across_any_split() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x4, 0, &[0; 6])); // SETTINGS
        wire.extend(frame(0x1, 0x4, &[0x82; 20])); // HEADERS
        wire.extend(frame(0x0, 0, &[7; 100])); // DATA
        wire.extend(frame(0x6, 0, &[0; 8])); // PING
        wire.extend(frame(0x0, 0x1, &[])); // empty DATA, END_STREAM
        let want = [(4, 0, 6), (1, 4, 20), (0, 0, 100), (6, 0, 8), (0, 1, 0)];
        for step in [1, 2, 5, 9, 10, 33, wire.len()] {
            let mut scanner = FrameScanner::new();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                let followed = scanner.feed(piece, |k, f, l| {
                    got.push((k, f, l));
                    true
                });
                assert_eq!(followed, piece.len());
            }
            assert_eq!(got, want, "pieces of {step}");
        }
    }

    #[test]
    fn following_stops_after_the_header_refused() {
        let mut wire = frame(0x6, 0, &[0; 8]);
        wire.extend(frame(0x6, 0, &[0; 8]));
        let mut scanner = FrameScanner::new();
        scanner.preface_left = 0;
        let mut seen = 0;
        let followed = scanner.feed(&wire, |_, _, _| {
            seen += 1;
            seen < 2
        });
        assert_eq!((seen, followed), (2, 17 + 9));
    }

    #[test]
    fn control_frames_table() {
        // (type, flags, length, counts)
        let cases = [
            (0x0, 0x0, 0, true),
            (0x0, 0x1, 0, false),
            (0x0, 0x0, 5, false),
            (0x1, 0x4, 9, false),
            (0x2, 0x0, 5, true),
            (0x3, 0x0, 4, true),
            (0x4, 0x0, 0, true),
            (0x4, 0x1, 0, true),
            (0x6, 0x0, 8, true),
            (0x8, 0x0, 4, false),
            (0x9, 0x0, 4, false),
            (0xfa, 0x0, 4, true),
        ];
        for (kind, flags, len, want) in cases {
            assert_eq!(is_control(kind, flags, len), want, "type {kind:#x}");
        }
    }

    #[test]
    fn the_budget_trips_past_its_limit_within_a_second() {
        let budget = FrameBudget::new(3);
        let t = Instant::now();
        assert!((0..3).all(|_| budget.spend(t)));
        assert!(!budget.spend(t));
        assert!(budget.tripped());

        let budget = FrameBudget::new(3);
        assert!((0..3).all(|_| budget.spend(t)));
        assert!(budget.spend(t + Duration::from_millis(1001)));
        assert!(!budget.tripped());
    }
}
