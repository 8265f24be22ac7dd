//! One namespace's keys on a transport: runs the protocol's script for the
//! fleet seam and the watcher.

use super::protocol::{self, BackoffArgs, Op, RateArgs, Reply, Seed, WindowArgs};
use super::transport::Transport;
use super::StorageError;
use crate::machine::backoff::Jitter;
use crate::machine::state::Limits;
use crate::sync::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The keys of one namespace, and the transport that reaches them.
pub(crate) struct Store {
    transport: Arc<dyn Transport>,
    key: String,
    channel: String,
    announce: bool,
    command_timeout: Duration,
    /// The exponential backoff the script applies when a run opens the
    /// fleet; unset: the reset timeout, and the arguments of old.
    backoff: OnceLock<BackoffArgs>,
    /// The failure-rate half-open rule the script decides probes by;
    /// unset: the successes rule, and the arguments of old.
    rate: OnceLock<RateArgs>,
    /// The jitter's random state (xorshift; spread, not secrecy).
    rng: AtomicU64,
}

impl Store {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        namespace: &str,
        announce: bool,
        command_timeout: Duration,
    ) -> Store {
        Store {
            transport,
            key: protocol::state_key(namespace),
            channel: protocol::channel(namespace),
            announce,
            command_timeout,
            backoff: OnceLock::new(),
            rate: OnceLock::new(),
            rng: AtomicU64::new(seed()),
        }
    }

    /// Sends `backoff` with every run from now on.
    pub(crate) fn attach_backoff(&self, backoff: BackoffArgs) {
        let _ = self.backoff.set(backoff);
    }

    /// Sends the failure-rate rule with every run from now on.
    pub(crate) fn attach_rate(&self, rule: RateArgs) {
        let _ = self.rate.set(rule);
    }

    /// A fresh draw for the script's jitter (0 without jitter: nothing to draw).
    fn draw(&self, jitter: Jitter) -> u32 {
        if jitter == Jitter::None {
            return 0;
        }
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let previous = self
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        (step(previous) >> 32) as u32
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Drops every idle connection (after a fault they may be dead).
    pub(crate) fn forget_connections(&self) {
        self.transport.reset();
    }

    /// Runs the script once, within the command timeout. A failed exchange
    /// is never retried: the script may have run, and counting an outcome
    /// twice is worse than losing it.
    pub(crate) fn run(&self, op: Op, seed: &Seed, limits: &Limits) -> Result<Reply, StorageError> {
        self.run_within(op, seed, limits, None, self.command_timeout)
    }

    /// [`Store::run`] for a rate window's record or flush.
    pub(crate) fn run_windowed(
        &self,
        op: Op,
        seed: &Seed,
        limits: &Limits,
        window: &WindowArgs,
    ) -> Result<Reply, StorageError> {
        self.run_within(op, seed, limits, Some(window), self.command_timeout)
    }

    /// The command timeout, the most one exchange may take.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Like [`Store::run`], with a rate window's part if any, within
    /// `timeout` (the command timeout, or what is left of one that began
    /// earlier).
    pub(crate) fn run_within(
        &self,
        op: Op,
        seed: &Seed,
        limits: &Limits,
        window: Option<&WindowArgs>,
        timeout: Duration,
    ) -> Result<Reply, StorageError> {
        let channel = if self.announce { self.channel.as_str() } else { "" };
        let mut args = protocol::arguments(op, channel, seed, limits);
        if let Some(w) = window {
            protocol::push_window_arguments(&mut args, w);
        }
        if let Some(b) = self.backoff.get() {
            protocol::push_backoff_arguments(&mut args, b, self.draw(b.jitter));
        }
        if let Some(rule) = self.rate.get() {
            protocol::push_rate_arguments(&mut args, rule, op);
        }
        let values = self
            .transport
            .eval(protocol::script(), &self.key, &args, timeout)?;
        Reply::parse(&values).ok_or_else(|| StorageError::protocol(&values))
    }
}

/// A seed for the jitter's draws, different in each process and store.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish() | 1
}
