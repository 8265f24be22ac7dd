//! Model-based test: random sequences of acquire / record (again, late, and
//! with a duration) / force / set / advance-time run against the breaker and
//! against the specification's reference model (`tests/spec`), for the
//! consecutive rule and for count and time windows (failure rate, minimum
//! calls, slow calls) under either half-open rule; states, counters, the
//! window's calls and every decision must agree. The fuzz target `fuzz/fuzz_targets/model.rs` drives
//! the same model with longer, coverage-guided sequences.
#![cfg(not(miri))]

mod spec;

use breakerbox::{Outcome, State};
use proptest::prelude::*;
use spec::{check, Config, Op, WindowKind, WindowSpec};

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignored)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        2 => (any::<usize>(), outcome(), 0u64..300).prop_map(|(i, o, ms)| Op::RecordTimed(i, o, ms)),
        1 => prop_oneof![Just(State::Closed), Just(State::Open), Just(State::HalfOpen)].prop_map(Op::Force),
        1 => (1u32..6).prop_map(Op::SetFailMax),
        1 => (1u32..4).prop_map(Op::SetSuccessThreshold),
        1 => (1u32..4).prop_map(Op::SetHalfOpenMaxCalls),
        1 => (0u64..200).prop_map(Op::SetResetTimeout),
        1 => (1u64..200).prop_map(Op::SetProbeLease),
        3 => (0u64..120).prop_map(Op::Advance),
    ]
}

const CONFIG: Config = Config {
    fail_max: 3,
    success_threshold: 2,
    half_open_max_calls: 2,
    reset_ms: 100,
    lease_ms: 150,
    window: None,
    rate_probes: false,
    failure_pct: 50,
};

/// A count or time window (or none), with slow calls or not, and either
/// half-open rule.
fn config() -> impl Strategy<Value = Config> {
    let kind = prop_oneof![
        (1u32..12).prop_map(WindowKind::Count),
        (10u64..400).prop_map(WindowKind::Time),
    ];
    let window = (
        kind,
        1u32..=16,
        1u32..8,
        prop::option::of(20u64..200),
        prop_oneof![Just(50u32), Just(100u32)],
    )
        .prop_map(|(kind, buckets, minimum_calls, slow_ms, slow_pct)| WindowSpec {
            kind,
            buckets,
            minimum_calls,
            slow_ms,
            slow_pct,
        });
    (
        prop::option::weighted(0.8, window),
        any::<bool>(),
        prop_oneof![Just(25u32), Just(50u32), Just(60u32), Just(100u32)],
        1u32..5,
        1u32..4,
    )
        .prop_map(
            |(window, rate_probes, failure_pct, half_open_max_calls, success_threshold)| Config {
                window,
                rate_probes,
                failure_pct,
                half_open_max_calls,
                success_threshold: if rate_probes { 1 } else { success_threshold },
                ..CONFIG
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_specification(ops in prop::collection::vec(op(), 1..300)) {
        check(CONFIG, ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn windowed_breaker_matches_the_specification(
        config in config(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        check(config, ops).map_err(TestCaseError::fail)?;
    }
}

/// Probes recorded twice, with several in flight and slots taken again in
/// between: the case the count-only implementation got wrong.
#[test]
fn double_records_with_several_probes_follow_the_specification() {
    use Op::*;
    let ops = [
        Force(State::HalfOpen),
        Acquire,
        Acquire,
        Record(0, Outcome::Success),
        Record(0, Outcome::Success),
        Acquire,
        Record(0, Outcome::Ignored),
        Acquire,
        Record(1, Outcome::Ignored),
        Record(1, Outcome::Success),
    ];
    let config = Config {
        success_threshold: 3,
        ..CONFIG
    };
    check(config, ops).unwrap();
}
