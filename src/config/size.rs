//! Byte sizes in the configuration: an integer number of bytes, or a string
//! like `"512KiB"`, `"1MiB"`, `"10 GiB"`; a slice size may also be `"auto"`
//! ([`SliceSize::Auto`]: each object's slices sized from its length, see
//! [`auto_slice_size`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A kibibyte.
pub(super) const KIB: u64 = 1024;
/// A mebibyte.
pub(super) const MIB: u64 = 1024 * KIB;
/// A gibibyte.
pub(super) const GIB: u64 = 1024 * MIB;

/// Smallest slice `"auto"` chooses.
pub const AUTO_MIN: u64 = 512 * 1024;
/// Largest slice `"auto"` chooses.
pub const AUTO_MAX: u64 = 2 * 1024 * 1024;

/// The slice size `"auto"` gives an object of `len` bytes:
/// min(max(len / 10, 512 KiB), 2 MiB).
pub fn auto_slice_size(len: u64) -> u64 {
    (len / 10).clamp(AUTO_MIN, AUTO_MAX)
}

/// `slice_size`: bytes per slice, or `"auto"`. Written to TOML as it is read:
/// an integer number of bytes, or the string `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceSize {
    /// Every object is cut into slices of this many bytes.
    Bytes(u64),
    /// Each object's slices are sized from its length ([`auto_slice_size`]).
    Auto,
}

impl SliceSize {
    /// The grid a probe asks on, before the object's length is known:
    /// `"auto"` asks on the largest grid it may choose.
    pub fn probe_grid(self) -> u64 {
        self.largest()
    }

    /// The largest slice this size cuts (objects under `min_slice_bytes`
    /// aside): what a store must be able to hold.
    pub fn largest(self) -> u64 {
        match self {
            SliceSize::Bytes(n) => n,
            SliceSize::Auto => AUTO_MAX,
        }
    }

    /// The grid of an object of `len` bytes: an object under
    /// `min_slice_bytes` is one slice of that size (one request, one cache
    /// entry); otherwise the fixed size, or `"auto"`'s choice for `len`.
    pub fn object_grid(self, len: u64, min_slice_bytes: u64) -> u64 {
        match self {
            _ if len < min_slice_bytes => min_slice_bytes,
            SliceSize::Bytes(n) => n,
            SliceSize::Auto => auto_slice_size(len),
        }
    }
}

/// As written in TOML: `1048576` or `"auto"`.
impl fmt::Display for SliceSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SliceSize::Bytes(n) => write!(f, "{n}"),
            SliceSize::Auto => f.write_str("\"auto\""),
        }
    }
}

impl Serialize for SliceSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SliceSize::Bytes(n) => serializer.serialize_u64(*n),
            SliceSize::Auto => serializer.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for SliceSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SliceSize, D::Error> {
        deserializer.deserialize_any(SizeVisitor { auto: true })
    }
}

/// Reads a size; `"auto"` only when `auto` is set.
struct SizeVisitor {
    auto: bool,
}

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = SliceSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a byte count like 1048576 or a string like "512KiB", "1MiB", "10 GiB""#)?;
        if self.auto {
            f.write_str(r#", or "auto""#)?;
        }
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SliceSize, E> {
        Ok(SliceSize::Bytes(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SliceSize, E> {
        u64::try_from(v)
            .map(SliceSize::Bytes)
            .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SliceSize, E> {
        if self.auto && v.trim().eq_ignore_ascii_case("auto") {
            return Ok(SliceSize::Auto);
        }
        v.trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| SliceSize::Bytes(size.as_u64()))
            .map_err(|_| {
                E::custom(format!(
                    r#"invalid size {v:?}: expected bytes or a string like "512KiB", "1MiB", "10 GiB"{}"#,
                    if self.auto { r#", or "auto""# } else { "" }
                ))
            })
    }
}

/// A size.
pub fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match deserializer.deserialize_any(SizeVisitor { auto: false })? {
        SliceSize::Bytes(n) => Ok(n),
        // Not produced when `auto` is off; refused rather than trusted.
        SliceSize::Auto => Err(serde::de::Error::custom(r#""auto" is not a size here"#)),
    }
}

/// An optional size (the key may be left out).
pub fn deserialize_opt_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserialize_size(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_sizes_follow_the_length() {
        let mib = 1024 * 1024;
        let cases = [
            (0, AUTO_MIN),
            (mib, AUTO_MIN),
            (5 * mib, AUTO_MIN),
            (10 * mib, mib),
            (15 * mib, 3 * mib / 2),
            (20 * mib, 2 * mib),
            (100 * 1024 * mib, 2 * mib),
        ];
        for (len, want) in cases {
            assert_eq!(auto_slice_size(len), want, "{len}");
        }
    }

    #[test]
    fn grids_of_fixed_and_auto_sizes() {
        let mib = 1024 * 1024;
        // (size, object length, min_slice_bytes, probe grid, object grid)
        let cases = [
            (SliceSize::Bytes(4), 100, 0, 4, 4),
            (SliceSize::Bytes(4), 100, 200, 4, 200),
            (SliceSize::Bytes(4), 200, 200, 4, 4),
            (SliceSize::Auto, 0, 0, AUTO_MAX, AUTO_MIN),
            (SliceSize::Auto, 15 * mib, 0, AUTO_MAX, 3 * mib / 2),
            (SliceSize::Auto, 15 * mib, 16 * mib, AUTO_MAX, 16 * mib),
        ];
        for (size, len, min, probe, object) in cases {
            assert_eq!(size.probe_grid(), probe, "{size} probe");
            assert_eq!(size.object_grid(len, min), object, "{size} {len} {min}");
        }
    }
}
