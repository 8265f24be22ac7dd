//! One test (at least) per rule of the breaker's behaviour. Time is driven
//! by a `ManualClock`; nothing sleeps but the one test of the system clock
//! itself (`system_clock_half_opens_on_time_after_idle_spells`).

use breakerbox::clock::ManualClock;
use breakerbox::{
    Builder, CircuitBreaker, ConfigError, Error, InvalidTicket, Listener, Outcome, Permit, Recorded, State,
    Ticket, Transition,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RESET: Duration = Duration::from_secs(60);

fn breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("db")
        .fail_max(3)
        .reset_timeout(RESET)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn fail(b: &CircuitBreaker) -> Recorded {
    b.try_acquire().expect("admitted").failure()
}

/// A breaker tripped by one failure and past its reset timeout: the next
/// acquire is a probe.
fn ready_to_probe(clock: &ManualClock, configure: impl FnOnce(Builder) -> Builder) -> CircuitBreaker {
    let b = configure(
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(RESET)
            .clock(clock.clone()),
    )
    .build()
    .unwrap();
    trip(&b);
    clock.advance(RESET);
    b
}

fn trip(b: &CircuitBreaker) {
    while b.state() == State::Closed {
        let _ = fail(b);
    }
}

fn transition(from: State, to: State) -> Transition {
    Transition { from, to }
}

/// Records every event a listener sees, with the state visible at that moment.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.events.lock().unwrap())
    }
    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl Listener for Recorder {
    fn before_call(&self, _: &CircuitBreaker) {
        self.push("before".into());
    }
    fn state_change(&self, b: &CircuitBreaker, from: State, to: State) {
        self.push(format!("{}:{from}->{to} (sees {})", b.name(), b.state()));
    }
    fn success(&self, _: &CircuitBreaker) {
        self.push("success".into());
    }
    fn failure(&self, _: &CircuitBreaker) {
        self.push("failure".into());
    }
    fn rejected(&self, _: &CircuitBreaker, state: State) {
        self.push(format!("rejected:{state}"));
    }
    fn ignored(&self, _: &CircuitBreaker) {
        self.push("ignored".into());
    }
}

#[test]
fn defaults_match_pybreaker() {
    let b = CircuitBreaker::default();
    assert_eq!(b.fail_max(), 5);
    assert_eq!(b.reset_timeout(), Duration::from_secs(60));
    assert_eq!(b.success_threshold(), 1);
    assert_eq!(b.half_open_max_calls(), 1);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.name(), "");
}

#[test]
fn state_displays_as_documented() {
    assert_eq!(State::Closed.to_string(), "closed");
    assert_eq!(State::Open.to_string(), "open");
    assert_eq!(State::HalfOpen.to_string(), "half-open");
}

#[test]
fn breaker_is_send_sync_and_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<CircuitBreaker>();
    assert_send_sync::<Arc<CircuitBreaker>>();
}

#[test]
fn build_rejects_zero_and_oversized_thresholds_naming_the_field() {
    let zero =
        |f: fn(breakerbox::Builder) -> breakerbox::Builder| f(CircuitBreaker::builder()).build().unwrap_err();
    assert_eq!(zero(|b| b.fail_max(0)), ConfigError::Zero { field: "fail_max" });
    assert_eq!(
        zero(|b| b.success_threshold(0)),
        ConfigError::Zero {
            field: "success_threshold"
        }
    );
    assert_eq!(
        zero(|b| b.half_open_max_calls(0)),
        ConfigError::Zero {
            field: "half_open_max_calls"
        }
    );
    assert_eq!(
        zero(|b| b.probe_lease(Duration::ZERO)),
        ConfigError::TooShort {
            field: "probe_lease",
            min: Duration::from_millis(1)
        }
    );
    assert_eq!(
        zero(|b| b.half_open_max_calls(70_000)),
        ConfigError::TooLarge {
            field: "half_open_max_calls",
            max: 65_535
        }
    );
    assert_eq!(
        zero(|b| b.success_threshold(65_536)),
        ConfigError::TooLarge {
            field: "success_threshold",
            max: 65_535
        }
    );
    assert_eq!(zero(|b| b.fail_max(0)).to_string(), "fail_max must be at least 1");
    assert!(CircuitBreaker::builder()
        .success_threshold(65_535)
        .half_open_max_calls(65_535)
        .build()
        .is_ok());
}

#[test]
fn duration_errors_give_their_unit() {
    let err = CircuitBreaker::builder()
        .probe_lease(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "probe_lease must be at least 1 ms");
    // Kept in whole milliseconds: below one rounds down to zero, refused alike.
    let sub_ms = CircuitBreaker::builder()
        .probe_lease(Duration::from_nanos(1))
        .build()
        .unwrap_err();
    assert_eq!(sub_ms, err);
    let b = CircuitBreaker::builder().build().unwrap();
    assert_eq!(b.set_probe_lease(Duration::from_micros(999)), Err(err));
    assert_eq!(b.probe_lease(), breakerbox::DEFAULT_RESET_TIMEOUT, "unchanged");
}

#[test]
fn every_setter_returns_a_result() {
    let b = CircuitBreaker::builder().build().unwrap();
    assert_eq!(b.set_reset_timeout(Duration::from_secs(5)), Ok(()));
    assert_eq!(b.reset_timeout(), Duration::from_secs(5));
    assert_eq!(b.set_probe_lease(Duration::from_secs(2)), Ok(()));
    assert_eq!(b.set_half_open_max_calls(2), Ok(()));
    assert_eq!(b.set_fail_max(3), Ok(None));
    assert_eq!(b.set_success_threshold(2), Ok(None));
}

#[test]
fn a_zero_reset_timeout_lets_the_next_call_probe() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::ZERO)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    let probe = b.try_acquire().expect("no wait: the next call is the probe");
    assert!(probe.is_probe());
    assert!(b.try_acquire().is_err(), "still one probe at a time");
    let _ = probe.success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.probe_lease(), breakerbox::MIN_DEFAULT_PROBE_LEASE);
    // Below a millisecond is kept as zero.
    b.set_reset_timeout(Duration::from_micros(900)).unwrap();
    assert_eq!(b.reset_timeout(), Duration::ZERO);
}

#[test]
fn the_longest_reset_timeout_waits_for_a_forced_half_open() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .reset_timeout(Duration::MAX)
        .clock(clock.clone())
        .build()
        .unwrap();
    b.open();
    clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
    assert!(b.try_acquire().is_err(), "a century later, still open");
    b.half_open();
    assert!(b.try_acquire().unwrap().is_probe());
}

#[test]
fn setters_reject_bad_values_and_change_nothing() {
    let b = CircuitBreaker::builder().fail_max(4).build().unwrap();
    assert_eq!(b.set_fail_max(0), Err(ConfigError::Zero { field: "fail_max" }));
    assert_eq!(
        b.set_success_threshold(0),
        Err(ConfigError::Zero {
            field: "success_threshold"
        })
    );
    assert_eq!(
        b.set_half_open_max_calls(0),
        Err(ConfigError::Zero {
            field: "half_open_max_calls"
        })
    );
    assert!(b.set_half_open_max_calls(65_536).is_err());
    assert!(b.set_probe_lease(Duration::ZERO).is_err());
    assert_eq!(
        (b.fail_max(), b.success_threshold(), b.half_open_max_calls()),
        (4, 1, 1)
    );
}

#[test]
fn closed_failures_count_and_trip_at_fail_max() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    assert_eq!(fail(&b), Recorded::Counted);
    assert_eq!(fail(&b), Recorded::Counted);
    assert_eq!(b.fail_counter(), 2);
    assert_eq!(b.state(), State::Closed);
    let third = fail(&b);
    assert!(third.tripped());
    assert_eq!(
        third,
        Recorded::Transitioned(transition(State::Closed, State::Open))
    );
    assert_eq!(b.state(), State::Open);
}

#[test]
fn closed_success_resets_consecutive_failures() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let _ = fail(&b);
    let _ = fail(&b);
    assert_eq!(b.try_acquire().unwrap().success(), Recorded::Counted);
    assert_eq!(b.fail_counter(), 0);
    let _ = fail(&b);
    let _ = fail(&b);
    assert_eq!(b.state(), State::Closed, "failures are consecutive");
}

#[test]
fn closed_state_never_reads_the_clock() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for i in 0..1000 {
        let p = b.try_acquire().unwrap();
        let _ = if i % 3 == 0 { p.failure() } else { p.success() };
        let _ = b.try_acquire().unwrap().ignore();
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(clock.reads(), 0);
}

#[test]
fn open_rejects_until_reset_timeout_then_admits_one_probe() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    trip(&b);
    clock.advance(RESET - Duration::from_millis(1));
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.state, State::Open);
    assert_eq!(b.state(), State::Open, "no timer: still open");
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.state(), State::Open, "the move is lazy, on the next acquire");
    let probe = b.try_acquire().expect("timeout passed");
    assert!(probe.is_probe());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.try_acquire().unwrap_err().state,
        State::HalfOpen,
        "one probe only"
    );
    drop(probe);
}

#[test]
fn probe_success_closes_and_resets_counters() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    trip(&b);
    clock.advance(RESET);
    let probe = b.try_acquire().unwrap();
    assert_eq!(
        probe.success(),
        Recorded::Transitioned(transition(State::HalfOpen, State::Closed))
    );
    assert_eq!(
        (b.state(), b.fail_counter(), b.success_counter()),
        (State::Closed, 0, 0)
    );
    assert!(!b.try_acquire().unwrap().is_probe());
}

#[test]
fn probe_failure_reopens_with_a_new_opened_at() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    trip(&b);
    clock.advance(RESET);
    assert_eq!(
        fail(&b),
        Recorded::Transitioned(transition(State::HalfOpen, State::Open))
    );
    clock.advance(RESET - Duration::from_millis(1));
    assert!(b.try_acquire().is_err(), "the timeout restarts at the re-open");
    clock.advance(Duration::from_millis(1));
    assert!(b.try_acquire().unwrap().is_probe());
}

#[test]
fn success_threshold_needs_that_many_probe_successes_one_slot_at_a_time() {
    let clock = ManualClock::new();
    let b = ready_to_probe(&clock, |b| b.success_threshold(3));
    for expected in 1..=2 {
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "the slot is taken while the probe runs");
        assert_eq!(probe.success(), Recorded::Counted);
        assert_eq!((b.state(), b.success_counter()), (State::HalfOpen, expected));
    }
    assert_eq!(
        b.try_acquire().unwrap().success(),
        Recorded::Transitioned(transition(State::HalfOpen, State::Closed))
    );
}

#[test]
fn half_open_max_calls_admits_exactly_that_many() {
    let clock = ManualClock::new();
    let b = ready_to_probe(&clock, |b| b.half_open_max_calls(3).success_threshold(5));
    let probes: Vec<_> = (0..3).map(|_| b.try_acquire().expect("slot free")).collect();
    assert_eq!(b.probes_in_flight(), 3);
    assert!(b.try_acquire().is_err());
    let mut probes = probes.into_iter();
    let _ = probes.next().unwrap().ignore();
    assert_eq!(b.probes_in_flight(), 2, "ignored frees a slot");
    assert_eq!(b.success_counter(), 0, "and counts as no success");
    let again = b.try_acquire().expect("the freed slot is reusable");
    assert!(b.try_acquire().is_err());
    for p in probes.chain([again]) {
        let _ = p.success();
    }
    assert_eq!(
        (b.state(), b.success_counter(), b.probes_in_flight()),
        (State::HalfOpen, 3, 0)
    );
}

#[test]
fn lost_probe_slot_is_reclaimed_after_the_lease_and_its_late_record_is_stale() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_secs(10))
        .probe_lease(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    trip(&b);
    clock.advance(Duration::from_secs(10));
    let lost: Ticket = b.try_acquire().unwrap().into_ticket();
    clock.advance(Duration::from_secs(30) - Duration::from_millis(1));
    assert!(b.try_acquire().is_err(), "the lease has not run out");
    clock.advance(Duration::from_millis(1));
    let second = b.try_acquire().expect("lease expired: slot reclaimed");
    assert_eq!(b.probes_in_flight(), 1);
    assert_eq!(
        b.record(lost, Outcome::Failure),
        Ok(Recorded::Stale),
        "late record changes nothing"
    );
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        second.success(),
        Recorded::Transitioned(transition(State::HalfOpen, State::Closed))
    );
}

#[test]
fn a_lease_changed_while_a_probe_is_in_flight_applies_to_it() {
    let clock = ManualClock::new();
    // Half-open, its one probe in flight and never recorded; the lease
    // follows the reset timeout until set.
    let with_probe_in_flight = || {
        let b = CircuitBreaker::builder()
            .reset_timeout(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .unwrap();
        b.half_open();
        let lost = b.try_acquire().unwrap().into_ticket();
        assert!(b.try_acquire().is_err(), "the one slot is taken");
        (b, lost)
    };
    let just_before = |lease: Duration| lease - Duration::from_millis(1);

    let (b, _lost) = with_probe_in_flight();
    b.set_probe_lease(Duration::from_secs(2)).unwrap();
    clock.advance(just_before(Duration::from_secs(2)));
    assert!(b.try_acquire().is_err(), "the shortened lease has not run out");
    clock.advance(Duration::from_millis(1));
    assert!(b.try_acquire().is_ok(), "the shortened lease ran out");

    // A lease that follows the reset timeout follows a change of it too.
    let (b, _lost) = with_probe_in_flight();
    b.set_reset_timeout(Duration::from_secs(3)).unwrap();
    clock.advance(just_before(Duration::from_secs(3)));
    assert!(b.try_acquire().is_err(), "the followed lease has not run out");
    clock.advance(Duration::from_millis(1));
    assert!(b.try_acquire().is_ok(), "the followed lease ran out");
}

#[test]
fn probe_lease_defaults_to_reset_timeout_with_a_floor() {
    let b = CircuitBreaker::builder()
        .reset_timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    assert_eq!(b.probe_lease(), Duration::from_secs(90));
    let b = CircuitBreaker::builder()
        .reset_timeout(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(b.probe_lease(), breakerbox::MIN_DEFAULT_PROBE_LEASE);
}

#[test]
fn permit_from_an_earlier_episode_is_stale_and_changes_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let old = b.try_acquire().unwrap();
    trip(&b);
    clock.advance(RESET);
    let _ = b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(old.failure(), Recorded::Stale);
    assert_eq!(b.fail_counter(), 0);
    let old_probe_episode = b.try_acquire().unwrap().into_ticket();
    b.open();
    assert_eq!(b.record(old_probe_episode, Outcome::Success), Ok(Recorded::Stale));
    assert_eq!(b.state(), State::Open);
}

#[test]
fn probe_recorded_twice_is_stale_the_second_time() {
    let clock = ManualClock::new();
    let b = ready_to_probe(&clock, |b| b.success_threshold(2));
    let probe = b.try_acquire().unwrap().into_ticket();
    assert_eq!(b.record(probe, Outcome::Success), Ok(Recorded::Counted));
    let next = b.try_acquire().unwrap();
    assert_eq!(b.record(probe, Outcome::Success), Ok(Recorded::Stale));
    assert_eq!((b.success_counter(), b.probes_in_flight()), (1, 1));
    drop(next);
}

/// With room for several probes, a second record of one must not free
/// another probe's slot, whether or not that slot was taken again since.
#[test]
fn a_probe_recorded_twice_frees_no_other_probes_slot() {
    let clock = ManualClock::new();
    let b = ready_to_probe(&clock, |b| b.half_open_max_calls(2).success_threshold(3));
    let p1 = b.try_acquire().unwrap().into_ticket();
    let p2 = b.try_acquire().unwrap().into_ticket();
    assert_eq!(b.record(p1, Outcome::Success), Ok(Recorded::Counted));
    assert_eq!(b.record(p1, Outcome::Success), Ok(Recorded::Stale), "p1 again");
    assert_eq!(
        (b.success_counter(), b.probes_in_flight()),
        (1, 1),
        "p2 still holds its slot"
    );
    let p3 = b.try_acquire().unwrap().into_ticket();
    assert!(b.try_acquire().is_err(), "two probes in flight: p2 and p3");
    assert_eq!(
        b.record(p1, Outcome::Ignored),
        Ok(Recorded::Stale),
        "p1 a third time"
    );
    assert_eq!(b.probes_in_flight(), 2);
    assert!(b.try_acquire().is_err(), "still no third probe");
    assert_eq!(b.record(p2, Outcome::Success), Ok(Recorded::Counted));
    assert_eq!(b.record(p2, Outcome::Success), Ok(Recorded::Stale), "p2 again");
    assert_eq!(
        b.record(p3, Outcome::Success),
        Ok(Recorded::Transitioned(transition(State::HalfOpen, State::Closed)))
    );
}

#[test]
fn foreign_or_forged_tickets_are_invalid() {
    let a = CircuitBreaker::default();
    let b = CircuitBreaker::default();
    let ticket = a.acquire_ticket().unwrap();
    assert_eq!(b.record(ticket, Outcome::Failure), Err(InvalidTicket));
    assert_eq!(
        a.record(Ticket::from_bits(0xdead_beef_dead_beef), Outcome::Failure),
        Err(InvalidTicket)
    );
    assert_eq!(
        a.record(Ticket::from_bits(0), Outcome::Success),
        Err(InvalidTicket)
    );
    assert_eq!(
        a.record(Ticket::from_bits(ticket.to_bits()), Outcome::Failure),
        Ok(Recorded::Counted)
    );
    assert_eq!(a.fail_counter(), 1);
}

#[test]
fn ignored_outcome_counts_as_neither() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let _ = fail(&b);
    assert_eq!(b.try_acquire().unwrap().ignore(), Recorded::Counted);
    assert_eq!(
        b.fail_counter(),
        1,
        "not reset like a success, not counted like a failure"
    );
}

#[test]
fn dropping_a_permit_unrecorded_counts_as_a_failure() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    drop(b.try_acquire().unwrap());
    assert_eq!(b.fail_counter(), 1);
}

#[derive(Debug, PartialEq)]
enum DbError {
    NotFound,
    Timeout,
    Cancelled,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DbError {}

fn classifying_breaker(clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(2)
        .clock(clock.clone())
        .exclude(|e: &DbError| *e == DbError::NotFound)
        .ignore(|e: &DbError| *e == DbError::Cancelled)
        .build()
        .unwrap()
}

#[test]
fn excluded_errors_count_as_success_and_are_returned_whole() {
    let clock = ManualClock::new();
    let b = classifying_breaker(&clock);
    let _ = b.call(|| Err::<(), _>(DbError::Timeout));
    assert_eq!(b.fail_counter(), 1);
    match b.call(|| Err::<(), _>(DbError::NotFound)) {
        Err(Error::Failed {
            error,
            tripped,
            outcome,
        }) => {
            assert_eq!(
                (error, tripped, outcome),
                (DbError::NotFound, false, Outcome::Success)
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(b.fail_counter(), 0, "the dependency answered: a success");
    assert_eq!(b.classify(&DbError::NotFound), Outcome::Success);
    assert_eq!(
        b.classify(&"some other type"),
        Outcome::Failure,
        "other error types are failures"
    );
}

#[test]
fn ignored_errors_count_as_neither() {
    let clock = ManualClock::new();
    let b = classifying_breaker(&clock);
    let _ = b.call(|| Err::<(), _>(DbError::Timeout));
    let err = b.call(|| Err::<(), _>(DbError::Cancelled)).unwrap_err();
    assert_eq!(err.into_inner(), Some(DbError::Cancelled));
    assert_eq!(b.fail_counter(), 1);
}

#[test]
fn failed_says_how_its_error_was_counted() {
    let clock = ManualClock::new();
    let b = classifying_breaker(&clock);
    let counted = |e: DbError| b.call(|| Err::<(), _>(e)).unwrap_err();
    let excluded = counted(DbError::NotFound);
    assert_eq!(excluded.outcome(), Some(Outcome::Success));
    assert!(!excluded.is_failure(), "an excluded error is no failure");
    let ignored = counted(DbError::Cancelled);
    assert_eq!(ignored.outcome(), Some(Outcome::Ignored));
    assert!(!ignored.is_failure());
    let failed = counted(DbError::Timeout);
    assert_eq!(failed.outcome(), Some(Outcome::Failure));
    assert!(failed.is_failure());
    assert_eq!(b.fail_counter(), 1);
    b.open();
    let rejected = b.call(|| Ok::<_, DbError>(())).unwrap_err();
    assert_eq!(rejected.outcome(), None);
    assert!(!rejected.is_failure());
}

#[test]
fn call_tells_rejection_from_failure_and_keeps_the_tripping_error() {
    let clock = ManualClock::new();
    let b = classifying_breaker(&clock);
    assert_eq!(b.call(|| Ok::<_, DbError>(7)).unwrap(), 7);
    let first = b.call(|| Err::<(), _>(DbError::Timeout)).unwrap_err();
    assert!(!first.tripped() && !first.is_rejected());
    let second = b.call(|| Err::<(), _>(DbError::Timeout)).unwrap_err();
    assert!(second.tripped(), "this call tripped the breaker");
    assert_eq!(
        second.into_inner(),
        Some(DbError::Timeout),
        "its error is not lost"
    );
    let mut ran = false;
    let third = b.call(|| {
        ran = true;
        Ok::<_, DbError>(())
    });
    assert!(!ran, "rejected calls do not run");
    match third {
        Err(Error::Rejected(r)) => assert_eq!(r.state, State::Open),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_panic_in_the_operation_counts_as_a_failure_and_keeps_unwinding() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let result = catch_unwind(AssertUnwindSafe(|| {
        b.call(|| -> Result<(), ()> { panic!("boom") })
    }));
    assert!(result.is_err(), "the panic resumes");
    assert_eq!(b.fail_counter(), 1);
}

#[test]
fn manual_control_moves_between_states_and_reports_once() {
    let clock = ManualClock::new();
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder()
        .name("m")
        .clock(clock.clone())
        .shared_listener(rec.clone())
        .build()
        .unwrap();
    assert_eq!(b.open(), Some(transition(State::Closed, State::Open)));
    assert_eq!(b.open(), None, "already open");
    assert_eq!(b.half_open(), Some(transition(State::Open, State::HalfOpen)));
    assert_eq!(b.half_open(), None);
    assert_eq!(b.close(), Some(transition(State::HalfOpen, State::Closed)));
    let _ = fail(&b);
    assert_eq!(b.close(), None, "closing a closed breaker is no transition");
    assert_eq!(b.fail_counter(), 0, "but clears its failures");
    let events: Vec<_> = rec.take().into_iter().filter(|e| e.contains("->")).collect();
    assert_eq!(
        events,
        [
            "m:closed->open (sees open)",
            "m:open->half-open (sees half-open)",
            "m:half-open->closed (sees closed)"
        ]
    );
}

#[test]
fn forced_open_half_opens_after_the_reset_timeout() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    clock.advance(Duration::from_secs(5));
    b.open();
    clock.advance(RESET - Duration::from_millis(1));
    assert!(b.try_acquire().is_err());
    clock.advance(Duration::from_millis(1));
    assert!(b.try_acquire().unwrap().is_probe());
}

#[test]
fn setters_take_effect_on_the_next_decision() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    b.set_fail_max(1).unwrap();
    assert!(fail(&b).tripped());
    b.set_reset_timeout(Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(1));
    b.set_success_threshold(2).unwrap();
    b.set_half_open_max_calls(2).unwrap();
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    assert_eq!(p1.success(), Recorded::Counted);
    assert!(p2.success().transition().is_some());
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn lowering_fail_max_to_the_current_count_trips_at_once() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let _ = fail(&b);
    let _ = fail(&b);
    assert_eq!(b.set_fail_max(5).unwrap(), None);
    assert_eq!(
        b.set_fail_max(2).unwrap(),
        Some(transition(State::Closed, State::Open))
    );
    assert_eq!(b.state(), State::Open);
}

#[test]
fn lowering_success_threshold_to_the_current_count_closes_at_once() {
    let clock = ManualClock::new();
    let b = ready_to_probe(&clock, |b| b.success_threshold(3));
    let _ = b.try_acquire().unwrap().success();
    let _ = b.try_acquire().unwrap().success();
    assert_eq!(
        b.set_success_threshold(2).unwrap(),
        Some(transition(State::HalfOpen, State::Closed))
    );
}

#[test]
fn listeners_see_every_event_and_the_new_state() {
    let clock = ManualClock::new();
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder()
        .name("db")
        .fail_max(1)
        .reset_timeout(RESET)
        .clock(clock.clone())
        .shared_listener(rec.clone())
        .build()
        .unwrap();
    let _ = b.try_acquire().unwrap().success();
    let _ = b.try_acquire().unwrap().ignore();
    let _ = fail(&b);
    let _ = b.try_acquire();
    clock.advance(RESET);
    let _ = b.try_acquire().unwrap().success();
    assert_eq!(
        rec.take(),
        [
            "before",
            "success",
            "before",
            "ignored",
            "before",
            "failure",
            "db:closed->open (sees open)",
            "before",
            "rejected:open",
            "before",
            "db:open->half-open (sees half-open)",
            "success",
            "db:half-open->closed (sees closed)",
        ]
    );
}

#[test]
fn state_change_closure_gets_name_and_states() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let b = CircuitBreaker::builder()
        .name("api")
        .on_state_change(move |name, from, to| sink.lock().unwrap().push(format!("{name} {from} {to}")))
        .build()
        .unwrap();
    b.open();
    b.close();
    assert_eq!(*seen.lock().unwrap(), ["api closed open", "api open closed"]);
}

struct Panicky;
impl Listener for Panicky {
    fn state_change(&self, _: &CircuitBreaker, _: State, _: State) {
        panic!("listener bug");
    }
}

#[test]
fn a_panicking_listener_does_not_corrupt_the_breaker() {
    let clock = ManualClock::new();
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .clock(clock.clone())
        .listener(Panicky)
        .shared_listener(rec.clone())
        .build()
        .unwrap();
    let tripped = catch_unwind(AssertUnwindSafe(|| fail(&b)));
    assert!(tripped.is_err(), "the listener's panic reaches the caller");
    assert_eq!(b.state(), State::Open, "the transition stands");
    assert!(
        rec.take().iter().any(|e| e.contains("closed->open")),
        "later listeners still ran"
    );
    clock.advance(RESET);
    let admitted = catch_unwind(AssertUnwindSafe(|| b.try_acquire().map(Permit::into_ticket)));
    assert!(admitted.is_err(), "the open->half-open report panicked");
    assert_eq!(b.state(), State::HalfOpen, "the transition stands");
    assert_eq!(
        b.probes_in_flight(),
        0,
        "the probe it admitted was released, not leaked"
    );
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe(), "the next caller gets the probe");
    let _ = probe.into_ticket();
    assert!(catch_unwind(AssertUnwindSafe(|| b.close())).is_err());
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        b.try_acquire().unwrap().success(),
        Recorded::Counted,
        "still works"
    );
}

/// A listener that panics when told of an outcome.
struct PanicsOnOutcome;
impl Listener for PanicsOnOutcome {
    fn failure(&self, _: &CircuitBreaker) {
        panic!("listener bug");
    }
}

#[test]
fn a_panicking_outcome_listener_does_not_hide_the_transition() {
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .listener(PanicsOnOutcome)
        .shared_listener(rec.clone())
        .build()
        .unwrap();
    let tripped = catch_unwind(AssertUnwindSafe(|| fail(&b)));
    assert!(tripped.is_err(), "the listener's panic reaches the caller");
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        rec.take(),
        ["before", "failure", ":closed->open (sees open)"],
        "every listener hears of the outcome, then of the transition, once each"
    );
}

/// The system clock's cheap reading trails after idle spells; the open state
/// must still half-open as soon as the timeout has passed.
#[test]
#[cfg_attr(miri, ignore = "reads the real clock and sleeps")]
fn system_clock_half_opens_on_time_after_idle_spells() {
    for reset_ms in [0, 20] {
        let b = CircuitBreaker::builder()
            .reset_timeout(Duration::from_millis(reset_ms))
            .build()
            .unwrap();
        for _ in 0..40 {
            b.open();
            std::thread::sleep(Duration::from_millis(reset_ms + 3));
            let probe = b.try_acquire().expect("the reset timeout has passed");
            assert!(probe.is_probe());
            let _ = probe.success();
        }
    }
}
