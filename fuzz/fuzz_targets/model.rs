//! Random operation sequences against the specification's reference model
//! (`tests/spec`, shared with `tests/model.rs`): acquire, records of any
//! outcome (again, late, and with a duration), forced states, every setter,
//! and time moving on a `ManualClock`, for the consecutive rule and for count
//! and time windows (failure rate, minimum calls, slow calls) under either
//! half-open rule. Any disagreement panics, which the fuzzer reports.
#![no_main]

use breakerbox::{Outcome, State};
use libfuzzer_sys::fuzz_target;

#[path = "../../integration/tests/spec/mod.rs"]
mod spec;

use spec::{check, Config, Op, WindowKind, WindowSpec};

/// Reads bytes as the configuration (11 bytes), then as two-byte operations.
fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (w, rules) = (byte(5), byte(10));
    let window = (w % 3 != 0).then(|| WindowSpec {
        kind: match w % 3 {
            1 => WindowKind::Count(1 + u32::from(byte(6) % 12)),
            _ => WindowKind::Time(10 + u64::from(byte(6))),
        },
        buckets: 1 + u32::from(byte(7) % 16),
        minimum_calls: 1 + u32::from(byte(8) % 8),
        slow_ms: (byte(9) % 3 != 0).then(|| 20 + u64::from(byte(9) % 100)),
        slow_pct: [50, 100][usize::from(byte(9) / 128)],
    });
    let rate_probes = rules % 2 == 1;
    let config = Config {
        fail_max: 1 + u32::from(byte(0) % 6),
        // The failure-rate rule keeps it at 1.
        success_threshold: if rate_probes {
            1
        } else {
            1 + u32::from(byte(1) % 4)
        },
        // Up to 20, so episodes with more probes than are told apart occur.
        half_open_max_calls: 1 + u32::from(byte(2) % 20),
        reset_ms: u64::from(byte(3)),
        lease_ms: 1 + u64::from(byte(4)),
        window,
        rate_probes,
        failure_pct: [25, 50, 60, 100][usize::from(rules / 2 % 4)],
    };
    let outcome = |b: u8| [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(b % 3)];
    let ops = data
        .get(11..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| {
            let (kind, arg) = (pair[0], pair[1]);
            match kind % 16 {
                0..=4 => Op::Acquire,
                5..=7 => Op::Record(usize::from(arg), outcome(kind / 16)),
                // Index and duration (0 to 280 ms) from one byte.
                8 | 9 => Op::RecordTimed(usize::from(arg / 8), outcome(kind / 16), u64::from(arg % 8) * 40),
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
