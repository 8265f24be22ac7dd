//! The physical floor, for scale: a direct closure call, one atomic load,
//! one uncontended compare-and-swap, and the clocks.

mod common;

use common::config;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("reference");

    let op = || Ok::<_, ()>(black_box(1u64));
    g.bench_function("closure", |b| b.iter(|| black_box(black_box(&op)().is_ok())));

    let word = AtomicU64::new(0);
    g.bench_function("atomic_load", |b| {
        b.iter(|| black_box(black_box(&word).load(Ordering::Acquire)))
    });

    let counter = AtomicU64::new(0);
    let mut expected = 0;
    g.bench_function("compare_exchange", |b| {
        b.iter(|| {
            let done = black_box(&counter).compare_exchange(
                expected,
                expected + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            expected += 1;
            black_box(done)
        })
    });
    assert_eq!(
        counter.load(Ordering::Acquire),
        expected,
        "every exchange succeeded"
    );

    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));

    #[cfg(target_os = "linux")]
    g.bench_function("clock_monotonic_coarse", |b| {
        b.iter(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            black_box(ts.tv_nsec)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = reference
}
criterion_main!(benches);
