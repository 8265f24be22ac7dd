//! A real partition: redis-server in a network namespace of the test's own
//! (veth pair, iproute2, root), and the namespace cut off by removing its
//! address, so packets go nowhere and a new connection waits for an answer
//! that never comes. Every call still returns within the command timeout,
//! connecting included; the process follows its policy; healed, it takes
//! the fleet's state again.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{RedisState, DEFAULT_COMMAND_TIMEOUT};
use breakerbox::{Recorded, State};
use redis_support::netns::Netns;
use redis_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn across_a_namespace_partition_every_call_is_bounded_connect_included() {
    let ns = Netns::create();
    // The host reaches it from 10.231.x.1, not loopback: protected mode
    // would refuse that; the address is private to this namespace.
    let server = PrivateServer::start_in(&ns.wrapper(), &ns.addr, &["--protected-mode", "no"]);
    let namespace = unique_namespace("netns");
    let seen = Arc::new(Seen::default());
    let a = fleet_breaker(
        RedisState::connect(&server.url())
            .unwrap()
            .namespace(&namespace)
            .max_backoff(Duration::from_millis(100)),
        &seen,
    );
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(
        seen.storage_error_count(),
        0,
        "reached across the veth pair: {:?}",
        seen.storage_errors.lock().unwrap()
    );

    ns.partition();
    // Local policy: the fleet's failure is in the mirror; two more trip it.
    // The first meets the silence; the watcher then reconnects in the
    // background, each attempt waiting out its connect timeout.
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(800) {
        timed_within(&format!("call {calls}"), DEFAULT_COMMAND_TIMEOUT, || {
            let _ = a.try_acquire().map(|p| p.failure());
        });
        calls += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.state(), State::Open, "tripped locally");
    let errors = seen.storage_errors.lock().unwrap().clone();
    assert!(
        errors.iter().any(|e| e.contains("timed out")),
        "silence, not a refusal: {errors:?}"
    );

    ns.heal();
    // The fleet is closed with one failure: the mirror takes that again.
    let back = within(Duration::from_secs(10), || {
        a.state() == State::Closed && a.fail_counter() == 1
    });
    assert!(back.is_some(), "healed, the mirror takes the fleet's state");
    let stored = stored_state(&mut client(&server.url()), &namespace);
    assert_eq!(
        (stored["s"].as_str(), stored["f"].as_str()),
        ("0", "1"),
        "the fleet counted none of the cut-off calls"
    );
}
