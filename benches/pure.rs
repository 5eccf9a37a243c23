//! Benches for the pure steps of the data path: range parsing and slice planning.
//!
//! Names carry the payload size, so a result reads on its own.

// criterion_group! defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use edgeslice::http::content_range::parse_content_range;
use edgeslice::http::range::parse_range;
use edgeslice::slice::plan::SlicePlan;
use edgeslice::slice::stream::ReorderBuffer;

const MIB: u64 = 1 << 20;

fn range_parse_single(c: &mut Criterion) {
    c.bench_function("range_parse_single", |b| {
        b.iter(|| parse_range(black_box(b"bytes=1048576-2097151")))
    });
}

fn range_parse_multi_16(c: &mut Criterion) {
    let value = format!(
        "bytes={}",
        (0..16u64)
            .map(|i| format!("{}-{}", i * MIB, i * MIB + 1023))
            .collect::<Vec<_>>()
            .join(", ")
    );
    c.bench_function("range_parse_multi_16", |b| {
        b.iter(|| parse_range(black_box(value.as_bytes())))
    });
}

fn content_range_parse(c: &mut Criterion) {
    c.bench_function("content_range_parse", |b| {
        b.iter(|| parse_content_range(black_box(b"bytes 1048576-2097151/104857600")))
    });
}

/// Every client part of a whole 100 MiB object in 1 MiB slices (100 slices).
fn plan_100mib_1mib_slices(c: &mut Criterion) {
    let len = 100 * MIB;
    c.bench_function("plan_100mib_1mib_slices", |b| {
        b.iter(|| {
            let plan = SlicePlan::new(black_box(0), black_box(len - 1), len, MIB);
            plan.slices().map(|k| plan.client_part(k).1).sum::<u64>()
        })
    });
}

/// 16 slices of 1 MiB in 64 KiB chunks arriving in a window of 4, out of
/// order within the window, drained in object order.
fn reorder_16mib_window_4(c: &mut Criterion) {
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let per_slice = 16;
    c.bench_function("reorder_16mib_window_4", |b| {
        b.iter(|| {
            let mut buf = ReorderBuffer::new(0);
            let mut out = 0usize;
            for group in 0..4u64 {
                // Within each window the last slice arrives first.
                for k in (group * 4..group * 4 + 4).rev() {
                    for _ in 0..per_slice {
                        buf.push(k, chunk.clone());
                    }
                    buf.finish(k);
                    while let Some(c) = buf.pop() {
                        out += c.len();
                    }
                }
            }
            black_box(out)
        })
    });
}

criterion_group!(
    benches,
    range_parse_single,
    range_parse_multi_16,
    content_range_parse,
    plan_100mib_1mib_slices,
    reorder_16mib_window_4,
);
criterion_main!(benches);
