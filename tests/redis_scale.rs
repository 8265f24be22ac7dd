//! One connection set per process: a thousand shared breakers on one Redis
//! endpoint share one watcher thread, one subscription connection (one
//! channel per namespace) and a small pool of command connections; they
//! build and drop fast, and a drop never waits on the network. Counted by
//! the kernel (/proc/self/task) and by the server (CLIENT LIST, PUBSUB), on
//! a private redis-server (BREAKERBOX_REDIS_SERVER). One test at a time:
//! they count what the whole process shares.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::CircuitBreaker;
use redis_support::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn watchers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "breakerbox-redi")
        })
        .count()
}

/// Client connections the server holds, less the one asking.
fn clients(conn: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    list.lines().count() - 1
}

fn channels(conn: &mut redis::Connection) -> usize {
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("breakerbox:*")
        .query(conn)
        .unwrap();
    channels.len()
}

fn shared(url: &str, ns: &str) -> RedisState {
    RedisState::connect(url).unwrap().namespace(ns)
}

const BREAKERS: usize = 1000;
/// The bar the fleet issue sets for building, and for dropping, them all.
const BAR: Duration = Duration::from_secs(1);

#[test]
fn a_thousand_shared_breakers_share_one_watcher_and_four_connections() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PrivateServer::start();
    let url = server.url();
    let mut admin = client(&url);
    let prefix = unique_namespace("scale");
    let base_threads = threads();

    let start = Instant::now();
    let breakers: Vec<CircuitBreaker> = (0..BREAKERS)
        .map(|i| {
            CircuitBreaker::builder()
                .name(format!("dep-{i}"))
                .shared(shared(&url, &format!("{prefix}-{i}")))
                .build()
                .unwrap()
        })
        .collect();
    let built = start.elapsed();
    eprintln!("built {BREAKERS} shared breakers in {built:?}");
    assert!(built < BAR, "building {BREAKERS} took {built:?}, over {BAR:?}");

    assert!(
        within(Duration::from_secs(10), || channels(&mut admin) == BREAKERS).is_some(),
        "one channel per namespace, all subscribed"
    );
    let total = threads();
    eprintln!("threads: {base_threads} before, {total} with {BREAKERS} breakers");
    assert_eq!(watchers(), 1, "one watcher thread for the endpoint");
    assert!(
        total - base_threads <= 1,
        "{total} threads, {base_threads} before"
    );
    assert!(total <= 4, "{total} threads in the process");
    // A burst of failures from a few threads at once uses the pool too.
    std::thread::scope(|s| {
        for chunk in breakers.chunks(BREAKERS / 4) {
            s.spawn(move || {
                for b in chunk.iter().take(20) {
                    let _ = b.try_acquire().unwrap().failure();
                }
            });
        }
    });
    let connections = clients(&mut admin);
    eprintln!("client connections: {connections}");
    assert!(
        connections <= 4,
        "{connections} client connections for one endpoint"
    );

    // Dropping one breaker unsubscribes its channel.
    let mut breakers = breakers;
    drop(breakers.pop());
    assert!(
        within(Duration::from_secs(5), || channels(&mut admin) == BREAKERS - 1).is_some(),
        "the dropped breaker's channel was unsubscribed"
    );

    let start = Instant::now();
    drop(breakers);
    let dropped = start.elapsed();
    eprintln!("dropped {} shared breakers in {dropped:?}", BREAKERS - 1);
    assert!(dropped < BAR, "dropping took {dropped:?}, over {BAR:?}");
    assert!(
        within(Duration::from_secs(1), || watchers() == 0).is_some(),
        "the watcher stopped after the last drop"
    );
    assert!(
        within(Duration::from_secs(1), || clients(&mut admin) == 0).is_some(),
        "every connection closed"
    );
}

#[test]
fn a_drop_returns_at_once_while_redis_answers_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PrivateServer::start();
    let url = server.url();
    let make = |i: usize| {
        CircuitBreaker::builder()
            .shared(
                shared(&url, &unique_namespace(&format!("stuck-{i}")))
                    .command_timeout(Duration::from_millis(50))
                    .connect_timeout(Duration::from_secs(2))
                    .max_backoff(Duration::from_secs(10)),
            )
            .build()
            .unwrap()
    };
    let first = make(0);
    assert!(within(Duration::from_secs(5), || watchers() == 1).is_some());
    // Paused: connections are accepted by the kernel and never answered, so
    // the watcher is stuck in a read for up to its connect timeout (2 s),
    // then in a backoff of up to 10 s.
    server.pause();
    let b = make(1);
    let mut worst = Duration::ZERO;
    for b in [b, first] {
        let start = Instant::now();
        drop(b);
        worst = worst.max(start.elapsed());
    }
    server.resume();
    eprintln!("slowest drop while Redis answered nothing: {worst:?}");
    // A drop takes a lock held only for list updates: microseconds. The
    // bound is generous for a loaded 2-core machine.
    assert!(worst < Duration::from_millis(50), "a drop took {worst:?}");
}
