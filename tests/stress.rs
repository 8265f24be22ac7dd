//! Many threads, random outcomes, bounded run: never more probes in flight
//! than allowed, and every transition reported exactly once, under the
//! consecutive rule and under each rate window (with a backoff).
#![cfg(not(miri))]

use breakerbox::clock::ManualClock;
use breakerbox::{Backoff, Builder, CircuitBreaker, Jitter, Listener, Outcome, State};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Transitions(Mutex<HashMap<(State, State), u64>>);

impl Listener for Transitions {
    fn state_change(&self, _: &CircuitBreaker, from: State, to: State) {
        assert_ne!(from, to, "a transition changes the state");
        *self.0.lock().unwrap().entry((from, to)).or_default() += 1;
    }
}

/// A tiny xorshift generator, so each thread draws its own outcomes.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn hammer(half_open_max_calls: u32) {
    hammer_with(half_open_max_calls, |b| b.fail_max(3));
}

fn hammer_with(half_open_max_calls: u32, policy: fn(Builder) -> Builder) {
    const THREADS: u64 = 4;
    const CALLS_PER_THREAD: u64 = 60_000;
    let clock = ManualClock::new();
    let transitions = Arc::new(Transitions::default());
    let breaker = Arc::new(
        policy(CircuitBreaker::builder())
            .success_threshold(2)
            .half_open_max_calls(half_open_max_calls)
            .reset_timeout(Duration::from_millis(2))
            // Longer than any run: every probe is recorded, so none may be reclaimed.
            .probe_lease(Duration::from_secs(3600))
            .clock(clock.clone())
            .shared_listener(transitions.clone())
            .build()
            .unwrap(),
    );
    let probes_running = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    let most_probes_seen = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|seed| {
            let (breaker, running, most) =
                (breaker.clone(), probes_running.clone(), most_probes_seen.clone());
            let clock = clock.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let mut admitted = 0u64;
                for _ in 0..CALLS_PER_THREAD {
                    let Ok(permit) = breaker.try_acquire() else {
                        // Rejected callers move time on, so the open state ends.
                        clock.advance(Duration::from_millis(1));
                        continue;
                    };
                    admitted += 1;
                    let probe = permit.is_probe();
                    if probe {
                        // Counted per episode: a probe from an ended episode
                        // may still run, but its record is stale.
                        let episode = permit.episode();
                        let now = {
                            let mut running = running.lock().unwrap();
                            let n = running.entry(episode).or_insert(0);
                            *n += 1;
                            *n
                        };
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        *running.lock().unwrap().get_mut(&episode).unwrap() -= 1;
                    }
                    let outcome = match rng.below(10) {
                        0..=4 => Outcome::Success,
                        5..=8 => Outcome::Failure,
                        _ => Outcome::Ignored,
                    };
                    let _ = permit.record(outcome);
                    if let Some(rate) = breaker.failure_rate() {
                        assert!((0.0..=100.0).contains(&rate), "a failure rate of {rate}%");
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();

    let most = most_probes_seen.load(Ordering::SeqCst);
    assert!(
        most <= half_open_max_calls,
        "{most} probes ran at once, limit {half_open_max_calls}"
    );
    assert!(most >= 1, "the run reached half-open");
    assert!(admitted > 0);

    // Each transition reported exactly once: for every state, entries minus
    // exits is 1 for the final state, -1 for the initial one, else 0.
    let counts = transitions.0.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    assert!(total > 100, "the run exercised many transitions: {counts:?}");
    for state in [State::Closed, State::Open, State::HalfOpen] {
        let entered: i64 = counts
            .iter()
            .filter(|((_, to), _)| *to == state)
            .map(|(_, n)| *n as i64)
            .sum();
        let left: i64 = counts
            .iter()
            .filter(|((from, _), _)| *from == state)
            .map(|(_, n)| *n as i64)
            .sum();
        let expected = i64::from(breaker.state() == state) - i64::from(state == State::Closed);
        assert_eq!(
            entered - left,
            expected,
            "{state}: entered {entered}, left {left}, events {counts:?}"
        );
    }
}

#[test]
fn one_probe_at_most_under_contention() {
    hammer(1);
}

#[test]
fn two_probes_at_most_under_contention() {
    hammer(2);
}

#[test]
fn a_count_window_under_contention() {
    hammer_with(2, |b| {
        b.count_window(20).minimum_calls(10).failure_rate_threshold(30.0)
    });
}

#[test]
fn a_time_window_with_a_backoff_under_contention() {
    hammer_with(1, |b| {
        b.time_window(Duration::from_millis(50))
            .window_buckets(5)
            .minimum_calls(10)
            .failure_rate_threshold(30.0)
            .open_backoff(Backoff::exponential(2.0, Duration::from_millis(16)).jitter(Jitter::Full))
    });
}
