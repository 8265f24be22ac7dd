//! Model-based test: random sequences of acquire / record / force / set /
//! advance-time run against the breaker and against a small sequential
//! reference model; states, counters and every decision must agree.
#![cfg(not(miri))]

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, Outcome, Recorded, State, Ticket, Transition};
use proptest::prelude::*;
use std::time::Duration;

const RESET_MS: u64 = 100;
const LEASE_MS: u64 = 150;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Force(State),
    SetFailMax(u32),
    SetSuccessThreshold(u32),
    SetHalfOpenMaxCalls(u32),
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignored)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => prop_oneof![Just(State::Closed), Just(State::Open), Just(State::HalfOpen)].prop_map(Op::Force),
        1 => (1u32..6).prop_map(Op::SetFailMax),
        1 => (1u32..4).prop_map(Op::SetSuccessThreshold),
        1 => (1u32..4).prop_map(Op::SetHalfOpenMaxCalls),
        3 => (0u64..120).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ModelState {
    Closed { failures: u32 },
    Open { opened_at: u64 },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// A ticket in the model: the episode it was issued in, and whether it is a probe.
#[derive(Debug, Clone, Copy)]
struct ModelTicket {
    episode: u64,
    probe: bool,
}

/// The specification, written as plainly as possible.
struct Model {
    state: ModelState,
    /// Advances on every transition, lease reclaim, and when the last probe in flight is recorded.
    episode: u64,
    now: u64,
    probe_admitted_at: u64,
    fail_max: u32,
    success_threshold: u32,
    half_open_max_calls: u32,
}

impl Model {
    fn state(&self) -> State {
        match self.state {
            ModelState::Closed { .. } => State::Closed,
            ModelState::Open { .. } => State::Open,
            ModelState::HalfOpen { .. } => State::HalfOpen,
        }
    }

    fn counters(&self) -> (u32, u32, u32) {
        match self.state {
            ModelState::Closed { failures } => (failures, 0, 0),
            ModelState::Open { .. } => (0, 0, 0),
            ModelState::HalfOpen { in_flight, successes } => (0, successes, in_flight),
        }
    }

    /// Moves to `next`, starting a new episode; returns the transition.
    fn go(&mut self, next: ModelState) -> Option<Transition> {
        let from = self.state();
        self.state = next;
        self.episode += 1;
        let to = self.state();
        (from != to).then_some(Transition { from, to })
    }

    fn admit_probe(&mut self) -> ModelTicket {
        self.probe_admitted_at = self.probe_admitted_at.max(self.now);
        ModelTicket {
            episode: self.episode,
            probe: true,
        }
    }

    fn acquire(&mut self) -> Result<ModelTicket, State> {
        match self.state {
            ModelState::Closed { .. } => Ok(ModelTicket {
                episode: self.episode,
                probe: false,
            }),
            ModelState::Open { opened_at } if self.now >= opened_at + RESET_MS => {
                self.go(ModelState::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                });
                Ok(self.admit_probe())
            }
            ModelState::Open { .. } => Err(State::Open),
            ModelState::HalfOpen { in_flight, successes } if in_flight < self.half_open_max_calls => {
                self.state = ModelState::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Ok(self.admit_probe())
            }
            ModelState::HalfOpen { successes, .. } if self.now >= self.probe_admitted_at + LEASE_MS => {
                self.episode += 1;
                self.state = ModelState::HalfOpen {
                    in_flight: 1,
                    successes,
                };
                Ok(self.admit_probe())
            }
            ModelState::HalfOpen { .. } => Err(State::HalfOpen),
        }
    }

    fn release_probe(&mut self, in_flight: u32, successes: u32) {
        self.state = ModelState::HalfOpen {
            in_flight: in_flight - 1,
            successes,
        };
        if in_flight == 1 {
            self.episode += 1;
        }
    }

    fn record(&mut self, ticket: ModelTicket, outcome: Outcome) -> Recorded {
        let stale = ticket.episode != self.episode
            || match self.state {
                ModelState::Closed { .. } => ticket.probe,
                ModelState::Open { .. } => true,
                ModelState::HalfOpen { in_flight, .. } => !ticket.probe || in_flight == 0,
            };
        if stale {
            return Recorded::Stale;
        }
        let transition = match (self.state, outcome) {
            (ModelState::Closed { .. }, Outcome::Success) => {
                self.state = ModelState::Closed { failures: 0 };
                None
            }
            (ModelState::Closed { failures }, Outcome::Failure) if failures + 1 >= self.fail_max => {
                self.go(ModelState::Open { opened_at: self.now })
            }
            (ModelState::Closed { failures }, Outcome::Failure) => {
                self.state = ModelState::Closed {
                    failures: failures + 1,
                };
                None
            }
            (ModelState::HalfOpen { .. }, Outcome::Failure) => {
                self.go(ModelState::Open { opened_at: self.now })
            }
            (ModelState::HalfOpen { successes, .. }, Outcome::Success)
                if successes + 1 >= self.success_threshold =>
            {
                self.go(ModelState::Closed { failures: 0 })
            }
            (ModelState::HalfOpen { in_flight, successes }, Outcome::Success) => {
                self.release_probe(in_flight, successes + 1);
                None
            }
            (ModelState::HalfOpen { in_flight, successes }, Outcome::Ignored) => {
                self.release_probe(in_flight, successes);
                None
            }
            (_, Outcome::Ignored) => None,
            (ModelState::Open { .. }, _) => unreachable!("stale"),
        };
        transition.map_or(Recorded::Counted, Recorded::Transitioned)
    }

    fn force(&mut self, target: State) -> Option<Transition> {
        match (self.state, target) {
            (ModelState::Closed { .. }, State::Closed) => {
                self.state = ModelState::Closed { failures: 0 };
                None
            }
            (ModelState::Open { .. }, State::Open) | (ModelState::HalfOpen { .. }, State::HalfOpen) => None,
            (_, State::Closed) => self.go(ModelState::Closed { failures: 0 }),
            (_, State::Open) => self.go(ModelState::Open { opened_at: self.now }),
            (_, State::HalfOpen) => self.go(ModelState::HalfOpen {
                in_flight: 0,
                successes: 0,
            }),
        }
    }

    fn set_fail_max(&mut self, value: u32) -> Option<Transition> {
        self.fail_max = value;
        match self.state {
            ModelState::Closed { failures } if failures >= value => {
                self.go(ModelState::Open { opened_at: self.now })
            }
            _ => None,
        }
    }

    fn set_success_threshold(&mut self, value: u32) -> Option<Transition> {
        self.success_threshold = value;
        match self.state {
            ModelState::HalfOpen { successes, .. } if successes >= value => {
                self.go(ModelState::Closed { failures: 0 })
            }
            _ => None,
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .fail_max(3)
        .success_threshold(2)
        .half_open_max_calls(2)
        .reset_timeout(Duration::from_millis(RESET_MS))
        .probe_lease(Duration::from_millis(LEASE_MS))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut model = Model {
        state: ModelState::Closed { failures: 0 },
        episode: 0,
        now: 0,
        probe_admitted_at: 0,
        fail_max: 3,
        success_threshold: 2,
        half_open_max_calls: 2,
    };
    let mut tickets: Vec<(Ticket, ModelTicket)> = Vec::new();

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire => match (breaker.acquire_ticket(), model.acquire()) {
                (Ok(real), Ok(expected)) => {
                    prop_assert_eq!(real.is_probe(), expected.probe, "step {}: probe kind", step);
                    tickets.push((real, expected));
                }
                (Err(real), Err(expected)) => prop_assert_eq!(real.state, expected, "step {}", step),
                (real, expected) => {
                    prop_assert!(
                        false,
                        "step {}: breaker {:?}, model {:?}",
                        step,
                        real.map(|_| ()),
                        expected.map(|_| ())
                    )
                }
            },
            Op::Record(index, outcome) if !tickets.is_empty() => {
                let (real, expected) = tickets[index % tickets.len()];
                prop_assert_eq!(
                    breaker.record(real, outcome),
                    Ok(model.record(expected, outcome)),
                    "step {}",
                    step
                );
            }
            Op::Record(..) => {}
            Op::Force(target) => {
                let real = match target {
                    State::Closed => breaker.close(),
                    State::Open => breaker.open(),
                    State::HalfOpen => breaker.half_open(),
                };
                prop_assert_eq!(real, model.force(target), "step {}", step);
            }
            Op::SetFailMax(v) => prop_assert_eq!(breaker.set_fail_max(v).unwrap(), model.set_fail_max(v)),
            Op::SetSuccessThreshold(v) => {
                prop_assert_eq!(
                    breaker.set_success_threshold(v).unwrap(),
                    model.set_success_threshold(v)
                )
            }
            Op::SetHalfOpenMaxCalls(v) => {
                breaker.set_half_open_max_calls(v).unwrap();
                model.half_open_max_calls = v;
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
        }
        prop_assert_eq!(breaker.state(), model.state(), "step {}: state", step);
        let real = (
            breaker.fail_counter(),
            breaker.success_counter(),
            breaker.probes_in_flight(),
        );
        prop_assert_eq!(
            real,
            model.counters(),
            "step {}: (failures, successes, in flight)",
            step
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(ops in prop::collection::vec(op(), 1..300)) {
        run(ops)?;
    }
}
