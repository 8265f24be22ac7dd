//! Where a breaker's state lives, and its cold paths for each place: one
//! enum, matched here and nowhere else. Above this module the breaker speaks
//! only of [`Backend`]; a `cfg` belongs on a variant, not in its methods.

use crate::machine::clock::ClockSource;
use crate::machine::config_error::ConfigError;
use crate::machine::events::{Events, StorageHealth};
use crate::machine::settings::Settings;
use crate::machine::state::{Acquire, LimitSource, Outcome, Recorded, State, StateCell, Ticket, Transition};
use crate::machine::window::Window;
#[cfg(feature = "redis")]
use std::task::ready;
use std::task::{Context, Poll};

/// What a backend decides with, lent by the breaker for one call: the state
/// word (for a shared breaker, its local mirror), the live settings and the
/// clock.
#[derive(Clone, Copy)]
pub(crate) struct Core<'a> {
    pub(crate) cell: &'a StateCell,
    pub(crate) settings: &'a Settings,
    pub(crate) clock: &'a ClockSource,
    /// The breaker's ticket tag.
    pub(crate) tag: u32,
}

/// The bits a breaker's own tag may use; the rest mark tickets a backend
/// issued apart (a shared breaker's, issued while its store was away).
pub(crate) const TAG_BITS: u32 = !(1 << 31);

#[cfg(feature = "redis")]
const _: () = assert!(crate::redis::DEGRADED_TAG & TAG_BITS == 0);

/// How a breaker is to be backed, as the builder was told.
#[derive(Default)]
pub(crate) enum Plan {
    #[default]
    Local,
    #[cfg(feature = "redis")]
    Shared(Box<crate::redis::RedisState>),
}

/// Where the state lives.
pub(crate) enum Backend {
    /// In this process only: the word is the state.
    Local,
    /// Shared by a fleet; the word is its local mirror.
    #[cfg(feature = "redis")]
    Shared(Box<crate::redis::Fleet>),
}

impl Plan {
    /// Starts the backend; a shared one syncs its mirror first (the fleet's
    /// state is where it begins, not a change) and notes any fault.
    /// With `require_reachable`, a failed first sync is an error.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn start(
        self,
        name: &str,
        core: Core<'_>,
        events: &mut Events,
    ) -> Result<Backend, ConfigError> {
        match self {
            Plan::Local => Ok(Backend::Local),
            #[cfg(feature = "redis")]
            Plan::Shared(state) => {
                let required = state.require_reachable;
                let fleet = crate::redis::Fleet::start(*state, name, core.clock);
                fleet.attach_probe_rule(core.settings.limits().probe_rule);
                match fleet.first_sync(core.mirror(), events) {
                    Err(kind) if required => Err(ConfigError::Unreachable { kind }),
                    _ => Ok(Backend::Shared(Box::new(fleet))),
                }
            }
        }
    }
}

impl Core<'_> {
    #[cfg(feature = "redis")]
    fn mirror(&self) -> crate::redis::Mirror<'_> {
        crate::redis::Mirror {
            cell: self.cell,
            clock: self.clock,
            tag: self.tag,
            settings: self.settings,
        }
    }
}

impl Backend {
    /// Whether news is waiting for the mirror (never, for a local breaker).
    /// One load; checked before each call so the mirror is current.
    #[inline]
    pub(crate) fn has_news(&self) -> bool {
        match self {
            Backend::Local => false,
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.has_news(),
        }
    }

    /// Brings the mirror up to date with what the fleet announced.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn catch_up(&self, core: Core<'_>, events: &mut Events) {
        match self {
            Backend::Local => {}
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.catch_up(core.mirror(), events),
        }
    }

    /// A rejection decided from one load, where the backend allows it, with
    /// the time left to its deadline by the reading that decided it.
    #[inline]
    /// `limits`: the settings, or a view of them that skips what the breaker
    /// cannot have (a plain one's backoff).
    pub(crate) fn rejects(&self, core: Core<'_>, limits: &impl LimitSource) -> Option<(State, u64)> {
        match self {
            Backend::Local => core.cell.rejects(limits, &mut core.clock.lazy()),
            #[cfg(feature = "redis")]
            Backend::Shared(_) => None,
        }
    }

    /// Whether `ticket` came from this breaker (tagged `tag`).
    pub(crate) fn issued(&self, ticket: Ticket, tag: u32) -> bool {
        match self {
            Backend::Local => ticket.is_valid_for(tag),
            #[cfg(feature = "redis")]
            Backend::Shared(_) => {
                ticket.is_valid_for(tag) || ticket.is_valid_for(tag | crate::redis::DEGRADED_TAG)
            }
        }
    }

    /// A call that the closed fast path did not admit; the ticket comes
    /// tagged.
    pub(crate) fn acquire(&self, core: Core<'_>, events: &mut Events) -> Acquire {
        match self {
            Backend::Local => match core.cell.acquire(core.settings, &mut core.clock.lazy()) {
                Acquire::Admitted { ticket, transition } => {
                    events.transition(transition);
                    Acquire::Admitted {
                        ticket: ticket.with_tag(core.tag),
                        transition,
                    }
                }
                rejected => rejected,
            },
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.acquire(core.mirror(), &core.settings.limits(), events),
        }
    }

    /// An outcome that is not a clean closed-state success. A setter may
    /// have lowered a limit while this record was counted against the old
    /// one: the setter's reconcile or the check after it catches that.
    pub(crate) fn record(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        events: &mut Events,
    ) -> Recorded {
        self.record_as(core, ticket, outcome, false, events)
    }

    /// A slow probe under the failure-rate rule: counted toward the
    /// slow-call rate (a shared breaker's fleet is told it was slow).
    pub(crate) fn record_slow(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        events: &mut Events,
    ) -> Recorded {
        self.record_as(core, ticket, outcome, true, events)
    }

    /// The one copy of both records; `slow` is a constant at each caller.
    #[inline(always)]
    fn record_as(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        events: &mut Events,
    ) -> Recorded {
        let recorded = match self {
            Backend::Local => {
                let mut now = core.clock.lazy();
                let recorded = match slow {
                    false => core.cell.record(ticket, outcome, core.settings, &mut now),
                    true => core.cell.record_slow(ticket, outcome, core.settings, &mut now),
                };
                events.transition(recorded.transition());
                recorded
            }
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.record(
                core.mirror(),
                ticket,
                outcome,
                slow,
                &core.settings.limits(),
                events,
            ),
        };
        self.settled(core, recorded, events)
    }

    /// A record that counted under limits a setter has since lowered
    /// reconciles them.
    fn settled(&self, core: Core<'_>, recorded: Recorded, events: &mut Events) -> Recorded {
        if recorded != Recorded::Counted || !core.cell.needs_reconcile(core.settings) {
            return recorded;
        }
        match self.reconcile(core, events) {
            Some(transition) => Recorded::Transitioned(transition),
            None => recorded,
        }
    }

    /// [`Backend::record_slow`] without waiting on the network: decided at
    /// once by a local breaker; `None` for a shared one, whose record is
    /// then polled with [`Backend::poll_record`] as a slow probe's.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn send_slow(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        io: &mut RoundTrip,
        events: &mut Events,
    ) -> Option<Recorded> {
        match self {
            Backend::Local => Some(self.record_slow(core, ticket, outcome, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(_) => {
                io.slow_probe = true;
                None
            }
        }
    }

    /// Moves to `target` whatever the state.
    pub(crate) fn force(&self, core: Core<'_>, target: State, events: &mut Events) -> Option<Transition> {
        match self {
            Backend::Local => {
                let transition = core.cell.force(target, &mut core.clock.lazy());
                events.transition(transition);
                transition
            }
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.force(core.mirror(), target, &core.settings.limits(), events),
        }
    }

    /// Applies limits a setter changed.
    pub(crate) fn reconcile(&self, core: Core<'_>, events: &mut Events) -> Option<Transition> {
        match self {
            Backend::Local => {
                let transition = core.cell.reconcile(core.settings, &mut core.clock.lazy());
                events.transition(transition);
                transition
            }
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.reconcile(core.mirror(), &core.settings.limits(), events),
        }
    }

    /// Gives a shared backend the window whose counts it sends the fleet.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn attach_window(&self, source: std::sync::Arc<dyn crate::machine::window::WindowSource>) {
        match self {
            Backend::Local => {}
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.attach_window(source),
        }
    }

    /// Gives a shared backend the exponential backoff its fleet's script is
    /// to apply when it opens the fleet.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn attach_backoff(&self, backoff: &crate::machine::backoff::Backoff) {
        match self {
            Backend::Local => {}
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.attach_backoff(backoff),
        }
    }

    /// A windowed breaker's closed-state failure or slow call, counted in
    /// `window` (the breaker's own) and decided there, or for a shared
    /// backend on the fleet's summed window.
    pub(crate) fn record_windowed(
        &self,
        core: Core<'_>,
        window: &Window,
        call: WindowedCall,
        events: &mut Events,
    ) -> Recorded {
        match self {
            Backend::Local => {
                let epoch = window.epoch(|| core.clock.coarse_ms());
                window.add(epoch, call.failed, call.slow);
                let trip = || core.cell.trip(call.ticket, &mut core.clock.lazy());
                let recorded = match window.check(epoch, trip) {
                    Some(t) => Recorded::Transitioned(t),
                    None => Recorded::Counted,
                };
                events.transition(recorded.transition());
                recorded
            }
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                fleet.record_windowed(core.mirror(), call, &core.settings.limits(), events)
            }
        }
    }

    /// Whether calls are being refused by a fault policy (a shared breaker
    /// under `FailClosed` whose store is away).
    #[inline]
    pub(crate) fn fails_closed(&self) -> bool {
        match self {
            Backend::Local => false,
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.fails_closed(),
        }
    }

    /// How the store is doing; `None` for a local breaker.
    pub(crate) fn health(&self) -> Option<StorageHealth> {
        match self {
            Backend::Local => None,
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => Some(fleet.health()),
        }
    }

    /// The state word as getters report it: the mirror, or the view the
    /// fleet announced and no call has applied yet. Changes nothing.
    pub(crate) fn peek(&self, core: Core<'_>) -> crate::machine::state::Snapshot {
        match self {
            Backend::Local => core.cell.load(),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => fleet.peek(core.mirror()),
        }
    }
}

/// A windowed breaker's closed-state call that failed or was slow (at
/// least one), to record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowedCall {
    pub(crate) ticket: Ticket,
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

/// A cold path's round trip in flight, for a call that must not wait on the
/// network (an async call, the tower layer); idle otherwise, and always for
/// a local breaker.
#[derive(Default)]
pub(crate) struct RoundTrip {
    #[cfg(feature = "redis")]
    pending: Option<crate::redis::Pending>,
    /// The record polled is a slow probe's (see [`Backend::send_slow`]).
    #[cfg(feature = "redis")]
    slow_probe: bool,
}

impl RoundTrip {
    /// Whether no round trip is in flight.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.pending.is_none();
        #[cfg(not(feature = "redis"))]
        true
    }
}

/// The cold paths of calls that must not wait on the network: a local
/// backend decides at once; a shared one hands its round trip to its
/// endpoint's workers and is polled again when the reply is in.
impl Backend {
    /// Whether a cold path may wait on the network.
    #[inline]
    pub(crate) fn may_wait(&self) -> bool {
        match self {
            Backend::Local => false,
            #[cfg(feature = "redis")]
            Backend::Shared(_) => true,
        }
    }

    /// [`Backend::acquire`], polled.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn poll_acquire(
        &self,
        core: Core<'_>,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
        events: &mut Events,
    ) -> Poll<Acquire> {
        match self {
            Backend::Local => Poll::Ready(self.acquire(core, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                let limits = core.settings.limits();
                fleet.poll_acquire(core.mirror(), &limits, &mut io.pending, cx, events)
            }
        }
    }

    /// [`Backend::record`], polled: the record's round trip, then the
    /// reconcile's if a setter raced it; or the windowed record that
    /// [`Backend::send_windowed`] left in `io`.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn poll_record(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
        events: &mut Events,
    ) -> Poll<Recorded> {
        match self {
            Backend::Local => Poll::Ready(self.record(core, ticket, outcome, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                let (m, limits) = (core.mirror(), core.settings.limits());
                if io
                    .pending
                    .as_ref()
                    .is_some_and(crate::redis::Pending::is_windowed)
                {
                    return fleet.poll_windowed(m, ticket, &mut io.pending, cx, events);
                }
                let reconciling = io
                    .pending
                    .as_ref()
                    .is_some_and(crate::redis::Pending::is_reconcile);
                if !reconciling {
                    let (pending, slow) = (&mut io.pending, io.slow_probe);
                    let recorded =
                        ready!(fleet.poll_record(m, ticket, outcome, slow, &limits, pending, cx, events));
                    io.slow_probe = false;
                    if recorded != Recorded::Counted || !core.cell.needs_reconcile(core.settings) {
                        return Poll::Ready(recorded);
                    }
                }
                // Only a count that did not move the word gets here.
                let transition = ready!(fleet.poll_reconcile(m, &limits, &mut io.pending, cx, events));
                Poll::Ready(transition.map_or(Recorded::Counted, Recorded::Transitioned))
            }
        }
    }

    /// [`Backend::record`] without waiting for the fleet: `None` when the
    /// record was handed off (its answer reaches the mirror later). No
    /// reconcile follows a record handed off.
    pub(crate) fn record_detached(
        &self,
        core: Core<'_>,
        ticket: Ticket,
        outcome: Outcome,
        events: &mut Events,
    ) -> Option<Recorded> {
        match self {
            Backend::Local => Some(self.record(core, ticket, outcome, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                let limits = core.settings.limits();
                fleet.record_detached(core.mirror(), ticket, outcome, &limits, events)
            }
        }
    }

    /// [`Backend::record_windowed`] without waiting on the network: decided
    /// at once, or `None` once a shared backend's run is in `io`, to be
    /// polled with [`Backend::poll_record`].
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) fn send_windowed(
        &self,
        core: Core<'_>,
        window: &Window,
        call: WindowedCall,
        io: &mut RoundTrip,
        events: &mut Events,
    ) -> Option<Recorded> {
        match self {
            Backend::Local => Some(self.record_windowed(core, window, call, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                let limits = core.settings.limits();
                fleet.send_windowed(core.mirror(), call, &limits, &mut io.pending, events)
            }
        }
    }

    /// [`Backend::record_windowed`] without waiting for the fleet: `None`
    /// when the run was handed off (its answer reaches the mirror later).
    pub(crate) fn record_windowed_detached(
        &self,
        core: Core<'_>,
        window: &Window,
        call: WindowedCall,
        events: &mut Events,
    ) -> Option<Recorded> {
        match self {
            Backend::Local => Some(self.record_windowed(core, window, call, events)),
            #[cfg(feature = "redis")]
            Backend::Shared(fleet) => {
                let limits = core.settings.limits();
                fleet.record_windowed_detached(core.mirror(), call, &limits, events)
            }
        }
    }
}
