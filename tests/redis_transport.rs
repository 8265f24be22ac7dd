//! The fleet protocol through a transport implemented outside the crate: a
//! host's own client (`redis_support::HostClient`: the `redis` crate again,
//! driven by hand and counting what it carries; URL in BREAKERBOX_REDIS_URL).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{RedisState, Transport};
use breakerbox::{CircuitBreaker, State};
use redis_support::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[test]
fn a_transport_from_outside_the_crate_carries_the_fleet() {
    let host = HostClient::new(&url());
    let ns = unique_namespace("host");
    let make = |transport: Arc<dyn Transport>| {
        CircuitBreaker::builder()
            .fail_max(2)
            .shared(
                RedisState::with_transport(transport)
                    .namespace(&ns)
                    .notifications(false),
            )
            .build()
            .unwrap()
    };
    let a = make(host.clone());
    // The other process of the fleet uses the `redis` crate's transport.
    let b = CircuitBreaker::builder()
        .fail_max(2)
        .shared(RedisState::connect(&url()).unwrap().namespace(&ns))
        .build()
        .unwrap();
    let before = host.evals.load(Ordering::Relaxed);
    assert!(!a.try_acquire().unwrap().failure().tripped());
    assert!(
        b.try_acquire().unwrap().failure().tripped(),
        "both failures count at the fleet"
    );
    assert!(
        host.evals.load(Ordering::Relaxed) > before,
        "the failure went through the host's client"
    );
    let mut conn = client(&url());
    assert_eq!(
        stored_state(&mut conn, &ns).get("s").map(String::as_str),
        Some("1")
    );
    assert_eq!(b.state(), State::Open);
}
