//! Redis faults: killed mid-run, restarted with and without its data,
//! paused past the command timeout, absent at build. Each test runs a
//! private redis-server (BREAKERBOX_REDIS_SERVER) it can kill or stop.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState, DEFAULT_COMMAND_TIMEOUT};
use breakerbox::{CircuitBreaker, Recorded, State};
use redis_support::*;
use std::sync::Arc;
use std::time::Duration;

/// How long a recovery may take: the watcher's backoff is capped at this
/// test's `max_backoff` (200 ms), plus a connect and a sync.
const RECOVERY: Duration = Duration::from_secs(5);

fn breaker(server: &PrivateServer, ns: &str, policy: FaultPolicy, seen: &Arc<Seen>) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(3)
        .reset_timeout(Duration::from_secs(60))
        .listener(Recorder(Arc::clone(seen)))
        .shared(
            RedisState::connect(&server.url())
                .unwrap()
                .namespace(ns)
                .policy(policy)
                .max_backoff(Duration::from_millis(200)),
        )
        .build()
        .unwrap()
}

/// Runs `call` and fails if it took longer than a call may block.
fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    timed_within(what, DEFAULT_COMMAND_TIMEOUT, call)
}

#[test]
fn killed_mid_run_the_local_policy_keeps_deciding_per_process() {
    let mut server = PrivateServer::start();
    let seen = Arc::new(Seen::default());
    let ns = unique_namespace("kill-local");
    let b = breaker(&server, &ns, FaultPolicy::Local, &seen);
    assert!(admits(&b));
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    server.kill();

    // Calls keep flowing, each within the command timeout, decided locally:
    // the fleet's failure is in the mirror, two more trip it.
    for i in 0..50 {
        timed("a closed call", || assert!(admits(&b), "call {i}"));
    }
    let first = timed("a failure", || b.try_acquire().unwrap().failure());
    let second = timed("a failure", || b.try_acquire().unwrap().failure());
    assert_eq!((first, second.tripped()), (Recorded::Counted, true));
    for _ in 0..50 {
        timed("a rejection", || assert!(b.try_acquire().is_err()));
    }
    assert!(seen.storage_error_count() >= 1, "the fault was reported");
}

#[test]
fn killed_mid_run_fail_open_admits_every_call() {
    let mut server = PrivateServer::start();
    let seen = Arc::new(Seen::default());
    let b = breaker(
        &server,
        &unique_namespace("kill-open"),
        FaultPolicy::FailOpen,
        &seen,
    );
    server.kill();
    for _ in 0..20 {
        let recorded = timed("a failing call", || b.try_acquire().expect("admitted").failure());
        assert_eq!(recorded, Recorded::Stale, "not counted while Redis is away");
    }
    assert_eq!(b.state(), State::Closed);
    assert!(seen.storage_error_count() >= 1);
}

#[test]
fn killed_mid_run_fail_closed_rejects_every_call() {
    let mut server = PrivateServer::start();
    let seen = Arc::new(Seen::default());
    let b = breaker(
        &server,
        &unique_namespace("kill-closed"),
        FaultPolicy::FailClosed,
        &seen,
    );
    assert!(admits(&b));
    server.kill();
    // The watcher's subscription sees the connection drop; the next call
    // applies the policy (a call reaching Redis itself would too).
    assert!(within(RECOVERY, || !admits(&b)).is_some(), "still admitting");
    for _ in 0..50 {
        timed("a rejection", || assert!(b.try_acquire().is_err()));
    }
    assert_eq!(seen.transitions(), vec![(State::Closed, State::Open)]);
    assert!(seen.storage_error_count() >= 1);
}

#[test]
fn restarted_with_its_data_the_fleet_state_wins_over_local_decisions() {
    let mut server = PrivateServer::start();
    let ns = unique_namespace("restart");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = breaker(&server, &ns, FaultPolicy::Local, &seen_a);
    let b = breaker(&server, &ns, FaultPolicy::Local, &seen_b);
    assert!(a.open().is_some());
    assert!(within(RECOVERY, || b.state() == State::Open).is_some());
    server.save();
    server.kill();

    // While Redis is away, b closes on its own.
    assert_eq!(
        timed("a local close", || b.close()).map(|t| t.to),
        Some(State::Closed)
    );
    assert!(admits(&b));
    server.restart();

    // Back: b's mirror takes the fleet's state again, and both follow it.
    assert!(
        within(RECOVERY, || b.state() == State::Open).is_some(),
        "b did not re-sync"
    );
    assert!(b.try_acquire().is_err());
    // a may still be in its reconnection backoff: a close made while it is
    // away is local only and undone by its re-sync, so close until Redis has it.
    let mut conn = client(&server.url());
    assert!(within(RECOVERY, || {
        let _ = a.close();
        stored_state(&mut conn, &ns).get("s").map(String::as_str) == Some("0")
    })
    .is_some());
    assert!(within(RECOVERY, || admits(&b)).is_some(), "b missed a's close");
    assert!(seen_b.storage_error_count() >= 1);
}

#[test]
fn restarted_empty_the_fleet_is_reseeded_from_the_mirrors_not_reset() {
    let mut server = PrivateServer::start();
    let ns = unique_namespace("empty");
    let seen = Arc::new(Seen::default());
    let a = breaker(&server, &ns, FaultPolicy::Local, &seen);
    assert!(a.open().is_some());
    // A key no breaker writes: its absence after the restart proves the
    // server came back empty, even if the watcher has re-seeded already.
    let sentinel = format!("{ns}:sentinel");
    let _: () = redis::cmd("SET")
        .arg(&sentinel)
        .arg(1)
        .query(&mut client(&server.url()))
        .expect("SET");
    server.forget_dump();
    server.restart(); // persistence off and no dump: it comes back empty
    let exists: bool = redis::cmd("EXISTS")
        .arg(&sentinel)
        .query(&mut client(&server.url()))
        .expect("EXISTS");
    assert!(!exists, "restarted empty");

    // The watcher reconnects and seeds the empty hash from a's open mirror.
    let seeded = within(RECOVERY, || {
        stored_state(&mut client(&server.url()), &ns)
            .get("s")
            .map(String::as_str)
            == Some("1")
    });
    assert!(seeded.is_some(), "the fleet state was not re-seeded");
    assert!(a.try_acquire().is_err(), "a never closed");
    let late = breaker(&server, &ns, FaultPolicy::Local, &Arc::new(Seen::default()));
    assert_eq!(late.state(), State::Open, "a joiner finds the fleet still open");
    assert!(late.try_acquire().is_err());
}

#[test]
fn paused_past_the_command_timeout_calls_fall_back_and_nothing_counts_twice() {
    let server = PrivateServer::start();
    let ns = unique_namespace("pause");
    let seen = Arc::new(Seen::default());
    let a = breaker(&server, &ns, FaultPolicy::Local, &seen);
    assert!(admits(&a));
    server.pause();

    // The failure's script is sent and never answered: the call gives up
    // at the command timeout and counts it locally.
    let recorded = timed("a failure against a paused Redis", || {
        a.try_acquire().unwrap().failure()
    });
    assert_eq!(recorded, Recorded::Counted);
    assert!(
        seen.storage_errors.lock().unwrap()[0].contains("timed out"),
        "{:?}",
        seen.storage_errors.lock().unwrap()
    );
    for _ in 0..50 {
        timed("a call while paused", || assert!(admits(&a)));
    }
    std::thread::sleep(DEFAULT_COMMAND_TIMEOUT * 3);
    server.resume();

    // Once Redis answers again the mirror is the fleet's. The unanswered
    // script may have run on resume, or not: the failure counts once at
    // most, never twice (it is never retried).
    let mut conn = client(&server.url());
    assert!(within(RECOVERY, || {
        let f: Option<u32> = stored_state(&mut conn, &ns).get("f").and_then(|f| f.parse().ok());
        f.is_some() && a.fail_counter() == f.unwrap()
    })
    .is_some());
    let fleet_failures: u32 = stored_state(&mut conn, &ns)["f"].parse().unwrap();
    assert!(fleet_failures <= 1, "counted {fleet_failures} times");
    assert!(admits(&a));
}

#[test]
fn a_redis_absent_at_build_is_a_fault_not_an_error() {
    let mut server = PrivateServer::start();
    let url = server.url();
    server.kill();
    let ns = unique_namespace("absent");
    let seen = Arc::new(Seen::default());
    let b = timed("building against an absent Redis", || {
        CircuitBreaker::builder()
            .fail_max(2)
            .listener(Recorder(Arc::clone(&seen)))
            .shared(
                RedisState::connect(&url)
                    .unwrap()
                    .namespace(&ns)
                    .max_backoff(Duration::from_millis(200)),
            )
            .build()
            .expect("builds")
    });
    assert!(seen.storage_error_count() >= 1, "reported at build");
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    server.restart();
    // Back: b's watcher seeds the hash from b's mirror, failure count included.
    let mut conn = client(&url);
    assert!(within(RECOVERY, || {
        stored_state(&mut conn, &ns).get("f").map(String::as_str) == Some("1")
    })
    .is_some());
    // A joiner counts on from there and trips the fleet; b re-synced follows.
    let c = CircuitBreaker::builder()
        .fail_max(2)
        .shared(RedisState::connect(&url).unwrap().namespace(&ns))
        .build()
        .unwrap();
    assert_eq!(c.fail_counter(), 1);
    assert!(c.try_acquire().unwrap().failure().tripped());
    assert_eq!(stored_state(&mut conn, &ns)["s"], "1");
    assert!(within(RECOVERY, || !admits(&b)).is_some(), "b never re-synced");
}
