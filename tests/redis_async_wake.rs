//! An async call's round trip goes to the endpoint's I/O workers, and the
//! task that waits for it is always woken: when the reply comes, through the
//! waker of its latest poll, and when the transport panics. The transport
//! here answers from the test (no Redis): it holds each `record` until the
//! test releases it.
#![cfg(feature = "redis")]

use breakerbox::redis::{FaultPolicy, RedisState};
use breakerbox::redis::{Script, StorageError, StorageErrorKind, Subscriber, Transport};
use breakerbox::{CircuitBreaker, Error, State};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Answers `sync` with a closed fleet and holds each `record` until
/// released, then answers it counted (one failure), or panics.
struct Gated {
    release: Mutex<Receiver<()>>,
    records: AtomicUsize,
    panic: AtomicBool,
}

/// The script's reply: code, the view's eleven fields (version first; no
/// open period), no transition, probe slot 0.
fn reply(code: i64, version: i64, failures: i64) -> Vec<i64> {
    vec![code, version, 0, 1, failures, 0, 0, 0, 0, 0, 0, -1, -1, -1, 0]
}

impl Transport for Gated {
    fn eval(
        &self,
        _: &Script,
        _: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        if args.first().map(String::as_str) != Some("record") {
            return Ok(reply(7, 1, 0));
        }
        self.records.fetch_add(1, Ordering::SeqCst);
        let released = self.release.lock().unwrap().recv_timeout(timeout);
        if self.panic.load(Ordering::SeqCst) {
            panic!("a transport bug");
        }
        match released {
            Ok(()) => Ok(reply(4, 2, 1)),
            Err(_) => Err(StorageError::new(StorageErrorKind::Timeout, &"not released")),
        }
    }

    fn subscriber(&self, _: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        Err(StorageError::new(StorageErrorKind::Unreachable, &"no pub/sub"))
    }

    fn endpoint(&self) -> String {
        "gated".into()
    }
}

fn gated() -> (Arc<Gated>, Sender<()>) {
    let (tx, rx) = channel();
    let transport = Arc::new(Gated {
        release: Mutex::new(rx),
        records: AtomicUsize::new(0),
        panic: AtomicBool::new(false),
    });
    (transport, tx)
}

fn breaker(transport: Arc<Gated>) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(5)
        .shared(
            RedisState::with_transport(transport)
                .namespace("wake")
                .notifications(false)
                .policy(FaultPolicy::Local)
                .command_timeout(Duration::from_secs(10))
                .require_reachable(),
        )
        .build()
        .unwrap()
}

/// A waker that says on a channel that it was woken.
struct Signal(Mutex<Sender<&'static str>>, &'static str);

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(self.1);
    }
}

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_reply_wakes_the_waker_of_the_latest_poll() {
    let (transport, release) = gated();
    let b = breaker(Arc::clone(&transport));
    let (woken_tx, woken) = channel();
    let first = Waker::from(Arc::new(Signal(Mutex::new(woken_tx.clone()), "first")));
    let second = Waker::from(Arc::new(Signal(Mutex::new(woken_tx), "second")));

    let mut call = Box::pin(b.call_async(|| async { Err::<(), _>("down") }));
    assert!(
        poll(&mut call, &first).is_pending(),
        "the failure's record waits on the fleet"
    );
    // Polled again by another waker (the task moved, say): that one is woken.
    assert!(poll(&mut call, &second).is_pending());
    while transport.records.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    assert!(woken.try_recv().is_err(), "nothing woke before the reply");
    release.send(()).unwrap();
    assert_eq!(
        woken.recv_timeout(WAIT),
        Ok("second"),
        "the reply woke the latest waker"
    );
    assert!(woken.try_recv().is_err(), "woken once");
    match poll(&mut call, &second) {
        Poll::Ready(Err(Error::Failed { tripped, .. })) => assert!(!tripped),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.fail_counter(), 1, "the fleet's count, applied to the mirror");
    assert_eq!(
        transport.records.load(Ordering::SeqCst),
        1,
        "one record, sent once"
    );
}

#[test]
fn a_transport_that_panics_wakes_the_call_which_decides_by_its_policy() {
    let (transport, release) = gated();
    let b = breaker(Arc::clone(&transport));
    let (woken_tx, woken) = channel();
    let waker = Waker::from(Arc::new(Signal(Mutex::new(woken_tx), "call")));

    let mut call = Box::pin(b.call_async(|| async { Err::<(), _>("down") }));
    assert!(poll(&mut call, &waker).is_pending());
    transport.panic.store(true, Ordering::SeqCst);
    release.send(()).unwrap();
    assert_eq!(
        woken.recv_timeout(WAIT),
        Ok("call"),
        "woken though the transport panicked"
    );
    assert!(matches!(
        poll(&mut call, &waker),
        Poll::Ready(Err(Error::Failed { .. }))
    ));
    let health = b.storage_health().unwrap();
    assert!(!health.reachable, "the panic is a fault: {health:?}");
    assert_eq!(
        (b.state(), b.fail_counter()),
        (State::Closed, 1),
        "counted on the mirror (Local)"
    );
}

/// Answers as a half-open fleet under the failure-rate rule would (every
/// reply ends with the probe tally), keeping every run's arguments.
#[derive(Default)]
struct Probing {
    runs: Mutex<Vec<Vec<String>>>,
}

impl Transport for Probing {
    fn eval(&self, _: &Script, _: &str, args: &[String], _: Duration) -> Result<Vec<i64>, StorageError> {
        self.runs.lock().unwrap().push(args.to_vec());
        // code, v, s, g, f, opened, i, k, probe, b, n, period, from, to, slot, r, x, y
        Ok(match args.first().map(String::as_str) {
            Some("acquire") => vec![2, 2, 2, 1, 0, 0, 1, 0, 0, 1, 1, -1, -1, -1, 0, 0, 0, 0],
            // The probe recorded, slow: the episode ends, the tally stays.
            Some("record") => vec![4, 3, 2, 2, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, 0, 1, 0, 1],
            _ => vec![7, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, 0, 0, 0, 0],
        })
    }

    fn subscriber(&self, _: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        Err(StorageError::new(StorageErrorKind::Unreachable, &"no pub/sub"))
    }

    fn endpoint(&self) -> String {
        "probing".into()
    }
}

/// Polls `fut` on this thread until it is ready, parked between polls.
fn block_on<F: Future + Unpin>(mut fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    loop {
        if let Poll::Ready(out) = poll(&mut fut, &waker) {
            return out;
        }
        std::thread::park_timeout(WAIT);
    }
}

/// Under `HalfOpenRule::FailureRate` an async call's slow probe is
/// recorded at the fleet as slow (`ARGV[36]`, after the rule's thresholds),
/// through the round trip the task waits on; the reply's tally reaches
/// the mirror.
#[test]
fn an_async_slow_probe_tells_the_fleet_it_was_slow() {
    let transport = Arc::new(Probing::default());
    let clock = breakerbox::clock::ManualClock::new();
    let b = CircuitBreaker::builder()
        .half_open_rule(breakerbox::HalfOpenRule::FailureRate)
        .half_open_max_calls(2)
        .count_window(10)
        .slow_call_duration(Duration::from_millis(10))
        .slow_call_rate_threshold(50.0)
        .clock(clock.clone())
        .shared(
            RedisState::with_transport(Arc::clone(&transport) as Arc<dyn Transport>)
                .namespace("slow-probe")
                .notifications(false)
                .command_timeout(Duration::from_secs(10))
                .require_reachable(),
        )
        .build()
        .unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    let call = Box::pin(b.call_async(|| async {
        clock.advance(Duration::from_millis(20));
        Ok::<(), &str>(())
    }));
    assert!(block_on(call).is_ok());
    let runs = transport.runs.lock().unwrap().clone();
    let record = runs
        .iter()
        .find(|args| args[0] == "record")
        .expect("the probe's record reached the fleet");
    // ARGV[n] is args[n - 1]: the rule, its thresholds, and slow.
    assert_eq!(record[32..36], ["1", "5000", "5000", "1"], "{record:?}");
    assert!(
        runs.iter().all(|args| args.len() == 36 && args[32] == "1"),
        "every run carries the rule"
    );
    assert_eq!(
        (b.state(), b.success_counter(), b.probes_in_flight()),
        (State::HalfOpen, 1, 0),
        "the fleet's tally, mirrored"
    );
}
