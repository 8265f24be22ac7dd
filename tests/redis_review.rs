//! The fleet review's findings, each a test that failed before its fix
//! (URL in BREAKERBOX_REDIS_URL; private servers from BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Listener, State};
use redis_support::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    assert!(
        admits(&other),
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
