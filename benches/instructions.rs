//! Loops for counting instructions per call under callgrind (see
//! `scripts/callgrind.sh`); instruction counts do not move with the
//! machine's noise, unlike timings.
//!
//! `instructions count <case> <calls>` runs `calls` calls of one case: `closed_success`,
//! `open_rejection` or `empty` (the loop alone). Run without a case (as
//! `cargo bench` does) it only checks that every case runs.

use breakerbox::CircuitBreaker;
use std::hint::black_box;
use std::time::Duration;

fn closed_success(calls: u64) {
    let breaker = CircuitBreaker::builder().build().unwrap();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        let _ = black_box(breaker.try_acquire().map(|permit| permit.success()));
    }
    assert_eq!(breaker.state(), breakerbox::State::Closed);
}

fn open_rejection(calls: u64) {
    let breaker = CircuitBreaker::builder()
        .reset_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    breaker.open();
    let breaker = black_box(&breaker);
    for _ in 0..calls {
        black_box(breaker.try_acquire().is_err());
    }
    assert_eq!(breaker.state(), breakerbox::State::Open);
}

fn empty(calls: u64) {
    for i in 0..calls {
        black_box(i);
    }
}

/// A case: its name and a loop of that many calls.
type Case = (&'static str, fn(u64));

const CASES: [Case; 3] = [
    ("closed_success", closed_success),
    ("open_rejection", open_rejection),
    ("empty", empty),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("count") => {
            let (Some(case), Some(calls), None) = (args.get(1), args.get(2), args.get(3)) else {
                eprintln!("usage: instructions count <closed_success|open_rejection|empty> <calls>");
                std::process::exit(2);
            };
            let Some((_, run)) = CASES.iter().find(|(name, _)| name == case) else {
                eprintln!("unknown case {case:?}; expected closed_success, open_rejection or empty");
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
            println!("instructions: every case runs; count them with scripts/callgrind.sh");
        }
    }
}
