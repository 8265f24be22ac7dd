//! # breakerbox
//!
//! A circuit breaker (closed → open → half-open) for hot paths. The whole
//! state is one atomic word changed by compare-and-swap: a healthy call costs
//! an atomic load, half-open admits exactly the configured number of probes,
//! and no lock is ever held, least of all across the protected call.
//!
//! ```
//! use breakerbox::CircuitBreaker;
//!
//! let breaker = CircuitBreaker::builder().name("payments").build().unwrap();
//! match breaker.try_acquire() {
//!     Ok(permit) => {
//!         let ok = true; // call the dependency here
//!         if ok { permit.success(); } else { permit.failure(); }
//!     }
//!     Err(rejected) => eprintln!("{rejected}; serve a fallback"),
//! };
//! ```
#![deny(unsafe_op_in_unsafe_fn, unused_must_use)]
#![warn(missing_docs)]

mod backoff;
mod breaker;
pub mod clock;
mod config;
mod error;
pub mod future;
mod listener;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
mod state;
mod sync;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;
mod window;

pub use backoff::{Backoff, Jitter};
pub use breaker::{CircuitBreaker, InvalidTicket, Mode, Permit, TimedPermit};
pub use config::{
    Builder, DEFAULT_FAIL_MAX, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD,
    MIN_DEFAULT_PROBE_LEASE,
};
pub use error::{ConfigError, Error, Rejected};
pub use listener::Listener;
pub use registry::Registry;
pub use state::{Outcome, Recorded, State, Ticket, Transition};
pub use window::{
    WindowKind, DEFAULT_FAILURE_RATE_THRESHOLD, DEFAULT_MINIMUM_CALLS, DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    DEFAULT_WINDOW_BUCKETS, MAX_WINDOW_BUCKETS,
};
