//! The fleet review's findings, each a test that failed before its fix
//! (URL in BREAKERBOX_REDIS_URL; private servers from BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState};
use breakerbox::{CircuitBreaker, Listener, Outcome, Recorded, State};
use redis_support::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

fn shared(ns: &str) -> RedisState {
    RedisState::connect(&url()).unwrap().namespace(ns)
}

/// Panics when told of a half-open transition.
struct PanicsOnHalfOpen;

impl Listener for PanicsOnHalfOpen {
    fn state_change(&self, _b: &CircuitBreaker, _from: State, to: State) {
        if to == State::HalfOpen {
            panic!("listener panics on half-open");
        }
    }
}

#[test]
fn a_listener_panicking_in_shared_acquire_leaks_no_fleet_probe_slot() {
    let ns = unique_namespace("panic-probe");
    let build = |listener: bool| {
        let b = CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::from_millis(20))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(60))
            .shared(shared(&ns));
        let b = if listener { b.listener(PanicsOnHalfOpen) } else { b };
        b.build().unwrap()
    };
    let a = build(true);
    let other = build(false);
    assert!(a.try_acquire().unwrap().failure().tripped());
    // The reset timeout runs on the server's clock: wait it out.
    std::thread::sleep(Duration::from_millis(40));
    let admitted = catch_unwind(AssertUnwindSafe(|| a.try_acquire().map(|p| p.into_ticket())));
    assert!(admitted.is_err(), "the listener's panic reaches the caller");
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "2", "the fleet half-opened");
    assert_eq!(
        stored["i"], "0",
        "the probe the caller never got was freed fleet-wide"
    );
    // Its mirror learns of the freed slot by announcement (it may reject
    // locally until then): well before the 60 s lease.
    assert!(
        within(Duration::from_secs(5), || admits(&other)).is_some(),
        "another process can probe at once, not after the lease"
    );
}

/// Resolves a handle lazily from the breaker's own getters, as a metrics
/// listener may.
struct LazyHandle(Arc<OnceLock<State>>);

impl Listener for LazyHandle {
    fn state_change(&self, b: &CircuitBreaker, _from: State, _to: State) {
        self.0.get_or_init(|| b.state());
    }
}

#[test]
fn a_getter_runs_no_listener_so_a_lazy_handle_cannot_reenter_itself() {
    let ns = unique_namespace("reenter");
    let handle = Arc::new(OnceLock::new());
    let a = CircuitBreaker::builder()
        .fail_max(1)
        .listener(LazyHandle(Arc::clone(&handle)))
        .shared(shared(&ns))
        .build()
        .unwrap();
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .shared(shared(&ns))
        .build()
        .unwrap();
    assert!(b.try_acquire().unwrap().failure().tripped());
    // Let the announcement reach a's watcher (nothing of a's may look).
    std::thread::sleep(Duration::from_millis(300));
    let (done, finished) = mpsc::channel();
    let a = Arc::new(a);
    let reader = Arc::clone(&a);
    let handle2 = Arc::clone(&handle);
    std::thread::spawn(move || {
        let state = *handle2.get_or_init(|| reader.state());
        let _ = done.send(state);
    });
    let state = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the getter returned: no listener re-entered the handle being resolved");
    assert_eq!(state, State::Open, "the getter shows what the fleet announced");
}

#[test]
fn a_server_that_refuses_writes_meets_backoff_not_a_reconnect_storm() {
    let primary = PrivateServer::start();
    let replica = PrivateServer::start();
    let ns = unique_namespace("readonly");
    // The namespace exists on the primary and has reached the replica.
    let seeded = CircuitBreaker::builder()
        .shared(RedisState::connect(&primary.url()).unwrap().namespace(&ns))
        .build()
        .unwrap();
    let _: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query(&mut client(&replica.url()))
        .unwrap();
    assert!(
        within(Duration::from_secs(10), || !stored_state(
            &mut client(&replica.url()),
            &ns
        )
        .is_empty())
        .is_some(),
        "the replica has the namespace"
    );
    drop(seeded);
    let seen = Arc::new(Seen::default());
    let b = CircuitBreaker::builder()
        .fail_max(1_000_000)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(
            RedisState::connect(&replica.url())
                .unwrap()
                .namespace(&ns)
                .max_backoff(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    assert!(b.storage_health().unwrap().reachable, "reads work on the replica");
    let before = script_runs(&replica.url(), false);
    let start = std::time::Instant::now();
    let mut failures = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let _ = b.try_acquire().unwrap().failure();
        failures += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let runs = script_runs(&replica.url(), false) - before;
    eprintln!("{failures} failures against a read-only replica ran {runs} scripts");
    assert!(seen.storage_error_count() >= 1, "the READONLY fault was reported");
    // Backoff from 10 ms, doubling to 1 s: about 8 recoveries in 2 s, each
    // a sync and one refused write. Recovering at once costs a pair every
    // time the watcher looks (every 50 ms): about 80.
    assert!(
        runs < 30,
        "{runs} script runs for {failures} failures: a reconnect storm"
    );
}

#[test]
fn a_probe_ticket_issued_during_an_outage_never_counts_at_the_fleet() {
    let ns = unique_namespace("outage-ticket");
    let cut_off = HostClient::new(&url());
    cut_off.cut.store(true, Ordering::SeqCst);
    let config = |b: breakerbox::Builder| {
        b.fail_max(1)
            .reset_timeout(Duration::from_millis(20))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(60))
    };
    // Cut off from the start: its first sync fails and it runs on its own.
    let a = config(CircuitBreaker::builder())
        .shared(
            RedisState::with_transport(cut_off.clone())
                .namespace(&ns)
                .policy(FaultPolicy::Local)
                .notifications(false)
                .refresh_interval(Duration::from_millis(10))
                .max_backoff(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let b = config(CircuitBreaker::builder())
        .shared(shared(&ns))
        .build()
        .unwrap();
    assert!(!a.storage_health().unwrap().reachable);
    // Both go through the same episodes: a on its own mirror, b at the
    // fleet. So a's local probe carries the very generation of b's.
    assert!(a.try_acquire().unwrap().failure().tripped());
    assert!(b.try_acquire().unwrap().failure().tripped());
    std::thread::sleep(Duration::from_millis(40));
    let local_probe = a.try_acquire().expect("a probes on its own").into_ticket();
    let fleet_probe = b.try_acquire().expect("b probes at the fleet").into_ticket();
    assert_eq!(
        local_probe.episode(),
        fleet_probe.episode(),
        "the generations met"
    );

    cut_off.cut.store(false, Ordering::SeqCst);
    assert!(
        within(Duration::from_secs(5), || a.storage_health().unwrap().reachable).is_some(),
        "a is back"
    );
    assert_eq!(
        a.record(local_probe, breakerbox::Outcome::Success),
        Ok(Recorded::Stale),
        "a ticket from the outage does not count at the fleet"
    );
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(
        (stored["s"].as_str(), stored["i"].as_str()),
        ("2", "1"),
        "b's probe still holds its slot"
    );
    assert!(
        b.record(fleet_probe, breakerbox::Outcome::Success)
            .unwrap()
            .transition()
            .is_some(),
        "b's probe closes the fleet"
    );
}

#[test]
fn a_record_racing_a_lowered_fail_max_trips_the_fleet_at_once() {
    let ns = unique_namespace("setter-race");
    let transport = HostClient::new(&url());
    let b = Arc::new(
        CircuitBreaker::builder()
            .fail_max(5)
            .shared(
                RedisState::with_transport(transport.clone())
                    .namespace(&ns)
                    .notifications(false),
            )
            .build()
            .unwrap(),
    );
    // Two failures while fail_max is 5 (their record scripts run unhooked).
    for _ in 0..2 {
        assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    }
    // The third failure's record has read fail_max 5 when, before its
    // script runs, a setter lowers it to 3: the setter's reconcile sees 2
    // failures and does nothing, the record then counts the third against 5.
    let setter = Arc::downgrade(&b);
    *transport.before_record.lock().unwrap() = Some(Box::new(move || {
        let b = setter.upgrade().unwrap();
        assert_eq!(b.set_fail_max(3), Ok(None), "2 failures do not reach 3");
    }));
    let third = b.try_acquire().unwrap().failure();
    assert!(
        third.tripped(),
        "the third failure reached the lowered fail_max: {third:?}"
    );
    assert_eq!(b.state(), State::Open);
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "1", "the fleet is open");
}

#[test]
fn a_mirror_that_moved_on_its_own_is_repaired_while_the_fleet_is_quiet() {
    let ns = unique_namespace("diverged");
    let host = HostClient::new(&url());
    let a = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_secs(60))
        .shared(
            RedisState::with_transport(host.clone())
                .namespace(&ns)
                .policy(FaultPolicy::Local)
                .notifications(false)
                .refresh_interval(Duration::from_millis(20))
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    host.cut.store(true, Ordering::SeqCst);
    // Cut off, a trips on its own; the fleet stays closed and nothing
    // changes it again, so its version stays the one a last saw.
    assert!(a.try_acquire().unwrap().failure().tripped());
    assert_eq!(a.state(), State::Open);
    host.cut.store(false, Ordering::SeqCst);
    assert!(
        within(Duration::from_secs(5), || a.state() == State::Closed).is_some(),
        "the refresh of an unchanged fleet repaired the mirror"
    );
    assert!(admits(&a), "and calls flow again");
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "0", "the fleet never opened");
}

#[test]
fn a_probe_recorded_twice_at_the_fleet_counts_once() {
    let ns = unique_namespace("probe-twice");
    let build = || {
        CircuitBreaker::builder()
            .half_open_max_calls(2)
            .success_threshold(2)
            .probe_lease(Duration::from_secs(60))
            .shared(shared(&ns))
            .build()
            .unwrap()
    };
    // Two processes, one probe each.
    let (a, b) = (build(), build());
    assert!(a.half_open().is_some(), "the fleet half-opens");
    let first = a.acquire_ticket().expect("a probes");
    assert!(
        within(Duration::from_secs(5), || b.state() == State::HalfOpen).is_some(),
        "b hears of it"
    );
    let second = b.acquire_ticket().expect("b probes too");
    assert!(first.is_probe() && second.is_probe());
    assert_eq!(a.record(first, Outcome::Success), Ok(Recorded::Counted));
    assert_eq!(
        a.record(first, Outcome::Success),
        Ok(Recorded::Stale),
        "its slot is free already: a second record counts nothing"
    );
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(
        (stored["s"].as_str(), stored["i"].as_str(), stored["k"].as_str()),
        ("2", "1", "1"),
        "still half-open, b's probe in flight, one success"
    );
    assert_eq!(
        b.record(second, Outcome::Success)
            .unwrap()
            .transition()
            .map(|t| t.to),
        Some(State::Closed),
        "b's probe is the second real success, and closes the fleet"
    );
}

#[test]
fn a_fleet_probe_recorded_twice_during_an_outage_counts_once_on_the_mirror() {
    let ns = unique_namespace("outage-double-record");
    let link = HostClient::new(&url());
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_millis(20))
        .half_open_max_calls(2)
        .success_threshold(2)
        .probe_lease(Duration::from_secs(60))
        .shared(
            RedisState::with_transport(link.clone())
                .namespace(&ns)
                .policy(FaultPolicy::Local)
                .notifications(false)
                .require_reachable(),
        )
        .build()
        .unwrap();
    assert!(b.try_acquire().unwrap().failure().tripped());
    // Past the reset timeout the fleet admits two probes, each in its slot.
    let mut first = None;
    within(Duration::from_secs(5), || {
        first = b.acquire_ticket().ok();
        first.is_some()
    });
    let first = first.expect("a probe after the reset timeout");
    let second = b.acquire_ticket().expect("a second probe");
    assert_eq!((b.state(), b.probes_in_flight()), (State::HalfOpen, 2));

    // The store goes away: records count on the mirror (the policy is
    // Local), which tells the fleet's probes apart by their slots too.
    link.cut.store(true, Ordering::SeqCst);
    assert_eq!(b.record(first, Outcome::Success), Ok(Recorded::Counted));
    assert_eq!(
        b.record(first, Outcome::Success),
        Ok(Recorded::Stale),
        "the same probe recorded twice counts once"
    );
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "one probe's success does not close it"
    );
    assert_eq!((b.success_counter(), b.probes_in_flight()), (1, 1));
    assert!(b
        .record(second, Outcome::Success)
        .unwrap()
        .transition()
        .is_some_and(|t| t.to == State::Closed));
}
