//! Rate windows: a closed-state success with a count window and with a time
//! window, against the windowed peers in the same run (failsafe's default
//! policy, a success-rate EMA over a time window; recloser, a rate over a
//! ring; a `Mutex` around a ring), on one thread and split over two.
//!
//! The two-thread figure is total wall time per call (see `contended.rs`):
//! 2 threads / 1 thread below 1 means the window scales. `coarse_clock_read`
//! is the one reading of the system's coarse clock that a time window's
//! success adds to a count window's, measured alone.

mod common;

use breakerbox::clock::{Clock, MonotonicClock};
use breakerbox::CircuitBreaker;
use common::{config, run_split};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use peers::failsafe_default;
use recloser::Recloser;
use std::sync::Mutex;
use std::time::Duration;

/// The straightforward windowed breaker: the last `size` outcomes in a
/// ring under one `Mutex`, tripping at 50% once the ring is full.
struct MutexWindow {
    ring: Mutex<Ring>,
}

struct Ring {
    failed: Vec<bool>,
    next: usize,
    len: usize,
    failures: usize,
    open: bool,
}

impl MutexWindow {
    fn new(size: usize) -> Self {
        MutexWindow {
            ring: Mutex::new(Ring {
                failed: vec![false; size],
                next: 0,
                len: 0,
                failures: 0,
                open: false,
            }),
        }
    }

    fn try_acquire(&self) -> bool {
        !self.ring.lock().unwrap().open
    }

    fn record(&self, failed: bool) {
        let mut r = self.ring.lock().unwrap();
        let size = r.failed.len();
        let next = r.next;
        if r.len == size {
            r.failures -= usize::from(r.failed[next]);
        } else {
            r.len += 1;
        }
        r.failed[next] = failed;
        r.failures += usize::from(failed);
        r.next = (next + 1) % size;
        if r.len == size && r.failures * 2 >= size {
            r.open = true;
        }
    }
}

fn count_window() -> CircuitBreaker {
    CircuitBreaker::builder().count_window(100).build().unwrap()
}

fn time_window() -> CircuitBreaker {
    CircuitBreaker::builder()
        .time_window(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn windows(c: &mut Criterion) {
    let consecutive = CircuitBreaker::builder().build().unwrap();
    let count = count_window();
    let time = time_window();
    let fs = failsafe_default();
    let rc = Recloser::default();
    let mx = MutexWindow::new(100);
    let clock = MonotonicClock::new();

    let bb = |b: &CircuitBreaker| {
        let _ = black_box(b.try_acquire().map(|permit| permit.success()));
    };
    let fs_op = || {
        if black_box(fs.is_call_permitted()) {
            fs.on_success();
        }
    };
    let rc_op = || {
        black_box(rc.call(|| Ok::<_, ()>(black_box(1))).is_ok());
    };
    let mx_op = || {
        if black_box(mx.try_acquire()) {
            mx.record(false);
        }
    };

    for threads in [1, 2] {
        let name = match threads {
            1 => "window_success_1_thread".to_string(),
            n => format!("window_success_{n}_threads"),
        };
        let mut g = c.benchmark_group(name);
        let mut case = |name: &str, op: &(dyn Fn() + Sync)| {
            g.bench_function(name, |b| b.iter_custom(|iters| run_split(threads, iters, &op)));
        };
        case("breakerbox_consecutive", &|| bb(&consecutive));
        case("breakerbox_count", &|| bb(&count));
        case("breakerbox_time", &|| bb(&time));
        case("failsafe_default", &fs_op);
        case("recloser", &rc_op);
        case("mutex_window", &mx_op);
        case("coarse_clock_read", &|| {
            black_box(black_box(&clock).coarse_now_ms());
        });
        g.finish();
    }
    assert_eq!(count.window_calls().map(|n| n > 0), Some(true));
}

criterion_group! {
    name = benches;
    config = config();
    targets = windows
}
criterion_main!(benches);
