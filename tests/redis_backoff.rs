//! An exponential open backoff on a fleet-shared breaker: the fleet's script
//! grows each re-open's period, every mirror waits it out and reports it in
//! `retry_after`, and a close starts over. Two breakers with their own
//! connections stand for two processes on one namespace, against a real
//! Redis (BREAKERBOX_REDIS_URL). The server's clock rules the fleet, so the
//! test polls for each condition with a bounded wait.
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{FaultPolicy, RedisState};
use breakerbox::{Backoff, CircuitBreaker, Jitter, Outcome, Recorded, State, Ticket, Transition};
use redis_support::*;
use std::time::{Duration, Instant};

const RESET: Duration = Duration::from_millis(300);
const CAP: Duration = Duration::from_millis(900);
/// How long a mirror may take to hear of a change: an announcement on a
/// loaded two-core machine, not part of the consistency model.
const HEAR: Duration = Duration::from_secs(3);

/// What a failed probe does: re-open.
const REOPENED: Recorded = Recorded::Transitioned(Transition {
    from: State::HalfOpen,
    to: State::Open,
});

fn breaker(ns: &str, backoff: Backoff) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(RESET)
        .open_backoff(backoff)
        .shared(RedisState::connect(&url()).unwrap().namespace(ns))
        .build()
        .expect("an exponential backoff builds on a shared breaker")
}

/// Waits (bounded) for `b` to admit a probe; returns its ticket and how long
/// after `since` it came.
fn first_probe(b: &CircuitBreaker, since: Instant, limit: Duration) -> (Ticket, Duration) {
    let mut ticket = None;
    let waited = within(limit, || match b.acquire_ticket() {
        Ok(t) => {
            ticket = Some(t);
            true
        }
        Err(_) => false,
    });
    assert!(waited.is_some(), "no probe admitted within {limit:?}");
    let ticket = ticket.expect("admitted");
    assert!(ticket.is_probe(), "a probe, not a closed-state call");
    (ticket, since.elapsed())
}

/// Both mirrors report `period` as the open period, within [`HEAR`].
fn both_open_for(a: &CircuitBreaker, b: &CircuitBreaker, period: Duration) {
    for (name, breaker) in [("a", a), ("b", b)] {
        let heard = within(HEAR, || {
            // A call applies what the watcher brought; open_for reads the mirror.
            let _ = breaker
                .acquire_ticket()
                .map(|t| breaker.record(t, Outcome::Ignored));
            breaker.state() == State::Open && breaker.open_for() == Some(period)
        });
        assert!(
            heard.is_some(),
            "{name}: open for {:?} in {:?}, expected {period:?}",
            breaker.open_for(),
            breaker.state()
        );
    }
}

/// A rejection's retry-after, plus the time since the period began, is the
/// fleet's period (not the reset timeout).
fn retry_after_spans(b: &CircuitBreaker, began: Instant, period: Duration) {
    let rejected = b
        .try_acquire()
        .map(|p| p.ignore())
        .expect_err("rejected while open");
    let retry = rejected
        .retry_after()
        .expect("an open period's retry-after is known");
    // A rejection reads the coarse clock, which may lag a few ms.
    assert!(
        retry <= period + Duration::from_millis(10),
        "retry after {retry:?}, beyond the period {period:?}"
    );
    let spanned = retry + began.elapsed();
    assert!(
        spanned >= period - Duration::from_millis(20),
        "retry after {retry:?} {:?} into an open period of {period:?}",
        began.elapsed()
    );
}

/// multiplier 2, reset 300 ms, cap 900 ms: a trip opens for 300 ms, a failed
/// probe re-opens for 600 ms, the next for 900 ms (capped, not 1200), in both
/// processes; neither admits a probe before its period has passed; a close
/// starts over at 300 ms.
#[test]
fn a_fleet_grows_its_open_period_with_each_reopen_and_a_close_resets_it() {
    let ns = unique_namespace("backoff");
    let backoff = || Backoff::exponential(2.0, CAP);
    let a = breaker(&ns, backoff());
    let b = breaker(&ns, backoff());

    // A trip in a: the first period, the reset timeout.
    let began = Instant::now();
    let t = a.acquire_ticket().expect("closed");
    assert!(a.record(t, Outcome::Failure).unwrap().tripped());
    assert_eq!(a.open_for(), Some(RESET), "a's own trip");
    both_open_for(&a, &b, RESET);
    retry_after_spans(&b, began, RESET);

    // b's probe fails: the re-open lasts twice as long, for both.
    let (probe, after) = first_probe(&b, began, Duration::from_secs(5));
    assert!(after >= RESET - Duration::from_millis(5), "probe after {after:?}");
    let began = Instant::now();
    assert_eq!(b.record(probe, Outcome::Failure).unwrap(), REOPENED);
    let second = RESET * 2;
    assert_eq!(b.open_for(), Some(second), "b's re-open");
    both_open_for(&a, &b, second);
    retry_after_spans(&a, began, second);
    retry_after_spans(&b, began, second);

    // a's probe, not before 600 ms, fails: capped at 900 ms. Past the
    // reset timeout a's mirror still rejects alone, on the fleet's period:
    // polled every millisecond, it asks the fleet only once it has passed.
    let runs = script_runs(&url(), false);
    let mut polls_past_reset = 0;
    let waited = within(second - Duration::from_millis(30), || {
        if began.elapsed() > RESET + Duration::from_millis(20) {
            polls_past_reset += 1;
        }
        a.try_acquire().map(|p| p.ignore()).is_ok()
    });
    assert_eq!(waited, None, "nothing admitted before the period's end");
    let asked = script_runs(&url(), false) - runs;
    assert!(
        polls_past_reset >= 50,
        "{polls_past_reset} polls past the reset timeout"
    );
    assert!(
        asked < 20,
        "{asked} script runs for {polls_past_reset} rejections past the reset timeout"
    );
    let (probe, after) = first_probe(&a, began, Duration::from_secs(5));
    assert!(
        after >= second - Duration::from_millis(5),
        "a probe {after:?} into a period of {second:?}"
    );
    let began = Instant::now();
    assert_eq!(a.record(probe, Outcome::Failure).unwrap(), REOPENED);
    both_open_for(&a, &b, CAP);
    retry_after_spans(&b, began, CAP);

    // b's probe, not before 900 ms, succeeds: the fleet closes, for both.
    let (probe, after) = first_probe(&b, began, Duration::from_secs(5));
    assert!(
        after >= CAP - Duration::from_millis(5),
        "a probe {after:?} into a period of {CAP:?}"
    );
    assert!(matches!(
        b.record(probe, Outcome::Success).unwrap(),
        Recorded::Transitioned(_)
    ));
    assert!(
        within(HEAR, || {
            let _ = a.acquire_ticket().map(|t| a.record(t, Outcome::Ignored));
            a.state() == State::Closed
        })
        .is_some(),
        "a hears of the close"
    );

    // The next trip (in b) opens for the reset timeout again.
    let began = Instant::now();
    let t = b.acquire_ticket().expect("closed");
    assert!(b.record(t, Outcome::Failure).unwrap().tripped());
    both_open_for(&a, &b, RESET);
    let (_, after) = first_probe(&a, began, Duration::from_secs(5));
    assert!(after >= RESET - Duration::from_millis(5), "probe after {after:?}");
}

/// With jitter the script draws the period (from the random number the
/// opening process sends), and every process waits the same draw.
#[test]
fn a_jittered_period_is_the_same_for_the_whole_fleet() {
    let ns = unique_namespace("backoff-jitter");
    let base = Duration::from_secs(20);
    let backoff = || Backoff::exponential(1.0, Duration::ZERO).jitter(Jitter::Equal);
    let build = || {
        CircuitBreaker::builder()
            .fail_max(1)
            .reset_timeout(base)
            .open_backoff(backoff())
            .shared(RedisState::connect(&url()).unwrap().namespace(&ns))
            .build()
            .expect("builds")
    };
    let (a, b) = (build(), build());
    let mut draws = Vec::new();
    for _ in 0..4 {
        let t = a.acquire_ticket().expect("closed");
        assert!(a.record(t, Outcome::Failure).unwrap().tripped());
        let period = a.open_for().expect("open");
        assert!(
            (base / 2..=base).contains(&period),
            "equal jitter keeps the period in [{:?}, {base:?}]: {period:?}",
            base / 2
        );
        both_open_for(&a, &b, period);
        draws.push(period);
        assert!(a.close().is_some());
        assert!(
            within(HEAR, || {
                let _ = b.acquire_ticket().map(|t| b.record(t, Outcome::Ignored));
                b.state() == State::Closed
            })
            .is_some(),
            "b hears of the close"
        );
    }
    draws.dedup();
    assert!(draws.len() > 1, "four draws, all alike: {draws:?}");
}

/// Cut off from Redis under `FaultPolicy::Local`, a mirror decides alone, and
/// still on the fleet's period: past the reset timeout but inside the
/// period the fleet chose it admits nothing; past the period it probes.
#[test]
fn a_mirror_cut_off_from_the_fleet_waits_out_the_fleets_period() {
    let ns = unique_namespace("backoff-outage");
    let link = HostClient::new(&url());
    let a = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(RESET)
        .open_backoff(Backoff::exponential(2.0, CAP))
        .shared(
            RedisState::with_transport(link.clone())
                .namespace(&ns)
                .policy(FaultPolicy::Local)
                .notifications(false)
                .refresh_interval(Duration::from_millis(20))
                .max_backoff(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let t = a.acquire_ticket().expect("closed");
    assert!(a.record(t, Outcome::Failure).unwrap().tripped());
    let (probe, _) = first_probe(&a, Instant::now(), Duration::from_secs(5));
    let began = Instant::now();
    assert_eq!(a.record(probe, Outcome::Failure).unwrap(), REOPENED);
    let second = RESET * 2;
    assert_eq!(a.open_for(), Some(second));

    // The store goes away; the watcher's next refresh finds it gone.
    link.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        within(HEAR, || !a.storage_health().unwrap().reachable).is_some(),
        "the outage was noticed"
    );
    assert!(
        began.elapsed() < RESET,
        "noticed within the reset timeout ({:?})",
        began.elapsed()
    );
    let waited = within(second - began.elapsed() - Duration::from_millis(30), || {
        a.try_acquire().map(|p| p.ignore()).is_ok()
    });
    assert_eq!(waited, None, "a probe alone before the fleet's period ended");
    assert!(began.elapsed() > RESET, "polled past the reset timeout");
    let (_, after) = first_probe(&a, began, Duration::from_secs(5));
    assert!(
        after >= second - Duration::from_millis(5),
        "a probe alone {after:?} into {second:?}"
    );
}
