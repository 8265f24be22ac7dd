//! The fleet seam: what a breaker whose state is shared does on its cold
//! paths, and how its mirror follows the fleet.

use super::protocol::{BackoffArgs, Code, Op, RateArgs, RawView, ReadAt, Reply, Seed, WindowArgs};
use super::store::Store;
use super::watcher::Hub;
use super::{FaultPolicy, RedisState, StorageError, StorageErrorKind};
use crate::machine::clock::ClockSource;
use crate::machine::events::{Events, StorageHealth};
use crate::machine::settings::Settings;
use crate::machine::state::{
    Acquire, FleetView, Gate, LimitSource, Limits, Now, Outcome, ProbeRule, Recorded, Snapshot, State,
    StateCell, Ticket, Transition,
};
use crate::sync::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

mod window;

/// Set in the tag of tickets a shared breaker's mirror issued alone while
/// its store was away: they never count at the fleet.
pub(crate) const DEGRADED_TAG: u32 = 1 << 31;

/// What the fleet is lent of a breaker for one call: its mirror and clock.
#[derive(Clone, Copy)]
pub(crate) struct Mirror<'a> {
    pub(crate) cell: &'a StateCell,
    pub(crate) clock: &'a ClockSource,
    /// The breaker's ticket tag.
    pub(crate) tag: u32,
    /// The breaker's live settings: where the fleet's open periods are
    /// published for the mirror's rejections and retry-after.
    pub(crate) settings: &'a Settings,
}

/// `limits` with the open period the fleet chose (published in the
/// mirror's settings), for the mirror's own open-state rejections.
struct FleetPeriods<'a> {
    limits: &'a Limits,
    settings: &'a Settings,
    /// The period of an episode whose period is not yet published.
    unpublished_ms: u64,
}

impl LimitSource for FleetPeriods<'_> {
    fn fail_max(&self) -> u32 {
        self.limits.fail_max()
    }
    fn success_threshold(&self) -> u32 {
        self.limits.success_threshold()
    }
    fn half_open_max_calls(&self) -> u32 {
        self.limits.half_open_max_calls()
    }
    fn reset_timeout_ms(&self) -> u64 {
        self.limits.reset_timeout_ms()
    }
    fn probe_lease_ms(&self) -> u64 {
        self.limits.probe_lease_ms()
    }
    fn probe_rule(&self) -> ProbeRule {
        self.limits.probe_rule()
    }
    fn open_for_ms(&self, episode: u32) -> Option<u64> {
        self.settings
            .open_for
            .get(episode, || self.limits.reset_timeout_ms())
            .or(Some(self.unpublished_ms))
    }
}

/// A breaker's link to its fleet: owned by the breaker, stopped with it.
pub(crate) struct Fleet {
    pub(super) inner: Arc<Inner>,
    pub(super) hub: Arc<Hub>,
}

/// What the breaker and its watcher thread share.
pub(crate) struct Inner {
    pub(crate) store: Store,
    policy: FaultPolicy,
    pub(crate) refresh_interval: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) announce: bool,
    clock: ClockSource,
    /// 1 while the store is unreachable: calls then decide by the policy
    /// without touching the network, and the watcher reconnects.
    down: AtomicU32,
    /// The endpoint's watcher, woken when a call sees the store fail.
    hub: Weak<Hub>,
    /// 1 when `mailbox` holds something for the next call to apply.
    pending: AtomicU32,
    mailbox: Mutex<Mailbox>,
    health: Mutex<StorageHealth>,
    /// A windowed breaker's window and what of it was sent (see `window`).
    window: OnceLock<window::FleetWindow>,
}

/// Everything the mirror is reconciled against, under one lock (held only
/// for a few loads and one CAS; never across I/O or a listener).
struct Mailbox {
    /// Version of the newest fleet view the mirror took. Versions only grow
    /// (across a Redis restart too), so an older view is never news.
    applied: u64,
    /// The mirror moved on its own since (the store went away, the policy,
    /// a decision made alone): a view of version `applied` read afterwards
    /// is news again, so even a quiet fleet's refresh repairs the mirror.
    diverged: bool,
    /// The mirror's moves of its own so far: a view read before the latest
    /// one is older than the mirror, whatever its version says.
    moves: u64,
    /// `moves` when the mirror last took a view.
    applied_moves: u64,
    /// The newest fleet view the watcher brought, not yet applied.
    view: Option<(u64, FleetView, ReadAt)>,
    /// The watcher saw the store fail: apply the policy at the next call.
    went_down: bool,
    /// A fault the watcher saw, to report to listeners at the next call.
    error: Option<StorageError>,
    /// The mirror as last seen by a call: what an empty Redis is seeded from.
    mirror: Snapshot,
}

impl Fleet {
    pub(crate) fn start(state: RedisState, name: &str, clock: &ClockSource) -> Fleet {
        let namespace = match state.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ if !name.is_empty() => name.to_owned(),
            _ => "default".to_owned(),
        };
        let hub = state.hub();
        let inner = Arc::new(Inner {
            store: Store::new(
                Arc::clone(&hub.transport),
                &namespace,
                state.notifications,
                state.command_timeout,
            ),
            policy: state.policy,
            refresh_interval: state.refresh_interval,
            max_backoff: state.max_backoff,
            announce: state.notifications,
            clock: clock.clone(),
            down: AtomicU32::new(0),
            hub: Arc::downgrade(&hub),
            pending: AtomicU32::new(0),
            mailbox: Mutex::new(Mailbox {
                applied: 0,
                diverged: false,
                moves: 0,
                applied_moves: 0,
                view: None,
                went_down: false,
                error: None,
                mirror: Snapshot::initial(),
            }),
            health: Mutex::new(StorageHealth {
                reachable: true,
                since: Instant::now(),
                last_error: None,
            }),
            window: OnceLock::new(),
        });
        hub.join(Arc::clone(&inner));
        Fleet { inner, hub }
    }

    /// The first sync, on the building thread: a late joiner starts in the
    /// fleet's state (not reported as a change: it is where it begins); an
    /// empty Redis is seeded with a closed breaker.
    pub(crate) fn first_sync(&self, m: Mirror<'_>, ev: &mut Events) -> Result<(), StorageErrorKind> {
        let result = match self.run(m, Op::Sync.into(), &zero_limits()) {
            Ok(reply) => {
                let view = self.inner.localize(&reply.view);
                let mut quiet = Events::default();
                self.apply_view(m, reply.view.version, &view, reply.read, &mut quiet);
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                self.went_down(m, e, ev);
                Err(kind)
            }
        };
        self.catch_up(m, ev);
        result
    }

    pub(crate) fn fails_closed(&self) -> bool {
        self.inner.policy == FaultPolicy::FailClosed && self.is_down()
    }

    pub(crate) fn health(&self) -> StorageHealth {
        self.inner.health().clone()
    }

    /// Whether the watcher left something for the next call: one load.
    #[inline]
    pub(crate) fn has_news(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire) != 0
    }

    /// Applies what the watcher brought.
    pub(crate) fn catch_up(&self, m: Mirror<'_>, ev: &mut Events) {
        if !self.has_news() {
            return;
        }
        // While the store is away under FailOpen or FailClosed the mirror
        // is the policy's: a view (from before the fault, or from a sync
        // racing the recovery) waits for the store to be back.
        let (view, went_down, error) = {
            let mut mailbox = self.inner.mailbox();
            self.inner.pending.store(0, Ordering::Release);
            // Under the lock: a recovery (`mark_up`) either came before,
            // and the view applies now, or comes after and flags it again.
            let policy_holds = self.inner.policy != FaultPolicy::Local && self.is_down();
            let view = if policy_holds { None } else { mailbox.view.take() };
            (view, std::mem::take(&mut mailbox.went_down), mailbox.error.take())
        };
        if let Some(error) = error {
            ev.storage_error(error);
        }
        if went_down && self.is_down() {
            self.apply_policy(m, ev);
        }
        if let Some((version, view, read)) = view {
            self.apply_view(m, version, &view, read, ev);
        }
    }

    /// The mirror as getters see it: with the view the watcher left applied
    /// in thought only (nothing changes, no listener runs).
    pub(crate) fn peek(&self, m: Mirror<'_>) -> Snapshot {
        if self.has_news() {
            let mailbox = self.inner.mailbox();
            if let Some((_, view, _)) = mailbox.view.filter(|&(v, _, read)| mailbox.is_news(v, read)) {
                return view.snapshot();
            }
        }
        m.cell.load()
    }

    /// A call the closed fast path did not admit; the ticket comes tagged:
    /// with the breaker's tag when the fleet (or a mirror that follows it)
    /// issued it, with [`DEGRADED_TAG`] too when the mirror issued it alone
    /// while the store was away.
    pub(crate) fn acquire(&self, m: Mirror<'_>, limits: &Limits, ev: &mut Events) -> Acquire {
        match self.begin_acquire(m, limits, ev) {
            Step::Done(decided) => decided,
            Step::Ask(run) => self.answer_acquire(m, limits, self.run(m, run, limits), ev),
        }
    }

    /// What the mirror decides alone, or the round trip the decision needs.
    pub(super) fn begin_acquire(&self, m: Mirror<'_>, limits: &Limits, ev: &mut Events) -> Step<Acquire> {
        self.catch_up(m, ev);
        if !self.is_down() {
            // A period not yet published (a view and the report of the
            // mirror's transition raced) is 0: the mirror asks the fleet,
            // which knows, rather than reject for good.
            let limits = FleetPeriods {
                limits,
                settings: m.settings,
                unpublished_ms: 0,
            };
            match m.cell.gate(&limits, &mut m.clock.lazy()) {
                Gate::Admit(ticket) => {
                    let admitted = Acquire::Admitted {
                        ticket,
                        transition: None,
                    };
                    return Step::Done(tagged(m, admitted, false));
                }
                Gate::Reject(state) => return Step::Done(Acquire::Rejected(state)),
                Gate::AskFleet => return Step::Ask(Op::Acquire.into()),
            }
        }
        Step::Done(tagged(m, self.acquire_degraded(m, limits, ev), true))
    }

    /// The decision, from the fleet's answer to [`Fleet::begin_acquire`]'s ask.
    pub(super) fn answer_acquire(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        answer: Result<Reply, StorageError>,
        ev: &mut Events,
    ) -> Acquire {
        match answer {
            Ok(reply) => {
                let view = self.apply_reply(m, &reply, ev);
                let decision = match reply.code {
                    Code::AdmitClosed => Acquire::Admitted {
                        ticket: view.closed_ticket(),
                        transition: None,
                    },
                    // The ticket carries the fleet's slot, so recording
                    // it twice is stale at the fleet.
                    Code::AdmitProbe => Acquire::Admitted {
                        ticket: view.probe_ticket(reply.slot),
                        transition: reply.transition,
                    },
                    _ => Acquire::Rejected(view.state),
                };
                tagged(m, decision, false)
            }
            Err(e) => {
                self.went_down(m, e, ev);
                tagged(m, self.acquire_degraded(m, limits, ev), true)
            }
        }
    }

    fn acquire_degraded(&self, m: Mirror<'_>, limits: &Limits, ev: &mut Events) -> Acquire {
        match self.inner.policy {
            FaultPolicy::Local => {
                // The open period is the fleet's, published, if it chose one;
                // else the reset timeout.
                let limits = FleetPeriods {
                    limits,
                    settings: m.settings,
                    unpublished_ms: limits.reset_timeout_ms,
                };
                let decision = m.cell.acquire(&limits, &mut m.clock.lazy());
                if let Acquire::Admitted { transition, .. } = decision {
                    self.after_local_change(m, transition, ev);
                }
                decision
            }
            FaultPolicy::FailOpen => {
                self.apply_policy(m, ev);
                match m.cell.acquire_closed() {
                    Some(ticket) => Acquire::Admitted {
                        ticket,
                        transition: None,
                    },
                    None => Acquire::Rejected(m.cell.load().state()),
                }
            }
            FaultPolicy::FailClosed => {
                self.apply_policy(m, ev);
                Acquire::Rejected(State::Open)
            }
        }
    }

    /// Records how the call admitted by `ticket` ended; `slow`: a probe
    /// whose call was slow (the failure-rate rule counts it so).
    pub(crate) fn record(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        limits: &Limits,
        ev: &mut Events,
    ) -> Recorded {
        match self.begin_record(m, ticket, outcome, slow, limits, ev) {
            Step::Done(recorded) => recorded,
            Step::Ask(run) => {
                let answer = self.run(m, run, limits);
                self.answer_record(m, ticket, outcome, slow, limits, answer, ev)
            }
        }
    }

    /// What the mirror records alone, or the round trip the record needs.
    pub(super) fn begin_record(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        limits: &Limits,
        ev: &mut Events,
    ) -> Step<Recorded> {
        self.catch_up(m, ev);
        if ticket.is_inert() {
            // A shadow mode's: it counts nowhere, so it costs no round trip.
            return Step::Done(Recorded::Stale);
        }
        if ticket.is_valid_for(m.tag | DEGRADED_TAG) {
            // Issued by the mirror alone while the store was away: it counts
            // on the mirror while the store still is away, never at the
            // fleet, which may have reached the same generation since.
            if !self.is_down() || self.inner.policy != FaultPolicy::Local {
                return Step::Done(Recorded::Stale);
            }
            let recorded = record_on_mirror(m, ticket, outcome, slow, limits);
            self.after_local_change(m, recorded.transition(), ev);
            return Step::Done(recorded);
        }
        if outcome == Outcome::Ignored && !ticket.is_probe() {
            // Ignoring a closed-state call changes nothing anywhere: the
            // mirror only tells whether its episode is over.
            return Step::Done(m.cell.record(ticket, outcome, limits, &mut m.clock.lazy()));
        }
        if !self.is_down() {
            return Step::Ask(Op::Record(ticket, outcome, slow).into());
        }
        Step::Done(self.record_degraded(m, ticket, outcome, slow, limits, ev))
    }

    /// What the record did, from the fleet's answer to
    /// [`Fleet::begin_record`]'s ask.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_record(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        limits: &Limits,
        answer: Result<Reply, StorageError>,
        ev: &mut Events,
    ) -> Recorded {
        match answer {
            Ok(reply) => self.apply_record_reply(m, &reply, ev),
            Err(e) => {
                self.went_down(m, e, ev);
                self.record_degraded(m, ticket, outcome, slow, limits, ev)
            }
        }
    }

    /// Applies a record's reply to the mirror: what the record did.
    pub(super) fn apply_record_reply(&self, m: Mirror<'_>, reply: &Reply, ev: &mut Events) -> Recorded {
        self.apply_reply(m, reply, ev);
        match (reply.code, reply.transition) {
            (Code::Transitioned, Some(t)) => Recorded::Transitioned(t),
            (Code::Counted, _) => Recorded::Counted,
            _ => Recorded::Stale,
        }
    }

    fn record_degraded(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        limits: &Limits,
        ev: &mut Events,
    ) -> Recorded {
        match self.inner.policy {
            FaultPolicy::Local => {
                let recorded = record_on_mirror(m, ticket, outcome, slow, limits);
                self.after_local_change(m, recorded.transition(), ev);
                recorded
            }
            // Not counted anywhere while the store is away.
            FaultPolicy::FailOpen | FaultPolicy::FailClosed => {
                self.apply_policy(m, ev);
                Recorded::Stale
            }
        }
    }

    pub(crate) fn force(
        &self,
        m: Mirror<'_>,
        target: State,
        limits: &Limits,
        ev: &mut Events,
    ) -> Option<Transition> {
        self.catch_up(m, ev);
        if !self.is_down() {
            match self.run(m, Op::Force(target).into(), limits) {
                Ok(reply) => {
                    self.apply_reply(m, &reply, ev);
                    return reply.transition;
                }
                Err(e) => self.went_down(m, e, ev),
            }
        }
        let transition = m.cell.force(target, &mut m.clock.lazy());
        self.after_local_change(m, transition, ev);
        transition
    }

    pub(crate) fn reconcile(&self, m: Mirror<'_>, limits: &Limits, ev: &mut Events) -> Option<Transition> {
        match self.begin_reconcile(m, limits, ev) {
            Step::Done(transition) => transition,
            Step::Ask(run) => self.answer_reconcile(m, limits, self.run(m, run, limits), ev),
        }
    }

    /// The round trip a reconcile needs, or what the mirror does alone.
    pub(super) fn begin_reconcile(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        ev: &mut Events,
    ) -> Step<Option<Transition>> {
        match self.is_down() {
            false => Step::Ask(Op::Reconcile.into()),
            true => Step::Done(self.reconcile_degraded(m, limits, ev)),
        }
    }

    pub(super) fn answer_reconcile(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        answer: Result<Reply, StorageError>,
        ev: &mut Events,
    ) -> Option<Transition> {
        match answer {
            Ok(reply) => {
                self.apply_reply(m, &reply, ev);
                reply.transition
            }
            Err(e) => {
                self.went_down(m, e, ev);
                self.reconcile_degraded(m, limits, ev)
            }
        }
    }

    fn reconcile_degraded(&self, m: Mirror<'_>, limits: &Limits, ev: &mut Events) -> Option<Transition> {
        if self.inner.policy != FaultPolicy::Local {
            return None;
        }
        let transition = m.cell.reconcile(limits, &mut m.clock.lazy());
        self.after_local_change(m, transition, ev);
        transition
    }

    fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire) != 0
    }

    fn run(&self, m: Mirror<'_>, run: Run, limits: &Limits) -> Result<Reply, StorageError> {
        let seed = self.inner.seed(m.cell.load());
        let read = self.inner.read_point().1;
        let timeout = self.inner.store.command_timeout();
        let reply = self
            .inner
            .store
            .run_within(run.op, &seed, limits, run.window(), timeout)?;
        Ok(Reply { read, ..reply })
    }

    /// Mirrors the fleet's answer to this call; returns it in this
    /// breaker's time.
    fn apply_reply(&self, m: Mirror<'_>, reply: &Reply, ev: &mut Events) -> FleetView {
        let view = self.inner.localize(&reply.view);
        self.apply_view(m, reply.view.version, &view, reply.read, ev);
        view
    }

    /// Overwrites the mirror with `view` unless a newer one is already there,
    /// and notes the mirror's change of state.
    fn apply_view(&self, m: Mirror<'_>, version: u64, view: &FleetView, read: ReadAt, ev: &mut Events) {
        // While the store is away under FailOpen or FailClosed the mirror
        // is the policy's (as in `catch_up`); the recovery's view repairs it.
        if self.inner.policy != FaultPolicy::Local && self.is_down() {
            return;
        }
        let mut mailbox = self.inner.mailbox();
        if !mailbox.is_news(version, read) {
            // Not news, but an open view of the mirror's own episode still
            // says its period: republish it, in case a racing report of the
            // mirror's transition left none.
            if view.state == State::Open
                && m.settings.open_for.is_on()
                && view.snapshot().generation() == m.cell.load().generation()
                && m.cell.load().state() == State::Open
            {
                let ms = view.open_for_ms.unwrap_or_else(|| m.settings.reset_timeout_ms());
                m.settings.open_for.publish(view.snapshot().generation(), ms);
            }
            return;
        }
        mailbox.applied = version;
        mailbox.applied_moves = mailbox.moves;
        // While the store is away the mirror may move on its own again.
        mailbox.diverged = self.is_down();
        if view.state == State::Open && m.settings.open_for.is_on() {
            // Before the mirror opens, so no call sees the episode open
            // without its period (the reset timeout if no backoff chose it).
            let ms = view.open_for_ms.unwrap_or_else(|| m.settings.reset_timeout_ms());
            m.settings.open_for.publish(view.snapshot().generation(), ms);
        }
        ev.transition(m.cell.sync_from(view));
        mailbox.mirror = m.cell.load();
    }

    /// The mirror moved on its own (the policy, a decision while the store
    /// was away): it no longer shows the fleet's view of version `applied`,
    /// so the next view applies whatever its version, even a quiet fleet's
    /// refresh of the same one.
    fn after_local_change(&self, m: Mirror<'_>, transition: Option<Transition>, ev: &mut Events) {
        let mut mailbox = self.inner.mailbox();
        mailbox.mirror = m.cell.load();
        mailbox.diverged = true;
        mailbox.moves += 1;
        drop(mailbox);
        ev.transition(transition);
    }

    /// A call met a fault: stop talking to the store until the watcher has
    /// reconnected, report the fault, and apply the policy to the mirror.
    fn went_down(&self, m: Mirror<'_>, error: StorageError, ev: &mut Events) {
        self.inner.note_health(false, Some(&error));
        self.inner.mark_down(None);
        ev.storage_error(error);
        self.apply_policy(m, ev);
    }

    /// Puts the mirror where the policy wants it while the store is away.
    fn apply_policy(&self, m: Mirror<'_>, ev: &mut Events) {
        let target = match self.inner.policy {
            FaultPolicy::Local => return,
            FaultPolicy::FailOpen => State::Closed,
            FaultPolicy::FailClosed => State::Open,
        };
        if m.cell.load().state() == target {
            return;
        }
        let transition = m.cell.force(target, &mut m.clock.lazy());
        self.after_local_change(m, transition, ev);
    }
}

impl Fleet {
    /// Has the fleet's script decide half-open by `rule` (nothing to send
    /// under the successes rule).
    pub(crate) fn attach_probe_rule(&self, rule: ProbeRule) {
        if let Some(args) = RateArgs::of(rule) {
            self.inner.store.attach_rate(args);
        }
    }

    /// Has the fleet's script apply `backoff` when this breaker's runs open
    /// the fleet (the builder refuses a custom one).
    pub(crate) fn attach_backoff(&self, backoff: &crate::machine::backoff::Backoff) {
        if let Some((multiplier, cap, jitter)) = backoff.exponential_parts() {
            self.inner.store.attach_backoff(BackoffArgs {
                multiplier,
                cap_ms: crate::machine::clock::duration_to_ms(cap),
                jitter,
            });
        }
    }
}

impl Drop for Fleet {
    /// Takes this breaker off its watcher's list: no wait on the watcher or
    /// the network (the watcher ends by itself once its list is empty).
    fn drop(&mut self) {
        self.hub.leave(&self.inner);
    }
}

/// A cold path's next step: done, or the round trip it needs first.
pub(crate) enum Step<T> {
    Done(T),
    Ask(Run),
}

/// One script run a cold path asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) op: Op,
    /// A windowed record's counts (marked sent when it was asked for, so
    /// they travel in this run only) and the epoch its call counts in.
    pub(crate) windowed: Option<(WindowArgs, u64)>,
}

impl Run {
    /// The rate window's part of the run's arguments, if it has one.
    pub(crate) fn window(&self) -> Option<&WindowArgs> {
        self.windowed.as_ref().map(|(args, _)| args)
    }
}

impl From<Op> for Run {
    fn from(op: Op) -> Run {
        Run { op, windowed: None }
    }
}

/// Records on the mirror alone (the store is away), a slow probe as slow.
fn record_on_mirror(
    m: Mirror<'_>,
    ticket: Ticket,
    outcome: Outcome,
    slow: bool,
    limits: &Limits,
) -> Recorded {
    match slow {
        true => m.cell.record_slow(ticket, outcome, limits, &mut m.clock.lazy()),
        false => m.cell.record(ticket, outcome, limits, &mut m.clock.lazy()),
    }
}

/// Tags an admission's ticket (see [`Fleet::acquire`]).
fn tagged(m: Mirror<'_>, decision: Acquire, degraded: bool) -> Acquire {
    match decision {
        Acquire::Admitted { ticket, transition } => Acquire::Admitted {
            ticket: ticket.with_tag(if degraded { m.tag | DEGRADED_TAG } else { m.tag }),
            transition,
        },
        rejected => rejected,
    }
}

fn zero_limits() -> Limits {
    Limits {
        fail_max: 1,
        success_threshold: 1,
        half_open_max_calls: 1,
        reset_timeout_ms: 0,
        probe_lease_ms: 0,
        probe_rule: ProbeRule::Successes,
    }
}

impl Mailbox {
    /// A view read since the mirror last moved on its own (one read before
    /// is older than the mirror, whatever its version), of a newer version,
    /// or of the same one if the mirror diverged from it.
    fn is_news(&self, version: u64, read: ReadAt) -> bool {
        let fresh = match read {
            ReadAt::After(moves) => moves == self.moves,
            ReadAt::Unknown => self.moves == self.applied_moves,
        };
        fresh && (version > self.applied || (version == self.applied && self.diverged))
    }
}

impl Inner {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn health(&self) -> MutexGuard<'_, StorageHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a fault and whether the store is now away.
    fn note_health(&self, reachable: bool, error: Option<&StorageError>) {
        let mut health = self.health();
        if health.reachable != reachable {
            health.reachable = reachable;
            health.since = Instant::now();
        }
        if let Some(error) = error {
            health.last_error = Some(error.to_string());
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire) != 0
    }

    /// The seed for a missing hash: the mirror, its opened-at made an age.
    pub(super) fn seed(&self, mirror: Snapshot) -> Seed {
        let opened_ago_ms = match mirror.state() {
            State::Open => self.clock.lazy().now_ms().saturating_sub(mirror.opened_at_ms()),
            _ => 0,
        };
        Seed {
            state: mirror.state(),
            generation: mirror.generation(),
            failures: mirror.failures(),
            opened_ago_ms,
        }
    }

    /// The fleet's view in this breaker's time (ages become timestamps).
    pub(crate) fn localize(&self, raw: &RawView) -> FleetView {
        let now = self.clock.lazy().now_ms();
        FleetView {
            state: raw.state,
            generation: raw.generation,
            failures: raw.failures,
            opened_at_ms: now.saturating_sub(raw.opened_ago_ms),
            in_flight: raw.in_flight,
            successes: raw.successes,
            probe_admitted_at_ms: now.saturating_sub(raw.probe_ago_ms),
            probe_slots: raw.probe_slots,
            open_for_ms: raw.open_for_ms,
            probe_tally: raw.probe_tally,
        }
    }

    /// Reads the fleet's state (seeding it from the mirror if missing), and
    /// when it began reading.
    pub(crate) fn sync(&self) -> Result<(RawView, ReadAt), StorageError> {
        let (mirror, read) = self.read_point();
        let seed = self.seed(mirror);
        Ok((self.store.run(Op::Sync, &seed, &zero_limits())?.view, read))
    }

    /// The mirror a run begun now is seeded from, and when it was begun.
    pub(super) fn read_point(&self) -> (Snapshot, ReadAt) {
        let mailbox = self.mailbox();
        (mailbox.mirror, ReadAt::After(mailbox.moves))
    }

    /// Leaves a fleet view for the next call to apply.
    pub(crate) fn post_view(&self, raw: &RawView, read: ReadAt) {
        let view = self.localize(raw);
        let mut mailbox = self.mailbox();
        if !mailbox.is_news(raw.version, read) {
            return;
        }
        // The newer version, or the same one read later.
        if mailbox.view.map_or(true, |(v, _, _)| {
            raw.version > v || (raw.version == v && read != ReadAt::Unknown)
        }) {
            mailbox.view = Some((raw.version, view, read));
            self.pending.store(1, Ordering::Release);
        }
    }

    /// Leaves a fault for the next call to report.
    pub(crate) fn post_error(&self, error: StorageError) {
        self.mailbox().error = Some(error);
        self.pending.store(1, Ordering::Release);
    }

    /// The store failed: calls stop using it until the watcher reconnects.
    /// A fault the watcher saw (`error`) is left for the next call to
    /// report, in the same step, so no call sees the store down without it.
    pub(crate) fn mark_down(&self, error: Option<StorageError>) {
        if error.is_some() {
            self.note_health(false, error.as_ref());
        }
        {
            let mut mailbox = self.mailbox();
            if let Some(error) = error {
                mailbox.error = Some(error);
            }
            if self.down.swap(1, Ordering::AcqRel) == 0 {
                mailbox.diverged = true;
                mailbox.went_down = true;
            }
            self.pending.store(1, Ordering::Release);
        }
        self.store.forget_connections();
        if let Some(hub) = self.hub.upgrade() {
            hub.nudge();
        }
    }

    pub(crate) fn mark_up(&self) {
        self.down.store(0, Ordering::Release);
        self.note_health(true, None);
        // A view held back while the policy ruled the mirror applies now.
        if self.mailbox().view.is_some() {
            self.pending.store(1, Ordering::Release);
        }
    }
}
