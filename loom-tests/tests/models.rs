//! Loom models of every state transition of the breaker.
//!
//! Each model builds a real `breakerbox::CircuitBreaker` (its state word on
//! loom's atomics), races two or three threads on it, and asserts the final
//! state, the counters, what every call was told, and the exact transition
//! events its listener saw. Time moves only when the test says so.
//!
//! Run with `bash loom-tests/run.sh` (or `make loom`); without
//! `--cfg breakerbox_loom` this file compiles to nothing.
#![cfg(breakerbox_loom)]

use breakerbox::{CircuitBreaker, Outcome, Recorded, State, Ticket, Transition};
use breakerbox_loom_tests::{
    breaker, half_open_breaker, main_or_thread, model, quiet_breaker, t, Events, Racer, Seen, LEASE, RESET,
};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use std::time::Duration;

use State::{Closed, HalfOpen, Open};

/// What one racing call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Admitted as a half-open probe; the record returned this.
    Probe(Recorded),
    /// Admitted in the closed state; the record returned this.
    Closed(Recorded),
    /// Rejected in this state.
    Rejected(State),
}

impl Call {
    /// A closed-state call whose record tripped the breaker.
    fn tripped(&self) -> bool {
        matches!(self, Call::Closed(r) if r.tripped())
    }

    fn is_closed(&self) -> bool {
        matches!(self, Call::Closed(_))
    }
}

/// Asks for a permit and, if admitted, records `outcome` at once.
fn call(r: &Racer, outcome: Outcome) -> Call {
    r.pass();
    let call = match r.try_acquire() {
        Ok(permit) => {
            let probe = permit.is_probe();
            r.pass();
            let recorded = permit.record(outcome);
            if probe {
                Call::Probe(recorded)
            } else {
                Call::Closed(recorded)
            }
        }
        Err(rejected) => Call::Rejected(rejected.state),
    };
    r.pass();
    call
}

/// Races `N` calls: the main thread's records `mine`, each of the `N - 1`
/// spawned threads' records `theirs`. Main's call comes first.
fn race_calls<const N: usize>(b: &Racer, mine: Outcome, theirs: Outcome) -> [Call; N] {
    b.race(move |b| call(b, mine), move |b| call(b, theirs))
}

/// Asks for a permit and keeps it, unrecorded, as a raw ticket.
fn hold(r: &Racer) -> Result<Ticket, State> {
    r.step(|b| b.try_acquire().map(|p| p.into_ticket()).map_err(|r| r.state))
}

/// The tickets of racing [`hold`]s in half-open: exactly `n` were admitted,
/// all as probes, and every other ask was told half-open.
fn admitted_probes(got: &[Result<Ticket, State>], n: usize) -> Vec<Ticket> {
    let admitted: Vec<Ticket> = got.iter().filter_map(|r| r.ok()).collect();
    assert_eq!(admitted.len(), n, "exactly {n} probes admitted: {got:?}");
    assert!(admitted.iter().all(|t| t.is_probe()), "{got:?}");
    assert!(got.iter().all(|r| r.is_ok() || *r == Err(HalfOpen)), "{got:?}");
    admitted
}

fn count(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
    calls.iter().filter(|c| pred(c)).count()
}

fn assert_counters(b: &CircuitBreaker, failures: u32, in_flight: u32, successes: u32) {
    assert_eq!(
        (b.fail_counter(), b.probes_in_flight(), b.success_counter()),
        (failures, in_flight, successes),
        "(fail_counter, probes_in_flight, success_counter)"
    );
}

// ---------------------------------------------------------------------------
// 1. HALF_OPEN, half_open_max_calls = 1: exactly one probe is admitted.
// ---------------------------------------------------------------------------

/// Three threads race for the single probe slot and hold what they get:
/// exactly one is admitted, as a probe; the others are told half-open.
#[test]
fn m1_one_probe_slot_three_racers() {
    model(&["racer 0 won", "racer 1 won", "racer 2 won"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(1));
        let got: [_; 3] = b.race(hold, hold);

        let admitted = admitted_probes(&got, 1);
        seen.hit(["racer 0 won", "racer 1 won", "racer 2 won"][got.iter().position(Result::is_ok).unwrap()]);
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 1, 0);
        assert_eq!(events.take(), []);

        assert_eq!(
            b.record(admitted[0], Outcome::Success),
            Ok(Recorded::Transitioned(t(HalfOpen, Closed)))
        );
        assert_eq!(events.take(), [t(HalfOpen, Closed)]);
    });
}

/// Three threads race and record success at once: one probe closes the
/// breaker, and any later call is admitted in the closed state.
#[test]
fn m1_single_probe_success_closes() {
    model(
        &[
            "0 admitted after close",
            "1 admitted after close",
            "2 admitted after close",
        ],
        |seen| {
            let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(1));
            let calls: [Call; 3] = race_calls(&b, Outcome::Success, Outcome::Success);

            assert_eq!(count(&calls, |c| matches!(c, Call::Probe(_))), 1, "{calls:?}");
            for c in calls {
                match c {
                    Call::Probe(r) => assert_eq!(r, Recorded::Transitioned(t(HalfOpen, Closed))),
                    Call::Closed(r) => assert_eq!(r, Recorded::Counted),
                    Call::Rejected(s) => assert_eq!(s, HalfOpen),
                }
            }
            seen.hit(
                [
                    "0 admitted after close",
                    "1 admitted after close",
                    "2 admitted after close",
                ][count(&calls, |c| matches!(c, Call::Closed(_)))],
            );
            assert_eq!(b.state(), Closed);
            assert_counters(&b, 0, 0, 0);
            assert_eq!(events.take(), [t(HalfOpen, Closed)]);
        },
    );
}

/// Three threads race and record failure at once: one probe re-opens the
/// breaker; nobody else is admitted.
#[test]
fn m1_single_probe_failure_reopens() {
    model(&["rejected half-open", "rejected open"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(1));
        let calls: [Call; 3] = race_calls(&b, Outcome::Failure, Outcome::Failure);

        assert_eq!(count(&calls, |c| matches!(c, Call::Probe(_))), 1, "{calls:?}");
        for c in calls {
            match c {
                Call::Probe(r) => assert_eq!(r, Recorded::Transitioned(t(HalfOpen, Open))),
                Call::Closed(r) => panic!("admitted while open: {r:?}"),
                Call::Rejected(HalfOpen) => seen.hit("rejected half-open"),
                Call::Rejected(s) => {
                    assert_eq!(s, Open);
                    seen.hit("rejected open");
                }
            }
        }
        assert_eq!(b.state(), Open);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), [t(HalfOpen, Open)]);
    });
}

// ---------------------------------------------------------------------------
// 2. half_open_max_calls = 2: never more than two probes in flight.
// ---------------------------------------------------------------------------

/// Three threads race for two slots and hold what they get: exactly two
/// are admitted.
#[test]
fn m2_two_slots_three_racers() {
    model(&["racer 0 lost", "racer 1 lost", "racer 2 lost"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(2));
        let got: [_; 3] = b.race(hold, hold);

        admitted_probes(&got, 2);
        seen.hit(
            ["racer 0 lost", "racer 1 lost", "racer 2 lost"][got.iter().position(Result::is_err).unwrap()],
        );
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 2, 0);
        assert_eq!(events.take(), []);
    });
}

/// Three threads take a probe, hold it, and free it (ignored): at no point
/// do more than two callers hold a probe, counted outside the breaker. The
/// count is relaxed, so it leans on nothing but the breaker's own ordering:
/// a slot handed on must carry the previous holder's release with it.
#[test]
fn m2_never_more_than_two_in_flight() {
    model(&["2 admitted", "3 admitted"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(2));
        let holders = Arc::new(AtomicUsize::new(0));
        let probe = {
            let holders = holders.clone();
            move |r: &Racer| {
                // The holder count's read-modify-writes mark the call
                // boundaries after this first pass.
                r.pass();
                match r.try_acquire().map(|p| p.into_ticket()) {
                    Ok(ticket) => {
                        assert!(ticket.is_probe());
                        let now = holders.fetch_add(1, Ordering::Relaxed) + 1;
                        assert!(now <= 2, "{now} probes held at once");
                        holders.fetch_sub(1, Ordering::Relaxed);
                        assert_eq!(r.record(ticket, Outcome::Ignored), Ok(Recorded::Counted));
                        true
                    }
                    Err(rejected) => {
                        assert_eq!(rejected.state, HalfOpen);
                        false
                    }
                }
            }
        };
        let h1 = b.spawn(probe.clone());
        let h2 = b.spawn(probe.clone());
        let mine = probe(&b);
        let admitted = [mine, h1.join().unwrap(), h2.join().unwrap()];

        // The first two asks always find a free slot.
        match admitted.iter().filter(|a| **a).count() {
            2 => seen.hit("2 admitted"),
            3 => seen.hit("3 admitted"),
            n => panic!("only {n} admitted: the first two asks always find a slot"),
        }
        assert_eq!(holders.load(Ordering::Relaxed), 0);
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), []);
    });
}

// ---------------------------------------------------------------------------
// 3. OPEN after reset_timeout: one OPEN -> HALF_OPEN transition, one probe.
// ---------------------------------------------------------------------------

#[test]
fn m3_reset_timeout_one_transition_one_probe() {
    model(&["main won", "thread won"], |seen| {
        let (b, clock, events) = breaker(|c| c.half_open_max_calls(1));
        assert_eq!(b.open(), Some(t(Closed, Open)));
        assert_eq!(events.take(), [t(Closed, Open)]);
        clock.advance(RESET);

        let got: [_; 2] = b.race(hold, hold);

        // The loser lost to the transition, so it is told half-open, not open.
        let admitted = admitted_probes(&got, 1);
        seen.hit(main_or_thread(got[0].is_ok(), "main won", "thread won"));
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 1, 0);
        assert_eq!(events.take(), [t(Open, HalfOpen)], "exactly one transition event");

        assert_eq!(
            b.record(admitted[0], Outcome::Success),
            Ok(Recorded::Transitioned(t(HalfOpen, Closed)))
        );
        assert_eq!(events.take(), [t(HalfOpen, Closed)]);
    });
}

// ---------------------------------------------------------------------------
// 4. CLOSED, fail_max = 2: concurrent failures trip exactly once.
// ---------------------------------------------------------------------------

/// Two threads fail at once: the breaker always ends open, with one event
/// and one caller told it tripped.
#[test]
fn m4_two_failures_trip_once() {
    model(&["main tripped", "thread tripped"], |seen| {
        let (b, _clock, events) = breaker(|c| c.fail_max(2));
        let calls: [Call; 2] = race_calls(&b, Outcome::Failure, Outcome::Failure);

        let tripped = count(&calls, Call::tripped);
        assert_eq!(tripped, 1, "exactly one trip reported: {calls:?}");
        assert!(calls.iter().all(Call::is_closed), "{calls:?}");
        let main_tripped = calls[0].tripped();
        seen.hit(main_or_thread(main_tripped, "main tripped", "thread tripped"));
        assert_eq!(b.state(), Open);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), [t(Closed, Open)]);
    });
}

/// Two threads fail while a third succeeds. The success either lands
/// between the failures (it resets the count: closed, one failure, no
/// event), or it does not, and then the trip stands: open, one event, one
/// caller told it tripped, and the success stale or rejected.
#[test]
fn m4_success_racing_two_failures() {
    model(
        &[
            "success between the failures",
            "success before the failures",
            "success stale after the trip",
            "success rejected after the trip",
        ],
        |seen| {
            let (b, _clock, events) = breaker(|c| c.fail_max(2));
            let [success, failures @ ..]: [Call; 3] = race_calls(&b, Outcome::Success, Outcome::Failure);

            assert!(failures.iter().all(Call::is_closed), "{failures:?}");
            let tripped = count(&failures, Call::tripped);
            match b.state() {
                Open => {
                    assert_eq!(tripped, 1, "one trip reported: {failures:?}");
                    seen.hit(match success {
                        Call::Closed(Recorded::Counted) => "success before the failures",
                        Call::Closed(Recorded::Stale) => "success stale after the trip",
                        Call::Rejected(Open) => "success rejected after the trip",
                        other => panic!("the success undid or reported the trip: {other:?}"),
                    });
                    assert_counters(&b, 0, 0, 0);
                    assert_eq!(events.take(), [t(Closed, Open)]);
                }
                Closed => {
                    assert_eq!(tripped, 0, "{failures:?}");
                    assert_eq!(success, Call::Closed(Recorded::Counted));
                    seen.hit("success between the failures");
                    assert_counters(&b, 1, 0, 0);
                    assert_eq!(events.take(), []);
                }
                HalfOpen => panic!("half-open without a reset timeout"),
            }
        },
    );
}

// ---------------------------------------------------------------------------
// 5. success_threshold = 2, half_open_max_calls = 2: closes exactly once.
// ---------------------------------------------------------------------------

/// Two probes succeed at once: both are admitted, exactly one record closes.
#[test]
fn m5_two_probe_successes_close_once() {
    model(&["main closed", "thread closed"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(2));
        let calls: [Call; 2] = race_calls(&b, Outcome::Success, Outcome::Success);

        let closed = Call::Probe(Recorded::Transitioned(t(HalfOpen, Closed)));
        assert_eq!(count(&calls, |c| *c == closed), 1, "{calls:?}");
        assert_eq!(
            count(&calls, |c| *c == Call::Probe(Recorded::Counted)),
            1,
            "{calls:?}"
        );
        seen.hit(main_or_thread(calls[0] == closed, "main closed", "thread closed"));
        assert_eq!(b.state(), Closed);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), [t(HalfOpen, Closed)]);
    });
}

/// Three callers, two slots, all succeed: still exactly one close. A probe
/// recorded after the close is stale; a call after it is a closed one.
#[test]
fn m5_three_callers_close_once() {
    model(
        &[
            "probe counted",
            "probe closed",
            "probe stale",
            "closed call",
            "rejected",
        ],
        |seen| {
            let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(2));
            let calls: [Call; 3] = race_calls(&b, Outcome::Success, Outcome::Success);

            let closed = Call::Probe(Recorded::Transitioned(t(HalfOpen, Closed)));
            assert_eq!(count(&calls, |c| *c == closed), 1, "{calls:?}");
            for c in calls {
                match c {
                    Call::Probe(Recorded::Counted) => seen.hit("probe counted"),
                    Call::Probe(Recorded::Stale) => seen.hit("probe stale"),
                    Call::Probe(r) => {
                        assert_eq!(r, Recorded::Transitioned(t(HalfOpen, Closed)));
                        seen.hit("probe closed");
                    }
                    Call::Closed(r) => {
                        assert_eq!(r, Recorded::Counted);
                        seen.hit("closed call");
                    }
                    Call::Rejected(s) => {
                        assert_eq!(s, HalfOpen);
                        seen.hit("rejected");
                    }
                }
            }
            assert_eq!(b.state(), Closed);
            assert_counters(&b, 0, 0, 0);
            assert_eq!(events.take(), [t(HalfOpen, Closed)]);
        },
    );
}

// ---------------------------------------------------------------------------
// 6. A forced close()/open()/half_open() racing a probe's record.
// ---------------------------------------------------------------------------

/// One probe is admitted before the race; one thread records it with
/// `outcome` while another forces `target`. `fail_max = 1`, so a stale
/// failure that slipped through would trip a forced-closed breaker.
fn force_racing_record(target: State, outcome: Outcome) {
    let expected: &[&str] = if target == HalfOpen {
        &["record first", "no-op force first"]
    } else {
        &["record first", "force first"]
    };
    model(expected, move |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(1).fail_max(1));
        let ticket = hold(&b).expect("the one probe");
        let h = b.spawn(move |r| r.step(|b| b.record(ticket, outcome)).expect("our ticket"));
        let forced = b.step(|b| match target {
            Closed => b.close(),
            Open => b.open(),
            HalfOpen => b.half_open(),
        });
        let recorded = h.join().unwrap();
        let reported = Events::sorted(events.take());

        // Where the record alone would have taken the breaker.
        let after_record = match outcome {
            Outcome::Success => Closed,
            Outcome::Failure => Open,
            Outcome::Ignored => HalfOpen,
        };
        let end = if recorded == Recorded::Stale {
            // The force came first and ended the probe's episode.
            assert_ne!(target, HalfOpen, "forcing half-open keeps the probe's episode");
            assert_eq!(forced, Some(t(HalfOpen, target)));
            assert_eq!(reported, [t(HalfOpen, target)]);
            seen.hit("force first");
            target
        } else {
            // The record counted, so it came before any force that moved.
            let moved = (after_record != HalfOpen).then(|| t(HalfOpen, after_record));
            assert_eq!(recorded, moved.map_or(Recorded::Counted, Recorded::Transitioned));
            match forced {
                // Already there, or forced half-open while still half-open
                // (then the record moved on from it): the record's result stands.
                None => {
                    assert!(after_record == target || target == HalfOpen, "{recorded:?}");
                    assert_eq!(reported, Vec::from_iter(moved));
                    if after_record == target {
                        seen.hit("record first");
                    } else {
                        seen.hit("no-op force first");
                    }
                    after_record
                }
                // The force moved on from where the record left it.
                Some(then) => {
                    assert_eq!(then, t(after_record, target));
                    assert_eq!(
                        reported,
                        Events::sorted(moved.into_iter().chain([then]).collect())
                    );
                    seen.hit("record first");
                    target
                }
            }
        };
        assert_eq!(b.state(), end, "the forced state or a legal successor");
        assert_counters(&b, 0, 0, 0);

        // Recording the same probe again changes nothing.
        assert_eq!(b.record(ticket, outcome), Ok(Recorded::Stale));
        assert_eq!(b.state(), end);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), []);
    });
}

#[test]
fn m6_close_racing_probe_success() {
    force_racing_record(Closed, Outcome::Success);
}

#[test]
fn m6_close_racing_probe_failure() {
    force_racing_record(Closed, Outcome::Failure);
}

#[test]
fn m6_open_racing_probe_success() {
    force_racing_record(Open, Outcome::Success);
}

#[test]
fn m6_open_racing_probe_failure() {
    force_racing_record(Open, Outcome::Failure);
}

#[test]
fn m6_half_open_racing_probe_success() {
    force_racing_record(HalfOpen, Outcome::Success);
}

// ---------------------------------------------------------------------------
// 7. A lost probe's lease expiry racing a late record of that probe.
// ---------------------------------------------------------------------------

/// A probe is admitted and left unrecorded past its lease. One thread then
/// records it late, twice (a retried record); another asks for a probe,
/// which either takes the freed slot or reclaims the expired one. At most
/// one of the late record and the reclaim frees the slot: the new probe is
/// always the only one in flight.
fn lease_expiry_racing_late_record(outcome: Outcome) {
    model(&["late record first", "reclaim first"], move |seen| {
        let (b, clock, events) =
            half_open_breaker(|c| c.half_open_max_calls(1).success_threshold(2).fail_max(1));
        let lost = hold(&b).expect("the one probe");
        clock.advance(LEASE);

        let h = b.spawn(move |r| {
            let late = r.step(|b| b.record(lost, outcome)).expect("our ticket");
            let retried = r.step(|b| b.record(lost, outcome)).expect("our ticket");
            (late, retried)
        });
        let asked = hold(&b);
        let (late, retried) = h.join().unwrap();

        assert_eq!(retried, Recorded::Stale, "a probe is recorded at most once");
        if late == Recorded::Transitioned(t(HalfOpen, Open)) {
            // The late failure re-opened the breaker before the ask.
            assert_eq!(outcome, Outcome::Failure);
            assert_eq!(asked, Err(Open));
            assert_eq!(b.state(), Open);
            assert_counters(&b, 0, 0, 0);
            assert_eq!(events.take(), [t(HalfOpen, Open)]);
            seen.hit("late record first");
            return;
        }

        let fresh = asked.expect("a free or reclaimed slot admits the ask");
        assert!(fresh.is_probe());
        match late {
            // The late record freed the slot; the ask took it.
            Recorded::Counted => {
                assert_ne!(outcome, Outcome::Failure);
                seen.hit("late record first");
            }
            // The ask reclaimed the slot; the late record was stale.
            Recorded::Stale => seen.hit("reclaim first"),
            other => panic!("unexpected late record {other:?}"),
        }
        let counted_success = u32::from(late == Recorded::Counted && outcome == Outcome::Success);
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 1, counted_success);
        assert_eq!(events.take(), []);

        // One probe in flight and its lease fresh: the slot is taken.
        assert_eq!(hold(&b), Err(HalfOpen));
        assert_eq!(b.record(fresh, Outcome::Ignored), Ok(Recorded::Counted));
        assert_counters(&b, 0, 0, counted_success);
        assert_eq!(b.record(lost, outcome), Ok(Recorded::Stale));
        assert_counters(&b, 0, 0, counted_success);
    });
}

#[test]
fn m7_lease_expiry_racing_late_ignore() {
    lease_expiry_racing_late_record(Outcome::Ignored);
}

#[test]
fn m7_lease_expiry_racing_late_success() {
    lease_expiry_racing_late_record(Outcome::Success);
}

#[test]
fn m7_lease_expiry_racing_late_failure() {
    lease_expiry_racing_late_record(Outcome::Failure);
}

// ---------------------------------------------------------------------------
// 8. set_fail_max racing failures: no lost trip.
// ---------------------------------------------------------------------------

/// How a `set_fail_max` race must end: exactly one trip, reported by one of
/// the `failures` or by the setter (its result `set`), none lost: open, one
/// event. The setter runs on the main thread.
fn assert_tripped_once(
    seen: &Seen,
    b: &CircuitBreaker,
    events: &Events,
    failures: &[Call],
    set: Option<Transition>,
) {
    let tripped = count(failures, Call::tripped);
    let set_tripped = usize::from(set == Some(t(Closed, Open)));
    assert!(set.is_none() || set_tripped == 1, "{set:?}");
    seen.hit(main_or_thread(
        set_tripped == 1,
        "the setter tripped",
        "a failure tripped",
    ));
    assert_eq!(
        tripped + set_tripped,
        1,
        "one trip reported: {failures:?}, setter {set:?}"
    );
    assert_eq!(b.state(), Open, "no lost trip");
    assert_counters(b, 0, 0, 0);
    assert_eq!(events.take(), [t(Closed, Open)]);
}

/// `fail_max` 3 is lowered to 2 while two threads fail: two failures meet
/// the new limit however the three interleave, so the breaker ends open,
/// and exactly one of the three reports the trip.
#[test]
fn m8_set_fail_max_racing_two_failures() {
    model(&["a failure tripped", "the setter tripped"], |seen| {
        let (b, _clock, events) = breaker(|c| c.fail_max(3));
        let h1 = b.spawn(|b| call(b, Outcome::Failure));
        let h2 = b.spawn(|b| call(b, Outcome::Failure));
        let set = b.step(|b| b.set_fail_max(2)).expect("valid");
        let calls = [h1.join().unwrap(), h2.join().unwrap()];

        assert!(calls.iter().all(Call::is_closed), "{calls:?}");
        assert_eq!(b.fail_max(), 2);
        assert_tripped_once(seen, &b, &events, &calls, set);
    });
}

/// One failure already counted, `fail_max` 2 lowered to 1 while a second
/// thread fails: the breaker ends open, tripped once.
#[test]
fn m8_set_fail_max_racing_one_failure() {
    model(&["a failure tripped", "the setter tripped"], |seen| {
        let (b, _clock, events) = breaker(|c| c.fail_max(3));
        assert_eq!(call(&b, Outcome::Failure), Call::Closed(Recorded::Counted));
        let h = b.spawn(|b| call(b, Outcome::Failure));
        let set = b.step(|b| b.set_fail_max(2)).expect("valid");
        let failed = h.join().unwrap();

        assert_tripped_once(seen, &b, &events, &[failed], set);
    });
}

// ---------------------------------------------------------------------------
// 9. Setters racing decisions: each decision reads each limit once.
// ---------------------------------------------------------------------------

/// Two probe slots, one probe held with a fresh lease; `half_open_max_calls`
/// is lowered to 1 while another call asks. The ask sees one limit: before
/// the change it takes the second slot, after it is rejected. It never
/// reclaims the live probe's slot (whose record would then be stale).
#[test]
fn m9_set_half_open_max_calls_racing_an_ask() {
    model(&["ask before the change", "ask after the change"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(3));
        let held = hold(&b).expect("the first probe");
        let h = b.spawn(hold);
        b.step(|b| b.set_half_open_max_calls(1)).expect("valid");
        match h.join().unwrap() {
            Ok(second) => {
                assert!(second.is_probe());
                assert_counters(&b, 0, 2, 0);
                assert_eq!(b.record(second, Outcome::Ignored), Ok(Recorded::Counted));
                seen.hit("ask before the change");
            }
            Err(state) => {
                assert_eq!(state, HalfOpen);
                assert_counters(&b, 0, 1, 0);
                seen.hit("ask after the change");
            }
        }
        assert_eq!(
            b.record(held, Outcome::Success),
            Ok(Recorded::Counted),
            "the live probe counts"
        );
        assert_eq!(events.take(), []);
    });
}

/// One probe success counted of three needed, a second probe in flight;
/// `success_threshold` is lowered to 2 while that probe records success.
/// Either order closes the breaker exactly once, reported by the record or
/// by the setter.
#[test]
fn m9_set_success_threshold_racing_a_probe_success() {
    model(&["the record closed", "the setter closed"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| c.half_open_max_calls(2).success_threshold(3));
        let first = hold(&b).expect("a probe");
        let second = hold(&b).expect("a second probe");
        assert_eq!(b.record(first, Outcome::Success), Ok(Recorded::Counted));
        let h = b.spawn(move |r| r.step(|b| b.record(second, Outcome::Success)));
        let set = b.step(|b| b.set_success_threshold(2)).expect("valid");
        let recorded = h.join().unwrap().expect("our ticket");

        let closed = Some(t(HalfOpen, Closed));
        match (recorded.transition(), set) {
            (Some(_), None) => seen.hit("the record closed"),
            (None, Some(_)) => {
                assert_eq!(recorded, Recorded::Counted);
                seen.hit("the setter closed")
            }
            other => panic!("one close expected: {other:?}"),
        }
        assert!(recorded.transition() == closed || set == closed);
        assert_eq!(b.state(), Closed);
        assert_counters(&b, 0, 0, 0);
        assert_eq!(events.take(), [t(HalfOpen, Closed)]);
    });
}

// ---------------------------------------------------------------------------
// 10. No listener: the listener-free fast paths.
// ---------------------------------------------------------------------------

/// Closed with no failures and no listener, so a success is one load and no
/// write; another call's failure trips the breaker (`fail_max` 1) meanwhile.
/// The success counts only if it lands before the trip, and never undoes it.
#[test]
fn m10_quiet_success_racing_a_trip() {
    model(&["success counted", "success stale", "rejected open"], |seen| {
        let (b, _clock) = quiet_breaker(|c| c.fail_max(1));
        let h = b.spawn(|r| call(r, Outcome::Failure));
        let mine = call(&b, Outcome::Success);
        assert_eq!(
            h.join().unwrap(),
            Call::Closed(Recorded::Transitioned(t(Closed, Open)))
        );
        seen.hit(match mine {
            Call::Closed(Recorded::Counted) => "success counted",
            Call::Closed(Recorded::Stale) => "success stale",
            Call::Rejected(Open) => "rejected open",
            other => panic!("unexpected {other:?}"),
        });
        assert_eq!(b.state(), Open);
        assert_counters(&b, 0, 0, 0);
    });
}

/// Open with no listener, the clock moved past the reset timeout by the
/// main thread while another thread asks: its read-only rejection happens
/// only before the clock moved, and exactly one of the two asks becomes the
/// probe.
#[test]
fn m10_quiet_rejection_racing_the_reset_deadline() {
    model(
        &[
            "thread rejected open",
            "thread got the probe",
            "main got the probe",
        ],
        |seen| {
            let (b, clock) = quiet_breaker(|c| c.fail_max(1));
            assert!(b.open().is_some());
            let h = b.spawn(hold);
            b.pass();
            clock.advance(RESET);
            let mine = hold(&b);
            let theirs = h.join().unwrap();
            match (mine, theirs) {
                (Ok(p), Err(Open)) => {
                    assert!(p.is_probe());
                    seen.hit("thread rejected open")
                }
                (Err(HalfOpen), Ok(p)) => {
                    assert!(p.is_probe());
                    seen.hit("thread got the probe")
                }
                (Ok(p), Err(HalfOpen)) => {
                    assert!(p.is_probe());
                    seen.hit("main got the probe")
                }
                other => panic!("exactly one probe expected: {other:?}"),
            }
            assert_eq!(b.state(), HalfOpen);
            assert_counters(&b, 0, 1, 0);
        },
    );
}

// ---------------------------------------------------------------------------
// 11. Time advances during the race: a lease runs out against a late record.
// ---------------------------------------------------------------------------

/// A probe is held; one thread records it (late or not) while the main
/// thread moves the clock to the end of the lease and asks. The slot is
/// freed once: by the record (the ask takes it) or by the reclaim (the
/// record is stale). Never both, never neither.
#[test]
fn m11_lease_running_out_during_a_late_record() {
    model(&["record first", "reclaim first"], |seen| {
        let (b, clock) = quiet_breaker(|c| c.half_open_max_calls(1).success_threshold(2));
        assert!(b.half_open().is_some());
        let held = hold(&b).expect("the probe");
        let h = b.spawn(move |r| r.step(|b| b.record(held, Outcome::Ignored)));
        b.pass();
        clock.advance(LEASE);
        let asked = hold(&b);
        let late = h.join().unwrap().expect("our ticket");
        match (late, asked) {
            (Recorded::Counted, Ok(p)) => {
                assert!(p.is_probe());
                seen.hit("record first")
            }
            (Recorded::Stale, Ok(p)) => {
                assert!(p.is_probe());
                seen.hit("reclaim first")
            }
            // The record freed the slot only after the ask found it taken
            // with the lease not yet run out: impossible, the clock moved first.
            other => panic!("the slot must be freed exactly once: {other:?}"),
        }
        assert_eq!(b.state(), HalfOpen);
        assert_counters(&b, 0, 1, 0);
        assert_eq!(b.record(held, Outcome::Ignored), Ok(Recorded::Stale));
    });
}

// ---------------------------------------------------------------------------
// 12. The published lease end: a lease shortened while a probe is admitted.
// ---------------------------------------------------------------------------

/// One thread admits the one probe (publishing when its lease runs out)
/// while the main thread shortens the lease. Whichever lease the admission
/// read, the shorter one is in force once both are done: the read-only
/// rejection holds only until it runs out, then the slot is reclaimed.
#[test]
fn m12_lease_shortened_racing_a_probe_admission() {
    model(&["reclaimed after the shorter lease"], |seen| {
        let short = LEASE / 5;
        let (b, clock) = quiet_breaker(|c| c.half_open_max_calls(1).success_threshold(2));
        assert!(b.half_open().is_some());
        let h = b.spawn(hold);
        b.step(|b| b.set_probe_lease(short)).expect("valid");
        let held = h.join().unwrap().expect("the one probe");
        clock.advance(short - Duration::from_millis(1));
        assert_eq!(hold(&b), Err(HalfOpen), "the shorter lease has not run out");
        clock.advance(Duration::from_millis(1));
        let fresh = hold(&b).expect("the shorter lease ran out: the slot is reclaimed");
        assert!(fresh.is_probe());
        assert_eq!(b.record(held, Outcome::Ignored), Ok(Recorded::Stale));
        assert_counters(&b, 0, 1, 0);
        seen.hit("reclaimed after the shorter lease");
    });
}

/// A probe held past its lease; two calls ask at once, with no listener, so
/// each may be rejected read-only against the published lease end. Exactly
/// one reclaims the slot; the other is rejected, by the CAS loop or against
/// the deadline the reclaim published.
#[test]
fn m12_quiet_rejection_racing_a_reclaim() {
    model(&["main reclaimed", "thread reclaimed"], |seen| {
        let (b, clock) = quiet_breaker(|c| c.half_open_max_calls(1).success_threshold(2));
        assert!(b.half_open().is_some());
        let lost = hold(&b).expect("the one probe");
        clock.advance(LEASE);
        let h = b.spawn(hold);
        let mine = hold(&b);
        let theirs = h.join().unwrap();
        let fresh = match (mine, theirs) {
            (Ok(p), Err(HalfOpen)) => {
                seen.hit("main reclaimed");
                p
            }
            (Err(HalfOpen), Ok(p)) => {
                seen.hit("thread reclaimed");
                p
            }
            other => panic!("exactly one reclaim expected: {other:?}"),
        };
        assert!(fresh.is_probe());
        assert_eq!(hold(&b), Err(HalfOpen), "the new lease has not run out");
        assert_eq!(b.record(lost, Outcome::Ignored), Ok(Recorded::Stale));
        assert_counters(&b, 0, 1, 0);
    });
}
