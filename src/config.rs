//! Configuration: the builder, its validation, and the live settings that
//! runtime setters change.

use crate::breaker::CircuitBreaker;
use crate::clock::{duration_to_ms, Clock, ClockSource, MonotonicClock};
use crate::error::ConfigError;
use crate::listener::{Listener, Listeners, StateChangeFn};
use crate::state::{LimitSource, Limits, Outcome, State, MAX_HALF_OPEN_COUNT};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::any::Any;
use std::sync::Arc;
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
        0 => Err(ConfigError::Zero { field: "probe_lease" }),
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
    half_open_max_calls: AtomicU32,
    reset_timeout_ms: AtomicU64,
    /// Zero: follow the reset timeout (at least [`MIN_DEFAULT_PROBE_LEASE`]).
    probe_lease_ms: AtomicU64,
    /// The open period's length when a backoff chooses it.
    pub(crate) open_for: crate::backoff::OpenFor,
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
        self.half_open_max_calls.load(Ordering::Acquire)
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
}

impl Settings {
    /// Every limit at once, for a store that sends them along.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            fail_max: self.fail_max(),
            success_threshold: self.success_threshold(),
            half_open_max_calls: self.half_open_max_calls(),
            reset_timeout_ms: self.reset_timeout_ms(),
            probe_lease_ms: self.probe_lease_ms(),
        }
    }

    pub(crate) fn set_fail_max(&self, value: u32) {
        self.fail_max.store(value, Ordering::Release);
    }

    pub(crate) fn set_success_threshold(&self, value: u32) {
        self.success_threshold.store(value, Ordering::Release);
    }

    pub(crate) fn set_half_open_max_calls(&self, value: u32) {
        self.half_open_max_calls.store(value, Ordering::Release);
    }

    pub(crate) fn set_reset_timeout_ms(&self, value: u64) {
        self.reset_timeout_ms.store(value, Ordering::Release);
    }

    pub(crate) fn set_probe_lease_ms(&self, value: u64) {
        self.probe_lease_ms.store(value, Ordering::Release);
    }
}

type Predicate = Box<dyn Fn(&dyn Any) -> bool + Send + Sync>;

/// Sorts a call's error into an [`Outcome`]: ignored first, then excluded
/// (counts as success), else failure.
#[derive(Default)]
pub(crate) struct Classifier {
    ignore: Vec<Predicate>,
    exclude: Vec<Predicate>,
}

impl Classifier {
    pub(crate) fn classify(&self, error: &dyn Any) -> Outcome {
        if self.ignore.iter().any(|p| p(error)) {
            Outcome::Ignored
        } else if self.exclude.iter().any(|p| p(error)) {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

fn predicate<E: 'static>(f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Predicate {
    Box::new(move |error: &dyn Any| error.downcast_ref::<E>().is_some_and(&f))
}

/// Builds a [`CircuitBreaker`]; see [`CircuitBreaker::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    name: String,
    fail_max: u32,
    reset_timeout: Duration,
    success_threshold: u32,
    half_open_max_calls: u32,
    probe_lease: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    listeners: Vec<Arc<dyn Listener>>,
    classifier: Classifier,
    /// The closed state's rule, the shadow mode and the open backoff.
    pub(crate) policy: crate::breaker::PolicyConfig,
    #[cfg(feature = "redis")]
    shared: Option<crate::redis::RedisState>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: String::new(),
            fail_max: DEFAULT_FAIL_MAX,
            reset_timeout: DEFAULT_RESET_TIMEOUT,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
            probe_lease: None,
            clock: None,
            listeners: Vec::new(),
            classifier: Classifier::default(),
            policy: Default::default(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }
}

impl Builder {
    /// The breaker's name, reported to listeners and in metrics.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Consecutive failures in the closed state that trip it (default 5, at least 1).
    pub fn fail_max(mut self, fail_max: u32) -> Self {
        self.fail_max = fail_max;
        self
    }

    /// How long the breaker stays open before it admits a probe (default 60 s).
    /// Kept in whole milliseconds.
    pub fn reset_timeout(mut self, reset_timeout: Duration) -> Self {
        self.reset_timeout = reset_timeout;
        self
    }

    /// Probe successes in half-open needed to close (default 1, 1 to 65,535).
    pub fn success_threshold(mut self, success_threshold: u32) -> Self {
        self.success_threshold = success_threshold;
        self
    }

    /// Probes admitted at once in half-open (default 1, 1 to 65,535).
    pub fn half_open_max_calls(mut self, half_open_max_calls: u32) -> Self {
        self.half_open_max_calls = half_open_max_calls;
        self
    }

    /// How long a probe may stay unrecorded before its slot is reclaimed for
    /// another probe (its ticket then goes stale). Defaults to the reset
    /// timeout, and at least one second.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = Some(lease);
        self
    }

    /// The time source (default: the system's monotonic clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Errors of type `E` for which `predicate` holds count as successes:
    /// the dependency answered (pybreaker's `exclude`).
    pub fn exclude<E: 'static>(mut self, predicate_fn: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.classifier.exclude.push(predicate(predicate_fn));
        self
    }

    /// Errors of type `E` for which `predicate` holds count as neither
    /// success nor failure (resilience4j's `ignoreExceptions`). Checked
    /// before [`Builder::exclude`].
    pub fn ignore<E: 'static>(mut self, predicate_fn: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.classifier.ignore.push(predicate(predicate_fn));
        self
    }

    /// Adds a listener.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Adds a shared listener (one listener can serve many breakers).
    pub fn shared_listener(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Calls `f(name, from, to)` on every transition.
    pub fn on_state_change(self, f: impl Fn(&str, State, State) + Send + Sync + 'static) -> Self {
        self.listener(StateChangeFn(f))
    }

    /// Shares the breaker's state with every breaker of the same namespace
    /// on the same Redis: one logical breaker for a fleet of processes.
    /// See [`crate::redis`] for the consistency model.
    ///
    /// ```no_run
    /// use breakerbox::{redis::RedisState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .name("db")
    ///     .shared(RedisState::connect("redis://127.0.0.1:6379/")?.namespace("checkout-db"))
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn shared(mut self, state: crate::redis::RedisState) -> Self {
        self.shared = Some(state);
        self
    }

    /// Checks every value and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        let probe_lease_ms = self.probe_lease.map(check_probe_lease).transpose()?.unwrap_or(0);
        let settings = Settings {
            fail_max: AtomicU32::new(check_fail_max(self.fail_max)?),
            success_threshold: AtomicU32::new(check_success_threshold(self.success_threshold)?),
            half_open_max_calls: AtomicU32::new(check_half_open_max_calls(self.half_open_max_calls)?),
            reset_timeout_ms: AtomicU64::new(duration_to_ms(self.reset_timeout)),
            probe_lease_ms: AtomicU64::new(probe_lease_ms),
            open_for: crate::backoff::OpenFor::new(self.policy.backoff.is_some()),
        };
        let policy = self.policy.build()?;
        #[cfg(feature = "redis")]
        if self.shared.is_some() && policy.is_some() {
            return Err(ConfigError::Invalid {
                field: "shared",
                expected: "used with the consecutive rule, enforcing, without a backoff",
            });
        }
        let clock = match self.clock {
            Some(clock) => ClockSource::Custom(clock),
            None => ClockSource::Monotonic(MonotonicClock::new()),
        };
        #[allow(unused_mut)]
        let mut listeners = self.listeners;
        #[cfg(feature = "redis")]
        if self.shared.is_some() {
            // First in line: brings the mirror up to date before each call.
            listeners.insert(0, crate::redis::catch_up_listener());
        }
        let breaker = CircuitBreaker::from_parts(
            self.name,
            settings,
            clock,
            Listeners::new(listeners),
            self.classifier,
        )
        .with_policy(policy);
        #[cfg(feature = "redis")]
        let breaker = match self.shared {
            Some(state) => breaker.with_fleet(state),
            None => breaker,
        };
        Ok(breaker)
    }
}
