//! The healthy path makes no round trip: counted by the server itself, on a
//! private redis-server (BREAKERBOX_REDIS_SERVER) that nothing else talks to.
//! And the endpoint's one watcher thread stops with its last breaker. One test at a time: both
//! count things the whole process shares.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, State};
use redis_support::*;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn closed_successes_and_open_rejections_touch_no_network() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PrivateServer::start();
    let breaker = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_secs(60))
        .shared(
            RedisState::connect(&server.url())
                .unwrap()
                .namespace(unique_namespace("hot"))
                .refresh_interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    // Two syncs: the build's and the watcher's first, which runs on its own.
    assert!(within(Duration::from_secs(5), || script_runs(&server.url(), true) == 2).is_some());
    let before = script_runs(&server.url(), true);
    for _ in 0..10_000 {
        let _ = breaker.try_acquire().unwrap().success();
        let _ = breaker.call(|| Ok::<_, ()>(()));
    }
    assert_eq!(
        script_runs(&server.url(), true),
        before,
        "a closed success reached Redis"
    );

    // A failure does reach it, once, and trips the fleet.
    assert!(breaker.try_acquire().unwrap().failure().tripped());
    assert_eq!(script_runs(&server.url(), true), before + 1);
    assert_eq!(breaker.state(), State::Open);
    for _ in 0..10_000 {
        assert!(breaker.try_acquire().is_err());
    }
    assert_eq!(
        script_runs(&server.url(), true),
        before + 1,
        "a rejection before the reset timeout reached Redis"
    );
}

/// Polls `fut` once; a healthy shared breaker's closed success and open
/// rejection resolve on their first poll, without a round trip.
fn ready_now<F: std::future::Future>(fut: F) -> F::Output {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
    match std::pin::pin!(fut).poll(&mut std::task::Context::from_waker(&waker)) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a healthy path waited on Redis"),
    }
}

#[test]
fn async_closed_successes_and_open_rejections_resolve_at_once_and_touch_no_network() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PrivateServer::start();
    let breaker = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(Duration::from_secs(60))
        .shared(
            RedisState::connect(&server.url())
                .unwrap()
                .namespace(unique_namespace("hot-async"))
                .refresh_interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    assert!(within(Duration::from_secs(5), || script_runs(&server.url(), true) == 2).is_some());
    let before = script_runs(&server.url(), true);
    for _ in 0..10_000 {
        assert!(ready_now(breaker.call_async(|| async { Ok::<_, ()>(()) })).is_ok());
    }
    assert_eq!(
        script_runs(&server.url(), true),
        before,
        "a closed success reached Redis"
    );
    breaker.open();
    let opened = script_runs(&server.url(), true);
    for _ in 0..10_000 {
        let out = ready_now(breaker.call_async(|| async { Ok::<_, ()>(()) }));
        assert!(out.unwrap_err().is_rejected());
    }
    assert_eq!(
        script_runs(&server.url(), true),
        opened,
        "a rejection before the reset timeout reached Redis"
    );
}

#[test]
fn a_shared_breaker_is_send_and_sync_and_its_watcher_stops_on_drop() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    fn send_sync<T: Send + Sync>(_: &T) {}
    let server = PrivateServer::start();
    assert_eq!(watchers(), 0);
    let breakers: Vec<CircuitBreaker> = (0..3)
        .map(|_| {
            CircuitBreaker::builder()
                .shared(
                    RedisState::connect(&server.url())
                        .unwrap()
                        .namespace(unique_namespace("drop")),
                )
                .build()
                .unwrap()
        })
        .collect();
    send_sync(&breakers[0]);
    // A thread takes its name once it runs.
    assert!(
        within(Duration::from_secs(5), || watchers() == 1).is_some(),
        "one watcher for every breaker of the endpoint"
    );
    assert_eq!(watchers(), 1, "still one");
    drop(breakers);
    assert!(
        within(Duration::from_secs(1), || watchers() == 0).is_some(),
        "dropping the last breaker stopped the watcher"
    );
}

#[test]
fn half_open_rejections_with_every_slot_taken_touch_no_network() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PrivateServer::start();
    let ns = unique_namespace("half-open");
    let make = || {
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::from_millis(20))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(60))
            .shared(
                RedisState::connect(&server.url())
                    .unwrap()
                    .namespace(&ns)
                    .refresh_interval(Duration::from_secs(3600)),
            )
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    assert!(a.try_acquire().unwrap().failure().tripped());
    // b hears of the trip (else it would admit a closed-state call).
    assert!(within(Duration::from_secs(5), || b.state() == State::Open).is_some());
    // The reset timeout runs on the server's clock: wait it out.
    std::thread::sleep(Duration::from_millis(40));
    let probe = b.try_acquire().expect("b takes the one probe slot");
    assert!(probe.is_probe());
    // a learns of the half-open fleet with its slot taken by announcement.
    assert!(within(Duration::from_secs(5), || a.probes_in_flight() == 1).is_some());
    assert!(a.try_acquire().is_err(), "the mirror is applied at a's next call");
    let before = script_runs(&server.url(), true);
    for _ in 0..10_000 {
        assert_eq!(a.try_acquire().unwrap_err().state, State::HalfOpen);
    }
    assert_eq!(
        script_runs(&server.url(), true),
        before,
        "a half-open rejection with every slot taken reached Redis"
    );
    assert!(
        probe.success().transition().is_some(),
        "b's probe closes the fleet"
    );
}
