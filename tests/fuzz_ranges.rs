//! Property tests of the byte ranges a peer chose: the client's `Range`, the
//! origin's `Content-Range`, and the slice plan built from what they yield.
//!
//! cargo-fuzz needs a nightly toolchain, so these run under proptest in CI,
//! 2000 cases per property by default (the file runs in seconds).
//! Longer run: `PROPTEST_CASES=1000000 cargo test --release --test fuzz_ranges`.
//!
//! Failing inputs are not persisted to `proptest-regressions/`: a case that
//! ever fails is kept below as a plain `#[test]` instead.

mod common;

use edgeslice::http::content_range::{parse_content_range, ContentRange};
use edgeslice::http::range::{parse_range, ByteRangeSpec, RangeRequest};
use edgeslice::slice::plan::SlicePlan;
use proptest::prelude::*;

use common::strategies::{bytes_from, config, edgy_u64};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Anything, or something that looks like a Range header.
fn range_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        bytes_from(b"0123456789-,= \tbytesBYTES", 64),
        bytes_from(b"0123456789-, \t", 64).prop_map(|tail| [&b"bytes="[..], &tail].concat()),
    ]
}

/// Anything, or something that looks like a Content-Range header.
fn content_range_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        bytes_from(b"0123456789-/* \tbytesBYTES", 64),
        bytes_from(b"0123456789-/*", 48).prop_map(|tail| [&b"bytes "[..], &tail].concat()),
    ]
}

fn valid_spec() -> impl Strategy<Value = ByteRangeSpec> {
    prop_oneof![
        (edgy_u64(), edgy_u64()).prop_map(|(x, y)| ByteRangeSpec::FromTo(x.min(y), x.max(y))),
        edgy_u64().prop_map(ByteRangeSpec::From),
        edgy_u64().prop_map(ByteRangeSpec::Suffix),
    ]
}

fn spec_text(spec: ByteRangeSpec) -> String {
    match spec {
        ByteRangeSpec::FromTo(a, b) => format!("{a}-{b}"),
        ByteRangeSpec::From(a) => format!("{a}-"),
        ByteRangeSpec::Suffix(n) => format!("-{n}"),
    }
}

// ---------------------------------------------------------------------------
// range::parse_range
// ---------------------------------------------------------------------------

fn lengths_to_try(spec: ByteRangeSpec) -> Vec<u64> {
    let mut lens = vec![0, 1, 2, 3, 10, 1 << 20, u64::MAX - 1, u64::MAX];
    let numbers = match spec {
        ByteRangeSpec::FromTo(a, b) => vec![a, b],
        ByteRangeSpec::From(a) | ByteRangeSpec::Suffix(a) => vec![a],
    };
    for n in numbers {
        lens.extend([n.saturating_sub(1), n, n.saturating_add(1)]);
    }
    lens
}

fn assert_resolves_inside(spec: ByteRangeSpec) -> Result<(), TestCaseError> {
    for len in lengths_to_try(spec) {
        if let Some((a, b)) = spec.resolve(len) {
            prop_assert!(
                a <= b && b < len,
                "{spec:?} resolved against {len} to {a}-{b}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_range_never_panics_and_resolves_inside(value in range_like()) {
        match parse_range(&value) {
            RangeRequest::Full => {}
            RangeRequest::Single(spec) => assert_resolves_inside(spec)?,
            RangeRequest::Multi(specs) => {
                prop_assert!(specs.len() >= 2 && specs.len() <= edgeslice::http::range::MAX_RANGES);
                for spec in specs {
                    assert_resolves_inside(spec)?;
                }
            }
        }
    }

    #[test]
    fn resolve_stays_inside_any_length(spec in valid_spec(), len in edgy_u64()) {
        if let Some((a, b)) = spec.resolve(len) {
            prop_assert!(a <= b && b < len, "{spec:?} resolved against {len} to {a}-{b}");
        }
    }

    #[test]
    fn parse_range_round_trips_one_spec(
        spec in valid_spec(),
        unit in proptest::sample::select(&["bytes", "BYTES", "Bytes"][..]),
        pad in proptest::sample::select(&["", " ", "\t", " \t "][..]),
    ) {
        let header = format!("{pad}{unit}={pad}{}{pad}", spec_text(spec));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Single(spec), "{:?}", header);
    }

    #[test]
    fn parse_range_round_trips_many_specs(
        specs in proptest::collection::vec(valid_spec(), 2..=edgeslice::http::range::MAX_RANGES),
    ) {
        let list: Vec<String> = specs.iter().copied().map(spec_text).collect();
        let header = format!("bytes={}", list.join(","));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Multi(specs));
    }

    #[test]
    fn parse_range_ignores_other_units(
        unit in "[a-zA-Z][a-zA-Z0-9_-]{0,11}",
        spec in valid_spec(),
    ) {
        prop_assume!(!unit.eq_ignore_ascii_case("bytes"));
        let header = format!("{unit}={}", spec_text(spec));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Full);
    }
}

// ---------------------------------------------------------------------------
// content_range::parse_content_range
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_content_range_never_panics_and_displays_back(value in content_range_like()) {
        if let Ok(got) = parse_content_range(&value) {
            let text = got.to_string();
            prop_assert_eq!(parse_content_range(text.as_bytes()), Ok(got), "{:?}", text);
            if let ContentRange::Bytes { first, last, total } = got {
                prop_assert!(first <= last);
                prop_assert!(total.is_none_or(|total| last < total));
            }
        }
    }

    #[test]
    fn parse_content_range_reads_back_what_is_written(
        x in edgy_u64(),
        y in edgy_u64(),
        z in edgy_u64(),
        known_total in any::<bool>(),
    ) {
        let mut sorted = [x, y, z];
        sorted.sort_unstable();
        let [first, last, total] = sorted;
        prop_assume!(last < total || !known_total);
        let want = ContentRange::Bytes { first, last, total: known_total.then_some(total) };
        let header = match want {
            ContentRange::Bytes { total: Some(total), .. } => format!("bytes {first}-{last}/{total}"),
            _ => format!("bytes {first}-{last}/*"),
        };
        prop_assert_eq!(parse_content_range(header.as_bytes()), Ok(want));
        prop_assert_eq!(want.to_string(), header);
        let unsatisfied = format!("bytes */{total}");
        prop_assert_eq!(
            parse_content_range(unsatisfied.as_bytes()),
            Ok(ContentRange::Unsatisfied { total })
        );
    }
}

// ---------------------------------------------------------------------------
// plan::SlicePlan
// ---------------------------------------------------------------------------

/// Slices walked one by one; longer plans are checked at both ends and at
/// random slices in between, with the middle counted arithmetically.
const WALK: u64 = 4096;

fn plan_input() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    let sizes = prop_oneof![
        (1u64..=1_000_000_000_000, 1u64..(1 << 26)),
        (1u64..10_000, 1u64..64),
        (1u64..(1 << 30), 1u64..(1 << 20)),
    ];
    (sizes, any::<u64>(), any::<u64>()).prop_map(|((len, size), x, y)| {
        let (x, y) = (x % len, y % len);
        (len, size, x.min(y), x.max(y))
    })
}

/// The part of slice `k` the client gets, as absolute inclusive bytes.
fn part(plan: &SlicePlan, k: u64) -> Result<(u64, u64), TestCaseError> {
    let (start, end) = plan.slice_bounds(k);
    let (offset, len) = plan.client_part(k);
    prop_assert!(len >= 1, "slice {k} hands on nothing: {plan:?}");
    prop_assert!(start <= end && end < plan.object_len);
    prop_assert!(
        offset + len <= end - start + 1,
        "slice {k} part ({offset}, {len}) overruns the slice {start}-{end}"
    );
    Ok((start + offset, start + offset + len - 1))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn slice_plan_parts_cover_the_range_exactly(
        (len, size, a, b) in plan_input(),
        samples in proptest::collection::vec(any::<u64>(), 8),
    ) {
        let plan = SlicePlan::new(a, b, len, size);
        let count = plan.slice_count();
        prop_assert_eq!(plan.first_slice, a / size);
        prop_assert_eq!(plan.last_slice, b / size);
        prop_assert_eq!(plan.content_length(), b - a + 1);
        if count <= WALK {
            let mut next = a;
            for k in plan.slices() {
                let (lo, hi) = part(&plan, k)?;
                prop_assert_eq!(lo, next, "slice {} starts at {}, expected {}", k, lo, next);
                next = hi + 1;
            }
            prop_assert_eq!(next, b + 1);
        } else {
            // Both ends walked; every middle slice is whole, so the parts
            // add up to the range when the ends meet the middle.
            let (first_lo, first_hi) = part(&plan, plan.first_slice)?;
            let (last_lo, last_hi) = part(&plan, plan.last_slice)?;
            prop_assert_eq!(first_lo, a);
            prop_assert_eq!(last_hi, b);
            prop_assert_eq!(first_hi + 1, (plan.first_slice + 1) * size);
            prop_assert_eq!(last_lo, plan.last_slice * size);
            let middle = (count - 2) * size;
            prop_assert_eq!((first_hi - first_lo + 1) + middle + (last_hi - last_lo + 1), b - a + 1);
            let inner = plan.first_slice + 1..plan.last_slice;
            let picks = samples
                .iter()
                .map(|s| inner.start + s % (inner.end - inner.start))
                .chain([inner.start, inner.end - 1]);
            for k in picks {
                prop_assert_eq!(plan.client_part(k), (0, size), "middle slice {} is not whole", k);
                prop_assert_eq!(part(&plan, k)?, (k * size, (k + 1) * size - 1));
            }
        }
    }
}
