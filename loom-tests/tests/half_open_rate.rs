//! Loom models of the failure-rate half-open rule: concurrent probe records
//! under it decide in the state word's CAS, so exactly one of them makes the
//! transition and it is reported once. Run with `bash loom-tests/run.sh`.
#![cfg(breakerbox_loom)]

use breakerbox::{HalfOpenRule, Outcome, Recorded, State};
use breakerbox_loom_tests::{half_open_breaker, main_or_thread, model, t, Racer};

use State::{Closed, HalfOpen, Open};

/// Takes one probe before the race, as a raw ticket.
fn probe(r: &Racer) -> breakerbox::Ticket {
    let p = r.try_acquire().expect("a probe permit is free");
    assert!(p.is_probe());
    p.into_ticket()
}

/// Two probes permitted, judged at 50%: one thread records a success while
/// the other records a failure. Whichever records second decides (1 of 2
/// failed: re-open), exactly once; the first is told `Counted`.
#[test]
fn h1_concurrent_probes_decide_once() {
    model(&["main decided", "thread decided"], |seen| {
        let (b, _clock, events) = half_open_breaker(|c| {
            c.half_open_max_calls(2)
                .failure_rate_threshold(50.0)
                .half_open_rule(HalfOpenRule::FailureRate)
        });
        let (mine, theirs) = (probe(&b), probe(&b));
        let [m, th] = b.race(
            move |b| b.step(|b| b.record(mine, Outcome::Success).unwrap()),
            move |b| b.step(|b| b.record(theirs, Outcome::Failure).unwrap()),
        );
        let decided = |r: Recorded| r.transition() == Some(t(HalfOpen, Open));
        assert_eq!(
            usize::from(decided(m)) + usize::from(decided(th)),
            1,
            "one decision: {m:?} {th:?}"
        );
        assert!(m == Recorded::Counted || th == Recorded::Counted, "{m:?} {th:?}");
        seen.hit(main_or_thread(decided(m), "main decided", "thread decided"));
        assert_eq!(b.state(), Open);
        assert_eq!(events.take(), [t(HalfOpen, Open)]);
    });
}

/// Two probes permitted, both succeed at once: exactly one record closes
/// the breaker. The main thread then asks again: while the other probe is
/// in flight its permit is still taken (rejected, half-open, never a third
/// probe); after the close it is a closed-state call.
#[test]
fn h2_two_successes_and_an_ask_close_once() {
    model(&["rejected half-open", "admitted closed"], |seen| {
        let (b, _clock, events) =
            half_open_breaker(|c| c.half_open_max_calls(2).half_open_rule(HalfOpenRule::FailureRate));
        let (first, second) = (probe(&b), probe(&b));
        let thread = b.spawn(move |b| b.step(|b| b.record(first, Outcome::Success).unwrap()));
        let mine = b.step(|b| b.record(second, Outcome::Success).unwrap());
        let asked = b.step(|b| b.try_acquire().map(|p| (p.is_probe(), p.into_ticket())));
        let theirs = thread.join().unwrap();
        let closed = |r: Recorded| r.transition() == Some(t(HalfOpen, Closed));
        assert_eq!(usize::from(closed(mine)) + usize::from(closed(theirs)), 1);
        match asked {
            Err(r) => {
                assert_eq!(r.state, HalfOpen, "two permits spent or in flight");
                seen.hit("rejected half-open");
            }
            Ok((is_probe, ticket)) => {
                assert!(!is_probe, "never a third probe");
                assert_eq!(b.record(ticket, Outcome::Success), Ok(Recorded::Counted));
                seen.hit("admitted closed");
            }
        }
        assert_eq!(b.state(), Closed);
        assert_eq!(events.take(), [t(HalfOpen, Closed)]);
    });
}
