//! The circuit breaker and its permits.

use crate::clock::{duration_to_ms, ClockSource, LazyNow};
use crate::config::{self, Builder, Classifier, Settings};
use crate::error::{ConfigError, Error, Rejected};
use crate::listener::Listeners;
use crate::state::{Acquire, LimitSource, Outcome, Recorded, State, StateCell, Ticket, Transition};
use std::any::Any;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

mod policy;
pub(crate) use policy::PolicyConfig;
pub use policy::{Mode, TimedPermit};

/// A lock-free circuit breaker.
///
/// `Send + Sync`; share it by reference, `Arc` or `static`. No call allocates.
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
    name: Box<str>,
    /// Marks this breaker's tickets, so foreign or forged ones are refused.
    tag: u32,
    /// Rate window, backoff, shadow mode; `None` for the consecutive rule.
    policy: Option<Box<policy::Policy>>,
    /// No listeners and no policy: a clean success needs nothing but a load.
    plain: bool,
    /// The fleet this breaker's state is shared with; `state` is then its
    /// local mirror. Consulted only on the cold paths.
    #[cfg(feature = "redis")]
    shared: Option<Box<crate::redis::Fleet>>,
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
    (hasher.finish() as u32).max(1)
}

impl CircuitBreaker {
    /// A builder with the defaults: `fail_max` 5, `reset_timeout` 60 s,
    /// `success_threshold` 1, `half_open_max_calls` 1.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_parts(
        name: String,
        settings: Settings,
        clock: ClockSource,
        listeners: Listeners,
        classifier: Classifier,
    ) -> Self {
        CircuitBreaker {
            plain: listeners.is_empty(),
            policy: None,
            state: StateCell::new(),
            settings,
            clock,
            listeners,
            classifier,
            name: name.into_boxed_str(),
            tag: random_tag(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Shares this breaker's state through `state`: the first sync runs now
    /// (bounded by the store's timeouts; a failure is reported, not fatal).
    #[cfg(feature = "redis")]
    pub(crate) fn with_fleet(mut self, state: crate::redis::RedisState) -> Self {
        let fleet = crate::redis::Fleet::start(state, &self);
        self.shared = Some(Box::new(fleet));
        if let Some(fleet) = &self.shared {
            fleet.first_sync(&self);
        }
        self
    }

    /// Runs `op` if the breaker admits it and records how it ended.
    ///
    /// An error is classified by the builder's `ignore` and `exclude`
    /// predicates, else counts as a failure; it is returned whole in
    /// [`Error::Failed`], which also says whether this call tripped the
    /// breaker. A panic in `op` counts as a failure and keeps unwinding.
    pub fn call<T, E: 'static>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, Error<E>> {
        let permit = self.try_acquire().map_err(Error::Rejected)?;
        let started_ms = if self.plain { None } else { self.call_started_ms() };
        match op() {
            Ok(value) => {
                let _ = self.finish(permit, Outcome::Success, started_ms);
                Ok(value)
            }
            Err(error) => {
                let recorded = self.finish(permit, self.classify(&error), started_ms);
                Err(Error::Failed {
                    error,
                    tripped: recorded.tripped(),
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
        match self.state.acquire_closed() {
            Some(ticket) => Ok(ticket.with_tag(self.tag)),
            None => self.acquire_not_closed(),
        }
    }

    /// Rejections (the bulk of calls while open) are decided with one load
    /// and a coarse clock reading; anything else takes the CAS loop.
    #[inline(never)]
    fn acquire_not_closed(&self) -> Result<Ticket, Rejected> {
        #[cfg(feature = "redis")]
        if self.shared.is_some() {
            return self.acquire_slow();
        }
        let mut now = self.clock.lazy();
        match self.state.rejects(&self.settings, &mut now) {
            Some(state) => self.reject(state, &mut now),
            None => self.acquire_slow(),
        }
    }

    fn reject(&self, state: State, now: &mut LazyNow<'_>) -> Result<Ticket, Rejected> {
        if self.policy.is_some() {
            if let Some(ticket) = self.shadow_admit(state) {
                return Ok(ticket);
            }
        }
        if !self.listeners.is_empty() {
            self.notify_rejected(state);
        }
        Err(self.rejected(state, now))
    }

    #[cold]
    #[inline(never)]
    fn notify_before_call(&self) {
        self.listeners.notify(|l| l.before_call(self));
    }

    // Not `#[cold]`: an open breaker's rejections all come through here.
    #[inline(never)]
    fn acquire_slow(&self) -> Result<Ticket, Rejected> {
        let mut now = self.clock.lazy();
        #[cfg(feature = "redis")]
        let decision = match &self.shared {
            Some(fleet) => fleet.acquire(self, &self.settings.limits()),
            None => self.state.acquire(&self.settings, &mut now),
        };
        #[cfg(not(feature = "redis"))]
        let decision = self.state.acquire(&self.settings, &mut now);
        match decision {
            Acquire::Admitted { ticket, transition } => {
                let ticket = ticket.with_tag(self.tag);
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.report_transition(transition))) {
                    // The caller never gets this ticket: free its probe slot.
                    let _ = self.record_valid(ticket, Outcome::Ignored);
                    resume_unwind(panic);
                }
                Ok(ticket)
            }
            Acquire::Rejected(state) => self.reject(state, &mut now),
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_rejected(&self, state: State) {
        self.listeners.notify(|l| l.rejected(self, state));
    }

    /// Records how the call admitted with `ticket` ended.
    ///
    /// A ticket from an ended episode (or a probe recorded twice) returns
    /// `Ok(Recorded::Stale)` and changes nothing; bits this breaker never
    /// issued return [`InvalidTicket`].
    #[inline]
    pub fn record(&self, ticket: Ticket, outcome: Outcome) -> Result<Recorded, InvalidTicket> {
        if !ticket.is_valid_for(self.tag) {
            return Err(InvalidTicket);
        }
        Ok(self.record_valid(ticket, outcome))
    }

    /// A clean success with no listeners returns without a call; everything
    /// else goes out of line, so this inlines small into every caller.
    #[inline]
    fn record_valid(&self, ticket: Ticket, outcome: Outcome) -> Recorded {
        if outcome == Outcome::Success && self.plain && self.state.success_is_noop(ticket) {
            return Recorded::Counted;
        }
        if outcome == Outcome::Success && !self.plain && self.window_success(ticket) {
            return Recorded::Counted;
        }
        self.record_and_report(ticket, outcome, None)
    }

    #[inline(never)]
    fn record_and_report(&self, ticket: Ticket, outcome: Outcome, elapsed_ms: Option<u64>) -> Recorded {
        if let Some(p) = &self.policy {
            return self.record_with_policy(p, ticket, outcome, elapsed_ms);
        }
        // Checked again for breakers with listeners (a shared breaker always
        // has one): a clean success must not take the slow path, which for a
        // shared breaker is a round trip.
        let recorded = if outcome == Outcome::Success && self.state.success_is_noop(ticket) {
            Recorded::Counted
        } else {
            self.record_slow(ticket, outcome)
        };
        if !self.listeners.is_empty() && recorded != Recorded::Stale {
            self.report_outcome(outcome);
            self.report_transition(recorded.transition());
        }
        recorded
    }

    #[inline]
    fn record_slow(&self, ticket: Ticket, outcome: Outcome) -> Recorded {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared {
            return fleet.record(self, ticket, outcome, &self.settings.limits());
        }
        let recorded = self
            .state
            .record(ticket, outcome, &self.settings, &mut self.clock.lazy());
        if recorded != Recorded::Counted {
            return recorded;
        }
        // A setter may have lowered a limit while this record was counted
        // against the old one; the setter's RMW or this check catches it.
        match self.reconcile_if_needed() {
            Some(transition) => Recorded::Transitioned(transition),
            None => recorded,
        }
    }

    fn reconcile_if_needed(&self) -> Option<Transition> {
        if !self.state.needs_reconcile(&self.settings) {
            return None;
        }
        self.state.reconcile(&self.settings, &mut self.clock.lazy())
    }

    fn report_outcome(&self, outcome: Outcome) {
        self.listeners.notify(|l| match outcome {
            Outcome::Success => l.success(self),
            Outcome::Failure => l.failure(self),
            Outcome::Ignored => l.ignored(self),
        });
    }

    fn report_transition(&self, transition: Option<Transition>) {
        if let Some(t) = transition {
            if let Some(p) = &self.policy {
                self.on_transition(p, t);
            }
            // A shared breaker reports the changes of its mirror itself,
            // once each, whichever thread or process made them.
            #[cfg(feature = "redis")]
            if self.shared.is_some() {
                return;
            }
            self.emit_transition(t);
        }
    }

    pub(crate) fn emit_transition(&self, t: Transition) {
        if !self.listeners.is_empty() {
            self.listeners.notify(|l| l.state_change(self, t.from, t.to));
        }
    }

    fn force(&self, target: State) -> Option<Transition> {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared {
            return fleet.force(self, target);
        }
        let transition = self.state.force(target, &mut self.clock.lazy());
        self.report_transition(transition);
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
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared {
            return fleet.reconcile(self, &self.settings.limits());
        }
        let transition = self.state.reconcile(&self.settings, &mut self.clock.lazy());
        self.report_transition(transition);
        transition
    }

    /// Sets `fail_max` for the next decision. If the closed breaker already
    /// has that many failures it trips now (the transition is returned).
    pub fn set_fail_max(&self, fail_max: u32) -> Result<Option<Transition>, ConfigError> {
        let value = config::check_fail_max(fail_max)?;
        Ok(self.apply_setting(|s| s.set_fail_max(value)))
    }

    /// Sets `success_threshold` for the next decision. If the half-open
    /// breaker already has that many successes it closes now.
    pub fn set_success_threshold(&self, success_threshold: u32) -> Result<Option<Transition>, ConfigError> {
        let value = config::check_success_threshold(success_threshold)?;
        Ok(self.apply_setting(|s| s.set_success_threshold(value)))
    }

    /// Sets how many probes half-open admits at once, for the next decision.
    pub fn set_half_open_max_calls(&self, half_open_max_calls: u32) -> Result<(), ConfigError> {
        let value = config::check_half_open_max_calls(half_open_max_calls)?;
        self.settings.set_half_open_max_calls(value);
        Ok(())
    }

    /// Sets the reset timeout; an open breaker measures it from when it opened.
    pub fn set_reset_timeout(&self, reset_timeout: Duration) {
        self.settings.set_reset_timeout_ms(duration_to_ms(reset_timeout));
    }

    /// Sets the probe lease (see [`Builder::probe_lease`]).
    pub fn set_probe_lease(&self, lease: Duration) -> Result<(), ConfigError> {
        let ms = config::check_probe_lease(lease)?;
        self.settings.set_probe_lease_ms(ms);
        Ok(())
    }

    /// The word as the getters report it; a shared breaker's mirror first
    /// takes what its fleet announced.
    fn snapshot(&self) -> crate::state::Snapshot {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.shared {
            fleet.catch_up(self);
        }
        self.state.load()
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
        self.snapshot().successes()
    }

    /// Probes admitted in the half-open state and not yet recorded.
    pub fn probes_in_flight(&self) -> u32 {
        self.snapshot().in_flight()
    }

    /// The breaker's name ("" when unnamed).
    pub fn name(&self) -> &str {
        &self.name
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

/// What the shared-state module reaches of a breaker (cold paths only).
#[cfg(feature = "redis")]
impl CircuitBreaker {
    pub(crate) fn mirror(&self) -> &StateCell {
        &self.state
    }

    pub(crate) fn clock_source(&self) -> &crate::clock::ClockSource {
        &self.clock
    }

    pub(crate) fn limits(&self) -> crate::state::Limits {
        self.settings.limits()
    }

    pub(crate) fn fleet(&self) -> Option<&crate::redis::Fleet> {
        self.shared.as_deref()
    }

    pub(crate) fn report_storage_error(&self, error: &dyn std::error::Error) {
        if !self.listeners.is_empty() {
            self.listeners.notify(|l| l.storage_error(self, error));
        }
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
