//! # breakerbox
//!
//! A circuit breaker (closed → open → half-open) for hot paths. The whole
//! state is one atomic word changed by compare-and-swap: a healthy call costs
//! an atomic load, half-open admits exactly the configured number of probes
//! however many threads race for them, and no lock is ever held, least of all
//! across the protected call.
//!
//! # Use it
//!
//! ```
//! use breakerbox::{CircuitBreaker, Error, Outcome};
//! use std::time::Duration;
//! # #[derive(Debug)] enum DbError { NotFound, Cancelled, Timeout }
//! # impl std::fmt::Display for DbError {
//! #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
//! # }
//! # impl std::error::Error for DbError {}
//! # fn query() -> Result<u32, DbError> { Err(DbError::Timeout) }
//!
//! let breaker = CircuitBreaker::builder()
//!     .name("orders-db")
//!     .fail_max(5)                              // consecutive failures that trip it
//!     .reset_timeout(Duration::from_secs(30))   // open this long, then one probe
//!     .exclude(|e: &DbError| matches!(e, DbError::NotFound))  // it answered: a success
//!     .ignore(|e: &DbError| matches!(e, DbError::Cancelled))  // counts as neither
//!     .on_state_change(|name, from, to| eprintln!("{name}: {from} -> {to}"))
//!     .build()?;
//!
//! match breaker.call(query) {
//!     Ok(rows) => println!("{rows} rows"),
//!     Err(Error::Rejected(rejected)) => eprintln!("{rejected}; serving a fallback"), // did not run
//!     Err(Error::Failed { error, outcome: Outcome::Failure, tripped }) => {
//!         eprintln!("orders-db failed: {error} (tripped: {tripped})")
//!     }
//!     Err(Error::Failed { error, .. }) => eprintln!("answered: {error}"), // excluded or ignored
//! }
//!
//! // Or split, around code that is not a closure:
//! if let Ok(permit) = breaker.try_acquire() {
//!     match query() {
//!         Ok(_) => permit.success(),
//!         Err(_) => permit.failure(), // dropping a permit unrecorded also counts as a failure
//!     };
//! }
//! # Ok::<(), breakerbox::ConfigError>(())
//! ```
//!
//! # How it behaves
//!
//! - **Closed**: calls run. A success resets the consecutive-failure count; a
//!   failure adds one; reaching `fail_max` trips it open.
//! - **Open**: calls are rejected without running ([`Rejected`], naming the
//!   breaker) until `reset_timeout` has passed; the next acquire then moves
//!   it to half-open. There is no timer thread.
//! - **Half-open**: at most `half_open_max_calls` probes run at once; probe
//!   successes up to `success_threshold` close it, a probe failure re-opens.
//!   A probe never recorded is reclaimed after the probe lease.
//! - **Outcomes**: every call ends as [`Outcome::Success`],
//!   [`Outcome::Failure`] or [`Outcome::Ignored`]. The builder's
//!   [`exclude`](Builder::exclude) and [`ignore`](Builder::ignore) predicates
//!   sort errors, including errors boxed as `Box<dyn Error>` and along their
//!   `source()` chain; [`Error::Failed`] says which way each was counted.
//! - **Listeners** ([`Listener`]) run on the thread that made the decision,
//!   after the new state is visible; each transition is reported once.
//! - **Time** comes through the [`clock`] seam: tests use
//!   [`clock::ManualClock`] and never sleep.
//! - **Manual control and runtime setters**: [`CircuitBreaker::open`],
//!   [`half_open`](CircuitBreaker::half_open),
//!   [`close`](CircuitBreaker::close), `set_fail_max`, `set_reset_timeout`,
//!   `set_success_threshold`, `set_half_open_max_calls`, `set_probe_lease`
//!   (each returns a `Result`; bad values are a [`ConfigError`] naming the
//!   option and unit, and change nothing).
//!
//! # Modules and features
//!
//! | | feature | what |
//! |---|---|---|
//! | [`future`] | — | async calls on any executor; a cancelled call counts as ignored |
//! | [`registry`] | — | one named breaker per dependency, listed for a health endpoint |
//! | [`clock`] | — | the time seam and [`clock::ManualClock`] |
//! | `tower` | `tower` | a `Layer` putting a breaker in front of any service |
//! | `metrics` | `metrics` | counters and a state gauge through the `metrics` facade |
//! | `tracing` | `tracing` | an event per transition and rejection |
//! | `llm` | `llm` | a breaker per LLM provider, errors that name it |
//! | `redis` | `redis` | one breaker for a fleet of processes, shared through Redis |
//! | — | `anyhow` | `exclude`/`ignore` also look inside an `anyhow::Error` |
//!
//! The C ABI is the separate `breakerbox-ffi` crate (`ffi/`); the README
//! shows how to install and link it.
#![deny(unsafe_op_in_unsafe_fn, unused_must_use)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, bottom up; each imports only the ones before it: the loom
// seam, the core (the state word and what it reads), the shared backend
// (the fleet protocol and its transports), the breaker and its API, the
// integrations.
mod breaker;
mod integrations;
mod machine;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod sync;

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub use integrations::llm;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use integrations::metrics;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use integrations::tower;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use integrations::tracing;
pub use integrations::{future, registry};
pub use machine::clock;

pub use breaker::builder::Builder;
pub use breaker::error::{Error, Rejected};
pub use breaker::listener::Listener;
pub use breaker::{CircuitBreaker, HalfOpenRule, InvalidTicket, Mode, Permit, TimedPermit};
pub use integrations::registry::Registry;
pub use machine::backoff::{Backoff, Jitter};
pub use machine::config_error::ConfigError;
pub use machine::events::StorageHealth;
pub use machine::settings::{
    DEFAULT_FAIL_MAX, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD,
    MIN_DEFAULT_PROBE_LEASE,
};
pub use machine::state::{Outcome, Recorded, State, Ticket, Transition};
pub use machine::window::{
    WindowKind, DEFAULT_FAILURE_RATE_THRESHOLD, DEFAULT_MINIMUM_CALLS, DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    DEFAULT_WINDOW_BUCKETS, MAX_WINDOW_BUCKETS,
};
