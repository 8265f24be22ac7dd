//! Errors: a rejection, a call's own error, and bad configuration.

use crate::state::State;
use std::fmt;
use std::time::Duration;

/// The breaker refused a call without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that refused: [`State::Open`], or [`State::HalfOpen`] with
    /// every probe slot taken.
    pub state: State,
    /// Milliseconds until a probe may be admitted; `UNKNOWN` if not known.
    /// A bare integer keeps a rejection (and every `Result` holding one) small.
    retry_after_ms: u64,
}

const UNKNOWN: u64 = u64::MAX;

impl Rejected {
    pub(crate) fn new(state: State, retry_after_ms: Option<u64>) -> Rejected {
        Rejected {
            state,
            retry_after_ms: retry_after_ms.map_or(UNKNOWN, |ms| ms.min(UNKNOWN - 1)),
        }
    }

    /// How long until the breaker may admit a probe. Open: the time left
    /// until the open period ends (read with the coarse clock, so it may be
    /// longer than the truth by the coarse lag, never shorter). Half-open
    /// with every slot taken: the time left on the latest probe's lease, an
    /// upper bound (a probe recorded sooner frees its slot sooner). `None`
    /// when not known (an open period whose backoff is not yet published, or
    /// a custom clock that reads no time).
    pub fn retry_after(&self) -> Option<Duration> {
        (self.retry_after_ms != UNKNOWN).then(|| Duration::from_millis(self.retry_after_ms))
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker is {}: call rejected", self.state)
    }
}

impl std::error::Error for Rejected {}

/// What [`CircuitBreaker::call`](crate::CircuitBreaker::call) returns on error.
#[derive(Debug)]
pub enum Error<E> {
    /// The breaker rejected the call; the operation did not run.
    Rejected(Rejected),
    /// The operation ran and returned its own error, which is kept whole.
    Failed {
        /// The operation's error.
        error: E,
        /// Whether recording this failure tripped the breaker open.
        tripped: bool,
    },
}

impl<E> Error<E> {
    /// Whether the breaker rejected the call without running it.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// Whether this call's failure tripped the breaker open.
    pub fn tripped(&self) -> bool {
        matches!(self, Error::Failed { tripped: true, .. })
    }

    /// The operation's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Failed { error, .. } => Some(error),
            Error::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(r) => r.fmt(f),
            Error::Failed {
                error,
                tripped: false,
            } => error.fmt(f),
            Error::Failed { error, tripped: true } => write!(f, "{error} (this failure tripped the breaker)"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rejected(_) => None,
            Error::Failed { error, .. } => Some(error),
        }
    }
}

/// A configuration value out of range. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The named field must be at least 1.
    Zero {
        /// The field, as the builder method names it.
        field: &'static str,
    },
    /// The named field is outside what it accepts.
    Invalid {
        /// The field, as the builder method names it.
        field: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// The named field is above what the state word can count.
    TooLarge {
        /// The field, as the builder method names it.
        field: &'static str,
        /// The largest accepted value.
        max: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must be at least 1"),
            ConfigError::TooLarge { field, max } => write!(f, "{field} must be at most {max}"),
            ConfigError::Invalid { field, expected } => write!(f, "{field} must be {expected}"),
        }
    }
}

impl std::error::Error for ConfigError {}
