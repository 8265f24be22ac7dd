//! The optional part of a breaker: a rate window for the closed state, a
//! backoff for the open period, and the shadow modes. A breaker with none of
//! them (and no listeners) is `plain`: its clean successes never come here.

use super::{CircuitBreaker, InvalidTicket, Permit};
use crate::breaker::backend::WindowedCall;
use crate::breaker::builder::Builder;
use crate::breaker::error::Rejected;
use crate::machine::backoff::{Backoff, OpenBackoff};
use crate::machine::config_error::ConfigError;
use crate::machine::events::Events;
use crate::machine::state::{Outcome, ProbeRule, Recorded, State, Ticket, Transition};
use crate::machine::window::{check_percent, Window, WindowConfig, WindowKind, WindowSource};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Whether the breaker acts on its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Rejects calls while open (the default).
    #[default]
    Enforcing,
    /// Shadow mode: every decision is made, counted and reported to
    /// listeners (transitions and would-be rejections included), but no call
    /// is rejected. A call admitted where it would have been rejected is not
    /// recorded: its ticket is stale from the start. On a shared breaker the
    /// decisions are the fleet's.
    MetricsOnly,
    /// Every call is admitted and nothing is counted or reported. Forced
    /// states still change, but reject nothing. Refused on a shared breaker
    /// (it has nothing to share).
    Disabled,
}

/// How a half-open breaker decides whether to close.
///
/// See the README's rules table for every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HalfOpenRule {
    /// `success_threshold` probe successes close; any probe failure
    /// re-opens at once (the default, pybreaker's rule).
    #[default]
    Successes,
    /// resilience4j's rule: `half_open_max_calls` probes are permitted in
    /// all (at most 31), each permit spent when its probe is recorded; once
    /// every one is recorded, the breaker re-opens if the failure rate among
    /// them is at or above `failure_rate_threshold` (or, with slow calls
    /// configured, the slow-call rate at or above `slow_call_rate_threshold`),
    /// and closes otherwise. An ignored probe gives its permit back; a probe
    /// whose lease is reclaimed counts as nothing. `success_threshold` is not
    /// used and must stay 1. Allowed with the consecutive rule too, which
    /// then reads `failure_rate_threshold` for its probes.
    FailureRate,
}

/// Where a record goes (see [`CircuitBreaker::route`]).
pub(super) enum Route<'a> {
    /// Decided without the backend, to be told as usual.
    Done(Recorded),
    /// Counts for nothing and is told to nobody ([`Mode::Disabled`]).
    Swallowed,
    /// A closed-state failure or slow call, for the backend to count in
    /// the window and decide on (the fleet's summed window, if shared).
    Window(&'a Window, WindowedCall),
    /// A slow probe under the failure-rate rule, recorded as slow.
    SlowProbe,
    /// The consecutive rule's record, on the backend.
    Backend,
}

/// What a builder collects beyond the consecutive rule.
#[derive(Clone, Default)]
pub(crate) struct PolicyConfig {
    pub(crate) window: WindowConfig,
    pub(crate) mode: Mode,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) half_open_rule: HalfOpenRule,
}

impl PolicyConfig {
    /// How half-open decides, with the thresholds checked; the window's
    /// thresholds are its probes' (slow calls only with a window).
    pub(crate) fn probe_rule(&self) -> Result<ProbeRule, ConfigError> {
        let w = &self.window;
        match self.half_open_rule {
            HalfOpenRule::Successes => Ok(ProbeRule::Successes),
            HalfOpenRule::FailureRate => Ok(ProbeRule::Rate {
                failure_bp: check_percent("failure_rate_threshold", w.failure_rate_threshold)?,
                slow_bp: match w.slow_call_duration {
                    Some(_) => Some(check_percent(
                        "slow_call_rate_threshold",
                        w.slow_call_rate_threshold,
                    )?),
                    None => None,
                },
            }),
        }
    }

    /// Checks everything; `None` when the breaker stays plain. A `shared`
    /// breaker's backoff is its fleet's, computed by the fleet's script.
    pub(crate) fn build(self, shared: bool) -> Result<Option<Arc<Policy>>, ConfigError> {
        let window = self.window.build()?;
        if let Some(b) = &self.backoff {
            b.check()?;
        }
        if window.is_none() && self.backoff.is_none() && self.mode == Mode::Enforcing {
            return Ok(None);
        }
        let seed = u64::from(super::random_tag()) << 32 | u64::from(super::random_tag());
        Ok(Some(Arc::new(Policy {
            mode: self.mode,
            window,
            backoff: self.backoff.map(|b| match shared {
                false => Periods::Local(OpenBackoff::new(b, seed)),
                true => Periods::Fleet(b),
            }),
        })))
    }
}

pub(crate) struct Policy {
    mode: Mode,
    window: Option<Window>,
    backoff: Option<Periods>,
}

/// Who chooses the open periods of a breaker with a backoff.
pub(crate) enum Periods {
    /// This breaker, at each of its transitions to open.
    Local(OpenBackoff),
    /// Its fleet's script (an exponential backoff): the mirror publishes
    /// the period each view of the open fleet carries.
    Fleet(Backoff),
}

impl Policy {
    /// The backoff a fleet's script is to apply, if the breaker is shared.
    pub(crate) fn fleet_backoff(&self) -> Option<&Backoff> {
        match &self.backoff {
            Some(Periods::Fleet(b)) => Some(b),
            _ => None,
        }
    }
}

impl WindowSource for Policy {
    fn window(&self) -> Option<&Window> {
        self.window.as_ref()
    }
}

/// Rate windows, slow calls, backoff and shadow modes.
impl Builder {
    /// Trip on the failure rate of the last `size` calls instead of
    /// consecutive failures (`fail_max` is then unused in the closed state).
    /// See the README's rules table for the semantics.
    pub fn count_window(mut self, size: u32) -> Self {
        self.policy.window.kind = WindowKind::Count { size };
        self
    }

    /// Trip on the failure rate of the calls of the last `duration`, kept in
    /// [`Builder::window_buckets`] buckets of `duration / buckets` each.
    pub fn time_window(mut self, duration: Duration) -> Self {
        self.policy.window.kind = WindowKind::Time { duration };
        self
    }

    /// Buckets a window is kept in (default 10, 1 to 16): the window
    /// advances one bucket at a time, so its span is exact to one bucket.
    pub fn window_buckets(mut self, buckets: u32) -> Self {
        self.policy.window.buckets = buckets;
        self
    }

    /// The failure rate, in percent, at or above which a window trips
    /// (default 50, above 0 and at most 100).
    pub fn failure_rate_threshold(mut self, percent: f32) -> Self {
        self.policy.window.failure_rate_threshold = percent;
        self
    }

    /// Calls a window must hold before it may trip (default 100; a count
    /// window needs at most its size).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.policy.window.minimum_calls = calls;
        self
    }

    /// A call that takes longer than `duration` (whole milliseconds) is slow,
    /// whatever its outcome. Off by default: only then is a call timed.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.policy.window.slow_call_duration = Some(duration);
        self
    }

    /// The slow-call rate, in percent, at or above which a window trips
    /// (default 100).
    pub fn slow_call_rate_threshold(mut self, percent: f32) -> Self {
        self.policy.window.slow_call_rate_threshold = percent;
        self
    }

    /// Whether the breaker rejects, only reports, or does nothing.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.policy.mode = mode;
        self
    }

    /// Lengthens each consecutive open period (the reset timeout is the
    /// first); a close starts over.
    pub fn open_backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = Some(backoff);
        self
    }

    /// How half-open decides (default [`HalfOpenRule::Successes`]). With
    /// [`HalfOpenRule::FailureRate`], `half_open_max_calls` is at most 31
    /// and `success_threshold` stays 1, else a [`ConfigError`] naming it.
    pub fn half_open_rule(mut self, rule: HalfOpenRule) -> Self {
        self.policy.half_open_rule = rule;
        self
    }
}

impl CircuitBreaker {
    pub(crate) fn with_policy(mut self, policy: Option<Arc<Policy>>) -> Self {
        self.plain = self.listeners.is_empty() && policy.is_none();
        if let Some(p) = &policy {
            if p.window.is_some() {
                self.backend.attach_window(Arc::clone(p) as Arc<dyn WindowSource>);
            }
            if let Some(b) = p.fleet_backoff() {
                self.backend.attach_backoff(b);
            }
        }
        self.policy = policy;
        self
    }

    /// Records a call of a breaker with a policy: disabled counts nothing;
    /// the window decides closed-state calls; the consecutive rule the rest.
    /// Every transition reaches [`CircuitBreaker::on_transition`], listeners or not.
    pub(super) fn record_with_policy(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        elapsed_ms: Option<u64>,
    ) -> Recorded {
        let mut events = Events::default();
        let recorded = match self.route(ticket, outcome, elapsed_ms) {
            Route::Done(recorded) => recorded,
            Route::Swallowed => return Recorded::Counted,
            Route::Window(w, call) => self.backend.record_windowed(self.core(), w, call, &mut events),
            Route::SlowProbe => self
                .backend
                .record_slow(self.core(), ticket, outcome, &mut events),
            Route::Backend => self.backend.record(self.core(), ticket, outcome, &mut events),
        };
        self.report_record(recorded, outcome, events)
    }

    /// Where a record of a ticket this breaker issued goes, decided once
    /// (a success may count in the window here): the one copy of these
    /// rules, for the blocking path and the polled one.
    pub(super) fn route(&self, ticket: Ticket, outcome: Outcome, elapsed_ms: Option<u64>) -> Route<'_> {
        let consecutive = || match outcome == Outcome::Success && self.state.success_is_noop(ticket) {
            true => Route::Done(Recorded::Counted),
            false => Route::Backend,
        };
        let Some(p) = self.policy.as_deref() else {
            return consecutive();
        };
        if p.mode == Mode::Disabled {
            return Route::Swallowed;
        }
        if ticket.is_inert() {
            // A shadow mode's: it counts nowhere, whatever the word (a
            // shared mirror's generation is the fleet's) shows since.
            return Route::Done(Recorded::Stale);
        }
        let Some(w) = p.window.as_ref() else {
            return consecutive();
        };
        if ticket.is_probe() {
            return match self.is_slow_probe(w, elapsed_ms) {
                true => Route::SlowProbe,
                false => consecutive(),
            };
        }
        if !self.state.is_current(ticket) {
            return Route::Done(Recorded::Stale);
        }
        if outcome == Outcome::Ignored {
            return Route::Done(Recorded::Counted);
        }
        let slow = matches!((w.slow_after_ms(), elapsed_ms), (Some(limit), Some(e)) if e > limit);
        let failed = outcome == Outcome::Failure;
        if failed || slow {
            return Route::Window(w, WindowedCall { ticket, failed, slow });
        }
        w.add(self.window_epoch(w), false, false);
        Route::Done(Recorded::Counted)
    }

    /// Whether a probe is slow under the failure-rate rule (then recorded as
    /// slow); every other probe takes the state word's usual record.
    fn is_slow_probe(&self, w: &Window, elapsed_ms: Option<u64>) -> bool {
        let slow = matches!((w.slow_after_ms(), elapsed_ms), (Some(limit), Some(e)) if e > limit);
        slow && self.settings.decides_probes_by_rate()
    }

    /// The hot path of a windowed breaker: an untimed closed-state success
    /// with no listener to tell is one store on this thread's stripe. `false`:
    /// take the general path.
    #[inline(never)]
    pub(super) fn window_success(&self, ticket: Ticket) -> bool {
        let Some(p) = self.policy.as_deref() else {
            return false;
        };
        let Some(w) = &p.window else {
            return false;
        };
        // A windowed closed state never counts consecutive failures, so a
        // current closed-state ticket finds the word as `success_is_noop`
        // wants it: one compare rules out probes and stale tickets. (If it
        // ever did not, the general path would decide.)
        if p.mode == Mode::Disabled
            || !self.listeners.is_empty()
            || ticket.is_inert()
            || !self.state.success_is_noop(ticket)
        {
            return false;
        }
        w.add(self.window_epoch(w), false, false);
        true
    }

    #[inline]
    fn window_epoch(&self, w: &Window) -> u64 {
        w.epoch(|| self.clock.coarse_ms())
    }

    /// Every transition: the window starts empty (resilience4j's rule), and
    /// an open period gets its length from the backoff.
    pub(super) fn on_transition(&self, p: &Policy, t: Transition) {
        let rate = match (&p.window, t.to) {
            (Some(w), State::Open) => w.rates(self.window_epoch(w)).0,
            _ => None,
        };
        if let Some(w) = &p.window {
            w.reset();
        }
        match &p.backoff {
            Some(Periods::Local(b)) => match t.to {
                State::Open => {
                    let ms = b.next_ms(
                        crate::machine::state::LimitSource::reset_timeout_ms(&self.settings),
                        rate,
                    );
                    self.settings.open_for.publish(self.state.episode(), ms);
                }
                State::Closed => b.reset(),
                State::HalfOpen => {}
            },
            // The fleet chose the period, and the view that moved the
            // mirror published it first; a mirror that opened alone (its
            // store away) waits the reset timeout.
            Some(Periods::Fleet(_)) => {
                let s = self.state.load();
                if s.state() == State::Open {
                    let base = crate::machine::state::LimitSource::reset_timeout_ms(&self.settings);
                    self.settings.open_for.publish_if_unknown(s.generation(), base);
                }
            }
            None => {}
        }
    }

    /// A shadow mode admits what it would reject, with a ticket that counts
    /// for nothing.
    pub(super) fn shadow_admit(&self, state: State) -> Option<Ticket> {
        let mode = self.policy.as_ref()?.mode;
        if mode == Mode::Enforcing {
            return None;
        }
        if mode == Mode::MetricsOnly && !self.listeners.is_empty() {
            self.notify_rejected(state);
        }
        Some(self.state.inert_ticket().with_tag(self.tag))
    }

    /// When a call starts, if its duration counts (slow calls configured).
    #[inline]
    pub(super) fn call_started_ms(&self) -> Option<u64> {
        let w = self.policy.as_ref()?.window.as_ref()?;
        w.slow_after_ms()?;
        Some(self.clock.precise_ms())
    }

    /// When a call admitted now starts, if the breaker times its calls
    /// (slow calls configured): what the async integrations keep until the
    /// record. `None` reads no clock.
    #[inline]
    pub(crate) fn call_timer_start(&self) -> Option<u64> {
        if self.plain {
            None
        } else {
            self.call_started_ms()
        }
    }

    #[inline]
    pub(crate) fn elapsed_since(&self, started_ms: Option<u64>) -> Option<u64> {
        started_ms.map(|s| self.clock.precise_ms().saturating_sub(s))
    }

    /// Records how the call admitted with `ticket` ended and how long it
    /// took (whole milliseconds count toward the slow-call rate).
    pub fn record_timed(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Duration,
    ) -> Result<Recorded, InvalidTicket> {
        if !self.backend.issued(ticket, self.tag) {
            return Err(InvalidTicket);
        }
        Ok(self.record_valid_timed(
            ticket,
            outcome,
            Some(crate::machine::clock::duration_to_ms(elapsed)),
        ))
    }

    #[inline]
    pub(super) fn record_valid_timed(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        elapsed_ms: Option<u64>,
    ) -> Recorded {
        match (elapsed_ms, self.policy.as_deref()) {
            (Some(_), Some(_)) => self.record_with_policy(ticket, outcome, elapsed_ms),
            _ => self.record_valid(ticket, outcome),
        }
    }

    /// Like [`CircuitBreaker::try_acquire`], but the breaker times the call
    /// from now until it is recorded (reading its clock only when slow calls
    /// are configured).
    pub fn try_acquire_timed(&self) -> Result<TimedPermit<'_>, Rejected> {
        let permit = self.try_acquire()?;
        Ok(TimedPermit {
            started_ms: if self.plain { None } else { self.call_started_ms() },
            permit,
        })
    }

    /// The window's failure rate in percent; `None` without a window or below
    /// its minimum number of calls.
    pub fn failure_rate(&self) -> Option<f32> {
        let w = self.policy.as_ref()?.window.as_ref()?;
        w.rates(self.window_epoch(w)).0
    }

    /// The window's slow-call rate in percent; `None` without a window, without
    /// slow calls configured, or below its minimum number of calls.
    pub fn slow_call_rate(&self) -> Option<f32> {
        let w = self.policy.as_ref()?.window.as_ref()?;
        w.slow_after_ms()?;
        w.rates(self.window_epoch(w)).1
    }

    /// Both rates from one reading of the window: `None` without a window;
    /// each rate `None` below the minimum number of calls (the slow-call
    /// rate also without slow calls configured).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn window_rates(&self) -> Option<(Option<f32>, Option<f32>)> {
        let w = self.policy.as_ref()?.window.as_ref()?;
        let (failure, slow) = w.rates(self.window_epoch(w));
        Some((failure, slow.filter(|_| w.slow_after_ms().is_some())))
    }

    /// Whether slow calls are configured (a window with `slow_call_duration`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn slow_call_rate_configured(&self) -> bool {
        let window = self.policy.as_ref().and_then(|p| p.window.as_ref());
        window.is_some_and(|w| w.slow_after_ms().is_some())
    }

    /// Calls the window holds now; `None` without a window.
    pub fn window_calls(&self) -> Option<u64> {
        let w = self.policy.as_ref()?.window.as_ref()?;
        Some(w.tally(self.window_epoch(w)).calls)
    }

    /// How half-open decides.
    pub fn half_open_rule(&self) -> HalfOpenRule {
        match self.settings.decides_probes_by_rate() {
            true => HalfOpenRule::FailureRate,
            false => HalfOpenRule::Successes,
        }
    }

    /// Whether the breaker enforces, only reports, or is disabled.
    pub fn mode(&self) -> Mode {
        self.policy.as_ref().map_or(Mode::Enforcing, |p| p.mode)
    }

    /// How long the current open period lasts (the reset timeout without a
    /// backoff); `None` when not open, or while its length is being chosen.
    pub fn open_for(&self) -> Option<Duration> {
        let s = self.state.load();
        if s.state() != State::Open {
            return None;
        }
        crate::machine::state::LimitSource::open_for_ms(&self.settings, s.generation())
            .map(Duration::from_millis)
    }
}

impl Permit<'_> {
    /// Records `outcome` and how long the call took (see
    /// [`CircuitBreaker::record_timed`]).
    pub fn record_timed(self, outcome: Outcome, elapsed: Duration) -> Recorded {
        let breaker = self.breaker;
        let ticket = self.into_ticket();
        breaker.record_valid_timed(
            ticket,
            outcome,
            Some(crate::machine::clock::duration_to_ms(elapsed)),
        )
    }
}

/// A permit that times its call (see [`CircuitBreaker::try_acquire_timed`]).
/// Dropping it unrecorded counts as a failure, as for [`Permit`].
#[must_use = "record the call with success(), failure() or ignore(); dropping it records a failure"]
pub struct TimedPermit<'a> {
    permit: Permit<'a>,
    started_ms: Option<u64>,
}

impl TimedPermit<'_> {
    /// The call succeeded.
    pub fn success(self) -> Recorded {
        self.record(Outcome::Success)
    }

    /// The call failed.
    pub fn failure(self) -> Recorded {
        self.record(Outcome::Failure)
    }

    /// The call counts as neither.
    pub fn ignore(self) -> Recorded {
        self.record(Outcome::Ignored)
    }

    /// Records `outcome` and the time since the permit was issued.
    pub fn record(self, outcome: Outcome) -> Recorded {
        let breaker = self.permit.breaker;
        let elapsed = breaker.elapsed_since(self.started_ms);
        let ticket = self.permit.into_ticket();
        breaker.record_valid_timed(ticket, outcome, elapsed)
    }

    /// Whether this permit admitted a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.permit.is_probe()
    }
}

impl fmt::Debug for TimedPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedPermit")
            .field("permit", &self.permit)
            .field("started_ms", &self.started_ms)
            .finish()
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use crate::redis::RedisState;
    use crate::{Backoff, Builder, CircuitBreaker, ConfigError, Mode};
    use std::time::Duration;

    /// A fleet sums rate windows and grows an exponential backoff, but a
    /// custom backoff cannot run in its script and a Disabled breaker shares
    /// nothing: those are refused at build, before any round trip (nothing
    /// listens on port 1).
    #[test]
    fn a_shared_breaker_refuses_a_custom_backoff_and_the_disabled_mode() {
        type Option_ = fn(Builder) -> Builder;
        let options: [(&str, Option_); 3] = [
            ("custom open_backoff", |b| {
                b.open_backoff(Backoff::custom(|_, _| Duration::from_secs(1)))
            }),
            ("custom open_backoff with a window", |b| {
                b.count_window(10)
                    .open_backoff(Backoff::custom(|_, _| Duration::from_secs(1)))
            }),
            ("mode(Disabled)", |b| {
                b.time_window(Duration::from_secs(10)).mode(Mode::Disabled)
            }),
        ];
        for (name, option) in options {
            let shared = RedisState::connect("redis://127.0.0.1:1/").unwrap();
            let err = option(CircuitBreaker::builder().shared(shared))
                .build()
                .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { field: "shared", .. }),
                "{name}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                "shared must be used without Backoff::custom or Mode::Disabled (rate windows, an exponential backoff and MetricsOnly are fleet-wide)",
                "{name}"
            );
        }
    }

    /// An exponential backoff, with any jitter and with or without a window,
    /// builds on a shared breaker; a bad multiplier is still refused.
    #[test]
    fn a_shared_breaker_takes_an_exponential_backoff() {
        for jitter in [crate::Jitter::None, crate::Jitter::Full, crate::Jitter::Equal] {
            for windowed in [false, true] {
                let shared = RedisState::connect("redis://127.0.0.1:1/")
                    .unwrap()
                    .command_timeout(Duration::from_millis(20));
                let mut b = CircuitBreaker::builder().shared(shared);
                if windowed {
                    b = b.count_window(10);
                }
                let built = b
                    .open_backoff(Backoff::exponential(2.0, Duration::from_secs(60)).jitter(jitter))
                    .build();
                assert!(built.is_ok(), "{jitter:?} {windowed}: {:?}", built.err());
            }
        }
        let shared = RedisState::connect("redis://127.0.0.1:1/").unwrap();
        let err = CircuitBreaker::builder()
            .shared(shared)
            .open_backoff(Backoff::exponential(0.5, Duration::from_secs(60)))
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "open_backoff multiplier",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// Count and time windows, with slow calls, and the MetricsOnly mode
    /// build on a shared breaker (a Redis that is down is a fault, not an
    /// error).
    #[test]
    fn a_shared_breaker_takes_count_and_time_windows() {
        type Option_ = fn(Builder) -> Builder;
        let options: [(&str, Option_); 3] = [
            ("count_window", |b| b.count_window(10)),
            ("mode(MetricsOnly)", |b| {
                b.count_window(10).mode(Mode::MetricsOnly)
            }),
            ("time_window", |b| {
                b.time_window(Duration::from_secs(10))
                    .slow_call_duration(Duration::from_millis(50))
            }),
        ];
        for (name, option) in options {
            let shared = RedisState::connect("redis://127.0.0.1:1/")
                .unwrap()
                .command_timeout(Duration::from_millis(20));
            let breaker = option(CircuitBreaker::builder().shared(shared)).build();
            assert!(breaker.is_ok(), "{name}: {:?}", breaker.err());
        }
    }

    /// The fleet's script decides probes by the failure-rate rule too: a
    /// shared breaker takes it, with or without slow calls (it builds
    /// before any round trip; nothing listens on port 1).
    #[test]
    fn a_shared_breaker_takes_the_failure_rate_half_open_rule() {
        let shared = || {
            RedisState::connect("redis://127.0.0.1:1/")
                .unwrap()
                .command_timeout(Duration::from_millis(20))
        };
        let plain = CircuitBreaker::builder()
            .shared(shared())
            .half_open_rule(crate::HalfOpenRule::FailureRate)
            .half_open_max_calls(4)
            .build()
            .expect("the fleet decides probes by their failure rate");
        assert_eq!(plain.half_open_rule(), crate::HalfOpenRule::FailureRate);
        let slow = CircuitBreaker::builder()
            .shared(shared())
            .half_open_rule(crate::HalfOpenRule::FailureRate)
            .count_window(10)
            .slow_call_duration(Duration::from_millis(50))
            .build()
            .expect("slow probes too");
        assert_eq!(slow.half_open_rule(), crate::HalfOpenRule::FailureRate);
        let err = CircuitBreaker::builder()
            .shared(shared())
            .half_open_rule(crate::HalfOpenRule::FailureRate)
            .half_open_max_calls(32)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::TooLarge {
                    field: "half_open_max_calls",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
