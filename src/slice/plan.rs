//! Slice planning: which slices an answer needs. Pure.
//!
//! In: the client's inclusive byte range (resolved against the object length
//! by the driver's "respond" phase) and the object's slice grid.
//! Out: a [`SlicePlan`] naming the aligned slices [`crate::slice::fetch`] gets,
//! one source per slice, and how much of each edge slice
//! [`crate::slice::part`] trims before the bytes reach the client.
//!
//! Slice `k` covers bytes `[k*S, min((k+1)*S, len) - 1]`. Slices are
//! aligned to the object, not to the client's range, so every client range
//! maps onto the same cache keys.
//!
//! ```
//! use edgeslice::slice::plan::{slice_range_header, SlicePlan};
//!
//! // bytes 5..=20 of a 100-byte object, in 8-byte slices: slices 0, 1, 2
//! let plan = SlicePlan::new(5, 20, 100, 8);
//! assert_eq!(plan.slices().collect::<Vec<_>>(), [0, 1, 2]);
//! assert_eq!(plan.client_part(0), (5, 3)); // bytes 5..=7
//! assert_eq!(plan.client_part(1), (0, 8)); // bytes 8..=15
//! assert_eq!(plan.client_part(2), (0, 5)); // bytes 16..=20
//! assert_eq!(slice_range_header(2, 8), "bytes=16-23");
//! ```

/// The slices one client request needs, with the trims of its edge slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlicePlan {
    /// Bytes per slice; every slice but the object's last is this long.
    pub slice_size: u64,
    /// Length of the whole object.
    pub object_len: u64,
    /// First byte the client asked for.
    pub first_byte: u64,
    /// Last byte the client asked for, inclusive.
    pub last_byte: u64,
    /// Slice holding `first_byte`.
    pub first_slice: u64,
    /// Slice holding `last_byte`.
    pub last_slice: u64,
}

impl SlicePlan {
    /// Plan the slices for bytes `first_byte..=last_byte` of an object.
    ///
    /// Requires `object_len > 0`, `first_byte <= last_byte < object_len` and
    /// `slice_size > 0`; checked in debug builds only. Never panics.
    pub fn new(first_byte: u64, last_byte: u64, object_len: u64, slice_size: u64) -> SlicePlan {
        debug_assert!(slice_size > 0, "slice_size must be > 0");
        debug_assert!(
            first_byte <= last_byte && last_byte < object_len,
            "range {first_byte}-{last_byte} does not fit an object of {object_len} bytes"
        );
        // max(1) keeps release builds from dividing by zero.
        let divisor = slice_size.max(1);
        SlicePlan {
            slice_size,
            object_len,
            first_byte,
            last_byte,
            first_slice: first_byte / divisor,
            last_slice: last_byte / divisor,
        }
    }

    /// Number of slices.
    pub fn slice_count(&self) -> u64 {
        self.last_slice
            .saturating_sub(self.first_slice)
            .saturating_add(1)
    }

    /// Byte range (inclusive) of slice `k` of the object (any `k` below the
    /// object's slice count), clipped to the object's length.
    pub fn slice_bounds(&self, k: u64) -> (u64, u64) {
        debug_assert!(
            slice_bounds(k, self.slice_size, self.object_len).is_some(),
            "slice {k} is past the end of an object of {} bytes",
            self.object_len
        );
        let start = k.saturating_mul(self.slice_size);
        let end = start.saturating_add(self.slice_size).min(self.object_len);
        (start, end.saturating_sub(1))
    }

    /// Which part of slice `k` goes to the client: (offset within the slice, length).
    pub fn client_part(&self, k: u64) -> (u64, u64) {
        debug_assert!(
            (self.first_slice..=self.last_slice).contains(&k),
            "slice {k} is outside the plan's slices {}-{}",
            self.first_slice,
            self.last_slice
        );
        let (start, end) = self.slice_bounds(k);
        let lo = start.max(self.first_byte);
        let hi = end.min(self.last_byte);
        if hi < lo {
            return (0, 0);
        }
        (lo - start, (hi - lo).saturating_add(1))
    }

    /// Iterator over slice indices `first_slice..=last_slice`.
    pub fn slices(&self) -> impl Iterator<Item = u64> {
        self.first_slice..=self.last_slice
    }

    /// Total bytes sent to the client (`last_byte - first_byte + 1`).
    pub fn content_length(&self) -> u64 {
        self.last_byte
            .saturating_sub(self.first_byte)
            .saturating_add(1)
    }
}

/// Index of the slice holding byte `offset`; `slice_size` must be > 0.
pub fn slice_of(offset: u64, slice_size: u64) -> u64 {
    offset / slice_size
}

/// Byte range (inclusive) of slice `k` for an object of `object_len` bytes;
/// `None` if `k` is past the end.
pub fn slice_bounds(k: u64, slice_size: u64, object_len: u64) -> Option<(u64, u64)> {
    let start = k.checked_mul(slice_size)?;
    if start >= object_len {
        return None;
    }
    let end = start.saturating_add(slice_size).min(object_len);
    Some((start, end - 1))
}

/// The value of the Range header asking exactly slice `k`: `bytes=a-b`.
///
/// `b = (k+1)*S - 1` is not clipped: the object's length may be unknown when
/// the slice is asked for, and the origin clips it.
pub fn slice_range_header(k: u64, slice_size: u64) -> String {
    let start = k.saturating_mul(slice_size);
    let end = start.saturating_add(slice_size.saturating_sub(1));
    format!("bytes={start}-{end}")
}

/// [`slice_range_header`] as a header value.
pub fn slice_range_value(k: u64, slice_size: u64) -> http::HeaderValue {
    http::HeaderValue::from_str(&slice_range_header(k, slice_size))
        .expect("a range header is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bounds = Option<(u64, u64)>;

    /// One `SlicePlan::new(first, last, len, S)` and what it should give.
    struct Case {
        first: u64,
        last: u64,
        len: u64,
        size: u64,
        slices: (u64, u64),
        parts: &'static [(u64, u64)],
    }

    #[test]
    fn plan_table() {
        const S: u64 = 4;
        #[rustfmt::skip]
        let cases = [
            // one-byte object
            Case { first: 0, last: 0, len: 1, size: S, slices: (0, 0), parts: &[(0, 1)] },
            // length S-1, S, S+1, 2S: whole object
            Case { first: 0, last: 2, len: S - 1, size: S, slices: (0, 0), parts: &[(0, 3)] },
            Case { first: 0, last: 3, len: S, size: S, slices: (0, 0), parts: &[(0, 4)] },
            Case { first: 0, last: 4, len: S + 1, size: S, slices: (0, 1), parts: &[(0, 4), (0, 1)] },
            Case { first: 0, last: 7, len: 2 * S, size: S, slices: (0, 1), parts: &[(0, 4), (0, 4)] },
            // ranges starting and ending exactly at slice edges
            Case { first: 4, last: 7, len: 16, size: S, slices: (1, 1), parts: &[(0, 4)] },
            Case { first: 4, last: 11, len: 16, size: S, slices: (1, 2), parts: &[(0, 4), (0, 4)] },
            Case { first: 3, last: 4, len: 16, size: S, slices: (0, 1), parts: &[(3, 1), (0, 1)] },
            Case { first: 3, last: 8, len: 16, size: S, slices: (0, 2), parts: &[(3, 1), (0, 4), (0, 1)] },
            // one-byte ranges at each position in a slice
            Case { first: 4, last: 4, len: 16, size: S, slices: (1, 1), parts: &[(0, 1)] },
            Case { first: 5, last: 5, len: 16, size: S, slices: (1, 1), parts: &[(1, 1)] },
            Case { first: 7, last: 7, len: 16, size: S, slices: (1, 1), parts: &[(3, 1)] },
            Case { first: 15, last: 15, len: 16, size: S, slices: (3, 3), parts: &[(3, 1)] },
            // the last, partial slice
            Case { first: 8, last: 9, len: 10, size: S, slices: (2, 2), parts: &[(0, 2)] },
            Case { first: 9, last: 9, len: 10, size: S, slices: (2, 2), parts: &[(1, 1)] },
            Case { first: 6, last: 9, len: 10, size: S, slices: (1, 2), parts: &[(2, 2), (0, 2)] },
            // slices of one byte, and one slice bigger than the object
            Case { first: 2, last: 4, len: 6, size: 1, slices: (2, 4), parts: &[(0, 1), (0, 1), (0, 1)] },
            Case { first: 2, last: 4, len: 6, size: 100, slices: (0, 0), parts: &[(2, 3)] },
        ];
        for c in cases {
            let plan = SlicePlan::new(c.first, c.last, c.len, c.size);
            let what = format!(
                "bytes {}-{} of {} in slices of {}",
                c.first, c.last, c.len, c.size
            );
            assert_eq!((plan.first_slice, plan.last_slice), c.slices, "{what}");
            assert_eq!(plan.slice_count(), c.slices.1 - c.slices.0 + 1, "{what}");
            assert_eq!(plan.content_length(), c.last - c.first + 1, "{what}");
            let parts: Vec<_> = plan.slices().map(|k| plan.client_part(k)).collect();
            assert_eq!(parts, c.parts, "{what}");
        }
    }

    #[test]
    fn slice_bounds_table() {
        const S: u64 = 4;
        // (k, S, len, want)
        let cases: &[(u64, u64, u64, Bounds)] = &[
            (0, S, 0, None),
            (0, S, 1, Some((0, 0))),
            (1, S, 1, None),
            (0, S, S - 1, Some((0, 2))),
            (0, S, S, Some((0, 3))),
            (1, S, S, None),
            (1, S, S + 1, Some((4, 4))),
            (1, S, 2 * S, Some((4, 7))),
            (2, S, 2 * S, None),
            (2, S, 10, Some((8, 9))),
            (0, 1, 1, Some((0, 0))),
            (u64::MAX, 2, u64::MAX, None),
            (
                u64::MAX / 2 - 1,
                2,
                u64::MAX,
                Some((u64::MAX - 3, u64::MAX - 2)),
            ),
            (
                u64::MAX / 2,
                2,
                u64::MAX,
                Some((u64::MAX - 1, u64::MAX - 1)),
            ),
        ];
        for &(k, size, len, want) in cases {
            assert_eq!(
                slice_bounds(k, size, len),
                want,
                "slice {k} of {len} in slices of {size}"
            );
        }
    }

    #[test]
    fn slice_of_table() {
        // (offset, S, want)
        let cases: &[(u64, u64, u64)] = &[
            (0, 4, 0),
            (3, 4, 0),
            (4, 4, 1),
            (5, 4, 1),
            (8, 4, 2),
            (7, 1, 7),
            (u64::MAX, 1 << 20, u64::MAX >> 20),
        ];
        for &(offset, size, want) in cases {
            assert_eq!(
                slice_of(offset, size),
                want,
                "byte {offset} in slices of {size}"
            );
        }
    }

    #[test]
    fn slice_range_header_table() {
        // (k, S, want)
        let cases: &[(u64, u64, &str)] = &[
            (0, 4, "bytes=0-3"),
            (1, 4, "bytes=4-7"),
            (2, 1, "bytes=2-2"),
            (0, 1 << 20, "bytes=0-1048575"),
            (3, 1 << 20, "bytes=3145728-4194303"),
        ];
        for &(k, size, want) in cases {
            assert_eq!(
                slice_range_header(k, size),
                want,
                "slice {k} of size {size}"
            );
        }
    }

    /// Every small (len, S, first, last): the slices tile the object, the
    /// header asks each slice's bytes, and the client parts, concatenated,
    /// are exactly `first..=last`.
    #[test]
    fn client_parts_cover_the_range_exactly() {
        for len in 1..=20u64 {
            for size in 1..=7u64 {
                for first in 0..len {
                    for last in first..len {
                        let plan = SlicePlan::new(first, last, len, size);
                        let what = format!("bytes {first}-{last} of {len} in slices of {size}");
                        let mut sent = Vec::new();
                        for k in plan.slices() {
                            let (start, end) = plan.slice_bounds(k);
                            assert_eq!(Some((start, end)), slice_bounds(k, size, len), "{what}");
                            assert_eq!(slice_of(start, size), k, "{what}");
                            assert_eq!(slice_of(end, size), k, "{what}");
                            let asked = format!("bytes={}-{}", k * size, (k + 1) * size - 1);
                            assert_eq!(slice_range_header(k, size), asked, "{what}");

                            let (offset, n) = plan.client_part(k);
                            assert!(n > 0 && offset + n <= end - start + 1, "{what}: slice {k}");
                            sent.extend(start + offset..start + offset + n);
                        }
                        assert_eq!(sent, (first..=last).collect::<Vec<_>>(), "{what}");
                        assert_eq!(sent.len() as u64, plan.content_length(), "{what}");
                        assert_eq!(plan.slices().count() as u64, plan.slice_count(), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn plan_of_the_largest_object_does_not_overflow() {
        let len = u64::MAX;
        let size = 1 << 20;
        let plan = SlicePlan::new(len - 10, len - 1, len, size);
        let last = plan.last_slice;
        assert_eq!(plan.slice_count(), 1);
        assert_eq!(plan.slice_bounds(last), (last * size, len - 1));
        assert_eq!(plan.client_part(last), (len - 10 - last * size, 10));
        assert_eq!(plan.content_length(), 10);
    }
}
