//! One state machine, not two that drift: the same random operation
//! sequences run against the in-memory breaker (on a `ManualClock`) and
//! against the fleet's Lua script on a real Redis, with the script's clock
//! driven by the test (its test-only time argument, `ARGV[16]`). Any
//! difference in a decision (a probe's slot included), a state or a counter
//! fails, with the seed and the operations that led there.
//!
//! Tickets are sometimes recorded twice. Each probe holds its own slot, in
//! the word and in the script alike, so a probe's second record is stale on
//! both sides (counted on both, after the 16th probe of an episode): there
//! is no known difference left to allow for.
//!
//! Sequences with an exponential open backoff (no jitter) run on both sides
//! too: the in-memory breaker's `open_backoff` and the script's backoff
//! arguments must agree on each open period's length, to the millisecond.
//!
//! Sequences under `HalfOpenRule::FailureRate` run on both sides too: the
//! script's failure-rate arguments and the word's probe tally must agree on
//! every permit, every decision and the tally itself. Half of them time
//! their records against a slow-call duration, so slow probes count toward
//! the slow-call rate on both sides (their breaker has a window that never
//! reaches its minimum calls, so only the probes' rule decides).
//!
//! Deterministic and bounded: a fixed seed (override it with
//! `BREAKERBOX_DIFF_SEED`), 600 sequences of 80 operations (300 with a
//! backoff, 400 under the failure-rate rule), on a private
//! redis-server (`BREAKERBOX_REDIS_SERVER`, see `scripts/test-redis-deploy.sh`).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::clock::ManualClock;
use breakerbox::{Backoff, CircuitBreaker, HalfOpenRule, Outcome, Recorded, State, Ticket, Transition};
use redis_support::*;
use std::time::Duration;

const SCRIPT: &str = include_str!("../src/redis/fleet.lua");
/// The generation modulus the breaker sends (the word's 20-bit generation).
const MODULUS: u64 = 1 << 20;
const SEQUENCES: u64 = 600;
const BACKOFF_SEQUENCES: u64 = 300;
const RATE_SEQUENCES: u64 = 400;
/// A rate sequence's slow-call duration: a record that took longer is slow.
const SLOW_MS: u64 = 10;
const STEPS: usize = 80;
const DEFAULT_SEED: u64 = 0x6272_6b62_6f78_0001;

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    fail_max: u32,
    success_threshold: u32,
    half_open_max_calls: u32,
    reset_timeout_ms: u64,
    probe_lease_ms: u64,
    /// An exponential open backoff: multiplier and cap (ms), no jitter.
    backoff: Option<(f64, u64)>,
    /// `HalfOpenRule::FailureRate`: its failure-rate threshold and, if slow
    /// calls are timed (after [`SLOW_MS`]), the slow-call-rate threshold,
    /// both in whole percent.
    rate: Option<(u32, Option<u32>)>,
}

impl Limits {
    /// Whether the sequence times its records against [`SLOW_MS`].
    fn timed(&self) -> bool {
        matches!(self.rate, Some((_, Some(_))))
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Acquire,
    /// Records the outstanding ticket at this index (modulo their count);
    /// `keep` leaves it outstanding, so it may be recorded twice. `again`
    /// picks among the tickets already recorded once and kept, if any.
    Record {
        pick: usize,
        outcome: Outcome,
        keep: bool,
        again: bool,
        /// How long the call took, for a sequence that times its records.
        elapsed_ms: u64,
    },
    Force(State),
    Advance(u64),
    SetFailMax(u32),
    SetSuccessThreshold(u32),
    SetHalfOpenMaxCalls(u32),
    SetResetTimeout(u64),
}

fn random_op(rng: &mut Rng, limits: &Limits) -> Op {
    match rng.range(0, 99) {
        0..=34 => Op::Acquire,
        35..=69 => Op::Record {
            pick: rng.next() as usize,
            outcome: match rng.range(0, 9) {
                0..=3 => Outcome::Success,
                4..=8 => Outcome::Failure,
                _ => Outcome::Ignored,
            },
            keep: rng.range(0, 9) < 3,
            again: rng.range(0, 3) == 0,
            elapsed_ms: rng.range(0, 2 * SLOW_MS),
        },
        70..=86 => {
            let cap = limits.backoff.map_or(0, |(_, cap)| cap);
            Op::Advance(rng.range(
                0,
                limits.reset_timeout_ms.max(limits.probe_lease_ms).max(cap) * 3 / 2,
            ))
        }
        87..=91 => Op::Force(match rng.range(0, 2) {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }),
        92..=93 => Op::SetFailMax(rng.range(1, 4) as u32),
        // The failure-rate rule keeps its success threshold at 1.
        94..=95 if limits.rate.is_some() => Op::SetHalfOpenMaxCalls(rng.range(1, 6) as u32),
        94..=95 => Op::SetSuccessThreshold(rng.range(1, 3) as u32),
        96..=97 if limits.rate.is_some() => Op::SetHalfOpenMaxCalls(rng.range(1, 6) as u32),
        96..=97 => Op::SetHalfOpenMaxCalls(rng.range(1, 3) as u32),
        _ => Op::SetResetTimeout(rng.range(5, 60)),
    }
}

/// The script's reply: `{ code, v, s, g, f, ms since opened, i, k, ms since
/// last probe admission, b, n, open period, transition from, transition to,
/// probe slot }`.
#[derive(Debug, Clone, Copy)]
struct Reply {
    code: i64,
    state: State,
    generation: u64,
    failures: u32,
    in_flight: u32,
    successes: u32,
    transition: Option<Transition>,
    /// The slot the script gave an admitted probe.
    slot: u64,
    /// Open: the period the script's backoff chose (-1: none chose it).
    open_for_ms: i64,
    /// Under the failure-rate rule, the hash's probe tally: probes recorded,
    /// of them failures, of them slow.
    tally: (u32, u32, u32),
}

const ADMIT_CLOSED: i64 = 1;
const ADMIT_PROBE: i64 = 2;
const REJECT: i64 = 3;
const COUNTED: i64 = 4;
const TRANSITIONED: i64 = 5;
const STALE: i64 = 6;
const NOOP: i64 = 7;

fn state_of(n: i64) -> State {
    match n {
        0 => State::Closed,
        1 => State::Open,
        2 => State::HalfOpen,
        _ => panic!("the script answered state {n}"),
    }
}

fn state_arg(s: State) -> u8 {
    match s {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

fn outcome_arg(o: Outcome) -> u8 {
    match o {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Ignored => 2,
    }
}

/// The script on a real Redis, its clock set by the test.
struct Lua<'a> {
    conn: &'a mut redis::Connection,
    script: &'a redis::Script,
    key: String,
    now_ms: u64,
}

impl Lua<'_> {
    /// One script run, with the arguments the breaker sends (see
    /// `fleet.lua`'s header) plus the test-only time; `slot`: a recorded
    /// probe's slot, as the script's acquire gave it.
    fn run(&mut self, op: &str, limits: &Limits, extra: [u64; 3], slot: u64) -> Reply {
        self.run_timed(op, limits, extra, slot, false)
    }

    /// [`Lua::run`], telling a probe's record whether the call was slow
    /// (only the failure-rate rule's arguments carry it).
    fn run_timed(&mut self, op: &str, limits: &Limits, extra: [u64; 3], slot: u64, slow: bool) -> Reply {
        let mut invocation = self.script.key(&self.key);
        invocation
            .arg(op)
            .arg("") // no announcements
            .arg(MODULUS)
            .arg(&[0u64, 0, 0, 0][..]) // seed: closed, generation 0, no failures
            .arg(limits.fail_max)
            .arg(limits.success_threshold)
            .arg(limits.half_open_max_calls)
            .arg(limits.reset_timeout_ms)
            .arg(limits.probe_lease_ms)
            .arg(&extra[..])
            .arg(self.now_ms)
            .arg(slot);
        if limits.timed() {
            // A count window that never reaches its minimum calls (as the
            // breaker's), with nothing counted: only the probes' rule decides.
            invocation.arg(&[1u64, 1, 1_000_000, 1_000_000, 5_000, 5_000, 0, 0, 0, 0][..]);
        } else if limits.backoff.is_some() || limits.rate.is_some() {
            // No window: kind 0 and nine zeros.
            invocation.arg(&[0u64; 10][..]);
        }
        if let Some((multiplier, cap_ms)) = limits.backoff {
            // The backoff: kind 1, multiplier, cap, no jitter, no random draw.
            invocation
                .arg(1)
                .arg(multiplier.to_string())
                .arg(cap_ms)
                .arg(0)
                .arg(0);
        } else if limits.rate.is_some() {
            invocation.arg(&[0u64; 5][..]);
        }
        if let Some((failure_pct, slow_pct)) = limits.rate {
            // The failure-rate rule: kind 1, thresholds in basis points
            // (slow 0: not counted), whether this record's call was slow.
            invocation
                .arg(1)
                .arg(failure_pct * 100)
                .arg(slow_pct.map_or(0, |p| p * 100))
                .arg(u8::from(slow));
        }
        let values: Vec<i64> = invocation.invoke(self.conn).expect("the script runs");
        // Under the failure-rate rule the reply ends with the tally (read
        // from the hash below, so the reply's copy is checked against it).
        let [code, _v, s, g, f, _opened, i, k, _probe, _slots, _next, period, from, to, slot, ref tail @ ..] =
            values[..]
        else {
            panic!("unexpected reply {values:?}");
        };
        let tally = match limits.rate {
            Some(_) => {
                let fields: Vec<Option<u32>> = redis::cmd("HMGET")
                    .arg(&self.key)
                    .arg(&["r", "x", "y"][..])
                    .query(self.conn)
                    .expect("HMGET");
                let n = |i: usize| fields[i].unwrap_or(0);
                let tally = (n(0), n(1), n(2));
                // The reply carries the tally (the mirror's copy) while half-open.
                let replied = tail.iter().map(|&v| v as u32).collect::<Vec<_>>();
                assert_eq!(replied, [tally.0, tally.1, tally.2], "the reply's tally");
                tally
            }
            None => {
                assert!(tail.is_empty(), "no tally without the rule: {values:?}");
                (0, 0, 0)
            }
        };
        Reply {
            code,
            state: state_of(s),
            generation: g as u64,
            failures: f as u32,
            in_flight: i as u32,
            successes: k as u32,
            transition: (from >= 0).then(|| Transition {
                from: state_of(from),
                to: state_of(to),
            }),
            slot: slot as u64,
            open_for_ms: period,
            tally,
        }
    }
}

/// The slot a probe ticket holds: bits 22..26 of its bits (the ticket
/// layout in `src/machine/state.rs`).
fn slot_of(ticket: Ticket) -> u64 {
    (ticket.to_bits() >> 22) & 0b1111
}

/// A transition as the in-memory breaker shows it: its state before and after.
fn change(before: State, after: State) -> Option<Transition> {
    (before != after).then_some(Transition {
        from: before,
        to: after,
    })
}

/// Runs one random sequence (see [`run_ops`]), with a random exponential
/// backoff if `backoff`, under the failure-rate rule if `rate`.
fn run_sequence(
    rng: &mut Rng,
    backoff: bool,
    rate: bool,
    lua: &mut Lua<'_>,
    log: &mut Vec<String>,
) -> Result<Stats, String> {
    let mut limits = Limits {
        fail_max: rng.range(1, 4) as u32,
        success_threshold: rng.range(1, 3) as u32,
        half_open_max_calls: rng.range(1, 3) as u32,
        reset_timeout_ms: rng.range(5, 60),
        probe_lease_ms: rng.range(5, 60),
        backoff: None,
        rate: None,
    };
    if rate {
        limits.success_threshold = 1;
        limits.half_open_max_calls = rng.range(1, 5) as u32;
        let failure_pct = [25, 50, 50, 60, 100][rng.range(0, 4) as usize];
        let slow_pct = (rng.range(0, 1) == 0).then(|| [34, 50, 100][rng.range(0, 2) as usize]);
        limits.rate = Some((failure_pct, slow_pct));
    }
    if backoff {
        let multiplier = [1.0, 1.5, 2.0, 3.0, 1.7][rng.range(0, 4) as usize];
        // A cap below the reset timeout too: the period is then the reset timeout.
        limits.backoff = Some((multiplier, rng.range(1, limits.reset_timeout_ms * 8)));
    }
    let mut steps = 0;
    let next = |limits: &Limits| {
        steps += 1;
        (steps <= STEPS).then(|| random_op(rng, limits))
    };
    run_ops(limits, next, lua, log)
}

/// What a sequence reached, beyond agreeing.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// How often a probe was recorded again in its own episode while
    /// another probe was in flight (the case where counting probes instead
    /// of slots would free that other probe's slot).
    probes_recorded_again: usize,
    /// Open periods that a backoff grew beyond the reset timeout.
    grown_periods: usize,
    /// Failure-rate decisions: (re-opened, closed).
    rate_decisions: (usize, usize),
    /// Slow probes recorded (a success or a failure) under the rule.
    slow_probes: usize,
}

/// Runs `count` seeded sequences against a private server, each with a
/// backoff and the failure-rate rule as `options(sequence)` says; any
/// difference panics with the seed and the operations. Returns the
/// sequences' stats, summed.
fn run_sequences(seed: u64, count: u64, prefix: &str, options: impl Fn(u64) -> (bool, bool)) -> Stats {
    let server = PrivateServer::start();
    let mut conn = client(&server.url());
    let script = redis::Script::new(SCRIPT);
    let (mut ops, mut sum) = (0, Stats::default());
    for sequence in 0..count {
        let mut rng = Rng(seed ^ sequence.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let ns = unique_namespace(prefix);
        let mut lua = Lua {
            conn: &mut conn,
            script: &script,
            key: format!("breakerbox:{{{ns}}}:state"),
            now_ms: 0,
        };
        let mut log = Vec::new();
        let (backoff, rate) = options(sequence);
        let result = run_sequence(&mut rng, backoff, rate, &mut lua, &mut log);
        let key = lua.key.clone();
        let _: i64 = redis::cmd("DEL").arg(&key).query(&mut conn).expect("DEL");
        match result {
            Ok(stats) => {
                sum.probes_recorded_again += stats.probes_recorded_again;
                sum.grown_periods += stats.grown_periods;
                sum.rate_decisions.0 += stats.rate_decisions.0;
                sum.rate_decisions.1 += stats.rate_decisions.1;
                sum.slow_probes += stats.slow_probes;
            }
            Err(difference) => panic!(
                "seed {seed}, sequence {sequence}: {difference}\noperations:\n  {}",
                log.join("\n  ")
            ),
        }
        ops += log.len();
    }
    assert!(
        ops > (count as usize) * STEPS / 2,
        "the sequences ran ({ops} operations)"
    );
    sum
}

/// Runs the operations `next` gives (it sees the limits in force) against
/// both; returns the first difference, if any, or else what it reached.
fn run_ops(
    mut limits: Limits,
    mut next: impl FnMut(&Limits) -> Option<Op>,
    lua: &mut Lua<'_>,
    log: &mut Vec<String>,
) -> Result<Stats, String> {
    log.push(format!("{limits:?}"));
    let clock = ManualClock::new();
    let mut builder = CircuitBreaker::builder()
        .fail_max(limits.fail_max)
        .success_threshold(limits.success_threshold)
        .half_open_max_calls(limits.half_open_max_calls)
        .reset_timeout(Duration::from_millis(limits.reset_timeout_ms))
        .probe_lease(Duration::from_millis(limits.probe_lease_ms))
        .clock(clock.clone());
    if let Some((multiplier, cap_ms)) = limits.backoff {
        builder = builder.open_backoff(Backoff::exponential(multiplier, Duration::from_millis(cap_ms)));
    }
    if let Some((failure_pct, slow_pct)) = limits.rate {
        builder = builder
            .half_open_rule(HalfOpenRule::FailureRate)
            .failure_rate_threshold(failure_pct as f32);
        if let Some(slow_pct) = slow_pct {
            builder = builder
                .count_window(1_000_000)
                .minimum_calls(1_000_000)
                .slow_call_duration(Duration::from_millis(SLOW_MS))
                .slow_call_rate_threshold(slow_pct as f32);
        }
    }
    let b = builder.build().expect("valid limits");
    let mut rate_decisions = (0, 0);
    let mut slow_probes = 0;
    let mut grown_periods = 0;
    // Each with the slot the script gave it.
    let mut outstanding: Vec<(Ticket, u64)> = Vec::new();
    // Tickets recorded once and kept outstanding, so they may be recorded again.
    let mut recorded_once: Vec<(Ticket, u64)> = Vec::new();
    let mut probes_recorded_again = 0;
    // The script's generation after the latest step.
    let mut generation = 0;

    while let Some(op) = next(&limits) {
        log.push(format!("{op:?}"));
        let before = b.state();
        // Each arm returns the script's reply and what the breaker decided,
        // as a transition (or none) plus a verdict both sides must agree on.
        let (reply, decided): (Reply, Result<(), String>) = match op {
            Op::Acquire => {
                let reply = lua.run("acquire", &limits, [0; 3], 0);
                let decided = match b.acquire_ticket() {
                    Ok(ticket) => {
                        outstanding.push((ticket, reply.slot));
                        let want = if ticket.is_probe() {
                            ADMIT_PROBE
                        } else {
                            ADMIT_CLOSED
                        };
                        if reply.code != want {
                            Err(format!(
                                "breaker admitted {ticket:?}, script answered {}",
                                reply.code
                            ))
                        } else if u64::from(ticket.episode()) != reply.generation % MODULUS {
                            Err(format!(
                                "ticket episode {} but script generation {}",
                                ticket.episode(),
                                reply.generation
                            ))
                        } else if ticket.is_probe() && slot_of(ticket) != reply.slot {
                            Err(format!(
                                "probe in slot {} but script slot {}",
                                slot_of(ticket),
                                reply.slot
                            ))
                        } else {
                            Ok(())
                        }
                    }
                    Err(rejected) if reply.code == REJECT && rejected.state == reply.state => Ok(()),
                    Err(rejected) => Err(format!(
                        "breaker rejected in {:?}, script answered {}",
                        rejected.state, reply.code
                    )),
                };
                (reply, decided)
            }
            Op::Record {
                pick,
                outcome,
                keep,
                again,
                elapsed_ms,
            } => {
                if outstanding.is_empty() {
                    log.push("  (no ticket outstanding)".into());
                    continue;
                }
                let index = match (again, recorded_once.is_empty()) {
                    (true, false) => {
                        let kept = recorded_once[pick % recorded_once.len()];
                        outstanding.iter().position(|t| *t == kept).expect("kept")
                    }
                    _ => pick % outstanding.len(),
                };
                let twice = recorded_once.contains(&outstanding[index]);
                let (ticket, slot) = if keep {
                    outstanding[index]
                } else {
                    let taken = outstanding.swap_remove(index);
                    recorded_once.retain(|t| outstanding.contains(t));
                    taken
                };
                if keep && !twice {
                    recorded_once.push((ticket, slot));
                }
                if twice
                    && ticket.is_probe()
                    && u64::from(ticket.episode()) == generation % MODULUS
                    && b.state() == State::HalfOpen
                    && b.probes_in_flight() > 0
                {
                    log.push("  (a probe recorded again while another is in flight)".into());
                    probes_recorded_again += 1;
                }
                let kind = if ticket.is_probe() { 2 } else { 1 };
                let slow = limits.timed() && elapsed_ms > SLOW_MS;
                let reply = lua.run_timed(
                    "record",
                    &limits,
                    [kind, u64::from(ticket.episode()), u64::from(outcome_arg(outcome))],
                    slot,
                    slow,
                );
                let recorded = match limits.timed() {
                    true => b.record_timed(ticket, outcome, Duration::from_millis(elapsed_ms)),
                    false => b.record(ticket, outcome),
                }
                .expect("the breaker's own ticket");
                if limits.rate.is_some() && ticket.is_probe() && before == State::HalfOpen {
                    match recorded {
                        Recorded::Transitioned(t) if t.to == State::Open => rate_decisions.0 += 1,
                        Recorded::Transitioned(t) if t.to == State::Closed => rate_decisions.1 += 1,
                        Recorded::Counted if slow && outcome != Outcome::Ignored => slow_probes += 1,
                        _ => {}
                    }
                }
                let agree = match recorded {
                    Recorded::Counted => reply.code == COUNTED,
                    Recorded::Stale => reply.code == STALE,
                    Recorded::Transitioned(t) => reply.code == TRANSITIONED && reply.transition == Some(t),
                };
                let decided = if agree {
                    Ok(())
                } else {
                    Err(format!(
                        "breaker recorded {recorded:?}, script answered {reply:?}"
                    ))
                };
                (reply, decided)
            }
            Op::Force(target) => {
                let reply = lua.run("force", &limits, [u64::from(state_arg(target)), 0, 0], 0);
                let transition = match target {
                    State::Closed => b.close(),
                    State::Open => b.open(),
                    State::HalfOpen => b.half_open(),
                };
                let decided = if reply.code == NOOP && transition == reply.transition {
                    Ok(())
                } else {
                    Err(format!(
                        "breaker forced {transition:?}, script answered {reply:?}"
                    ))
                };
                (reply, decided)
            }
            Op::SetFailMax(n) | Op::SetSuccessThreshold(n) => {
                let transition = if let Op::SetFailMax(_) = op {
                    limits.fail_max = n;
                    b.set_fail_max(n)
                } else {
                    limits.success_threshold = n;
                    b.set_success_threshold(n)
                }
                .expect("a valid limit");
                let reply = lua.run("reconcile", &limits, [0; 3], 0);
                let decided = if transition == reply.transition {
                    Ok(())
                } else {
                    Err(format!(
                        "breaker reconciled {transition:?}, script answered {reply:?}"
                    ))
                };
                (reply, decided)
            }
            Op::SetHalfOpenMaxCalls(n) => {
                limits.half_open_max_calls = n;
                b.set_half_open_max_calls(n).expect("a valid limit");
                // Under the failure-rate rule the limit decides: the
                // breaker reconciles it (the transition is checked below).
                let op = match limits.rate {
                    Some(_) => "reconcile",
                    None => "sync",
                };
                (lua.run(op, &limits, [0; 3], 0), Ok(()))
            }
            Op::SetResetTimeout(ms) => {
                limits.reset_timeout_ms = ms;
                b.set_reset_timeout(Duration::from_millis(ms)).unwrap();
                (lua.run("sync", &limits, [0; 3], 0), Ok(()))
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                lua.now_ms += ms;
                (lua.run("sync", &limits, [0; 3], 0), Ok(()))
            }
        };
        decided?;
        let after = b.state();
        if !matches!(
            op,
            Op::Record { .. } | Op::Force(_) | Op::SetFailMax(_) | Op::SetSuccessThreshold(_)
        ) && change(before, after) != reply.transition
        {
            return Err(format!(
                "breaker moved {:?}, script moved {:?}",
                change(before, after),
                reply.transition
            ));
        }
        generation = reply.generation;
        let ours = (after, b.fail_counter(), b.success_counter(), b.probes_in_flight());
        let theirs = match limits.rate {
            // The tally's successes: recorded less failed.
            Some(_) => (
                reply.state,
                reply.failures,
                reply.tally.0 - reply.tally.1,
                reply.in_flight,
            ),
            None => (reply.state, reply.failures, reply.successes, reply.in_flight),
        };
        if ours != theirs {
            return Err(format!(
                "(state, failures, successes, in flight): breaker {ours:?}, script {theirs:?}"
            ));
        }
        if limits.rate.is_some() && b.probe_failure_counter() != reply.tally.1 {
            return Err(format!(
                "probe failures: breaker {}, script tally {:?}",
                b.probe_failure_counter(),
                reply.tally
            ));
        }
        // The open period: the backoff's on both sides, or none chosen by
        // the script (each side then waits its reset timeout).
        let ours = b.open_for().map(|d| d.as_millis() as i64);
        let theirs = match (after, limits.backoff) {
            (State::Open, Some(_)) => Some(reply.open_for_ms),
            (State::Open, None) if reply.open_for_ms == -1 => Some(limits.reset_timeout_ms as i64),
            (State::Open, None) => Some(reply.open_for_ms),
            _ if reply.open_for_ms == -1 => None,
            _ => Some(reply.open_for_ms),
        };
        if ours != theirs {
            return Err(format!("open period: breaker {ours:?}, script {theirs:?}"));
        }
        if after == State::Open
            && limits.backoff.is_some()
            && reply.open_for_ms > limits.reset_timeout_ms as i64
            && change(before, after).is_some()
        {
            grown_periods += 1;
        }
    }
    Ok(Stats {
        probes_recorded_again,
        grown_periods,
        rate_decisions,
        slow_probes,
    })
}

#[test]
fn the_lua_script_and_the_in_memory_breaker_decide_alike() {
    let stats = run_sequences(diff_seed(), SEQUENCES, "differential", |_| (false, false));
    let probes_recorded_again = stats.probes_recorded_again;
    // Every sequence ran whole; the double records were among them.
    assert!(
        probes_recorded_again >= 10,
        "probes recorded again while another was in flight: {probes_recorded_again}"
    );
    println!(
        "{SEQUENCES} sequences ran whole; {probes_recorded_again} times a probe was recorded again while another was in flight"
    );
}

fn diff_seed() -> u64 {
    std::env::var("BREAKERBOX_DIFF_SEED")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BREAKERBOX_DIFF_SEED must be an integer, got {s:?}"))
        })
        .unwrap_or(DEFAULT_SEED)
}

/// The same, with an exponential open backoff on both sides: the script's
/// open periods (grown, capped, started over at each close) and its
/// open-to-half-open decisions must be the in-memory breaker's.
#[test]
fn the_lua_script_and_the_in_memory_breaker_back_off_alike() {
    let seed = diff_seed() ^ 0x6261_636b_6f66_6621;
    let stats = run_sequences(seed, BACKOFF_SEQUENCES, "differential-backoff", |_| (true, false));
    let grown_periods = stats.grown_periods;
    assert!(
        grown_periods >= 50,
        "open periods grown by the backoff: {grown_periods}"
    );
    println!("{BACKOFF_SEQUENCES} sequences with a backoff ran whole; {grown_periods} open periods grown");
}

/// Beyond what random sequences reach: sixteen probes in their own slots, a
/// probe recorded twice among them (stale on both sides), then the 17th
/// probe of the episode, from which on both only count (and a second record
/// counts again, on both), until the episode ends and slots start afresh.
#[test]
fn probe_slots_and_the_count_after_sixteen_agree() {
    let server = PrivateServer::start();
    let mut conn = client(&server.url());
    let script = redis::Script::new(SCRIPT);
    let ns = unique_namespace("differential-slots");
    let mut lua = Lua {
        conn: &mut conn,
        script: &script,
        key: format!("breakerbox:{{{ns}}}:state"),
        now_ms: 0,
    };
    let limits = Limits {
        fail_max: 1,
        success_threshold: 100,
        half_open_max_calls: 20,
        reset_timeout_ms: 50,
        probe_lease_ms: 1_000,
        backoff: None,
        rate: None,
    };
    // Every record keeps its ticket, so `pick` is the admission order.
    let record = |pick: usize, outcome: Outcome| Op::Record {
        pick,
        outcome,
        keep: true,
        again: false,
        elapsed_ms: 0,
    };
    let mut ops = vec![Op::Force(State::HalfOpen)];
    ops.extend([Op::Acquire; 16]);
    ops.extend([
        record(3, Outcome::Ignored),
        record(3, Outcome::Ignored),
        record(5, Outcome::Success),
        record(5, Outcome::Success),
    ]);
    // The 17th probe, and two more: counted from here on.
    ops.extend([Op::Acquire; 3]);
    ops.extend([record(16, Outcome::Ignored), record(16, Outcome::Ignored)]);
    // The rest leave (17 admitted, 4 records counted above): the episode
    // ends, and the next probe takes slot 0 again.
    ops.extend(
        (0..19)
            .filter(|i| ![3, 5, 16].contains(i))
            .map(|i| record(i, Outcome::Ignored)),
    );
    ops.extend([Op::Acquire, Op::Acquire]);
    let mut log = Vec::new();
    let mut ops = ops.into_iter();
    let result = run_ops(limits, |_| ops.next(), &mut lua, &mut log);
    match result {
        Ok(stats) => assert!(
            stats.probes_recorded_again >= 3,
            "probes recorded again: {stats:?}"
        ),
        Err(difference) => panic!("{difference}\noperations:\n  {}", log.join("\n  ")),
    }
}

/// A hash an older script wrote (probes counted, no slots) keeps counting
/// its probes until their episode ends; the next episode has slots.
#[test]
fn a_hash_without_slots_counts_its_probes_until_the_episode_ends() {
    let server = PrivateServer::start();
    let mut conn = client(&server.url());
    let script = redis::Script::new(SCRIPT);
    let ns = unique_namespace("differential-upgrade");
    let key = format!("breakerbox:{{{ns}}}:state");
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg(
            &[
                "v", "1", "s", "2", "g", "5", "f", "0", "o", "0", "i", "2", "k", "0", "p", "0",
            ][..],
        )
        .query(&mut conn)
        .expect("HSET");
    let mut lua = Lua {
        conn: &mut conn,
        script: &script,
        key,
        now_ms: 0,
    };
    let limits = Limits {
        fail_max: 1,
        success_threshold: 3,
        half_open_max_calls: 2,
        reset_timeout_ms: 50,
        probe_lease_ms: 1_000,
        backoff: None,
        rate: None,
    };
    let ignored = [2, 5, u64::from(outcome_arg(Outcome::Ignored))];
    // The two probes' tickets name slot 0 (an older breaker sent none).
    for in_flight in [1, 0] {
        let reply = lua.run("record", &limits, ignored, 0);
        assert_eq!(
            (reply.code, reply.in_flight),
            (COUNTED, in_flight),
            "counted: {reply:?}"
        );
    }
    let reply = lua.run("record", &limits, ignored, 0);
    assert_eq!(reply.code, STALE, "the episode has ended: {reply:?}");
    let slots: Vec<u64> = (0..2)
        .map(|_| lua.run("acquire", &limits, [0; 3], 0).slot)
        .collect();
    assert_eq!(slots, [0, 1], "the next episode has slots");
    let reply = lua.run(
        "record",
        &limits,
        [2, 6, u64::from(outcome_arg(Outcome::Ignored))],
        1,
    );
    assert_eq!((reply.code, reply.in_flight), (COUNTED, 1));
    let reply = lua.run(
        "record",
        &limits,
        [2, 6, u64::from(outcome_arg(Outcome::Ignored))],
        1,
    );
    assert_eq!(reply.code, STALE, "slot 1 is free: {reply:?}");
}

/// A hash without the backoff's fields (an older script's, open) has no
/// backoff state: that period lasts the reset timeout; the next re-open is
/// the count's first, then it grows. A period an older script opened (the
/// generation moved on without the fields) lasts the reset timeout too.
#[test]
fn a_hash_without_backoff_fields_opens_for_the_reset_timeout_then_grows() {
    let server = PrivateServer::start();
    let mut conn = client(&server.url());
    let script = redis::Script::new(SCRIPT);
    let ns = unique_namespace("differential-backoff-upgrade");
    let key = format!("breakerbox:{{{ns}}}:state");
    let older = |conn: &mut redis::Connection, generation: &str, opened: &str| {
        let _: i64 = redis::cmd("HSET")
            .arg(&key)
            .arg(
                &[
                    "v", "1", "s", "1", "g", generation, "f", "0", "o", opened, "i", "0", "k", "0", "p", "0",
                    "b", "0", "n", "0",
                ][..],
            )
            .query(conn)
            .expect("HSET");
    };
    older(&mut conn, "4", "0");
    let mut lua = Lua {
        conn: &mut conn,
        script: &script,
        key: key.clone(),
        now_ms: 0,
    };
    let limits = Limits {
        fail_max: 1,
        success_threshold: 1,
        half_open_max_calls: 1,
        reset_timeout_ms: 50,
        probe_lease_ms: 1_000,
        backoff: Some((2.0, 1_000)),
        rate: None,
    };
    let sync = lua.run("sync", &limits, [0; 3], 0);
    assert_eq!(
        (sync.state, sync.open_for_ms),
        (State::Open, -1),
        "no backoff state"
    );
    let failure = |generation: u64| [2, generation, u64::from(outcome_arg(Outcome::Failure))];
    lua.now_ms = 49;
    assert_eq!(lua.run("acquire", &limits, [0; 3], 0).code, REJECT);
    lua.now_ms = 50;
    let probe = lua.run("acquire", &limits, [0; 3], 0);
    assert_eq!(probe.code, ADMIT_PROBE, "after the reset timeout: {probe:?}");
    let reopened = lua.run("record", &limits, failure(probe.generation), probe.slot);
    assert_eq!(
        (reopened.state, reopened.open_for_ms),
        (State::Open, 50),
        "the count's first"
    );
    lua.now_ms = 100;
    let probe = lua.run("acquire", &limits, [0; 3], 0);
    let reopened = lua.run("record", &limits, failure(probe.generation), probe.slot);
    assert_eq!(reopened.open_for_ms, 100, "then it grows: {reopened:?}");

    // An older script opens the fleet again (a later generation, its fields
    // untouched): that period is the reset timeout, not the stale 100 ms.
    older(lua.conn, &(reopened.generation + 3).to_string(), "100");
    let sync = lua.run("sync", &limits, [0; 3], 0);
    assert_eq!((sync.state, sync.open_for_ms), (State::Open, -1), "{sync:?}");
    lua.now_ms = 150;
    assert_eq!(lua.run("acquire", &limits, [0; 3], 0).code, ADMIT_PROBE);
}

/// The same under `HalfOpenRule::FailureRate`, slow probes timed in half
/// of them: the script's permits, tally and decisions must be the word's.
#[test]
fn the_lua_script_and_the_in_memory_breaker_decide_by_failure_rate_alike() {
    let seed = diff_seed() ^ 0x7261_7465_7275_6c65;
    // A quarter of them with a backoff too.
    let stats = run_sequences(seed, RATE_SEQUENCES, "differential-rate", |sequence| {
        (sequence % 4 == 3, true)
    });
    let ((reopened, closed), slow_probes) = (stats.rate_decisions, stats.slow_probes);
    assert!(
        reopened >= 50 && closed >= 50 && slow_probes >= 50,
        "decided by rate: {reopened} re-opened, {closed} closed; {slow_probes} slow probes counted"
    );
    println!(
        "{RATE_SEQUENCES} failure-rate sequences ran whole; {reopened} re-opened and {closed} closed by rate, {slow_probes} slow probes counted"
    );
}
