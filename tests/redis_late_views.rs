//! A fleet view read before the mirror moved on its own (under
//! `FaultPolicy::Local`, while the store is away) is older than the mirror,
//! even when its version is the one the mirror last took: it never moves
//! the mirror back. Only a view read afterwards repairs it. The transport
//! here answers from the test (no Redis), so the late view's timing is the
//! test's, not the scheduler's.
#![cfg(feature = "redis")]

use breakerbox::redis::{FaultPolicy, RedisState};
use breakerbox::redis::{Script, StorageError, StorageErrorKind, Subscriber, Transport};
use breakerbox::{CircuitBreaker, Error, Outcome, Recorded, State};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The script's reply: code, the view's eleven fields (version first; a
/// closed fleet in generation 1, no open period), no transition, probe
/// slot 0.
fn reply(code: i64, version: i64, failures: i64) -> Vec<i64> {
    vec![code, version, 0, 1, failures, 0, 0, 0, 0, 0, 0, -1, -1, -1, 0]
}

const NOOP: i64 = 7;
const COUNTED: i64 = 4;
const STALE: i64 = 6;

/// A fleet that answers from the test.
#[derive(Default)]
struct Scripted {
    /// The endpoint's and the namespace's name: one per test, so no two
    /// tests share a hub.
    name: &'static str,
    /// Every run fails, as if the store were away (a held sync excepted).
    away: AtomicBool,
    /// The fleet's version and failure count.
    fleet: Mutex<(i64, i64)>,
    /// Syncs wait for `release` while set.
    hold_syncs: AtomicBool,
    syncs_held: AtomicUsize,
    release: Mutex<Option<Receiver<()>>>,
    /// The next record waits for `record_release`, then is answered stale.
    hold_records: AtomicBool,
    records_held: AtomicUsize,
    record_release: Mutex<Option<Receiver<()>>>,
    runs: AtomicUsize,
    /// Announcements the test hands the watcher's subscription.
    announcements: Mutex<Option<Receiver<String>>>,
    seen: Arc<Seen>,
}

/// What the subscription saw.
#[derive(Default)]
struct Seen {
    subscribed: AtomicBool,
    delivered: AtomicUsize,
    /// The watcher's reads of its subscription so far.
    reads: AtomicUsize,
}

fn away() -> StorageError {
    StorageError::new(StorageErrorKind::Timeout, &"the store is away")
}

impl Transport for Scripted {
    fn eval(
        &self,
        _: &Script,
        _: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let op = args.first().map(String::as_str);
        if op == Some("sync") && self.hold_syncs.swap(false, Ordering::SeqCst) {
            // Read now, answered later: the fleet as it is at the read.
            let (version, failures) = *self.fleet.lock().unwrap();
            self.syncs_held.fetch_add(1, Ordering::SeqCst);
            let release = self.release.lock().unwrap().take().expect("one held sync");
            release.recv_timeout(timeout).map_err(|_| away())?;
            return Ok(reply(NOOP, version, failures));
        }
        if op == Some("record") && self.hold_records.swap(false, Ordering::SeqCst) {
            // Begun now, answered later: the fleet as it is when it runs.
            let (version, failures) = *self.fleet.lock().unwrap();
            self.records_held.fetch_add(1, Ordering::SeqCst);
            let release = self
                .record_release
                .lock()
                .unwrap()
                .take()
                .expect("one held record");
            release.recv_timeout(timeout).map_err(|_| away())?;
            return Ok(reply(STALE, version, failures));
        }
        if self.away.load(Ordering::SeqCst) {
            return Err(away());
        }
        let mut fleet = self.fleet.lock().unwrap();
        if op == Some("record") {
            // A closed-state failure (fail_max is above 1 where recorded).
            fleet.0 += 1;
            fleet.1 += 1;
            return Ok(reply(COUNTED, fleet.0, fleet.1));
        }
        Ok(reply(NOOP, fleet.0, fleet.1))
    }

    fn subscriber(&self, _: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        let announcements = self.announcements.lock().unwrap().take();
        Ok(Box::new(Subscription {
            channel: format!("breakerbox:{{{}}}:events", self.name),
            announcements,
            seen: Arc::clone(&self.seen),
        }))
    }

    fn endpoint(&self) -> String {
        self.name.into()
    }
}

/// The watcher's subscription: delivers what the test sends.
struct Subscription {
    /// The namespace's channel (the protocol's naming).
    channel: String,
    announcements: Option<Receiver<String>>,
    seen: Arc<Seen>,
}

impl Subscriber for Subscription {
    fn subscribe(&mut self, _: &str, _: Duration) -> Result<(), StorageError> {
        self.seen.subscribed.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unsubscribe(&mut self, _: &str, _: Duration) -> Result<(), StorageError> {
        Ok(())
    }

    fn next_message(&mut self, wait: Duration) -> Result<Option<(String, String)>, StorageError> {
        self.seen.reads.fetch_add(1, Ordering::SeqCst);
        let Some(announcements) = &self.announcements else {
            std::thread::sleep(wait);
            return Ok(None);
        };
        match announcements.recv_timeout(wait) {
            Ok(payload) => {
                self.seen.delivered.fetch_add(1, Ordering::SeqCst);
                Ok(Some((self.channel.clone(), payload)))
            }
            Err(_) => Ok(None),
        }
    }
}

fn breaker(transport: &Arc<Scripted>, fail_max: u32, refresh: Duration) -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(fail_max)
        .reset_timeout(Duration::from_secs(3600))
        .shared(
            RedisState::with_transport(Arc::clone(transport) as Arc<dyn Transport>)
                .namespace(transport.name)
                .policy(FaultPolicy::Local)
                .refresh_interval(refresh)
                .command_timeout(Duration::from_secs(10))
                .require_reachable(),
        )
        .build()
        .unwrap()
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn assert_still_open(b: &CircuitBreaker) {
    assert_eq!(b.state(), State::Open, "a late view moved the mirror back");
    let out = b.call(|| Ok::<_, &str>(()));
    assert!(matches!(out, Err(Error::Rejected(_))), "{out:?}");
    assert_eq!(b.state(), State::Open);
}

#[test]
fn an_announcement_delivered_after_a_local_trip_does_not_close_the_mirror() {
    let (announce, announcements) = channel::<String>();
    let transport = Arc::new(Scripted {
        name: "late-announcement",
        fleet: Mutex::new((1, 0)),
        announcements: Mutex::new(Some(announcements)),
        ..Scripted::default()
    });
    let b = breaker(&transport, 2, Duration::from_secs(3600));
    wait_for("the watcher subscribed", || {
        transport.seen.subscribed.load(Ordering::SeqCst)
    });

    // The fleet counts a failure (version 2) and announces it; the
    // announcement waits in the subscription's socket meanwhile.
    assert!(b.call(|| Err::<(), _>("down")).is_err());
    assert_eq!(b.fail_counter(), 1);
    let late = "2 0 1 1 0 0 0 0 0 0".to_owned();

    // The store goes away: the next failure counts on the mirror and trips it.
    transport.away.store(true, Ordering::SeqCst);
    let out = b.call(|| Err::<(), _>("down"));
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");
    assert_eq!(b.state(), State::Open);

    // Now the announcement of version 2 (closed, one failure) arrives.
    let reads = transport.seen.reads.load(Ordering::SeqCst);
    announce.send(late).unwrap();
    wait_for("the watcher read it and went on", || {
        transport.seen.delivered.load(Ordering::SeqCst) == 1
            && transport.seen.reads.load(Ordering::SeqCst) > reads + 1
    });
    assert_still_open(&b);
    drop(b);
}

#[test]
fn a_sync_read_before_a_local_trip_and_answered_after_does_not_close_the_mirror() {
    let (release, released) = channel::<()>();
    let transport = Arc::new(Scripted {
        name: "late-sync",
        fleet: Mutex::new((1, 0)),
        release: Mutex::new(Some(released)),
        ..Scripted::default()
    });
    let b = breaker(&transport, 1, Duration::from_millis(20));
    // The watcher's next refresh reads the fleet (closed, version 1) and
    // its answer is held.
    transport.hold_syncs.store(true, Ordering::SeqCst);
    wait_for("a refresh read the fleet", || {
        transport.syncs_held.load(Ordering::SeqCst) == 1
    });

    // The store goes away: a failure counts on the mirror and trips it.
    transport.away.store(true, Ordering::SeqCst);
    let out = b.call(|| Err::<(), _>("down"));
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");
    assert_eq!(b.state(), State::Open);

    // The refresh's answer comes: the fleet as it was before the trip.
    let runs = transport.runs.load(Ordering::SeqCst);
    release.send(()).unwrap();
    wait_for("the watcher took the answer and ran again", || {
        transport.runs.load(Ordering::SeqCst) > runs
    });
    assert_still_open(&b);

    // The store is back: a refresh read from now on repairs the mirror.
    transport.away.store(false, Ordering::SeqCst);
    wait_for("a fresh read repaired the mirror", || b.state() == State::Closed);
    assert!(b.call(|| Ok::<_, &str>(())).is_ok());
    drop(b);
}

#[test]
fn a_newer_announcement_read_before_a_local_trip_does_not_close_the_mirror_either() {
    let (announce, announcements) = channel::<String>();
    let transport = Arc::new(Scripted {
        name: "late-newer-announcement",
        fleet: Mutex::new((1, 0)),
        announcements: Mutex::new(Some(announcements)),
        ..Scripted::default()
    });
    let b = breaker(&transport, 1, Duration::from_secs(3600));
    wait_for("the watcher subscribed", || {
        transport.seen.subscribed.load(Ordering::SeqCst)
    });

    // The store goes away: a failure counts on the mirror and trips it.
    transport.away.store(true, Ordering::SeqCst);
    let out = b.call(|| Err::<(), _>("down"));
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");

    // An announcement of a newer version (another process's write, closed)
    // arrives: when it was read is unknown, so it may predate the trip.
    let reads = transport.seen.reads.load(Ordering::SeqCst);
    announce.send("2 0 1 0 0 0 0 0 0 0".to_owned()).unwrap();
    wait_for("the watcher read it and went on", || {
        transport.seen.delivered.load(Ordering::SeqCst) == 1
            && transport.seen.reads.load(Ordering::SeqCst) > reads + 1
    });
    assert_still_open(&b);

    // Back: the recovery's read, made after the trip, repairs the mirror.
    *transport.fleet.lock().unwrap() = (2, 0);
    transport.away.store(false, Ordering::SeqCst);
    wait_for("a fresh read repaired the mirror", || b.state() == State::Closed);
}

#[test]
fn a_reply_to_a_run_begun_before_a_local_trip_does_not_close_the_mirror() {
    let (release, released) = channel::<()>();
    let transport = Arc::new(Scripted {
        name: "late-reply",
        fleet: Mutex::new((1, 0)),
        record_release: Mutex::new(Some(released)),
        ..Scripted::default()
    });
    let b = Arc::new(breaker(&transport, 1, Duration::from_secs(3600)));

    // One call's record is on its way to the fleet...
    transport.hold_records.store(true, Ordering::SeqCst);
    let early = b.acquire_ticket().unwrap();
    let recording = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || b.record(early, Outcome::Failure))
    };
    wait_for("the record reached the fleet", || {
        transport.records_held.load(Ordering::SeqCst) == 1
    });
    // ...when the store goes away for the next: it trips the mirror alone.
    transport.away.store(true, Ordering::SeqCst);
    let out = b.call(|| Err::<(), _>("down"));
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");

    // The first record's answer (the fleet as it was: closed) comes after.
    release.send(()).unwrap();
    assert_eq!(recording.join().unwrap(), Ok(Recorded::Stale));
    assert_still_open(&b);
}
