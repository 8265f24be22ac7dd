//! A failover to a replica: a master and its replica (private
//! redis-servers), the breakers reaching them through a proxy that stands
//! for the address clients use. The replica is promoted (`REPLICAOF NO
//! ONE`), the old master demoted under it, and the proxy re-pointed (its
//! connections drop, as a moving virtual IP's do).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState, DEFAULT_COMMAND_TIMEOUT};
use breakerbox::{CircuitBreaker, Recorded, State};
use redis_support::proxy::Proxy;
use redis_support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn addr(server: &PrivateServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port))
}

/// A master whose replicas sync at once (not after the default 5 s).
fn master() -> PrivateServer {
    PrivateServer::start_with(&["--repl-diskless-sync-delay", "0"])
}

fn replica_of(master: &PrivateServer) -> PrivateServer {
    let replica = PrivateServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let synced = within(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut client(&replica.url()))
            .unwrap_or_default();
        info.contains("master_link_status:up")
    });
    assert!(synced.is_some(), "the replica synced");
    replica
}

/// Waits until the master's writes so far are on one replica.
fn replicated(master: &PrivateServer) {
    let mut conn = client(&master.url());
    let _: i64 = redis::cmd("INCR")
        .arg("failover-marker")
        .query(&mut conn)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut conn).unwrap();
    assert_eq!(acked, 1, "the replica has the master's writes");
}

fn replicaof(server: &PrivateServer, master: Option<&PrivateServer>) {
    let mut c = redis::cmd("REPLICAOF");
    match master {
        Some(m) => c.arg("127.0.0.1").arg(m.port),
        None => c.arg("NO").arg("ONE"),
    };
    let _: String = c.query(&mut client(&server.url())).unwrap();
}

/// A master, its synced replica, and the address clients use (a proxy
/// to the master).
struct Pair {
    master: PrivateServer,
    replica: PrivateServer,
    proxy: Proxy,
}

impl Pair {
    fn start(seed: u64) -> Pair {
        let master = master();
        let replica = replica_of(&master);
        let proxy = Proxy::start(addr(&master), seed);
        Pair {
            master,
            replica,
            proxy,
        }
    }
}

/// Promotes the replica and demotes the old master under it.
fn fail_over(master: &PrivateServer, replica: &PrivateServer) {
    replicaof(replica, None);
    replicaof(master, Some(replica));
}

fn errorstat(server: &PrivateServer, error: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut client(&server.url()))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("errorstat_{error}:count=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    timed_within(what, DEFAULT_COMMAND_TIMEOUT, call)
}

fn shared(url: &str, ns: &str) -> RedisState {
    RedisState::connect(url)
        .unwrap()
        .namespace(ns)
        .max_backoff(Duration::from_millis(200))
}

#[test]
fn after_a_failover_to_the_replica_calls_flow_and_nothing_counts_twice() {
    let Pair {
        master,
        replica,
        proxy,
    } = Pair::start(7);
    let ns = unique_namespace("failover");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    // Two spellings of the address: two processes' connection sets.
    let policy = FaultPolicy::FailClosed;
    let a = fleet_breaker(shared(&proxy.url(), &ns).policy(policy), &seen_a);
    let b = fleet_breaker(shared(&format!("{}0", proxy.url()), &ns).policy(policy), &seen_b);
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    replicated(&master);

    fail_over(&master, &replica);
    proxy.repoint(addr(&replica));

    // Calls keep flowing per policy, each within the timeout: a breaker
    // that meets the dropped connection rejects (fail-closed) until its
    // watcher has reconnected, then asks the new master. The failure count
    // moved with the data, so exactly one more failure trips the fleet.
    let (mut counted, mut trips) = (0, 0);
    let tripped = within(Duration::from_secs(5), || {
        if let Ok(permit) = timed("a call", || a.try_acquire()) {
            match timed("a failure", || permit.failure()) {
                Recorded::Counted => counted += 1,
                r if r.tripped() => trips += 1,
                _ => {}
            }
        }
        stored_state(&mut client(&replica.url()), &ns)["s"] == "1"
    });
    assert!(tripped.is_some(), "the fleet trips on the new master");
    assert_eq!(
        (counted, trips),
        (0, 1),
        "the third failure the fleet counted tripped it, once"
    );
    assert!(within(Duration::from_secs(2), || b.state() == State::Open).is_some());
    let probe = first_probe(&b);
    assert!(a.try_acquire().is_err(), "one probe fleet-wide");
    assert_eq!(probe.success(), Recorded::Transitioned(CLOSE));
    assert_fleet_guarantees(&a, &b);
    assert!(
        seen_a.storage_error_count() + seen_b.storage_error_count() >= 1,
        "the failover was met"
    );
}

#[test]
fn a_process_still_on_the_demoted_master_meets_readonly_without_a_reconnect_storm() {
    let Pair {
        master,
        replica,
        proxy,
    } = Pair::start(8);
    let ns = unique_namespace("readonly");
    let seen = Arc::new(Seen::default());
    let a = CircuitBreaker::builder()
        .fail_max(10_000)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(shared(&proxy.url(), &ns).policy(FaultPolicy::FailOpen))
        .build()
        .unwrap();
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    replicated(&master);
    // The failover, but this process is not re-pointed: its reads work,
    // its writes answer READONLY.
    fail_over(&master, &replica);
    let (errors_before, connections_before) = (errorstat(&master, "READONLY"), proxy.accepted());
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_secs(1) {
        let _ = timed("a failure", || a.try_acquire().unwrap().failure());
        calls += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let readonly = errorstat(&master, "READONLY") - errors_before;
    let reconnects = proxy.accepted() - connections_before;
    // Each fall doubles the wait before the next try (10 ms up to the
    // 200 ms max_backoff): about a dozen in a second, not one per call.
    assert!(readonly >= 1, "the demoted master refused a write");
    assert!(
        readonly <= 20 && reconnects <= 20,
        "{calls} calls met {readonly} READONLY replies and made {reconnects} connections"
    );
}
