//! The closed state: a success (acquire + record), a failure that does not
//! trip, and the `call()` wrapper against the split acquire/record.

mod common;

use breakerbox::{CircuitBreaker, Outcome};
use common::{config, MutexBreaker, LONG};
use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use failsafe::CircuitBreaker as _;
use peers::{failsafe_consecutive, failsafe_default, failsafe_default_never_trips};
use recloser::Recloser;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn op_ok() -> Result<u64, u64> {
    Ok(black_box(1))
}

fn op_err() -> Result<u64, u64> {
    Err(black_box(1))
}

/// failsafe failures that do not trip: reset (a success) before each sample,
/// outside the timing, and checked afterwards not to have tripped.
fn failsafe_failures<P, I>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, fs: failsafe::StateMachine<P, I>)
where
    P: failsafe::failure_policy::FailurePolicy,
    I: failsafe::Instrument,
{
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            fs.on_success();
            let start = Instant::now();
            for _ in 0..iters {
                if black_box(fs.is_call_permitted()) {
                    fs.on_error();
                }
            }
            let elapsed = start.elapsed();
            assert!(fs.is_call_permitted(), "must not trip");
            elapsed
        })
    });
}

fn closed_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_success");

    let bb = CircuitBreaker::builder().build().unwrap();
    g.bench_function("breakerbox", |b| {
        b.iter(|| black_box(bb.try_acquire().map(|permit| permit.success())))
    });

    // `call_async` polled once (it resolves on its first poll), no runtime.
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    g.bench_function("breakerbox_call_async", |b| {
        b.iter(|| {
            let call = pin!(bb.call_async(|| async { op_ok() }));
            black_box(matches!(call.poll(&mut cx), Poll::Ready(Ok(_))))
        })
    });

    let fs = failsafe_default();
    g.bench_function("failsafe_default", |b| {
        b.iter(|| {
            if black_box(fs.is_call_permitted()) {
                fs.on_success();
            }
        })
    });

    let fs = failsafe_consecutive(5, LONG);
    g.bench_function("failsafe_consecutive", |b| {
        b.iter(|| {
            if black_box(fs.is_call_permitted()) {
                fs.on_success();
            }
        })
    });

    // recloser's only public way in is `call()`.
    let rc = Recloser::default();
    g.bench_function("recloser", |b| b.iter(|| black_box(rc.call(op_ok).is_ok())));

    let mx = MutexBreaker::new(5, LONG);
    g.bench_function("mutex", |b| {
        b.iter(|| {
            if black_box(mx.try_acquire()) {
                mx.record(true);
            }
        })
    });
    g.finish();
}

/// Failures that never trip: every breaker gets a threshold it cannot reach
/// within one sample and is reset (untimed) before each sample.
fn closed_failure(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_failure");

    let bb = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    g.bench_function("breakerbox", |b| {
        b.iter_custom(|iters| {
            bb.close();
            let start = Instant::now();
            for _ in 0..iters {
                let _ = black_box(bb.try_acquire().map(|permit| permit.failure()));
            }
            let elapsed = start.elapsed();
            assert_eq!(bb.state(), breakerbox::State::Closed, "must not trip");
            elapsed
        })
    });

    failsafe_failures(&mut g, "failsafe_default", failsafe_default_never_trips());
    failsafe_failures(
        &mut g,
        "failsafe_consecutive",
        failsafe_consecutive(u32::MAX, LONG),
    );

    // A failure rate can reach at most 1.0, so a threshold above it never trips.
    let rc = Recloser::custom().error_rate(1.01).build();
    g.bench_function("recloser", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(rc.call(op_err).is_err());
            }
            let elapsed = start.elapsed();
            assert!(rc.call(op_ok).is_ok(), "must not trip");
            elapsed
        })
    });

    let mx = MutexBreaker::new(u32::MAX, LONG);
    g.bench_function("mutex", |b| {
        b.iter_custom(|iters| {
            mx.close();
            let start = Instant::now();
            for _ in 0..iters {
                if black_box(mx.try_acquire()) {
                    mx.record(false);
                }
            }
            let elapsed = start.elapsed();
            assert!(mx.try_acquire(), "must not trip");
            elapsed
        })
    });
    g.finish();
}

/// One closed-state success through each entry point.
fn call_wrapper(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_wrapper");

    let bb = CircuitBreaker::builder().build().unwrap();
    g.bench_function("breakerbox_call", |b| {
        b.iter(|| black_box(bb.call(op_ok).is_ok()))
    });
    g.bench_function("breakerbox_split", |b| {
        b.iter(|| {
            black_box(bb.try_acquire().map(|permit| {
                let value = op_ok();
                let _ = permit.success();
                value
            }))
        })
    });
    g.bench_function("breakerbox_ticket", |b| {
        b.iter(|| {
            if let Ok(ticket) = bb.acquire_ticket() {
                black_box(op_ok().is_ok());
                black_box(bb.record(ticket, Outcome::Success).is_ok());
            }
        })
    });

    let fs = failsafe_default();
    g.bench_function("failsafe_default_call", |b| {
        b.iter(|| black_box(fs.call(op_ok).is_ok()))
    });

    let fs = failsafe_consecutive(5, LONG);
    g.bench_function("failsafe_consecutive_call", |b| {
        b.iter(|| black_box(fs.call(op_ok).is_ok()))
    });

    let rc = Recloser::default();
    g.bench_function("recloser_call", |b| b.iter(|| black_box(rc.call(op_ok).is_ok())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = closed_success, closed_failure, call_wrapper
}
criterion_main!(benches);
