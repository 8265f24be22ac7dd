//! The fleet guarantees, checked the same way on every deployment (plain,
//! auth, ACL user, TLS, behind a faulty proxy, after a failover).

use super::{within, Recorder, Seen};
use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Permit, Recorded, State, Transition};
use std::sync::Arc;
use std::time::Duration;

pub const TRIP: Transition = Transition {
    from: State::Closed,
    to: State::Open,
};
pub const CLOSE: Transition = Transition {
    from: State::HalfOpen,
    to: State::Closed,
};

/// The limits every deployment test uses: trips at the third failure,
/// half-opens after 150 ms (the server's clock), one probe, one success closes.
pub const FAIL_MAX: u32 = 3;
pub const RESET_TIMEOUT: Duration = Duration::from_millis(150);

/// Scheduling on a loaded machine, on top of a timeout; not part of any
/// guarantee.
pub const SCHEDULING_ALLOWANCE: Duration = Duration::from_millis(250);

/// Runs `call` and fails if it took longer than `timeout` allows.
pub fn timed_within<T>(what: &str, timeout: Duration, call: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let value = call();
    let took = start.elapsed();
    assert!(
        took <= timeout + SCHEDULING_ALLOWANCE,
        "{what} blocked {took:?}, past the timeout {timeout:?}"
    );
    value
}

/// A breaker of the fleet `state` points at, its listener's record in `seen`.
pub fn fleet_breaker(state: RedisState, seen: &Arc<Seen>) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(FAIL_MAX)
        .reset_timeout(RESET_TIMEOUT)
        .half_open_max_calls(1)
        .success_threshold(1)
        .listener(Recorder(Arc::clone(seen)))
        .shared(state)
        .build()
        .expect("valid limits")
}

/// Waits (bounded) until `b` admits a call after the reset timeout; the
/// permit is a probe.
pub fn first_probe(b: &CircuitBreaker) -> Permit<'_> {
    let mut permit = None;
    let found = within(RESET_TIMEOUT * 20, || {
        permit = b.try_acquire().ok();
        permit.is_some()
    });
    assert!(found.is_some(), "no probe admitted after the reset timeout");
    let permit = permit.expect("admitted");
    assert!(permit.is_probe(), "the first call after the reset timeout probes");
    permit
}

/// Two breakers of one namespace: failures from both trip the fleet exactly
/// once, at exactly `FAIL_MAX`; the other learns of it by announcement;
/// after the reset timeout exactly one probe is admitted fleet-wide, and its
/// success closes the fleet for both. Returns nothing: every step asserts.
pub fn assert_fleet_guarantees(a: &CircuitBreaker, b: &CircuitBreaker) {
    assert!(
        within(Duration::from_secs(2), || a.state() == State::Closed
            && b.state() == State::Closed)
        .is_some(),
        "starts closed: {} {}",
        a.state(),
        b.state()
    );
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.fail_counter(), 2, "b's mirror took the fleet's count");
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Transitioned(TRIP));
    assert!(
        within(Duration::from_secs(2), || b.state() == State::Open).is_some(),
        "b learns of the trip"
    );
    assert!(b.try_acquire().is_err(), "open: rejected");

    let probe = first_probe(a);
    for _ in 0..20 {
        assert!(b.try_acquire().is_err(), "one probe fleet-wide");
        assert!(a.try_acquire().is_err(), "one probe fleet-wide");
    }
    assert!(
        within(Duration::from_secs(2), || b.probes_in_flight() == 1).is_some(),
        "b's mirror learns of the fleet's probe"
    );
    assert_eq!(probe.success(), Recorded::Transitioned(CLOSE));
    assert!(
        within(Duration::from_secs(2), || b.state() == State::Closed).is_some(),
        "b learns of the close"
    );
    assert_eq!((a.fail_counter(), b.fail_counter()), (0, 0));
}
