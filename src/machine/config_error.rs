//! Bad configuration: the one error every setting's check returns.

use std::fmt;
use std::time::Duration;

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
    /// [`RedisState::require_reachable`](crate::redis::RedisState::require_reachable)
    /// was asked for and the first sync with Redis failed.
    #[cfg(feature = "redis")]
    Unreachable {
        /// What kind of fault the first sync met.
        kind: super::events::StorageErrorKind,
    },
    /// The named duration is below the shortest accepted (durations are
    /// kept in whole milliseconds, rounded down).
    TooShort {
        /// The field, as the builder method names it.
        field: &'static str,
        /// The shortest accepted duration.
        min: Duration,
    },
    /// A [`Registry`](crate::Registry) keeps named breakers only; the name
    /// asked for was empty.
    Unnamed,
    /// The named field is outside what it accepts.
    Invalid {
        /// The field, as the builder method names it.
        field: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must be at least 1"),
            ConfigError::TooLarge { field, max } => write!(f, "{field} must be at most {max}"),
            #[cfg(feature = "redis")]
            ConfigError::Unreachable { kind } => write!(
                f,
                "shared: the first sync with Redis failed ({kind:?}) and require_reachable() was set"
            ),
            ConfigError::TooShort { field, min } => {
                write!(f, "{field} must be at least {} ms", min.as_millis())
            }
            ConfigError::Unnamed => f.write_str("a registered breaker needs a name: got \"\""),
            ConfigError::Invalid { field, expected } => write!(f, "{field} must be {expected}"),
        }
    }
}

impl std::error::Error for ConfigError {}
