//! The fleet review's findings, each a test that failed before its fix
//! (URL in BREAKERBOX_REDIS_URL; private servers from BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{
    FaultPolicy, RedisState, Script, StorageError, StorageErrorKind, Subscriber, Transport,
};
use breakerbox::{CircuitBreaker, Listener, Recorded, State};
use redis_support::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

fn shared(ns: &str) -> RedisState {
    RedisState::connect(&url()).unwrap().namespace(ns)
}

/// Panics when told of a half-open transition.
struct PanicsOnHalfOpen;

impl Listener for PanicsOnHalfOpen {
    fn state_change(&self, _b: &CircuitBreaker, _from: State, to: State) {
        if to == State::HalfOpen {
            panic!("listener panics on half-open");
        }
    }
}

#[test]
fn a_listener_panicking_in_shared_acquire_leaks_no_fleet_probe_slot() {
    let ns = unique_namespace("panic-probe");
    let build = |listener: bool| {
        let b = CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(Duration::from_millis(20))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(60))
            .shared(shared(&ns));
        let b = if listener { b.listener(PanicsOnHalfOpen) } else { b };
        b.build().unwrap()
    };
    let a = build(true);
    let other = build(false);
    assert!(a.try_acquire().unwrap().failure().tripped());
    // The reset timeout runs on the server's clock: wait it out.
    std::thread::sleep(Duration::from_millis(40));
    let admitted = catch_unwind(AssertUnwindSafe(|| a.try_acquire().map(|p| p.into_ticket())));
    assert!(admitted.is_err(), "the listener's panic reaches the caller");
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "2", "the fleet half-opened");
    assert_eq!(
        stored["i"], "0",
        "the probe the caller never got was freed fleet-wide"
    );
    assert!(
        admits(&other),
        "another process can probe at once, not after the lease"
    );
}

/// Resolves a handle lazily from the breaker's own getters, as a metrics
/// listener may.
struct LazyHandle(Arc<OnceLock<State>>);

impl Listener for LazyHandle {
    fn state_change(&self, b: &CircuitBreaker, _from: State, _to: State) {
        self.0.get_or_init(|| b.state());
    }
}

#[test]
fn a_getter_runs_no_listener_so_a_lazy_handle_cannot_reenter_itself() {
    let ns = unique_namespace("reenter");
    let handle = Arc::new(OnceLock::new());
    let a = CircuitBreaker::builder()
        .fail_max(1)
        .listener(LazyHandle(Arc::clone(&handle)))
        .shared(shared(&ns))
        .build()
        .unwrap();
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .shared(shared(&ns))
        .build()
        .unwrap();
    assert!(b.try_acquire().unwrap().failure().tripped());
    // Let the announcement reach a's watcher (nothing of a's may look).
    std::thread::sleep(Duration::from_millis(300));
    let (done, finished) = mpsc::channel();
    let a = Arc::new(a);
    let reader = Arc::clone(&a);
    let handle2 = Arc::clone(&handle);
    std::thread::spawn(move || {
        let state = *handle2.get_or_init(|| reader.state());
        let _ = done.send(state);
    });
    let state = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the getter returned: no listener re-entered the handle being resolved");
    assert_eq!(state, State::Open, "the getter shows what the fleet announced");
}

/// Script runs the server was asked for (failed ones included).
fn script_calls(url: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut client(url))
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split([':', ',']).find_map(|kv| kv.strip_prefix("calls=")))
        .map(|v| v.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_server_that_refuses_writes_meets_backoff_not_a_reconnect_storm() {
    let primary = PrivateServer::start();
    let replica = PrivateServer::start();
    let ns = unique_namespace("readonly");
    // The namespace exists on the primary and has reached the replica.
    let seeded = CircuitBreaker::builder()
        .shared(RedisState::connect(&primary.url()).unwrap().namespace(&ns))
        .build()
        .unwrap();
    let _: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query(&mut client(&replica.url()))
        .unwrap();
    assert!(
        within(Duration::from_secs(10), || !stored_state(
            &mut client(&replica.url()),
            &ns
        )
        .is_empty())
        .is_some(),
        "the replica has the namespace"
    );
    drop(seeded);
    let seen = Arc::new(Seen::default());
    let b = CircuitBreaker::builder()
        .fail_max(1_000_000)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(
            RedisState::connect(&replica.url())
                .unwrap()
                .namespace(&ns)
                .max_backoff(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    assert!(b.storage_health().unwrap().reachable, "reads work on the replica");
    let before = script_calls(&replica.url());
    let start = std::time::Instant::now();
    let mut failures = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let _ = b.try_acquire().unwrap().failure();
        failures += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let runs = script_calls(&replica.url()) - before;
    eprintln!("{failures} failures against a read-only replica ran {runs} scripts");
    assert!(seen.storage_error_count() >= 1, "the READONLY fault was reported");
    // Backoff from 10 ms, doubling to 1 s: about 8 recoveries in 2 s, each
    // a sync and one refused write. Recovering at once costs a pair every
    // time the watcher looks (every 50 ms): about 80.
    assert!(
        runs < 30,
        "{runs} script runs for {failures} failures: a reconnect storm"
    );
}

/// A host's client that can be cut off from Redis (a partition of one
/// process) while the rest of the fleet still reaches it.
struct Severable {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    cut: AtomicBool,
}

impl Transport for Severable {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(StorageError::new(StorageErrorKind::Unreachable, &"cut off"));
        }
        let fault = |e: redis::RedisError| StorageError::new(StorageErrorKind::Unreachable, &e);
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.client.get_connection_with_timeout(timeout).map_err(fault)?);
        }
        let conn = guard.as_mut().unwrap();
        conn.set_read_timeout(Some(timeout)).map_err(fault)?;
        redis::cmd("EVAL")
            .arg(script.source())
            .arg(1)
            .arg(key)
            .arg(args)
            .query(conn)
            .map_err(fault)
    }

    fn subscriber(&self, _timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        Err(StorageError::new(StorageErrorKind::Unreachable, &"no pub/sub"))
    }

    fn endpoint(&self) -> String {
        "severable".into()
    }
}

#[test]
fn a_probe_ticket_issued_during_an_outage_never_counts_at_the_fleet() {
    let ns = unique_namespace("outage-ticket");
    let cut_off = Arc::new(Severable {
        client: redis::Client::open(url()).unwrap(),
        conn: Mutex::new(None),
        cut: AtomicBool::new(true),
    });
    let config = |b: breakerbox::Builder| {
        b.fail_max(1)
            .reset_timeout(Duration::from_millis(20))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(60))
    };
    // Cut off from the start: its first sync fails and it runs on its own.
    let a = config(CircuitBreaker::builder())
        .shared(
            RedisState::with_transport(cut_off.clone())
                .namespace(&ns)
                .policy(FaultPolicy::Local)
                .notifications(false)
                .refresh_interval(Duration::from_millis(10))
                .max_backoff(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let b = config(CircuitBreaker::builder())
        .shared(shared(&ns))
        .build()
        .unwrap();
    assert!(!a.storage_health().unwrap().reachable);
    // Both go through the same episodes: a on its own mirror, b at the
    // fleet. So a's local probe carries the very generation of b's.
    assert!(a.try_acquire().unwrap().failure().tripped());
    assert!(b.try_acquire().unwrap().failure().tripped());
    std::thread::sleep(Duration::from_millis(40));
    let local_probe = a.try_acquire().expect("a probes on its own").into_ticket();
    let fleet_probe = b.try_acquire().expect("b probes at the fleet").into_ticket();
    assert_eq!(
        local_probe.episode(),
        fleet_probe.episode(),
        "the generations met"
    );

    cut_off.cut.store(false, Ordering::SeqCst);
    assert!(
        within(Duration::from_secs(5), || a.storage_health().unwrap().reachable).is_some(),
        "a is back"
    );
    assert_eq!(
        a.record(local_probe, breakerbox::Outcome::Success),
        Ok(Recorded::Stale),
        "a ticket from the outage does not count at the fleet"
    );
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(
        (stored["s"].as_str(), stored["i"].as_str()),
        ("2", "1"),
        "b's probe still holds its slot"
    );
    assert!(
        b.record(fleet_probe, breakerbox::Outcome::Success)
            .unwrap()
            .transition()
            .is_some(),
        "b's probe closes the fleet"
    );
}
