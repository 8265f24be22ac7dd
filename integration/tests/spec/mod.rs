//! The breaker's specification as a sequential reference model, written
//! from the README's rules (States, Episodes, Outcomes, Double records), not
//! from the implementation, and a driver that runs one sequence of operations
//! against both and reports the first disagreement.
//!
//! Shared by `tests/model.rs` (proptest) and the fuzz target
//! `fuzz/fuzz_targets/model.rs` (cargo-fuzz).

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, Outcome, Recorded, State, Ticket, Transition};
use std::collections::BTreeSet;
use std::time::Duration;

/// How many probes of one half-open episode are told apart: a probe
/// recorded twice is stale among the first this many admitted in its
/// episode (README, "Double records").
pub const TOLD_APART: u32 = 16;

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Ask for a permit; keep its ticket if admitted.
    Acquire,
    /// Record the ticket at this index (modulo those kept) with this outcome;
    /// a ticket may be recorded any number of times.
    Record(usize, Outcome),
    /// `open()`, `half_open()` or `close()`.
    Force(State),
    /// `set_fail_max`.
    SetFailMax(u32),
    /// `set_success_threshold`.
    SetSuccessThreshold(u32),
    /// `set_half_open_max_calls`.
    SetHalfOpenMaxCalls(u32),
    /// `set_reset_timeout`, in milliseconds.
    SetResetTimeout(u64),
    /// `set_probe_lease`, in milliseconds (at least 1).
    SetProbeLease(u64),
    /// Move the clock forward by this many milliseconds.
    Advance(u64),
}

/// The limits a sequence starts with (each at least 1, counts at most 65,535).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub fail_max: u32,
    pub success_threshold: u32,
    pub half_open_max_calls: u32,
    pub reset_ms: u64,
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed { failures: u32 },
    Open { opened_at: u64 },
    HalfOpen { successes: u32 },
}

/// A permit as the specification sees it.
#[derive(Debug, Clone, Copy)]
struct Issued {
    episode: u64,
    /// `Some(id)` for a half-open probe.
    probe: Option<u64>,
    recorded: bool,
}

struct Model {
    phase: Phase,
    /// Advances on every transition, on a lease reclaim, and when the last
    /// probe in flight is recorded.
    episode: u64,
    /// The probes of this episode that are in flight.
    in_flight: BTreeSet<u64>,
    /// Probes admitted in this episode.
    admitted: u32,
    next_probe: u64,
    latest_admission: u64,
    now: u64,
    limits: Config,
}

impl Model {
    fn state(&self) -> State {
        match self.phase {
            Phase::Closed { .. } => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// (fail_counter, success_counter, probes_in_flight)
    fn counters(&self) -> (u32, u32, u32) {
        match self.phase {
            Phase::Closed { failures } => (failures, 0, 0),
            Phase::Open { .. } => (0, 0, 0),
            Phase::HalfOpen { successes } => (0, successes, self.in_flight.len() as u32),
        }
    }

    fn new_episode(&mut self) {
        self.episode += 1;
        self.in_flight.clear();
        self.admitted = 0;
    }

    fn go(&mut self, next: Phase) -> Option<Transition> {
        let from = self.state();
        self.phase = next;
        self.new_episode();
        let to = self.state();
        (from != to).then_some(Transition { from, to })
    }

    fn admit_probe(&mut self) -> Issued {
        let id = self.next_probe;
        self.next_probe += 1;
        self.in_flight.insert(id);
        self.admitted += 1;
        self.latest_admission = self.now;
        Issued {
            episode: self.episode,
            probe: Some(id),
            recorded: false,
        }
    }

    fn acquire(&mut self) -> Result<Issued, State> {
        match self.phase {
            Phase::Closed { .. } => Ok(Issued {
                episode: self.episode,
                probe: None,
                recorded: false,
            }),
            Phase::Open { opened_at } if self.now >= opened_at.saturating_add(self.limits.reset_ms) => {
                self.go(Phase::HalfOpen { successes: 0 });
                Ok(self.admit_probe())
            }
            Phase::Open { .. } => Err(State::Open),
            Phase::HalfOpen { .. } if (self.in_flight.len() as u32) < self.limits.half_open_max_calls => {
                Ok(self.admit_probe())
            }
            Phase::HalfOpen { .. }
                if self.now >= self.latest_admission.saturating_add(self.limits.lease_ms) =>
            {
                // Every probe outlived its lease: their slots are reclaimed.
                self.new_episode();
                Ok(self.admit_probe())
            }
            Phase::HalfOpen { .. } => Err(State::HalfOpen),
        }
    }

    /// Whether the specification leaves this record open: a probe recorded
    /// again in an episode that admitted more probes than are told apart.
    fn unspecified(&self, ticket: &Issued) -> bool {
        ticket.recorded
            && ticket.probe.is_some()
            && ticket.episode == self.episode
            && self.admitted > TOLD_APART
    }

    fn leave(&mut self, id: u64, successes: u32) {
        self.in_flight.remove(&id);
        self.phase = Phase::HalfOpen { successes };
        if self.in_flight.is_empty() {
            self.new_episode();
        }
    }

    fn record(&mut self, ticket: Issued, outcome: Outcome) -> Recorded {
        if ticket.episode != self.episode {
            return Recorded::Stale;
        }
        let transition = match (self.phase, ticket.probe, outcome) {
            (Phase::Closed { .. }, None, Outcome::Success) => {
                self.phase = Phase::Closed { failures: 0 };
                None
            }
            (Phase::Closed { failures }, None, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.limits.fail_max {
                    self.go(Phase::Open { opened_at: self.now })
                } else {
                    self.phase = Phase::Closed { failures };
                    None
                }
            }
            (Phase::Closed { .. }, None, Outcome::Ignored) => None,
            (Phase::HalfOpen { successes }, Some(id), _) if self.in_flight.contains(&id) => match outcome {
                Outcome::Failure => self.go(Phase::Open { opened_at: self.now }),
                Outcome::Success if successes + 1 >= self.limits.success_threshold => {
                    self.go(Phase::Closed { failures: 0 })
                }
                Outcome::Success => {
                    self.leave(id, successes + 1);
                    None
                }
                Outcome::Ignored => {
                    self.leave(id, successes);
                    None
                }
            },
            // A probe already recorded, or a permit of another kind than the
            // state issues: its episode's part is over.
            _ => return Recorded::Stale,
        };
        transition.map_or(Recorded::Counted, Recorded::Transitioned)
    }

    fn force(&mut self, target: State) -> Option<Transition> {
        match (self.phase, target) {
            (Phase::Closed { .. }, State::Closed) => {
                self.phase = Phase::Closed { failures: 0 };
                None
            }
            (Phase::Open { .. }, State::Open) | (Phase::HalfOpen { .. }, State::HalfOpen) => None,
            (_, State::Closed) => self.go(Phase::Closed { failures: 0 }),
            (_, State::Open) => self.go(Phase::Open { opened_at: self.now }),
            (_, State::HalfOpen) => self.go(Phase::HalfOpen { successes: 0 }),
        }
    }

    fn set_fail_max(&mut self, value: u32) -> Option<Transition> {
        self.limits.fail_max = value;
        match self.phase {
            Phase::Closed { failures } if failures >= value => self.go(Phase::Open { opened_at: self.now }),
            _ => None,
        }
    }

    fn set_success_threshold(&mut self, value: u32) -> Option<Transition> {
        self.limits.success_threshold = value;
        match self.phase {
            Phase::HalfOpen { successes } if successes >= value => self.go(Phase::Closed { failures: 0 }),
            _ => None,
        }
    }
}

/// Runs `ops` against a breaker on a [`ManualClock`] and against the model;
/// `Err` describes the first step where they disagree.
pub fn check(config: Config, ops: impl IntoIterator<Item = Op>) -> Result<(), String> {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .fail_max(config.fail_max)
        .success_threshold(config.success_threshold)
        .half_open_max_calls(config.half_open_max_calls)
        .reset_timeout(Duration::from_millis(config.reset_ms))
        .probe_lease(Duration::from_millis(config.lease_ms))
        .clock(clock.clone())
        .build()
        .map_err(|e| format!("config {config:?}: {e}"))?;
    let mut model = Model {
        phase: Phase::Closed { failures: 0 },
        episode: 0,
        in_flight: BTreeSet::new(),
        admitted: 0,
        next_probe: 0,
        latest_admission: 0,
        now: 0,
        limits: config,
    };
    let mut tickets: Vec<(Ticket, Issued)> = Vec::new();

    macro_rules! agree {
        ($step:expr, $op:expr, $real:expr, $expected:expr) => {{
            let (real, expected) = ($real, $expected);
            if real != expected {
                return Err(format!(
                    "step {} ({:?}): breaker {:?}, specification {:?}",
                    $step, $op, real, expected
                ));
            }
        }};
    }

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire => match (breaker.acquire_ticket(), model.acquire()) {
                (Ok(real), Ok(expected)) => {
                    agree!(step, op, real.is_probe(), expected.probe.is_some());
                    tickets.push((real, expected));
                }
                (real, expected) => agree!(
                    step,
                    op,
                    real.map(|_| ()).map_err(|r| r.state),
                    expected.map(|_| ())
                ),
            },
            Op::Record(index, outcome) if !tickets.is_empty() => {
                let index = index % tickets.len();
                let (real, expected) = tickets[index];
                if model.unspecified(&expected) {
                    continue;
                }
                tickets[index].1.recorded = true;
                agree!(
                    step,
                    op,
                    breaker.record(real, outcome),
                    Ok(model.record(expected, outcome))
                );
            }
            Op::Record(..) => {}
            Op::Force(target) => {
                let real = match target {
                    State::Closed => breaker.close(),
                    State::Open => breaker.open(),
                    State::HalfOpen => breaker.half_open(),
                };
                agree!(step, op, real, model.force(target));
            }
            Op::SetFailMax(v) => agree!(
                step,
                op,
                breaker.set_fail_max(v).ok(),
                Some(model.set_fail_max(v))
            ),
            Op::SetSuccessThreshold(v) => agree!(
                step,
                op,
                breaker.set_success_threshold(v).ok(),
                Some(model.set_success_threshold(v))
            ),
            Op::SetHalfOpenMaxCalls(v) => {
                agree!(step, op, breaker.set_half_open_max_calls(v).is_ok(), true);
                model.limits.half_open_max_calls = v;
            }
            Op::SetResetTimeout(ms) => {
                breaker.set_reset_timeout(Duration::from_millis(ms)).unwrap();
                model.limits.reset_ms = ms;
            }
            Op::SetProbeLease(ms) => {
                agree!(
                    step,
                    op,
                    breaker.set_probe_lease(Duration::from_millis(ms)).is_ok(),
                    true
                );
                model.limits.lease_ms = ms;
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
        }
        agree!(step, op, breaker.state(), model.state());
        agree!(
            step,
            "(failures, successes, in flight)",
            (
                breaker.fail_counter(),
                breaker.success_counter(),
                breaker.probes_in_flight()
            ),
            model.counters()
        );
    }
    Ok(())
}
