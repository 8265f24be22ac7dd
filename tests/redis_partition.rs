//! Faults beyond kill and pause, through a fault-injecting TCP proxy
//! (`redis_support::proxy`) between one process's breaker and a private
//! redis-server, while another process reaches Redis directly. Two URLs
//! are two connection sets, so the two breakers behave as two processes.
//! This kernel has no netem qdisc; the proxy injects the faults instead.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState, DEFAULT_COMMAND_TIMEOUT};
use breakerbox::{CircuitBreaker, Outcome, Recorded, State};
use redis_support::proxy::{Fault, Proxy};
use redis_support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn addr(server: &PrivateServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port))
}

/// Two probes, two successes close: so that a mirror that took the fleet's
/// state shows it (two probes in flight) apart from a local one (one). The
/// probe lease is long, so no probe is reclaimed however slow the machine
/// (the default, one second, could pass on a loaded one).
fn breaker(url: &str, ns: &str, policy: FaultPolicy, timeout: Duration, seen: &Arc<Seen>) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(FAIL_MAX)
        .reset_timeout(RESET_TIMEOUT)
        .half_open_max_calls(2)
        .success_threshold(2)
        .probe_lease(Duration::from_secs(60))
        .listener(Recorder(Arc::clone(seen)))
        .shared(
            RedisState::connect(url)
                .unwrap()
                .namespace(ns)
                .policy(policy)
                .command_timeout(timeout)
                .connect_timeout(timeout)
                .max_backoff(Duration::from_millis(200)),
        )
        .build()
        .unwrap()
}

#[test]
fn a_cut_off_process_follows_its_policy_while_another_keeps_the_fleet_exact() {
    cut_off_then_heal(false);
}

#[test]
fn a_cut_off_processs_outage_tickets_never_count_at_the_fleet() {
    cut_off_then_heal(true);
}

/// a is cut off from Redis while b keeps the fleet; then the link heals.
/// With `record_outage_ticket`, a records the probe ticket it took locally
/// during the cut-off once it has the fleet's state again.
fn cut_off_then_heal(record_outage_ticket: bool) {
    let server = PrivateServer::start();
    let proxy = Proxy::start(addr(&server), 1);
    let ns = unique_namespace("cut-off");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let t = DEFAULT_COMMAND_TIMEOUT;
    let a = breaker(&proxy.url(), &ns, FaultPolicy::Local, t, &seen_a);
    let b = breaker(&server.url(), &ns, FaultPolicy::Local, t, &seen_b);
    assert!(admits(&a) && admits(&b));
    // Let a's watcher finish its first sync before the cut: a view read
    // before the cut but applied after it would put a's mirror back to the
    // fleet's pre-cut state (closed) while a decides locally.
    std::thread::sleep(Duration::from_millis(200));

    proxy.set(Fault::CutOff);
    // a: every call within the timeout (connecting included), decided by
    // its policy: it counts and trips on its own.
    for i in 0..FAIL_MAX {
        let recorded = timed_within("a failure", t, || a.try_acquire().unwrap().failure());
        assert_eq!(
            recorded.tripped(),
            i + 1 == FAIL_MAX,
            "local failure {i}: {recorded:?}"
        );
    }
    assert_eq!(a.state(), State::Open);
    assert!(seen_a.storage_error_count() >= 1, "the cut-off was reported");
    // b keeps the fleet: only its failures reached it.
    for i in 0..FAIL_MAX {
        let recorded = b.try_acquire().unwrap().failure();
        assert_eq!(
            recorded.tripped(),
            i + 1 == FAIL_MAX,
            "fleet failure {i}: {recorded:?}"
        );
    }
    let p1 = first_probe(&b);
    let p2 = b.try_acquire().expect("a second probe slot");
    assert!(p2.is_probe());
    assert_eq!(stored_state(&mut client(&server.url()), &ns)["i"], "2");

    // a half-opens on its own clock and takes a local probe ticket, whose
    // episode number the fleet has reached too.
    let mut local = None;
    let found = within(RESET_TIMEOUT * 20, || {
        local = timed_within("a call", t, || a.acquire_ticket().ok());
        local.is_some()
    });
    assert!(found.is_some(), "a admits a local probe after its reset timeout");
    let local = local.unwrap();
    assert!(
        local.is_probe(),
        "{local:?} {:?} {:?} {:?}",
        a.state(),
        seen_a.transitions(),
        seen_a.storage_errors.lock().unwrap()
    );
    assert_eq!(a.probes_in_flight(), 1, "a local probe");

    proxy.set(Fault::Pass);
    assert!(
        within(Duration::from_secs(5), || a.probes_in_flight() == 2).is_some(),
        "healed, a takes the fleet's state (b's two probes)"
    );
    // The watcher marks a up right after the sync that brought that view.
    std::thread::sleep(Duration::from_millis(100));
    if record_outage_ticket {
        let recorded = a.record(local, Outcome::Success).unwrap();
        let stored = stored_state(&mut client(&server.url()), &ns);
        assert_eq!(
            (stored["s"].as_str(), stored["i"].as_str(), stored["k"].as_str()),
            ("2", "2", "0"),
            "the outage ticket counted at the fleet ({recorded:?})"
        );
        assert_eq!(recorded, Recorded::Stale);
    }
    assert!(
        a.try_acquire().is_err() && b.try_acquire().is_err(),
        "every slot is b's"
    );
    assert_eq!(p1.success(), Recorded::Counted);
    assert_eq!(p2.success(), Recorded::Transitioned(CLOSE));
    assert!(within(Duration::from_secs(2), || a.state() == State::Closed).is_some());
}

#[test]
fn a_cut_off_fail_closed_process_rejects_within_the_timeout_and_recovers() {
    let server = PrivateServer::start();
    let proxy = Proxy::start(addr(&server), 2);
    let ns = unique_namespace("cut-off-closed");
    let seen = Arc::new(Seen::default());
    let t = DEFAULT_COMMAND_TIMEOUT;
    let a = breaker(&proxy.url(), &ns, FaultPolicy::FailClosed, t, &seen);
    assert!(admits(&a));
    proxy.set(Fault::CutOff);
    // The first call that needs Redis meets the cut-off; from then on every
    // call is rejected without waiting.
    let _ = timed_within("a failure", t, || a.try_acquire().unwrap().failure());
    for _ in 0..50 {
        timed_within("a rejection", Duration::ZERO, || {
            assert!(a.try_acquire().is_err())
        });
    }
    proxy.set(Fault::Pass);
    assert!(
        within(Duration::from_secs(5), || admits(&a)).is_some(),
        "healed, a takes the fleet's state (closed) again"
    );
}

#[test]
fn behind_50ms_of_latency_calls_give_up_at_the_timeout_or_keep_the_guarantees() {
    let server = PrivateServer::start();
    let proxy = Proxy::start(addr(&server), 3);
    // 50 ms each way: a round trip costs 100 ms, the default timeout.
    proxy.set(Fault::Latency(Duration::from_millis(50)));
    let ns = unique_namespace("latency");

    // With the default timeout no exchange fits: each call gives up in time
    // and the breaker decides locally.
    let seen = Arc::new(Seen::default());
    let t = DEFAULT_COMMAND_TIMEOUT;
    let slow = breaker(
        &proxy.url(),
        &unique_namespace("latency-default"),
        FaultPolicy::Local,
        t,
        &seen,
    );
    for _ in 0..FAIL_MAX {
        let _ = timed_within("a failure", t, || slow.try_acquire().unwrap().failure());
    }
    assert_eq!(slow.state(), State::Open, "decided locally");
    assert!(seen
        .storage_errors
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.contains("timed out")));

    // With a timeout that fits the latency (a first exchange may take four
    // round trips: connect, NOSCRIPT, SCRIPT LOAD, the script), the fleet
    // guarantees hold.
    let t = Duration::from_millis(600);
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let a = breaker(&proxy.url(), &ns, FaultPolicy::Local, t, &seen_a);
    let b = breaker(&server.url(), &ns, FaultPolicy::Local, t, &seen_b);
    assert_eq!(
        timed_within("a failure", t, || a.try_acquire().unwrap().failure()),
        Recorded::Counted
    );
    assert_eq!(b.try_acquire().unwrap().failure(), Recorded::Counted);
    let took = within(Duration::from_secs(2), || a.fail_counter() == 2);
    assert!(
        took.is_some(),
        "a {} errors {:?} {:?}",
        a.fail_counter(),
        seen_a.storage_errors.lock().unwrap(),
        seen_b.storage_errors.lock().unwrap()
    );
    assert_eq!(
        timed_within("a failure", t, || a.try_acquire().unwrap().failure()),
        Recorded::Transitioned(TRIP),
        "the fleet trips once, at exactly fail_max, across the slow link"
    );
    let p1 = first_probe(&b);
    let p2 = b.try_acquire().expect("a second slot");
    assert!(
        timed_within("a call", t, || a.try_acquire().is_err()),
        "both slots are b's"
    );
    assert_eq!(p1.success(), Recorded::Counted);
    assert_eq!(p2.success(), Recorded::Transitioned(CLOSE));
    assert!(within(Duration::from_secs(3), || a.state() == State::Closed).is_some());
    assert_eq!(seen_a.storage_error_count() + seen_b.storage_error_count(), 0);
}

#[test]
fn behind_5_percent_stalls_no_call_waits_past_the_timeout_and_nothing_counts_twice() {
    let server = PrivateServer::start();
    let proxy = Proxy::start(addr(&server), 0x5eed);
    // 5% of the chunks wait 300 ms (a lost segment's retransmission), past
    // the timeout.
    proxy.set(Fault::Stalls {
        per_mille: 50,
        stall: Duration::from_millis(300),
    });
    let ns = unique_namespace("stalls");
    let seen = Arc::new(Seen::default());
    let t = DEFAULT_COMMAND_TIMEOUT;
    // FailOpen: a failure the fleet did not answer is recorded as stale, so
    // each answer says whether the fleet counted it.
    let a = CircuitBreaker::builder()
        .fail_max(10_000)
        .listener(Recorder(Arc::clone(&seen)))
        .shared(
            RedisState::connect(&proxy.url())
                .unwrap()
                .namespace(&ns)
                .policy(FaultPolicy::FailOpen)
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let (mut counted, mut not_counted) = (0u64, 0u64);
    for _ in 0..200 {
        // Spaced out, so that the breaker recovers between stalls.
        std::thread::sleep(Duration::from_millis(5));
        match timed_within("a failure", t, || a.try_acquire().unwrap().failure()) {
            Recorded::Counted => counted += 1,
            Recorded::Stale => not_counted += 1,
            other => panic!("fail_max is far away: {other:?}"),
        }
    }
    // Healed, and past the longest stall: whatever was sent has arrived.
    proxy.set(Fault::Pass);
    std::thread::sleep(Duration::from_millis(400));
    let stored: u64 = stored_state(&mut client(&server.url()), &ns)["f"]
        .parse()
        .unwrap();
    // A failure the fleet answered was counted; one that timed out may have
    // run once (never retried); none ran twice.
    assert!(
        counted <= stored && stored <= counted + not_counted,
        "fleet count {stored}, answered {counted}, unanswered {not_counted}"
    );
    assert!(
        not_counted > 0 && counted >= 20,
        "the stalls were met, the link mostly worked: {counted}/{not_counted}"
    );
    assert!(seen.storage_error_count() >= 1);
}
