//! The builder: what a breaker is made from, checked once at `build()`.

use crate::backend::Plan;
use crate::breaker::CircuitBreaker;
use crate::clock::{Clock, ClockSource, MonotonicClock};
use crate::error::ConfigError;
use crate::listener::{Listener, Listeners, StateChangeFn};
use crate::settings::Settings;
use crate::settings::{
    DEFAULT_FAIL_MAX, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD,
};
use crate::state::{Outcome, State};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

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
    plan: Plan,
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
            plan: Plan::Local,
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
        self.plan = Plan::Shared(Box::new(state));
        self
    }

    /// Checks every value and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        let settings = Settings::new(
            self.fail_max,
            self.success_threshold,
            self.half_open_max_calls,
            self.reset_timeout,
            self.probe_lease,
        )?;
        let clock = match self.clock {
            Some(clock) => ClockSource::Custom(clock),
            None => ClockSource::Monotonic(MonotonicClock::new()),
        };
        CircuitBreaker::from_parts(
            self.name,
            settings,
            clock,
            Listeners::new(self.listeners),
            self.classifier,
            self.plan,
        )
    }
}
