//! Observers of a breaker's decisions.
//!
//! Listeners run on the thread that made the decision, after the new state is
//! visible, and never under a lock (there is none). A transition is reported
//! exactly once, by the thread whose compare-and-swap made it.

use crate::breaker::CircuitBreaker;
use crate::machine::state::State;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Callbacks for a breaker's events. Every method defaults to doing nothing.
///
/// A listener that panics cannot corrupt the breaker: the state change it
/// reports is already done. The remaining listeners still run, then the
/// panic resumes on the calling thread.
///
/// ```
/// use breakerbox::{CircuitBreaker, Listener, State};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// /// Counts the rejections of every breaker it is attached to.
/// #[derive(Default)]
/// struct Rejections(AtomicUsize);
///
/// impl Listener for Rejections {
///     fn rejected(&self, breaker: &CircuitBreaker, state: State) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         eprintln!("{} rejected a call ({state})", breaker.display_name());
///     }
/// }
///
/// let rejections = Arc::new(Rejections::default());
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .shared_listener(rejections.clone())
///     .build()?;
/// breaker.open();
/// assert!(breaker.try_acquire().is_err());
/// assert_eq!(rejections.0.load(Ordering::Relaxed), 1);
/// # Ok::<(), breakerbox::ConfigError>(())
/// ```
pub trait Listener: Send + Sync + 'static {
    /// A call is about to ask for a permit.
    fn before_call(&self, _breaker: &CircuitBreaker) {}
    /// The breaker moved from `from` to `to`.
    fn state_change(&self, _breaker: &CircuitBreaker, _from: State, _to: State) {}
    /// A call was recorded as a success.
    fn success(&self, _breaker: &CircuitBreaker) {}
    /// A call was recorded as a failure.
    fn failure(&self, _breaker: &CircuitBreaker) {}
    /// A call was rejected without running.
    fn rejected(&self, _breaker: &CircuitBreaker, _state: State) {}
    /// A call was recorded as ignored.
    fn ignored(&self, _breaker: &CircuitBreaker) {}
    /// The store that shares this breaker's state with a fleet (the `redis`
    /// feature) failed or timed out; the breaker went on deciding by its
    /// fault policy. Never called for a breaker whose state is in memory.
    fn storage_error(&self, _breaker: &CircuitBreaker, _error: &dyn std::error::Error) {}
}

/// Adapts a closure to [`Listener::state_change`].
pub(crate) struct StateChangeFn<F>(pub(crate) F);

impl<F> Listener for StateChangeFn<F>
where
    F: Fn(&str, State, State) + Send + Sync + 'static,
{
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        (self.0)(breaker.display_name(), from, to)
    }
}

/// The breaker's listeners; empty costs one branch.
#[derive(Clone, Default)]
pub(crate) struct Listeners(Box<[Arc<dyn Listener>]>);

impl Listeners {
    pub(crate) fn new(list: Vec<Arc<dyn Listener>>) -> Self {
        Listeners(list.into_boxed_slice())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls `event` on every listener; a panic in one does not skip the rest.
    pub(crate) fn notify(&self, event: impl Fn(&dyn Listener)) {
        let mut first_panic = None;
        for listener in self.0.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event(listener.as_ref()))) {
                first_panic.get_or_insert(panic);
            }
        }
        // While already unwinding (a permit dropped by a panic), a second
        // panic would abort the process: drop it instead.
        if let Some(panic) = first_panic.filter(|_| !std::thread::panicking()) {
            resume_unwind(panic);
        }
    }
}
