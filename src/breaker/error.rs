//! Errors: a rejection and a call's own error.

use crate::breaker::name::{Name, UNNAMED};
use crate::machine::state::{Outcome, State};
use std::fmt;
use std::time::Duration;

/// The breaker refused a call without running it.
///
/// Its text names the breaker, so a log with many breakers tells them
/// apart: `circuit breaker 'orders-db' is open: call rejected` (an unnamed
/// one reads `circuit breaker <unnamed> is open: call rejected`). A
/// rejection carries a pointer to its breaker's interned name: no
/// allocation and no shared write.
///
/// ```
/// use breakerbox::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().name("orders-db").build()?;
/// breaker.open();
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert_eq!((rejected.breaker(), rejected.state), ("orders-db", State::Open));
/// assert_eq!(rejected.to_string(), "circuit breaker 'orders-db' is open: call rejected");
/// # Ok::<(), breakerbox::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// The state that refused: [`State::Open`], or [`State::HalfOpen`] with
    /// every probe slot taken.
    pub state: State,
    /// Refused by a shared breaker's `FailClosed` fault policy while its
    /// store is unreachable, not by the fleet's state.
    by_fault_policy: bool,
    /// Milliseconds from the decision's own clock reading to its deadline
    /// (the one subtraction its check already made); [`UNKNOWN`] if not known.
    retry_after_ms: u32,
    breaker: &'static Name,
}

/// No retry-after known (or more than `u32::MAX` ms away).
const UNKNOWN: u32 = u32::MAX;

impl Rejected {
    pub(crate) fn new(state: State, breaker: &'static Name, by_fault_policy: bool) -> Self {
        Rejected {
            state,
            by_fault_policy,
            retry_after_ms: UNKNOWN,
            breaker,
        }
    }

    /// With the time left from the decision's clock reading to its deadline.
    #[inline]
    pub(crate) fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = u32::try_from(ms).unwrap_or(UNKNOWN);
        self
    }

    /// How long until the breaker may admit a probe, from the clock reading
    /// its decision took. Open: the time left of the open period (from a
    /// coarse reading, so it may be longer than the truth by the coarse lag,
    /// never shorter). Half-open with every slot taken: the time left on the
    /// latest probe's lease, an upper bound (a probe recorded sooner frees
    /// its slot sooner). `None` when not known: an open period whose backoff
    /// is not yet published, a rejection by a fault policy, a shared
    /// breaker's fleet rejecting a call its mirror would admit.
    pub fn retry_after(&self) -> Option<Duration> {
        (self.retry_after_ms != UNKNOWN).then(|| Duration::from_millis(u64::from(self.retry_after_ms)))
    }

    /// The name of the breaker that refused ("" when it has none).
    pub fn breaker(&self) -> &'static str {
        self.breaker.as_str()
    }

    /// Whether the fault policy refused the call (a shared breaker under
    /// `FailClosed` whose store is unreachable), not the breaker's state.
    pub fn is_fault_policy(&self) -> bool {
        self.by_fault_policy
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.breaker() {
            "" => write!(f, "circuit breaker {UNNAMED}")?,
            named => write!(f, "circuit breaker '{named}'")?,
        }
        if self.by_fault_policy {
            return f.write_str(": shared state unreachable, call rejected by the FailClosed fault policy");
        }
        write!(f, " is {}: call rejected", self.state)
    }
}

impl std::error::Error for Rejected {}

/// What [`CircuitBreaker::call`](crate::CircuitBreaker::call) returns on error.
///
/// ```
/// use breakerbox::{CircuitBreaker, Error, Outcome};
/// use std::io;
///
/// let breaker = CircuitBreaker::builder()
///     .name("search")
///     .fail_max(1)
///     .exclude(|e: &io::Error| e.kind() == io::ErrorKind::NotFound)
///     .build()?;
///
/// // Excluded: the dependency answered. Not a failure, though it is an error.
/// let err = breaker.call(|| Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))).unwrap_err();
/// assert!(matches!(err, Error::Failed { outcome: Outcome::Success, tripped: false, .. }));
///
/// // A failure, which trips this breaker (fail_max 1); the error is kept whole.
/// let err = breaker.call(|| Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut))).unwrap_err();
/// assert!(err.is_failure() && err.tripped());
/// assert_eq!(err.into_inner().map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
///
/// // Rejected: the operation did not run.
/// let err = breaker.call(|| Ok::<_, io::Error>(())).unwrap_err();
/// assert!(err.is_rejected());
/// assert_eq!(err.to_string(), "circuit breaker 'search' is open: call rejected");
/// # Ok::<(), breakerbox::ConfigError>(())
/// ```
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
        /// Whether recording this call tripped the breaker open. Async
        /// calls resolve once their record is done (for a breaker shared
        /// through Redis, once the fleet answered): it is what the record did.
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
