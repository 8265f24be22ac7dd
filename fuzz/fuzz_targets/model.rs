//! Random operation sequences against the specification's reference model
//! (`tests/spec`, shared with `tests/model.rs`): acquire, records of any
//! outcome (again, and late), forced states, every setter, and time moving on
//! a `ManualClock`. Any disagreement panics, which the fuzzer reports.
#![no_main]

use breakerbox::{Outcome, State};
use libfuzzer_sys::fuzz_target;

#[path = "../../integration/tests/spec/mod.rs"]
mod spec;

use spec::{check, Config, Op};

/// Reads bytes as the configuration, then as two-byte operations.
fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let config = Config {
        fail_max: 1 + u32::from(byte(0) % 6),
        success_threshold: 1 + u32::from(byte(1) % 4),
        // Up to 20, so episodes with more probes than are told apart occur.
        half_open_max_calls: 1 + u32::from(byte(2) % 20),
        reset_ms: u64::from(byte(3)),
        lease_ms: 1 + u64::from(byte(4)),
    };
    let outcome = |b: u8| [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(b % 3)];
    let ops = data
        .get(5..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| {
            let (kind, arg) = (pair[0], pair[1]);
            match kind % 16 {
                0..=4 => Op::Acquire,
                5..=9 => Op::Record(usize::from(arg), outcome(kind / 16)),
                10 => Op::Force([State::Closed, State::Open, State::HalfOpen][usize::from(arg % 3)]),
                11 => Op::SetFailMax(1 + u32::from(arg % 6)),
                12 => Op::SetSuccessThreshold(1 + u32::from(arg % 4)),
                13 => Op::SetHalfOpenMaxCalls(1 + u32::from(arg % 20)),
                14 if arg % 2 == 0 => Op::SetResetTimeout(u64::from(arg)),
                14 => Op::SetProbeLease(1 + u64::from(arg)),
                _ => Op::Advance(u64::from(arg)),
            }
        })
        .collect();
    (config, ops)
}

fuzz_target!(|data: &[u8]| {
    let (config, ops) = decode(data);
    if let Err(mismatch) = check(config, ops) {
        panic!("the breaker departs from the specification: {mismatch}");
    }
});
