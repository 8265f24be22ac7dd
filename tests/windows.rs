//! One test per row of the README's window, backoff, retry-after and mode
//! tables. Time is driven by a `ManualClock`; nothing sleeps.

use breakerbox::clock::ManualClock;
use breakerbox::{
    Backoff, Builder, CircuitBreaker, ConfigError, Jitter, Listener, Mode, Outcome, Recorded, State,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RESET: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);

fn base(clock: &ManualClock) -> Builder {
    CircuitBreaker::builder()
        .reset_timeout(RESET)
        .clock(clock.clone())
}

/// A count window of `size` calls, one call per bucket where it can.
fn count(clock: &ManualClock, size: u32, minimum: u32, percent: f32) -> CircuitBreaker {
    base(clock)
        .count_window(size)
        .minimum_calls(minimum)
        .failure_rate_threshold(percent)
        .build()
        .unwrap()
}

fn run(b: &CircuitBreaker, outcomes: &str) -> Vec<Recorded> {
    outcomes
        .chars()
        .map(|c| {
            let p = b.try_acquire().expect("admitted");
            match c {
                'F' => p.failure(),
                'S' => p.success(),
                'I' => p.ignore(),
                _ => unreachable!(),
            }
        })
        .collect()
}

fn trip_count(b: &CircuitBreaker) {
    while b.state() == State::Closed {
        let _ = b.try_acquire().unwrap().failure();
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Listener for Events {
    fn state_change(&self, _: &CircuitBreaker, from: State, to: State) {
        self.0.lock().unwrap().push(format!("{from}->{to}"));
    }
    fn rejected(&self, _: &CircuitBreaker, state: State) {
        self.0.lock().unwrap().push(format!("rejected:{state}"));
    }
    fn failure(&self, _: &CircuitBreaker) {
        self.0.lock().unwrap().push("failure".into());
    }
}

// ---- the closed state's rule -------------------------------------------------

#[test]
fn count_window_trips_at_the_failure_rate_threshold() {
    let clock = ManualClock::new();
    let b = count(&clock, 10, 10, 50.0);
    let got = run(&b, "SSSSSFFFF");
    assert!(
        got.iter().all(|r| *r == Recorded::Counted),
        "9 calls: below the minimum"
    );
    let last = run(&b, "F")[0];
    assert!(last.tripped(), "10 calls, 5 failures: 50% >= 50%");
    assert_eq!(b.state(), State::Open);
}

#[test]
fn count_window_below_the_threshold_stays_closed() {
    let clock = ManualClock::new();
    let b = count(&clock, 10, 10, 50.0);
    run(&b, "SSSSSSFFFF");
    assert_eq!(b.state(), State::Closed, "40% < 50%");
    assert_eq!(b.failure_rate(), Some(40.0));
}

#[test]
fn below_minimum_calls_nothing_trips_and_the_rate_is_unknown() {
    let clock = ManualClock::new();
    let b = count(&clock, 100, 10, 50.0);
    run(&b, "FFFFFFFFF");
    assert_eq!(b.state(), State::Closed, "9 failures, minimum 10");
    assert_eq!(b.failure_rate(), None);
    assert!(run(&b, "F")[0].tripped());
}

#[test]
fn a_count_window_needs_at_most_its_size_in_calls() {
    let clock = ManualClock::new();
    let b = count(&clock, 4, 100, 50.0);
    assert!(run(&b, "FFFF")[3].tripped(), "minimum capped at the window size");
}

#[test]
fn a_success_never_trips() {
    let clock = ManualClock::new();
    let b = count(&clock, 10, 10, 50.0);
    run(&b, "FFFFFSSSS");
    run(&b, "S");
    assert_eq!(
        b.state(),
        State::Closed,
        "the 10th call is a success: not evaluated"
    );
    assert!(run(&b, "F")[0].tripped(), "the next failure is");
}

#[test]
fn ignored_calls_count_as_nothing() {
    let clock = ManualClock::new();
    let b = count(&clock, 4, 4, 50.0);
    run(&b, "FFFIIIIIII");
    assert_eq!(b.state(), State::Closed, "3 calls counted, minimum 4");
    assert!(run(&b, "F")[0].tripped());
}

#[test]
fn excluded_errors_count_as_successes() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .count_window(10)
        .minimum_calls(2)
        .failure_rate_threshold(60.0)
        .exclude(|e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound)
        .build()
        .unwrap();
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    for kind in [NotFound, NotFound, ConnectionRefused, ConnectionRefused] {
        let _ = b.call(|| Err::<(), _>(std::io::Error::from(kind)));
    }
    assert_eq!(b.state(), State::Closed, "2 of 4 = 50% < 60%");
    assert_eq!(b.failure_rate(), Some(50.0));
}

#[test]
fn a_count_window_forgets_old_calls_at_most_one_bucket_late() {
    let clock = ManualClock::new();
    // Buckets of one call. Fifty successes after two failures over-fill one
    // bucket; four failures are then the last four calls (exactly 100%).
    let b = count(&clock, 4, 4, 100.0);
    run(&b, "FF");
    run(&b, &"S".repeat(50));
    let got = run(&b, "FFFF");
    assert!(got.iter().all(|r| !r.tripped()), "never early: {got:?}");
    assert!(run(&b, "F")[0].tripped(), "at most one bucket late");
}

#[test]
fn time_window_counts_a_call_for_its_span_less_at_most_one_bucket() {
    let window = |clock: &ManualClock| {
        base(clock)
            .time_window(Duration::from_secs(10))
            .window_buckets(10)
            .minimum_calls(5)
            .build()
            .unwrap()
    };
    // Failures at the start of bucket 0 still count 10 s - 1 ms later...
    let clock = ManualClock::new();
    let b = window(&clock);
    run(&b, "FFFF");
    clock.advance(Duration::from_secs(10) - MS);
    assert!(run(&b, "F")[0].tripped());
    // ...failures at the end of bucket 0 are gone 9.001 s later (the bound:
    // a call counts for between 10 s less one 1 s bucket, and 10 s).
    let clock = ManualClock::new();
    let b = window(&clock);
    clock.advance(Duration::from_millis(999));
    run(&b, "FFFF");
    clock.advance(Duration::from_millis(9_001));
    assert_eq!(run(&b, "F")[0], Recorded::Counted, "old failures left the window");
    assert_eq!(b.state(), State::Closed);
}

/// A success at `at` ms lands in bucket `at / width` and so counts until the
/// bucket `buckets` later starts, to the millisecond: one success off by one
/// bucket either way (or a window read off by one) fails one of the checks.
fn assert_success_counts_for_its_buckets(at: u64) {
    const WIDTH: u64 = 10;
    const BUCKETS: u64 = 3;
    let clock = ManualClock::new();
    let b = base(&clock)
        .time_window(Duration::from_millis(WIDTH * BUCKETS))
        .window_buckets(BUCKETS as u32)
        .build()
        .unwrap();
    clock.advance(Duration::from_millis(at));
    assert_eq!(run(&b, "S"), [Recorded::Counted]);
    assert_eq!(b.window_calls(), Some(1), "at {at} ms: counted at once");
    let gone_at = (at / WIDTH + BUCKETS) * WIDTH;
    clock.advance(Duration::from_millis(gone_at - 1 - at));
    assert_eq!(
        b.window_calls(),
        Some(1),
        "a success at {at} ms still counts at {} ms",
        gone_at - 1
    );
    clock.advance(MS);
    assert_eq!(
        b.window_calls(),
        Some(0),
        "a success at {at} ms is gone at {gone_at} ms"
    );
}

#[test]
fn a_time_window_success_lands_in_its_bucket_at_every_edge() {
    // The clock at 0, and each side of a bucket edge.
    for at in [0, 1, 9, 10, 11, 19, 20, 29, 30] {
        assert_success_counts_for_its_buckets(at);
    }
    // Buckets 65,535 and 65,536 (epoch tags 65,535 and 0): the 16-bit tag
    // wraps inside the window.
    for at in [655_339, 655_340, 655_349, 655_350, 655_359, 655_360, 655_369] {
        assert_success_counts_for_its_buckets(at);
    }
    // Near the end of the clock's range (the last whole window before
    // u64::MAX ms), where a bucket number needs the full 64-bit quotient.
    for at in [u64::MAX - 36, u64::MAX - 35, u64::MAX - 34, u64::MAX - 26] {
        assert_success_counts_for_its_buckets(at);
    }
}

/// A stripe's words keep their epoch modulo 2^16; one last written 40,000
/// buckets ago (more than half the tag range) is restarted, not taken for
/// a newer bucket that the call would be late for.
#[test]
fn a_time_window_counts_again_after_a_long_idle() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .time_window(Duration::from_millis(30))
        .window_buckets(3)
        .build()
        .unwrap();
    run(&b, "S");
    assert_eq!(b.window_calls(), Some(1));
    // Bucket 40,000 uses the same slot as bucket 0 (40,000 = 16 x 2,500).
    clock.advance(Duration::from_millis(400_000));
    assert_eq!(b.window_calls(), Some(0), "the old call left the window");
    run(&b, "SS");
    assert_eq!(b.window_calls(), Some(2), "both new calls count");
}

#[test]
fn the_window_starts_empty_after_every_transition() {
    let clock = ManualClock::new();
    let b = count(&clock, 10, 2, 50.0);
    run(&b, "FF");
    assert_eq!(b.state(), State::Open);
    clock.advance(RESET);
    assert!(b.try_acquire().unwrap().success().transition().is_some());
    assert_eq!(b.state(), State::Closed);
    assert_eq!(run(&b, "F")[0], Recorded::Counted, "one call in a fresh window");
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_is_still_decided_by_success_threshold() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .count_window(4)
        .minimum_calls(1)
        .success_threshold(2)
        .half_open_max_calls(2)
        .build()
        .unwrap();
    run(&b, "F");
    clock.advance(RESET);
    let (p1, p2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(p1.success(), Recorded::Counted);
    assert!(p2.success().transition().is_some());
    assert_eq!(b.state(), State::Closed);
    run(&b, "F");
    clock.advance(RESET);
    assert_eq!(
        b.try_acquire().unwrap().failure().transition().map(|t| t.to),
        Some(State::Open),
        "a probe failure re-opens"
    );
}

#[test]
fn a_call_admitted_before_a_trip_is_stale_after_it() {
    let clock = ManualClock::new();
    let b = count(&clock, 4, 1, 50.0);
    let early = b.try_acquire().unwrap();
    run(&b, "F");
    assert_eq!(early.failure(), Recorded::Stale);
}

#[test]
fn slow_calls_trip_at_their_rate_whatever_their_outcome() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .count_window(4)
        .minimum_calls(4)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(50.0)
        .build()
        .unwrap();
    let timed = |ms: u64| {
        b.try_acquire()
            .unwrap()
            .record_timed(Outcome::Success, Duration::from_millis(ms))
    };
    timed(100); // exactly the duration: not slow
    timed(10);
    assert_eq!(timed(101), Recorded::Counted, "3 calls: below the minimum");
    assert_eq!(b.slow_call_rate(), None);
    assert!(timed(500).tripped(), "2 slow of 4 = 50%");
}

#[test]
fn the_breaker_times_calls_only_when_slow_calls_are_configured() {
    let clock = ManualClock::new();
    let plain = count(&clock, 10, 10, 50.0);
    let before = clock.reads();
    let _ = plain.call(|| Ok::<_, ()>(()));
    let _ = plain.try_acquire_timed().unwrap().success();
    assert_eq!(
        clock.reads(),
        before,
        "a count window without slow calls reads no clock"
    );

    let b = base(&clock)
        .count_window(2)
        .minimum_calls(2)
        .slow_call_duration(Duration::from_millis(100))
        .build()
        .unwrap();
    let _ = b.call(|| {
        clock.advance(Duration::from_millis(150));
        Ok::<_, ()>(())
    });
    let p = b.try_acquire_timed().unwrap();
    clock.advance(Duration::from_millis(150));
    assert!(p.success().tripped(), "both calls slow, timed by the breaker");
}

#[test]
fn bad_window_settings_name_the_option() {
    let err = |f: fn(Builder) -> Builder| f(CircuitBreaker::builder()).build().unwrap_err();
    assert_eq!(
        err(|b| b.count_window(0)),
        ConfigError::Zero {
            field: "count_window"
        }
    );
    assert_eq!(
        err(|b| b.time_window(Duration::ZERO)),
        ConfigError::Zero { field: "time_window" }
    );
    assert_eq!(
        err(|b| b.count_window(5).window_buckets(17)),
        ConfigError::TooLarge {
            field: "window_buckets",
            max: 16
        }
    );
    assert!(matches!(
        err(|b| b.count_window(5).failure_rate_threshold(f32::NAN)),
        ConfigError::Invalid {
            field: "failure_rate_threshold",
            ..
        }
    ));
    assert!(matches!(
        err(|b| b.count_window(5).slow_call_rate_threshold(101.0)),
        ConfigError::Invalid {
            field: "slow_call_rate_threshold",
            ..
        }
    ));
    assert!(matches!(
        err(|b| b.slow_call_duration(Duration::from_secs(1))),
        ConfigError::Invalid {
            field: "slow_call_duration",
            ..
        }
    ));
    assert_eq!(
        err(|b| b.count_window(5).minimum_calls(0)),
        ConfigError::Zero {
            field: "minimum_calls"
        }
    );
    let msg = err(|b| b.count_window(5).failure_rate_threshold(0.0)).to_string();
    assert_eq!(
        msg,
        "failure_rate_threshold must be a percentage above 0 and at most 100"
    );
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    for _ in 0..20 {
        let clock = ManualClock::new();
        let events = Arc::new(Events::default());
        let b = base(&clock)
            .count_window(64)
            .minimum_calls(8)
            .shared_listener(events.clone())
            .build()
            .unwrap();
        let trips: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..8)
                            .filter_map(|_| b.try_acquire().ok())
                            .map(|p| p.failure())
                            .filter(|r| r.tripped())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(trips, 1);
        let changes: Vec<_> = events.take().into_iter().filter(|e| e.contains("->")).collect();
        assert_eq!(changes, ["closed->open"]);
    }
}

// ---- the open period's backoff ---------------------------------------------

/// Waits out the open period: rejected 1 ms before `wait`, a probe at `wait`.
fn assert_waits(clock: &ManualClock, b: &CircuitBreaker, wait: Duration) {
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.open_for(), Some(wait));
    clock.advance(wait - MS);
    assert!(b.try_acquire().is_err(), "never less than {wait:?}");
    clock.advance(MS);
    let probe = b.try_acquire().expect("a probe at the end of the open period");
    assert!(probe.is_probe());
    let _ = probe.into_ticket();
}

fn reopen(b: &CircuitBreaker) {
    // The probe admitted by `assert_waits` is still in flight; force re-open
    // as a failing probe would.
    assert_eq!(b.open().map(|t| t.to), Some(State::Open));
}

#[test]
fn exponential_backoff_grows_per_reopen_to_its_cap_and_restarts_on_close() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .open_backoff(Backoff::exponential(2.0, Duration::from_secs(35)))
        .build()
        .unwrap();
    trip_count(&b);
    for secs in [10, 20, 35, 35] {
        assert_waits(&clock, &b, Duration::from_secs(secs));
        reopen(&b);
    }
    b.close();
    trip_count(&b);
    assert_waits(&clock, &b, RESET);
}

#[test]
fn a_failing_probe_reopens_for_the_next_duration() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .open_backoff(Backoff::exponential(3.0, Duration::from_secs(3600)))
        .build()
        .unwrap();
    trip_count(&b);
    clock.advance(RESET);
    assert!(b.try_acquire().unwrap().failure().transition().is_some());
    assert_waits(&clock, &b, Duration::from_secs(30));
}

#[test]
fn jittered_backoff_waits_exactly_what_it_chose() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .open_backoff(Backoff::exponential(2.0, Duration::from_secs(3600)).jitter(Jitter::Equal))
        .build()
        .unwrap();
    trip_count(&b);
    for full in [10u64, 20, 40] {
        let chosen = b.open_for().unwrap();
        assert!(
            (Duration::from_secs(full) / 2..=Duration::from_secs(full)).contains(&chosen),
            "{chosen:?} within [{full}/2, {full}] s"
        );
        assert_waits(&clock, &b, chosen);
        reopen(&b);
    }
}

#[test]
fn a_custom_backoff_gets_the_attempt_and_the_failure_rate() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let b = base(&clock)
        .count_window(4)
        .minimum_calls(4)
        .open_backoff(Backoff::custom(move |attempt, rate| {
            log.lock().unwrap().push((attempt, rate));
            Duration::from_secs(u64::from(attempt) * 7)
        }))
        .build()
        .unwrap();
    run(&b, "SSFF");
    assert_waits(&clock, &b, Duration::from_secs(7));
    reopen(&b);
    assert_waits(&clock, &b, Duration::from_secs(14));
    assert_eq!(*seen.lock().unwrap(), [(1, Some(50.0)), (2, None)]);
}

#[test]
fn a_panicking_backoff_falls_back_to_the_reset_timeout() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .open_backoff(Backoff::custom(|_, _| panic!("bad backoff")))
        .build()
        .unwrap();
    trip_count(&b);
    assert_waits(&clock, &b, RESET);
}

#[test]
fn a_multiplier_below_one_is_refused() {
    let err = CircuitBreaker::builder()
        .open_backoff(Backoff::exponential(0.5, Duration::from_secs(1)))
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Invalid {
            field: "open_backoff multiplier",
            ..
        }
    ));
}

// ---- retry-after -----------------------------------------------------------

#[test]
fn an_open_rejection_says_how_long_until_a_probe() {
    let clock = ManualClock::new();
    let b = base(&clock).fail_max(1).build().unwrap();
    trip_count(&b);
    clock.advance(Duration::from_secs(4));
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.retry_after(), Some(Duration::from_secs(6)));
}

#[test]
fn a_retry_after_beyond_32_bits_of_milliseconds_is_unknown() {
    let clock = ManualClock::new();
    let fits = Duration::from_millis(u64::from(u32::MAX) - 1);
    let b = base(&clock).reset_timeout(fits).fail_max(1).build().unwrap();
    trip_count(&b);
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(fits));
    let b = base(&clock)
        .reset_timeout(fits + 2 * MS)
        .fail_max(1)
        .build()
        .unwrap();
    trip_count(&b);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        None,
        "49.7 days and more"
    );
}

#[test]
fn an_open_rejection_follows_the_backoff() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .open_backoff(Backoff::exponential(2.0, Duration::from_secs(3600)))
        .build()
        .unwrap();
    trip_count(&b);
    clock.advance(RESET);
    let _ = b.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(15))
    );
}

#[test]
fn a_half_open_rejection_says_the_lease_remaining() {
    let clock = ManualClock::new();
    let b = base(&clock)
        .fail_max(1)
        .probe_lease(Duration::from_secs(3))
        .build()
        .unwrap();
    trip_count(&b);
    clock.advance(RESET);
    let probe = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(1));
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.state, State::HalfOpen);
    assert_eq!(r.retry_after(), Some(Duration::from_secs(2)));
    let _ = probe.success();
}

// ---- modes -----------------------------------------------------------------

#[test]
fn metrics_only_decides_and_reports_but_rejects_nothing() {
    let clock = ManualClock::new();
    let events = Arc::new(Events::default());
    let b = base(&clock)
        .count_window(4)
        .minimum_calls(2)
        .mode(Mode::MetricsOnly)
        .shared_listener(events.clone())
        .build()
        .unwrap();
    assert!(run(&b, "FF")[1].tripped());
    assert_eq!(b.state(), State::Open, "the would-be state");
    let admitted = b.try_acquire().expect("shadow mode admits");
    assert_eq!(
        admitted.failure(),
        Recorded::Stale,
        "a would-be rejected call counts for nothing"
    );
    assert_eq!(
        events.take(),
        ["failure", "failure", "closed->open", "rejected:open"]
    );
    clock.advance(RESET);
    assert!(b.try_acquire().unwrap().success().transition().is_some());
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn disabled_admits_everything_and_counts_nothing() {
    let clock = ManualClock::new();
    let events = Arc::new(Events::default());
    let b = base(&clock)
        .fail_max(1)
        .mode(Mode::Disabled)
        .shared_listener(events.clone())
        .build()
        .unwrap();
    assert_eq!(b.mode(), Mode::Disabled);
    for _ in 0..10 {
        let _ = b.try_acquire().expect("admitted").failure();
    }
    assert_eq!(b.state(), State::Closed);
    b.open();
    assert!(b.try_acquire().is_ok(), "even forced open");
    assert_eq!(events.take(), ["closed->open"], "only the forced change");
}

#[test]
fn owned_and_shared_stripes_lose_no_count() {
    let clock = ManualClock::new();
    let b = count(&clock, 10_000, 10_000, 50.0);
    for round in 1..=2u64 {
        // 20 live threads: 15 own a stripe, 5 share one; the second round's
        // threads reuse the stripes the first round's freed.
        let barrier = std::sync::Barrier::new(20);
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| {
                    barrier.wait();
                    run(&b, &"S".repeat(100));
                });
            }
        });
        assert_eq!(b.window_calls(), Some(round * 2_000));
    }
}

#[test]
fn registry_defaults_carry_the_window() {
    let clock = ManualClock::new();
    let c = clock.clone();
    let registry = breakerbox::Registry::new(move |b| {
        b.count_window(4)
            .minimum_calls(2)
            .mode(Mode::MetricsOnly)
            .clock(c.clone())
    });
    let b = registry.get_or_create("db").unwrap();
    assert_eq!(b.mode(), Mode::MetricsOnly);
    run(&b, "S");
    assert_eq!(b.failure_rate(), None, "below the minimum");
    assert!(run(&b, "F")[0].tripped(), "2 calls, 50%");
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire().is_ok(), "and, shadowed, still admits");
}

/// Four threads, mixed outcomes, a window that trips and recovers many
/// times: every state is entered as often as left, and every trip a record
/// reported is one `Closed -> Open` event (none lost, none twice).
#[test]
fn stress_states_balance_and_each_trip_is_reported_once() {
    let clock = ManualClock::new();
    let events = Arc::new(Events::default());
    let b = base(&clock)
        .count_window(16)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .reset_timeout(Duration::from_millis(1))
        .shared_listener(events.clone())
        .build()
        .unwrap();
    let trips: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (b, clock) = (&b, &clock);
                s.spawn(move || {
                    let mut trips = 0;
                    for i in 0..2_000u64 {
                        if (i + t) % 64 == 0 {
                            clock.advance(MS);
                        }
                        if let Ok(p) = b.try_acquire() {
                            let fail = (i * 7 + t) % 3 != 0;
                            trips += usize::from(if fail { p.failure() } else { p.success() }.tripped());
                        }
                    }
                    trips
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let changes: Vec<String> = events.take().into_iter().filter(|e| e.contains("->")).collect();
    assert!(trips > 1, "the stress must trip more than once: {trips}");
    assert_eq!(changes.iter().filter(|e| *e == "closed->open").count(), trips);
    // Listeners of different threads may report in either order, so check
    // the counts, which do not depend on it: each state entered as often as
    // left, but for the initial and the final one.
    let n = |e: &str| changes.iter().filter(|c| *c == e).count() as i64;
    let legal = [
        "closed->open",
        "open->half-open",
        "half-open->closed",
        "half-open->open",
    ];
    assert!(changes.iter().all(|c| legal.contains(&c.as_str())), "{changes:?}");
    let is = |st: State| i64::from(b.state() == st);
    assert_eq!(1 + n("half-open->closed") - n("closed->open"), is(State::Closed));
    assert_eq!(
        n("closed->open") + n("half-open->open") - n("open->half-open"),
        is(State::Open)
    );
    assert_eq!(
        n("open->half-open") - n("half-open->closed") - n("half-open->open"),
        is(State::HalfOpen)
    );
}
