//! Errors: a rejection, a call's own error, and bad configuration.

use crate::state::{Outcome, State};
use std::fmt;
use std::time::Duration;

/// The breaker refused a call without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that refused: [`State::Open`], or [`State::HalfOpen`] with
    /// every probe slot taken.
    pub state: State,
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
    ///
    /// Not every such error was a failure: `outcome` says how the breaker
    /// counted it, so an excluded error (the dependency answered) or an
    /// ignored one is not logged as a failed dependency.
    Failed {
        /// The operation's error.
        error: E,
        /// Whether recording this call tripped the breaker open.
        tripped: bool,
        /// How the builder's predicates classified `error`:
        /// [`Outcome::Failure`], [`Outcome::Success`] (excluded) or
        /// [`Outcome::Ignored`].
        outcome: Outcome,
    },
}

impl<E> Error<E> {
    /// Whether the breaker rejected the call without running it.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// Whether the operation ran and its error was counted as a failure
    /// (neither excluded nor ignored).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Error::Failed {
                outcome: Outcome::Failure,
                ..
            }
        )
    }

    /// How the breaker counted the operation's error, if it ran.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Error::Failed { outcome, .. } => Some(*outcome),
            Error::Rejected(_) => None,
        }
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
                error, tripped: true, ..
            } => write!(f, "{error} (this failure tripped the breaker)"),
            Error::Failed { error, .. } => error.fmt(f),
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
///
/// ```
/// use breakerbox::{CircuitBreaker, ConfigError};
/// use std::time::Duration;
///
/// let err = CircuitBreaker::builder().probe_lease(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.to_string(), "probe_lease must be at least 1 ms");
/// let err = CircuitBreaker::builder().fail_max(0).build().unwrap_err();
/// assert_eq!(err, ConfigError::Zero { field: "fail_max" });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The named field must be at least 1.
    Zero {
        /// The field, as the builder method names it.
        field: &'static str,
    },
    /// The named field is above what the state word can count.
    TooLarge {
        /// The field, as the builder method names it.
        field: &'static str,
        /// The largest accepted value.
        max: u64,
    },
    /// The named duration is below the shortest accepted (durations are
    /// kept in whole milliseconds, rounded down).
    TooShort {
        /// The field, as the builder method names it.
        field: &'static str,
        /// The shortest accepted duration.
        min: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must be at least 1"),
            ConfigError::TooLarge { field, max } => write!(f, "{field} must be at most {max}"),
            ConfigError::TooShort { field, min } => {
                write!(f, "{field} must be at least {} ms", min.as_millis())
            }
        }
    }
}

impl std::error::Error for ConfigError {}
