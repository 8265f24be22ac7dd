//! The fleet through Redis Sentinel: a master, its replica and three
//! sentinels (private redis-servers, `--sentinel` for these), the breakers
//! reaching the master through `RedisState::connect_sentinel`.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState, SentinelMaster, StorageErrorKind, DEFAULT_COMMAND_TIMEOUT};
use breakerbox::{CircuitBreaker, ConfigError, Recorded, State};
use redis_support::*;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn shared(sentinels: &[String], ns: &str) -> RedisState {
    let urls: Vec<&str> = sentinels.iter().map(String::as_str).collect();
    RedisState::connect_sentinel(&urls, "m")
        .unwrap()
        .namespace(ns)
        .max_backoff(Duration::from_millis(200))
}

/// The same sentinels listed the other way round: another process's
/// connection set.
fn reversed(urls: &[String]) -> Vec<String> {
    urls.iter().rev().cloned().collect()
}

fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    timed_within(what, DEFAULT_COMMAND_TIMEOUT, call)
}

/// Waits until the master's writes so far are on the replica.
fn replicated(set: &SentinelSet) {
    let mut conn = client(&set.data_url(&set.master));
    let _: i64 = redis::cmd("INCR")
        .arg("failover-marker")
        .query(&mut conn)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut conn).unwrap();
    assert_eq!(acked, 1, "the replica has the master's writes");
}

#[test]
fn two_breakers_through_the_sentinels_are_one_breaker() {
    let set = SentinelSet::start();
    let ns = unique_namespace("sentinel");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = fleet_breaker(shared(&set.urls(), &ns), &seen_a);
    let b = fleet_breaker(shared(&reversed(&set.urls()), &ns), &seen_b);
    assert_fleet_guarantees(&a, &b);
    assert!(
        !stored_state(&mut client(&set.master.url()), &ns).is_empty(),
        "the state lives on the master the sentinels name"
    );
    assert_eq!(seen_a.storage_error_count() + seen_b.storage_error_count(), 0);
}

/// Two failures counted on the master, then `fail_over` and the calls
/// around it: a breaker of another namespace keeps calling throughout
/// (fail-open: every call admitted, none waiting past the timeout); once
/// the replica is the master, exactly one more failure trips the fleet
/// (the count moved with the data and nothing counted twice), and one
/// probe is admitted fleet-wide.
fn follow_failover(fail_over: impl FnOnce(&mut SentinelSet), limit: Duration) {
    let mut set = SentinelSet::start();
    let ns = unique_namespace("sentinel-failover");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let policy = FaultPolicy::FailClosed;
    let a = fleet_breaker(shared(&set.urls(), &ns).policy(policy), &seen_a);
    let b = fleet_breaker(shared(&reversed(&set.urls()), &ns).policy(policy), &seen_b);
    let traffic_seen = Arc::new(Seen::default());
    let traffic = CircuitBreaker::builder()
        .fail_max(1_000_000)
        .listener(Recorder(Arc::clone(&traffic_seen)))
        .shared(shared(&set.urls(), &unique_namespace("sentinel-traffic")).policy(FaultPolicy::FailOpen))
        .build()
        .unwrap();
    assert_eq!(a.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    replicated(&set);

    fail_over(&mut set);
    // Until the failover is over (the replica named and a master, the old
    // master demoted if it runs) and the calls have met it.
    let over = |set: &SentinelSet| {
        set.named_master() == Some(set.replica.port)
            && set.role(&set.replica) == "master"
            && (!set.master.is_running() || set.role(&set.master) == "slave")
    };
    let mut traffic_calls = 0;
    let done = within(limit, || {
        let permit = timed("a call during the failover", || traffic.try_acquire());
        let permit = permit.expect("fail-open: admitted, whatever the store");
        timed("a failure during the failover", || permit.failure());
        traffic_calls += 1;
        traffic_seen.storage_error_count() >= 1 && over(&set)
    });
    assert!(
        done.is_some(),
        "within {limit:?}: the failover is over and was met by {traffic_calls} calls made during it ({} faults seen)",
        traffic_seen.storage_error_count()
    );

    let (mut counted, mut trips) = (0, 0);
    let new_master = set.data_url(&set.replica);
    let tripped = within(Duration::from_secs(5), || {
        if let Ok(permit) = timed("a call", || a.try_acquire()) {
            match timed("a failure", || permit.failure()) {
                Recorded::Counted => counted += 1,
                r if r.tripped() => trips += 1,
                _ => {}
            }
        }
        stored_state(&mut client(&new_master), &ns)
            .get("s")
            .map(String::as_str)
            == Some("1")
    });
    assert!(tripped.is_some(), "the fleet trips on the new master");
    assert_eq!(
        (counted, trips),
        (0, 1),
        "the third failure the fleet counted tripped it, once"
    );
    assert!(within(Duration::from_secs(2), || b.state() == State::Open).is_some());
    let probe = first_probe(&b);
    for _ in 0..20 {
        assert!(a.try_acquire().is_err(), "one probe fleet-wide");
    }
    assert_eq!(
        stored_state(&mut client(&new_master), &ns)
            .get("i")
            .map(String::as_str),
        Some("1"),
        "one probe in flight at the fleet"
    );
    assert_eq!(probe.success(), Recorded::Transitioned(CLOSE));
    assert_fleet_guarantees(&a, &b);
}

#[test]
fn a_failover_the_sentinels_are_asked_for_is_followed() {
    follow_failover(
        |set| {
            let _: String = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("m")
                .query(&mut client(&set.sentinels[0].url()))
                .expect("SENTINEL FAILOVER");
        },
        Duration::from_secs(15),
    );
}

#[test]
fn a_failover_after_the_master_is_killed_is_followed() {
    // Down after 500 ms, then an election; one that fails is tried again
    // after twice the failover timeout.
    follow_failover(|set| set.master.kill(), Duration::from_secs(20));
}

/// A sentinel that holds connections and answers nothing, and an address
/// where none listens, before the ones that answer.
#[test]
fn an_unreachable_sentinel_is_skipped_within_the_timeout() {
    let set = SentinelSet::start();
    let ns = unique_namespace("sentinel-skip");
    let nobody = format!("redis://127.0.0.1:{}/", free_port());
    let mut urls = vec![set.sentinels[0].url(), nobody];
    urls.extend(set.urls()[1..].iter().cloned());
    set.sentinels[0].pause();
    let seen = Arc::new(Seen::default());
    let a = timed("building with the first sentinel paused", || {
        CircuitBreaker::builder()
            .fail_max(FAIL_MAX)
            .listener(Recorder(Arc::clone(&seen)))
            .shared(shared(&urls, &ns).require_reachable())
            .build()
            .expect("the other sentinels name the master in time")
    });
    assert_eq!(
        timed("a failure", || a.try_acquire().unwrap().failure()),
        Recorded::Counted
    );
    assert_eq!(
        stored_state(&mut client(&set.master.url()), &ns)
            .get("f")
            .map(String::as_str),
        Some("1"),
        "counted on the master"
    );
    assert_eq!(
        seen.storage_error_count(),
        0,
        "{:?}",
        seen.storage_errors.lock().unwrap()
    );
    let b = fleet_breaker(shared(&reversed(&urls), &ns), &Arc::new(Seen::default()));
    assert_eq!(b.fail_counter(), 1, "b syncs through the sentinels that answer");
    set.sentinels[0].resume();
}

/// A sentinel of the test's own that names `port` as the master, whatever
/// it is asked: a sentinel not yet told of a failover.
fn stale_sentinel(port: u16) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut line = String::new();
                // One command: `*N`, then N `$len` lines each with its data.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let args: usize = line.trim().trim_start_matches('*').parse().unwrap_or(0);
                    let mut words = Vec::new();
                    for _ in 0..args * 2 {
                        line.clear();
                        let _ = reader.read_line(&mut line);
                        words.push(line.trim().to_ascii_uppercase());
                    }
                    let reply = if words.iter().any(|w| w == "GET-MASTER-ADDR-BY-NAME") {
                        let port = port.to_string();
                        format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n", port.len())
                    } else {
                        "+OK\r\n".to_owned()
                    };
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    url
}

/// A sentinel that names the replica is passed over: `ROLE` says it is
/// not the master.
#[test]
fn a_replica_named_as_master_is_not_used() {
    let set = SentinelSet::start();
    let ns = unique_namespace("sentinel-stale");
    let mut urls = vec![stale_sentinel(set.replica.port)];
    urls.extend(set.urls());
    let seen = Arc::new(Seen::default());
    let a = CircuitBreaker::builder()
        .fail_max(FAIL_MAX)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(shared(&urls, &ns).require_reachable())
        .build()
        .expect("the next sentinel names the master");
    assert_eq!(
        timed("a failure", || a.try_acquire().unwrap().failure()),
        Recorded::Counted
    );
    assert_eq!(
        stored_state(&mut client(&set.master.url()), &ns)
            .get("f")
            .map(String::as_str),
        Some("1"),
        "counted on the master"
    );
    assert_eq!(
        seen.storage_error_count(),
        0,
        "{:?}",
        seen.storage_errors.lock().unwrap()
    );
}

#[test]
fn no_sentinel_reachable_is_a_storage_error_within_the_timeout() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = vec![
        format!("redis://127.0.0.1:{}/", silent.local_addr().unwrap().port()),
        format!("redis://127.0.0.1:{}/", free_port()),
    ];
    let ns = unique_namespace("sentinel-none");
    let start = Instant::now();
    let built = CircuitBreaker::builder()
        .shared(shared(&urls, &ns).require_reachable())
        .build();
    let took = start.elapsed();
    match built {
        Err(ConfigError::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {:?}", other.map(|_| "a breaker")),
    }
    assert!(
        took <= DEFAULT_COMMAND_TIMEOUT + SCHEDULING_ALLOWANCE,
        "gave up after {took:?}"
    );

    // Not required: the breaker starts degraded, reports the fault, and
    // every call returns within the timeout.
    let seen = Arc::new(Seen::default());
    let b = timed("building", || {
        CircuitBreaker::builder()
            .fail_max(FAIL_MAX)
            .listener(Recorder(Arc::clone(&seen)))
            .shared(shared(&urls, &ns))
            .build()
            .unwrap()
    });
    for _ in 0..5 {
        let _ = timed("a failure", || b.try_acquire().map(|p| p.failure()));
    }
    let errors = seen.storage_errors.lock().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no master \"m\" found through the sentinels")),
        "{errors:?}"
    );
    assert_eq!(b.state(), State::Open, "tripped locally (fault policy Local)");
}

#[test]
fn the_masters_password_is_given_apart_from_the_sentinels() {
    let set = SentinelSet::start_with(Some("s3cret"));
    let ns = unique_namespace("sentinel-auth");
    let urls: Vec<String> = set.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();

    // Without the master's password: a reported fault, never a hang.
    let seen = Arc::new(Seen::default());
    let refused = timed("building without the password", || {
        CircuitBreaker::builder()
            .listener(Recorder(Arc::clone(&seen)))
            .shared(RedisState::connect_sentinel(&urls, "m").unwrap().namespace(&*ns))
            .build()
            .unwrap()
    });
    let _ = timed("a failure", || refused.try_acquire().map(|p| p.failure()));
    assert!(
        seen.storage_error_count() >= 1,
        "the missing password is reported"
    );

    let with_password = |order: &[&str]| {
        RedisState::connect_sentinel_with(order, "m", SentinelMaster::new().password("s3cret"))
            .unwrap()
            .namespace(&*ns)
    };
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = fleet_breaker(with_password(&urls), &seen_a);
    let rev: Vec<&str> = urls.iter().rev().copied().collect();
    let b = fleet_breaker(with_password(&rev), &seen_b);
    assert_fleet_guarantees(&a, &b);
    assert_eq!(seen_a.storage_error_count() + seen_b.storage_error_count(), 0);
    assert_eq!(
        RedisState::connect_sentinel(&[], "m").unwrap_err().kind(),
        StorageErrorKind::InvalidUrl
    );
}

/// The ACL rules the README gives the fleet's user (`tests/redis_auth.rs`
/// checks that line), and what Sentinel adds to them.
const ACL_RULES: &str = "on resetkeys ~breakerbox:* resetchannels &breakerbox:* -@all +evalsha +script|load +time +hmget +hset +publish +subscribe +unsubscribe";
const SENTINEL_ACL_RULE: &str = "+role";

#[test]
fn an_acl_user_on_the_master_needs_role_beyond_the_fleets_line() {
    let set = SentinelSet::start();
    let mut admin = client(&set.master.url());
    for (user, extra) in [("breakerbox", Some(SENTINEL_ACL_RULE)), ("norole", None)] {
        let mut rules: Vec<&str> = ACL_RULES.split(' ').collect();
        rules.extend(extra);
        let _: String = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg(">fleet-secret")
            .arg(rules)
            .query(&mut admin)
            .expect("ACL SETUSER");
    }
    let urls = set.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let as_user = |user: &str, order: &[&str], ns: &str| {
        let master = SentinelMaster::new().username(user).password("fleet-secret");
        RedisState::connect_sentinel_with(order, "m", master)
            .unwrap()
            .namespace(ns)
    };

    let ns = unique_namespace("sentinel-acl");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = fleet_breaker(as_user("breakerbox", &urls, &ns), &seen_a);
    let rev: Vec<&str> = urls.iter().rev().copied().collect();
    let b = fleet_breaker(as_user("breakerbox", &rev, &ns), &seen_b);
    assert_fleet_guarantees(&a, &b);
    assert_eq!(
        seen_a.storage_error_count() + seen_b.storage_error_count(),
        0,
        "every command was allowed: {:?} {:?}",
        seen_a.storage_errors.lock().unwrap(),
        seen_b.storage_errors.lock().unwrap()
    );

    // Without +role the master cannot be told from a replica: refused.
    let built = CircuitBreaker::builder()
        .shared(as_user("norole", &urls, &unique_namespace("sentinel-norole")).require_reachable())
        .build();
    assert!(
        matches!(
            built,
            Err(ConfigError::Unreachable {
                kind: StorageErrorKind::Server
            })
        ),
        "{:?}",
        built.map(|_| "a breaker")
    );
}

#[test]
fn the_readme_documents_what_sentinel_adds_to_the_acl_line() {
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("ACL SETUSER breakerbox >PASSWORD {ACL_RULES}"))
            && readme.contains(&format!("with Sentinel, add `{SENTINEL_ACL_RULE}`")),
        "README.md must show the ACL line and what Sentinel adds"
    );
}
