//! The fleet seam: what a breaker whose state is shared does on its cold
//! paths, and how its mirror follows the fleet.

use super::protocol::{Code, Op, RawView, Reply, Seed};
use super::store::Store;
use super::{watcher, FaultPolicy, RedisState, StorageError};
use crate::breaker::CircuitBreaker;
use crate::clock::ClockSource;
use crate::state::{
    Acquire, FleetView, Gate, Limits, Now, Outcome, Recorded, Snapshot, State, Ticket, Transition,
};
use crate::sync::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A breaker's link to its fleet: owned by the breaker, stopped with it.
pub(crate) struct Fleet {
    inner: Arc<Inner>,
    watcher: Option<JoinHandle<()>>,
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
    stop: AtomicU32,
    /// 1 when `mailbox` holds something for the next call to apply.
    pending: AtomicU32,
    mailbox: Mutex<Mailbox>,
    wake: Condvar,
}

/// Everything the mirror is reconciled against, under one lock (held only
/// for a few loads and one CAS; never across I/O or a listener).
struct Mailbox {
    /// Version of the fleet view the mirror shows; 0 while the store is
    /// away, so the first view after recovery applies whatever its version.
    applied: u64,
    /// The newest fleet view the watcher brought, not yet applied.
    view: Option<(u64, FleetView)>,
    /// The watcher saw the store fail: apply the policy at the next call.
    went_down: bool,
    /// A fault the watcher saw, to report to listeners at the next call.
    error: Option<StorageError>,
    /// The mirror as last seen by a call: what an empty Redis is seeded from.
    mirror: Snapshot,
}

impl Fleet {
    pub(crate) fn start(state: RedisState, breaker: &CircuitBreaker) -> Fleet {
        let namespace = match state.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ if !breaker.name().is_empty() => breaker.name().to_owned(),
            _ => "default".to_owned(),
        };
        let inner = Arc::new(Inner {
            store: Store::new(
                state.transport(),
                &namespace,
                state.notifications,
                state.command_timeout,
                state.connect_timeout,
            ),
            policy: state.policy,
            refresh_interval: state.refresh_interval,
            max_backoff: state.max_backoff,
            announce: state.notifications,
            clock: breaker.clock_source().clone(),
            down: AtomicU32::new(0),
            stop: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            mailbox: Mutex::new(Mailbox {
                applied: 0,
                view: None,
                went_down: false,
                error: None,
                mirror: breaker.mirror().load(),
            }),
            wake: Condvar::new(),
        });
        let thread_inner = Arc::clone(&inner);
        let watcher = std::thread::Builder::new()
            .name("breakerbox-redis".into())
            .spawn(move || watcher::run(thread_inner))
            .map_err(|e| inner.post_error(StorageError::thread(&e)))
            .ok();
        Fleet { inner, watcher }
    }

    /// The first sync, on the building thread: a late joiner starts in the
    /// fleet's state (not reported as a change: it is where it begins); an
    /// empty Redis is seeded with a closed breaker.
    pub(crate) fn first_sync(&self, b: &CircuitBreaker) {
        match self.run(b, Op::Sync, &zero_limits()) {
            Ok(reply) => {
                let view = self.inner.localize(&reply.view);
                self.apply_view(b, reply.view.version, &view, false);
            }
            Err(e) => self.went_down(b, e),
        }
        self.catch_up(b);
    }

    /// Applies what the watcher brought: one atomic load when there is nothing.
    #[inline]
    pub(crate) fn catch_up(&self, b: &CircuitBreaker) {
        if self.inner.pending.load(Ordering::Acquire) != 0 {
            self.catch_up_slow(b);
        }
    }

    #[cold]
    fn catch_up_slow(&self, b: &CircuitBreaker) {
        let (view, went_down, error) = {
            let mut mailbox = self.inner.mailbox();
            self.inner.pending.store(0, Ordering::Release);
            (
                mailbox.view.take(),
                std::mem::take(&mut mailbox.went_down),
                mailbox.error.take(),
            )
        };
        if let Some(error) = error {
            b.report_storage_error(&error);
        }
        if went_down && self.is_down() {
            self.apply_policy(b);
        }
        if let Some((version, view)) = view {
            self.apply_view(b, version, &view, true);
        }
    }

    pub(crate) fn acquire(&self, b: &CircuitBreaker, limits: &Limits) -> Acquire {
        if !self.is_down() {
            match b.mirror().gate(limits, &mut b.clock_source().lazy()) {
                Gate::Admit(ticket) => {
                    return Acquire::Admitted {
                        ticket,
                        transition: None,
                    }
                }
                Gate::Reject(state) => return Acquire::Rejected(state),
                Gate::AskFleet => {}
            }
            match self.run(b, Op::Acquire, limits) {
                Ok(reply) => {
                    let view = self.apply_reply(b, &reply);
                    return match reply.code {
                        Code::AdmitClosed => Acquire::Admitted {
                            ticket: view.ticket(false),
                            transition: None,
                        },
                        Code::AdmitProbe => Acquire::Admitted {
                            ticket: view.ticket(true),
                            transition: reply.transition,
                        },
                        _ => Acquire::Rejected(view.state),
                    };
                }
                Err(e) => self.went_down(b, e),
            }
        }
        self.acquire_degraded(b, limits)
    }

    fn acquire_degraded(&self, b: &CircuitBreaker, limits: &Limits) -> Acquire {
        match self.inner.policy {
            FaultPolicy::Local => {
                let decision = b.mirror().acquire(limits, &mut b.clock_source().lazy());
                if let Acquire::Admitted {
                    transition: Some(t), ..
                } = decision
                {
                    self.after_local_change(b, Some(t));
                }
                decision
            }
            FaultPolicy::FailOpen => {
                self.apply_policy(b);
                match b.mirror().acquire_closed() {
                    Some(ticket) => Acquire::Admitted {
                        ticket,
                        transition: None,
                    },
                    None => Acquire::Rejected(b.mirror().load().state()),
                }
            }
            FaultPolicy::FailClosed => {
                self.apply_policy(b);
                Acquire::Rejected(State::Open)
            }
        }
    }

    pub(crate) fn record(
        &self,
        b: &CircuitBreaker,
        ticket: Ticket,
        outcome: Outcome,
        limits: &Limits,
    ) -> Recorded {
        if outcome == Outcome::Ignored && !ticket.is_probe() {
            // Ignoring a closed-state call changes nothing anywhere: the
            // mirror only tells whether its episode is over.
            return b
                .mirror()
                .record(ticket, outcome, limits, &mut b.clock_source().lazy());
        }
        if !self.is_down() {
            match self.run(b, Op::Record(ticket, outcome), limits) {
                Ok(reply) => {
                    self.apply_reply(b, &reply);
                    return match (reply.code, reply.transition) {
                        (Code::Transitioned, Some(t)) => Recorded::Transitioned(t),
                        (Code::Counted, _) => Recorded::Counted,
                        _ => Recorded::Stale,
                    };
                }
                Err(e) => self.went_down(b, e),
            }
        }
        match self.inner.policy {
            FaultPolicy::Local => {
                let recorded = b
                    .mirror()
                    .record(ticket, outcome, limits, &mut b.clock_source().lazy());
                self.after_local_change(b, recorded.transition());
                recorded
            }
            // Not counted anywhere while the store is away.
            FaultPolicy::FailOpen | FaultPolicy::FailClosed => {
                self.apply_policy(b);
                Recorded::Stale
            }
        }
    }

    pub(crate) fn force(&self, b: &CircuitBreaker, target: State) -> Option<Transition> {
        if !self.is_down() {
            match self.run(b, Op::Force(target), &b.limits()) {
                Ok(reply) => {
                    self.apply_reply(b, &reply);
                    return reply.transition;
                }
                Err(e) => self.went_down(b, e),
            }
        }
        let transition = b.mirror().force(target, &mut b.clock_source().lazy());
        self.after_local_change(b, transition);
        transition
    }

    pub(crate) fn reconcile(&self, b: &CircuitBreaker, limits: &Limits) -> Option<Transition> {
        if !self.is_down() {
            match self.run(b, Op::Reconcile, limits) {
                Ok(reply) => {
                    self.apply_reply(b, &reply);
                    return reply.transition;
                }
                Err(e) => self.went_down(b, e),
            }
        }
        if self.inner.policy != FaultPolicy::Local {
            return None;
        }
        let transition = b.mirror().reconcile(limits, &mut b.clock_source().lazy());
        self.after_local_change(b, transition);
        transition
    }

    fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire) != 0
    }

    fn run(&self, b: &CircuitBreaker, op: Op, limits: &Limits) -> Result<Reply, StorageError> {
        let seed = self.inner.seed(b.mirror().load());
        self.inner.store.run(op, &seed, limits)
    }

    /// Mirrors the fleet's answer; returns it in this breaker's time.
    fn apply_reply(&self, b: &CircuitBreaker, reply: &Reply) -> FleetView {
        let view = self.inner.localize(&reply.view);
        self.apply_view(b, reply.view.version, &view, true);
        view
    }

    /// Overwrites the mirror with `view` unless a newer one is already there,
    /// and reports the mirror's change of state once (if `report`).
    fn apply_view(&self, b: &CircuitBreaker, version: u64, view: &FleetView, report: bool) {
        let transition = {
            let mut mailbox = self.inner.mailbox();
            if version <= mailbox.applied {
                return;
            }
            // While the store is away the mirror may move on its own (the
            // policy, local decisions): keep `applied` at 0 so that the
            // first view after recovery overrides it whatever its version.
            if !self.is_down() {
                mailbox.applied = version;
            }
            let transition = b.mirror().sync_from(view);
            mailbox.mirror = b.mirror().load();
            transition
        };
        if let Some(t) = transition.filter(|_| report) {
            b.emit_transition(t);
        }
    }

    fn after_local_change(&self, b: &CircuitBreaker, transition: Option<Transition>) {
        self.inner.mailbox().mirror = b.mirror().load();
        if let Some(t) = transition {
            b.emit_transition(t);
        }
    }

    /// A call met a fault: stop talking to the store until the watcher has
    /// reconnected, report the fault, and apply the policy to the mirror.
    fn went_down(&self, b: &CircuitBreaker, error: StorageError) {
        self.inner.mark_down(None);
        b.report_storage_error(&error);
        self.apply_policy(b);
    }

    /// Puts the mirror where the policy wants it while the store is away.
    fn apply_policy(&self, b: &CircuitBreaker) {
        let target = match self.inner.policy {
            FaultPolicy::Local => return,
            FaultPolicy::FailOpen => State::Closed,
            FaultPolicy::FailClosed => State::Open,
        };
        if b.mirror().load().state() == target {
            return;
        }
        let transition = b.mirror().force(target, &mut b.clock_source().lazy());
        self.after_local_change(b, transition);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.inner.stop.store(1, Ordering::Release);
        self.inner.wake.notify_all();
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

fn zero_limits() -> Limits {
    Limits {
        fail_max: 1,
        success_threshold: 1,
        half_open_max_calls: 1,
        reset_timeout_ms: 0,
        probe_lease_ms: 0,
    }
}

impl Inner {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) != 0
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire) != 0
    }

    /// The seed for a missing hash: the mirror, its opened-at made an age.
    fn seed(&self, mirror: Snapshot) -> Seed {
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
        }
    }

    /// Reads the fleet's state (seeding it from the mirror if missing).
    pub(crate) fn sync(&self) -> Result<RawView, StorageError> {
        let mirror = self.mailbox().mirror;
        let seed = self.seed(mirror);
        Ok(self.store.run(Op::Sync, &seed, &zero_limits())?.view)
    }

    /// Leaves a fleet view for the next call to apply.
    pub(crate) fn post_view(&self, raw: &RawView) {
        let view = self.localize(raw);
        let mut mailbox = self.mailbox();
        if raw.version <= mailbox.applied {
            return;
        }
        if mailbox.view.map_or(true, |(v, _)| raw.version > v) {
            mailbox.view = Some((raw.version, view));
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
        {
            let mut mailbox = self.mailbox();
            if let Some(error) = error {
                mailbox.error = Some(error);
            }
            if self.down.swap(1, Ordering::AcqRel) == 0 {
                mailbox.applied = 0;
                mailbox.went_down = true;
            }
            self.pending.store(1, Ordering::Release);
        }
        self.store.forget_connections();
        self.wake.notify_all();
    }

    pub(crate) fn mark_up(&self) {
        self.down.store(0, Ordering::Release);
    }

    /// Sleeps up to `timeout`, waking early when the breaker is dropped or a
    /// call marks the store down.
    pub(crate) fn sleep(&self, timeout: Duration) {
        let mailbox = self.mailbox();
        if self.stopped() {
            return;
        }
        let _ = self.wake.wait_timeout(mailbox, timeout);
    }
}
