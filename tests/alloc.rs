//! Once an in-memory breaker is built, no call allocates: every path is
//! counted by a global allocator that tallies the allocations of the current
//! thread. (A Redis-shared breaker allocates on the calls that reach Redis.)
//!
//! The tally is per thread, so the tests of this binary may run in parallel
//! without seeing each other's allocations.

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, Listener, Outcome, Recorded, State, Ticket};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread being torn down has no tally, and is not measured.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting
// touches only a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocations();
    let result = f();
    (allocations() - before, result)
}

/// Asserts that `f` does not allocate, run `times` times.
#[track_caller]
fn assert_no_alloc(what: &str, times: usize, mut f: impl FnMut()) {
    let (n, ()) = count(|| {
        for _ in 0..times {
            f();
        }
    });
    assert_eq!(n, 0, "{what}: {n} allocations in {times} calls");
}

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = count(|| vec![1u8; 16]);
    assert_eq!(v.len(), 16);
    assert!(n >= 1, "a Vec allocation must be counted, got {n}");
    let (n, s) = count(|| format!("{}", 1234));
    assert_eq!(s, "1234");
    assert!(n >= 1, "a String allocation must be counted, got {n}");
}

fn manual(fail_max: u32) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .name("alloc")
        .fail_max(fail_max)
        .reset_timeout(Duration::from_millis(100))
        .probe_lease(Duration::from_millis(500))
        .clock(clock.clone())
        .build()
        .unwrap();
    (breaker, clock)
}

#[test]
fn closed_success_and_failure() {
    let breaker = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    assert_no_alloc("closed success", 1000, || {
        assert_eq!(breaker.try_acquire().unwrap().success(), Recorded::Counted);
    });
    assert_no_alloc("closed failure", 1000, || {
        assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    });
    assert_eq!(breaker.fail_counter(), 1000);
    assert_no_alloc("closed success resetting failures", 1, || {
        assert_eq!(breaker.try_acquire().unwrap().success(), Recorded::Counted);
    });
    assert_eq!(breaker.fail_counter(), 0);
    assert_no_alloc("closed ignore", 100, || {
        assert_eq!(breaker.try_acquire().unwrap().ignore(), Recorded::Counted);
    });
    assert_no_alloc("dropped permit", 100, || {
        drop(breaker.try_acquire().unwrap());
    });
    assert_eq!(breaker.fail_counter(), 100);
}

#[test]
fn open_rejection_on_the_system_clock() {
    let breaker = CircuitBreaker::builder()
        .name("orders-db")
        .reset_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    breaker.open();
    assert_no_alloc("open rejection", 1000, || {
        let rejected = breaker.try_acquire().unwrap_err();
        assert_eq!(rejected.state, State::Open);
        assert_eq!(rejected.breaker(), "orders-db", "the rejection names its breaker");
    });
    assert_no_alloc("open rejection (ticket)", 1000, || {
        assert!(breaker.acquire_ticket().is_err());
    });
}

#[test]
fn trip_half_open_probe_rejection_and_recovery() {
    let (breaker, clock) = manual(3);
    assert_no_alloc("trip", 1, || {
        for _ in 0..2 {
            assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
        }
        assert!(breaker.try_acquire().unwrap().failure().tripped());
    });
    assert_eq!(breaker.state(), State::Open);
    assert_no_alloc("open rejection (manual clock)", 100, || {
        assert!(breaker.try_acquire().is_err());
    });
    clock.advance(Duration::from_millis(100));
    let (n, probe) = count(|| breaker.try_acquire().expect("the probe"));
    assert_eq!(n, 0, "admitting the probe allocated {n} times");
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_no_alloc("half-open rejection", 1000, || {
        assert_eq!(breaker.try_acquire().unwrap_err().state, State::HalfOpen);
    });
    let (n, recorded) = count(|| probe.success());
    assert_eq!(n, 0, "closing allocated {n} times");
    assert_eq!(recorded.transition().map(|t| t.to), Some(State::Closed));

    // Many full cycles, including a probe that fails and re-opens.
    assert_no_alloc("trip and recovery cycles", 100, || {
        for _ in 0..3 {
            let _ = breaker.try_acquire().unwrap().failure();
        }
        assert_eq!(breaker.state(), State::Open);
        clock.advance(Duration::from_millis(100));
        assert!(breaker.try_acquire().unwrap().failure().transition().is_some());
        clock.advance(Duration::from_millis(100));
        assert!(breaker.try_acquire().unwrap().success().transition().is_some());
        assert_eq!(breaker.state(), State::Closed);
    });
}

#[test]
fn probe_lease_reclaim_and_stale_tickets() {
    let (breaker, clock) = manual(1);
    breaker.half_open();
    let (n, ()) = count(|| {
        let first = breaker.acquire_ticket().unwrap();
        assert!(breaker.acquire_ticket().is_err());
        clock.advance(Duration::from_millis(500));
        let second = breaker.acquire_ticket().expect("lease reclaimed");
        assert_eq!(breaker.record(first, Outcome::Success), Ok(Recorded::Stale));
        assert!(breaker
            .record(second, Outcome::Success)
            .unwrap()
            .transition()
            .is_some());
        assert!(breaker.record(Ticket::from_bits(0), Outcome::Success).is_err());
        assert!(breaker
            .record(Ticket::from_bits(u64::MAX), Outcome::Failure)
            .is_err());
    });
    assert_eq!(n, 0, "reclaim, stale and invalid tickets allocated {n} times");
}

#[test]
fn ticket_round_trip() {
    let breaker = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    assert_no_alloc("ticket through bits", 1000, || {
        let bits = breaker.acquire_ticket().unwrap().to_bits();
        assert!(breaker.record(Ticket::from_bits(bits), Outcome::Success).is_ok());
    });
    assert_no_alloc("permit into ticket", 1000, || {
        let ticket = breaker.try_acquire().unwrap().into_ticket();
        assert!(breaker.record(ticket, Outcome::Failure).is_ok());
    });
}

#[derive(Debug, PartialEq)]
struct Refused(u32);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Refused {}

#[test]
fn call_wrapper_on_every_outcome() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .fail_max(2)
        .reset_timeout(Duration::from_millis(100))
        .clock(clock.clone())
        .ignore(|e: &Refused| e.0 == 0)
        .exclude(|e: &Refused| e.0 == 1)
        .build()
        .unwrap();
    assert_no_alloc("call ok", 1000, || {
        assert_eq!(breaker.call(|| Ok::<_, Refused>(7)).unwrap(), 7);
    });
    assert_no_alloc("call ignored / excluded error", 1000, || {
        assert!(!breaker
            .call(|| Err::<(), _>(Refused(0)))
            .unwrap_err()
            .is_rejected());
        assert!(!breaker
            .call(|| Err::<(), _>(Refused(1)))
            .unwrap_err()
            .is_rejected());
    });
    assert_eq!(breaker.state(), State::Closed);
    assert_no_alloc("call failing and tripping", 1, || {
        assert!(!breaker.call(|| Err::<(), _>(Refused(2))).unwrap_err().tripped());
        assert!(breaker.call(|| Err::<(), _>(Refused(2))).unwrap_err().tripped());
    });
    assert_no_alloc("call rejected", 1000, || {
        assert!(breaker.call(|| Ok::<_, Refused>(7)).unwrap_err().is_rejected());
    });
    clock.advance(Duration::from_millis(100));
    assert_no_alloc("call as probe", 1, || {
        assert_eq!(breaker.call(|| Ok::<_, Refused>(7)).unwrap(), 7);
    });
    assert_eq!(breaker.state(), State::Closed);
}

/// Polls `fut` once with `cx`; the calls below all resolve on their first poll.
fn ready_now<F: std::future::Future>(fut: F, cx: &mut std::task::Context<'_>) -> F::Output {
    match std::pin::pin!(fut).poll(cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("an in-memory breaker's async call waited"),
    }
}

#[test]
fn async_calls_on_every_outcome() {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(NoWake));
    let mut cx = std::task::Context::from_waker(&waker);
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .fail_max(2)
        .reset_timeout(Duration::from_millis(100))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_no_alloc("call_async ok", 1000, || {
        let out = ready_now(breaker.call_async(|| async { Ok::<_, Refused>(7) }), &mut cx);
        assert_eq!(out.unwrap(), 7);
    });
    assert_no_alloc("call_async failing and tripping", 1, || {
        let fail = || async { Err::<(), _>(Refused(2)) };
        assert!(!ready_now(breaker.call_async(fail), &mut cx)
            .unwrap_err()
            .tripped());
        assert!(ready_now(breaker.call_async(fail), &mut cx)
            .unwrap_err()
            .tripped());
    });
    assert_no_alloc("call_async rejected", 1000, || {
        let out = ready_now(breaker.call_async(|| async { Ok::<_, Refused>(7) }), &mut cx);
        assert!(out.unwrap_err().is_rejected());
    });
    clock.advance(Duration::from_millis(100));
    assert_no_alloc("call_future as probe", 1, || {
        let out = ready_now(breaker.call_future(async { Ok::<_, Refused>(7) }), &mut cx);
        assert_eq!(out.unwrap(), 7);
    });
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn forcing_and_setters() {
    let (breaker, _clock) = manual(5);
    assert_no_alloc("force", 100, || {
        assert!(breaker.open().is_some());
        assert!(breaker.half_open().is_some());
        assert!(breaker.close().is_some());
    });
    assert_no_alloc("setters", 100, || {
        breaker.set_fail_max(3).unwrap();
        breaker.set_success_threshold(2).unwrap();
        breaker.set_half_open_max_calls(2).unwrap();
        breaker.set_probe_lease(Duration::from_secs(1)).unwrap();
        breaker.set_reset_timeout(Duration::from_secs(1)).unwrap();
        assert!(breaker.set_fail_max(0).is_err());
    });
    assert_no_alloc("getters", 100, || {
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.fail_counter(), 0);
        assert_eq!(breaker.success_counter(), 0);
        assert_eq!(breaker.probes_in_flight(), 0);
        assert_eq!(breaker.name(), "alloc");
        assert_eq!(breaker.fail_max(), 3);
        assert_eq!(breaker.success_threshold(), 2);
        assert_eq!(breaker.half_open_max_calls(), 2);
        assert_eq!(breaker.reset_timeout(), Duration::from_secs(1));
        assert_eq!(breaker.probe_lease(), Duration::from_secs(1));
    });
    // Lowering fail_max under the current count trips through a setter.
    let _ = breaker.try_acquire().unwrap().failure();
    let (n, transition) = count(|| breaker.set_fail_max(1).unwrap());
    assert_eq!(n, 0);
    assert_eq!(transition.map(|t| t.to), Some(State::Open));
}

/// A listener that counts every event; the breaker must not allocate to tell it.
#[derive(Default)]
struct Tally(AtomicU64);

impl Listener for Tally {
    fn before_call(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn state_change(&self, _: &CircuitBreaker, _: State, _: State) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn success(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn failure(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn rejected(&self, _: &CircuitBreaker, _: State) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn listeners_are_told_without_allocating() {
    let clock = ManualClock::new();
    let tally = Arc::new(Tally::default());
    let transitions = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&transitions);
    let breaker = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_millis(10))
        .clock(clock.clone())
        .shared_listener(tally.clone())
        .on_state_change(move |_, _, _| {
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    assert_no_alloc("a full cycle with listeners", 100, || {
        assert_eq!(breaker.try_acquire().unwrap().success(), Recorded::Counted);
        assert!(breaker.try_acquire().unwrap().failure().tripped());
        assert!(breaker.try_acquire().is_err());
        clock.advance(Duration::from_millis(10));
        assert!(breaker.try_acquire().unwrap().success().transition().is_some());
    });
    // closed -> open -> half-open -> closed, 100 times.
    assert_eq!(transitions.load(Ordering::Relaxed), 300);
    assert!(tally.0.load(Ordering::Relaxed) >= 100 * 8);
}

#[test]
fn panicking_call_records_a_failure() {
    let breaker = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    // Unwinding itself allocates (the panic payload), so only the breaker's
    // part is checked: the count moved, and a later call allocates nothing.
    let result = catch_unwind(AssertUnwindSafe(|| {
        breaker.call(|| -> Result<(), ()> { std::panic::resume_unwind(Box::new(())) })
    }));
    assert!(result.is_err());
    assert_eq!(breaker.fail_counter(), 1);
    assert_no_alloc("call after a panic", 100, || {
        assert!(breaker.call(|| Ok::<_, ()>(())).is_ok());
    });
}

#[test]
fn contended_threads_do_not_allocate_per_call() {
    let breaker = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let breaker = &breaker;
                s.spawn(move || {
                    let (n, ()) = count(|| {
                        for k in 0..10_000u32 {
                            let permit = breaker.try_acquire().unwrap();
                            let _ = if (k + i) % 3 == 0 {
                                permit.failure()
                            } else {
                                permit.success()
                            };
                        }
                    });
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(counts, vec![0, 0], "allocations per thread");
}

/// Rate windows, slow calls, backoff, retry-after and shadow modes: every
/// path of a call, after the breaker is built.
#[test]
fn windows_backoff_and_modes() {
    use breakerbox::{Backoff, Jitter, Mode};
    let clock = ManualClock::new();
    let windowed = |b: breakerbox::Builder| {
        b.minimum_calls(4)
            .slow_call_duration(Duration::from_millis(50))
            .reset_timeout(Duration::from_millis(100))
            .open_backoff(Backoff::exponential(2.0, Duration::from_secs(1)).jitter(Jitter::Equal))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    for breaker in [
        windowed(CircuitBreaker::builder().count_window(8)),
        windowed(CircuitBreaker::builder().time_window(Duration::from_secs(1))),
    ] {
        assert_no_alloc("window success", 1000, || {
            assert_eq!(breaker.try_acquire().unwrap().success(), Recorded::Counted);
        });
        assert_no_alloc("window timed success, call()", 100, || {
            let _ = breaker.try_acquire_timed().unwrap().success();
            let _ = breaker.call(|| Ok::<_, ()>(()));
            assert!(breaker.failure_rate().is_some());
        });
        assert_no_alloc("window trip, rejection, probe, close", 20, || {
            while breaker.state() == State::Closed {
                let p = breaker.try_acquire().unwrap();
                let _ = p.record_timed(Outcome::Failure, Duration::from_millis(80));
            }
            let rejected = breaker.try_acquire().unwrap_err();
            assert!(rejected.retry_after().is_some());
            clock.advance(breaker.open_for().unwrap());
            assert!(breaker.try_acquire().unwrap().success().transition().is_some());
        });
    }
    let shadow = CircuitBreaker::builder()
        .count_window(4)
        .minimum_calls(1)
        .mode(Mode::MetricsOnly)
        .clock(clock.clone())
        .build()
        .unwrap();
    let disabled = CircuitBreaker::builder().mode(Mode::Disabled).build().unwrap();
    assert_no_alloc("shadow trip and admission; disabled", 100, || {
        let _ = shadow.try_acquire().unwrap().failure();
        assert_eq!(shadow.try_acquire().unwrap().failure(), Recorded::Stale);
        let _ = disabled.try_acquire().unwrap().failure();
    });
}
