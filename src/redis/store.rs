//! One namespace's keys on a transport: runs the protocol's script for the
//! fleet seam and the watcher.

use super::protocol::{self, Op, Reply, Seed, WindowArgs};
use super::transport::Transport;
use super::StorageError;
use crate::machine::state::Limits;
use std::sync::Arc;
use std::time::Duration;

/// The keys of one namespace, and the transport that reaches them.
pub(crate) struct Store {
    transport: Arc<dyn Transport>,
    key: String,
    channel: String,
    announce: bool,
    command_timeout: Duration,
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
        }
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
        let values = self
            .transport
            .eval(protocol::script(), &self.key, &args, timeout)?;
        Reply::parse(&values).ok_or_else(|| StorageError::protocol(&values))
    }
}
