//! Shared pieces of the loom models in `tests/`: a recording listener, a
//! breaker factory driven by a [`ManualClock`], and the model runner.
//!
//! Everything here exists only under `--cfg breakerbox_loom`; a normal build
//! of this crate is empty. The breaker under test is `breakerbox` itself,
//! built against loom's atomics through its `sync` facade.
#![cfg(breakerbox_loom)]
#![deny(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

use breakerbox::clock::ManualClock;
use breakerbox::{Builder, CircuitBreaker, Listener, State, Transition};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The preemption bound a model runs under unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise. Every bug the models are known to catch needs at most two
/// preemptions; a third costs about ten times the time.
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// The reset timeout every model's breaker starts with.
pub const RESET: Duration = Duration::from_millis(100);

/// The probe lease every model's breaker starts with.
pub const LEASE: Duration = Duration::from_millis(50);

/// Runs `f` under every interleaving loom explores within the preemption
/// bound. Everything loom tracks (the breaker, its clock) must be created
/// inside `f`.
///
/// `f` names the outcome class of each interleaving with [`Seen::hit`];
/// after the run, the classes seen must be exactly `expected`. That shows
/// the race was really explored both ways (and that no unforeseen outcome
/// slipped through an assertion-free path). Prints how many interleavings
/// were checked.
pub fn model<F>(expected: &[&'static str], f: F)
where
    F: Fn(&Seen) + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    let seen = Seen::default();
    let runs = Arc::new(AtomicUsize::new(0));
    {
        let (seen, runs) = (seen.clone(), runs.clone());
        builder.check(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            f(&seen);
        });
    }
    let seen = seen.0.lock().expect("no panic while held").clone();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    let name = std::thread::current().name().unwrap_or("model").to_owned();
    println!(
        "{name}: {} interleavings, outcomes {seen:?}",
        runs.load(Ordering::Relaxed)
    );
    assert_eq!(seen, expected, "outcome classes seen by {name}");
}

/// The outcome classes a model's interleavings fell into.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<BTreeSet<&'static str>>>);

impl Seen {
    /// Notes that this interleaving ended in outcome class `what`.
    pub fn hit(&self, what: &'static str) {
        self.0.lock().expect("no panic while held").insert(what);
    }
}

/// Shorthand for a [`Transition`].
pub fn t(from: State, to: State) -> Transition {
    Transition { from, to }
}

/// The transition events a breaker reported, in the order its listeners
/// ran. Listeners run after the CAS that made the transition, so two
/// transitions made by different threads may be pushed in either order;
/// [`Events::sorted`] compares them as a multiset.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Transition>>>);

impl Events {
    /// Takes every event reported so far.
    pub fn take(&self) -> Vec<Transition> {
        std::mem::take(&mut *self.0.lock().expect("listener never panics"))
    }

    /// Takes every event reported so far, in a canonical order.
    pub fn take_sorted(&self) -> Vec<Transition> {
        Self::sorted(self.take())
    }

    /// `events` in a canonical order, to compare reports from racing threads.
    pub fn sorted(mut events: Vec<Transition>) -> Vec<Transition> {
        events.sort_by_key(|e| (e.from as u8, e.to as u8));
        events
    }
}

impl Listener for Events {
    fn state_change(&self, _breaker: &CircuitBreaker, from: State, to: State) {
        self.0.lock().expect("listener never panics").push(t(from, to));
    }
}

/// A handle on the breaker under test, shared by the racing threads, with a
/// baton they pass between the breaker calls they race with.
///
/// Passing the baton is a relaxed read-modify-write of one shared atomic. It
/// orders nothing (relaxed: no happens-before edge, so it cannot hide an
/// ordering bug in the breaker), but it marks every call boundary as a point
/// where loom must consider running another thread. loom's partial-order
/// reduction keeps only the last access to an atomic; because each of the
/// breaker's compare-and-swaps is preceded by the same thread's own load of
/// the word, a plain load by another thread (a closed-state admission, a
/// no-op success, a rejection) is never reordered after that CAS on its own
/// (the limitation reported as tokio-rs/loom#166 and #392). The baton gives
/// loom those reorderings back at call granularity; [`model`]'s outcome
/// classes show they were reached.
#[derive(Clone)]
pub struct Racer {
    breaker: loom::sync::Arc<CircuitBreaker>,
    baton: loom::sync::Arc<loom::sync::atomic::AtomicUsize>,
}

impl std::ops::Deref for Racer {
    type Target = CircuitBreaker;

    fn deref(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Racer {
    /// Passes the baton: a call boundary another thread may slip into.
    pub fn pass(&self) {
        self.baton.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
    }

    /// Runs one breaker call between two baton passes.
    pub fn step<T>(&self, f: impl FnOnce(&CircuitBreaker) -> T) -> T {
        self.pass();
        let result = f(&self.breaker);
        self.pass();
        result
    }

    /// Runs `f` on a new loom thread with its own handle.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Racer) -> T + Send + 'static,
    ) -> loom::thread::JoinHandle<T> {
        let racer = self.clone();
        loom::thread::spawn(move || f(&racer))
    }

    /// Races `N` callers: spawns `N - 1` threads running `theirs`, then runs
    /// `mine` on this thread, then joins. The results come main first, then
    /// the threads in the order they were spawned, so a model can tell which
    /// racer got what.
    pub fn race<T: Send + 'static, const N: usize>(
        &self,
        mine: impl FnOnce(&Racer) -> T,
        theirs: impl FnOnce(&Racer) -> T + Clone + Send + 'static,
    ) -> [T; N] {
        let handles: Vec<_> = (1..N).map(|_| self.spawn(theirs.clone())).collect();
        let mut results = vec![mine(self)];
        results.extend(handles.into_iter().map(|h| h.join().unwrap()));
        results.try_into().ok().expect("one result per racer")
    }
}

/// The outcome class of a two-way race: `main` if the main thread's call is
/// the one that `main_won`, else `thread`.
pub fn main_or_thread(main_won: bool, main: &'static str, thread: &'static str) -> &'static str {
    if main_won {
        main
    } else {
        thread
    }
}

/// A breaker with a [`ManualClock`] standing at zero, [`RESET`], [`LEASE`]
/// and a recording listener, further configured by `configure`. Returns the
/// racers' handle, the clock and the events.
pub fn breaker(configure: impl FnOnce(Builder) -> Builder) -> (Racer, ManualClock, Events) {
    let clock = ManualClock::new();
    let events = Events::default();
    let builder = CircuitBreaker::builder()
        .name("loom")
        .reset_timeout(RESET)
        .probe_lease(LEASE)
        .clock(clock.clone())
        .listener(events.clone());
    (racer(configure(builder)), clock, events)
}

/// Like [`breaker`], without a listener: the listener-free fast paths (a
/// clean success that writes nothing, the read-only rejection) are the ones
/// taken.
pub fn quiet_breaker(configure: impl FnOnce(Builder) -> Builder) -> (Racer, ManualClock) {
    let clock = ManualClock::new();
    let builder = CircuitBreaker::builder()
        .name("loom")
        .reset_timeout(RESET)
        .probe_lease(LEASE)
        .clock(clock.clone());
    (racer(configure(builder)), clock)
}

fn racer(builder: Builder) -> Racer {
    Racer {
        breaker: loom::sync::Arc::new(builder.build().expect("valid configuration")),
        baton: loom::sync::Arc::new(loom::sync::atomic::AtomicUsize::new(0)),
    }
}

/// A breaker forced half-open before any thread starts, its own
/// closed → half-open event already taken.
pub fn half_open_breaker(configure: impl FnOnce(Builder) -> Builder) -> (Racer, ManualClock, Events) {
    let (racer, clock, events) = breaker(configure);
    assert_eq!(racer.half_open(), Some(t(State::Closed, State::HalfOpen)));
    assert_eq!(events.take(), [t(State::Closed, State::HalfOpen)]);
    (racer, clock, events)
}
