//! A fleet-shared breaker's healthy path next to one Redis round trip.
//!
//! The closed-state success of a Redis-backed breaker reads its local mirror
//! and touches no network; the round trip (a PING on the same machine) is
//! what every call would pay if the state lived only in Redis. Needs a
//! server: `BREAKERBOX_REDIS_URL` (scripts/test-redis.sh starts one).

use breakerbox::redis::RedisState;
use breakerbox::CircuitBreaker;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn url() -> String {
    std::env::var("BREAKERBOX_REDIS_URL")
        .expect("BREAKERBOX_REDIS_URL is not set: run this bench with scripts/test-redis.sh")
}

fn closed_success_vs_round_trip(c: &mut Criterion) {
    let url = url();
    let mut g = c.benchmark_group("redis");

    let memory = CircuitBreaker::builder().build().unwrap();
    g.bench_function("closed_success/memory", |b| {
        b.iter(|| black_box(memory.try_acquire().map(|permit| permit.success())))
    });

    let namespace = format!("bench-{}", std::process::id());
    let shared = CircuitBreaker::builder()
        .shared(RedisState::connect(&url).unwrap().namespace(namespace))
        .build()
        .unwrap();
    g.bench_function("closed_success/redis_state", |b| {
        b.iter(|| black_box(shared.try_acquire().map(|permit| permit.success())))
    });

    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .expect("the bench's Redis answers");
    g.bench_function("round_trip/redis_ping", |b| {
        b.iter(|| black_box(redis::cmd("PING").query::<String>(&mut conn).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = closed_success_vs_round_trip
}
criterion_main!(benches);
