//! Closed-state successes on one breaker shared by 1, 2 (and, where the
//! machine has more, N = all) threads.
//!
//! Each criterion iteration is one call; a sample of `iters` calls is split
//! evenly over the threads, so the figure is total wall time per call: for
//! two threads, 2 x (iters/2) calls against 1 x iters with one thread. A
//! ratio (2 threads / 1 thread) below 1 means the breaker scales; 0.5 is
//! perfect.
//!
//! `breakerbox_unshared` gives every thread a breaker of its own: nothing is
//! shared, so its ratio is what the machine offers at that moment (on a
//! loaded machine, less than two free cores). Read the others against it.

mod common;

use breakerbox::CircuitBreaker;
use common::{config, run_split, MutexBreaker, LONG};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use peers::{failsafe_consecutive, failsafe_default};
use recloser::Recloser;

thread_local! {
    static OWN: CircuitBreaker = CircuitBreaker::builder().build().unwrap();
}

fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2];
    if cores > 2 {
        counts.push(cores);
    }
    counts
}

fn contended(c: &mut Criterion) {
    let bb = CircuitBreaker::builder().build().unwrap();
    let fs_default = failsafe_default();
    let fs_consecutive = failsafe_consecutive(5, LONG);
    let rc = Recloser::default();
    let mx = MutexBreaker::new(5, LONG);

    for threads in thread_counts() {
        let name = match threads {
            1 => "closed_success_1_thread".to_string(),
            n => format!("closed_success_{n}_threads"),
        };
        let mut g = c.benchmark_group(name);
        g.bench_function("breakerbox", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    let _ = black_box(bb.try_acquire().map(|permit| permit.success()));
                })
            })
        });
        g.bench_function("breakerbox_unshared", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    OWN.with(|own| {
                        let _ = black_box(own.try_acquire().map(|permit| permit.success()));
                    })
                })
            })
        });
        g.bench_function("failsafe_default", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    if black_box(fs_default.is_call_permitted()) {
                        fs_default.on_success();
                    }
                })
            })
        });
        g.bench_function("failsafe_consecutive", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    if black_box(fs_consecutive.is_call_permitted()) {
                        fs_consecutive.on_success();
                    }
                })
            })
        });
        g.bench_function("recloser", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    black_box(rc.call(|| Ok::<_, ()>(black_box(1))).is_ok());
                })
            })
        });
        g.bench_function("mutex", |b| {
            b.iter_custom(|iters| {
                run_split(threads, iters, &|| {
                    if black_box(mx.try_acquire()) {
                        mx.record(true);
                    }
                })
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = contended
}
criterion_main!(benches);
