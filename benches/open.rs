//! Rejections: the open state before its deadline, and half-open while
//! its one probe is in flight.

mod common;

use breakerbox::{CircuitBreaker, Outcome};
use common::{config, MutexBreaker, LONG};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use failsafe::backoff;
use failsafe::failure_policy::{self, FailurePolicy};
use peers::failsafe_consecutive;
use recloser::Recloser;
use std::time::Duration;

fn open_rejection(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_rejection");

    // The system clock: the rejection path is what ships.
    let bb = CircuitBreaker::builder().reset_timeout(LONG).build().unwrap();
    bb.open();
    g.bench_function("breakerbox", |b| b.iter(|| black_box(bb.try_acquire().is_err())));
    assert!(bb.try_acquire().is_err(), "breakerbox stayed open");

    // The default policy's shape, with backoffs long enough that the breaker
    // stays open for the whole case (the rejection path never reads the policy).
    let jitter = || backoff::equal_jittered(LONG, 2 * LONG);
    let policy = failure_policy::success_rate_over_time_window(0.8, 5, Duration::from_secs(30), jitter())
        .or_else(failure_policy::consecutive_failures(5, jitter()));
    let fs = failsafe::Config::new().failure_policy(policy).build();
    for _ in 0..5 {
        fs.on_error();
    }
    assert!(!fs.is_call_permitted(), "failsafe_default tripped");
    g.bench_function("failsafe_default", |b| {
        b.iter(|| black_box(fs.is_call_permitted()))
    });
    assert!(!fs.is_call_permitted(), "failsafe_default stayed open");

    let fs = failsafe_consecutive(5, LONG);
    for _ in 0..5 {
        fs.on_error();
    }
    assert!(!fs.is_call_permitted(), "failsafe_consecutive tripped");
    g.bench_function("failsafe_consecutive", |b| {
        b.iter(|| black_box(fs.is_call_permitted()))
    });
    assert!(!fs.is_call_permitted(), "failsafe_consecutive stayed open");

    let rc = Recloser::custom().open_wait(LONG).build();
    let fail = || Err::<(), ()>(());
    while !matches!(rc.call(fail), Err(recloser::Error::Rejected)) {}
    g.bench_function("recloser", |b| {
        b.iter(|| {
            black_box(matches!(
                rc.call(|| Ok::<_, ()>(black_box(1))),
                Err(recloser::Error::Rejected)
            ))
        })
    });
    assert!(
        matches!(rc.call(fail), Err(recloser::Error::Rejected)),
        "recloser stayed open"
    );

    let mx = MutexBreaker::new(5, LONG);
    mx.open();
    g.bench_function("mutex", |b| b.iter(|| black_box(mx.try_acquire())));
    assert!(!mx.try_acquire(), "mutex stayed open");
    g.finish();
}

/// failsafe and recloser admit every call in half-open (they have no probe
/// limit), so only the breakers that limit probes take part.
fn half_open_rejection(c: &mut Criterion) {
    let mut g = c.benchmark_group("half_open_rejection");

    let bb = CircuitBreaker::builder()
        .reset_timeout(LONG)
        .probe_lease(LONG)
        .half_open_max_calls(1)
        .build()
        .unwrap();
    bb.half_open();
    let probe = bb.acquire_ticket().expect("the probe is admitted");
    assert!(probe.is_probe());
    g.bench_function("breakerbox", |b| b.iter(|| black_box(bb.try_acquire().is_err())));
    assert!(bb.try_acquire().is_err(), "breakerbox kept its probe in flight");
    assert!(bb.record(probe, Outcome::Success).unwrap().transition().is_some());

    let mx = MutexBreaker::new(5, Duration::ZERO);
    mx.open();
    assert!(mx.try_acquire(), "the probe is admitted");
    g.bench_function("mutex", |b| b.iter(|| black_box(mx.try_acquire())));
    assert!(!mx.try_acquire(), "mutex kept its probe in flight");
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = open_rejection, half_open_rejection
}
criterion_main!(benches);
