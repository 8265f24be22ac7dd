//! The builder: what a breaker is made from, checked once at `build()`.

use crate::breaker::backend::Plan;
use crate::breaker::listener::{Listener, Listeners, StateChangeFn};
use crate::breaker::CircuitBreaker;
use crate::machine::clock::{Clock, ClockSource, MonotonicClock};
use crate::machine::config_error::ConfigError;
use crate::machine::settings::Settings;
use crate::machine::settings::{
    DEFAULT_FAIL_MAX, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD,
};
use crate::machine::state::{Outcome, State};
use std::any::Any;
use std::error::Error as StdError;
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

fn exact<E: 'static>(f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Predicate {
    Box::new(move |error: &dyn Any| error.downcast_ref::<E>().is_some_and(&f))
}

/// Matches an `E`, or an `E` anywhere in the chain of a boxed error.
fn in_chain<E: StdError + 'static>(f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Predicate {
    Box::new(move |error: &dyn Any| match error.downcast_ref::<E>() {
        Some(e) => f(e),
        None => dyn_error(error).is_some_and(|top| chain(top).any(|e| e.downcast_ref::<E>().is_some_and(&f))),
    })
}

/// The error inside the type-erased wrappers a predicate looks through.
fn dyn_error(error: &dyn Any) -> Option<&(dyn StdError + 'static)> {
    if let Some(e) = error.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return Some(&**e);
    }
    if let Some(e) = error.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(&**e);
    }
    if let Some(e) = error.downcast_ref::<Box<dyn StdError>>() {
        return Some(&**e);
    }
    #[cfg(feature = "anyhow")]
    if let Some(e) = error.downcast_ref::<anyhow::Error>() {
        return Some(e.as_ref());
    }
    None
}

/// Longest `source()` chain searched: a chain that loops must not hang a call.
const MAX_CHAIN: usize = 32;

fn chain<'a>(top: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(top), |&e| e.source()).take(MAX_CHAIN)
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
    /// The closed state's rule, the shadow mode and the open backoff.
    pub(crate) policy: crate::breaker::PolicyConfig,
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
            policy: Default::default(),
        }
    }
}

impl Builder {
    /// The breaker's name, reported to listeners, in rejections and in
    /// metrics. Without one (the default), [`CircuitBreaker::name`] is ""
    /// and messages and listener lines read `<unnamed>`
    /// ([`CircuitBreaker::display_name`]).
    ///
    /// Names are interned for the life of the process, so that a rejection
    /// can carry one without allocating: each distinct name is stored once,
    /// however many breakers share it. Build breakers from a bounded set of
    /// names (one per dependency), not from per-request data.
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
    /// Kept in whole milliseconds, rounded down.
    ///
    /// Every duration is valid. Zero (or below a millisecond) lets the first
    /// call after the breaker opens be the probe: one probe at a time still
    /// decides, so a zero timeout limits a failing dependency to one call in
    /// flight rather than cutting it off. `Duration::MAX` never half-opens by
    /// itself; only [`CircuitBreaker::half_open`] or
    /// [`CircuitBreaker::close`] end the open state.
    pub fn reset_timeout(mut self, reset_timeout: Duration) -> Self {
        self.reset_timeout = reset_timeout;
        self
    }

    /// Probe successes in half-open needed to close (default 1, 1 to 65,535;
    /// must stay 1 under [`HalfOpenRule::FailureRate`](crate::HalfOpenRule)).
    pub fn success_threshold(mut self, success_threshold: u32) -> Self {
        self.success_threshold = success_threshold;
        self
    }

    /// Probes admitted at once in half-open (default 1, 1 to 65,535). Under
    /// [`HalfOpenRule::FailureRate`](crate::HalfOpenRule) it is the number of
    /// probes admitted in all that decide, at most 31.
    pub fn half_open_max_calls(mut self, half_open_max_calls: u32) -> Self {
        self.half_open_max_calls = half_open_max_calls;
        self
    }

    /// How long a probe may stay unrecorded before its slot is reclaimed for
    /// another probe (its ticket then goes stale). Defaults to the reset
    /// timeout, and at least one second. At least 1 ms (kept in whole
    /// milliseconds, rounded down), else a [`ConfigError::TooShort`].
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
    ///
    /// The predicate sees an `E` returned by the call itself, and an `E`
    /// inside a `Box<dyn Error>` (plain, `+ Send`, or `+ Send + Sync`) or,
    /// with the `anyhow` feature, an `anyhow::Error`: the boxed error or any
    /// error along its [`source()`](std::error::Error::source) chain (the
    /// first 32 links). A concrete wrapper of your own (`enum
    /// ServiceError { Db(DbError) }`) is not looked through, as the breaker
    /// cannot see it as a `dyn Error`: give it a predicate of its own, or
    /// return it boxed. For error types that are not `std::error::Error`
    /// (a `String`, a `&'static str`) use [`Builder::exclude_exact`].
    ///
    /// ```
    /// use breakerbox::{CircuitBreaker, Outcome};
    /// # #[derive(Debug)] enum DbError { NotFound, Timeout }
    /// # impl std::fmt::Display for DbError {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
    /// # }
    /// # impl std::error::Error for DbError {}
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .exclude(|e: &DbError| matches!(e, DbError::NotFound))
    ///     .build()?;
    /// assert_eq!(breaker.classify(&DbError::NotFound), Outcome::Success);
    ///
    /// // The same error, boxed by a service that returns `BoxError`:
    /// let boxed: BoxError = Box::new(DbError::NotFound);
    /// assert_eq!(breaker.classify(&boxed), Outcome::Success);
    /// let boxed: BoxError = Box::new(DbError::Timeout);
    /// assert_eq!(breaker.classify(&boxed), Outcome::Failure);
    /// # Ok::<(), breakerbox::ConfigError>(())
    /// ```
    ///
    /// With the `anyhow` feature, through any context added on the way:
    ///
    /// ```
    /// # #[cfg(feature = "anyhow")] {
    /// use anyhow::Context;
    /// use breakerbox::{CircuitBreaker, Outcome};
    /// # #[derive(Debug)] struct NotFound;
    /// # impl std::fmt::Display for NotFound {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("not found") }
    /// # }
    /// # impl std::error::Error for NotFound {}
    ///
    /// let breaker = CircuitBreaker::builder().exclude(|_: &NotFound| true).build().unwrap();
    /// let error = Err::<(), _>(NotFound).context("loading order 7").unwrap_err();
    /// assert_eq!(breaker.classify(&error), Outcome::Success);
    /// # }
    /// ```
    pub fn exclude<E: StdError + 'static>(
        mut self,
        predicate: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.classifier.exclude.push(in_chain(predicate));
        self
    }

    /// Errors of type `E` for which `predicate` holds count as neither
    /// success nor failure (resilience4j's `ignoreExceptions`). Checked
    /// before [`Builder::exclude`]; matches what `exclude` matches (the
    /// error, boxed, or along a boxed error's chain).
    ///
    /// ```
    /// use breakerbox::{CircuitBreaker, Error, Outcome};
    /// # #[derive(Debug)] struct Cancelled;
    /// # impl std::fmt::Display for Cancelled {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("cancelled") }
    /// # }
    /// # impl std::error::Error for Cancelled {}
    ///
    /// let breaker = CircuitBreaker::builder().ignore(|_: &Cancelled| true).build()?;
    /// let err = breaker.call(|| Err::<(), _>(Cancelled)).unwrap_err();
    /// assert_eq!(err.outcome(), Some(Outcome::Ignored));
    /// assert_eq!(breaker.fail_counter(), 0);
    /// # Ok::<(), breakerbox::ConfigError>(())
    /// ```
    pub fn ignore<E: StdError + 'static>(
        mut self,
        predicate: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.classifier.ignore.push(in_chain(predicate));
        self
    }

    /// Like [`Builder::exclude`] for any error type, matching only an
    /// error of exactly type `E` (nothing boxed, no chain).
    ///
    /// ```
    /// # use breakerbox::{CircuitBreaker, Outcome};
    /// let breaker = CircuitBreaker::builder().exclude_exact(|e: &&str| *e == "not found").build()?;
    /// assert_eq!(breaker.classify(&"not found"), Outcome::Success);
    /// # Ok::<(), breakerbox::ConfigError>(())
    /// ```
    pub fn exclude_exact<E: 'static>(
        mut self,
        predicate: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.classifier.exclude.push(exact(predicate));
        self
    }

    /// Like [`Builder::ignore`] for any error type, matching only an error
    /// of exactly type `E` (nothing boxed, no chain).
    pub fn ignore_exact<E: 'static>(
        mut self,
        predicate: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.classifier.ignore.push(exact(predicate));
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

    /// Calls `f(name, from, to)` on every transition; `name` is the
    /// breaker's [`display_name`](CircuitBreaker::display_name) (`<unnamed>`
    /// for a breaker without a name).
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
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
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
        let settings = match self.policy.backoff.is_some() {
            true => settings.with_open_backoff(),
            false => settings,
        };
        let settings = settings.with_probe_rule(self.policy.probe_rule()?)?;
        // A fleet sums rate windows, its script grows an exponential
        // backoff, and a MetricsOnly process watches the fleet's decisions;
        // a custom backoff cannot run in the script, and a Disabled breaker
        // has nothing to share.
        let custom_backoff = matches!(&self.policy.backoff, Some(b) if b.exponential_parts().is_none());
        let not_fleet_wide = custom_backoff || self.policy.mode == crate::breaker::Mode::Disabled;
        let shared = !matches!(self.plan, Plan::Local);
        if not_fleet_wide && shared {
            return Err(ConfigError::Invalid {
                field: "shared",
                expected: "used without Backoff::custom or Mode::Disabled (rate windows, an exponential backoff and MetricsOnly are fleet-wide)",
            });
        }
        let policy = self.policy.build(shared)?;
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
        .map(|breaker| breaker.with_policy(policy))
    }
}
