//! `call_async`: admission on first poll, one run per admission, cancellation
//! recorded as ignored, real tokio tasks racing for the half-open probe.

use breakerbox::clock::ManualClock;
use breakerbox::{CircuitBreaker, Error, Outcome, State};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

const RESET: Duration = Duration::from_secs(30);

fn breaker(clock: &ManualClock, fail_max: u32) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("async")
        .fail_max(fail_max)
        .reset_timeout(RESET)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Opens the breaker, then lets the reset timeout pass: the next call is the probe.
fn ready_for_probe(b: &CircuitBreaker, clock: &ManualClock) {
    b.open();
    clock.advance(RESET);
}

#[derive(Debug, PartialEq)]
struct Boom(&'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Boom {}

/// A future that counts its polls and resolves on its first one.
struct CountingPolls<'a> {
    polls: &'a AtomicUsize,
}

impl Future for CountingPolls<'_> {
    type Output = Result<u32, Boom>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(7))
    }
}

struct NoopWaker;
impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Polls once with a waker that does nothing: no runtime involved at all.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWaker));
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

#[test]
fn runs_on_no_runtime_and_asks_admission_only_when_polled() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    let built = AtomicUsize::new(0);
    let mut call = Box::pin(b.call_async(|| {
        built.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Boom>(1) }
    }));
    // Created but not polled: not admitted, nothing built.
    assert!(!call.is_admitted());
    b.open();
    match poll_once(&mut call) {
        Poll::Ready(Err(Error::Rejected(r))) => assert_eq!(r.state, State::Open),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        built.load(Ordering::SeqCst),
        0,
        "a rejected call must not build its future"
    );
}

#[tokio::test]
async fn rejected_call_never_builds_or_polls_the_future() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    b.open();

    let built = AtomicUsize::new(0);
    let err = b
        .call_async(|| {
            built.fetch_add(1, Ordering::SeqCst);
            async { Ok::<u32, Boom>(1) }
        })
        .await
        .unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(built.load(Ordering::SeqCst), 0);

    let polls = AtomicUsize::new(0);
    let err = b.call_future(CountingPolls { polls: &polls }).await.unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(
        polls.load(Ordering::SeqCst),
        0,
        "a rejected future must not be polled"
    );
}

#[tokio::test]
async fn after_the_reset_timeout_the_probe_runs_exactly_once() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    ready_for_probe(&b, &clock);

    let built = AtomicUsize::new(0);
    let runs = Arc::new(AtomicUsize::new(0));
    let value = b
        .call_async(|| {
            built.fetch_add(1, Ordering::SeqCst);
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok::<_, Boom>(5)
            }
        })
        .await
        .unwrap();
    assert_eq!(value, 5);
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the probe must run once, not twice"
    );
    assert_eq!(b.state(), State::Closed);

    let polls = AtomicUsize::new(0);
    assert_eq!(b.call_future(CountingPolls { polls: &polls }).await.unwrap(), 7);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn errors_are_classified_like_the_sync_call() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .fail_max(2)
        .clock(clock.clone())
        .exclude(|e: &Boom| e.0 == "not found")
        .ignore(|e: &Boom| e.0 == "cancelled by user")
        .build()
        .unwrap();

    let failed = |why: &'static str| b.call_async(move || async move { Err::<(), _>(Boom(why)) });

    let e = failed("timeout").await.unwrap_err();
    assert!(matches!(
        e,
        Error::Failed {
            error: Boom("timeout"),
            tripped: false,
            outcome: Outcome::Failure,
        }
    ));
    assert_eq!(b.fail_counter(), 1);

    // Excluded: the dependency answered, counts as success and resets the count.
    let e = failed("not found").await.unwrap_err();
    assert_eq!(e.outcome(), Some(Outcome::Success));
    assert_eq!(e.into_inner(), Some(Boom("not found")));
    assert_eq!(b.fail_counter(), 0);

    failed("timeout").await.unwrap_err();
    // Ignored: neither resets nor counts.
    let e = failed("cancelled by user").await.unwrap_err();
    assert_eq!(e.outcome(), Some(Outcome::Ignored));
    assert_eq!(b.fail_counter(), 1);

    let e = failed("timeout").await.unwrap_err();
    assert!(e.tripped(), "the second counted failure trips the breaker");
    assert_eq!(b.state(), State::Open);
}

#[tokio::test]
async fn a_cancelled_call_is_ignored_and_does_not_wedge_the_probe() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);

    // Closed: a call cancelled by a timeout does not count as a failure.
    let slow = b.call_async(std::future::pending::<Result<(), Boom>>);
    assert!(tokio::time::timeout(Duration::from_millis(5), slow)
        .await
        .is_err());
    assert_eq!(b.fail_counter(), 0);
    assert_eq!(b.state(), State::Closed);

    // Half-open: the cancelled probe frees its slot at once, without waiting
    // out the probe lease (the clock does not move).
    ready_for_probe(&b, &clock);
    let probe = b.call_async(std::future::pending::<Result<(), Boom>>);
    assert!(tokio::time::timeout(Duration::from_millis(5), probe)
        .await
        .is_err());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.probes_in_flight(), 0);

    let value = b.call_async(|| async { Ok::<_, Boom>(1) }).await.unwrap();
    assert_eq!(value, 1);
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test]
async fn on_cancel_can_count_a_cancelled_call_as_a_failure() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    ready_for_probe(&b, &clock);

    let probe = b
        .call_async(std::future::pending::<Result<(), Boom>>)
        .on_cancel(Outcome::Failure);
    assert!(tokio::time::timeout(Duration::from_millis(5), probe)
        .await
        .is_err());
    assert_eq!(
        b.state(),
        State::Open,
        "a probe cancelled as failure re-opens the breaker"
    );

    // Closed: a timeout counted as failure trips a fail_max of 1.
    b.close();
    let slow = b
        .call_async(std::future::pending::<Result<(), Boom>>)
        .on_cancel(Outcome::Failure);
    assert!(tokio::time::timeout(Duration::from_millis(5), slow)
        .await
        .is_err());
    assert_eq!(b.state(), State::Open);
}

#[tokio::test]
async fn a_future_dropped_unpolled_records_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    ready_for_probe(&b, &clock);
    let never_polled = b
        .call_async(|| async { Ok::<(), Boom>(()) })
        .on_cancel(Outcome::Failure);
    drop(never_polled);
    // Not admitted, so not even the open -> half-open step was taken.
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.probes_in_flight(), 0);
    b.call_async(|| async { Ok::<(), Boom>(()) }).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_future_counts_as_a_failure() {
    let clock = ManualClock::new();
    let b = Arc::new(breaker(&clock, 1));
    let task = tokio::spawn({
        let b = Arc::clone(&b);
        async move {
            b.call_async_owned(|| async {
                tokio::task::yield_now().await;
                if true {
                    panic!("the dependency client panicked");
                }
                Ok::<(), Boom>(())
            })
            .await
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(b.state(), State::Open, "a panic is a failure, not a cancellation");
}

/// `make()` itself panics, before any future exists: the executor catches
/// the panic and drops the call later, when the thread is no longer
/// panicking. That is a failure, not a cancellation.
#[test]
fn a_panic_building_the_future_counts_as_a_failure() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1);
    let mut call =
        Box::pin(b.call_async(|| -> std::future::Ready<Result<(), Boom>> {
            panic!("the client could not be built")
        }));
    let waker = Waker::from(Arc::new(NoopWaker));
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    assert!(polled.is_err(), "the panic reaches the executor");
    drop(call);
    assert_eq!(b.state(), State::Open, "a panic is a failure, not a cancellation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_tasks_race_for_the_single_half_open_probe() {
    const TASKS: usize = 16;
    let clock = ManualClock::new();
    let b = Arc::new(breaker(&clock, 1));

    for round in 0..20u32 {
        ready_for_probe(&b, &clock);
        let start = Arc::new(Barrier::new(TASKS));
        let admitted = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));

        let mut tasks = JoinSet::new();
        for _ in 0..TASKS {
            let (b, start, admitted, release) = (
                Arc::clone(&b),
                Arc::clone(&start),
                Arc::clone(&admitted),
                Arc::clone(&release),
            );
            tasks.spawn(async move {
                start.wait().await;
                b.call_async_owned(|| async move {
                    admitted.fetch_add(1, Ordering::SeqCst);
                    // Hold the probe until the test releases it.
                    let _permit = release.acquire().await.unwrap();
                    Ok::<_, Boom>(round)
                })
                .await
            });
        }

        // Every task but the probe is rejected while the probe is in flight.
        for _ in 0..TASKS - 1 {
            let joined = tokio::time::timeout(Duration::from_secs(10), tasks.join_next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: more than one call is running"));
            let result = joined.unwrap().unwrap();
            match result {
                Err(Error::Rejected(r)) => assert_eq!(r.state, State::HalfOpen),
                other => panic!("round {round}: expected a rejection, got {other:?}"),
            }
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1, "round {round}");
        assert_eq!(b.probes_in_flight(), 1);
        assert_eq!(b.state(), State::HalfOpen);

        release.add_permits(1);
        let probe = tasks.join_next().await.unwrap().unwrap();
        assert_eq!(probe.unwrap(), round);
        assert_eq!(
            b.state(),
            State::Closed,
            "round {round}: the probe's success closes the breaker"
        );
        assert!(tasks.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_probe_task_frees_the_slot_for_the_next_racer() {
    let clock = ManualClock::new();
    let b = Arc::new(breaker(&clock, 1));
    ready_for_probe(&b, &clock);

    let (admitted_tx, admitted_rx) = tokio::sync::oneshot::channel::<()>();
    let stuck = tokio::spawn({
        let b = Arc::clone(&b);
        async move {
            b.call_async_owned(|| async move {
                admitted_tx.send(()).unwrap();
                std::future::pending::<Result<(), Boom>>().await
            })
            .await
        }
    });
    admitted_rx.await.unwrap();
    assert_eq!(b.probes_in_flight(), 1);
    assert!(b
        .call_async(|| async { Ok::<(), Boom>(()) })
        .await
        .unwrap_err()
        .is_rejected());

    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(
        b.probes_in_flight(),
        0,
        "the aborted probe's slot is back at once"
    );
    assert_eq!(b.state(), State::HalfOpen);

    let racers: Vec<_> = (0..8)
        .map(|i| {
            let b = Arc::clone(&b);
            tokio::spawn(async move { b.call_async_owned(move || async move { Ok::<_, Boom>(i) }).await })
        })
        .collect();
    let mut ok = 0;
    for r in racers {
        if r.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 1, "a probe gets through after the abort");
    assert_eq!(b.state(), State::Closed);
}

/// A windowed breaker with slow calls: `call_async` times the call itself,
/// from admission to its end, on the breaker's clock.
#[tokio::test]
async fn call_async_times_the_call_for_the_slow_call_rate() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder()
        .count_window(10)
        .minimum_calls(2)
        .failure_rate_threshold(100.0)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(100.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    let slow_success = || {
        let clock = clock.clone();
        async move {
            clock.advance(Duration::from_millis(150));
            Ok::<_, Boom>(())
        }
    };
    b.call_async(slow_success).await.unwrap();
    assert_eq!(b.slow_call_rate(), None, "below the minimum of 2 calls");
    assert_eq!(b.window_calls(), Some(1));
    let fast = b.call_async(|| async { Ok::<_, Boom>(()) }).await;
    assert!(fast.is_ok());
    assert_eq!(b.slow_call_rate(), Some(50.0), "1 slow call of 2");
    b.call_async(slow_success).await.unwrap();
    assert_eq!(b.state(), State::Closed, "2 of 3 slow: below the 100% threshold");
    let b2 = CircuitBreaker::builder()
        .count_window(10)
        .minimum_calls(2)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(100.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    b2.call_async(slow_success).await.unwrap();
    b2.call_async(slow_success).await.unwrap();
    assert_eq!(
        b2.state(),
        State::Open,
        "every call slow: the slow-call rate trips it"
    );
}
