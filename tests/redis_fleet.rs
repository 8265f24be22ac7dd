//! Eight OS processes share one namespace: the fleet guarantees, checked
//! across process boundaries against a real Redis (BREAKERBOX_REDIS_URL).
//!
//! Each scenario's test spawns this very test binary eight times (two for
//! the failure-rate half-open rule's permits), running
//! only [`fleet_worker`] with a role in the environment; the workers meet at
//! barriers kept in Redis and leave their counts there for the parent.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, HalfOpenRule, Outcome, Recorded, State, Ticket, Transition};
use redis::Commands;
use redis_support::*;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 8;
const ROLE: &str = "BB_FLEET_ROLE";
const NAMESPACE: &str = "BB_FLEET_NS";
const INDEX: &str = "BB_FLEET_INDEX";
const PARAM: &str = "BB_FLEET_PARAM";

/// Rounds of the half-open race (the issue asks for at least 100).
const PROBE_ROUNDS: u64 = 120;
/// Rounds of the spread-failures trip, each on a fresh namespace.
const TRIP_ROUNDS: u64 = 20;
const TRIP_FAIL_MAX: u32 = 20;
const TICKETS_PER_PROCESS: usize = 5;
/// How long every process keeps asking for a probe in each round.
const RACE_WINDOW: Duration = Duration::from_millis(15);
/// Scheduling on a loaded two-core machine, on top of the documented
/// staleness bound; not part of the consistency model.
const SCHEDULING_ALLOWANCE: Duration = Duration::from_millis(400);
const BARRIER_LIMIT: Duration = Duration::from_secs(60);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set for a fleet worker"))
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn key(ns: &str, what: &str) -> String {
    format!("test:{{{ns}}}:{what}")
}

/// Waits until all `PROCESSES` workers reached barrier `name`.
fn barrier(conn: &mut redis::Connection, ns: &str, name: &str) {
    barrier_of(PROCESSES, conn, ns, name);
}

/// Waits until `processes` workers reached barrier `name`.
fn barrier_of(processes: usize, conn: &mut redis::Connection, ns: &str, name: &str) {
    let k = key(ns, &format!("barrier:{name}"));
    let _: u64 = conn.incr(&k, 1).unwrap();
    let start = Instant::now();
    loop {
        let n: u64 = conn.get(&k).unwrap();
        if n >= processes as u64 {
            return;
        }
        assert!(
            start.elapsed() < BARRIER_LIMIT,
            "barrier {name}: only {n} arrived"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn state_for(ns: &str) -> RedisState {
    RedisState::connect(&url()).unwrap().namespace(ns)
}

/// One fleet at a time: eight processes per scenario are enough for two cores.
static ONE_FLEET: Mutex<()> = Mutex::new(());

/// Starts the fleet and waits for every worker to exit successfully.
fn run_fleet(role: &str, ns: &str, param: &str) {
    run_fleet_of(PROCESSES, role, ns, param);
}

/// [`run_fleet`] with `processes` workers.
fn run_fleet_of(processes: usize, role: &str, ns: &str, param: &str) {
    let _one = ONE_FLEET.lock().unwrap_or_else(PoisonError::into_inner);
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..processes)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "fleet_worker", "--nocapture", "--test-threads", "1"])
                .env(ROLE, role)
                .env(NAMESPACE, ns)
                .env(INDEX, i.to_string())
                .env(PARAM, param)
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn a fleet worker")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut failed = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    failed.push(i);
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                failed.push(i);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(
        failed.is_empty(),
        "fleet workers {failed:?} of role {role} failed"
    );
}

fn errors(conn: &mut redis::Connection, ns: &str) -> Vec<String> {
    conn.lrange(key(ns, "errors"), 0, -1).unwrap()
}

/// (a) Every process races for the probe in every round; exactly
/// `half_open_max_calls` are admitted fleet-wide, round after round.
fn probe_race(max_probes: u32) {
    let ns = unique_namespace(&format!("race{max_probes}"));
    // Open the fleet before any worker builds: their first sync shows it.
    let opener = CircuitBreaker::builder()
        .reset_timeout(Duration::ZERO)
        .shared(state_for(&ns))
        .build()
        .unwrap();
    assert!(opener.open().is_some());
    drop(opener);

    run_fleet("probe-race", &ns, &max_probes.to_string());

    let mut conn = client(&url());
    assert_eq!(errors(&mut conn, &ns), Vec::<String>::new());
    for round in 0..PROBE_ROUNDS {
        let admitted: u32 = conn.get(key(&ns, &format!("admitted:{round}"))).unwrap_or(0);
        assert_eq!(
            admitted, max_probes,
            "round {round}: {admitted} probes admitted fleet-wide, configured {max_probes}"
        );
    }
}

fn probe_race_worker(ns: &str, max_probes: u32) {
    let mut conn = client(&url());
    let breaker = CircuitBreaker::builder()
        .reset_timeout(Duration::ZERO)
        .half_open_max_calls(max_probes)
        .probe_lease(Duration::from_secs(60))
        .shared(state_for(ns))
        .build()
        .unwrap();
    for round in 0..PROBE_ROUNDS {
        barrier(&mut conn, ns, &format!("start:{round}"));
        let mut held = Vec::new();
        let start = Instant::now();
        while start.elapsed() < RACE_WINDOW {
            if let Ok(permit) = breaker.try_acquire() {
                if !permit.is_probe() {
                    let _: () = conn
                        .rpush(
                            key(ns, "errors"),
                            format!("round {round}: a closed-state admission"),
                        )
                        .unwrap();
                }
                held.push(permit);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _: u64 = conn
            .incr(key(ns, &format!("admitted:{round}")), held.len())
            .unwrap();
        barrier(&mut conn, ns, &format!("tried:{round}"));
        // Every probe fails: the first re-opens the fleet, the rest are stale.
        for permit in held {
            let _ = permit.failure();
        }
        barrier(&mut conn, ns, &format!("recorded:{round}"));
    }
}

#[test]
fn half_open_admits_exactly_one_probe_fleet_wide_every_round() {
    probe_race(1);
}

#[test]
fn half_open_admits_exactly_three_probes_fleet_wide_every_round() {
    probe_race(3);
}

/// (b) Failures from all eight processes trip the fleet exactly once, at
/// exactly `fail_max` failures.
#[test]
fn spread_failures_trip_exactly_once_at_exactly_fail_max() {
    let ns = unique_namespace("spread");
    run_fleet("spread-failures", &ns, "");
    let mut conn = client(&url());
    assert_eq!(errors(&mut conn, &ns), Vec::<String>::new());
    let total = (PROCESSES * TICKETS_PER_PROCESS) as u32;
    for round in 0..TRIP_ROUNDS {
        let get = |conn: &mut redis::Connection, what: &str| -> u32 {
            conn.get(key(&ns, &format!("{what}:{round}"))).unwrap_or(0)
        };
        let (trips, counted, stale) = (
            get(&mut conn, "tripped"),
            get(&mut conn, "counted"),
            get(&mut conn, "stale"),
        );
        assert_eq!(trips, 1, "round {round}: the fleet tripped {trips} times");
        assert_eq!(
            counted + trips,
            TRIP_FAIL_MAX,
            "round {round}: the trip came after {} failures",
            counted + trips
        );
        assert_eq!(
            stale,
            total - TRIP_FAIL_MAX,
            "round {round}: every later failure is stale"
        );
        let stored = stored_state(&mut conn, &format!("{ns}-{round}"));
        assert_eq!(stored["s"], "1", "round {round}: open in Redis");
    }
}

fn spread_failures_worker(ns: &str) {
    let mut conn = client(&url());
    for round in 0..TRIP_ROUNDS {
        let breaker = CircuitBreaker::builder()
            .fail_max(TRIP_FAIL_MAX)
            .reset_timeout(Duration::from_secs(60))
            .shared(state_for(&format!("{ns}-{round}")))
            .build()
            .unwrap();
        let tickets: Vec<Ticket> = (0..TICKETS_PER_PROCESS)
            .map(|_| breaker.acquire_ticket().expect("a fresh namespace is closed"))
            .collect();
        barrier(&mut conn, ns, &format!("acquired:{round}"));
        for ticket in tickets {
            let what = match breaker.record(ticket, Outcome::Failure).unwrap() {
                Recorded::Counted => "counted",
                Recorded::Stale => "stale",
                r if r.tripped() => "tripped",
                other => {
                    let _: () = conn
                        .rpush(key(ns, "errors"), format!("round {round}: {other:?}"))
                        .unwrap();
                    continue;
                }
            };
            let _: u64 = conn.incr(key(ns, &format!("{what}:{round}")), 1).unwrap();
        }
        barrier(&mut conn, ns, &format!("recorded:{round}"));
    }
}

/// (c) One process trips the fleet; every other process, whose mirror was
/// closed and which never calls Redis on its healthy path, rejects within
/// the documented staleness bound.
fn staleness(notifications: bool, refresh: Duration) {
    let ns = unique_namespace(if notifications {
        "stale-pubsub"
    } else {
        "stale-refresh"
    });
    run_fleet(
        "staleness",
        &ns,
        &format!("{} {}", u8::from(notifications), refresh.as_millis()),
    );
    let mut conn = client(&url());
    assert_eq!(errors(&mut conn, &ns), Vec::<String>::new());
    let tripped_at: u64 = conn
        .get(key(&ns, "tripped_at"))
        .expect("process 0 tripped the fleet");
    let rejected_at: Vec<u64> = conn.lrange(key(&ns, "rejected_at"), 0, -1).unwrap();
    assert_eq!(rejected_at.len(), PROCESSES - 1, "every other process rejected");
    let worst = Duration::from_micros(rejected_at.iter().max().unwrap().saturating_sub(tripped_at));
    // The documented bound: refresh_interval + command_timeout.
    let bound = refresh + breakerbox::redis::DEFAULT_COMMAND_TIMEOUT;
    eprintln!("staleness (notifications {notifications}): worst {worst:?}, documented bound {bound:?}");
    assert!(
        worst <= bound + SCHEDULING_ALLOWANCE,
        "a process admitted calls {worst:?} after the trip (bound {bound:?})"
    );
}

fn staleness_worker(ns: &str, index: usize, param: &str) {
    let mut parts = param.split(' ');
    let notifications = parts.next() == Some("1");
    let refresh = Duration::from_millis(parts.next().unwrap().parse().unwrap());
    let mut conn = client(&url());
    let breaker = CircuitBreaker::builder()
        .fail_max(3)
        .reset_timeout(Duration::from_secs(60))
        .shared(
            state_for(ns)
                .notifications(notifications)
                .refresh_interval(refresh),
        )
        .build()
        .unwrap();
    barrier(&mut conn, ns, "ready");
    if index == 0 {
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..2 {
            assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
        }
        let permit = breaker.try_acquire().unwrap();
        let before = now_us();
        assert!(permit.failure().tripped());
        let _: () = conn.set(key(ns, "tripped_at"), before).unwrap();
    } else {
        // A closed-state process: calls that never reach Redis.
        let start = Instant::now();
        loop {
            match breaker.try_acquire() {
                Ok(permit) => {
                    let _ = permit.ignore();
                }
                Err(_) => {
                    let _: () = conn.rpush(key(ns, "rejected_at"), now_us()).unwrap();
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _: () = conn
                    .rpush(key(ns, "errors"), format!("process {index} never saw the trip"))
                    .unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    barrier(&mut conn, ns, "done");
}

#[test]
fn every_process_sees_a_trip_by_announcement_within_the_bound() {
    staleness(true, breakerbox::redis::DEFAULT_REFRESH_INTERVAL);
}

#[test]
fn every_process_sees_a_trip_by_refresh_alone_within_the_bound() {
    staleness(false, Duration::from_millis(250));
}

/// Rounds of the combined-rate trip, each on a fresh namespace.
const RATE_ROUNDS: u64 = 10;
/// Each process's calls per round (true: a success): 60 % failures, or 40 %
/// with every failure, and what it sends the fleet, at 40 % or less so far.
/// Both end on a failure, which carries the successes before it.
const RATE_HIGH: [bool; 10] = [true, false, true, false, true, false, true, false, false, false];
const RATE_LOW: [bool; 10] = [true, true, false, true, true, false, true, false, true, false];
/// Above any one process's calls (10), below the fleet's (80) and its
/// failures (48, or 32: had the successes been lost, 32 failures alone
/// would trip).
const RATE_MINIMUM_CALLS: u32 = 30;

/// (d) A fleet-wide rate window: every process fails 60 % of its calls, above
/// the 50 % threshold, but makes 10 calls, below the window's minimum of 30.
/// Shared, the summed window (80 calls) trips exactly once fleet-wide; the
/// same traffic on per-process breakers never trips.
/// With 40 % failures the fleet must not trip: the successes count too.
fn combined_rate(window: &str, shared: bool) {
    combined(window, shared, "high");
}

fn combined(window: &str, shared: bool, rate: &str) {
    let ns = unique_namespace(&format!("rate-{window}-{shared}-{rate}"));
    run_fleet(
        "combined-rate",
        &ns,
        &format!("{window} {} {rate}", u8::from(shared)),
    );
    let mut conn = client(&url());
    assert_eq!(errors(&mut conn, &ns), Vec::<String>::new());
    for round in 0..RATE_ROUNDS {
        let get = |conn: &mut redis::Connection, what: &str| -> u32 {
            conn.get(key(&ns, &format!("{what}:{round}"))).unwrap_or(0)
        };
        let (trips, rejected, local_rate_known) = (
            get(&mut conn, "tripped"),
            get(&mut conn, "rejected"),
            get(&mut conn, "rate-known"),
        );
        assert_eq!(
            local_rate_known, 0,
            "round {round}: a process reached the minimum alone"
        );
        if shared && rate == "low" {
            assert_eq!(trips, 0, "round {round}: 40 % tripped the fleet");
            assert_eq!(rejected, 0, "round {round}: the fleet rejected at 40 %");
            let stored = stored_state(&mut conn, &format!("{ns}-{round}"));
            assert_eq!(stored["s"], "0", "round {round}: closed in Redis");
        } else if shared {
            assert_eq!(trips, 1, "round {round}: the fleet tripped {trips} times");
            let stored = stored_state(&mut conn, &format!("{ns}-{round}"));
            assert_eq!(stored["s"], "1", "round {round}: open in Redis");
        } else {
            assert_eq!(trips, 0, "round {round}: a per-process breaker tripped");
            assert_eq!(rejected, 0, "round {round}: a per-process breaker rejected");
        }
    }
}

fn combined_rate_worker(ns: &str, param: &str) {
    let mut parts = param.split(' ');
    let window = parts.next().unwrap().to_owned();
    let shared = parts.next() == Some("1");
    let pattern = match parts.next() {
        Some("low") => RATE_LOW,
        _ => RATE_HIGH,
    };
    let mut conn = client(&url());
    for round in 0..RATE_ROUNDS {
        let builder = CircuitBreaker::builder()
            .failure_rate_threshold(50.0)
            .minimum_calls(RATE_MINIMUM_CALLS)
            .reset_timeout(Duration::from_secs(60));
        let builder = match window.as_str() {
            "count" => builder.count_window(100),
            _ => builder.time_window(Duration::from_secs(60)),
        };
        let builder = match shared {
            true => builder.shared(state_for(&format!("{ns}-{round}"))),
            false => builder,
        };
        let breaker = builder.build().unwrap();
        barrier(&mut conn, ns, &format!("built:{round}"));
        for succeeds in pattern {
            let what = match breaker.try_acquire() {
                Err(_) => "rejected",
                Ok(permit) if succeeds => {
                    let _ = permit.success();
                    "succeeded"
                }
                Ok(permit) => match permit.failure() {
                    r if r.tripped() => "tripped",
                    Recorded::Counted => "counted",
                    _ => "stale",
                },
            };
            let _: u64 = conn.incr(key(ns, &format!("{what}:{round}")), 1).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        if !shared && breaker.failure_rate().is_some() {
            let _: u64 = conn.incr(key(ns, &format!("rate-known:{round}")), 1).unwrap();
        }
        barrier(&mut conn, ns, &format!("recorded:{round}"));
    }
}

#[test]
fn a_count_window_trips_the_fleet_on_combined_traffic_once() {
    combined_rate("count", true);
}

#[test]
fn a_time_window_trips_the_fleet_on_combined_traffic_once() {
    combined_rate("time", true);
}

#[test]
fn the_fleet_counts_every_processs_successes_below_the_threshold() {
    combined("count", true, "low");
    combined("time", true, "low");
}

#[test]
fn per_process_windows_never_trip_on_the_same_traffic() {
    combined_rate("count", false);
    combined_rate("time", false);
}

/// Processes that share the failure-rate rule's permits.
const RATE_PROCESSES: usize = 2;
/// The permits they share: four probes decide, at a 50% threshold.
const RATE_PERMITS: u32 = 4;

/// (e) `HalfOpenRule::FailureRate` on a fleet: two processes share the
/// `half_open_max_calls` permits, two probes each; no fifth probe is
/// admitted anywhere before the fourth record decides. `scenario`: "closes"
/// (1 failure in 4), "reopens" (2 in 4), or "ignored" (an ignored probe's
/// permit comes back fleet-wide and the other process takes it).
fn rate_probes(scenario: &str) {
    let ns = unique_namespace(&format!("rate-probes-{scenario}"));
    // Half-open the fleet before any worker builds: their first sync shows it.
    let opener = rate_breaker(&ns);
    assert!(opener.half_open().is_some());
    drop(opener);
    run_fleet_of(RATE_PROCESSES, "rate-probes", &ns, scenario);
    let mut conn = client(&url());
    assert_eq!(errors(&mut conn, &ns), Vec::<String>::new());
    let decided: Vec<String> = conn.lrange(key(&ns, "decided"), 0, -1).unwrap();
    let want = match scenario {
        "reopens" => "half-open -> open",
        _ => "half-open -> closed",
    };
    assert_eq!(decided, [want], "exactly one process decided, once");
}

fn rate_probes_worker(ns: &str, index: usize, scenario: &str) {
    let mut conn = client(&url());
    let fail = |what: String| conn_rpush(ns, "errors", format!("process {index}: {what}"));
    let breaker = rate_breaker(ns);
    let step = |conn: &mut redis::Connection, name: &str| barrier_of(RATE_PROCESSES, conn, ns, name);
    let admit = |probes: &mut Vec<_>, when: &str| match breaker.try_acquire() {
        Ok(permit) if permit.is_probe() => probes.push(permit),
        Ok(_) => fail(format!("{when}: a closed-state admission in half-open")),
        Err(e) => fail(format!("{when}: a probe rejected in {:?}", e.state)),
    };
    // Every permit is out: rejected here, by the mirror or by the fleet.
    let refused = |when: &str| match breaker.try_acquire() {
        Err(e) if e.state == State::HalfOpen => {}
        Err(e) => fail(format!("{when}: rejected in {:?}", e.state)),
        Ok(_) => fail(format!("{when}: a fifth probe admitted")),
    };
    let decide = |recorded: Recorded| match recorded {
        Recorded::Counted => {}
        Recorded::Transitioned(Transition {
            from: State::HalfOpen,
            to,
        }) => {
            let to = if to == State::Open { "open" } else { "closed" };
            conn_rpush(ns, "decided", format!("half-open -> {to}"));
        }
        other => fail(format!("a probe recorded {other:?}")),
    };

    step(&mut conn, "built");
    let mut probes = Vec::new();
    admit(&mut probes, "two of the four permits");
    admit(&mut probes, "two of the four permits");
    step(&mut conn, "admitted");
    refused("four admitted");
    if breaker.probes_in_flight() != RATE_PERMITS {
        fail(format!(
            "{} probes in flight, the fleet has {RATE_PERMITS}",
            breaker.probes_in_flight()
        ));
    }
    step(&mut conn, "full");
    if scenario == "ignored" {
        if index == 0 {
            decide(probes.pop().unwrap().ignore());
        }
        step(&mut conn, "ignored");
        if index == 1 {
            // Its mirror rejects alone until the announcement brings the
            // permit back (the staleness bound); the fleet then admits.
            let start = Instant::now();
            while breaker.probes_in_flight() == RATE_PERMITS && start.elapsed() < SCHEDULING_ALLOWANCE * 10 {
                std::thread::sleep(Duration::from_millis(5));
            }
            admit(&mut probes, "the permit given back, fleet-wide");
            refused("the permit given back taken");
        }
        step(&mut conn, "retaken");
        if index == 0 {
            refused("the permit given back taken by the other process");
        }
    }
    // Process 1's first probe fails: 1 in 4 (closes); process 0's too in
    // "reopens": 2 in 4. Every recorded probe's permit stays spent.
    let outcome = |i: usize| match (scenario, index, i) {
        ("reopens", _, 0) | ("closes", 1, 0) => Outcome::Failure,
        _ => Outcome::Success,
    };
    if index == 0 {
        for (i, permit) in probes.drain(..).enumerate() {
            decide(permit.record(outcome(i)));
        }
        refused("permits spent by recorded probes");
    }
    step(&mut conn, "first recorded");
    if index == 1 {
        refused("permits spent by the other process's records");
        let last = probes.len() - 1;
        for (i, permit) in probes.drain(..).enumerate() {
            decide(permit.record(outcome(i)));
            if i < last {
                refused("before the last record");
            }
        }
    }
    step(&mut conn, "decided");
    let want = match scenario {
        "reopens" => State::Open,
        _ => State::Closed,
    };
    // The other process learns of the decision by announcement.
    let start = Instant::now();
    while breaker.state() != want && start.elapsed() < SCHEDULING_ALLOWANCE * 10 {
        std::thread::sleep(Duration::from_millis(5));
    }
    if breaker.state() != want {
        fail(format!(
            "the fleet decided {want:?}, this process shows {:?}",
            breaker.state()
        ));
    }
    step(&mut conn, "seen");
}

/// A breaker of the failure-rate scenarios: four permits, 50%, leases
/// and timeouts far beyond a run.
fn rate_breaker(ns: &str) -> CircuitBreaker {
    CircuitBreaker::builder()
        .half_open_rule(HalfOpenRule::FailureRate)
        .failure_rate_threshold(50.0)
        .half_open_max_calls(RATE_PERMITS)
        .reset_timeout(Duration::from_secs(600))
        .probe_lease(Duration::from_secs(600))
        .shared(state_for(ns))
        .build()
        .unwrap()
}

fn conn_rpush(ns: &str, what: &str, value: String) {
    let _: () = client(&url()).rpush(key(ns, what), value).unwrap();
}

#[test]
fn two_processes_share_the_failure_rate_permits_and_one_failure_in_four_closes() {
    rate_probes("closes");
}

#[test]
fn two_processes_share_the_failure_rate_permits_and_two_failures_in_four_reopen() {
    rate_probes("reopens");
}

#[test]
fn an_ignored_probes_permit_comes_back_fleet_wide() {
    rate_probes("ignored");
}

/// The entry point of a spawned fleet worker; in an ordinary run (no role
/// in the environment) it has nothing to do.
#[test]
fn fleet_worker() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let ns = env(NAMESPACE);
    let index: usize = env(INDEX).parse().unwrap();
    let param = env(PARAM);
    match role.as_str() {
        "probe-race" => probe_race_worker(&ns, param.parse().unwrap()),
        "spread-failures" => spread_failures_worker(&ns),
        "staleness" => staleness_worker(&ns, index, &param),
        "combined-rate" => combined_rate_worker(&ns, &param),
        "rate-probes" => rate_probes_worker(&ns, index, &param),
        other => panic!("unknown fleet role {other}"),
    }
}
