//! Shared by every bench file: the criterion settings and the naive `Mutex`
//! breaker used as a reference (how each peer crate is built for each case
//! is the `peers` library of this directory's crate).
//!
//! Every case is a criterion group named after the case; inside it each
//! breaker is one function named after the breaker (`breakerbox`,
//! `failsafe_default`, `failsafe_consecutive`, `recloser`, `mutex`), so
//! `scripts/bench-chart.py` can lay them side by side.

#![allow(dead_code)]

use criterion::Criterion;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Short runs: the whole `cargo bench` has to fit in a few minutes on two cores.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

/// Long enough that no open breaker half-opens while a case runs.
pub const LONG: Duration = Duration::from_secs(3600);

/// The straightforward way to write a circuit breaker: one `Mutex` around
/// the state, `Instant` for the deadline, a probe limit in half-open.
#[derive(Debug)]
pub struct MutexBreaker {
    inner: Mutex<MutexState>,
    fail_max: u32,
    reset_timeout: Duration,
    half_open_max_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

impl MutexBreaker {
    pub fn new(fail_max: u32, reset_timeout: Duration) -> Self {
        MutexBreaker {
            inner: Mutex::new(MutexState::Closed { failures: 0 }),
            fail_max,
            reset_timeout,
            half_open_max_calls: 1,
        }
    }

    pub fn state(&self) -> MutexState {
        *self.inner.lock().unwrap()
    }

    /// Whether a call may run.
    pub fn try_acquire(&self) -> bool {
        let mut state = self.inner.lock().unwrap();
        match *state {
            MutexState::Closed { .. } => true,
            MutexState::Open { until } => {
                if Instant::now() >= until {
                    *state = MutexState::HalfOpen { in_flight: 1 };
                    true
                } else {
                    false
                }
            }
            MutexState::HalfOpen { in_flight } if in_flight < self.half_open_max_calls => {
                *state = MutexState::HalfOpen {
                    in_flight: in_flight + 1,
                };
                true
            }
            MutexState::HalfOpen { .. } => false,
        }
    }

    /// Records how an admitted call ended.
    pub fn record(&self, success: bool) {
        let mut state = self.inner.lock().unwrap();
        *state = match (*state, success) {
            (MutexState::Closed { .. }, true) => MutexState::Closed { failures: 0 },
            (MutexState::Closed { failures }, false) if failures + 1 < self.fail_max => MutexState::Closed {
                failures: failures + 1,
            },
            (MutexState::HalfOpen { .. }, true) => MutexState::Closed { failures: 0 },
            (MutexState::Open { until }, _) => MutexState::Open { until },
            (_, false) => MutexState::Open {
                until: Instant::now() + self.reset_timeout,
            },
        };
    }

    /// Forces the breaker open.
    pub fn open(&self) {
        *self.inner.lock().unwrap() = MutexState::Open {
            until: Instant::now() + self.reset_timeout,
        };
    }

    /// Forces the breaker closed with no failures counted.
    pub fn close(&self) {
        *self.inner.lock().unwrap() = MutexState::Closed { failures: 0 };
    }
}

/// Runs `iters` calls of `op` split over `threads` threads that start
/// together; returns the wall time from the first start to the last end.
pub fn run_split(threads: usize, iters: u64, op: &(impl Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let per_thread = iters.div_ceil(threads as u64);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        op();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}
