//! Announcements reach the other processes promptly, not only by the
//! periodic refresh: after the watcher has waited through idle ticks (each
//! a read that timed out), a change still arrives well within one refresh
//! interval. Two endpoints spelled differently are two connection sets, so
//! the two breakers talk to each other as two processes would. Runs a
//! private redis-server (BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::Recorded;
use redis_support::*;
use std::sync::Arc;
use std::time::Duration;

/// Far beyond an announcement's round trip (about a millisecond here), far
/// below the 10 s refresh interval the breakers use: only pub/sub is fast
/// enough.
const PROMPT: Duration = Duration::from_millis(500);

#[test]
fn an_announcement_after_idle_ticks_arrives_without_waiting_for_a_refresh() {
    let server = PrivateServer::start();
    let ns = unique_namespace("pubsub");
    let shared = |url: String| {
        RedisState::connect(&url)
            .unwrap()
            .namespace(&ns)
            .refresh_interval(Duration::from_secs(10))
    };
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = fleet_breaker(shared(server.url()), &seen_a);
    let b = fleet_breaker(shared(format!("{}0", server.url())), &seen_b);
    for round in 1..=3 {
        // Several of the watcher's idle ticks (50 ms each) pass first.
        std::thread::sleep(Duration::from_millis(300));
        let recorded = a.try_acquire().unwrap().failure();
        let expected = if round < FAIL_MAX {
            Recorded::Counted
        } else {
            Recorded::Transitioned(TRIP)
        };
        assert_eq!(recorded, expected);
        let took = within(PROMPT, || {
            b.fail_counter() == round || b.state() == breakerbox::State::Open
        });
        assert!(
            took.is_some(),
            "round {round}: b did not hear of a's failure within {PROMPT:?}"
        );
    }
}
