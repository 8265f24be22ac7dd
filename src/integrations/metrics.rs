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
        };
        handles.state.set(state_value(breaker.state()));
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
        self.with_handles(breaker, |h| h.state.set(state_value(breaker.state())));
        let mut labels = self.labels(breaker);
        labels.push(Label::new("from", from.to_string()));
        labels.push(Label::new("to", to.to_string()));
        counter!(TRANSITIONS, labels.iter()).increment(1);
    }

    fn success(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| h.successes.increment(1));
    }

    fn failure(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| h.failures.increment(1));
    }

    fn ignored(&self, breaker: &CircuitBreaker) {
        self.with_handles(breaker, |h| h.ignored.increment(1));
    }

    fn rejected(&self, breaker: &CircuitBreaker, _state: State) {
        self.with_handles(breaker, |h| h.rejections.increment(1));
    }
}
