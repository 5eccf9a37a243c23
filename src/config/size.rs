//! Byte sizes in the configuration: an integer number of bytes, or a string
//! like `"512KiB"`, `"1MiB"`, `"10 GiB"`; a slice size may also be `"auto"`
//! (each object's slices sized from its length: [`auto_slice_size`]).

use std::fmt;

use serde::{Deserializer, Serializer};

/// `slice_size = "auto"`, as stored (no real slice is this large).
pub const AUTO_SLICE: u64 = u64::MAX;

/// Smallest slice `"auto"` chooses.
pub const AUTO_MIN: u64 = 512 * 1024;
/// Largest slice `"auto"` chooses.
pub const AUTO_MAX: u64 = 2 * 1024 * 1024;

/// The slice size `"auto"` gives an object of `len` bytes:
/// min(max(len / 10, 512 KiB), 2 MiB).
pub fn auto_slice_size(len: u64) -> u64 {
    (len / 10).clamp(AUTO_MIN, AUTO_MAX)
}

struct SizeVisitor {
    auto: bool,
}

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a byte count like 1048576 or a string like "512KiB", "1MiB", "10 GiB""#)?;
        if self.auto {
            f.write_str(r#", or "auto""#)?;
        }
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        if self.auto && v == AUTO_SLICE {
            // 0 is how "auto" is kept; written as a number it is a mistake.
            return Err(E::custom(
                r#"invalid slice size 0: must be at least 1, or "auto""#,
            ));
        }
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        if self.auto && v.trim().eq_ignore_ascii_case("auto") {
            return Ok(AUTO_SLICE);
        }
        v.trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
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
    deserializer.deserialize_any(SizeVisitor { auto: false })
}

/// An optional size (the key may be left out).
pub fn deserialize_opt_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserialize_size(deserializer).map(Some)
}

/// A slice size: a size or `"auto"`.
pub fn deserialize_slice_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(SizeVisitor { auto: true })
}

/// An optional slice size.
pub fn deserialize_opt_slice_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserialize_slice_size(deserializer).map(Some)
}

/// A slice size written back: bytes, or `"auto"`.
pub fn serialize_slice_size<S: Serializer>(size: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    if *size == AUTO_SLICE {
        serializer.serialize_str("auto")
    } else {
        serializer.serialize_u64(*size)
    }
}

/// An optional slice size written back.
pub fn serialize_opt_slice_size<S: Serializer>(
    size: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match size {
        Some(size) => serialize_slice_size(size, serializer),
        None => serializer.serialize_none(),
    }
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
}
