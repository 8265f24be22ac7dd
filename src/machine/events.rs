//! What a cold path owes the listeners: the changes of the state word its
//! compare-and-swaps made, and any storage fault, reported in order once
//! the path is done (never from inside it, so a panicking listener cannot
//! leave a decision half made).

use crate::machine::state::Transition;
use std::time::Instant;

/// How the store behind a shared breaker is doing; see
/// [`CircuitBreaker::storage_health`](crate::CircuitBreaker::storage_health).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageHealth {
    /// Whether calls reach the store; `false`: they decide by the fault
    /// policy while the watcher reconnects.
    pub reachable: bool,
    /// Since when it is so (since the build, if it never changed).
    pub since: Instant,
    /// The latest fault met, if any, as its message.
    pub last_error: Option<String>,
}

#[cfg(feature = "redis")]
/// What kind of fault the store met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The Redis URL could not be parsed.
    InvalidUrl,
    /// Redis did not answer within the timeout.
    Timeout,
    /// The connection failed or was lost.
    Unreachable,
    /// Redis answered with an error.
    Server,
    /// Redis answered something the breaker does not understand.
    Protocol,
    /// The watcher thread could not be started.
    Thread,
}

/// Events of one cold path. More transitions than fit cannot happen in one
/// call (a catch-up, the call's own change, a reconcile); the last is kept.
#[derive(Default)]
pub(crate) struct Events {
    transitions: [Option<Transition>; 4],
    len: usize,
    storage_error: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Events {
    /// Notes a change the word made, if any.
    pub(crate) fn transition(&mut self, transition: Option<Transition>) {
        if let Some(t) = transition {
            let at = self.len.min(self.transitions.len() - 1);
            self.transitions[at] = Some(t);
            self.len = at + 1;
        }
    }

    /// Notes a fault of the store; the latest is reported.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn storage_error(&mut self, error: impl std::error::Error + Send + Sync + 'static) {
        self.storage_error = Some(Box::new(error));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0 && self.storage_error.is_none()
    }

    /// The changes in order.
    pub(crate) fn transitions(&self) -> impl Iterator<Item = Transition> + '_ {
        self.transitions.iter().take(self.len).flatten().copied()
    }

    /// The fault first (it explains the changes), then the changes in order.
    pub(crate) fn drain(
        self,
        mut on_error: impl FnMut(&(dyn std::error::Error + 'static)),
        mut on_transition: impl FnMut(Transition),
    ) {
        if let Some(error) = &self.storage_error {
            on_error(error.as_ref());
        }
        for t in self.transitions.into_iter().take(self.len).flatten() {
            on_transition(t);
        }
    }
}
