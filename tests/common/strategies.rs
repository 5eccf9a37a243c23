//! Proptest settings and the strategies both fuzz files draw from: bytes of
//! an alphabet, and u64 values crowded at the edges.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Cases per property: `PROPTEST_CASES`, else a CI-friendly 2000.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes drawn mostly from `alphabet`, sometimes from anywhere.
pub fn bytes_from(alphabet: &'static [u8], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => proptest::sample::select(alphabet),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..max_len)
}

/// Numbers around the edges as well as anywhere.
pub fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..1024,
        (0u64..1024).prop_map(|d| u64::MAX - d),
    ]
}
