//! One state machine, not two that drift: the same random operation
//! sequences run against the in-memory breaker (on a `ManualClock`) and
//! against the fleet's Lua script on a real Redis, with the script's clock
//! driven by the test (its test-only time argument, `ARGV[16]`). Any
//! difference in a decision, a state or a counter fails, with the seed and
//! the operations that led there.
//!
//! One difference is known and asserted as such: the in-memory word gives
//! each probe a slot, so a probe recorded twice is stale the second time,
//! while the script counts probes, so there a second record while another
//! probe is in flight counts (the README's "Double records" and consistency
//! model say so). A sequence that meets it checks that it is exactly that
//! difference, then ends, since the two states part there.
//!
//! Deterministic and bounded: a fixed seed (override it with
//! `BREAKERBOX_DIFF_SEED`), 300 sequences of 80 operations, on a private
//! redis-server (`BREAKERBOX_REDIS_SERVER`, see `scripts/test-redis-deploy.sh`).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, Outcome, Recorded, State, Ticket, Transition};
use redis_support::*;
use std::time::Duration;

const SCRIPT: &str = include_str!("../src/redis/fleet.lua");
/// The generation modulus the breaker sends (the word's 20-bit generation).
const MODULUS: u64 = 1 << 20;
const SEQUENCES: u64 = 300;
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
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Acquire,
    /// Records the outstanding ticket at this index (modulo their count);
    /// `keep` leaves it outstanding, so it may be recorded twice.
    Record {
        pick: usize,
        outcome: Outcome,
        keep: bool,
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
            keep: rng.range(0, 9) == 0,
        },
        70..=86 => Op::Advance(rng.range(0, limits.reset_timeout_ms.max(limits.probe_lease_ms) * 3 / 2)),
        87..=91 => Op::Force(match rng.range(0, 2) {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }),
        92..=93 => Op::SetFailMax(rng.range(1, 4) as u32),
        94..=95 => Op::SetSuccessThreshold(rng.range(1, 3) as u32),
        96..=97 => Op::SetHalfOpenMaxCalls(rng.range(1, 3) as u32),
        _ => Op::SetResetTimeout(rng.range(5, 60)),
    }
}

/// The script's reply: `{ code, v, s, g, f, ms since opened, i, k, ms since
/// last probe admission, transition from, transition to }`.
#[derive(Debug, Clone, Copy)]
struct Reply {
    code: i64,
    state: State,
    generation: u64,
    failures: u32,
    in_flight: u32,
    successes: u32,
    transition: Option<Transition>,
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
    /// `fleet.lua`'s header) plus the test-only time.
    fn run(&mut self, op: &str, limits: &Limits, extra: [u64; 3]) -> Reply {
        let values: Vec<i64> = self
            .script
            .key(&self.key)
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
            .invoke(self.conn)
            .expect("the script runs");
        let [code, _v, s, g, f, _opened, i, k, _probe, from, to] = values[..] else {
            panic!("unexpected reply {values:?}");
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
        }
    }
}

/// A transition as the in-memory breaker shows it: its state before and after.
fn change(before: State, after: State) -> Option<Transition> {
    (before != after).then_some(Transition {
        from: before,
        to: after,
    })
}

/// How a sequence that showed no difference ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// Every operation ran.
    Whole,
    /// At the known difference: a probe recorded twice (see the module docs).
    ProbeRecordedTwice,
}

/// Runs one sequence; returns the first difference, if any.
fn run_sequence(rng: &mut Rng, lua: &mut Lua<'_>, log: &mut Vec<String>) -> Result<Ended, String> {
    let mut limits = Limits {
        fail_max: rng.range(1, 4) as u32,
        success_threshold: rng.range(1, 3) as u32,
        half_open_max_calls: rng.range(1, 3) as u32,
        reset_timeout_ms: rng.range(5, 60),
        probe_lease_ms: rng.range(5, 60),
    };
    log.push(format!("{limits:?}"));
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .fail_max(limits.fail_max)
        .success_threshold(limits.success_threshold)
        .half_open_max_calls(limits.half_open_max_calls)
        .reset_timeout(Duration::from_millis(limits.reset_timeout_ms))
        .probe_lease(Duration::from_millis(limits.probe_lease_ms))
        .clock(clock.clone())
        .build()
        .expect("valid limits");
    let mut outstanding: Vec<Ticket> = Vec::new();
    // Tickets recorded once and kept outstanding, so they may be recorded again.
    let mut recorded_once: Vec<Ticket> = Vec::new();

    for _ in 0..STEPS {
        let op = random_op(rng, &limits);
        log.push(format!("{op:?}"));
        let before = b.state();
        // Each arm returns the script's reply and what the breaker decided,
        // as a transition (or none) plus a verdict both sides must agree on.
        let (reply, decided): (Reply, Result<(), String>) = match op {
            Op::Acquire => {
                let reply = lua.run("acquire", &limits, [0; 3]);
                let decided = match b.acquire_ticket() {
                    Ok(ticket) => {
                        outstanding.push(ticket);
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
            Op::Record { pick, outcome, keep } => {
                if outstanding.is_empty() {
                    log.push("  (no ticket outstanding)".into());
                    continue;
                }
                let index = pick % outstanding.len();
                let ticket = if keep {
                    outstanding[index]
                } else {
                    outstanding.swap_remove(index)
                };
                let twice = recorded_once.contains(&ticket);
                if keep && !twice {
                    recorded_once.push(ticket);
                }
                let kind = if ticket.is_probe() { 2 } else { 1 };
                let reply = lua.run(
                    "record",
                    &limits,
                    [kind, u64::from(ticket.episode()), u64::from(outcome_arg(outcome))],
                );
                let recorded = b.record(ticket, outcome).expect("the breaker's own ticket");
                let agree = match recorded {
                    Recorded::Counted => reply.code == COUNTED,
                    Recorded::Stale => reply.code == STALE,
                    Recorded::Transitioned(t) => reply.code == TRANSITIONED && reply.transition == Some(t),
                };
                if !agree && twice && ticket.is_probe() && recorded == Recorded::Stale && reply.code != STALE
                {
                    log.push("  (the known difference: a probe recorded twice)".into());
                    return Ok(Ended::ProbeRecordedTwice);
                }
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
                let reply = lua.run("force", &limits, [u64::from(state_arg(target)), 0, 0]);
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
                let reply = lua.run("reconcile", &limits, [0; 3]);
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
                (lua.run("sync", &limits, [0; 3]), Ok(()))
            }
            Op::SetResetTimeout(ms) => {
                limits.reset_timeout_ms = ms;
                b.set_reset_timeout(Duration::from_millis(ms)).unwrap();
                (lua.run("sync", &limits, [0; 3]), Ok(()))
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                lua.now_ms += ms;
                (lua.run("sync", &limits, [0; 3]), Ok(()))
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
        let ours = (after, b.fail_counter(), b.success_counter(), b.probes_in_flight());
        let theirs = (reply.state, reply.failures, reply.successes, reply.in_flight);
        if ours != theirs {
            return Err(format!(
                "(state, failures, successes, in flight): breaker {ours:?}, script {theirs:?}"
            ));
        }
    }
    Ok(Ended::Whole)
}

#[test]
fn the_lua_script_and_the_in_memory_breaker_decide_alike() {
    let seed = std::env::var("BREAKERBOX_DIFF_SEED")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BREAKERBOX_DIFF_SEED must be an integer, got {s:?}"))
        })
        .unwrap_or(DEFAULT_SEED);
    let server = PrivateServer::start();
    let mut conn = client(&server.url());
    let script = redis::Script::new(SCRIPT);
    let mut ops = 0;
    let mut whole = 0;
    for sequence in 0..SEQUENCES {
        let mut rng = Rng(seed ^ sequence.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let ns = unique_namespace("differential");
        let mut lua = Lua {
            conn: &mut conn,
            script: &script,
            key: format!("breakerbox:{{{ns}}}:state"),
            now_ms: 0,
        };
        let mut log = Vec::new();
        let result = run_sequence(&mut rng, &mut lua, &mut log);
        let key = lua.key.clone();
        let _: i64 = redis::cmd("DEL").arg(&key).query(&mut conn).expect("DEL");
        match result {
            Ok(Ended::Whole) => whole += 1,
            Ok(Ended::ProbeRecordedTwice) => {}
            Err(difference) => panic!(
                "seed {seed}, sequence {sequence}: {difference}\noperations:\n  {}",
                log.join("\n  ")
            ),
        }
        ops += log.len();
    }
    assert!(
        ops > (SEQUENCES as usize) * STEPS / 2,
        "the sequences ran ({ops} operations)"
    );
    assert!(
        whole > SEQUENCES / 2,
        "most sequences ran whole ({whole} of {SEQUENCES})"
    );
    println!("{whole} of {SEQUENCES} sequences ran whole; the rest ended at a probe recorded twice");
}
