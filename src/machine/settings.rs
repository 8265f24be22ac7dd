//! The live settings: the limits each decision of the state word reads,
//! changed by runtime setters, and the checks every value passes first.

use crate::machine::backoff::OpenFor;
use crate::machine::clock::duration_to_ms;
use crate::machine::config_error::ConfigError;
use crate::machine::state::{
    LimitSource, Limits, ProbeLimit, ProbeRule, MAX_HALF_OPEN_COUNT, MAX_RATE_PROBES,
};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Default consecutive failures that trip the breaker.
pub const DEFAULT_FAIL_MAX: u32 = 5;
/// Default time the breaker stays open before letting a probe through.
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(60);
/// Default half-open successes needed to close.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// Default probes admitted at once in half-open.
pub const DEFAULT_HALF_OPEN_MAX_CALLS: u32 = 1;
/// The shortest probe lease used when the lease follows the reset timeout.
pub const MIN_DEFAULT_PROBE_LEASE: Duration = Duration::from_secs(1);

pub(crate) fn check_fail_max(value: u32) -> Result<u32, ConfigError> {
    check_count("fail_max", value, u32::MAX)
}

pub(crate) fn check_success_threshold(value: u32) -> Result<u32, ConfigError> {
    check_count("success_threshold", value, MAX_HALF_OPEN_COUNT)
}

pub(crate) fn check_half_open_max_calls(value: u32) -> Result<u32, ConfigError> {
    check_count("half_open_max_calls", value, MAX_HALF_OPEN_COUNT)
}

pub(crate) fn check_probe_lease(value: Duration) -> Result<u64, ConfigError> {
    match duration_to_ms(value) {
        0 => Err(ConfigError::TooShort {
            field: "probe_lease",
            min: Duration::from_millis(1),
        }),
        ms => Ok(ms),
    }
}

fn check_count(field: &'static str, value: u32, max: u32) -> Result<u32, ConfigError> {
    match value {
        0 => Err(ConfigError::Zero { field }),
        v if v > max => Err(ConfigError::TooLarge {
            field,
            max: u64::from(max),
        }),
        v => Ok(v),
    }
}

/// The live limits, changed by runtime setters and read at each decision.
pub(crate) struct Settings {
    fail_max: AtomicU32,
    success_threshold: AtomicU32,
    /// A [`ProbeLimit`]'s bits: one load gives the limit both ways.
    half_open_max_calls: AtomicU64,
    reset_timeout_ms: AtomicU64,
    /// Zero: follow the reset timeout (at least [`MIN_DEFAULT_PROBE_LEASE`]).
    probe_lease_ms: AtomicU64,
    /// The open period's length when a backoff chooses it.
    pub(crate) open_for: OpenFor,
    /// How half-open decides; fixed at build.
    probe_rule: ProbeRule,
}

impl LimitSource for Settings {
    #[inline]
    fn fail_max(&self) -> u32 {
        self.fail_max.load(Ordering::Acquire)
    }

    #[inline]
    fn success_threshold(&self) -> u32 {
        self.success_threshold.load(Ordering::Acquire)
    }

    #[inline]
    fn half_open_max_calls(&self) -> u32 {
        self.probe_limit().count()
    }

    #[inline]
    fn probe_limit(&self) -> ProbeLimit {
        ProbeLimit::from_bits(self.half_open_max_calls.load(Ordering::Acquire))
    }

    #[inline]
    fn reset_timeout_ms(&self) -> u64 {
        self.reset_timeout_ms.load(Ordering::Acquire)
    }

    fn probe_lease_ms(&self) -> u64 {
        match self.probe_lease_ms.load(Ordering::Acquire) {
            0 => self
                .reset_timeout_ms()
                .max(duration_to_ms(MIN_DEFAULT_PROBE_LEASE)),
            ms => ms,
        }
    }

    #[inline]
    fn open_for_ms(&self, episode: u32) -> Option<u64> {
        self.open_for.get(episode, || self.reset_timeout_ms())
    }

    #[inline]
    fn probe_rule(&self) -> ProbeRule {
        self.probe_rule
    }
}

/// The live limits of a breaker known to have no backoff: the open period
/// is the reset timeout, without looking for a published one. The plain
/// breaker's rejection path, which must not pay for a backoff it lacks.
pub(crate) struct NoBackoff<'a>(pub(crate) &'a Settings);

impl LimitSource for NoBackoff<'_> {
    #[inline]
    fn fail_max(&self) -> u32 {
        self.0.fail_max()
    }

    #[inline]
    fn success_threshold(&self) -> u32 {
        self.0.success_threshold()
    }

    #[inline]
    fn half_open_max_calls(&self) -> u32 {
        self.0.half_open_max_calls()
    }

    #[inline]
    fn probe_limit(&self) -> ProbeLimit {
        self.0.probe_limit()
    }

    #[inline]
    fn reset_timeout_ms(&self) -> u64 {
        self.0.reset_timeout_ms()
    }

    #[inline]
    fn probe_lease_ms(&self) -> u64 {
        self.0.probe_lease_ms()
    }

    #[inline]
    fn probe_rule(&self) -> ProbeRule {
        self.0.probe_rule()
    }
}

impl Settings {
    /// Checks every value; `probe_lease` `None` follows the reset timeout.
    pub(crate) fn new(
        fail_max: u32,
        success_threshold: u32,
        half_open_max_calls: u32,
        reset_timeout: Duration,
        probe_lease: Option<Duration>,
    ) -> Result<Settings, ConfigError> {
        let probe_lease_ms = probe_lease.map(check_probe_lease).transpose()?.unwrap_or(0);
        Ok(Settings {
            fail_max: AtomicU32::new(check_fail_max(fail_max)?),
            success_threshold: AtomicU32::new(check_success_threshold(success_threshold)?),
            half_open_max_calls: AtomicU64::new(
                ProbeLimit::new(check_half_open_max_calls(half_open_max_calls)?).to_bits(),
            ),
            reset_timeout_ms: AtomicU64::new(duration_to_ms(reset_timeout)),
            probe_lease_ms: AtomicU64::new(probe_lease_ms),
            open_for: OpenFor::new(false),
            probe_rule: ProbeRule::Successes,
        })
    }

    /// Half-open decides by `rule`; the limits set so far must suit it.
    pub(crate) fn with_probe_rule(mut self, rule: ProbeRule) -> Result<Settings, ConfigError> {
        self.probe_rule = rule;
        self.check_half_open_max_calls(self.half_open_max_calls())?;
        self.check_success_threshold(self.success_threshold())?;
        Ok(self)
    }

    /// `half_open_max_calls` checked, and under the failure-rate rule at
    /// most [`MAX_RATE_PROBES`] (the probe tally's width).
    pub(crate) fn check_half_open_max_calls(&self, value: u32) -> Result<u32, ConfigError> {
        let max = match self.probe_rule {
            ProbeRule::Successes => MAX_HALF_OPEN_COUNT,
            ProbeRule::Rate { .. } => MAX_RATE_PROBES,
        };
        check_count("half_open_max_calls", value, max)
    }

    /// `success_threshold` checked; the failure-rate rule does not read it,
    /// so it must stay at its default there rather than be silently unused.
    pub(crate) fn check_success_threshold(&self, value: u32) -> Result<u32, ConfigError> {
        let value = check_success_threshold(value)?;
        match self.probe_rule {
            ProbeRule::Rate { .. } if value != DEFAULT_SUCCESS_THRESHOLD => Err(ConfigError::Invalid {
                field: "success_threshold",
                expected:
                    "left at 1 with HalfOpenRule::FailureRate, which decides by the probes' failure rate",
            }),
            _ => Ok(value),
        }
    }

    /// Whether half-open decides by the probes' failure rate.
    pub(crate) fn decides_probes_by_rate(&self) -> bool {
        self.probe_rule != ProbeRule::Successes
    }

    /// Each open period's length is then published by the backoff.
    pub(crate) fn with_open_backoff(mut self) -> Settings {
        self.open_for = OpenFor::new(true);
        self
    }

    /// Every limit at once, for a store that sends them along.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            fail_max: self.fail_max(),
            success_threshold: self.success_threshold(),
            half_open_max_calls: self.half_open_max_calls(),
            reset_timeout_ms: self.reset_timeout_ms(),
            probe_lease_ms: self.probe_lease_ms(),
            probe_rule: self.probe_rule,
        }
    }

    pub(crate) fn set_fail_max(&self, value: u32) {
        self.fail_max.store(value, Ordering::Release);
    }

    pub(crate) fn set_success_threshold(&self, value: u32) {
        self.success_threshold.store(value, Ordering::Release);
    }

    pub(crate) fn set_half_open_max_calls(&self, value: u32) {
        self.half_open_max_calls
            .store(ProbeLimit::new(value).to_bits(), Ordering::Release);
    }

    pub(crate) fn set_reset_timeout_ms(&self, value: u64) {
        self.reset_timeout_ms.store(value, Ordering::Release);
    }

    pub(crate) fn set_probe_lease_ms(&self, value: u64) {
        self.probe_lease_ms.store(value, Ordering::Release);
    }
}
