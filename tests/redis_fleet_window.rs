//! The fleet-wide rate window: the script's rules on the summed window,
//! driven with its test-only time argument (no sleeps), then shared
//! breakers against a real Redis: what a success costs, what a failure
//! carries, and what an outage leaves behind.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState, Script, StorageError, Subscriber, Transport};
use breakerbox::{CircuitBreaker, Recorded, State};
use redis_support::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SCRIPT: &str = include_str!("../src/redis/fleet.lua");
const MODULUS: u64 = 1 << 20;

const COUNTED: i64 = 4;
const TRANSITIONED: i64 = 5;
const NOOP: i64 = 7;

/// A rate window as the breaker sends it (fleet.lua, ARGV[17..22]).
#[derive(Clone, Copy)]
struct Rule {
    count_based: bool,
    buckets: u64,
    span: u64,
    minimum_calls: u64,
    failure_bp: u64,
    slow_bp: u64,
}

fn time_rule() -> Rule {
    Rule {
        count_based: false,
        buckets: 10,
        span: 1000,
        minimum_calls: 10,
        failure_bp: 5000,
        slow_bp: 0,
    }
}

/// The script on a real Redis for one namespace, its clock set by the test.
struct Lua {
    conn: redis::Connection,
    script: redis::Script,
    key: String,
    now_ms: u64,
    rule: Rule,
}

impl Lua {
    fn new(rule: Rule) -> Lua {
        Lua {
            conn: client(&url()),
            script: redis::Script::new(SCRIPT),
            key: format!("breakerbox:{{{}}}:state", unique_namespace("window-rules")),
            now_ms: 1_000_000,
            rule,
        }
    }

    /// One run: `op`, the op's three arguments, and the window's counts
    /// (`None`: sent without window arguments, as a consecutive breaker).
    fn run(&mut self, op: &str, extra: [u64; 3], counts: Option<(u64, [u64; 3])>) -> Vec<i64> {
        let mut invocation = self.script.key(&self.key);
        invocation
            .arg(op)
            .arg("")
            .arg(MODULUS)
            .arg(&[0u64, 0, 0, 0][..])
            .arg(&[5u64, 1, 1, 1000, 1000][..])
            .arg(&extra[..])
            .arg(self.now_ms)
            .arg(0u64); // ARGV[17]: a recorded probe's slot (none here)
        if let Some((generation, [calls, failures, slow])) = counts {
            let r = self.rule;
            invocation
                .arg(if r.count_based { 1 } else { 2 })
                .arg(&[r.buckets, r.span, r.minimum_calls, r.failure_bp, r.slow_bp][..])
                .arg(&[generation, calls, failures, slow][..]);
        }
        invocation.invoke(&mut self.conn).expect("the script runs")
    }

    /// A closed-state failure of episode `generation`, carrying `counts`
    /// (its own call included); the reply's code.
    fn failure(&mut self, generation: u64, counts: [u64; 3]) -> i64 {
        self.run("record", [1, generation, 1], Some((generation, counts)))[0]
    }

    /// A slow success, carrying `counts`.
    fn slow_success(&mut self, generation: u64, counts: [u64; 3]) -> i64 {
        self.run("record", [1, generation, 0], Some((generation, counts)))[0]
    }

    /// The watcher's flush of `counts` counted in episode `generation`.
    fn flush(&mut self, generation: u64, counts: [u64; 3]) -> i64 {
        self.run("flush", [0; 3], Some((generation, counts)))[0]
    }

    fn force(&mut self, target: u64) {
        self.run("force", [target, 0, 0], None);
    }

    fn fields(&mut self) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(&self.key)
            .query(&mut self.conn)
            .unwrap()
    }

    fn state(&mut self) -> String {
        self.fields().get("s").cloned().unwrap_or_default()
    }

    /// (calls, failures) summed over the ring's slots of `generation`.
    fn stored_counts(&mut self, generation: u64) -> (u64, u64) {
        let mut sum = (0, 0);
        for (name, value) in self.fields() {
            if name.starts_with('w') && name != "wb" {
                let n: Vec<u64> = value.split(' ').map(|x| x.parse().unwrap()).collect();
                if n[1] == generation {
                    sum = (sum.0 + n[2], sum.1 + n[3]);
                }
            }
        }
        sum
    }
}

#[test]
fn the_summed_rate_trips_at_the_threshold_and_not_below() {
    let mut lua = Lua::new(time_rule());
    // Four processes' counts: none alone reaches the minimum of 10 calls.
    assert_eq!(lua.flush(0, [6, 0, 0]), NOOP, "a flush decides nothing");
    assert_eq!(lua.failure(0, [4, 3, 0]), COUNTED, "10 calls, 30 %");
    assert_eq!(lua.failure(0, [4, 3, 0]), COUNTED, "14 calls, 43 %");
    assert_eq!(lua.failure(0, [2, 2, 0]), TRANSITIONED, "16 calls, 50 %: trips");
    assert_eq!(lua.state(), "1");
    assert_eq!(
        lua.failure(0, [1, 1, 0]),
        6,
        "a later failure of the episode is stale"
    );
}

#[test]
fn below_minimum_calls_over_the_sum_nothing_trips() {
    let mut lua = Lua::new(Rule {
        minimum_calls: 20,
        ..time_rule()
    });
    for i in 1..20 {
        assert_eq!(lua.failure(0, [1, 1, 0]), COUNTED, "{i} calls, all failed");
    }
    assert_eq!(lua.failure(0, [1, 1, 0]), TRANSITIONED, "the 20th call");
}

#[test]
fn a_flush_never_trips_the_next_failure_does() {
    let mut lua = Lua::new(time_rule());
    assert_eq!(lua.flush(0, [20, 20, 0]), NOOP);
    assert_eq!(
        lua.state(),
        "0",
        "a flush decides nothing, as a success never trips"
    );
    assert_eq!(lua.failure(0, [1, 1, 0]), TRANSITIONED);
}

#[test]
fn a_time_window_counts_its_last_buckets_of_server_time() {
    // Epoch 1000 at 1,000,000 ms; the window reads epochs 991..=1000.
    let mut within = Lua::new(time_rule());
    assert_eq!(within.failure(0, [10, 4, 0]), COUNTED, "40 %");
    within.now_ms += 9 * 1000 + 999;
    assert_eq!(
        within.failure(0, [2, 2, 0]),
        TRANSITIONED,
        "9 buckets later the first still counts: 12 calls, 50 %"
    );

    let mut past = Lua::new(time_rule());
    assert_eq!(past.failure(0, [10, 4, 0]), COUNTED);
    past.now_ms += 10 * 1000;
    assert_eq!(
        past.failure(0, [2, 2, 0]),
        COUNTED,
        "10 buckets later the first is gone: 2 calls, below the minimum"
    );
}

#[test]
fn a_count_window_keeps_the_fleets_last_calls_bucket_by_bucket() {
    // 20 calls in 2 buckets of 10, minimum 20.
    let rule = Rule {
        count_based: true,
        buckets: 2,
        span: 10,
        minimum_calls: 20,
        ..time_rule()
    };
    let mut lua = Lua::new(rule);
    assert_eq!(lua.flush(0, [10, 0, 0]), NOOP);
    assert_eq!(lua.flush(0, [10, 0, 0]), NOOP);
    assert_eq!(lua.stored_counts(0), (20, 0));
    // Ten failures fill a third bucket: the first ten successes leave the
    // window, which holds 10 successes and 10 failures: 50 %.
    assert_eq!(lua.failure(0, [10, 10, 0]), TRANSITIONED);
}

#[test]
fn a_count_window_keeps_one_delta_to_its_size_at_its_rates() {
    let rule = Rule {
        count_based: true,
        buckets: 2,
        span: 10,
        minimum_calls: 20,
        failure_bp: 7000,
        ..time_rule()
    };
    let mut lua = Lua::new(rule);
    // 100 calls, 60 % failed, arrive at once: 20 are kept, 12 failed.
    assert_eq!(lua.flush(0, [100, 60, 0]), NOOP);
    assert_eq!(lua.stored_counts(0), (20, 12));
    assert_eq!(lua.failure(0, [1, 1, 0]), COUNTED, "60 % < 70 %");
}

#[test]
fn every_transition_empties_the_fleet_window() {
    let mut lua = Lua::new(time_rule());
    assert_eq!(lua.flush(0, [10, 4, 0]), NOOP);
    lua.force(1);
    lua.force(0);
    // Generation 2 now: the 10 calls of generation 0 count no more. Had
    // they stayed, 12 calls at 50 % would trip.
    assert_eq!(lua.failure(2, [2, 2, 0]), COUNTED);
    assert_eq!(lua.stored_counts(2), (2, 2));
}

#[test]
fn counts_from_an_ended_episode_are_dropped() {
    let mut lua = Lua::new(time_rule());
    lua.force(1);
    lua.force(0);
    // A process still on generation 0 flushes 8 failed calls: dropped.
    assert_eq!(lua.flush(0, [8, 8, 0]), NOOP);
    assert_eq!(lua.stored_counts(0), (0, 0));
    assert_eq!(lua.failure(2, [2, 2, 0]), COUNTED, "2 calls, below the minimum");
}

#[test]
fn the_slow_call_rate_trips_the_fleet_only_when_counted() {
    let slow = Rule {
        slow_bp: 8000,
        ..time_rule()
    };
    let mut lua = Lua::new(slow);
    assert_eq!(lua.flush(0, [4, 0, 3]), NOOP);
    assert_eq!(lua.slow_success(0, [6, 0, 5]), TRANSITIONED, "8 of 10 slow: 80 %");

    let mut off = Lua::new(time_rule());
    assert_eq!(off.flush(0, [4, 0, 3]), NOOP);
    assert_eq!(off.slow_success(0, [6, 0, 5]), COUNTED, "slow calls not counted");
}

#[test]
fn window_writes_change_no_version_and_announce_nothing() {
    let mut lua = Lua::new(time_rule());
    lua.run("sync", [0; 3], None);
    let version = lua.fields()["v"].clone();
    assert_eq!(lua.flush(0, [5, 0, 0]), NOOP);
    assert_eq!(lua.failure(0, [1, 1, 0]), COUNTED);
    assert_eq!(lua.fields()["v"], version, "the state did not change");
    assert_eq!(lua.stored_counts(0), (6, 1));
}

#[test]
fn without_window_arguments_the_consecutive_rule_decides() {
    let mut lua = Lua::new(time_rule());
    for _ in 0..4 {
        assert_eq!(lua.run("record", [1, 0, 1], None)[0], COUNTED);
    }
    assert_eq!(lua.run("record", [1, 0, 1], None)[0], TRANSITIONED, "fail_max 5");
    assert_eq!(lua.stored_counts(0), (0, 0), "no window written");
}

/// (calls, failures) in a shared breaker's fleet window as stored: the ring
/// slots of the current generation, within the last `buckets` epochs for a
/// count window that has rolled (its current epoch is `wb`; a time
/// window's slots in these short tests are all recent).
fn fleet_window(url: &str, ns: &str, buckets: u64) -> (u64, u64) {
    let fields = stored_state(&mut client(url), ns);
    let g: u64 = fields.get("g").map_or(0, |g| g.parse().unwrap());
    let current: Option<u64> = fields.get("wb").map(|e| e.parse().unwrap());
    fields
        .iter()
        .filter(|(k, _)| k.starts_with('w') && *k != "wb")
        .map(|(_, v)| v.split(' ').map(|x| x.parse().unwrap()).collect::<Vec<u64>>())
        .filter(|n| n[1] == g && current.map_or(true, |e| n[0] <= e && e - n[0] < buckets))
        .fold((0, 0), |(c, f), n| (c + n[2], f + n[3]))
}

/// Counts the script runs a transport carries, by thread: the watcher's
/// (flushes and refreshes) apart from the callers'.
struct Counting {
    inner: Arc<dyn Transport>,
    on_callers: AtomicU64,
    on_watcher: AtomicU64,
}

impl Transport for Counting {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        let watcher = std::thread::current().name() == Some("breakerbox-redis");
        let counter = if watcher {
            &self.on_watcher
        } else {
            &self.on_callers
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.eval(script, key, args, timeout)
    }

    fn subscriber(&self, timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        self.inner.subscriber(timeout)
    }

    fn endpoint(&self) -> String {
        "counting".into()
    }
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: HostClient::new(&url()),
        on_callers: AtomicU64::new(0),
        on_watcher: AtomicU64::new(0),
    })
}

/// Successes never make a caller wait on Redis; the watcher sends them.
#[test]
fn a_windowed_success_makes_no_round_trip_and_the_watcher_flushes_it() {
    let transport = counting();
    let ns = unique_namespace("window-hot");
    let breaker = CircuitBreaker::builder()
        .count_window(100)
        .minimum_calls(10)
        .shared(
            RedisState::with_transport(Arc::clone(&transport) as Arc<dyn Transport>)
                .namespace(&ns)
                .notifications(false)
                .refresh_interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let built = transport.on_callers.load(Ordering::SeqCst);
    for _ in 0..5_000 {
        let _ = breaker.try_acquire().unwrap().success();
    }
    assert_eq!(
        transport.on_callers.load(Ordering::SeqCst),
        built,
        "no success made a round trip"
    );
    // The watcher sends them once a bucket of 10 calls is due; the fleet
    // keeps the last 100 (its last bucket may be partly filled).
    let stored = || fleet_window(&url(), &ns, 10).0;
    assert!(
        within(Duration::from_secs(5), || stored() > 90).is_some(),
        "the fleet holds {} calls",
        stored()
    );
    assert!(stored() <= 100);
    // Its first sync, and at most one flush per bucket of 10 calls.
    let runs = transport.on_watcher.load(Ordering::SeqCst);
    assert!(runs <= 1 + 5_000 / 10, "{runs} watcher runs for 500 buckets");
    // A failure is one run of its own, carrying what is left.
    let _ = breaker.try_acquire().unwrap().failure();
    assert_eq!(transport.on_callers.load(Ordering::SeqCst), built + 1);
}

/// While Redis is away the local window decides (FaultPolicy::Local); what
/// it counted then never reaches the fleet, and what it had sent before is
/// not sent again.
#[test]
fn an_outage_decides_on_the_local_window_and_nothing_is_counted_twice() {
    let mut server = PrivateServer::start();
    let ns = unique_namespace("window-outage");
    let build = |url: &str| {
        CircuitBreaker::builder()
            .count_window(20)
            .minimum_calls(10)
            .failure_rate_threshold(50.0)
            .shared(
                RedisState::connect(url)
                    .unwrap()
                    .namespace(&ns)
                    .policy(FaultPolicy::Local)
                    .command_timeout(Duration::from_millis(200))
                    .max_backoff(Duration::from_millis(50))
                    .refresh_interval(Duration::from_millis(100)),
            )
            .build()
            .unwrap()
    };
    let breaker = build(&server.url());
    let fleet = |server: &PrivateServer| fleet_window(&server.url(), &ns, 10);
    // Before: 6 successes and 2 failures reach the fleet (8 calls, 25 %).
    for _ in 0..6 {
        let _ = breaker.try_acquire().unwrap().success();
    }
    for _ in 0..2 {
        assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    }
    assert_eq!(fleet(&server), (8, 2));
    server.save();

    // Away, briefly: a failure (whose run fails) and three successes, 12
    // calls and 25 % in the local window, which does not trip.
    server.kill();
    assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    assert!(!breaker.storage_health().unwrap().reachable);
    for _ in 0..3 {
        let _ = breaker.try_acquire().unwrap().success();
    }
    server.restart();
    assert!(within(Duration::from_secs(10), || breaker
        .storage_health()
        .unwrap()
        .reachable)
    .is_some());
    // Watcher ticks, in which a flush of the three successes would run.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fleet(&server),
        (8, 2),
        "what was counted while away is never sent"
    );
    assert_eq!(breaker.state(), State::Closed);
    server.save();

    // Away again: the local window (12 calls, 3 failures) decides alone.
    // Failures: at the fourth, 16 calls, 7 failed, 44 %; at the sixth, 18
    // calls, 9 failed, 50 %: it trips locally.
    server.kill();
    let mut tripped = 0;
    for _ in 0..8 {
        match breaker.try_acquire() {
            Ok(permit) => tripped += u32::from(permit.failure().tripped()),
            Err(_) => break,
        }
    }
    assert_eq!(tripped, 1, "the local window tripped once");
    assert_eq!(breaker.state(), State::Open);

    // Back, with the data saved before: the mirror takes the fleet's state
    // (closed), and the fleet holds what it held. Neither the outage's
    // counts nor those sent before reach it again.
    server.restart();
    assert!(
        within(Duration::from_secs(10), || breaker.try_acquire().is_ok_and(|p| {
            let _ = p.ignore();
            true
        }))
        .is_some(),
        "the mirror took the fleet's closed state"
    );
    assert_eq!(breaker.state(), State::Closed);
    std::thread::sleep(Duration::from_millis(300)); // watcher ticks: flushes would run
    assert_eq!(fleet(&server), (8, 2), "nothing counted twice or late");
    // The next failure adds only itself: 9 calls, 3 failures.
    assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(fleet(&server), (9, 3));
}

/// A Redis restarted empty starts the fleet's window empty; what the
/// processes had sent is not sent again, so the window refills from new
/// calls only.
#[test]
fn a_redis_restarted_empty_starts_the_fleet_window_empty() {
    let mut server = PrivateServer::start();
    let ns = unique_namespace("window-empty");
    let breaker = CircuitBreaker::builder()
        .time_window(Duration::from_secs(60))
        .minimum_calls(10)
        .shared(
            RedisState::connect(&server.url())
                .unwrap()
                .namespace(&ns)
                .max_backoff(Duration::from_millis(50))
                .refresh_interval(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    for _ in 0..5 {
        let _ = breaker.try_acquire().unwrap().success();
    }
    assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(fleet_window(&server.url(), &ns, 10), (6, 1));

    server.forget_dump();
    server.restart();
    // The watcher's refresh finds the hash missing and re-seeds it.
    assert!(within(Duration::from_secs(10), || stored_state(
        &mut client(&server.url()),
        &ns
    )
    .contains_key("s"))
    .is_some());
    assert_eq!(fleet_window(&server.url(), &ns, 10), (0, 0));
    assert_eq!(breaker.try_acquire().unwrap().failure(), Recorded::Counted);
    assert_eq!(
        fleet_window(&server.url(), &ns, 10),
        (1, 1),
        "only the new failure"
    );
}
