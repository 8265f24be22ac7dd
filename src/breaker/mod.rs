//! The circuit breaker and its permits.

use crate::breaker::backend::{Backend, Core, Plan};
use crate::breaker::builder::{Builder, Classifier};
use crate::breaker::error::{Error, Rejected};
use crate::breaker::listener::Listeners;
use crate::breaker::name::Name;
use crate::machine::clock::{duration_to_ms, ClockSource};
use crate::machine::config_error::ConfigError;
use crate::machine::events::Events;
use crate::machine::settings::{self, NoBackoff, Settings};
use crate::machine::state::{Acquire, LimitSource, Outcome, Recorded, State, StateCell, Ticket, Transition};
use std::any::Any;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

pub(crate) mod backend;
pub(crate) mod builder;
pub(crate) mod error;
pub(crate) mod listener;
pub(crate) mod name;
mod policy;
mod poll;
pub(crate) use policy::PolicyConfig;
pub use policy::{HalfOpenRule, Mode, TimedPermit};

/// A circuit breaker whose state is one atomic word, changed lock-free.
///
/// `Send + Sync`; share it by reference, `Arc` or `static`. Once built, a
/// breaker whose state is in memory takes no lock and allocates nothing on
/// any call (`tests/alloc.rs`). A breaker shared through Redis (the `redis`
/// feature) keeps its healthy paths the same, but a call that goes to Redis
/// takes a pooled connection under a lock, allocates, and waits on the
/// network for up to its command timeout. Its async calls (and the tower
/// layer) hand that wait to the endpoint's I/O workers instead of blocking
/// the polling thread (see [`crate::future`]).
///
/// ```
/// use breakerbox::{CircuitBreaker, State};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .name("db")
///     .fail_max(2)
///     .reset_timeout(Duration::from_secs(30))
///     .build()
///     .unwrap();
///
/// for _ in 0..2 {
///     let _ = breaker.call(|| Err::<(), _>("connection refused"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(breaker.call(|| Ok::<_, &str>(1)).unwrap_err().is_rejected());
/// ```
pub struct CircuitBreaker {
    state: StateCell,
    settings: Settings,
    clock: ClockSource,
    listeners: Listeners,
    classifier: Classifier,
    /// Interned: every rejection carries it.
    name: &'static Name,
    /// Marks this breaker's tickets, so foreign or forged ones are refused.
    tag: u32,
    /// Where the state lives (for a shared breaker, `state` is its local
    /// mirror). Consulted only on the cold paths.
    backend: Backend,
    /// Rate window, backoff, shadow mode; `None` for the consecutive rule.
    /// Shared with a fleet's flusher, which reads the window's counts.
    policy: Option<std::sync::Arc<policy::Policy>>,
    /// No listeners and no policy: a clean success needs nothing but a load,
    /// and a cold path has nothing to tell.
    plain: bool,
}

/// A ticket that this breaker did not issue, or bits that are no ticket at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTicket;

impl fmt::Display for InvalidTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ticket was not issued by this circuit breaker")
    }
}

impl std::error::Error for InvalidTicket {}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Builder::default()
            .build()
            .expect("the default configuration is valid")
    }
}

fn random_tag() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() as u32 & crate::breaker::backend::TAG_BITS).max(1)
}

impl CircuitBreaker {
    /// A builder with the defaults: `fail_max` 5, `reset_timeout` 60 s,
    /// `success_threshold` 1, `half_open_max_calls` 1.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A breaker backed as `plan` says; a shared one syncs first (bounded
    /// by the store's timeouts; a failure is reported, not fatal).
    pub(crate) fn from_parts(
        name: String,
        settings: Settings,
        clock: ClockSource,
        listeners: Listeners,
        classifier: Classifier,
        plan: Plan,
    ) -> Result<Self, ConfigError> {
        let mut breaker = CircuitBreaker {
            plain: listeners.is_empty(),
            policy: None,
            state: StateCell::new(),
            settings,
            clock,
            listeners,
            classifier,
            name: Name::intern(name),
            tag: random_tag(),
            backend: Backend::Local,
        };
        let mut events = Events::default();
        breaker.backend = plan.start(breaker.name.as_str(), breaker.core(), &mut events)?;
        breaker.report(events);
        Ok(breaker)
    }

    #[inline]
    fn core(&self) -> Core<'_> {
        Core {
            cell: &self.state,
            settings: &self.settings,
            clock: &self.clock,
            tag: self.tag,
        }
    }

    /// Tells the listeners what a cold path did: the one place transitions
    /// are reported, for every backend, once each.
    #[inline]
    fn report(&self, events: Events) {
        if self.plain || events.is_empty() {
            return;
        }
        self.report_events(events);
    }

    #[inline(never)]
    fn report_events(&self, events: Events) {
        if let Some(p) = &self.policy {
            events.transitions().for_each(|t| self.on_transition(p, t));
        }
        if self.listeners.is_empty() {
            return;
        }
        events.drain(
            |error| self.listeners.notify(|l| l.storage_error(self, error)),
            |t| self.listeners.notify(|l| l.state_change(self, t.from, t.to)),
        );
    }

    /// Runs `op` if the breaker admits it and records how it ended.
    ///
    /// An error is classified by the builder's `ignore` and `exclude`
    /// predicates, else counts as a failure; it is returned whole in
    /// [`Error::Failed`], which also says how it was counted and whether
    /// this call tripped the breaker. A panic in `op` counts as a failure and
    /// keeps unwinding.
    ///
    /// `E: 'static` because the predicates find an error by its type, through
    /// [`std::any::Any`], which Rust offers only for types that borrow
    /// nothing. An error that borrows (a `&str` sliced from a local
    /// `String`) fails to compile with E0597 ("borrowed value does not live
    /// long enough") pointing at the borrow: return an owned error instead
    /// (`.map_err(|e| e.to_string())`), or a `&'static str`.
    pub fn call<T, E: 'static>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, Error<E>> {
        let permit = self.try_acquire().map_err(Error::Rejected)?;
        let started_ms = if self.plain { None } else { self.call_started_ms() };
        match op() {
            Ok(value) => {
                let _ = self.finish(permit, Outcome::Success, started_ms);
                Ok(value)
            }
            Err(error) => {
                let outcome = self.classify(&error);
                let recorded = self.finish(permit, outcome, started_ms);
                Err(Error::Failed {
                    error,
                    tripped: recorded.tripped(),
                    outcome,
                })
            }
        }
    }

    #[inline]
    fn finish(&self, permit: Permit<'_>, outcome: Outcome, started_ms: Option<u64>) -> Recorded {
        match started_ms {
            None => permit.record(outcome),
            Some(s) => {
                let elapsed = self.clock.precise_ms().saturating_sub(s);
                permit.record_timed(outcome, Duration::from_millis(elapsed))
            }
        }
    }

    /// How the builder's predicates classify `error`.
    pub fn classify<E: 'static>(&self, error: &E) -> Outcome {
        self.classifier.classify(error as &dyn Any)
    }

    /// Asks to run one call. In the closed state this is one atomic load.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.acquire_ticket().map(|ticket| Permit {
            breaker: self,
            ticket,
        })
    }

    /// Like [`CircuitBreaker::try_acquire`], but returns the raw [`Ticket`]
    /// for callers that cannot hold a borrowing [`Permit`] (FFI, futures
    /// owning an `Arc`). Record it with [`CircuitBreaker::record`]; a ticket
    /// never recorded is not counted as a failure (a probe's slot comes back
    /// after the probe lease).
    #[inline]
    pub fn acquire_ticket(&self) -> Result<Ticket, Rejected> {
        if !self.listeners.is_empty() {
            self.notify_before_call();
        }
        if self.backend.has_news() {
            self.catch_up();
        }
        match self.state.acquire_closed() {
            Some(ticket) => Ok(ticket.with_tag(self.tag)),
            None => self.acquire_not_closed(),
        }
    }

    /// Rejections (the bulk of calls while open) are decided with one load
    /// and a coarse clock reading; anything else takes the CAS loop.
    #[inline(never)]
    fn acquire_not_closed(&self) -> Result<Ticket, Rejected> {
        if !self.plain {
            return self.acquire_not_plain();
        }
        // Plain: no backoff to look up and nobody to tell.
        match self.backend.rejects(self.core(), &NoBackoff(&self.settings)) {
            Some((state, left_ms)) => Err(self.rejection(state, left_ms)),
            None => self.acquire_slow(),
        }
    }

    #[inline(never)]
    fn acquire_not_plain(&self) -> Result<Ticket, Rejected> {
        match self.backend.rejects(self.core(), &self.settings) {
            Some((state, left_ms)) => self.reject(state, left_ms),
            None => self.acquire_slow(),
        }
    }

    /// `left_ms`: the time left to the deadline by the decision's own clock
    /// reading (`u64::MAX`: not known); nothing more is read here.
    #[inline]
    fn rejection(&self, state: State, left_ms: u64) -> Rejected {
        Rejected::new(state, self.name, self.backend.fails_closed()).with_retry_after_ms(left_ms)
    }

    /// A rejection on a breaker that is not plain: a shadow mode admits it,
    /// listeners hear of it.
    fn reject(&self, state: State, left_ms: u64) -> Result<Ticket, Rejected> {
        if let Some(ticket) = self.shadow_admit(state) {
            return Ok(ticket);
        }
        if !self.listeners.is_empty() {
            self.notify_rejected(state);
        }
        Err(self.rejection(state, left_ms))
    }

    /// Applies what a shared breaker's fleet announced.
    #[cold]
    #[inline(never)]
    fn catch_up(&self) {
        let mut events = Events::default();
        self.backend.catch_up(self.core(), &mut events);
        self.report(events);
    }

    #[cold]
    #[inline(never)]
    fn notify_before_call(&self) {
        self.listeners.notify(|l| l.before_call(self));
    }

    // Not `#[cold]`: an open breaker's rejections all come through here.
    #[inline(never)]
    fn acquire_slow(&self) -> Result<Ticket, Rejected> {
        let mut events = Events::default();
        let decision = self.backend.acquire(self.core(), &mut events);
        self.acquired(decision, events, |ticket| {
            let _ = self.record_valid(ticket, Outcome::Ignored);
        })
    }

    /// What the caller gets of a backend's decision, once its events are
    /// told; `release` frees a ticket the caller never got.
    #[inline(always)]
    fn acquired(
        &self,
        decision: Acquire,
        events: Events,
        release: impl FnOnce(Ticket),
    ) -> Result<Ticket, Rejected> {
        match decision {
            Acquire::Admitted { ticket, .. } => {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.report(events))) {
                    // The caller never gets this ticket: free its probe slot.
                    release(ticket);
                    resume_unwind(panic);
                }
                Ok(ticket)
            }
            Acquire::Rejected(state) => {
                self.report(events);
                let left_ms = self.left_after_rejection(state);
                match self.plain {
                    true => Err(self.rejection(state, left_ms)),
                    false => self.reject(state, left_ms),
                }
            }
        }
    }

    /// The time left for a rejection the CAS loop or a fleet decided: what
    /// the state word (a shared breaker's mirror) says now, if it still
    /// rejects in `state` and no fault policy refused; else not known.
    #[cold]
    fn left_after_rejection(&self, state: State) -> u64 {
        if self.backend.fails_closed() {
            return u64::MAX;
        }
        match self.state.rejects(&self.settings, &mut self.clock.lazy()) {
            Some((now_state, left_ms)) if now_state == state => left_ms,
            _ => u64::MAX,
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_rejected(&self, state: State) {
        self.listeners.notify(|l| l.rejected(self, state));
    }

    /// Records how the call admitted with `ticket` ended.
    ///
    /// A ticket from an ended episode (or a probe recorded twice, within the
    /// limit [`Recorded::Stale`] states) returns `Ok(Recorded::Stale)` and
    /// changes nothing; bits this breaker never issued return [`InvalidTicket`].
    #[inline]
    pub fn record(&self, ticket: Ticket, outcome: Outcome) -> Result<Recorded, InvalidTicket> {
        if !self.backend.issued(ticket, self.tag) {
            return Err(InvalidTicket);
        }
        Ok(self.record_valid(ticket, outcome))
    }

    /// A clean success with no listeners returns without a call; everything
    /// else goes out of line, so this inlines small into every caller.
    #[inline]
    fn record_valid(&self, ticket: Ticket, outcome: Outcome) -> Recorded {
        if outcome == Outcome::Success && self.success_needs_nothing(ticket) {
            return Recorded::Counted;
        }
        self.record_and_report(ticket, outcome)
    }

    /// A clean success: one load for a plain breaker; a windowed one adds
    /// the call to its window on its own stripe.
    #[inline]
    fn success_needs_nothing(&self, ticket: Ticket) -> bool {
        match self.plain {
            true => self.state.success_is_noop(ticket),
            false => self.window_success(ticket),
        }
    }

    #[inline(never)]
    fn record_and_report(&self, ticket: Ticket, outcome: Outcome) -> Recorded {
        if !self.plain {
            return self.record_not_plain(ticket, outcome);
        }
        // Nobody to tell: the events are dropped.
        let mut events = Events::default();
        self.backend.record(self.core(), ticket, outcome, &mut events)
    }

    #[inline(never)]
    fn record_not_plain(&self, ticket: Ticket, outcome: Outcome) -> Recorded {
        if self.policy.is_some() {
            return self.record_with_policy(ticket, outcome, None);
        }
        // Checked again for breakers with listeners: a clean success must not
        // take the slow path, which for a shared breaker is a round trip.
        if outcome == Outcome::Success && self.state.success_is_noop(ticket) {
            self.report_outcome(outcome);
            return Recorded::Counted;
        }
        let mut events = Events::default();
        let recorded = self.backend.record(self.core(), ticket, outcome, &mut events);
        self.report_record(recorded, outcome, events)
    }

    /// Tells what a record did: the outcome to the listeners, then its events.
    /// Always inlined: out of line, every failure paid for moving `events`.
    #[inline(always)]
    fn report_record(&self, recorded: Recorded, outcome: Outcome, events: Events) -> Recorded {
        if !self.listeners.is_empty() && recorded != Recorded::Stale {
            // A panicking outcome listener must not hide the transition: it
            // is reported before the panic goes on.
            let reported = catch_unwind(AssertUnwindSafe(|| self.report_outcome(outcome)));
            self.report(events);
            if let Err(panic) = reported {
                resume_unwind(panic);
            }
            return recorded;
        }
        self.report(events);
        recorded
    }

    fn report_outcome(&self, outcome: Outcome) {
        self.listeners.notify(|l| match outcome {
            Outcome::Success => l.success(self),
            Outcome::Failure => l.failure(self),
            Outcome::Ignored => l.ignored(self),
        });
    }

    fn force(&self, target: State) -> Option<Transition> {
        let mut events = Events::default();
        let transition = self.backend.force(self.core(), target, &mut events);
        self.report(events);
        transition
    }

    /// Forces the breaker open now; it half-opens after the reset timeout.
    /// Already open: nothing changes.
    pub fn open(&self) -> Option<Transition> {
        self.force(State::Open)
    }

    /// Forces the breaker half-open, with every probe slot free.
    /// Already half-open: nothing changes.
    pub fn half_open(&self) -> Option<Transition> {
        self.force(State::HalfOpen)
    }

    /// Forces the breaker closed with a zero failure count.
    pub fn close(&self) -> Option<Transition> {
        self.force(State::Closed)
    }

    fn apply_setting(&self, store: impl FnOnce(&Settings)) -> Option<Transition> {
        store(&self.settings);
        let mut events = Events::default();
        let transition = self.backend.reconcile(self.core(), &mut events);
        self.report(events);
        transition
    }

    /// Sets `fail_max` for the next decision. If the closed breaker already
    /// has that many failures it trips now (the transition is returned).
    pub fn set_fail_max(&self, fail_max: u32) -> Result<Option<Transition>, ConfigError> {
        let value = settings::check_fail_max(fail_max)?;
        Ok(self.apply_setting(|s| s.set_fail_max(value)))
    }

    /// Sets `success_threshold` for the next decision. If the half-open
    /// breaker already has that many successes it closes now.
    pub fn set_success_threshold(&self, success_threshold: u32) -> Result<Option<Transition>, ConfigError> {
        let value = self.settings.check_success_threshold(success_threshold)?;
        Ok(self.apply_setting(|s| s.set_success_threshold(value)))
    }

    /// Sets how many probes half-open admits at once, for the next decision.
    /// Under [`HalfOpenRule::FailureRate`] (at most 31 there) it is the
    /// number of probes that decide: a half-open breaker that has already
    /// recorded that many decides now.
    pub fn set_half_open_max_calls(&self, half_open_max_calls: u32) -> Result<(), ConfigError> {
        let value = self.settings.check_half_open_max_calls(half_open_max_calls)?;
        match self.settings.decides_probes_by_rate() {
            true => {
                let _ = self.apply_setting(|s| s.set_half_open_max_calls(value));
            }
            false => self.settings.set_half_open_max_calls(value),
        }
        Ok(())
    }

    /// Sets the reset timeout; an open breaker measures it from when it
    /// opened. Every duration is valid (see [`Builder::reset_timeout`]), so
    /// this returns `Ok` today; it returns a `Result` like every setter.
    pub fn set_reset_timeout(&self, reset_timeout: Duration) -> Result<(), ConfigError> {
        self.settings.set_reset_timeout_ms(duration_to_ms(reset_timeout));
        self.state.lease_changed();
        Ok(())
    }

    /// Sets the probe lease (see [`Builder::probe_lease`]).
    pub fn set_probe_lease(&self, lease: Duration) -> Result<(), ConfigError> {
        let ms = settings::check_probe_lease(lease)?;
        self.settings.set_probe_lease_ms(ms);
        self.state.lease_changed();
        Ok(())
    }

    /// The word as the getters report it: for a shared breaker, with what
    /// its fleet announced. A getter changes nothing and runs no listener.
    fn snapshot(&self) -> crate::machine::state::Snapshot {
        self.backend.peek(self.core())
    }

    /// The current state. An open breaker whose timeout has passed still
    /// reports `Open` until a call asks for a permit.
    pub fn state(&self) -> State {
        self.snapshot().state()
    }

    /// Consecutive failures counted in the closed state (0 in other states).
    pub fn fail_counter(&self) -> u32 {
        self.snapshot().failures()
    }

    /// Probe successes counted in the half-open state (0 in other states).
    pub fn success_counter(&self) -> u32 {
        let s = self.snapshot();
        match self.settings.decides_probes_by_rate() {
            true if s.state() == State::HalfOpen => s.tally().recorded - s.tally().failures,
            true => 0,
            false => s.successes(),
        }
    }

    /// Probe failures counted in the half-open state under
    /// [`HalfOpenRule::FailureRate`] (0 in other states and under the
    /// successes rule, where the first failure re-opens).
    pub fn probe_failure_counter(&self) -> u32 {
        let s = self.snapshot();
        match self.settings.decides_probes_by_rate() && s.state() == State::HalfOpen {
            true => s.tally().failures,
            false => 0,
        }
    }

    /// Probes admitted in the half-open state and not yet recorded.
    pub fn probes_in_flight(&self) -> u32 {
        self.snapshot().in_flight()
    }

    /// How the store that shares this breaker's state is doing: reachable
    /// or degraded, since when, and the latest fault. `None` for a breaker
    /// whose state is in memory.
    pub fn storage_health(&self) -> Option<crate::machine::events::StorageHealth> {
        self.backend.health()
    }

    /// The breaker's name ("" when unnamed).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The name as messages show it: the name, or `<unnamed>`.
    pub fn display_name(&self) -> &str {
        self.name.display()
    }

    /// The current `fail_max`.
    pub fn fail_max(&self) -> u32 {
        self.settings.fail_max()
    }

    /// The current `success_threshold`.
    pub fn success_threshold(&self) -> u32 {
        self.settings.success_threshold()
    }

    /// The current `half_open_max_calls`.
    pub fn half_open_max_calls(&self) -> u32 {
        self.settings.half_open_max_calls()
    }

    /// The current reset timeout.
    pub fn reset_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.reset_timeout_ms())
    }

    /// The probe lease in force.
    pub fn probe_lease(&self) -> Duration {
        Duration::from_millis(self.settings.probe_lease_ms())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state.load())
            .field("limits", &self.settings.limits())
            .finish()
    }
}

/// Leave to run one call. Record it with [`Permit::success`],
/// [`Permit::failure`] or [`Permit::ignore`].
///
/// **Dropping a permit unrecorded counts as a failure**: a call that
/// panicked or returned early did not succeed.
///
/// ```
/// use breakerbox::{CircuitBreaker, Recorded, State};
///
/// let breaker = CircuitBreaker::builder().fail_max(2).build()?;
/// let permit = breaker.try_acquire().expect("closed: admitted");
/// assert_eq!(permit.failure(), Recorded::Counted);
///
/// // Asked for and dropped (an early return, a panic): the second failure.
/// drop(breaker.try_acquire().unwrap());
/// assert_eq!(breaker.state(), State::Open);
///
/// // Across a boundary that cannot hold a borrow, as a raw ticket:
/// breaker.close();
/// let ticket = breaker.try_acquire().unwrap().into_ticket();
/// assert_eq!(breaker.record(ticket, breakerbox::Outcome::Success), Ok(Recorded::Counted));
/// # Ok::<(), breakerbox::ConfigError>(())
/// ```
#[must_use = "record the call with success(), failure() or ignore(); dropping a permit records a failure"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Ticket,
}

impl Permit<'_> {
    /// The call succeeded.
    #[inline]
    pub fn success(self) -> Recorded {
        self.record(Outcome::Success)
    }

    /// The call failed.
    #[inline]
    pub fn failure(self) -> Recorded {
        self.record(Outcome::Failure)
    }

    /// The call counts as neither; a probe's slot is freed.
    #[inline]
    pub fn ignore(self) -> Recorded {
        self.record(Outcome::Ignored)
    }

    /// Records `outcome`.
    #[inline]
    pub fn record(self, outcome: Outcome) -> Recorded {
        let this = ManuallyDrop::new(self);
        this.breaker.record_valid(this.ticket, outcome)
    }

    /// Whether this permit admitted a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.is_probe()
    }

    /// The episode this permit belongs to (see [`Ticket::episode`]).
    pub fn episode(&self) -> u32 {
        self.ticket.episode()
    }

    /// Gives up the drop-records-failure guard and returns the raw ticket,
    /// to be recorded later with [`CircuitBreaker::record`].
    pub fn into_ticket(self) -> Ticket {
        ManuallyDrop::new(self).ticket
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.breaker.record_valid(self.ticket, Outcome::Failure);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name())
            .field("ticket", &self.ticket)
            .finish()
    }
}
