//! One test per row of the README's half-open rule table: half-open decided
//! by the failure rate (or slow-call rate) over the permitted probes, as
//! resilience4j does. Time is driven by a `ManualClock`; nothing sleeps.

use breakerbox::clock::ManualClock;
use breakerbox::{Builder, CircuitBreaker, ConfigError, HalfOpenRule, Permit, Recorded, State};
use std::time::Duration;

const RESET: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(30);

fn base(clock: &ManualClock, probes: u32) -> Builder {
    CircuitBreaker::builder()
        .reset_timeout(RESET)
        .probe_lease(LEASE)
        .clock(clock.clone())
        .count_window(10)
        .minimum_calls(1)
        .failure_rate_threshold(50.0)
        .half_open_max_calls(probes)
        .half_open_rule(HalfOpenRule::FailureRate)
}

/// Trips `b` with one failure and lets its reset timeout pass.
fn to_half_open(b: &CircuitBreaker, clock: &ManualClock) {
    let _ = b.try_acquire().expect("closed").failure();
    assert_eq!(b.state(), State::Open);
    clock.advance(RESET);
}

fn probe(b: &CircuitBreaker) -> Permit<'_> {
    let p = b.try_acquire().expect("a probe is admitted");
    assert!(p.is_probe());
    p
}

fn to(r: Recorded) -> Option<State> {
    r.transition().map(|t| t.to)
}

#[test]
fn the_successes_rule_is_the_default() {
    let b = CircuitBreaker::builder().count_window(10).build().unwrap();
    assert_eq!(b.half_open_rule(), HalfOpenRule::Successes);
    let clock = ManualClock::new();
    assert_eq!(
        base(&clock, 4).build().unwrap().half_open_rule(),
        HalfOpenRule::FailureRate
    );
}

#[test]
fn the_rate_over_the_probes_reopens_at_the_threshold() {
    let clock = ManualClock::new();
    let b = base(&clock, 4).build().unwrap();
    to_half_open(&b, &clock);
    let p: Vec<_> = (0..4).map(|_| probe(&b)).collect();
    let mut p = p.into_iter();
    assert_eq!(p.next().unwrap().success(), Recorded::Counted);
    assert_eq!(
        p.next().unwrap().failure(),
        Recorded::Counted,
        "a failure does not re-open at once"
    );
    assert_eq!(p.next().unwrap().success(), Recorded::Counted);
    assert_eq!((b.success_counter(), b.probe_failure_counter()), (2, 1));
    assert_eq!(
        to(p.next().unwrap().failure()),
        Some(State::Open),
        "2 of 4 failed: 50%"
    );
}

#[test]
fn the_rate_over_the_probes_below_the_threshold_closes() {
    let clock = ManualClock::new();
    let b = base(&clock, 4).build().unwrap();
    to_half_open(&b, &clock);
    for outcome in ["S", "F", "S"] {
        let p = probe(&b);
        let r = if outcome == "F" { p.failure() } else { p.success() };
        assert_eq!(r, Recorded::Counted, "{outcome}");
    }
    assert_eq!(to(probe(&b).success()), Some(State::Closed), "1 of 4 failed: 25%");
    assert_eq!((b.success_counter(), b.probe_failure_counter()), (0, 0));
}

#[test]
fn half_open_max_calls_probes_are_permitted_in_all() {
    let clock = ManualClock::new();
    let b = base(&clock, 3).build().unwrap();
    to_half_open(&b, &clock);
    let first = probe(&b);
    assert_eq!(first.success(), Recorded::Counted);
    let (second, third) = (probe(&b), probe(&b));
    let rejected = b.try_acquire().expect_err("a recorded probe spent its permit");
    assert_eq!(rejected.state, State::HalfOpen);
    assert_eq!(b.probes_in_flight(), 2);
    assert_eq!(second.success(), Recorded::Counted);
    assert!(b.try_acquire().is_err(), "still three permits in all");
    assert_eq!(to(third.success()), Some(State::Closed));
}

#[test]
fn the_rule_waits_for_every_probe_even_when_the_outcome_is_sure() {
    let clock = ManualClock::new();
    let b = base(&clock, 3).build().unwrap();
    to_half_open(&b, &clock);
    let p: Vec<_> = (0..3).map(|_| probe(&b)).collect();
    let mut p = p.into_iter();
    assert_eq!(p.next().unwrap().failure(), Recorded::Counted);
    assert_eq!(
        p.next().unwrap().failure(),
        Recorded::Counted,
        "2 of 3 is sure to re-open; still waits"
    );
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(to(p.next().unwrap().success()), Some(State::Open));
}

#[test]
fn an_ignored_probe_gives_its_permit_back_and_counts_as_nothing() {
    let clock = ManualClock::new();
    let b = base(&clock, 2).build().unwrap();
    to_half_open(&b, &clock);
    let (a, c) = (probe(&b), probe(&b));
    assert!(b.try_acquire().is_err());
    assert_eq!(a.ignore(), Recorded::Counted);
    let replacement = probe(&b);
    assert_eq!((b.success_counter(), b.probe_failure_counter()), (0, 0));
    assert_eq!(c.failure(), Recorded::Counted);
    assert_eq!(
        to(replacement.success()),
        Some(State::Open),
        "1 of 2 recorded failed"
    );
}

#[test]
fn slow_probes_reopen_at_the_slow_call_rate_whatever_their_outcome() {
    let clock = ManualClock::new();
    let b = base(&clock, 2)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(50.0)
        .failure_rate_threshold(100.0)
        .build()
        .unwrap();
    to_half_open(&b, &clock);
    let (fast, slow) = (probe(&b), probe(&b));
    assert_eq!(
        fast.record_timed(breakerbox::Outcome::Success, Duration::from_millis(5)),
        Recorded::Counted
    );
    assert_eq!(
        to(slow.record_timed(breakerbox::Outcome::Success, Duration::from_millis(101))),
        Some(State::Open),
        "1 of 2 slow: 50%"
    );
    clock.advance(RESET);
    let (a, c) = (probe(&b), probe(&b));
    let _ = a.record_timed(breakerbox::Outcome::Success, Duration::from_millis(100));
    assert_eq!(
        to(c.record_timed(breakerbox::Outcome::Success, Duration::from_millis(5))),
        Some(State::Closed),
        "exactly the duration is not slow"
    );
}

#[test]
fn slow_probes_are_timed_by_a_timed_permit() {
    let clock = ManualClock::new();
    let b = base(&clock, 1)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(100.0)
        .build()
        .unwrap();
    to_half_open(&b, &clock);
    let p = b.try_acquire_timed().unwrap();
    assert!(p.is_probe());
    clock.advance(Duration::from_millis(150));
    assert_eq!(to(p.success()), Some(State::Open));
}

#[test]
fn a_reclaimed_probe_counts_as_nothing_and_the_tally_stays() {
    let clock = ManualClock::new();
    let b = base(&clock, 3).build().unwrap();
    to_half_open(&b, &clock);
    let (a, lost, c) = (probe(&b), probe(&b), probe(&b));
    assert_eq!(a.failure(), Recorded::Counted);
    assert_eq!(c.success(), Recorded::Counted);
    let lost = lost.into_ticket();
    assert!(b.try_acquire().is_err(), "every permit spent or in flight");
    clock.advance(LEASE);
    let again = probe(&b);
    assert_eq!(
        b.record(lost, breakerbox::Outcome::Failure),
        Ok(Recorded::Stale),
        "reclaimed"
    );
    assert_eq!(
        (b.success_counter(), b.probe_failure_counter()),
        (1, 1),
        "the tally stays"
    );
    assert!(b.try_acquire().is_err(), "only the reclaimed permit came back");
    assert_eq!(to(again.success()), Some(State::Closed), "1 of 3 failed");
}

#[test]
fn a_probe_recorded_twice_counts_once() {
    let clock = ManualClock::new();
    let b = base(&clock, 3).build().unwrap();
    to_half_open(&b, &clock);
    let t = probe(&b).into_ticket();
    let _other = probe(&b).into_ticket();
    assert_eq!(b.record(t, breakerbox::Outcome::Failure), Ok(Recorded::Counted));
    assert_eq!(b.record(t, breakerbox::Outcome::Failure), Ok(Recorded::Stale));
    assert_eq!(b.probe_failure_counter(), 1);
}

#[test]
fn the_rule_needs_no_window_and_reads_failure_rate_threshold() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(RESET)
        .clock(clock.clone())
        .half_open_max_calls(3)
        .failure_rate_threshold(34.0)
        .half_open_rule(HalfOpenRule::FailureRate)
        .build()
        .unwrap();
    assert_eq!(b.window_calls(), None, "the consecutive rule");
    to_half_open(&b, &clock);
    let (p1, p2, p3) = (probe(&b), probe(&b), probe(&b));
    let _ = (p1.success(), p2.success());
    assert_eq!(to(p3.failure()), Some(State::Closed), "1 of 3 is 33%, below 34%");
    to_half_open(&b, &clock);
    let (p1, p2, p3) = (probe(&b), probe(&b), probe(&b));
    let _ = (p1.failure(), p2.failure());
    assert_eq!(to(p3.success()), Some(State::Open), "2 of 3 is 67%");
}

#[test]
fn bad_rate_rule_settings_name_the_option() {
    let clock = ManualClock::new();
    let err = base(&clock, 32).build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::TooLarge {
                field: "half_open_max_calls",
                max: 31
            }
        ),
        "{err:?}"
    );
    let err = base(&clock, 2).success_threshold(2).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "success_threshold must be left at 1 with HalfOpenRule::FailureRate, which decides by the probes' failure rate"
    );
    let err = base(&clock, 2).failure_rate_threshold(0.0).build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "failure_rate_threshold",
                ..
            }
        ),
        "{err:?}"
    );
    let err = CircuitBreaker::builder()
        .half_open_rule(HalfOpenRule::FailureRate)
        .failure_rate_threshold(101.0)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "failure_rate_threshold",
                ..
            }
        ),
        "without a window too"
    );

    let b = base(&clock, 2).build().unwrap();
    assert!(matches!(
        b.set_half_open_max_calls(32),
        Err(ConfigError::TooLarge {
            field: "half_open_max_calls",
            max: 31
        })
    ));
    assert!(matches!(
        b.set_success_threshold(3),
        Err(ConfigError::Invalid {
            field: "success_threshold",
            ..
        })
    ));
    assert_eq!(
        (b.half_open_max_calls(), b.success_threshold()),
        (2, 1),
        "nothing changed"
    );
    // The successes rule keeps its own limits.
    assert!(CircuitBreaker::builder()
        .half_open_max_calls(1000)
        .success_threshold(3)
        .build()
        .is_ok());
}

#[test]
fn lowering_half_open_max_calls_decides_once_enough_probes_are_recorded() {
    let clock = ManualClock::new();
    let b = base(&clock, 4).build().unwrap();
    to_half_open(&b, &clock);
    let (p1, p2, p3) = (probe(&b), probe(&b), probe(&b));
    assert_eq!(p1.failure(), Recorded::Counted);
    assert_eq!(p2.success(), Recorded::Counted);
    b.set_half_open_max_calls(2).unwrap();
    assert_eq!(b.state(), State::Open, "2 recorded of 2, 50% failed");
    assert_eq!(p3.success(), Recorded::Stale);
}

#[test]
fn every_half_open_period_starts_with_an_empty_tally() {
    let clock = ManualClock::new();
    let b = base(&clock, 2).build().unwrap();
    to_half_open(&b, &clock);
    let (p1, p2) = (probe(&b), probe(&b));
    let _ = p1.failure();
    assert_eq!(to(p2.failure()), Some(State::Open));
    clock.advance(RESET);
    let (p1, p2) = (probe(&b), probe(&b));
    assert_eq!((b.success_counter(), b.probe_failure_counter()), (0, 0));
    let _ = p1.success();
    assert_eq!(to(p2.success()), Some(State::Closed));
    b.half_open();
    assert_eq!(
        (
            b.success_counter(),
            b.probe_failure_counter(),
            b.probes_in_flight()
        ),
        (0, 0, 0)
    );
}

#[test]
fn more_probes_than_slots_keep_their_count() {
    // Ignored probes use up the 16 slots an episode tells apart; the count
    // that follows keeps the permits spent and the tally.
    let clock = ManualClock::new();
    let b = base(&clock, 3).build().unwrap();
    to_half_open(&b, &clock);
    let keep = probe(&b);
    let failed = probe(&b);
    assert_eq!(failed.failure(), Recorded::Counted);
    for _ in 0..20 {
        assert_eq!(probe(&b).ignore(), Recorded::Counted);
    }
    assert_eq!((b.probes_in_flight(), b.probe_failure_counter()), (1, 1));
    let last = probe(&b);
    assert!(
        b.try_acquire().is_err(),
        "three permits: one recorded, two in flight"
    );
    assert_eq!(keep.success(), Recorded::Counted);
    assert_eq!(to(last.success()), Some(State::Closed), "1 of 3 failed");
}

#[test]
fn a_slow_probes_decision_is_reported_to_the_listeners() {
    use std::sync::{Arc, Mutex};
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let b = base(&clock, 1)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(100.0)
        .on_state_change({
            let seen = Arc::clone(&seen);
            move |_, from, to| seen.lock().unwrap().push((from, to))
        })
        .build()
        .unwrap();
    to_half_open(&b, &clock);
    let p = probe(&b);
    assert_eq!(
        to(p.record_timed(breakerbox::Outcome::Success, Duration::from_millis(150))),
        Some(State::Open)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open)
        ],
        "the slow probe's re-open reaches the listener, once"
    );
}
