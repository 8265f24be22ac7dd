//! The open state rejects without a precise clock reading while the reset
//! deadline is clearly ahead, yet OPEN -> HALF_OPEN still happens exactly at
//! the deadline: not a millisecond early, not a millisecond late.

use breakerbox::clock::{Clock, ManualClock, MonotonicClock};
use breakerbox::{CircuitBreaker, Outcome, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RESET_MS: u64 = 1_000;

/// A clock whose coarse reading is set apart from the precise one, within
/// a declared lag, and which counts precise readings.
#[derive(Debug, Default)]
struct LaggingClock {
    precise_ms: AtomicU64,
    coarse_ms: AtomicU64,
    lag_ms: u64,
    precise_reads: AtomicU64,
    coarse_reads: AtomicU64,
}

impl LaggingClock {
    fn new(lag_ms: u64) -> Arc<Self> {
        Arc::new(LaggingClock {
            lag_ms,
            ..Default::default()
        })
    }

    /// Sets the precise time, and the coarse one `behind` ms earlier.
    fn set(&self, precise_ms: u64, behind: u64) {
        assert!(
            behind <= self.lag_ms,
            "a coarse reading never lags more than declared"
        );
        self.precise_ms.store(precise_ms, Ordering::SeqCst);
        self.coarse_ms.store(precise_ms - behind, Ordering::SeqCst);
    }

    fn precise_reads(&self) -> u64 {
        self.precise_reads.load(Ordering::SeqCst)
    }
}

/// The breaker holds its own `Arc`; the test keeps another to move time.
struct Shared(Arc<LaggingClock>);

impl Clock for Shared {
    fn now_ms(&self) -> u64 {
        self.0.precise_reads.fetch_add(1, Ordering::SeqCst);
        self.0.precise_ms.load(Ordering::SeqCst)
    }

    fn coarse_now_ms(&self) -> u64 {
        self.0.coarse_reads.fetch_add(1, Ordering::SeqCst);
        self.0.coarse_ms.load(Ordering::SeqCst)
    }

    fn coarse_lag_ms(&self) -> u64 {
        self.0.lag_ms
    }
}

fn breaker_on(clock: impl Clock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_millis(RESET_MS))
        .clock(clock)
        .build()
        .unwrap()
}

#[test]
fn manual_clock_half_opens_exactly_at_the_deadline() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_millis(5_000));
    let breaker = breaker_on(clock.clone());
    assert!(breaker.try_acquire().unwrap().failure().tripped());

    clock.advance(Duration::from_millis(RESET_MS - 1));
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.state, State::Open, "one millisecond early");
    assert_eq!(breaker.state(), State::Open);

    clock.advance(Duration::from_millis(1));
    let probe = breaker.try_acquire().expect("admitted exactly at the deadline");
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(probe.success().transition().map(|t| t.to), Some(State::Closed));
}

#[test]
fn a_lagging_coarse_clock_neither_hastens_nor_delays_the_transition() {
    for lag in [0, 1, 4, 10, 250] {
        for behind in [0, lag / 2, lag] {
            let clock = LaggingClock::new(lag);
            clock.set(10_000, behind);
            let breaker = breaker_on(Shared(clock.clone()));
            assert!(breaker.try_acquire().unwrap().failure().tripped());
            let deadline = 10_000 + RESET_MS;

            // Every millisecond up to the deadline is rejected, however far
            // (within the declared lag) the coarse reading trails.
            for t in (deadline - 2 * lag - 3).max(10_000)..deadline {
                for b in [0, behind.min(t - 10_000), lag.min(t - 10_000)] {
                    clock.set(t, b);
                    assert_eq!(
                        breaker.try_acquire().map(|_| ()).unwrap_err().state,
                        State::Open,
                        "lag {lag}, coarse {b} behind: admitted early at {t} (deadline {deadline})"
                    );
                }
            }

            // At the deadline the call is admitted even when the coarse
            // reading trails by the whole lag: the precise clock decides.
            clock.set(deadline, behind);
            let probe = breaker
                .acquire_ticket()
                .unwrap_or_else(|_| panic!("lag {lag}, coarse {behind} behind: late at the deadline"));
            assert!(probe.is_probe());
            assert_eq!(breaker.state(), State::HalfOpen);
            assert!(breaker
                .record(probe, Outcome::Success)
                .unwrap()
                .transition()
                .is_some());
        }
    }
}

#[test]
fn rejections_far_from_the_deadline_skip_the_precise_clock() {
    let clock = LaggingClock::new(10);
    clock.set(10_000, 0);
    let breaker = breaker_on(Shared(clock.clone()));
    assert!(breaker.try_acquire().unwrap().failure().tripped());
    let deadline = 10_000 + RESET_MS;

    // More than one lag before the deadline: the coarse reading settles it.
    clock.set(deadline - 11, 5);
    let precise = clock.precise_reads();
    for _ in 0..1_000 {
        assert!(breaker.try_acquire().is_err());
    }
    assert_eq!(
        clock.precise_reads(),
        precise,
        "no precise reading while the deadline is clearly ahead"
    );
    assert!(clock.coarse_reads.load(Ordering::SeqCst) >= 1_000);

    // A coarse reading within one lag of the deadline is not enough: the
    // precise clock is read, and rejects.
    clock.set(deadline - 1, 0);
    assert!(breaker.try_acquire().is_err());
    assert!(
        clock.precise_reads() > precise,
        "the precise clock decides near the deadline"
    );

    clock.set(deadline, 10);
    assert!(breaker.try_acquire().is_ok());
}

#[test]
fn manual_clock_counts_its_reads_when_rejecting() {
    // ManualClock has no coarse reading of its own: the default one is the
    // precise one with zero lag, so exactness does not depend on the gate.
    let clock = ManualClock::new();
    let breaker = breaker_on(clock.clone());
    breaker.open();
    let reads = clock.reads();
    assert!(breaker.try_acquire().is_err());
    assert!(clock.reads() > reads);
}

/// On the system clock: every rejection started before the deadline and
/// every admission ended after it, on the very timeline the breaker reads.
/// The timeout is longer than the coarse clock's lag bound, so rejections
/// take the coarse path first and the precise one near the deadline.
#[test]
fn system_clock_half_opens_on_time() {
    const TIMEOUT_MS: u64 = 150;
    let clock = MonotonicClock::new();
    let breaker = CircuitBreaker::builder()
        .reset_timeout(Duration::from_millis(TIMEOUT_MS))
        .build()
        .unwrap();
    let before_open = clock.now_ms();
    breaker.open();
    let after_open = clock.now_ms();

    let give_up = Instant::now() + Duration::from_secs(10);
    let mut rejections = 0u64;
    loop {
        let start = clock.now_ms();
        let result = breaker.try_acquire();
        let end = clock.now_ms();
        match result {
            Err(rejected) => {
                assert_eq!(rejected.state, State::Open);
                // The deadline is at most after_open + TIMEOUT_MS: a call
                // that started at or after it must have been admitted.
                assert!(
                    start < after_open + TIMEOUT_MS,
                    "late: rejected a call started at {start} ms, deadline at most {} ms",
                    after_open + TIMEOUT_MS
                );
                rejections += 1;
            }
            Ok(permit) => {
                // The deadline is at least before_open + TIMEOUT_MS.
                assert!(
                    end >= before_open + TIMEOUT_MS,
                    "early: admitted a call that ended at {end} ms, deadline at least {} ms",
                    before_open + TIMEOUT_MS
                );
                assert!(permit.is_probe());
                let _ = permit.success();
                break;
            }
        }
        assert!(Instant::now() < give_up, "never half-opened");
    }
    assert!(rejections > 0, "the breaker rejected while open");
    assert_eq!(breaker.state(), State::Closed);
}
