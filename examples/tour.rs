//! A narrated tour: one breaker guards a simulated flaky dependency.
//!
//! It trips, rejects fast, lets N racing threads fight for the single
//! half-open probe, recovers, and ends with the measured cost per call.
//!
//! Run with `cargo run --release --example tour`.

use breakerbox::{CircuitBreaker, Error, Listener, State};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const RESET_TIMEOUT: Duration = Duration::from_millis(200);
const RACERS: usize = 8;

/// A dependency that answers or fails on cue.
struct FlakyDependency {
    up: AtomicBool,
    calls: AtomicUsize,
}

impl FlakyDependency {
    fn query(&self) -> Result<&'static str, &'static str> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.up.load(Ordering::Relaxed) {
            Ok("row")
        } else {
            Err("connection refused")
        }
    }
}

/// Narrates every transition, as the thread that made it sees it.
struct Narrator {
    start: Instant,
}

impl Listener for Narrator {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        println!(
            "    [{:>6.1} ms] breaker '{}' {from} -> {to}",
            self.start.elapsed().as_secs_f64() * 1e3,
            breaker.name()
        );
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// N threads line up behind a barrier and ask for a permit at the same
/// instant. The winner holds the probe for a moment, then runs the query.
fn race_for_the_probe(breaker: &Arc<CircuitBreaker>, db: &Arc<FlakyDependency>) {
    let barrier = Arc::new(Barrier::new(RACERS));
    let admitted = Arc::new(AtomicUsize::new(0));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (breaker, db, barrier, admitted) =
                (breaker.clone(), db.clone(), barrier.clone(), admitted.clone());
            thread::spawn(move || {
                barrier.wait();
                match breaker.try_acquire() {
                    Ok(permit) => {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        println!("    thread {i}: admitted as the probe");
                        thread::sleep(Duration::from_millis(20));
                        // Said before recording, because recording is what
                        // moves the breaker (and prints the transition).
                        match db.query() {
                            Ok(_) => {
                                println!("    thread {i}: probe succeeded");
                                let _ = permit.success();
                            }
                            Err(e) => {
                                println!("    thread {i}: probe failed: {e}");
                                let _ = permit.failure();
                            }
                        }
                    }
                    Err(rejected) => println!("    thread {i}: rejected ({rejected})"),
                }
            })
        })
        .collect();
    for racer in racers {
        racer.join().expect("racer thread");
    }
    println!(
        "    => {} of {RACERS} racing threads were admitted",
        admitted.load(Ordering::SeqCst)
    );
}

fn ns_per_call(calls: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn main() {
    let db = Arc::new(FlakyDependency {
        up: AtomicBool::new(true),
        calls: AtomicUsize::new(0),
    });
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .name("orders-db")
            .fail_max(5)
            .reset_timeout(RESET_TIMEOUT)
            .listener(Narrator {
                start: Instant::now(),
            })
            .build()
            .expect("valid configuration"),
    );
    println!(
        "breakerbox tour: '{}' trips after {} consecutive failures and waits {:?} before one probe",
        breaker.name(),
        breaker.fail_max(),
        breaker.reset_timeout()
    );

    section("1. The dependency is healthy");
    let ok = (0..1000).filter(|_| breaker.call(|| db.query()).is_ok()).count();
    println!("    {ok} of 1000 calls succeeded; state: {}", breaker.state());

    section("2. The dependency goes down");
    db.up.store(false, Ordering::Relaxed);
    for call in 1.. {
        match breaker.call(|| db.query()) {
            Err(Error::Failed {
                error,
                tripped: false,
                ..
            }) => println!(
                "    call {call}: failed: {error}; consecutive failures: {} of {}",
                breaker.fail_counter(),
                breaker.fail_max()
            ),
            Err(Error::Failed {
                error, tripped: true, ..
            }) => {
                // Open now: the count restarts from zero when the breaker closes.
                println!(
                    "    call {call}: failed: {error}; failure {call} of {} in a row tripped the breaker",
                    breaker.fail_max()
                );
                println!("    (the call still got its own error back, whole)");
                break;
            }
            other => panic!("unexpected result while the dependency is down: {other:?}"),
        }
    }

    section("3. Open: calls fail fast instead of piling up timeouts");
    let before = db.calls.load(Ordering::Relaxed);
    let start = Instant::now();
    let rejected = (0..100_000)
        .filter(|_| breaker.call(|| db.query()).is_err())
        .count();
    println!(
        "    {rejected} calls rejected in {:.2} ms; the dependency saw {} of them",
        start.elapsed().as_secs_f64() * 1e3,
        db.calls.load(Ordering::Relaxed) - before
    );

    section("4. Reset timeout passes; the dependency is still down");
    thread::sleep(RESET_TIMEOUT);
    race_for_the_probe(&breaker, &db);
    println!("    state: {}", breaker.state());

    section("5. The dependency recovers; the next probe closes the breaker");
    db.up.store(true, Ordering::Relaxed);
    thread::sleep(RESET_TIMEOUT);
    race_for_the_probe(&breaker, &db);
    println!("    state: {}", breaker.state());
    assert_eq!(breaker.state(), State::Closed, "the tour ends recovered");

    section("6. What a call costs (this machine, this run)");
    let quiet = CircuitBreaker::builder()
        .name("bench")
        .build()
        .expect("valid configuration");
    let closed = ns_per_call(10_000_000, || {
        let permit = quiet.try_acquire().expect("closed");
        black_box(permit.success());
    });
    let wrapped = ns_per_call(10_000_000, || {
        black_box(quiet.call(|| Ok::<_, ()>(black_box(1))).ok());
    });
    quiet.open();
    let open = ns_per_call(10_000_000, || {
        black_box(quiet.try_acquire().is_err());
    });
    println!("    closed, acquire + success:  {closed:>6.2} ns/call");
    println!("    closed, call() wrapper:      {wrapped:>6.2} ns/call");
    println!("    open, rejection:             {open:>6.2} ns/call");
}
