//! The seam between the fleet protocol and the client that carries it.
//!
//! The protocol (the one Lua script, its arguments, its reply and the
//! announcements on each namespace's channel) is breakerbox's; a
//! [`Transport`] only moves it. The `redis` crate is one transport
//! ([`RedisState::connect`](super::RedisState::connect)); a host's own client
//! (another language's, a cluster or TLS client) is another, handed over with
//! [`RedisState::with_transport`](super::RedisState::with_transport).
//!
//! A transport needs no knowledge of the script: it runs it by its SHA-1
//! (`EVALSHA`), and on `NOSCRIPT` loads the source and runs it once more.

use super::StorageError;
use std::time::Duration;

/// The fleet script, as a transport sends it.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) source: &'static str,
    pub(crate) sha1: String,
}

impl Script {
    /// The Lua source, for `SCRIPT LOAD` or `EVAL`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The source's SHA-1 in lower-case hex, for `EVALSHA`.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }
}

/// Carries the fleet protocol to one Redis endpoint.
///
/// Every method is bounded: it returns (an error if need be) within the
/// timeout it is given. Implementations are shared by every breaker of a
/// process that uses the same endpoint, from many threads at once.
pub trait Transport: Send + Sync + 'static {
    /// Runs `script` once with one key and `args`, as
    /// `EVALSHA sha1 1 key args...`; on a `NOSCRIPT` error, loads the source
    /// and runs it once more. The reply is an array of integers.
    ///
    /// Must not retry after a failure that may have run the script (a
    /// timeout, a lost connection): an outcome counted twice is worse than
    /// one lost. Errors are [`StorageError`]s of the matching
    /// [`StorageErrorKind`](super::StorageErrorKind).
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError>;

    /// Opens a connection for announcements, within `timeout`.
    fn subscriber(&self, timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError>;

    /// Forgets idle connections after a fault (they may be dead).
    fn reset(&self) {}

    /// A name for the endpoint (a URL with its password masked), for
    /// messages. Transports with equal endpoints may be shared.
    fn endpoint(&self) -> String;
}

/// A subscription connection: one channel per namespace in use.
pub trait Subscriber: Send {
    /// Subscribes to `channel`; returns once the server has confirmed it, so
    /// that a read made afterwards misses no announcement.
    fn subscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), StorageError>;

    /// Unsubscribes from `channel`.
    fn unsubscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), StorageError>;

    /// Waits up to `wait` for one announcement: `Ok(Some((channel,
    /// payload)))`, or `Ok(None)` when none came in time.
    fn next_message(&mut self, wait: Duration) -> Result<Option<(String, String)>, StorageError>;
}
