//! The packed state word. This module owns every bit of it.
//!
//! The whole breaker state lives in one `AtomicU64`; every transition is one
//! compare-and-swap in [`StateCell::fetch_update_action`]. Outside this module
//! code speaks of [`State`], [`Ticket`] and [`Transition`], never of shifts.
//!
//! # Layout
//!
//! | bits    | field      | CLOSED                      | OPEN                  | HALF_OPEN                                  |
//! |---------|------------|-----------------------------|-----------------------|--------------------------------------------|
//! | 0..2    | state      | `00`                        | `01`                  | `10` (`11` is never written)               |
//! | 2..22   | generation | episode tag                 | episode tag           | episode tag                                |
//! | 22..54  | payload    | consecutive failures (u32)  | opened-at, ms (42 bits, 22..64) | probes in flight (22..38), probe tally (38..54) |
//! | 54..59  | payload    | zero                        | (opened-at, cont.)    | next probe slot (0..=16; 31: `COUNTED`)    |
//! | 59..64  | payload    | zero                        | (opened-at, cont.)    | slots taken (0..=31)                       |
//!
//! The probe tally (bits 38..54) depends on the half-open rule, fixed when
//! the breaker is built:
//!
//! | bits   | `HalfOpenRule::Successes` | `HalfOpenRule::FailureRate`              |
//! |--------|---------------------------|------------------------------------------|
//! | 38..43 | successes (u16, 38..54)   | probes recorded, success or failure (0..31) |
//! | 43..48 | (successes, cont.)        | of them, failures (0..31)                |
//! | 48..53 | (successes, cont.)        | of them, slow (0..31)                    |
//! | 53     | (successes, cont.)        | zero                                     |
//!
//! * **generation** advances on every transition, when a probe lease is
//!   reclaimed, and when the last probe in flight is recorded. A [`Ticket`]
//!   carries the generation it was issued in; a record whose generation no
//!   longer matches is stale and changes nothing. It wraps after 2^20
//!   advances: a ticket held across a million transitions could be taken
//!   for current.
//! * **failures** never exceed `fail_max` (at most `u32::MAX`): reaching it trips.
//! * **opened-at** is milliseconds on the breaker's clock; 42 bits last 139
//!   years from the clock's origin, after which it saturates (the breaker
//!   would then stay open until forced).
//! * **in flight** and **successes** never exceed `half_open_max_calls` and
//!   `success_threshold`, both capped at 65,535 by the configuration.
//! * Under the failure-rate rule a probe's permit is spent when it is
//!   recorded (resilience4j's permits), so the probe count (slots taken, or
//!   the count once `COUNTED`) is the permits spent: probes in flight plus
//!   probes recorded, at most `half_open_max_calls` (capped at 31 by the
//!   configuration). Probes in flight are then the bitmap's bits, or the
//!   count less the recorded ones, which a counted word also keeps in its
//!   slots-taken field (0 there under the successes rule). The record that
//!   brings the recorded probes to `half_open_max_calls` decides, in its
//!   CAS: re-open if the failure rate (or the slow-call rate) among them is
//!   at or above its threshold, else close. A new episode (a reclaim, or the
//!   last probe in flight recorded) keeps the tally and the permits spent.
//! * **probe slots**: a half-open episode starts with in flight as a bitmap
//!   of 16 slots, one per probe, each used once in the episode (the next
//!   slot says which comes next), beside a count of the slots taken, so a
//!   rejection compares a count and never counts bits. A probe ticket names
//!   its slot, so recording it twice finds the slot empty and is stale. The
//!   17th probe admitted in one episode (only possible with
//!   `half_open_max_calls` above one and probes overlapping) turns the
//!   bitmap into a plain count (next slot `COUNTED`), under which a probe
//!   recorded twice frees another probe's slot. The episode ends when no
//!   probe is left in flight, and the next starts with the bitmap again.
//!
//! Beside the word, `probe_admitted_at` holds the time of the latest probe
//! admission (a `fetch_max`, written before the admitting CAS). It only decides
//! when a probe lease has run out; it never gates correctness of the count.
//! `published_lease_end` holds that time plus the lease in force, so the
//! read-only rejection compares one load against one clock reading, as an
//! open rejection does. It is only ever used to reject; 0 (a setter changed
//! the lease since the latest admission) sends the call to the CAS loop,
//! which decides from `probe_admitted_at` and the lease read then.
//!
//! A breaker whose state is shared by a fleet (the `redis` feature) keeps this
//! word as a local mirror: [`StateCell::sync_from`] overwrites it with the
//! fleet's view (state, counts, the low 20 bits of the fleet's generation,
//! opened-at translated to this breaker's clock) through the same CAS loop.
//! The fleet's script holds the probe slots by the same rules as this word,
//! and its view carries them, so the mirror tells the fleet's probes apart
//! as it does its own (a probe recorded twice while the store is away
//! counts once); a probe ticket the fleet issued carries its slot. Under
//! the failure-rate rule the view carries the fleet's probe tally too, and
//! the mirror keeps the permits the fleet's recorded probes spent in the
//! slots-taken field (or the count), so it rejects alone exactly when
//! every permit is spent, as the fleet does.
//!
//! # Orderings
//!
//! A successful CAS is `AcqRel` (it publishes the new state and sees all that
//! came before it); loads and failed CASes are `Acquire`. The CAS also carries
//! what was written just before it: a probe's admission time, and a setter's
//! new limit (its reconcile is a CAS on the word, so a racing record either
//! sees the new limit or is seen by the reconcile). A lease setter withdraws
//! `published_lease_end` with a swap, so it and every admission's `fetch_max`
//! on it form one release sequence: an admission whose `fetch_max` comes
//! after the swap reads the new lease when it reads the lease again.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::fmt;

const STATE_MASK: u64 = 0b11;
const CLOSED: u64 = 0b00;
const OPEN: u64 = 0b01;
const HALF_OPEN: u64 = 0b10;

const GENERATION_SHIFT: u32 = 2;
const GENERATION_BITS: u32 = 20;
const GENERATION_MASK: u64 = ((1 << GENERATION_BITS) - 1) << GENERATION_SHIFT;

const PAYLOAD_SHIFT: u32 = GENERATION_SHIFT + GENERATION_BITS;

const FAILURES_MASK: u64 = (u32::MAX as u64) << PAYLOAD_SHIFT;

/// Largest opened-at timestamp the word can hold.
pub(crate) const MAX_TIMESTAMP_MS: u64 = (1 << (64 - PAYLOAD_SHIFT)) - 1;

const IN_FLIGHT_SHIFT: u32 = PAYLOAD_SHIFT;
const IN_FLIGHT_MASK: u64 = (u16::MAX as u64) << IN_FLIGHT_SHIFT;
const SUCCESSES_SHIFT: u32 = PAYLOAD_SHIFT + 16;
const SUCCESSES_MASK: u64 = (u16::MAX as u64) << SUCCESSES_SHIFT;

/// Probes told apart by slot in one half-open episode (the fleet's script
/// keeps as many).
pub(crate) const PROBE_SLOTS: u32 = 16;
const NEXT_SLOT_SHIFT: u32 = PAYLOAD_SHIFT + 32;
const NEXT_SLOT_MASK: u64 = 0b1_1111 << NEXT_SLOT_SHIFT;
/// The next slot once slots are no longer told apart: the in-flight field
/// is then a count, not a bitmap.
const COUNTED: u32 = 0b1_1111;
const TAKEN_SHIFT: u32 = NEXT_SLOT_SHIFT + 5;
const TAKEN_MASK: u64 = 0b1_1111 << TAKEN_SHIFT;

/// Largest value a half-open counter (probes in flight, successes) can hold.
pub(crate) const MAX_HALF_OPEN_COUNT: u32 = u16::MAX as u32;

/// Width of each count in the failure-rate rule's probe tally.
const TALLY_BITS: u32 = 5;
const TALLY_MAX: u32 = (1 << TALLY_BITS) - 1;
/// Most probes the failure-rate rule decides over: its tally's counts, and
/// the slots-taken field that holds the permits spent, have 5 bits.
pub(crate) const MAX_RATE_PROBES: u32 = TALLY_MAX;

/// How a half-open breaker decides, fixed when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeRule {
    /// `success_threshold` probe successes close; a probe failure re-opens.
    Successes,
    /// Once `half_open_max_calls` probes are recorded: re-open if the
    /// failure rate among them (or the slow-call rate, with slow calls
    /// configured) is at or above its threshold, in basis points; else close.
    Rate { failure_bp: u32, slow_bp: Option<u32> },
}

impl ProbeRule {
    /// Whether `t`, the recorded probes, re-opens the breaker.
    fn reopens(self, t: ProbeTally) -> bool {
        let at_least =
            |count: u32, bp: u32| u64::from(count) * 10_000 >= u64::from(bp) * u64::from(t.recorded);
        match self {
            ProbeRule::Successes => t.failures > 0,
            ProbeRule::Rate { failure_bp, slow_bp } => {
                at_least(t.failures, failure_bp) || slow_bp.is_some_and(|bp| at_least(t.slow, bp))
            }
        }
    }
}

/// The failure-rate rule's probe tally (bits 38..54 of a half-open word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProbeTally {
    /// Probes recorded as a success or a failure.
    pub(crate) recorded: u32,
    /// Of them, failures.
    pub(crate) failures: u32,
    /// Of them, slow calls.
    pub(crate) slow: u32,
}

impl ProbeTally {
    fn from_field(field: u32) -> ProbeTally {
        ProbeTally {
            recorded: field & TALLY_MAX,
            failures: field >> TALLY_BITS & TALLY_MAX,
            slow: field >> (2 * TALLY_BITS) & TALLY_MAX,
        }
    }

    fn to_field(self) -> u64 {
        let count = |n: u32| u64::from(n.min(TALLY_MAX));
        count(self.recorded) | count(self.failures) << TALLY_BITS | count(self.slow) << (2 * TALLY_BITS)
    }

    /// With one more probe recorded.
    fn with(self, failed: bool, slow: bool) -> ProbeTally {
        ProbeTally {
            recorded: self.recorded + 1,
            failures: self.failures + u32::from(failed),
            slow: self.slow + u32::from(slow),
        }
    }
}

/// The three states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls flow; consecutive failures are counted.
    Closed = 0,
    /// Calls are rejected until the reset timeout has passed.
    Open = 1,
    /// A limited number of probe calls decide whether to close again.
    HalfOpen = 2,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        })
    }
}

/// A change of state, reported once, by the thread that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// The dependency answered: resets the failure count, counts toward closing.
    Success = 0,
    /// The dependency failed: counts toward tripping, re-opens from half-open.
    Failure = 1,
    /// Counts as neither; frees a probe slot.
    Ignored = 2,
}

/// A copy of the state word at one instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    fn new(state: u64, generation: u64, payload: u64) -> Snapshot {
        Snapshot(state | ((generation << GENERATION_SHIFT) & GENERATION_MASK) | payload)
    }

    pub(crate) fn initial() -> Snapshot {
        Snapshot::new(CLOSED, 0, 0)
    }

    pub(crate) fn state(self) -> State {
        match self.0 & STATE_MASK {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    pub(crate) fn is_closed(self) -> bool {
        self.0 & STATE_MASK == CLOSED
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 & GENERATION_MASK) >> GENERATION_SHIFT) as u32
    }

    pub(crate) fn failures(self) -> u32 {
        if self.is_closed() {
            ((self.0 & FAILURES_MASK) >> PAYLOAD_SHIFT) as u32
        } else {
            0
        }
    }

    pub(crate) fn opened_at_ms(self) -> u64 {
        if self.0 & STATE_MASK == OPEN {
            self.0 >> PAYLOAD_SHIFT
        } else {
            0
        }
    }

    pub(crate) fn in_flight(self) -> u32 {
        if self.0 & STATE_MASK == HALF_OPEN {
            self.probes_in_flight()
        } else {
            0
        }
    }

    /// Probes in flight, for a snapshot known to be half-open: the slots
    /// taken, or the count less the permits a recorded probe spent (none
    /// under the successes rule).
    fn probes_in_flight(self) -> u32 {
        if self.is_counted() {
            self.in_flight_field().saturating_sub(self.taken_field())
        } else {
            self.in_flight_field().count_ones()
        }
    }

    /// Permits spent by recorded probes (failure-rate rule; 0 under the
    /// successes rule), for a snapshot known to be half-open.
    fn permits_spent(self) -> u32 {
        self.probes().saturating_sub(self.probes_in_flight())
    }

    fn taken_field(self) -> u32 {
        ((self.0 & TAKEN_MASK) >> TAKEN_SHIFT) as u32
    }

    /// The failure-rate rule's tally, for a snapshot known to be half-open.
    pub(crate) fn tally(self) -> ProbeTally {
        ProbeTally::from_field(self.successes())
    }

    /// Whether the probes in flight have reached `limit`, for a snapshot
    /// known to be half-open: one comparison of the word while slots are told
    /// apart (see [`ProbeLimit`]), the count once they are not.
    #[inline]
    fn probes_reached(self, limit: ProbeLimit) -> bool {
        self.0 >= limit.0 || (self.is_counted() && self.in_flight_field() >= limit.count())
    }

    /// Probes in flight (under the failure-rate rule: permits spent), for a
    /// snapshot known to be half-open.
    #[inline]
    fn probes(self) -> u32 {
        if self.is_counted() {
            self.in_flight_field()
        } else {
            ((self.0 & TAKEN_MASK) >> TAKEN_SHIFT) as u32
        }
    }

    fn is_counted(self) -> bool {
        self.next_slot() == COUNTED
    }

    /// The in-flight field as stored: a count, or a bitmap of slots.
    fn in_flight_field(self) -> u32 {
        ((self.0 & IN_FLIGHT_MASK) >> IN_FLIGHT_SHIFT) as u32
    }

    fn next_slot(self) -> u32 {
        ((self.0 & NEXT_SLOT_MASK) >> NEXT_SLOT_SHIFT) as u32
    }

    /// Whether the probe admitted into `slot` is still in flight: its slot
    /// is taken, or (once slots are no longer told apart) any probe is.
    fn holds_probe(self, slot: u32) -> bool {
        if self.is_counted() {
            self.in_flight_field() > self.taken_field()
        } else {
            self.in_flight_field() & (1 << slot) != 0
        }
    }

    pub(crate) fn successes(self) -> u32 {
        if self.0 & STATE_MASK == HALF_OPEN {
            ((self.0 & SUCCESSES_MASK) >> SUCCESSES_SHIFT) as u32
        } else {
            0
        }
    }

    fn next_generation(self) -> u64 {
        u64::from(self.generation()) + 1
    }

    fn with_closed(self) -> Snapshot {
        Snapshot::new(CLOSED, self.next_generation(), 0)
    }

    fn with_open(self, opened_at_ms: u64) -> Snapshot {
        let at = opened_at_ms.min(MAX_TIMESTAMP_MS);
        Snapshot::new(OPEN, self.next_generation(), at << PAYLOAD_SHIFT)
    }

    /// A new half-open episode with no probe in flight and every slot free.
    fn with_half_open(self, successes: u32) -> Snapshot {
        let successes = u64::from(successes.min(MAX_HALF_OPEN_COUNT));
        Snapshot::new(HALF_OPEN, self.next_generation(), successes << SUCCESSES_SHIFT)
    }

    /// One more probe in flight (the caller checked the limit) and the slot
    /// it holds.
    fn with_probe_admitted(self) -> (Snapshot, u32) {
        let next = self.next_slot();
        let (field, next, taken, slot) = if next == COUNTED {
            (
                (self.in_flight_field() + 1).min(MAX_HALF_OPEN_COUNT),
                COUNTED,
                self.taken_field(),
                0,
            )
        } else if next < PROBE_SLOTS {
            (
                self.in_flight_field() | 1 << next,
                next + 1,
                self.probes() + 1,
                next,
            )
        } else {
            // Every slot was used once this episode: count from here on,
            // keeping the permits recorded probes spent where slots were.
            (self.probes() + 1, COUNTED, self.permits_spent(), 0)
        };
        (self.with_probe_fields(field, next, taken), slot)
    }

    /// The probe in `slot` leaves, with `successes` counted. When none stays
    /// in flight the episode ends: the generation advances and the slots
    /// start afresh.
    fn with_probe_released(self, slot: u32, successes: u32) -> Snapshot {
        let in_flight = self.probes().saturating_sub(1);
        if in_flight == 0 {
            return self.with_half_open(successes);
        }
        let successes = u64::from(successes.min(MAX_HALF_OPEN_COUNT));
        let released = if self.is_counted() {
            self.with_probe_fields(in_flight, COUNTED, 0)
        } else {
            self.with_probe_fields(self.in_flight_field() & !(1 << slot), self.next_slot(), in_flight)
        };
        Snapshot((released.0 & !SUCCESSES_MASK) | successes << SUCCESSES_SHIFT)
    }

    /// A new episode that reclaims every probe in flight (their tickets go
    /// stale): the tally stays, and so do the permits recorded probes spent.
    fn with_episode_restarted(self) -> Snapshot {
        let spent = self.permits_spent();
        Snapshot::new(HALF_OPEN, self.next_generation(), self.0 & SUCCESSES_MASK)
            .with_probe_fields(0, 0, spent)
    }

    /// Under the failure-rate rule, the probe in `slot` leaves with the tally
    /// now `tally`: recorded (`spent`), its permit stays spent; ignored, it
    /// comes back. When none stays in flight the episode ends, as under the
    /// successes rule, keeping the tally and the permits spent.
    fn with_rate_probe_left(self, slot: u32, spent: bool, tally: ProbeTally) -> Snapshot {
        let in_flight = self.probes_in_flight().saturating_sub(1);
        let permits = self.probes().saturating_sub(u32::from(!spent));
        let tally = tally.to_field() << SUCCESSES_SHIFT;
        if in_flight == 0 {
            return Snapshot::new(HALF_OPEN, self.next_generation(), tally).with_probe_fields(0, 0, permits);
        }
        let released = if self.is_counted() {
            self.with_probe_fields(permits, COUNTED, permits - in_flight)
        } else {
            self.with_probe_fields(self.in_flight_field() & !(1 << slot), self.next_slot(), permits)
        };
        Snapshot((released.0 & !SUCCESSES_MASK) | tally)
    }

    /// A live probe in `slot` recorded under the failure-rate rule: counted
    /// (and deciding if it is the last permitted), or given back if ignored.
    /// Out of line, so the consecutive rule's record keeps its size.
    #[inline(never)]
    fn with_rate_probe_recorded(
        self,
        slot: u32,
        outcome: Outcome,
        slow: bool,
        limits: &impl LimitSource,
        now: &mut impl Now,
    ) -> Snapshot {
        if outcome == Outcome::Ignored {
            return self.with_rate_probe_left(slot, false, self.tally());
        }
        let tally = self.tally().with(outcome == Outcome::Failure, slow);
        let next = self.with_rate_probe_left(slot, true, tally);
        match next.probes_decide(limits) {
            Some(reopen) => self.with_probes_decided(reopen, now),
            None => next,
        }
    }

    /// Whether the probes recorded so far decide a half-open snapshot under
    /// `limits`: `Some(true)` re-opens, `Some(false)` closes.
    fn probes_decide(self, limits: &impl LimitSource) -> Option<bool> {
        match limits.probe_rule() {
            ProbeRule::Successes => (self.successes() >= limits.success_threshold()).then_some(false),
            rule @ ProbeRule::Rate { .. } => {
                let t = self.tally();
                (t.recorded >= limits.half_open_max_calls()).then(|| rule.reopens(t))
            }
        }
    }

    fn with_probes_decided(self, reopen: bool, now: &mut impl Now) -> Snapshot {
        match reopen {
            true => self.with_open(now.now_ms()),
            false => self.with_closed(),
        }
    }

    fn with_probe_fields(self, field: u32, next: u32, taken: u32) -> Snapshot {
        let cleared = self.0 & !(IN_FLIGHT_MASK | NEXT_SLOT_MASK | TAKEN_MASK);
        Snapshot(
            cleared
                | u64::from(field) << IN_FLIGHT_SHIFT
                | u64::from(next) << NEXT_SLOT_SHIFT
                | u64::from(taken) << TAKEN_SHIFT,
        )
    }

    fn with_failures(self, failures: u32) -> Snapshot {
        Snapshot((self.0 & !FAILURES_MASK) | (u64::from(failures) << PAYLOAD_SHIFT))
    }

    /// Half-open with `in_flight` probes that are not told apart by slot
    /// (a fleet's counts), in this snapshot's generation.
    #[cfg(test)]
    fn with_counted_probes(self, in_flight: u32, successes: u32) -> Snapshot {
        let successes = u64::from(successes.min(MAX_HALF_OPEN_COUNT));
        self.with_counted_fleet_probes(in_flight, successes, 0)
    }

    /// [`Snapshot::with_counted_probes`] with the tally field as stored and,
    /// under the failure-rate rule, the permits recorded probes spent.
    #[cfg(any(test, feature = "redis"))]
    fn with_counted_fleet_probes(self, in_flight: u32, tally: u64, spent: u32) -> Snapshot {
        let count = u64::from(in_flight.saturating_add(spent).min(MAX_HALF_OPEN_COUNT));
        Snapshot(
            (self.0 & (STATE_MASK | GENERATION_MASK))
                | (count << IN_FLIGHT_SHIFT)
                | (tally << SUCCESSES_SHIFT)
                | u64::from(COUNTED) << NEXT_SLOT_SHIFT
                | u64::from(spent) << TAKEN_SHIFT,
        )
    }

    /// Half-open with the probes in flight holding `slots` (a bitmap below
    /// [`PROBE_SLOTS`]), `next` the next slot (a fleet's), in this
    /// snapshot's generation, with the tally field as stored and, under the
    /// failure-rate rule, the permits recorded probes spent.
    #[cfg(feature = "redis")]
    fn with_slotted_probes(self, slots: u32, next: u32, tally: u64, spent: u32) -> Snapshot {
        let slots = slots & ((1 << PROBE_SLOTS) - 1);
        let taken = (slots.count_ones() + spent).min(MAX_RATE_PROBES);
        Snapshot((self.0 & (STATE_MASK | GENERATION_MASK)) | (tally << SUCCESSES_SHIFT)).with_probe_fields(
            slots,
            next.min(PROBE_SLOTS),
            taken,
        )
    }

    fn ticket(self, kind: u64) -> Ticket {
        Ticket(kind | (self.0 & GENERATION_MASK))
    }

    fn probe_ticket(self, slot: u32) -> Ticket {
        Ticket(TICKET_PROBE | (self.0 & GENERATION_MASK) | u64::from(slot) << TICKET_SLOT_SHIFT)
    }

    fn transition_to(self, next: Snapshot) -> Option<Transition> {
        (self.state() != next.state()).then(|| Transition {
            from: self.state(),
            to: next.state(),
        })
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Snapshot");
        d.field("state", &self.state())
            .field("generation", &self.generation());
        match self.state() {
            State::Closed => d.field("failures", &self.failures()),
            State::Open => d.field("opened_at_ms", &self.opened_at_ms()),
            State::HalfOpen => d
                .field("in_flight", &self.in_flight())
                .field("successes", &self.successes()),
        };
        d.finish()
    }
}

// Ticket layout: bits 0..2 kind, bits 2..22 generation (same place as in the
// word), bits 22..26 a probe's slot (ignored in a closed-state ticket, so the
// validity check stays one mask), bits 26..32 zero, bits 32..64 the issuing
// breaker's tag.
const TICKET_KIND_MASK: u64 = 0b11;
const TICKET_CLOSED: u64 = 0b01;
const TICKET_PROBE: u64 = 0b10;
const TICKET_SLOT_SHIFT: u32 = GENERATION_SHIFT + GENERATION_BITS;
const TICKET_SLOT_MASK: u64 = 0b1111 << TICKET_SLOT_SHIFT;
/// Set on a shadow mode's ticket: it counts for nothing, anywhere.
const TICKET_INERT: u64 = 1 << (TICKET_SLOT_SHIFT + 4);
const TICKET_RESERVED_MASK: u64 =
    !(TICKET_KIND_MASK | GENERATION_MASK | TICKET_SLOT_MASK | TICKET_INERT | TICKET_TAG_MASK);
const TICKET_TAG_SHIFT: u32 = 32;
const TICKET_TAG_MASK: u64 = (u32::MAX as u64) << TICKET_TAG_SHIFT;

/// The raw form of a permit: which episode it was issued in and whether it
/// is a half-open probe. `Copy`, so it can cross an FFI boundary by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The bits, for passing through a foreign interface.
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// A ticket from bits produced by [`Ticket::to_bits`]. Forged bits are
    /// caught when recorded, never trusted.
    pub fn from_bits(bits: u64) -> Ticket {
        Ticket(bits)
    }

    /// The episode this ticket was issued in. Episodes advance on every
    /// transition (and in half-open, on a lease reclaim and when the last
    /// probe in flight is recorded); a ticket from an earlier one is stale.
    pub fn episode(self) -> u32 {
        ((self.0 & GENERATION_MASK) >> GENERATION_SHIFT) as u32
    }

    /// Whether this ticket admitted a half-open probe.
    pub fn is_probe(self) -> bool {
        self.0 & TICKET_KIND_MASK == TICKET_PROBE
    }

    /// The slot a probe ticket holds (0 for a closed-state ticket).
    pub(crate) fn slot(self) -> u32 {
        ((self.0 & TICKET_SLOT_MASK) >> TICKET_SLOT_SHIFT) as u32
    }

    pub(crate) fn with_tag(self, tag: u32) -> Ticket {
        Ticket((self.0 & !TICKET_TAG_MASK) | (u64::from(tag) << TICKET_TAG_SHIFT))
    }

    /// Whether these bits could have been issued by the breaker tagged `tag`.
    pub(crate) fn is_valid_for(self, tag: u32) -> bool {
        let kind = self.0 & TICKET_KIND_MASK;
        (kind == TICKET_CLOSED || kind == TICKET_PROBE)
            && self.0 & TICKET_RESERVED_MASK == 0
            && (self.0 >> TICKET_TAG_SHIFT) as u32 == tag
    }

    /// A closed-state ticket recording success against this snapshot needs
    /// no write: same episode, nothing to reset.
    ///
    /// A closed word with no failures is its state bits and generation alone,
    /// so one comparison settles kind, state, count and episode: a probe
    /// ticket's kind maps to state bits `11`, which no word holds.
    fn success_is_noop(self, current: Snapshot) -> bool {
        const CLOSED_TICKET_TO_WORD: u64 = TICKET_CLOSED ^ CLOSED;
        current.0 == (self.0 & (TICKET_KIND_MASK | GENERATION_MASK)) ^ CLOSED_TICKET_TO_WORD
    }

    /// Whether a shadow mode admitted the call this ticket stands for: it
    /// counts for nothing, neither in a window nor at a fleet.
    #[inline]
    pub(crate) fn is_inert(self) -> bool {
        self.0 & TICKET_INERT != 0
    }

    /// Whether the episode this ticket belongs to has ended.
    ///
    /// A local word needs no look at an inert ticket's bit: its kind is
    /// the one its episode's state never admits. (A shared mirror's
    /// generation is the fleet's, so the breaker's record checks the bit.)
    fn is_stale(self, current: Snapshot) -> bool {
        if current.generation() != self.episode() {
            return true;
        }
        match self.0 & TICKET_KIND_MASK {
            TICKET_PROBE => current.state() != State::HalfOpen || !current.holds_probe(self.slot()),
            _ => !current.is_closed(),
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("probe", &self.is_probe())
            .field("episode", &self.episode())
            .finish()
    }
}

/// `half_open_max_calls` in a form a half-open word compares against
/// directly: the limit in the low 16 bits, and at the taken count's place
/// the limit again, capped at 31 (a taken count never exceeds 16, or under
/// the failure-rate rule 31).
///
/// A word that tells slots apart is at least this value exactly when its
/// taken count has reached the limit: with the taken counts equal, the
/// word's in-flight bitmap (bit 22 up, one bit per probe taken) outweighs
/// the low 16 bits. A counted word's taken field is 0 under the successes
/// rule; under the failure-rate rule it holds the recorded probes, which
/// are below the limit until they decide (and reaching it, the count has
/// too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeLimit(u64);

impl ProbeLimit {
    /// `limit` is at most [`MAX_HALF_OPEN_COUNT`] (the configuration checks).
    pub(crate) fn new(limit: u32) -> ProbeLimit {
        let limit = limit.min(MAX_HALF_OPEN_COUNT);
        ProbeLimit(u64::from(limit.min(COUNTED)) << TAKEN_SHIFT | u64::from(limit))
    }

    pub(crate) fn from_bits(bits: u64) -> ProbeLimit {
        ProbeLimit(bits)
    }

    pub(crate) fn to_bits(self) -> u64 {
        self.0
    }

    pub(crate) fn count(self) -> u32 {
        (self.0 & u64::from(MAX_HALF_OPEN_COUNT)) as u32
    }
}

/// Limits a decision is made under, read from the live configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) fail_max: u32,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_calls: u32,
    pub(crate) reset_timeout_ms: u64,
    pub(crate) probe_lease_ms: u64,
    /// How half-open decides (fixed at build).
    pub(crate) probe_rule: ProbeRule,
}

/// The limits a decision reads, each loaded only if the decision needs it
/// (an open-state rejection reads the reset timeout and nothing else).
pub(crate) trait LimitSource {
    fn fail_max(&self) -> u32;
    fn success_threshold(&self) -> u32;
    fn half_open_max_calls(&self) -> u32;
    /// `half_open_max_calls` as a decision compares it, read once.
    fn probe_limit(&self) -> ProbeLimit {
        ProbeLimit::new(self.half_open_max_calls())
    }
    fn reset_timeout_ms(&self) -> u64;
    fn probe_lease_ms(&self) -> u64;
    /// How half-open decides (fixed at build).
    #[inline]
    fn probe_rule(&self) -> ProbeRule {
        ProbeRule::Successes
    }
    /// How long the open period of `episode` lasts; `None` while a backoff
    /// has not yet published it (the breaker keeps rejecting meanwhile).
    #[inline]
    fn open_for_ms(&self, _episode: u32) -> Option<u64> {
        Some(self.reset_timeout_ms())
    }
}

impl LimitSource for Limits {
    fn fail_max(&self) -> u32 {
        self.fail_max
    }
    fn success_threshold(&self) -> u32 {
        self.success_threshold
    }
    fn half_open_max_calls(&self) -> u32 {
        self.half_open_max_calls
    }
    fn reset_timeout_ms(&self) -> u64 {
        self.reset_timeout_ms
    }
    fn probe_lease_ms(&self) -> u64 {
        self.probe_lease_ms
    }
    fn probe_rule(&self) -> ProbeRule {
        self.probe_rule
    }
}

/// Time as a decision sees it: read lazily, at most once.
pub(crate) trait Now {
    /// The precise current time.
    fn now_ms(&mut self) -> u64;
    /// Whether `deadline_ms` has been reached, reading as little as possible.
    fn reached(&mut self, deadline_ms: u64) -> bool;
    /// Before `deadline_ms`: the time left by the reading that showed it
    /// (never less than the truth); `None` once it is reached.
    #[inline]
    fn left(&mut self, deadline_ms: u64) -> Option<u64> {
        match self.reached(deadline_ms) {
            true => None,
            false => Some(deadline_ms.saturating_sub(self.now_ms())),
        }
    }
}

/// What [`StateCell::acquire`] decided.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The call may run; record it with this ticket.
    Admitted {
        ticket: Ticket,
        transition: Option<Transition>,
    },
    /// The call must not run.
    Rejected(State),
}

/// What a call's ask comes to (see [`StateCell::acquire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Closed: admit, changing nothing.
    Closed,
    /// Reject, in this state, with the time left to its deadline by the
    /// reading that decided it (`u64::MAX`: not known).
    Reject(State, u64),
    /// Open past its reset timeout: half-open, and this call is the first probe.
    FirstProbe,
    /// Half-open with a slot free: one more probe.
    Probe,
    /// Half-open, full, every lease run out: a new episode with this probe.
    Reclaim,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recorded {
    /// Counted; the state did not change.
    Counted,
    /// Counted, and this record moved the breaker (tripped, closed or re-opened it).
    Transitioned(Transition),
    /// The ticket's episode had ended, or it was a probe already recorded:
    /// nothing changed. A probe recorded twice is caught among the first 16
    /// probes admitted in its half-open episode; an episode that admits more
    /// (only with `half_open_max_calls` above one and probes overlapping)
    /// counts its probes instead, and then a probe recorded twice frees
    /// another's slot. A breaker shared through Redis follows the same rule
    /// fleet-wide: the fleet's script gives each probe its slot as the word
    /// does.
    Stale,
}

impl Recorded {
    /// Whether this record tripped the breaker from closed to open.
    pub fn tripped(self) -> bool {
        matches!(
            self,
            Recorded::Transitioned(Transition {
                from: State::Closed,
                to: State::Open
            })
        )
    }

    /// The transition this record caused, if any.
    pub fn transition(self) -> Option<Transition> {
        match self {
            Recorded::Transitioned(t) => Some(t),
            _ => None,
        }
    }
}

/// The cache-padded state word and the probe lease clock.
pub(crate) struct StateCell {
    word: CachePadded<AtomicU64>,
    probe_admitted_at_ms: AtomicU64,
    /// At most `probe_admitted_at_ms` plus the lease in force, or 0.
    published_lease_end_ms: AtomicU64,
}

impl StateCell {
    pub(crate) fn new() -> StateCell {
        StateCell {
            word: CachePadded::new(AtomicU64::new(Snapshot::initial().0)),
            probe_admitted_at_ms: AtomicU64::new(0),
            published_lease_end_ms: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// The one CAS loop every transition goes through.
    ///
    /// `decide` sees the current snapshot and returns what happened plus the
    /// snapshot to install; `None` installs nothing (a pure read). It may run
    /// more than once, so it must be free of side effects other than
    /// idempotent ones.
    ///
    /// The CAS is the strong one: a retry always means the word changed. A
    /// weak CAS could fail spuriously on an unchanged word, and the retry would
    /// then see this decision's own probe-admission stamp and wrongly find the
    /// probe lease still running.
    fn fetch_update_action<T>(&self, mut decide: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut current = self.load();
        loop {
            let (action, next) = decide(current);
            let Some(next) = next else {
                return action;
            };
            match self
                .word
                .compare_exchange(current.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return action,
                Err(actual) => current = Snapshot(actual),
            }
        }
    }

    /// Marks a probe admission at `now`, before the CAS that admits it: a CAS
    /// that then fails leaves a time that is only too late, which delays a
    /// lease reclaim but never hastens one.
    ///
    /// Also publishes when this lease runs out. A lease changed since it was
    /// read (see the orderings above) withdraws the deadline again; until
    /// then the deadline from the old lease can only delay a reclaim.
    fn note_probe_admission(&self, now_ms: u64, limits: &impl LimitSource) {
        self.probe_admitted_at_ms.fetch_max(now_ms, Ordering::AcqRel);
        let lease_ms = limits.probe_lease_ms();
        self.published_lease_end_ms
            .fetch_max(now_ms.saturating_add(lease_ms), Ordering::AcqRel);
        if limits.probe_lease_ms() != lease_ms {
            self.lease_changed();
        }
    }

    /// The lease (or the reset timeout it may follow) changed: withdraw the
    /// published lease end until the next admission; rejections meanwhile
    /// take the CAS loop. Called after the new value is stored.
    pub(crate) fn lease_changed(&self) {
        self.published_lease_end_ms.swap(0, Ordering::AcqRel);
    }

    /// When the lease of the latest probe admitted runs out, under the lease
    /// in force now.
    fn probe_lease_end_ms(&self, limits: &impl LimitSource) -> u64 {
        let admitted_at = self.probe_admitted_at_ms.load(Ordering::Acquire);
        admitted_at.saturating_add(limits.probe_lease_ms())
    }

    /// The read-only fast path: a closed breaker admits with one load.
    #[inline]
    pub(crate) fn acquire_closed(&self) -> Option<Ticket> {
        let s = self.load();
        s.is_closed().then(|| s.ticket(TICKET_CLOSED))
    }

    /// The read-only fast path: a closed-state success with no failures to
    /// reset changes nothing, so it is one load.
    #[inline]
    pub(crate) fn success_is_noop(&self, ticket: Ticket) -> bool {
        ticket.success_is_noop(self.load())
    }

    /// Trips a closed breaker whose rate window decided so. One CAS: of
    /// racing callers exactly one trips; the others find `ticket` stale.
    pub(crate) fn trip(&self, ticket: Ticket, now: &mut impl Now) -> Option<Transition> {
        self.fetch_update_action(|s| {
            if ticket.is_stale(s) || !s.is_closed() {
                return (None, None);
            }
            let next = s.with_open(now.now_ms());
            (s.transition_to(next), Some(next))
        })
    }

    /// Whether `ticket`'s episode is still running.
    #[inline]
    pub(crate) fn is_current(&self, ticket: Ticket) -> bool {
        !ticket.is_stale(self.load())
    }

    /// A ticket that is stale from the start: a call admitted although the
    /// breaker would reject it (shadow modes) must not count.
    pub(crate) fn inert_ticket(&self) -> Ticket {
        let s = self.load();
        let kind = if s.is_closed() {
            TICKET_PROBE
        } else {
            TICKET_CLOSED
        };
        Ticket(s.ticket(kind).0 | TICKET_INERT)
    }

    /// The generation of the current episode.
    pub(crate) fn episode(&self) -> u32 {
        self.load().generation()
    }

    /// What a call's ask comes to as things stand: the one rule for admitting
    /// and rejecting, used by the CAS loop and the fast path. Reads each
    /// limit at most once, so a setter racing it is seen wholly or not at
    /// all (reading `half_open_max_calls` twice once let a lowered limit
    /// reclaim a live probe's slot), and the clock only when not closed.
    ///
    /// Open and full half-open both come down to one deadline (the reset
    /// timeout or the open period a backoff chose, the probe lease, from
    /// `lease_end`) and one clock reading against it, so a rejection in
    /// either state costs the same.
    // Always inlined: out of line, every rejection paid a call and its
    // spills (68 instructions against 36 inlined).
    #[inline(always)]
    fn ask(
        &self,
        s: Snapshot,
        limits: &impl LimitSource,
        now: &mut impl Now,
        lease_end: impl FnOnce() -> u64,
    ) -> Ask {
        // Each state asks the clock in its own arm: the state rejected in is
        // then a constant there, not a value kept across the clock reading.
        match s.state() {
            State::Closed => Ask::Closed,
            State::Open => match limits.open_for_ms(s.generation()) {
                Some(open_for) => {
                    let deadline_ms = s.opened_at_ms().saturating_add(open_for);
                    by_deadline(now, deadline_ms, Ask::FirstProbe, State::Open)
                }
                None => Ask::Reject(State::Open, u64::MAX),
            },
            State::HalfOpen if !s.probes_reached(limits.probe_limit()) => Ask::Probe,
            State::HalfOpen => by_deadline(now, lease_end(), Ask::Reclaim, State::HalfOpen),
        }
    }

    /// The read-only fast path for a breaker that is not closed: one load and
    /// the rejection [`StateCell::acquire`] would decide. `None`: ask `acquire`.
    /// The published lease end is never later than the one `acquire` reads,
    /// except while an admission that read the old lease races a lease change
    /// (see [`StateCell::note_probe_admission`]), and then it only delays a
    /// reclaim: this never admits, so never more probes than the limit.
    #[inline]
    /// With the state, the time left to its deadline (`u64::MAX`: not known).
    pub(crate) fn rejects(&self, limits: &impl LimitSource, now: &mut impl Now) -> Option<(State, u64)> {
        let lease_end = || self.published_lease_end_ms.load(Ordering::Acquire);
        match self.ask(self.load(), limits, now, lease_end) {
            Ask::Reject(state, left_ms) => Some((state, left_ms)),
            _ => None,
        }
    }

    /// Asks to run a call.
    pub(crate) fn acquire(&self, limits: &impl LimitSource, now: &mut impl Now) -> Acquire {
        self.fetch_update_action(|s| {
            let (next, slot) = match self.ask(s, limits, now, || self.probe_lease_end_ms(limits)) {
                Ask::Closed => {
                    let ticket = s.ticket(TICKET_CLOSED);
                    return (
                        Acquire::Admitted {
                            ticket,
                            transition: None,
                        },
                        None,
                    );
                }
                Ask::Reject(state, _) => return (Acquire::Rejected(state), None),
                Ask::FirstProbe => s.with_half_open(0).with_probe_admitted(),
                Ask::Probe => s.with_probe_admitted(),
                // Every probe in flight outlived its lease: reclaim them all
                // (a new episode, so their tickets go stale) and admit this call.
                Ask::Reclaim => s.with_episode_restarted().with_probe_admitted(),
            };
            self.note_probe_admission(now.now_ms(), limits);
            let admitted = Acquire::Admitted {
                ticket: next.probe_ticket(slot),
                transition: s.transition_to(next),
            };
            (admitted, Some(next))
        })
    }

    /// Records how the call admitted by `ticket` ended.
    pub(crate) fn record(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        limits: &impl LimitSource,
        now: &mut impl Now,
    ) -> Recorded {
        // `false` inside the closure, not captured: the consecutive rule's
        // record then builds the same closure as before slow probes existed.
        self.fetch_update_action(|s| recorded_next(s, ticket, outcome, false, limits, now))
    }

    /// Records a probe that was slow (the failure-rate rule counts it toward
    /// the slow-call rate; otherwise as [`StateCell::record`]).
    pub(crate) fn record_slow(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        limits: &impl LimitSource,
        now: &mut impl Now,
    ) -> Recorded {
        self.fetch_update_action(|s| recorded_next(s, ticket, outcome, true, limits, now))
    }

    /// Moves to `target` whatever the current state; a no-op if already there
    /// (except that closing a closed breaker clears its failure count).
    pub(crate) fn force(&self, target: State, now: &mut impl Now) -> Option<Transition> {
        self.fetch_update_action(|s| {
            let next = match (s.state(), target) {
                (State::Closed, State::Closed) if s.failures() == 0 => return (None, None),
                (State::Closed, State::Closed) => s.with_failures(0),
                (State::Open, State::Open) | (State::HalfOpen, State::HalfOpen) => return (None, None),
                (_, State::Closed) => s.with_closed(),
                (_, State::Open) => s.with_open(now.now_ms()),
                (_, State::HalfOpen) => s.with_half_open(0),
            };
            (s.transition_to(next), Some(next))
        })
    }

    /// Applies limits that changed under the current counts: trips a closed
    /// breaker already at `fail_max`, closes a half-open one already at
    /// `success_threshold` (or, under the failure-rate rule, decides one
    /// that has recorded `half_open_max_calls` probes).
    ///
    /// Always writes (an unchanged word is written back), so that this read-
    /// modify-write is ordered against every concurrent record: either it sees
    /// the record's count, or the record sees the new limit (see
    /// [`StateCell::needs_reconcile`]).
    pub(crate) fn reconcile(&self, limits: &impl LimitSource, now: &mut impl Now) -> Option<Transition> {
        self.fetch_update_action(|s| {
            let next = match s.state() {
                State::Closed if s.failures() >= limits.fail_max() => s.with_open(now.now_ms()),
                State::HalfOpen => match s.probes_decide(limits) {
                    Some(reopen) => s.with_probes_decided(reopen, now),
                    None => s,
                },
                _ => s,
            };
            (s.transition_to(next), Some(next))
        })
    }

    /// Whether the current counts already meet `limits` though no transition
    /// was made: a record raced a setter and must reconcile.
    pub(crate) fn needs_reconcile(&self, limits: &impl LimitSource) -> bool {
        let s = self.load();
        match s.state() {
            State::Closed => s.failures() >= limits.fail_max(),
            State::HalfOpen => s.probes_decide(limits).is_some(),
            State::Open => false,
        }
    }
}

/// The mirror of a fleet-shared state (the `redis` feature).
#[cfg(feature = "redis")]
mod fleet {
    use super::*;

    /// How many generations the word tells apart; a shared store's epoch is
    /// mirrored modulo this.
    pub(crate) const GENERATION_MODULUS: u64 = 1 << GENERATION_BITS;

    /// The state of a breaker shared by a fleet, as its store reports it, with
    /// times already translated to this breaker's clock.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct FleetView {
        /// The fleet's state.
        pub(crate) state: State,
        /// The fleet's epoch; the mirror keeps it modulo [`GENERATION_MODULUS`].
        pub(crate) generation: u64,
        /// Consecutive failures (closed).
        pub(crate) failures: u32,
        /// When the fleet opened, on this breaker's clock (open).
        pub(crate) opened_at_ms: u64,
        /// Probes in flight fleet-wide (half-open).
        pub(crate) in_flight: u32,
        /// Probe successes fleet-wide (half-open).
        pub(crate) successes: u32,
        /// The latest probe admission, on this breaker's clock (half-open).
        pub(crate) probe_admitted_at_ms: u64,
        /// The slots the fleet's probes in flight hold (a bitmap, below
        /// [`PROBE_SLOTS`]) and its next slot; `None`: only counted.
        pub(crate) probe_slots: Option<(u32, u32)>,
        /// Open: the period the fleet's backoff chose, in ms; `None`: the
        /// reset timeout.
        pub(crate) open_for_ms: Option<u64>,
        /// Half-open under the failure-rate rule: the fleet's probe tally
        /// (its recorded probes spent their permits); `None`: the successes rule.
        pub(crate) probe_tally: Option<ProbeTally>,
    }

    impl FleetView {
        pub(crate) fn snapshot(&self) -> Snapshot {
            let base = Snapshot::new(CLOSED, self.generation % GENERATION_MODULUS, 0);
            match self.state {
                State::Closed => base.with_failures(self.failures),
                State::Open => {
                    let at = self.opened_at_ms.min(MAX_TIMESTAMP_MS);
                    Snapshot::new(OPEN, self.generation % GENERATION_MODULUS, at << PAYLOAD_SHIFT)
                }
                State::HalfOpen => {
                    let episode = Snapshot::new(HALF_OPEN, self.generation % GENERATION_MODULUS, 0);
                    let (tally, spent) = match self.probe_tally {
                        Some(t) => (t.to_field(), t.recorded.min(MAX_RATE_PROBES)),
                        None => (u64::from(self.successes.min(MAX_HALF_OPEN_COUNT)), 0),
                    };
                    match self.probe_slots {
                        Some((slots, next)) => episode.with_slotted_probes(slots, next, tally, spent),
                        None => episode.with_counted_fleet_probes(self.in_flight, tally, spent),
                    }
                }
            }
        }

        /// The ticket the fleet issued for a closed-state call in this
        /// view's episode.
        pub(crate) fn closed_ticket(&self) -> Ticket {
            self.snapshot().ticket(TICKET_CLOSED)
        }

        /// The ticket the fleet issued for a probe in this view's episode,
        /// holding `slot` of the fleet's (below [`PROBE_SLOTS`]).
        pub(crate) fn probe_ticket(&self, slot: u32) -> Ticket {
            self.snapshot().probe_ticket(slot)
        }
    }

    /// What the mirror alone can decide about a call, without asking the fleet.
    #[must_use]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Gate {
        /// Closed: admit with this ticket.
        Admit(Ticket),
        /// Open before the reset timeout, or half-open with every slot taken
        /// and no lease run out: reject.
        Reject(State),
        /// Only the fleet can decide (a probe, or a timeout that has passed).
        AskFleet,
    }

    impl StateCell {
        /// Overwrites the mirror with the fleet's view, through the one CAS loop.
        /// Returns the change of state the mirror made, if any.
        pub(crate) fn sync_from(&self, view: &FleetView) -> Option<Transition> {
            let next = view.snapshot();
            if next.state() == State::HalfOpen {
                self.probe_admitted_at_ms
                    .store(view.probe_admitted_at_ms, Ordering::Release);
            }
            self.fetch_update_action(|s| (s.transition_to(next), (s != next).then_some(next)))
        }

        /// Decides from the mirror alone what it can: closed admits; open before
        /// its deadline, and half-open with every slot taken and no lease run
        /// out, reject; everything else is the fleet's to decide.
        pub(crate) fn gate(&self, limits: &impl LimitSource, now: &mut impl Now) -> Gate {
            let s = self.load();
            match s.state() {
                State::Closed => Gate::Admit(s.ticket(TICKET_CLOSED)),
                State::Open | State::HalfOpen => {
                    match self.ask(s, limits, now, || self.probe_lease_end_ms(limits)) {
                        Ask::Reject(state, _) => Gate::Reject(state),
                        _ => Gate::AskFleet,
                    }
                }
            }
        }
    }
}

#[cfg(feature = "redis")]
pub(crate) use fleet::{FleetView, Gate, GENERATION_MODULUS};

/// `passed` once `deadline_ms` is reached, else a rejection in `state`.
#[inline(always)]
fn by_deadline(now: &mut impl Now, deadline_ms: u64, passed: Ask, state: State) -> Ask {
    match now.left(deadline_ms) {
        None => passed,
        Some(left_ms) => Ask::Reject(state, left_ms),
    }
}

/// What recording `outcome` for `ticket` against `s` does (one attempt of
/// the CAS loop).
#[inline(always)]
fn recorded_next(
    s: Snapshot,
    ticket: Ticket,
    outcome: Outcome,
    slow: bool,
    limits: &impl LimitSource,
    now: &mut impl Now,
) -> (Recorded, Option<Snapshot>) {
    if ticket.is_stale(s) {
        return (Recorded::Stale, None);
    }
    let next = match (s.state(), outcome) {
        (State::Closed, Outcome::Success) if s.failures() == 0 => return (Recorded::Counted, None),
        (State::Closed, Outcome::Success) => s.with_failures(0),
        (State::Closed, Outcome::Failure) => {
            let failures = s.failures().saturating_add(1);
            if failures >= limits.fail_max() {
                s.with_open(now.now_ms())
            } else {
                s.with_failures(failures)
            }
        }
        (State::Closed, Outcome::Ignored) => return (Recorded::Counted, None),
        // Half-open (a live probe ticket).
        (_, _) if limits.probe_rule() != ProbeRule::Successes => {
            s.with_rate_probe_recorded(ticket.slot(), outcome, slow, limits, now)
        }
        (_, Outcome::Failure) => s.with_open(now.now_ms()),
        (_, Outcome::Success) => {
            let successes = s.successes() + 1;
            if successes >= limits.success_threshold() {
                s.with_closed()
            } else {
                s.with_probe_released(ticket.slot(), successes)
            }
        }
        (_, Outcome::Ignored) => s.with_probe_released(ticket.slot(), s.successes()),
    };
    (recorded(s, next), Some(next))
}

fn recorded(before: Snapshot, after: Snapshot) -> Recorded {
    match before.transition_to(after) {
        Some(t) => Recorded::Transitioned(t),
        None => Recorded::Counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedNow(u64);
    impl Now for FixedNow {
        fn now_ms(&mut self) -> u64 {
            self.0
        }
        fn reached(&mut self, deadline_ms: u64) -> bool {
            self.0 >= deadline_ms
        }
    }

    fn limits() -> Limits {
        Limits {
            fail_max: 2,
            success_threshold: 2,
            half_open_max_calls: 2,
            reset_timeout_ms: 100,
            probe_lease_ms: 100,
            probe_rule: ProbeRule::Successes,
        }
    }

    #[test]
    fn fields_round_trip_at_their_limits() {
        let s = Snapshot::initial().with_failures(u32::MAX);
        assert_eq!(s.failures(), u32::MAX);
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.generation(), 0);

        let o = s.with_open(MAX_TIMESTAMP_MS);
        assert_eq!(o.opened_at_ms(), MAX_TIMESTAMP_MS);
        assert_eq!(o.generation(), 1);
        assert_eq!(o.failures(), 0);
        assert_eq!(
            s.with_open(u64::MAX).opened_at_ms(),
            MAX_TIMESTAMP_MS,
            "saturates"
        );

        let h = o
            .with_half_open(0)
            .with_counted_probes(MAX_HALF_OPEN_COUNT, MAX_HALF_OPEN_COUNT);
        assert_eq!(h.in_flight(), MAX_HALF_OPEN_COUNT);
        assert_eq!(h.successes(), MAX_HALF_OPEN_COUNT);
        assert_eq!(h.state(), State::HalfOpen);
        assert_eq!(h.generation(), 2);
    }

    #[test]
    fn a_success_is_a_noop_only_for_a_clean_closed_word_of_the_same_episode() {
        let closed = Snapshot::initial().with_open(5).with_closed();
        let ticket = closed.ticket(TICKET_CLOSED).with_tag(7);
        assert!(ticket.success_is_noop(closed));
        assert!(
            !ticket.success_is_noop(closed.with_failures(1)),
            "failures to reset"
        );
        assert!(
            !ticket.success_is_noop(closed.with_open(5).with_closed()),
            "another episode"
        );
        assert!(!ticket.success_is_noop(closed.with_open(5)), "not closed");
        let probe = closed.ticket(TICKET_PROBE);
        assert!(!probe.success_is_noop(closed), "a probe always records");
    }

    #[test]
    fn generation_wraps_without_touching_other_fields() {
        let s = Snapshot::new(HALF_OPEN, (1 << GENERATION_BITS) - 1, 0).with_counted_probes(3, 4);
        let s = s.with_half_open(s.successes());
        assert_eq!(s.generation(), 0);
        assert_eq!((s.state(), s.in_flight(), s.successes()), (State::HalfOpen, 0, 4));
    }

    #[test]
    fn tickets_validate_kind_tag_and_reserved_bits() {
        let t = Snapshot::initial().ticket(TICKET_CLOSED).with_tag(0xdead_beef);
        assert!(t.is_valid_for(0xdead_beef));
        assert!(!t.is_valid_for(1));
        assert!(!Ticket::from_bits(t.to_bits() | 1 << 27).is_valid_for(0xdead_beef));
        let probe = Snapshot::initial().probe_ticket(15).with_tag(0xdead_beef);
        assert!(probe.is_valid_for(0xdead_beef) && probe.slot() == 15);
        assert!(!Ticket::from_bits(t.to_bits() | 0b11).is_valid_for(0xdead_beef));
        assert!(!Ticket::from_bits(t.to_bits() & !0b11).is_valid_for(0xdead_beef));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn sync_from_overwrites_the_mirror_and_reports_its_change_once() {
        let cell = StateCell::new();
        let open = FleetView {
            state: State::Open,
            generation: GENERATION_MODULUS + 7,
            failures: 0,
            opened_at_ms: 40,
            in_flight: 0,
            successes: 0,
            probe_admitted_at_ms: 0,
            probe_slots: None,
            open_for_ms: None,
            probe_tally: None,
        };
        let old = cell.acquire_closed().expect("closed");
        assert_eq!(
            cell.sync_from(&open),
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        assert_eq!(cell.sync_from(&open), None, "nothing new");
        let s = cell.load();
        assert_eq!((s.generation(), s.opened_at_ms()), (7, 40), "epoch kept modulo");
        assert!(old.is_stale(s));
        assert_eq!(
            cell.gate(&limits(), &mut FixedNow(139)),
            Gate::Reject(State::Open)
        );
        assert_eq!(cell.gate(&limits(), &mut FixedNow(140)), Gate::AskFleet);

        let half = FleetView {
            state: State::HalfOpen,
            generation: 8,
            in_flight: 1,
            ..open
        };
        assert!(cell.sync_from(&half).is_some());
        let probe = half.probe_ticket(5);
        assert!(probe.is_probe() && probe.slot() == 5 && !probe.is_stale(cell.load()));
        assert!(!half.closed_ticket().is_probe());
        assert_eq!(cell.load().in_flight(), 1);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_fleet_view_with_slots_tells_the_fleets_probes_apart() {
        let cell = StateCell::new();
        let l = Limits {
            half_open_max_calls: 2,
            success_threshold: 2,
            ..limits()
        };
        let half = FleetView {
            state: State::HalfOpen,
            generation: 8,
            failures: 0,
            opened_at_ms: 0,
            in_flight: 2,
            successes: 0,
            probe_admitted_at_ms: 0,
            probe_slots: Some((0b101, 3)),
            open_for_ms: None,
            probe_tally: None,
        };
        assert!(cell.sync_from(&half).is_some());
        assert_eq!((cell.load().in_flight(), cell.load().successes()), (2, 0));
        let (first, second) = (half.probe_ticket(0), half.probe_ticket(2));
        assert_eq!(
            cell.record(first, Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Counted
        );
        assert_eq!(
            cell.record(first, Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Stale,
            "its slot is free: recorded twice, counted once"
        );
        assert_eq!(
            cell.record(half.probe_ticket(1), Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Stale
        );
        assert!(cell
            .record(second, Outcome::Success, &l, &mut FixedNow(0))
            .transition()
            .is_some());
        assert_eq!(cell.load().state(), State::Closed);

        // Counted probes (no slots) are not told apart.
        let counted = FleetView {
            probe_slots: None,
            open_for_ms: None,
            generation: 20,
            ..half
        };
        assert!(cell.sync_from(&counted).is_some());
        let any = counted.probe_ticket(0);
        assert_eq!(
            cell.record(any, Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Counted
        );
        assert!(cell
            .record(any, Outcome::Success, &l, &mut FixedNow(0))
            .transition()
            .is_some());
    }

    /// Under the failure-rate rule a fleet's view carries its tally: the
    /// mirror counts the permits its recorded probes spent, so it rejects
    /// alone exactly when the fleet would (every permit spent, no lease run
    /// out), with slots or counted.
    #[cfg(feature = "redis")]
    #[test]
    fn a_fleet_views_tally_spends_the_mirrors_permits() {
        let l = Limits {
            half_open_max_calls: 4,
            success_threshold: 1,
            probe_rule: ProbeRule::Rate {
                failure_bp: 5_000,
                slow_bp: None,
            },
            ..limits()
        };
        let tally = |recorded, failures| {
            Some(ProbeTally {
                recorded,
                failures,
                slow: 0,
            })
        };
        let half = FleetView {
            state: State::HalfOpen,
            generation: 8,
            failures: 0,
            opened_at_ms: 0,
            in_flight: 2,
            successes: 0,
            probe_admitted_at_ms: 0,
            probe_slots: Some((0b1010, 4)),
            open_for_ms: None,
            probe_tally: tally(1, 1),
        };
        for view in [
            half,
            FleetView {
                probe_slots: None,
                ..half
            },
        ] {
            let cell = StateCell::new();
            cell.sync_from(&view);
            let s = cell.load();
            assert_eq!(
                (s.in_flight(), s.tally(), s.probes()),
                (2, view.probe_tally.unwrap(), 3)
            );
            assert_eq!(
                cell.gate(&l, &mut FixedNow(0)),
                Gate::AskFleet,
                "a permit is left"
            );
            cell.sync_from(&FleetView {
                probe_tally: tally(2, 1),
                ..view
            });
            assert_eq!(
                cell.gate(&l, &mut FixedNow(0)),
                Gate::Reject(State::HalfOpen),
                "every permit spent"
            );
            cell.sync_from(&FleetView {
                probe_tally: None,
                ..view
            });
            assert_eq!(
                cell.gate(&l, &mut FixedNow(0)),
                Gate::AskFleet,
                "the successes rule's view"
            );
        }
        // The mirror records as the fleet does: the fourth record decides.
        let cell = StateCell::new();
        let view = FleetView {
            probe_tally: tally(2, 1),
            ..half
        };
        cell.sync_from(&view);
        assert_eq!(
            cell.record(view.probe_ticket(1), Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Counted
        );
        assert_eq!(
            cell.record(view.probe_ticket(3), Outcome::Success, &l, &mut FixedNow(0)),
            Recorded::Transitioned(Transition {
                from: State::HalfOpen,
                to: State::Closed
            }),
            "1 failure in 4, below 50%"
        );
    }

    #[test]
    fn probes_hold_distinct_slots_until_the_seventeenth_turns_them_into_a_count() {
        let cell = StateCell::new();
        let l = Limits {
            half_open_max_calls: 20,
            success_threshold: 100,
            ..limits()
        };
        assert!(cell.force(State::HalfOpen, &mut FixedNow(0)).is_some());
        let admit = || match cell.acquire(&l, &mut FixedNow(0)) {
            Acquire::Admitted { ticket, .. } => ticket,
            other => panic!("a slot is free: {other:?}"),
        };
        let first: Vec<Ticket> = (0..PROBE_SLOTS).map(|_| admit()).collect();
        let slots: Vec<u32> = first.iter().map(|t| t.slot()).collect();
        assert_eq!(slots, (0..PROBE_SLOTS).collect::<Vec<_>>());
        assert_eq!((cell.load().in_flight(), cell.load().is_counted()), (16, false));
        let record = |t: Ticket| cell.record(t, Outcome::Ignored, &l, &mut FixedNow(0));
        assert_eq!(record(first[3]), Recorded::Counted);
        assert_eq!(record(first[3]), Recorded::Stale, "its slot is empty");
        let seventeenth = admit();
        assert_eq!((cell.load().in_flight(), cell.load().is_counted()), (16, true));
        assert_eq!(record(seventeenth), Recorded::Counted);
        assert_eq!(record(first[0]), Recorded::Counted);
        assert_eq!(cell.load().in_flight(), 14, "counted from here on");
    }

    #[test]
    fn a_probe_limit_compares_against_the_word_as_the_probe_count_does() {
        let words = |limit_admitted: u32| {
            let mut s = Snapshot::initial().with_half_open(3);
            let mut all = vec![s];
            for _ in 0..limit_admitted {
                s = s.with_probe_admitted().0;
                all.push(s);
            }
            // Counted words, and a slot word with some slots freed again.
            all.push(all[5].with_probe_released(2, 3));
            all.push(s.with_probe_released(1, 3));
            all.extend([0, 1, 2, 16, 17, 31, 40].map(|n| s.with_counted_probes(n, 7)));
            all
        };
        for limit in (0..=40).chain([MAX_HALF_OPEN_COUNT - 1, MAX_HALF_OPEN_COUNT]) {
            assert_eq!(ProbeLimit::new(limit).count(), limit);
            for s in words(20) {
                assert_eq!(
                    s.probes_reached(ProbeLimit::new(limit)),
                    s.probes() >= limit,
                    "limit {limit}, {s:?} ({} probes, counted: {})",
                    s.probes(),
                    s.is_counted()
                );
            }
        }
    }

    #[test]
    fn one_probe_then_reclaim_after_lease() {
        let cell = StateCell::new();
        let l = Limits {
            half_open_max_calls: 1,
            ..limits()
        };
        assert!(cell.force(State::Open, &mut FixedNow(0)).is_some());
        assert_eq!(
            cell.acquire(&l, &mut FixedNow(99)),
            Acquire::Rejected(State::Open)
        );
        let Acquire::Admitted { ticket, transition } = cell.acquire(&l, &mut FixedNow(100)) else {
            panic!("deadline reached")
        };
        assert_eq!(transition.map(|t| t.to), Some(State::HalfOpen));
        assert_eq!(
            cell.acquire(&l, &mut FixedNow(199)),
            Acquire::Rejected(State::HalfOpen)
        );
        assert!(matches!(
            cell.acquire(&l, &mut FixedNow(200)),
            Acquire::Admitted { transition: None, .. }
        ));
        assert_eq!(
            cell.record(ticket, Outcome::Success, &l, &mut FixedNow(200)),
            Recorded::Stale
        );
        assert_eq!(cell.load().in_flight(), 1);
    }
}
