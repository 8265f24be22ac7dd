//! Loops for counting instructions per call under callgrind (see
//! `scripts/callgrind.sh`); instruction counts do not move with the
//! machine's noise, unlike timings.
//!
//! `instructions count <case> <calls>` runs `calls` calls of one case (see
//! [`CASES`]; `empty` is the loop alone). Run any other way (as `cargo bench`
//! does) it only checks, quickly, that every case runs.

use breakerbox::{CircuitBreaker, State};
use std::hint::black_box;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A case: its name and a loop of that many calls.
type Case = (&'static str, fn(u64));

const CASES: [Case; 8] = [
    ("closed_success", closed_success),
    ("closed_success_async", closed_success_async),
    ("count_window_success", count_window_success),
    ("time_window_success", time_window_success),
    ("closed_failure", closed_failure),
    ("open_rejection", open_rejection),
    ("half_open_rejection", half_open_rejection),
    ("empty", empty),
];

fn closed_success(calls: u64) {
    let breaker = CircuitBreaker::builder().build().unwrap();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        let _ = black_box(breaker.try_acquire().map(|permit| permit.success()));
    }
    assert_eq!(breaker.state(), State::Closed);
}

/// `call_async` polled once (it resolves on its first poll), no runtime.
fn closed_success_async(calls: u64) {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
    let mut cx = std::task::Context::from_waker(&waker);
    let breaker = CircuitBreaker::builder().build().unwrap();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        let call = std::pin::pin!(breaker.call_async(|| async { Ok::<_, ()>(black_box(1)) }));
        let _ = black_box(std::future::Future::poll(call, &mut cx));
    }
    assert_eq!(breaker.state(), State::Closed);
}

/// A closed success recorded into a count window (`benches/windows.rs`'s).
fn count_window_success(calls: u64) {
    let breaker = CircuitBreaker::builder().count_window(100).build().unwrap();
    windowed_successes(&breaker, calls);
}

/// A closed success recorded into a time window (`benches/windows.rs`'s).
/// Its coarse clock reading goes through the vDSO, which callgrind does not
/// count (see `scripts/callgrind.sh`).
fn time_window_success(calls: u64) {
    let breaker = CircuitBreaker::builder()
        .time_window(Duration::from_secs(60))
        .build()
        .unwrap();
    windowed_successes(&breaker, calls);
}

fn windowed_successes(breaker: &CircuitBreaker, calls: u64) {
    let breaker = black_box(breaker);
    for _ in 0..calls {
        let _ = black_box(breaker.try_acquire().map(|permit| permit.success()));
    }
    assert_eq!(breaker.state(), State::Closed);
    assert!(breaker.window_calls() > Some(0));
}

fn closed_failure(calls: u64) {
    let breaker = CircuitBreaker::builder().fail_max(u32::MAX).build().unwrap();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        let _ = black_box(breaker.try_acquire().map(|permit| permit.failure()));
    }
    assert_eq!(u64::from(breaker.fail_counter()), calls);
}

fn open_rejection(calls: u64) {
    let breaker = CircuitBreaker::builder().reset_timeout(HOUR).build().unwrap();
    breaker.open();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        black_box(breaker.try_acquire().is_err());
    }
    assert_eq!(breaker.state(), State::Open);
}

fn half_open_rejection(calls: u64) {
    let breaker = CircuitBreaker::builder()
        .reset_timeout(HOUR)
        .probe_lease(HOUR)
        .build()
        .unwrap();
    breaker.half_open();
    let probe = breaker.try_acquire().expect("the probe");
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        black_box(breaker.try_acquire().is_err());
    }
    assert_eq!(breaker.probes_in_flight(), 1);
    let _ = probe.success();
}

fn empty(calls: u64) {
    for i in 0..calls {
        black_box(i);
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let names = CASES.map(|(name, _)| name).join(", ");
    match args.first().map(String::as_str) {
        Some("count") => {
            let (Some(case), Some(calls), None) = (args.get(1), args.get(2), args.get(3)) else {
                eprintln!("usage: instructions count <case> <calls>; cases: {names}");
                std::process::exit(2);
            };
            let Some((_, run)) = CASES.iter().find(|(name, _)| name == case) else {
                eprintln!("unknown case {case:?}; cases: {names}");
                std::process::exit(2);
            };
            let Ok(calls) = calls.parse::<u64>() else {
                eprintln!("calls must be a whole number, got {calls:?}");
                std::process::exit(2);
            };
            run(calls);
        }
        // `cargo bench [filter]`: check that every case runs, quickly.
        _ => {
            for (_, run) in CASES {
                run(1000);
            }
            println!("instructions: every case runs ({names}); count them with scripts/callgrind.sh");
        }
    }
}
