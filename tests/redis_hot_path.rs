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

/// Scripts the server ran to completion (calls less failed calls, such as
/// a NOSCRIPT answer), from INFO commandstats.
fn scripts_run(server: &PrivateServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut client(&server.url()))
        .unwrap();
    let field = |line: &str, name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |v| v.parse().unwrap())
    };
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .map(|line| field(line, "calls") - field(line, "failed_calls"))
        .sum()
}

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
    assert!(within(Duration::from_secs(5), || scripts_run(&server) == 2).is_some());
    let before = scripts_run(&server);
    for _ in 0..10_000 {
        let _ = breaker.try_acquire().unwrap().success();
        let _ = breaker.call(|| Ok::<_, ()>(()));
    }
    assert_eq!(scripts_run(&server), before, "a closed success reached Redis");

    // A failure does reach it, once, and trips the fleet.
    assert!(breaker.try_acquire().unwrap().failure().tripped());
    assert_eq!(scripts_run(&server), before + 1);
    assert_eq!(breaker.state(), State::Open);
    for _ in 0..10_000 {
        assert!(breaker.try_acquire().is_err());
    }
    assert_eq!(
        scripts_run(&server),
        before + 1,
        "a rejection before the reset timeout reached Redis"
    );
}

/// Threads of this process named like the watcher ("breakerbox-redis",
/// cut to the kernel's 15 characters).
fn watchers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "breakerbox-redi")
        })
        .count()
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
