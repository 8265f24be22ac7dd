//! The cost model, measured: how many script runs a shared breaker makes at
//! a given failure rate, counted by the server (INFO commandstats) on a
//! private redis-server (BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::CircuitBreaker;
use redis_support::*;
use std::time::{Duration, Instant};

const CALLS: u64 = 20_000;

#[test]
fn the_healthy_path_costs_nothing_and_a_failure_one_run_plus_one_for_the_reset() {
    let server = PrivateServer::start();
    // One failure every `every` calls: 0 %, 0.1 %, 1 % and 10 %.
    for every in [0u64, 1000, 100, 10] {
        let built = script_runs(&server.url(), true);
        let breaker = CircuitBreaker::builder()
            .fail_max(1_000_000)
            .shared(
                RedisState::connect(&server.url())
                    .unwrap()
                    .namespace(unique_namespace("cost"))
                    // The periodic refresh (one run per refresh_interval per
                    // breaker) is left out of this count.
                    .refresh_interval(Duration::from_secs(3600)),
            )
            .build()
            .unwrap();
        // The build's sync and the watcher's first.
        assert!(within(Duration::from_secs(5), || script_runs(&server.url(), true)
            == built + 2)
        .is_some());
        let before = script_runs(&server.url(), true);
        let start = Instant::now();
        let (mut failures, mut resets, mut last_failed) = (0, 0, false);
        for i in 1..=CALLS {
            let permit = breaker.try_acquire().unwrap();
            last_failed = if every != 0 && i % every == 0 {
                let _ = permit.failure();
                failures += 1;
                true
            } else {
                let _ = permit.success();
                resets += u64::from(last_failed);
                false
            };
        }
        let elapsed = start.elapsed();
        let runs = script_runs(&server.url(), true) - before;
        eprintln!(
            "failure rate {:>5}: {CALLS} calls in {elapsed:?} ({:.0} calls/s), {failures} failures, \
             {runs} script runs ({:.0} runs/s)",
            if every == 0 {
                "0".to_owned()
            } else {
                format!("{}%", 100.0 / every as f64)
            },
            CALLS as f64 / elapsed.as_secs_f64(),
            runs as f64 / elapsed.as_secs_f64(),
        );
        // Each isolated failure: its own run, and one for the success after
        // it that resets the fleet's count. Every other call: none.
        assert_eq!(runs, failures + resets, "failure every {every} calls");
        assert!(resets <= failures);
    }
}

/// A fleet-wide rate window: each failure is one run (it carries the counts
/// not sent yet), and the watcher flushes the successes at most once per
/// bucket: per bucket of calls for a count window, per bucket width for a
/// time window. No run resets anything after a failure.
#[test]
fn a_windowed_breaker_costs_one_run_per_failure_plus_one_flush_per_bucket() {
    let server = PrivateServer::start();
    for window in ["count", "time"] {
        for every in [0u64, 100, 10] {
            let built = script_runs(&server.url(), true);
            let builder = CircuitBreaker::builder()
                .failure_rate_threshold(50.0)
                .minimum_calls(100);
            // Buckets of 100 calls, or of 100 ms.
            let builder = match window {
                "count" => builder.count_window(1000),
                _ => builder.time_window(Duration::from_secs(1)),
            };
            let breaker = builder
                .shared(
                    RedisState::connect(&server.url())
                        .unwrap()
                        .namespace(unique_namespace("cost-window"))
                        .refresh_interval(Duration::from_secs(3600)),
                )
                .build()
                .unwrap();
            assert!(within(Duration::from_secs(5), || script_runs(&server.url(), true)
                == built + 2)
            .is_some());
            let before = script_runs(&server.url(), true);
            let start = Instant::now();
            let mut failures = 0;
            for i in 1..=CALLS {
                if i % 1000 == 0 {
                    // Paced over about half a second, so that buckets pass.
                    std::thread::sleep(Duration::from_millis(25));
                }
                let permit = breaker.try_acquire().unwrap();
                if every != 0 && i % every == 0 {
                    let _ = permit.failure();
                    failures += 1;
                } else {
                    let _ = permit.success();
                }
            }
            let elapsed = start.elapsed();
            // The watcher's last flushes of these calls.
            std::thread::sleep(Duration::from_millis(250));
            let runs = script_runs(&server.url(), true) - before;
            let flushes = runs - failures;
            let bound = match window {
                "count" => CALLS / 100,
                _ => (elapsed + Duration::from_millis(250)).as_millis() as u64 / 100 + 1,
            };
            eprintln!(
                "{window} window, failure rate {:>4}: {CALLS} calls in {elapsed:?} ({:.0} calls/s), \
                 {failures} failures, {runs} script runs ({flushes} flushes, at most {bound})",
                if every == 0 {
                    "0".to_owned()
                } else {
                    format!("{}%", 100.0 / every as f64)
                },
                CALLS as f64 / elapsed.as_secs_f64(),
            );
            assert!(runs >= failures, "{window}, every {every}: each failure is a run");
            assert!(
                flushes <= bound,
                "{window}, every {every}: {flushes} flushes, bound {bound}"
            );
            if every == 0 {
                assert!(flushes >= 1, "{window}: the successes were flushed");
            }
        }
    }
}
