//! One full trip-and-recovery cycle: five failures trip the breaker, the
//! reset deadline passes, one probe succeeds and closes it again.
//!
//! Time: breakerbox runs on a `ManualClock` advanced past the deadline, and
//! failsafe on its own frozen clock (`failsafe::clock::freeze`) advanced the
//! same way. recloser and the `Mutex` breaker cannot take an injected clock,
//! so they get a zero reset timeout: the probe is admitted on the next call.
//! recloser's half-open ring needs two calls to decide, so its cycle is five
//! failures and two successes.

mod common;

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, State};
use common::{config, MutexBreaker, MutexState};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use peers::failsafe_consecutive;
use recloser::Recloser;
use std::time::Duration;

const FAIL_MAX: u32 = 5;

fn breakerbox_cycle(bb: &CircuitBreaker, clock: &ManualClock) {
    for _ in 0..FAIL_MAX {
        let _ = black_box(bb.try_acquire().map(|permit| permit.failure()));
    }
    clock.advance(Duration::from_millis(1));
    let _ = black_box(bb.try_acquire().map(|permit| permit.success()));
}

fn failsafe_cycle<P: failsafe::FailurePolicy>(
    fs: &failsafe::StateMachine<P, ()>,
    clock: &mut failsafe::clock::MockClock,
    wait: Duration,
) {
    for _ in 0..FAIL_MAX {
        if black_box(fs.is_call_permitted()) {
            fs.on_error();
        }
    }
    clock.advance(wait);
    if black_box(fs.is_call_permitted()) {
        fs.on_success();
    }
}

fn recloser_cycle(rc: &Recloser) {
    for _ in 0..FAIL_MAX {
        black_box(rc.call(|| Err::<(), _>(black_box(1))).is_err());
    }
    for _ in 0..2 {
        black_box(rc.call(|| Ok::<_, ()>(black_box(1))).is_ok());
    }
}

fn mutex_cycle(mx: &MutexBreaker) {
    for _ in 0..FAIL_MAX {
        if black_box(mx.try_acquire()) {
            mx.record(false);
        }
    }
    if black_box(mx.try_acquire()) {
        mx.record(true);
    }
}

/// One cycle of each breaker, checked once before it is timed: the cycle
/// really trips and really recovers.
fn check_cycles() {
    let clock = ManualClock::new();
    let bb = breakerbox_breaker(&clock);
    for _ in 0..FAIL_MAX {
        let _ = bb.try_acquire().map(|permit| permit.failure());
    }
    assert_eq!(bb.state(), State::Open);
    breakerbox_cycle(&bb, &clock);
    assert_eq!(bb.state(), State::Closed);

    failsafe::clock::freeze(|clock| {
        let fs = failsafe_consecutive(FAIL_MAX, Duration::from_millis(1));
        for _ in 0..FAIL_MAX {
            fs.on_error();
        }
        assert!(
            !fs.is_call_permitted(),
            "failsafe trips after {FAIL_MAX} failures"
        );
        clock.advance(Duration::from_millis(2));
        assert!(fs.is_call_permitted(), "failsafe half-opens after the wait");
        fs.on_success();
        fs.on_error();
        assert!(fs.is_call_permitted(), "failsafe closed again");

        let fs = failsafe::Config::new().build();
        for _ in 0..FAIL_MAX {
            fs.on_error();
        }
        assert!(
            !fs.is_call_permitted(),
            "failsafe default trips after {FAIL_MAX} failures"
        );
        clock.advance(Duration::from_secs(301));
        assert!(
            fs.is_call_permitted(),
            "failsafe default half-opens after the wait"
        );
        fs.on_success();
        fs.on_error();
        assert!(fs.is_call_permitted(), "failsafe default closed again");
    });

    // With a wait long enough to observe the open state.
    let rc = recloser_breaker(Duration::from_millis(50));
    for _ in 0..FAIL_MAX {
        assert!(matches!(
            rc.call(|| Err::<(), _>(1)),
            Err(recloser::Error::Inner(1))
        ));
    }
    assert!(
        matches!(rc.call(|| Ok::<_, ()>(())), Err(recloser::Error::Rejected)),
        "recloser tripped"
    );
    std::thread::sleep(Duration::from_millis(60));
    for _ in 0..2 {
        assert!(rc.call(|| Ok::<_, ()>(())).is_ok());
    }
    // Closed again: a fresh closed ring of four admits four failures.
    for _ in 0..FAIL_MAX - 1 {
        assert!(
            matches!(rc.call(|| Err::<(), _>(1)), Err(recloser::Error::Inner(1))),
            "recloser closed again"
        );
    }

    let mx = MutexBreaker::new(FAIL_MAX, Duration::ZERO);
    for _ in 0..FAIL_MAX {
        assert!(mx.try_acquire());
        mx.record(false);
    }
    assert!(matches!(mx.state(), MutexState::Open { .. }));
    mutex_cycle(&mx);
    assert_eq!(mx.state(), MutexState::Closed { failures: 0 });
}

fn breakerbox_breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(FAIL_MAX)
        .reset_timeout(Duration::from_millis(1))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// A closed ring of four: the fifth failure is the first with a rate, 4/4.
fn recloser_breaker(wait: Duration) -> Recloser {
    Recloser::custom()
        .closed_len(FAIL_MAX as usize - 1)
        .half_open_len(1)
        .open_wait(wait)
        .build()
}

fn trip_recovery(c: &mut Criterion) {
    check_cycles();
    let mut g = c.benchmark_group("trip_recovery");

    let clock = ManualClock::new();
    let bb = breakerbox_breaker(&clock);
    g.bench_function("breakerbox", |b| b.iter(|| breakerbox_cycle(&bb, &clock)));
    assert_eq!(bb.state(), State::Closed);

    failsafe::clock::freeze(|clock| {
        // Past the longest default backoff (300 s).
        let fs = failsafe::Config::new().build();
        g.bench_function("failsafe_default", |b| {
            b.iter(|| failsafe_cycle(&fs, clock, Duration::from_secs(301)))
        });
        let fs = failsafe_consecutive(FAIL_MAX, Duration::from_millis(1));
        g.bench_function("failsafe_consecutive", |b| {
            b.iter(|| failsafe_cycle(&fs, clock, Duration::from_millis(2)))
        });
    });

    let rc = recloser_breaker(Duration::ZERO);
    g.bench_function("recloser", |b| b.iter(|| recloser_cycle(&rc)));

    let mx = MutexBreaker::new(FAIL_MAX, Duration::ZERO);
    g.bench_function("mutex", |b| b.iter(|| mutex_cycle(&mx)));
    assert_eq!(mx.state(), MutexState::Closed { failures: 0 });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = trip_recovery
}
criterion_main!(benches);
