//! Loom models of the rate window: concurrent failures crossing the
//! threshold trip once, and a bucket reused while a thread records into it
//! neither keeps old counts nor loses new ones.
//!
//! Under loom every thread writes the same stripe, so the CAS on it is what
//! these models race. Run with `bash loom-tests/run.sh`.
#![cfg(breakerbox_loom)]

use breakerbox::{Outcome, State};
use breakerbox_loom_tests::{breaker, main_or_thread, model, t, Racer};
use std::time::Duration;

use State::{Closed, Open};

/// Records `outcome` on a closed-state permit; whether it tripped.
fn record(r: &Racer, outcome: Outcome) -> bool {
    r.step(|b| b.try_acquire().map(|p| p.record(outcome).tripped()))
        .unwrap_or(false)
}

/// Two failures against a count window that trips at two calls and 50%:
/// however they interleave, exactly one of them trips, reported once.
#[test]
fn w1_two_failures_cross_the_rate_once() {
    model(&["main tripped", "thread tripped"], |seen| {
        let (b, _clock, events) = breaker(|c| c.count_window(4).minimum_calls(2));
        let [mine, theirs] = b.race(|b| record(b, Outcome::Failure), |b| record(b, Outcome::Failure));
        assert_eq!(
            usize::from(mine) + usize::from(theirs),
            1,
            "one trip: {mine} {theirs}"
        );
        seen.hit(main_or_thread(mine, "main tripped", "thread tripped"));
        assert_eq!(b.state(), Open);
        assert_eq!(events.take(), [t(Closed, Open)]);
    });
}

/// A time window of two 50 ms buckets holds two old successes in bucket 0.
/// A thread records while the main thread moves time on to bucket 2 (the
/// same slot) and records: the old calls never count again, main's call is
/// always counted, and the thread's counts only if it read the new time.
#[test]
fn w2_a_bucket_reused_while_a_thread_records() {
    model(
        &[
            "thread's call in the old bucket",
            "thread's call in the new bucket",
        ],
        |seen| {
            let (b, clock, _events) =
                breaker(|c| c.time_window(Duration::from_millis(100)).window_buckets(2));
            assert!(!record(&b, Outcome::Success) && !record(&b, Outcome::Success));
            assert_eq!(b.window_calls(), Some(2));
            let [(), ()] = b.race(
                move |b| {
                    clock.advance(Duration::from_millis(100));
                    record(b, Outcome::Success);
                },
                |b| {
                    record(b, Outcome::Success);
                },
            );
            let calls = b.window_calls().expect("a window");
            seen.hit(match calls {
                1 => "thread's call in the old bucket",
                2 => "thread's call in the new bucket",
                n => panic!("{n} calls in the window: old counts kept or new ones lost"),
            });
        },
    );
}
