//! One process, several breakers on one namespace: the fleet semantics
//! against a real Redis (URL in BREAKERBOX_REDIS_URL).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Outcome, Recorded, State, Transition};
use redis_support::*;
use std::sync::Arc;
use std::time::Duration;

fn shared(ns: &str) -> RedisState {
    RedisState::connect(&url()).unwrap().namespace(ns)
}

fn breaker(ns: &str, fail_max: u32) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("db")
        .fail_max(fail_max)
        .reset_timeout(Duration::from_secs(60))
        .shared(shared(ns))
        .build()
        .unwrap()
}

const TRIP: Transition = Transition {
    from: State::Closed,
    to: State::Open,
};

#[test]
fn failures_from_every_breaker_count_toward_one_fail_max() {
    let ns = unique_namespace("count");
    let a = breaker(&ns, 3);
    let b = breaker(&ns, 3);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.fail_counter(), 2, "b's mirror took the fleet's count");
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Transitioned(TRIP));
    assert_eq!(a.state(), State::Open);
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "1", "the fleet is open in Redis");
}

#[test]
fn a_success_resets_the_fleet_count_once_its_process_knows_of_failures() {
    let ns = unique_namespace("reset");
    let a = breaker(&ns, 3);
    let b = breaker(&ns, 3);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    // The failures are announced; b's next success goes to Redis and resets.
    assert!(within(Duration::from_millis(900), || b.fail_counter() == 2).is_some());
    assert_eq!(b.try_acquire().unwrap().success(), Recorded::Counted);
    assert_eq!(b.fail_counter(), 0);
    assert_eq!(stored_state(&mut client(&url()), &ns)["f"], "0");
    assert_eq!(
        a.try_acquire().unwrap().failure(),
        Recorded::Counted,
        "counting starts over"
    );
    assert_eq!(a.fail_counter(), 1);
}

#[test]
fn a_late_joiner_takes_the_fleet_state_and_resets_nothing() {
    let ns = unique_namespace("late");
    let a = breaker(&ns, 3);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);

    // pybreaker #26: a breaker joining (or noticing "closed") wiped the
    // other processes' failures. Here the joiner adopts them.
    let b = breaker(&ns, 3);
    assert_eq!(b.fail_counter(), 2);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Transitioned(TRIP));

    let c = breaker(&ns, 3);
    assert_eq!(c.state(), State::Open, "a joiner after the trip starts open");
    assert!(c.try_acquire().is_err());
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "1");
}

#[test]
fn two_namespaces_never_interfere() {
    let ns1 = unique_namespace("left");
    let ns2 = unique_namespace("right");
    let left = breaker(&ns1, 1);
    let right = breaker(&ns2, 1);
    assert!(left.try_acquire().unwrap().failure().tripped());
    assert_eq!(left.state(), State::Open);
    assert_eq!(right.state(), State::Closed);
    assert!(admits(&right));
    assert!(
        right.try_acquire().unwrap().failure().tripped(),
        "its own count, from zero"
    );

    let mut conn = client(&url());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("breakerbox:{{{ns1}}}*"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        keys,
        vec![format!("breakerbox:{{{ns1}}}:state")],
        "one key, hash-tagged"
    );
}

#[test]
fn a_trip_reaches_a_closed_mirror_by_announcement() {
    let ns = unique_namespace("announce");
    let a = breaker(&ns, 1);
    let b = breaker(&ns, 1);
    assert!(admits(&b));
    assert!(a.try_acquire().unwrap().failure().tripped());
    // b never talks to Redis on its closed path: the announcement is what
    // closes the gap, well within the 1 s refresh.
    let took = within(Duration::from_millis(900), || !admits(&b));
    assert!(took.is_some(), "b still admits long after the trip");
    assert_eq!(b.state(), State::Open);
}

#[test]
fn the_refresh_alone_bounds_staleness_without_announcements() {
    let ns = unique_namespace("refresh");
    let quiet = |ns: &str| {
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::from_secs(60))
            .shared(
                shared(ns)
                    .notifications(false)
                    .refresh_interval(Duration::from_millis(200)),
            )
            .build()
            .unwrap()
    };
    let a = quiet(&ns);
    let b = quiet(&ns);
    assert!(admits(&b));
    assert!(a.try_acquire().unwrap().failure().tripped());
    // Documented bound: refresh_interval + command_timeout = 300 ms; the
    // extra 500 ms only absorbs scheduling on a loaded machine.
    let took = within(Duration::from_millis(800), || !admits(&b));
    assert!(took.is_some(), "b missed the trip past the refresh bound");
}

#[test]
fn exactly_max_probes_across_breakers_then_success_closes_the_fleet() {
    let ns = unique_namespace("probes");
    let make = || {
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::ZERO)
            .half_open_max_calls(2)
            .success_threshold(2)
            .shared(shared(&ns))
            .build()
            .unwrap()
    };
    let a = make();
    assert!(a.open().is_some());
    // Built after the trip: their first sync shows them the open fleet.
    let (b, c) = (make(), make());
    let mut probes = Vec::new();
    // Every breaker keeps asking for a while: still two probes, no more.
    let _ = within(Duration::from_millis(150), || {
        for breaker in [&a, &b, &c] {
            if let Ok(permit) = breaker.try_acquire() {
                assert!(permit.is_probe());
                probes.push(permit);
            }
        }
        false
    });
    assert_eq!(probes.len(), 2, "two probes fleet-wide");
    assert_eq!(c.probes_in_flight(), 2, "c's mirror counts the fleet's probes");
    let first = probes.pop().unwrap();
    let second = probes.pop().unwrap();
    assert_eq!(first.success(), Recorded::Counted);
    assert_eq!(
        second.success(),
        Recorded::Transitioned(Transition {
            from: State::HalfOpen,
            to: State::Closed
        })
    );
    assert!(within(Duration::from_millis(900), || admits(&c)
        && c.state() == State::Closed)
    .is_some());
}

#[test]
fn tickets_of_an_ended_episode_are_stale_in_every_process() {
    let ns = unique_namespace("stale");
    let a = breaker(&ns, 1);
    let b = breaker(&ns, 1);
    let old = b.acquire_ticket().unwrap();
    assert!(a.try_acquire().unwrap().failure().tripped());
    assert_eq!(b.record(old, Outcome::Failure), Ok(Recorded::Stale));
    assert_eq!(b.record(old, Outcome::Success), Ok(Recorded::Stale));
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "1");
}

#[test]
fn a_probe_lease_expires_so_a_dead_process_cannot_wedge_the_fleet() {
    let ns = unique_namespace("lease");
    let make = || {
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::ZERO)
            .probe_lease(Duration::from_millis(600))
            .shared(shared(&ns))
            .build()
            .unwrap()
    };
    let dead = make();
    assert!(dead.open().is_some());
    // The mirror's own deadline check reads a coarse clock: allow it a tick.
    let mut lost = None;
    assert!(within(Duration::from_millis(100), || {
        lost = dead.acquire_ticket().ok();
        lost.is_some()
    })
    .is_some());
    let lost = lost.unwrap();
    assert!(lost.is_probe(), "the only probe");
    drop(dead); // died mid-probe: the ticket is never recorded
    let alive = make(); // its first sync shows the probe in flight
    assert_eq!(alive.probes_in_flight(), 1);
    assert!(alive.try_acquire().is_err(), "the slot is leased");
    let took = within(Duration::from_secs(3), || match alive.try_acquire() {
        Ok(permit) => {
            assert!(permit.is_probe());
            let _ = permit.success();
            true
        }
        Err(_) => false,
    });
    assert!(took.is_some(), "the lease never ran out");
    assert_eq!(alive.state(), State::Closed);
    let _ = lost;
}

#[test]
fn forced_transitions_are_fleet_wide_and_reported_once_per_process() {
    let ns = unique_namespace("force");
    let seen_a = Arc::new(Seen::default());
    let seen_b = Arc::new(Seen::default());
    let make = |seen: &Arc<Seen>| {
        CircuitBreaker::builder()
            .listener(Recorder(Arc::clone(seen)))
            .shared(shared(&ns))
            .build()
            .unwrap()
    };
    let a = make(&seen_a);
    let b = make(&seen_b);
    assert_eq!(
        a.open(),
        Some(TRIP),
        "the fleet transition goes to the caller that made it"
    );
    assert_eq!(a.open(), None, "already open fleet-wide");
    assert!(within(Duration::from_millis(900), || !admits(&b)).is_some());
    assert_eq!(
        b.close(),
        Some(Transition {
            from: State::Open,
            to: State::Closed
        })
    );
    assert!(within(Duration::from_millis(900), || admits(&a)).is_some());
    assert_eq!(
        seen_a.transitions(),
        vec![(State::Closed, State::Open), (State::Open, State::Closed)]
    );
    assert_eq!(
        seen_b.transitions(),
        vec![(State::Closed, State::Open), (State::Open, State::Closed)]
    );
}

#[test]
fn lowering_fail_max_trips_the_fleet_at_its_current_count() {
    let ns = unique_namespace("setter");
    let a = breaker(&ns, 5);
    let b = breaker(&ns, 5);
    for _ in 0..2 {
        assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    }
    assert_eq!(b.set_fail_max(2), Ok(Some(TRIP)));
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_flushed_script_cache_is_reloaded() {
    let ns = unique_namespace("noscript");
    let a = breaker(&ns, 2);
    let mut conn = client(&url());
    let _: String = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert!(a.try_acquire().unwrap().failure().tripped());
}

#[test]
fn a_bad_url_is_an_error_not_a_panic() {
    let err = RedisState::connect("not a url").unwrap_err();
    assert_eq!(err.kind(), breakerbox::redis::StorageErrorKind::InvalidUrl);
    assert!(err.to_string().contains("invalid Redis URL"));
}

#[test]
fn a_bad_url_is_echoed_with_its_password_masked() {
    let err = RedisState::connect("redis://app:hunter2@db.local:notaport/0").unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redis://app:***@db.local:notaport/0"), "{text}");
    assert!(
        !text.contains("InvalidClientConfig"),
        "the client's own text leaked: {text}"
    );
}

/// `HalfOpenRule::FailureRate` on a fleet: a slow probe's record tells the
/// fleet it was slow, so the slow-call rate among the fleet's probes
/// decides: two successes, one of them slow, re-open at a 50% slow-call
/// rate (they would close if the slowness stayed in the process).
#[test]
fn a_slow_probe_counts_toward_the_fleets_slow_call_rate() {
    let ns = unique_namespace("rate-slow");
    let build = || {
        CircuitBreaker::builder()
            .half_open_rule(breakerbox::HalfOpenRule::FailureRate)
            .half_open_max_calls(2)
            .count_window(100)
            .slow_call_duration(Duration::from_millis(10))
            .slow_call_rate_threshold(50.0)
            .reset_timeout(Duration::from_secs(600))
            .probe_lease(Duration::from_secs(600))
            .shared(shared(&ns))
            .build()
            .unwrap()
    };
    let a = build();
    assert!(a.half_open().is_some());
    // Built after: its first sync shows the fleet half-open.
    let b = build();
    let first = a.acquire_ticket().expect("a probe");
    let second = b
        .acquire_ticket()
        .expect("the other permit, from the other breaker");
    assert!(first.is_probe() && second.is_probe());
    assert!(a.acquire_ticket().is_err(), "both permits are out");
    assert_eq!(
        a.record_timed(first, Outcome::Success, Duration::from_millis(20)),
        Ok(Recorded::Counted)
    );
    assert_eq!(b.probe_failure_counter(), 0);
    assert_eq!(
        b.record_timed(second, Outcome::Success, Duration::from_millis(1)),
        Ok(Recorded::Transitioned(Transition {
            from: State::HalfOpen,
            to: State::Open
        })),
        "one slow probe in two: the slow-call rate re-opens the fleet"
    );
}
