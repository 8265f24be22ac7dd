//! How each peer crate is built for each case, shared by the bench files
//! (the library of `breakerbox-benches`).

use failsafe::backoff::{self, Constant, EqualJittered};
use failsafe::failure_policy::{self, ConsecutiveFailures, FailurePolicy, OrElse, SuccessRateOverTimeWindow};
use std::time::Duration;

/// failsafe's default policy: success rate over a time window, or else
/// five consecutive failures, with equal-jittered backoff.
pub type FailsafeDefault = failsafe::StateMachine<
    OrElse<SuccessRateOverTimeWindow<EqualJittered>, ConsecutiveFailures<EqualJittered>>,
    (),
>;

/// failsafe's consecutive-failures policy with a constant backoff.
pub type FailsafeConsecutive = failsafe::StateMachine<ConsecutiveFailures<Constant>, ()>;

pub fn failsafe_default() -> FailsafeDefault {
    failsafe::Config::new().build()
}

/// The default policy's machinery (the same EMA window, request counter and
/// consecutive counter) with thresholds that never trip: a required success
/// rate of 0 and `u32::MAX` consecutive failures. Used for the closed-failure
/// case, where the real default would trip after five failures.
pub fn failsafe_default_never_trips() -> FailsafeDefault {
    let jitter = || backoff::equal_jittered(Duration::from_secs(10), Duration::from_secs(300));
    let policy = failure_policy::success_rate_over_time_window(0.0, 5, Duration::from_secs(30), jitter())
        .or_else(failure_policy::consecutive_failures(u32::MAX, jitter()));
    failsafe::Config::new().failure_policy(policy).build()
}

pub fn failsafe_consecutive(fail_max: u32, wait: Duration) -> FailsafeConsecutive {
    let policy = failure_policy::consecutive_failures(fail_max, backoff::constant(wait));
    failsafe::Config::new().failure_policy(policy).build()
}
