//! The fleet protocol: the one Lua script, the arguments a breaker sends
//! it, the reply it answers and the announcements it publishes. Nothing here
//! talks to a server; a [`Transport`](super::transport::Transport) does.
//!
//! Probes hold slots at the fleet as they do in the state word: an admitted
//! probe's slot is the reply's last field, its ticket carries it, and its
//! record sends it back (`ARGV[17]`), so a second record finds the slot free
//! and is stale.
//!
//! Under the failure-rate half-open rule the breaker sends the rule with
//! every run (`ARGV[33..36]`), a probe's record says whether its call was
//! slow, and the reply and the announcements end with the fleet's probe
//! tally, so the mirror counts the permits recorded probes spent as the
//! fleet does.

use super::transport::Script;
use crate::machine::backoff::Jitter;
use crate::machine::state::{
    Limits, Outcome, ProbeRule, ProbeTally, State, Ticket, Transition, GENERATION_MODULUS, MAX_RATE_PROBES,
    PROBE_SLOTS,
};
use crate::machine::window::{Counts, FleetRule};
use std::sync::OnceLock;

/// Every fleet transition, as one server-side script.
const SOURCE: &str = include_str!("fleet.lua");

/// The script with its SHA-1, computed once.
pub(crate) fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script {
        source: SOURCE,
        sha1: redis::Script::new(SOURCE).get_hash().to_owned(),
    })
}

/// The hash that holds a namespace's state (the hash tag keeps a namespace
/// on one Redis Cluster slot).
pub(crate) fn state_key(namespace: &str) -> String {
    format!("breakerbox:{{{namespace}}}:state")
}

/// The channel a namespace's changes are announced on.
pub(crate) fn channel(namespace: &str) -> String {
    format!("breakerbox:{{{namespace}}}:events")
}

/// What the script is asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// Read the state (seeding it when missing).
    Sync,
    /// Ask for a permit the mirror could not decide on.
    Acquire,
    /// Record how a call ended; `true`: a probe whose call was slow (the
    /// failure-rate rule counts it toward the slow-call rate).
    Record(Ticket, Outcome, bool),
    /// Move to a state whatever the current one.
    Force(State),
    /// Apply limits that a setter changed.
    Reconcile,
    /// Add a rate window's counts to the fleet's (decides nothing).
    Flush,
}

/// A rate window's part of a record or flush: the rule the script applies
/// to the summed window, and the counts this process has not sent before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowArgs {
    pub(crate) rule: FleetRule,
    /// The episode the counts belong to (the fleet drops them if it has moved on).
    pub(crate) generation: u32,
    pub(crate) delta: Counts,
}

/// An exponential open backoff, as the script computes it when it opens
/// the fleet (a custom one cannot run there: the builder refuses it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BackoffArgs {
    pub(crate) multiplier: f64,
    pub(crate) cap_ms: u64,
    pub(crate) jitter: Jitter,
}

/// The failure-rate half-open rule, as the script decides it: thresholds
/// in basis points, the slow-call one 0 when slow calls are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateArgs {
    pub(crate) failure_bp: u32,
    pub(crate) slow_bp: u32,
}

impl RateArgs {
    /// The script's arguments for `rule`; `None` under the successes rule,
    /// which sends none.
    pub(crate) fn of(rule: ProbeRule) -> Option<RateArgs> {
        match rule {
            ProbeRule::Successes => None,
            ProbeRule::Rate { failure_bp, slow_bp } => Some(RateArgs {
                failure_bp,
                slow_bp: slow_bp.unwrap_or(0),
            }),
        }
    }
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
    /// Half-open: the slots the probes in flight hold (a bitmap) and the
    /// next slot, as the state word keeps them; `None` once the episode's
    /// probes are only counted.
    pub(crate) probe_slots: Option<(u32, u32)>,
    /// Open: the period a backoff chose for this open episode, in ms;
    /// `None`: the reset timeout (no backoff chose it, or an older script).
    pub(crate) open_for_ms: Option<u64>,
    /// Half-open under the failure-rate rule: the fleet's probe tally;
    /// `None` for a caller without the rule (the script sends none).
    pub(crate) probe_tally: Option<ProbeTally>,
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

/// When a fleet view was read, against the reading mirror's moves of its
/// own (see `Mailbox` in fleet.rs): a view read before the mirror's latest
/// one is older than the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAt {
    /// By a run begun after the mirror's `n`th move of its own.
    After(u64),
    /// At a time nobody knows (an announcement may have waited in a
    /// socket): news only if the mirror has not moved on its own since it
    /// last took a view.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    pub(crate) code: Code,
    pub(crate) view: RawView,
    /// The fleet transition this invocation made, if any.
    pub(crate) transition: Option<Transition>,
    /// The slot of the probe this acquire admitted (0 otherwise): the
    /// probe's ticket carries it, and its record names it.
    pub(crate) slot: u32,
    /// When the run that got this reply began, set by whoever ran it.
    pub(crate) read: ReadAt,
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
    /// The view's fields: ten, or eleven with the open period (an older
    /// script sends ten).
    fn from_fields(f: &[i64]) -> Option<RawView> {
        let (f, period) = match *f {
            [ref ten @ .., period] if ten.len() == 10 => (ten, period),
            _ => (f, -1),
        };
        let [version, state, generation, failures, opened, in_flight, successes, probe, slots, next] = *f
        else {
            return None;
        };
        let state = state_from(state)?;
        let open_for_ms = match (state, u64::try_from(period)) {
            (State::Open, Ok(ms)) => Some(ms),
            _ => None,
        };
        // The script keeps the slots consistent with the count, each below
        // the next; anything else (an older script's hash) is taken as
        // counted probes.
        let probe_slots = match (u32::try_from(slots), u32::try_from(next)) {
            (Ok(slots), Ok(next))
                if next <= PROBE_SLOTS
                    && slots >> next == 0
                    && i64::from(slots.count_ones()) == in_flight =>
            {
                Some((slots, next))
            }
            _ => None,
        };
        Some(RawView {
            version: non_negative(version),
            state,
            generation: non_negative(generation),
            failures: count(failures),
            opened_ago_ms: non_negative(opened),
            in_flight: count(in_flight),
            successes: count(successes),
            probe_ago_ms: non_negative(probe),
            probe_slots,
            open_for_ms,
            probe_tally: None,
        })
    }

    /// The view's eleven fields followed by a probe tally (recorded, failed,
    /// slow): each at most [`MAX_RATE_PROBES`], the failed and the slow
    /// among the recorded; anything else is not the script's.
    fn with_tally(f: &[i64], tally: &[i64]) -> Option<RawView> {
        let [recorded, failures, slow] = *tally else {
            return None;
        };
        let n = |x: i64| u32::try_from(x).ok().filter(|x| *x <= MAX_RATE_PROBES);
        let (recorded, failures, slow) = (n(recorded)?, n(failures)?, n(slow)?);
        if failures > recorded || slow > recorded || f.len() != 11 {
            return None;
        }
        let view = RawView::from_fields(f)?;
        Some(RawView {
            probe_tally: (view.state == State::HalfOpen).then_some(ProbeTally {
                recorded,
                failures,
                slow,
            }),
            ..view
        })
    }

    /// Parses a change announced on the namespace's channel.
    pub(crate) fn parse_announcement(payload: &str) -> Option<RawView> {
        let mut fields = [0i64; 14];
        let mut parts = payload.split(' ');
        let mut n = 0;
        for field in fields.iter_mut() {
            match parts.next() {
                Some(part) => *field = part.parse().ok()?,
                None => break,
            }
            n += 1;
        }
        match n {
            10 | 11 if parts.next().is_none() => RawView::from_fields(&fields[..n]),
            14 if parts.next().is_none() => RawView::with_tally(&fields[..11], &fields[11..]),
            _ => None,
        }
    }
}

impl Reply {
    pub(crate) fn parse(values: &[i64]) -> Option<Reply> {
        // A caller with the failure-rate rule gets the probe tally last.
        let (values, tally) = match values.len() {
            18 => (&values[..15], Some(&values[15..])),
            _ => (values, None),
        };
        let [code, ref fields @ .., from, to, slot] = *values else {
            return None;
        };
        let slot = u32::try_from(slot).ok().filter(|s| *s < PROBE_SLOTS)?;
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
        let view = match tally {
            Some(tally) => RawView::with_tally(fields, tally)?,
            None => RawView::from_fields(fields)?,
        };
        Some(Reply {
            code,
            view,
            transition,
            slot,
            read: ReadAt::Unknown,
        })
    }
}

/// The script's arguments for `op` (after its one key): see fleet.lua.
///
/// After the op's three, an empty test-only time (`ARGV[16]`: the script
/// then reads the server's clock) and the slot of a recorded probe
/// (`ARGV[17]`, 0 for every other op), so a probe recorded twice finds its
/// slot free at the fleet and is stale.
pub(crate) fn arguments(op: Op, channel: &str, seed: &Seed, limits: &Limits) -> Vec<String> {
    let (name, extra): (&str, [u64; 3]) = match op {
        Op::Sync => ("sync", [0; 3]),
        Op::Acquire => ("acquire", [0; 3]),
        Op::Record(ticket, outcome, _) => (
            "record",
            [
                if ticket.is_probe() { 2 } else { 1 },
                u64::from(ticket.episode()),
                u64::from(outcome_arg(outcome)),
            ],
        ),
        Op::Force(target) => ("force", [u64::from(state_arg(target)), 0, 0]),
        Op::Reconcile => ("reconcile", [0; 3]),
        Op::Flush => ("flush", [0; 3]),
    };
    let numbers = [
        GENERATION_MODULUS,
        u64::from(state_arg(seed.state)),
        u64::from(seed.generation),
        u64::from(seed.failures),
        seed.opened_ago_ms,
        u64::from(limits.fail_max),
        u64::from(limits.success_threshold),
        u64::from(limits.half_open_max_calls),
        limits.reset_timeout_ms,
        limits.probe_lease_ms,
    ];
    let slot = match op {
        Op::Record(ticket, _, _) if ticket.is_probe() => ticket.slot(),
        _ => 0,
    };
    let mut args = Vec::with_capacity(4 + numbers.len() + extra.len());
    args.push(name.to_owned());
    args.push(channel.to_owned());
    args.extend(numbers.iter().chain(&extra).map(u64::to_string));
    args.push(String::new());
    args.push(slot.to_string());
    args
}

/// Appends an open backoff's arguments (see fleet.lua), at ARGV[28] on:
/// after the window's, padded with a kind-0 window if `args` has none.
/// `random` is the jitter's draw for this run.
pub(crate) fn push_backoff_arguments(args: &mut Vec<String>, b: &BackoffArgs, random: u32) {
    const WINDOW_END: usize = 27;
    while args.len() < WINDOW_END {
        args.push("0".to_owned());
    }
    let jitter = match b.jitter {
        Jitter::None => 0,
        Jitter::Full => 1,
        Jitter::Equal => 2,
    };
    args.extend([
        "1".to_owned(),
        b.multiplier.to_string(),
        b.cap_ms.to_string(),
        jitter.to_string(),
        random.to_string(),
    ]);
}

/// Appends the failure-rate rule's arguments (see fleet.lua), at ARGV[33]
/// on: after the window's and the backoff's, padded with kind 0 and zeros
/// where `args` has neither. `op`'s record says whether its call was slow.
pub(crate) fn push_rate_arguments(args: &mut Vec<String>, rule: &RateArgs, op: Op) {
    const BACKOFF_END: usize = 32;
    while args.len() < BACKOFF_END {
        args.push("0".to_owned());
    }
    let slow = matches!(op, Op::Record(_, _, true));
    args.extend([
        "1".to_owned(),
        rule.failure_bp.to_string(),
        rule.slow_bp.to_string(),
        u8::from(slow).to_string(),
    ]);
}

/// Appends a rate window's arguments (see fleet.lua): after the test-only
/// time and the probe slot that [`arguments`] ends with, at ARGV[18] on.
pub(crate) fn push_window_arguments(args: &mut Vec<String>, w: &WindowArgs) {
    let r = &w.rule;
    let numbers = [
        if r.count_based { 1 } else { 2 },
        r.buckets,
        r.span,
        r.minimum_calls,
        u64::from(r.failure_rate_bp),
        u64::from(r.slow_rate_bp),
        u64::from(w.generation),
        w.delta.calls,
        w.delta.failures,
        w.delta.slow,
    ];
    args.extend(numbers.iter().map(u64::to_string));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_strictly() {
        let ok = [5, 10, 1, 7, 0, 3, 0, 0, 0, 0, 0, 0, 1, 0];
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
        assert!(Reply::parse(&ok[..13]).is_none(), "too short");
        assert!(
            Reply::parse(&[9, 10, 1, 7, 0, 3, 0, 0, 0, 0, 0, -1, -1, 0]).is_none(),
            "unknown code"
        );
        assert!(
            Reply::parse(&[4, 10, 3, 7, 0, 3, 0, 0, 0, 0, 0, -1, -1, 0]).is_none(),
            "unknown state"
        );
        assert!(
            Reply::parse(&[5, 10, 1, 7, 0, 3, 0, 0, 0, 0, 0, -1, -1, 0]).is_none(),
            "a transition without one"
        );
        let probe = Reply::parse(&[2, 10, 2, 8, 0, 0, 2, 0, 0, 0, 0, -1, -1, 15]).expect("a probe");
        assert_eq!((probe.code, probe.slot), (Code::AdmitProbe, 15));
        for slot in [16, -1] {
            assert!(
                Reply::parse(&[2, 10, 2, 8, 0, 0, 2, 0, 0, 0, 0, -1, -1, slot]).is_none(),
                "slot {slot} is out of range"
            );
        }
    }

    #[test]
    fn a_views_probe_slots_parse_only_when_they_match_its_count() {
        let view = |fields: &[i64]| RawView::from_fields(fields).expect("valid").probe_slots;
        // Two probes in flight: slots 0 and 2 held, slot 3 next.
        assert_eq!(view(&[1, 2, 8, 0, 0, 2, 0, 0, 0b101, 3]), Some((0b101, 3)));
        for (slots, next) in [(0b1, 3), (0b11, 1), (1 << 16 | 1 << 3, 17), (-1, 2), (0b11, 31)] {
            assert_eq!(
                view(&[1, 2, 8, 0, 0, 2, 0, 0, slots, next]),
                None,
                "{slots:#b} {next}"
            );
        }
        let announced = RawView::parse_announcement("1 2 8 0 0 2 0 0 5 3").expect("valid");
        assert_eq!(announced.probe_slots, Some((5, 3)));
        assert!(
            RawView::parse_announcement("1 2 8 0 0 2 0 0").is_none(),
            "too short"
        );
    }

    #[test]
    fn a_probe_record_names_its_slot_and_the_time_is_the_servers() {
        let seed = Seed {
            state: State::Closed,
            generation: 0,
            failures: 0,
            opened_ago_ms: 0,
        };
        let limits = Limits {
            fail_max: 1,
            success_threshold: 1,
            half_open_max_calls: 2,
            reset_timeout_ms: 1,
            probe_lease_ms: 1,
            probe_rule: ProbeRule::Successes,
        };
        let view = RawView::parse_announcement("1 2 9 0 0 1 0 12 1 1").expect("valid");
        let probe = crate::machine::state::FleetView {
            state: view.state,
            generation: view.generation,
            failures: 0,
            opened_at_ms: 0,
            in_flight: 1,
            successes: 0,
            probe_admitted_at_ms: 0,
            probe_slots: view.probe_slots,
            open_for_ms: None,
            probe_tally: None,
        }
        .probe_ticket(7);
        let args = arguments(Op::Record(probe, Outcome::Success, false), "", &seed, &limits);
        // ARGV[n] is args[n - 1].
        assert_eq!(args.len(), 17);
        assert_eq!(args[12..15], ["2", "9", "0"], "kind, generation, outcome");
        assert_eq!(args[15], "", "no test time: the server's clock");
        assert_eq!(args[16], "7", "the probe's slot");
        let sync = arguments(Op::Sync, "", &seed, &limits);
        assert_eq!((sync.len(), sync[15].as_str(), sync[16].as_str()), (17, "", "0"));
    }

    #[test]
    fn a_view_carries_the_open_period_a_backoff_chose() {
        let open = RawView::parse_announcement("5 1 9 0 30 0 0 0 0 0 400").expect("valid");
        assert_eq!((open.state, open.open_for_ms), (State::Open, Some(400)));
        let none = RawView::parse_announcement("5 1 9 0 30 0 0 0 0 0 -1").expect("valid");
        assert_eq!(none.open_for_ms, None, "no backoff chose it: the reset timeout");
        let older = RawView::parse_announcement("5 1 9 0 30 0 0 0 0 0").expect("an older script's");
        assert_eq!(older.open_for_ms, None);
        let half = RawView::parse_announcement("5 2 10 0 0 0 0 0 0 0 400").expect("valid");
        assert_eq!(half.open_for_ms, None, "only an open fleet has a period");
        let reply = Reply::parse(&[5, 10, 1, 7, 0, 3, 0, 0, 0, 0, 0, 800, 0, 1, 0]).expect("a trip");
        assert_eq!(
            (reply.code, reply.view.open_for_ms),
            (Code::Transitioned, Some(800))
        );
        assert_eq!(reply.view.opened_ago_ms, 3);
    }

    #[test]
    fn a_backoff_follows_the_window_arguments_or_a_kind_0_window() {
        let seed = Seed {
            state: State::Closed,
            generation: 0,
            failures: 0,
            opened_ago_ms: 0,
        };
        let limits = Limits {
            fail_max: 1,
            success_threshold: 1,
            half_open_max_calls: 1,
            reset_timeout_ms: 100,
            probe_lease_ms: 100,
            probe_rule: ProbeRule::Successes,
        };
        let backoff = BackoffArgs {
            multiplier: 1.5,
            cap_ms: 60_000,
            jitter: Jitter::Equal,
        };
        let mut args = arguments(Op::Sync, "", &seed, &limits);
        push_backoff_arguments(&mut args, &backoff, 77);
        // ARGV[n] is args[n - 1].
        assert_eq!(args.len(), 32);
        assert!(args[17..27].iter().all(|a| a == "0"), "a kind-0 window: {args:?}");
        assert_eq!(args[27..32], ["1", "1.5", "60000", "2", "77"]);
        assert_eq!(
            arguments(Op::Sync, "", &seed, &limits).len(),
            17,
            "no backoff: as before"
        );
    }

    #[test]
    fn a_failure_rate_callers_reply_and_announcements_end_with_the_tally() {
        let reply =
            Reply::parse(&[4, 10, 2, 8, 0, 0, 1, 0, 0, 0b10, 2, -1, -1, -1, 0, 2, 1, 1]).expect("valid");
        let tally = ProbeTally {
            recorded: 2,
            failures: 1,
            slow: 1,
        };
        assert_eq!(reply.view.probe_tally, Some(tally));
        assert_eq!(reply.view.probe_slots, Some((0b10, 2)));
        let plain = Reply::parse(&[4, 10, 2, 8, 0, 0, 1, 0, 0, 0b10, 2, -1, -1, -1, 0]).expect("valid");
        assert_eq!(plain.view.probe_tally, None, "the successes rule's reply");
        for bad in [[1, 2, 0], [2, 3, 0], [2, 0, 3], [32, 0, 0], [-1, 0, 0]] {
            let mut values = vec![4, 10, 2, 8, 0, 0, 1, 0, 0, 0b10, 2, -1, -1, -1, 0];
            values.extend(bad);
            assert!(Reply::parse(&values).is_none(), "tally {bad:?}");
        }
        let announced = RawView::parse_announcement("1 2 8 0 0 1 0 0 2 2 -1 2 1 1").expect("valid");
        assert_eq!(announced.probe_tally, Some(tally));
        let closed = RawView::parse_announcement("1 0 9 0 0 0 0 0 0 0 -1 0 0 0").expect("valid");
        assert_eq!(closed.probe_tally, None, "only a half-open fleet has a tally");
        for bad in [
            "1 2 8 0 0 1 0 0 2 2 -1 2 1",
            "1 2 8 0 0 1 0 0 2 2 -1 2 1 1 0",
            "1 2 8 0 0 1 0 0 2 2 2 1 1",
        ] {
            assert!(RawView::parse_announcement(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_failure_rate_rule_follows_the_backoff_arguments_or_their_padding() {
        let seed = Seed {
            state: State::HalfOpen,
            generation: 0,
            failures: 0,
            opened_ago_ms: 0,
        };
        let limits = Limits {
            fail_max: 1,
            success_threshold: 1,
            half_open_max_calls: 4,
            reset_timeout_ms: 100,
            probe_lease_ms: 100,
            probe_rule: ProbeRule::Rate {
                failure_bp: 5_000,
                slow_bp: Some(2_500),
            },
        };
        let rule = RateArgs::of(limits.probe_rule).expect("the rate rule sends arguments");
        assert_eq!(RateArgs::of(ProbeRule::Successes), None);
        let probe = crate::machine::state::FleetView {
            state: State::HalfOpen,
            generation: 9,
            failures: 0,
            opened_at_ms: 0,
            in_flight: 1,
            successes: 0,
            probe_admitted_at_ms: 0,
            probe_slots: Some((0b1000, 4)),
            open_for_ms: None,
            probe_tally: None,
        }
        .probe_ticket(3);
        let op = Op::Record(probe, Outcome::Success, true);
        let mut args = arguments(op, "", &seed, &limits);
        push_rate_arguments(&mut args, &rule, op);
        // ARGV[n] is args[n - 1].
        assert_eq!(args.len(), 36);
        assert!(
            args[17..32].iter().all(|a| a == "0"),
            "no window, no backoff: {args:?}"
        );
        assert_eq!(args[32..36], ["1", "5000", "2500", "1"], "kind, thresholds, slow");
        let mut args = arguments(Op::Sync, "", &seed, &limits);
        push_backoff_arguments(
            &mut args,
            &BackoffArgs {
                multiplier: 2.0,
                cap_ms: 1_000,
                jitter: Jitter::None,
            },
            0,
        );
        push_rate_arguments(&mut args, &rule, Op::Sync);
        assert_eq!(args[27], "1", "the backoff's kind");
        assert_eq!(args[32..36], ["1", "5000", "2500", "0"], "not a slow record");
    }

    #[test]
    fn announcements_parse_strictly() {
        let view = RawView::parse_announcement("1700000000000001 2 9 0 0 1 0 12 1 1").expect("valid");
        assert_eq!(view.state, State::HalfOpen);
        assert_eq!((view.generation, view.in_flight, view.probe_ago_ms), (9, 1, 12));
        assert_eq!(view.probe_slots, Some((1, 1)));
        assert!(RawView::parse_announcement("1 2 9 0 0 1 0 12 1").is_none());
        assert!(RawView::parse_announcement("1 2 9 0 0 1 0 12 1 1 -1 13").is_none());
        assert!(RawView::parse_announcement("1 7 9 0 0 1 0 12 1 1").is_none());
        assert!(RawView::parse_announcement("x 2 9 0 0 1 0 12 1 1").is_none());
    }
}
