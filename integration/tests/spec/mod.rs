//! The breaker's specification as a sequential reference model, written
//! from the README's rules (States, Episodes, Outcomes, Double records, and
//! the rate windows' and half-open rule's tables), not from the
//! implementation, and a driver that runs one sequence of operations against
//! both and reports the first disagreement.
//!
//! Shared by `tests/model.rs` (proptest) and the fuzz target
//! `fuzz/fuzz_targets/model.rs` (cargo-fuzz).

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, HalfOpenRule, Outcome, Recorded, State, Ticket, Transition};
use std::collections::{BTreeMap, BTreeSet};
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
    /// The same, with the call's duration in milliseconds (`record_timed`).
    RecordTimed(usize, Outcome, u64),
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
    /// A rate window for the closed state; `None`: the consecutive rule.
    pub window: Option<WindowSpec>,
    /// Half-open decided by the failure rate over the probes (then
    /// `success_threshold` must be 1 and `half_open_max_calls` at most 31).
    pub rate_probes: bool,
    /// The failure-rate threshold in whole percent (window and rate probes).
    pub failure_pct: u32,
}

/// A rate window (README, "Rate windows").
#[derive(Debug, Clone, Copy)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// Buckets asked for (1 to 16).
    pub buckets: u32,
    pub minimum_calls: u32,
    /// Slow calls: longer than this many milliseconds.
    pub slow_ms: Option<u64>,
    /// The slow-call rate threshold in whole percent.
    pub slow_pct: u32,
}

/// What a window spans.
#[derive(Debug, Clone, Copy)]
pub enum WindowKind {
    /// The last this many calls.
    Count(u32),
    /// The calls of the last this many milliseconds.
    Time(u64),
}

/// A window's calls per epoch, as the README's table describes them: a count
/// window's epoch advances when a failure or slow call finds its bucket full;
/// a time window's is the time divided by the bucket width; every transition
/// empties it.
struct WindowModel {
    spec: WindowSpec,
    buckets: u64,
    /// `Some(calls per bucket)` for a count window.
    per_bucket: Option<u64>,
    width_ms: u64,
    minimum: u64,
    base: u64,
    /// (calls, failures, slow) per epoch.
    counts: BTreeMap<u64, (u64, u64, u64)>,
}

impl WindowModel {
    fn new(spec: WindowSpec) -> WindowModel {
        let (buckets, per_bucket, width_ms, minimum) = match spec.kind {
            WindowKind::Count(size) => {
                let buckets = spec.buckets.min(size);
                (
                    buckets,
                    Some(u64::from(size.div_ceil(buckets))),
                    0,
                    spec.minimum_calls.min(size),
                )
            }
            WindowKind::Time(ms) => {
                let buckets = u64::from(spec.buckets).min(ms) as u32;
                (buckets, None, ms / u64::from(buckets), spec.minimum_calls)
            }
        };
        WindowModel {
            spec,
            buckets: u64::from(buckets),
            per_bucket,
            width_ms,
            minimum: u64::from(minimum),
            base: 0,
            counts: BTreeMap::new(),
        }
    }

    fn epoch(&self, now: u64) -> u64 {
        match self.per_bucket {
            Some(_) => self.base,
            None => self.base + now / self.width_ms,
        }
    }

    /// (calls, failures, slow, calls in the current bucket) at `epoch`.
    fn tally(&self, epoch: u64) -> (u64, u64, u64, u64) {
        let first = (epoch + 1).saturating_sub(self.buckets);
        let mut t = (0, 0, 0, 0);
        for (&e, &(calls, failures, slow)) in self.counts.range(first..=epoch) {
            t.0 += calls;
            t.1 += failures;
            t.2 += slow;
            if e == epoch {
                t.3 += calls;
            }
        }
        t
    }

    fn reset(&mut self) {
        self.counts.clear();
        self.base += self.buckets;
    }

    /// Counts a call; whether the window now trips.
    fn add(&mut self, now: u64, failed: bool, slow: bool, failure_pct: u32) -> bool {
        let epoch = self.epoch(now);
        let c = self.counts.entry(epoch).or_default();
        c.0 += 1;
        c.1 += u64::from(failed);
        c.2 += u64::from(slow);
        if !(failed || slow) {
            return false;
        }
        let (calls, failures, slow_calls, current) = self.tally(epoch);
        let at_least = |count: u64, pct: u32| count * 100 >= u64::from(pct) * calls;
        let trips = calls >= self.minimum
            && calls > 0
            && (at_least(failures, failure_pct)
                || (self.spec.slow_ms.is_some() && at_least(slow_calls, self.spec.slow_pct)));
        if self.per_bucket.is_some_and(|per| current >= per) {
            self.base = epoch + 1;
        }
        trips
    }
}

/// The failure-rate rule's probes of one half-open period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ProbeTally {
    recorded: u32,
    failures: u32,
    slow: u32,
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
    window: Option<WindowModel>,
    /// The failure-rate rule's probes (reset on entering half-open).
    tally: ProbeTally,
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
            Phase::HalfOpen { .. } if self.limits.rate_probes => (
                0,
                self.tally.recorded - self.tally.failures,
                self.in_flight.len() as u32,
            ),
            Phase::HalfOpen { successes } => (0, successes, self.in_flight.len() as u32),
        }
    }

    /// Probes that hold a permit: in flight, and under the failure-rate rule
    /// recorded ones too.
    fn permits_taken(&self) -> u32 {
        let recorded = if self.limits.rate_probes {
            self.tally.recorded
        } else {
            0
        };
        self.in_flight.len() as u32 + recorded
    }

    fn is_slow(&self, elapsed: Option<u64>) -> bool {
        let limit = self.window.as_ref().and_then(|w| w.spec.slow_ms);
        matches!((limit, elapsed), (Some(limit), Some(e)) if e > limit)
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
        if from != to {
            if let Some(w) = &mut self.window {
                w.reset();
            }
            if to == State::HalfOpen {
                self.tally = ProbeTally::default();
            }
        }
        (from != to).then_some(Transition { from, to })
    }

    /// The failure-rate rule's decision once the recorded probes reach the
    /// limit: re-open at or above a threshold, else close.
    fn decide_probes(&mut self) -> Option<Option<Transition>> {
        let t = self.tally;
        if !self.limits.rate_probes || t.recorded < self.limits.half_open_max_calls {
            return None;
        }
        let at_least = |count: u32, pct: u32| count * 100 >= pct * t.recorded;
        let slow_pct = self
            .window
            .as_ref()
            .and_then(|w| w.spec.slow_ms.map(|_| w.spec.slow_pct));
        let reopen =
            at_least(t.failures, self.limits.failure_pct) || slow_pct.is_some_and(|p| at_least(t.slow, p));
        Some(match reopen {
            true => self.go(Phase::Open { opened_at: self.now }),
            false => self.go(Phase::Closed { failures: 0 }),
        })
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
            Phase::HalfOpen { .. } if self.permits_taken() < self.limits.half_open_max_calls => {
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

    fn record(&mut self, ticket: Issued, outcome: Outcome, elapsed: Option<u64>) -> Recorded {
        if ticket.episode != self.episode {
            return Recorded::Stale;
        }
        let slow = self.is_slow(elapsed);
        let transition = match (self.phase, ticket.probe, outcome) {
            // A window decides closed-state calls; `fail_max` is unused.
            (Phase::Closed { .. }, None, Outcome::Ignored) if self.window.is_some() => None,
            (Phase::Closed { .. }, None, _) if self.window.is_some() => {
                let (now, pct) = (self.now, self.limits.failure_pct);
                let w = self.window.as_mut().expect("a window");
                match w.add(now, outcome == Outcome::Failure, slow, pct) {
                    true => self.go(Phase::Open { opened_at: self.now }),
                    false => None,
                }
            }
            (Phase::HalfOpen { .. }, Some(id), _)
                if self.limits.rate_probes && self.in_flight.contains(&id) =>
            {
                if outcome != Outcome::Ignored {
                    self.tally.recorded += 1;
                    self.tally.failures += u32::from(outcome == Outcome::Failure);
                    self.tally.slow += u32::from(slow);
                }
                match self.decide_probes() {
                    Some(transition) => transition,
                    None => {
                        self.leave(id, 0);
                        None
                    }
                }
            }
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

    /// `None`: refused (the failure-rate rule keeps it at 1).
    fn set_success_threshold(&mut self, value: u32) -> Option<Option<Transition>> {
        if self.limits.rate_probes {
            return (value == 1).then_some(None);
        }
        self.limits.success_threshold = value;
        Some(match self.phase {
            Phase::HalfOpen { successes } if successes >= value => self.go(Phase::Closed { failures: 0 }),
            _ => None,
        })
    }

    /// Under the failure-rate rule, enough probes recorded decide at once.
    fn set_half_open_max_calls(&mut self, value: u32) {
        self.limits.half_open_max_calls = value;
        if self.state() == State::HalfOpen {
            let _ = self.decide_probes();
        }
    }
}

/// Runs `ops` against a breaker on a [`ManualClock`] and against the model;
/// `Err` describes the first step where they disagree.
pub fn check(config: Config, ops: impl IntoIterator<Item = Op>) -> Result<(), String> {
    let clock = ManualClock::new();
    let mut builder = CircuitBreaker::builder()
        .fail_max(config.fail_max)
        .success_threshold(config.success_threshold)
        .half_open_max_calls(config.half_open_max_calls)
        .reset_timeout(Duration::from_millis(config.reset_ms))
        .probe_lease(Duration::from_millis(config.lease_ms))
        .failure_rate_threshold(config.failure_pct as f32)
        .clock(clock.clone());
    if let Some(w) = config.window {
        builder = match w.kind {
            WindowKind::Count(size) => builder.count_window(size),
            WindowKind::Time(ms) => builder.time_window(Duration::from_millis(ms)),
        }
        .window_buckets(w.buckets)
        .minimum_calls(w.minimum_calls)
        .slow_call_rate_threshold(w.slow_pct as f32);
        if let Some(ms) = w.slow_ms {
            builder = builder.slow_call_duration(Duration::from_millis(ms));
        }
    }
    if config.rate_probes {
        builder = builder.half_open_rule(HalfOpenRule::FailureRate);
    }
    let breaker = builder.build().map_err(|e| format!("config {config:?}: {e}"))?;
    let mut model = Model {
        phase: Phase::Closed { failures: 0 },
        episode: 0,
        in_flight: BTreeSet::new(),
        admitted: 0,
        next_probe: 0,
        latest_admission: 0,
        now: 0,
        limits: config,
        window: config.window.map(WindowModel::new),
        tally: ProbeTally::default(),
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
                    Ok(model.record(expected, outcome, None))
                );
            }
            Op::RecordTimed(index, outcome, ms) if !tickets.is_empty() => {
                let index = index % tickets.len();
                let (real, expected) = tickets[index];
                if model.unspecified(&expected) {
                    continue;
                }
                tickets[index].1.recorded = true;
                agree!(
                    step,
                    op,
                    breaker.record_timed(real, outcome, Duration::from_millis(ms)),
                    Ok(model.record(expected, outcome, Some(ms)))
                );
            }
            Op::Record(..) | Op::RecordTimed(..) => {}
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
                model.set_success_threshold(v)
            ),
            Op::SetHalfOpenMaxCalls(v) => {
                agree!(step, op, breaker.set_half_open_max_calls(v).is_ok(), true);
                model.set_half_open_max_calls(v);
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
        if let Some(w) = &model.window {
            let (calls, ..) = w.tally(w.epoch(model.now));
            agree!(step, "window calls", breaker.window_calls(), Some(calls));
        }
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
