//! Metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): any exporter installed as the recorder (Prometheus,
//! StatsD, ...) sees every breaker.
//!
//! [`MetricsListener`] emits, each labelled `breaker="<name>"` plus any
//! labels added with [`MetricsListener::label`]:
//!
//! | series                               | kind    | meaning                                        |
//! |--------------------------------------|---------|------------------------------------------------|
//! | `breakerbox_successes_total`         | counter | calls recorded as successes                    |
//! | `breakerbox_failures_total`          | counter | calls recorded as failures                     |
//! | `breakerbox_ignored_total`           | counter | calls recorded as ignored                      |
//! | `breakerbox_rejections_total`        | counter | calls rejected without running                 |
//! | `breakerbox_transitions_total`       | counter | state changes, also labelled `from` and `to`   |
//! | `breakerbox_state`                   | gauge   | 0 closed, 1 open, 2 half-open                  |
//! | `breakerbox_failure_rate`            | gauge   | the window's failure rate, percent (windowed breakers) |
//! | `breakerbox_slow_call_rate`          | gauge   | the window's slow-call rate, percent (with slow calls configured) |
//!
//! The two rate gauges exist only for a breaker with a count or time
//! window (the slow-call one only with `slow_call_duration`). They read
//! NaN while the window holds fewer than `minimum_calls` calls (the rate is
//! unknown), as after every transition, which empties the window. They are
//! set when a failure is recorded and on every transition, never on a
//! success, so the hot path stays as it is: a gauge shows the window as of
//! the latest failure or transition. Successes since (slow ones included)
//! and buckets that have aged out of a time window since are not in it, so
//! the failure rate may read high and the slow-call rate low until the next
//! failure. Setting them reads the whole window once per failure.
//!
//! The handles are resolved once, on the breaker's first event, so install
//! the recorder before the breaker is used. Give each breaker its own
//! listener (a [`Registry`](crate::Registry) configuration closure makes a
//! fresh one per breaker); a listener shared by breakers of different names
//! still labels each correctly, resolving the handles of any breaker other
//! than the first at every event.
//!
//! ```
//! use breakerbox::metrics::MetricsListener;
//! use breakerbox::CircuitBreaker;
//!
//! MetricsListener::describe();
//! let breaker = CircuitBreaker::builder()
//!     .name("payments")
//!     .listener(MetricsListener::new().label("team", "checkout"))
//!     .build()
//!     .unwrap();
//! # let _ = breaker;
//! ```

use crate::breaker::listener::Listener;
use crate::breaker::CircuitBreaker;
use crate::machine::state::State;
use ::metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge, Label};
use std::sync::OnceLock;

/// Name of the success counter.
pub const SUCCESSES: &str = "breakerbox_successes_total";
/// Name of the failure counter.
pub const FAILURES: &str = "breakerbox_failures_total";
/// Name of the ignored-call counter.
pub const IGNORED: &str = "breakerbox_ignored_total";
/// Name of the rejection counter.
pub const REJECTIONS: &str = "breakerbox_rejections_total";
/// Name of the transition counter (labelled `from` and `to` as well).
pub const TRANSITIONS: &str = "breakerbox_transitions_total";
/// Name of the state gauge: 0 closed, 1 open, 2 half-open.
pub const STATE: &str = "breakerbox_state";
/// Name of the failure-rate gauge, in percent (windowed breakers only).
pub const FAILURE_RATE: &str = "breakerbox_failure_rate";
/// Name of the slow-call rate gauge, in percent (with slow calls configured).
pub const SLOW_CALL_RATE: &str = "breakerbox_slow_call_rate";

/// The value [`STATE`] takes for `state`.
pub fn state_value(state: State) -> f64 {
    match state {
        State::Closed => 0.0,
        State::Open => 1.0,
        State::HalfOpen => 2.0,
    }
}

/// A [`Listener`] that counts a breaker's events through the `metrics`
/// facade; see the [module docs](self).
#[derive(Debug, Default)]
pub struct MetricsListener {
    extra: Vec<(String, String)>,
    handles: OnceLock<(Box<str>, Handles)>,
}

#[derive(Debug)]
struct Handles {
    successes: Counter,
    failures: Counter,
    ignored: Counter,
    rejections: Counter,
    state: Gauge,
    /// Present for a windowed breaker only.
    failure_rate: Option<Gauge>,
    /// Present with slow calls configured only.
    slow_call_rate: Option<Gauge>,
}

impl Handles {
    /// Sets the rate gauges from one reading of the window (NaN: unknown).
    fn set_rates(&self, breaker: &CircuitBreaker) {
        if self.failure_rate.is_none() {
            return;
        }
        let (failure, slow) = breaker.window_rates().unwrap_or((None, None));
        let value = |rate: Option<f32>| rate.map_or(f64::NAN, f64::from);
        if let Some(g) = &self.failure_rate {
            g.set(value(failure));
        }
        if let Some(g) = &self.slow_call_rate {
            g.set(value(slow));
        }
    }
}

impl MetricsListener {
    /// A listener labelling series with the breaker's name only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a constant label to every series (e.g. `provider`, `team`).
    /// The key `breaker` is reserved for the breaker's name.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// Registers descriptions of every series with the installed recorder.
    pub fn describe() {
        describe_counter!(SUCCESSES, "Calls recorded as successes by a circuit breaker");
        describe_counter!(FAILURES, "Calls recorded as failures by a circuit breaker");
        describe_counter!(IGNORED, "Calls recorded as neither success nor failure");
        describe_counter!(
            REJECTIONS,
            "Calls a circuit breaker rejected without running them"
        );
        describe_counter!(TRANSITIONS, "Circuit breaker state changes");
        describe_gauge!(STATE, "Circuit breaker state: 0 closed, 1 open, 2 half-open");
        describe_gauge!(
            FAILURE_RATE,
            "Failure rate of a circuit breaker's window, percent, as of its latest failure or transition"
        );
        describe_gauge!(
            SLOW_CALL_RATE,
            "Slow-call rate of a circuit breaker's window, percent, as of its latest failure or transition"
        );
    }

    fn labels(&self, breaker: &CircuitBreaker) -> Vec<Label> {
        let mut labels = Vec::with_capacity(1 + self.extra.len());
        labels.push(Label::new("breaker", breaker.name().to_owned()));
        labels.extend(
            self.extra
                .iter()
                .filter(|(k, _)| k != "breaker")
                .map(|(k, v)| Label::new(k.clone(), v.clone())),
        );
        labels
    }

    fn resolve(&self, breaker: &CircuitBreaker) -> Handles {
        let labels = self.labels(breaker);
        let handles = Handles {
            successes: counter!(SUCCESSES, labels.iter()),
            failures: counter!(FAILURES, labels.iter()),
            ignored: counter!(IGNORED, labels.iter()),
            rejections: counter!(REJECTIONS, labels.iter()),
            state: gauge!(STATE, labels.iter()),
            failure_rate: breaker
                .window_calls()
                .map(|_| gauge!(FAILURE_RATE, labels.iter())),
            slow_call_rate: breaker
                .slow_call_rate_configured()
                .then(|| gauge!(SLOW_CALL_RATE, labels.iter())),
        };
        handles.state.set(state_value(breaker.state()));
        handles.set_rates(breaker);
        handles
    }

    fn with_handles(&self, breaker: &CircuitBreaker, event: impl FnOnce(&Handles)) {
        let (name, handles) = self
            .handles
            .get_or_init(|| (breaker.name().into(), self.resolve(breaker)));
        if **name == *breaker.name() {
            event(handles);
        } else {
            event(&self.resolve(breaker));
        }
    }
}

impl Listener for MetricsListener {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        // The state now, rather than `to`: of two racing reports the last
        // one then leaves the gauge at the state the breaker has.
        self.with_handles(breaker, |h| {
            h.state.set(state_value(breaker.state()));
            h.set_rates(breaker);
        });
        let mut labels = self.labels(breaker);
        labels.push(Label::new("from", from.to_string()));
        labels.push(Label::new("to", to.to_string()));
        counter!(TRANSITIONS, labels.iter()).increment(1);
    }

    fn success(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| h.successes.increment(1));
    }

    fn failure(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| {
            h.failures.increment(1);
            h.set_rates(breaker);
        });
    }

    fn ignored(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| h.ignored.increment(1));
    }

    fn rejected(&self, breaker: &CircuitBreaker, _state: State) {
        self.with_handles(breaker, |h| h.rejections.increment(1));
    }
}
