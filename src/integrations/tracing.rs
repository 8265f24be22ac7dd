//! [`tracing`](https://docs.rs/tracing) events for a breaker's decisions
//! (feature `tracing`).
//!
//! [`TracingListener`] emits, with target `breakerbox` and the field
//! `breaker` set to the breaker's name:
//!
//! | event                    | level                                    | other fields   |
//! |--------------------------|------------------------------------------|----------------|
//! | every state change       | `WARN` when it opens, else `INFO`        | `from`, `to`   |
//! | every rejected call      | `DEBUG` (configurable)                   | `state`        |
//!
//! ```
//! use breakerbox::tracing::TracingListener;
//! use breakerbox::CircuitBreaker;
//!
//! let breaker = CircuitBreaker::builder()
//!     .name("search")
//!     .listener(TracingListener::new())
//!     .build()
//!     .unwrap();
//! # let _ = breaker;
//! ```

use crate::breaker::listener::Listener;
use crate::breaker::CircuitBreaker;
use crate::machine::state::State;
use ::tracing::{event, Level};

/// The `target` of every event.
pub const TARGET: &str = "breakerbox";

/// A [`Listener`] that emits a `tracing` event per transition and per
/// rejection; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TracingListener {
    rejection_level: Level,
}

impl Default for TracingListener {
    fn default() -> Self {
        TracingListener {
            rejection_level: Level::DEBUG,
        }
    }
}

impl TracingListener {
    /// Transitions at `WARN`/`INFO`, rejections at `DEBUG`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The level of rejection events (default `DEBUG`: an open breaker can
    /// reject many calls a second).
    pub fn rejection_level(mut self, level: Level) -> Self {
        self.rejection_level = level;
        self
    }
}

// `event!` needs its level as a constant; one arm per level.
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => event!(target: TARGET, Level::ERROR, $($rest)+),
            Level::WARN => event!(target: TARGET, Level::WARN, $($rest)+),
            Level::INFO => event!(target: TARGET, Level::INFO, $($rest)+),
            Level::DEBUG => event!(target: TARGET, Level::DEBUG, $($rest)+),
            _ => event!(target: TARGET, Level::TRACE, $($rest)+),
        }
    };
}

impl Listener for TracingListener {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        let level = if to == State::Open {
            Level::WARN
        } else {
            Level::INFO
        };
        event_at!(
            level,
            breaker = breaker.display_name(),
            from = %from,
            to = %to,
            "circuit breaker changed state"
        );
    }

    fn rejected(&self, breaker: &CircuitBreaker, state: State) {
        event_at!(
            self.rejection_level,
            breaker = breaker.display_name(),
            state = %state,
            "circuit breaker rejected a call"
        );
    }
}
