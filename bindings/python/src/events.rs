//! The core's listener seam, bridged to Python without touching the GIL.
//!
//! The core reports transitions (and store faults) synchronously, on the
//! thread that made the decision, possibly while the GIL is released around
//! a Redis round trip. [`Bridge`] only queues them in a thread-local list;
//! the binding drains that list right after the core call returns, with the
//! GIL held, and hands the events to the Python listeners in pybreaker's
//! order.

use breakerbox::{CircuitBreaker, Listener, Mode, State};
use std::cell::RefCell;

/// One thing a Python listener is told about.
pub(crate) enum Event {
    Transition {
        from: State,
        to: State,
    },
    StorageError(String),
    /// A shadow-mode breaker admitted a call it would have rejected.
    WouldReject,
}

thread_local! {
    static PENDING: RefCell<Vec<(usize, Event)>> = const { RefCell::new(Vec::new()) };
}

fn key(breaker: &CircuitBreaker) -> usize {
    breaker as *const CircuitBreaker as usize
}

fn push(breaker: &CircuitBreaker, event: Event) {
    PENDING.with(|p| {
        if let Ok(mut list) = p.try_borrow_mut() {
            list.push((key(breaker), event));
        }
    });
}

/// Where this thread's queue ends now: see [`adopt`].
pub(crate) fn mark() -> usize {
    PENDING.with(|p| p.try_borrow().map_or(0, |list| list.len()))
}

/// Gives `breaker` the events queued on this thread since `mark`: those of
/// its own build, reported while it was still being made (at another
/// address than the one it ends up at).
pub(crate) fn adopt(mark: usize, breaker: &CircuitBreaker) {
    let k = key(breaker);
    PENDING.with(|p| {
        if let Ok(mut list) = p.try_borrow_mut() {
            for (owner, _) in list.iter_mut().skip(mark) {
                *owner = k;
            }
        }
    });
}

/// Takes the events `breaker` queued on this thread; nothing allocated when
/// there are none (the usual case).
pub(crate) fn take(breaker: &CircuitBreaker) -> Vec<Event> {
    let k = key(breaker);
    PENDING.with(|p| match p.try_borrow_mut() {
        Ok(mut list) if !list.is_empty() => {
            let (mine, others): (Vec<_>, Vec<_>) = list.drain(..).partition(|(owner, _)| *owner == k);
            *list = others;
            mine.into_iter().map(|(_, e)| e).collect()
        }
        _ => Vec::new(),
    })
}

/// The one core listener of every Python-made breaker.
pub(crate) struct Bridge;

impl Listener for Bridge {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        push(breaker, Event::Transition { from, to });
    }

    fn storage_error(&self, breaker: &CircuitBreaker, error: &dyn std::error::Error) {
        push(breaker, Event::StorageError(error.to_string()));
    }

    /// Only a shadow mode's would-be rejections: the binding reports real
    /// ones itself, from the rejection it is handed.
    fn rejected(&self, breaker: &CircuitBreaker, _state: State) {
        if breaker.mode() == Mode::MetricsOnly {
            push(breaker, Event::WouldReject);
        }
    }
}
