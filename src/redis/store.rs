//! The Redis side: connections, the one Lua script, and what it answers.

use super::StorageError;
use crate::state::{Limits, Outcome, State, Ticket, Transition, GENERATION_MODULUS};
use redis::{cmd, Client, Cmd, Connection, ErrorKind};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Every fleet transition, as one server-side script.
pub(crate) const SCRIPT: &str = include_str!("fleet.lua");

/// What the script is asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// Read the state (seeding it when missing).
    Sync,
    /// Ask for a permit the mirror could not decide on.
    Acquire,
    /// Record how a call ended.
    Record(Ticket, Outcome),
    /// Move to a state whatever the current one.
    Force(State),
    /// Apply limits that a setter changed.
    Reconcile,
}

/// The state a missing hash is created from: the caller's mirror.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seed {
    pub(crate) state: State,
    pub(crate) generation: u32,
    pub(crate) failures: u32,
    pub(crate) opened_ago_ms: u64,
}

/// The fleet's state as the script reports it; times are ages in ms on the
/// server's clock, so they mean the same on every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawView {
    pub(crate) version: u64,
    pub(crate) state: State,
    pub(crate) generation: u64,
    pub(crate) failures: u32,
    pub(crate) opened_ago_ms: u64,
    pub(crate) in_flight: u32,
    pub(crate) successes: u32,
    pub(crate) probe_ago_ms: u64,
}

/// The script's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    AdmitClosed,
    AdmitProbe,
    Reject,
    Counted,
    Transitioned,
    Stale,
    Noop,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    pub(crate) code: Code,
    pub(crate) view: RawView,
    /// The fleet transition this invocation made, if any.
    pub(crate) transition: Option<Transition>,
}

fn state_from(n: i64) -> Option<State> {
    match n {
        0 => Some(State::Closed),
        1 => Some(State::Open),
        2 => Some(State::HalfOpen),
        _ => None,
    }
}

fn state_arg(state: State) -> u8 {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

fn outcome_arg(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Ignored => 2,
    }
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl RawView {
    fn from_fields(f: &[i64]) -> Option<RawView> {
        let [version, state, generation, failures, opened, in_flight, successes, probe] = *f else {
            return None;
        };
        Some(RawView {
            version: non_negative(version),
            state: state_from(state)?,
            generation: non_negative(generation),
            failures: count(failures),
            opened_ago_ms: non_negative(opened),
            in_flight: count(in_flight),
            successes: count(successes),
            probe_ago_ms: non_negative(probe),
        })
    }

    /// Parses a change announced on the namespace's channel.
    pub(crate) fn parse_announcement(payload: &str) -> Option<RawView> {
        let mut fields = [0i64; 8];
        let mut parts = payload.split(' ');
        for field in fields.iter_mut() {
            *field = parts.next()?.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        RawView::from_fields(&fields)
    }
}

impl Reply {
    fn parse(values: &[i64]) -> Option<Reply> {
        let [code, ref fields @ .., from, to] = *values else {
            return None;
        };
        let code = match code {
            1 => Code::AdmitClosed,
            2 => Code::AdmitProbe,
            3 => Code::Reject,
            4 => Code::Counted,
            5 => Code::Transitioned,
            6 => Code::Stale,
            7 => Code::Noop,
            _ => return None,
        };
        let transition = match (from, to) {
            (-1, -1) => None,
            (from, to) => Some(Transition {
                from: state_from(from)?,
                to: state_from(to)?,
            }),
        };
        let consistent = match code {
            Code::Transitioned => transition.is_some(),
            // Admitting a probe may half-open; forcing may move anywhere.
            Code::AdmitProbe | Code::Noop => true,
            _ => transition.is_none(),
        };
        if !consistent {
            return None;
        }
        Some(Reply {
            code,
            view: RawView::from_fields(fields)?,
            transition,
        })
    }
}

/// Connections to one Redis and the keys of one namespace.
pub(crate) struct Store {
    client: Client,
    key: String,
    channel: String,
    announce: bool,
    sha: String,
    idle: Mutex<Vec<Connection>>,
    command_timeout: Duration,
    connect_timeout: Duration,
}

/// The longest a pool keeps idle connections for: one per thread that
/// talked to Redis at once, up to this many.
const MAX_IDLE: usize = 16;

impl Store {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        announce: bool,
        command_timeout: Duration,
        connect_timeout: Duration,
    ) -> Store {
        Store {
            client,
            key: format!("breakerbox:{{{namespace}}}:state"),
            channel: format!("breakerbox:{{{namespace}}}:events"),
            announce,
            sha: redis::Script::new(SCRIPT).get_hash().to_owned(),
            idle: Mutex::new(Vec::new()),
            command_timeout,
            connect_timeout,
        }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// A new connection, within `timeout`.
    pub(crate) fn connect(&self, timeout: Duration) -> Result<Connection, StorageError> {
        Ok(self.client.get_connection_with_timeout(at_least_1ms(timeout))?)
    }

    /// Drops every idle connection (after a fault they may be dead).
    pub(crate) fn forget_connections(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Runs the script once. The whole exchange (connecting when no idle
    /// connection is left, re-loading the script on NOSCRIPT) ends within
    /// the command timeout. A failed exchange is never retried: the script
    /// may have run, and counting an outcome twice is worse than losing it.
    pub(crate) fn run(&self, op: Op, seed: &Seed, limits: &Limits) -> Result<Reply, StorageError> {
        let deadline = Instant::now() + self.command_timeout;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect(remaining(deadline)?.min(self.connect_timeout))?,
        };
        let invocation = self.invocation(op, seed, limits);
        let values = self.eval(&mut conn, &invocation, deadline)?;
        let reply = Reply::parse(&values).ok_or_else(|| StorageError::protocol(&values))?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        Ok(reply)
    }

    fn eval(
        &self,
        conn: &mut Connection,
        invocation: &Cmd,
        deadline: Instant,
    ) -> Result<Vec<i64>, StorageError> {
        set_timeouts(conn, deadline)?;
        match invocation.query::<Vec<i64>>(conn) {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                // Not run: the server lost its script cache (restart, SCRIPT
                // FLUSH). Load it and run it once.
                set_timeouts(conn, deadline)?;
                cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query::<String>(conn)?;
                set_timeouts(conn, deadline)?;
                Ok(invocation.query(conn)?)
            }
            result => Ok(result?),
        }
    }

    fn invocation(&self, op: Op, seed: &Seed, limits: &Limits) -> Cmd {
        let mut c = cmd("EVALSHA");
        let (name, extra): (&str, [u64; 3]) = match op {
            Op::Sync => ("sync", [0; 3]),
            Op::Acquire => ("acquire", [0; 3]),
            Op::Record(ticket, outcome) => (
                "record",
                [
                    if ticket.is_probe() { 2 } else { 1 },
                    u64::from(ticket.episode()),
                    u64::from(outcome_arg(outcome)),
                ],
            ),
            Op::Force(target) => ("force", [u64::from(state_arg(target)), 0, 0]),
            Op::Reconcile => ("reconcile", [0; 3]),
        };
        c.arg(&self.sha)
            .arg(1)
            .arg(&self.key)
            .arg(name)
            .arg(if self.announce { self.channel.as_str() } else { "" })
            .arg(GENERATION_MODULUS)
            .arg(state_arg(seed.state))
            .arg(seed.generation)
            .arg(seed.failures)
            .arg(seed.opened_ago_ms)
            .arg(limits.fail_max)
            .arg(limits.success_threshold)
            .arg(limits.half_open_max_calls)
            .arg(limits.reset_timeout_ms)
            .arg(limits.probe_lease_ms)
            .arg(&extra[..]);
        c
    }
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

fn remaining(deadline: Instant) -> Result<Duration, StorageError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(StorageError::timed_out()),
    }
}

fn set_timeouts(conn: &Connection, deadline: Instant) -> Result<(), StorageError> {
    let left = at_least_1ms(remaining(deadline)?);
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))?;
    Ok(())
}

/// A subscription's message payload, if `value` is one.
pub(crate) fn announcement(msg: &redis::Msg) -> Option<RawView> {
    let payload: String = msg.get_payload().ok()?;
    RawView::parse_announcement(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_strictly() {
        let ok = [5, 10, 1, 7, 0, 3, 0, 0, 0, 0, 1];
        let reply = Reply::parse(&ok).expect("a trip");
        assert_eq!(reply.code, Code::Transitioned);
        assert_eq!(
            reply.transition,
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        assert_eq!(reply.view.state, State::Open);
        assert_eq!(reply.view.opened_ago_ms, 3);
        assert!(Reply::parse(&ok[..10]).is_none(), "too short");
        assert!(
            Reply::parse(&[9, 10, 1, 7, 0, 3, 0, 0, 0, -1, -1]).is_none(),
            "unknown code"
        );
        assert!(
            Reply::parse(&[4, 10, 3, 7, 0, 3, 0, 0, 0, -1, -1]).is_none(),
            "unknown state"
        );
        assert!(
            Reply::parse(&[5, 10, 1, 7, 0, 3, 0, 0, 0, -1, -1]).is_none(),
            "a transition without one"
        );
    }

    #[test]
    fn announcements_parse_strictly() {
        let view = RawView::parse_announcement("1700000000000001 2 9 0 0 1 0 12").expect("valid");
        assert_eq!(view.state, State::HalfOpen);
        assert_eq!((view.generation, view.in_flight, view.probe_ago_ms), (9, 1, 12));
        assert!(RawView::parse_announcement("1 2 9 0 0 1 0").is_none());
        assert!(RawView::parse_announcement("1 2 9 0 0 1 0 12 13").is_none());
        assert!(RawView::parse_announcement("1 7 9 0 0 1 0 12").is_none());
        assert!(RawView::parse_announcement("x 2 9 0 0 1 0 12").is_none());
    }
}
