//! Redis Cluster through `RedisState::connect_cluster` (the `redis-cluster`
//! feature), on a real local cluster of three masters with one replica each
//! (BREAKERBOX_REDIS_SERVER, redis-cli). One test, in phases, so the cluster
//! starts once: the namespace's keys stay on one slot; the fleet guarantees
//! hold; a resharding that moves the slot is followed (`ASK` while the key
//! has left, `MOVED` once the slot is handed over); a master killed and its
//! replica promoted is survived, nothing counted twice; the guarantees hold
//! after each.
#![cfg(feature = "redis-cluster")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Recorded, State};
use redis_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call that meets MOVED renews the slot map (a connection to a node,
/// `CLUSTER SLOTS`, a connection to the new owner) before it runs the
/// script: room for that on a loaded 2-core machine.
const CLUSTER_TIMEOUT: Duration = Duration::from_millis(500);

fn shared(cluster: &Cluster, ns: &str) -> RedisState {
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisState::connect_cluster(&nodes)
        .unwrap()
        .namespace(ns)
        .command_timeout(CLUSTER_TIMEOUT)
        .connect_timeout(CLUSTER_TIMEOUT)
        .max_backoff(Duration::from_millis(200))
}

fn command_count(conn: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// How many `MOVED` replies a node has sent (`INFO errorstats`).
fn moved_replies(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("errorstats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("errorstat_MOVED:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn no_errors(seen: &[&Arc<Seen>]) {
    for s in seen {
        assert_eq!(
            s.storage_error_count(),
            0,
            "{:?}",
            s.storage_errors.lock().unwrap()
        );
    }
}

/// Waits (bounded) until the fleet's probe after the reset timeout has
/// closed it again, so that the next phase starts closed.
fn close_via_probe(a: &CircuitBreaker, b: &CircuitBreaker) {
    let probe = first_probe(a);
    assert!(b.try_acquire().is_err(), "one probe fleet-wide");
    assert_eq!(probe.success(), Recorded::Transitioned(CLOSE));
    assert!(within(Duration::from_secs(2), || b.state() == State::Closed).is_some());
}

#[test]
fn the_fleet_follows_a_resharding_and_survives_a_master_failover() {
    let mut cluster = Cluster::start(3, 1);
    let ns = unique_namespace("cluster");
    let key = format!("breakerbox:{{{ns}}}:state");
    let channel = format!("breakerbox:{{{ns}}}:events");
    let slot = {
        let mut any = cluster.admin(cluster.nodes[0].port);
        let slot = key_slot(&mut any, &key);
        assert_eq!(key_slot(&mut any, &channel), slot, "the namespace is one slot");
        slot
    };
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = fleet_breaker(shared(&cluster, &ns), &seen_a);
    let b = fleet_breaker(shared(&cluster, &ns), &seen_b);

    // Before: the guarantees, with the key on its slot's master alone.
    assert_fleet_guarantees(&a, &b);
    let source = cluster.owner(slot);
    for node in cluster.topology().iter().filter(|n| n.master) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("breakerbox:{{{ns}}}*"))
            .query(&mut cluster.admin(node.port))
            .unwrap();
        let expected = if node.id == source.id {
            vec![key.clone()]
        } else {
            vec![]
        };
        assert_eq!(keys, expected, "node {}", node.port);
    }

    // Resharding: the slot migrates to another master. Once the key has
    // left, its old owner answers ASK.
    let target = cluster
        .topology()
        .into_iter()
        .find(|n| n.master && n.id != source.id)
        .unwrap();
    let (mut from, mut to) = (cluster.admin(source.port), cluster.admin(target.port));
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    let setslot = |c: &mut redis::Connection, how: &str, id: &str| {
        let _: String = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .query(c)
            .unwrap();
    };
    setslot(&mut to, "IMPORTING", &source.id);
    setslot(&mut from, "MIGRATING", &target.id);
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(target.port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&key)
        .query(&mut from)
        .unwrap();
    let asking = command_count(&mut to, "asking");
    assert_eq!(
        a.try_acquire().unwrap().failure(),
        Recorded::Transitioned(TRIP),
        "the third failure trips, on the importing node"
    );
    assert!(command_count(&mut to, "asking") > asking, "ASK was followed");
    assert!(within(Duration::from_secs(2), || b.state() == State::Open).is_some());

    // The slot is handed over: the old owner now answers MOVED.
    for node in cluster.topology().iter().filter(|n| n.master) {
        setslot(&mut cluster.admin(node.port), "NODE", &target.id);
    }
    cluster.wait_until_ok();
    let moved = moved_replies(&mut from);
    close_via_probe(&a, &b);
    assert!(moved_replies(&mut from) > moved, "MOVED was followed");
    assert_fleet_guarantees(&a, &b);
    assert_eq!(cluster.owner(slot).id, target.id, "the slot moved");
    no_errors(&[&seen_a, &seen_b]);

    // Failover: the slot's master dies, its replica is promoted.
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    let replica = cluster
        .topology()
        .into_iter()
        .find(|n| n.master_id.as_deref() == Some(target.id.as_str()))
        .expect("the target master has a replica");
    // A write after the failures, on their slot: once the replica has it,
    // it has them too.
    let _: i64 = redis::cmd("INCR")
        .arg(format!("breakerbox:{{{ns}}}:marker"))
        .query(&mut to)
        .unwrap();
    let replicated: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut to).unwrap();
    assert_eq!(replicated, 1, "the replica has the failures");
    drop(to);
    cluster.server_mut(target.port).kill();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        timed_within("a call", CLUSTER_TIMEOUT, || {
            let _ = b.try_acquire().map(|p| p.ignore());
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    let promoted = within(Duration::from_secs(20), || {
        cluster.topology().iter().any(|n| n.id == replica.id && n.master)
    });
    assert!(
        promoted.is_some(),
        "the replica was promoted: {:?}",
        cluster.topology()
    );
    cluster.wait_until_ok();
    // a and b met the dead master and decide locally (their policy) until
    // their watcher's next sync, at most max_backoff (200 ms) away: let it
    // come, with room for scheduling.
    std::thread::sleep(Duration::from_millis(600));

    // A breaker that joins now reads the failures from the promoted replica;
    // the next failure anywhere trips, once.
    let seen_c = Arc::new(Seen::default());
    let c = fleet_breaker(shared(&cluster, &ns), &seen_c);
    assert_eq!(
        (c.state(), c.fail_counter()),
        (State::Closed, 2),
        "the count survived"
    );
    assert_eq!(c.try_acquire().unwrap().failure(), Recorded::Transitioned(TRIP));
    for breaker in [&a, &b] {
        assert!(
            within(Duration::from_secs(5), || breaker.state() == State::Open).is_some(),
            "a and b follow once their watchers reconnect"
        );
    }
    let probe = first_probe(&c);
    let (ea, eb) = (a.try_acquire().is_err(), b.try_acquire().is_err());
    assert!(
        ea && eb,
        "one probe fleet-wide {ea} {eb} {:?} {:?}",
        seen_a.storage_errors.lock().unwrap(),
        seen_b.storage_errors.lock().unwrap()
    );
    assert_eq!(probe.success(), Recorded::Transitioned(CLOSE));
    assert!(within(Duration::from_secs(2), || a.state() == State::Closed
        && b.state() == State::Closed)
    .is_some());
    assert_fleet_guarantees(&a, &b);
    assert_fleet_guarantees(&c, &a);
    no_errors(&[&seen_c]);
}
