//! The healthy path makes no round trip: counted by the server itself, on a
//! private redis-server (BREAKERBOX_REDIS_SERVER) that nothing else talks to.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, State};
use redis_support::*;
use std::time::Duration;

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
