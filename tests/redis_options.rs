//! Every duration option at its extremes, a watcher that dies, and the
//! reachability options (URL in BREAKERBOX_REDIS_URL).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{RedisState, StorageErrorKind};
use breakerbox::{CircuitBreaker, ConfigError, State};
use redis_support::*;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXTREMES: [Duration; 3] = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];

type Option_ = fn(RedisState, Duration) -> RedisState;

const REDIS_OPTIONS: [(&str, Option_); 4] = [
    ("command_timeout", RedisState::command_timeout),
    ("connect_timeout", RedisState::connect_timeout),
    ("refresh_interval", RedisState::refresh_interval),
    ("max_backoff", RedisState::max_backoff),
];

/// Another breaker of `ns` trips the fleet; whether `a`'s watcher brings
/// the trip to `a` within 3 s.
fn another_process_trips_and_a_sees_it(ns: &str, a: &CircuitBreaker) -> bool {
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .shared(RedisState::connect(&url()).unwrap().namespace(ns))
        .build()
        .unwrap();
    assert!(b.try_acquire().unwrap().failure().tripped());
    within(Duration::from_secs(3), || a.state() == State::Open).is_some()
}

#[test]
fn every_redis_duration_at_zero_one_ns_and_max_builds_and_shares() {
    for (name, set) in REDIS_OPTIONS {
        for value in EXTREMES {
            let ns = unique_namespace("extreme");
            let seen = Arc::new(Seen::default());
            let start = Instant::now();
            let a = CircuitBreaker::builder()
                .fail_max(1)
                .listener(Recorder(Arc::clone(&seen)))
                .shared(set(RedisState::connect(&url()).unwrap().namespace(&ns), value))
                .build()
                .unwrap_or_else(|e| panic!("{name}({value:?}): {e}"));
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}({value:?}) build"
            );
            assert!(
                another_process_trips_and_a_sees_it(&ns, &a),
                "{name}({value:?}): a's watcher never brought the trip"
            );
            assert!(a.try_acquire().is_err(), "{name}({value:?})");
            let health = a.storage_health().expect("a shared breaker has health");
            // A 1 ms command timeout may really time out on a loaded
            // machine: that is a fault, reported, not a failure here.
            if name != "command_timeout" || value == Duration::MAX {
                assert!(health.reachable, "{name}({value:?}): {health:?}");
                assert_eq!(
                    seen.storage_error_count(),
                    0,
                    "{name}({value:?}): {:?}",
                    seen.storage_errors.lock().unwrap()
                );
            }
        }
    }
}

type BuilderOption = fn(breakerbox::Builder, Duration) -> breakerbox::Builder;

#[test]
fn reset_timeout_and_probe_lease_at_zero_one_ns_and_max_are_refused_or_work() {
    let options: [(&str, BuilderOption); 2] = [
        ("reset_timeout", breakerbox::Builder::reset_timeout),
        ("probe_lease", breakerbox::Builder::probe_lease),
    ];
    for (name, set) in options {
        for value in EXTREMES {
            for shared in [false, true] {
                let builder = CircuitBreaker::builder().fail_max(1);
                let builder = if shared {
                    builder.shared(
                        RedisState::connect(&url())
                            .unwrap()
                            .namespace(unique_namespace("ext")),
                    )
                } else {
                    builder
                };
                match set(builder, value).build() {
                    Err(e) => {
                        let text = e.to_string();
                        assert!(text.contains(name), "{name}({value:?}): {text}");
                    }
                    Ok(b) => {
                        assert!(b.try_acquire().unwrap().failure().tripped(), "{name}({value:?})");
                        let admitted = b.try_acquire().map(|p| p.ignore()).is_ok();
                        if name == "reset_timeout" && value == Duration::MAX {
                            assert!(!admitted, "a reset timeout of Duration::MAX keeps it open");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_watcher_that_dies_is_reported_restarted_and_visible_in_health() {
    let ns = unique_namespace("dead-watcher");
    let transport = HostClient::new(&url());
    transport.panic_on_watcher.store(true, Ordering::SeqCst);
    let seen = Arc::new(Seen::default());
    let a = CircuitBreaker::builder()
        .fail_max(1)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(
            RedisState::with_transport(transport.clone())
                .namespace(&ns)
                .notifications(false)
                .refresh_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    assert!(
        within(Duration::from_secs(3), || !transport
            .panic_on_watcher
            .load(Ordering::SeqCst))
        .is_some(),
        "the watcher ran a sync"
    );
    assert!(
        within(Duration::from_secs(3), || a
            .storage_health()
            .unwrap()
            .last_error
            .is_some())
        .is_some(),
        "the watcher's death shows in health"
    );
    let health = a.storage_health().unwrap();
    assert!(
        health
            .last_error
            .as_deref()
            .unwrap()
            .contains("watcher thread panicked"),
        "{health:?}"
    );
    // The next call reports it to listeners.
    assert!(a.try_acquire().is_ok());
    assert!(
        seen.storage_errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("host client bug")),
        "{:?}",
        seen.storage_errors.lock().unwrap()
    );
    // Restarted: its refresh still brings another process's trip.
    assert!(
        another_process_trips_and_a_sees_it(&ns, &a),
        "the restarted watcher refreshed the mirror"
    );
    assert!(
        within(Duration::from_secs(3), || a.storage_health().unwrap().reachable).is_some(),
        "{:?}",
        a.storage_health()
    );
}

fn nothing_listening() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}/")
}

#[test]
fn require_reachable_makes_build_fail_when_the_first_sync_fails() {
    let url = nothing_listening();
    let err = CircuitBreaker::builder()
        .shared(RedisState::connect(&url).unwrap().require_reachable())
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Unreachable {
            kind: StorageErrorKind::Unreachable
        }
    );
    assert!(err.to_string().contains("require_reachable"), "{err}");

    // Without it the breaker builds degraded, and says so.
    let b = CircuitBreaker::builder()
        .shared(RedisState::connect(&url).unwrap())
        .build()
        .unwrap();
    let health = b.storage_health().unwrap();
    assert!(!health.reachable, "{health:?}");
    assert!(health.last_error.is_some(), "{health:?}");
    assert!(CircuitBreaker::builder()
        .build()
        .unwrap()
        .storage_health()
        .is_none());
}

#[test]
fn require_reachable_builds_when_redis_answers() {
    let b = CircuitBreaker::builder()
        .shared(
            RedisState::connect(&url())
                .unwrap()
                .namespace(unique_namespace("reach"))
                .require_reachable(),
        )
        .build()
        .unwrap();
    assert!(b.storage_health().unwrap().reachable);
}

#[test]
fn a_fail_closed_rejection_says_it_is_the_fault_policy() {
    let b = CircuitBreaker::builder()
        .shared(
            RedisState::connect(&nothing_listening())
                .unwrap()
                .policy(breakerbox::redis::FaultPolicy::FailClosed),
        )
        .build()
        .unwrap();
    let rejected = b.try_acquire().unwrap_err();
    assert!(rejected.is_fault_policy());
    let text = rejected.to_string();
    assert!(text.contains("FailClosed fault policy"), "{text}");
    assert!(text.contains("unreachable"), "{text}");

    // An open breaker's rejection is the breaker's state, as before.
    let open = CircuitBreaker::builder().fail_max(1).build().unwrap();
    let _ = open.try_acquire().unwrap().failure();
    let rejected = open.try_acquire().unwrap_err();
    assert!(!rejected.is_fault_policy());
    assert_eq!(
        rejected.to_string(),
        "circuit breaker <unnamed> is open: call rejected"
    );
}
