//! A fleet-wide rate window: each process counts in its own lock-free
//! window and sends the script only what it has not sent before, riding on
//! the runs its failures and slow calls make anyway, and otherwise from the
//! watcher at most once per bucket (a time window's bucket width, or a count
//! window's bucket of calls). A closed-state success never waits on I/O.
//!
//! What a process counts while its store is away decides locally (under
//! [`FaultPolicy::Local`]) and is never sent: it is marked sent as it is
//! counted, and once more when the store comes back, so nothing reaches the
//! fleet twice or late. A run that failed is never repeated, and what it
//! carried is not sent again.

use super::{Fleet, Inner, Mirror, Run, Step, DEGRADED_TAG};
use crate::breaker::backend::WindowedCall;
use crate::machine::events::Events;
use crate::machine::state::{Limits, Outcome, Recorded, Ticket};
use crate::machine::window::{Counts, Window, WindowSource, MAX_WINDOW_BUCKETS};
use crate::redis::protocol::{Op, Reply, WindowArgs};
use crate::redis::{FaultPolicy, StorageError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

const RING: usize = MAX_WINDOW_BUCKETS as usize;

/// A shared breaker's window and what of it the fleet has been sent.
pub(crate) struct FleetWindow {
    source: Arc<dyn WindowSource>,
    sent: Mutex<Sent>,
}

/// Per ring slot of the local window: the epoch and how much of its counts
/// went to the fleet (or were absorbed while the store was away).
struct Sent {
    slots: [(u64, Counts); RING],
    /// The epoch of the latest run that carried counts.
    flushed_epoch: Option<u64>,
    /// The store was away at the watcher's last look.
    was_down: bool,
}

impl FleetWindow {
    pub(crate) fn new(source: Arc<dyn WindowSource>) -> FleetWindow {
        FleetWindow {
            source,
            sent: Mutex::new(Sent {
                slots: [(u64::MAX, Counts::default()); RING],
                flushed_epoch: None,
                was_down: false,
            }),
        }
    }

    fn sent(&self) -> MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sent {
    /// What the window at `epoch` holds beyond what was sent, with the
    /// slots as they would be once it is.
    fn pending(&self, w: &Window, epoch: u64) -> (Counts, [(u64, Counts); RING]) {
        let mut slots = self.slots;
        let mut delta = Counts::default();
        for e in epoch.saturating_sub(w.buckets() - 1)..=epoch {
            let now = w.bucket_counts(e);
            let slot = &mut slots[e as usize % RING];
            let sent = if slot.0 == e { slot.1 } else { Counts::default() };
            delta = delta.plus(now.beyond(sent));
            *slot = (e, now);
        }
        (delta, slots)
    }

    /// Marks everything the window holds at `epoch` as sent; returns it.
    fn take(&mut self, w: &Window, epoch: u64) -> Counts {
        let (delta, slots) = self.pending(w, epoch);
        self.slots = slots;
        delta
    }
}

impl Fleet {
    /// Gives the fleet the window whose counts it sends.
    pub(crate) fn attach_window(&self, source: Arc<dyn WindowSource>) {
        let _ = self.inner.window.set(FleetWindow::new(source));
    }

    /// A windowed breaker's closed-state failure or slow call: the fleet
    /// decides on the summed window, in the one run this call makes, which
    /// also carries every count of this process not sent yet. While the
    /// store is away the local window decides, as the fault policy says.
    pub(crate) fn record_windowed(
        &self,
        m: Mirror<'_>,
        call: WindowedCall,
        limits: &Limits,
        ev: &mut Events,
    ) -> Recorded {
        match self.begin_windowed(m, call, ev) {
            Step::Done(recorded) => recorded,
            Step::Ask(run) => self.answer_windowed(m, call.ticket, run, self.run(m, run, limits), ev),
        }
    }

    /// What the local window decides alone, or the run the record needs,
    /// carrying the counts not sent yet (marked sent here, so they travel
    /// in that run only, whoever makes it).
    pub(in crate::redis) fn begin_windowed(
        &self,
        m: Mirror<'_>,
        call: WindowedCall,
        ev: &mut Events,
    ) -> Step<Recorded> {
        let WindowedCall { ticket, failed, slow } = call;
        self.catch_up(m, ev);
        let Some((fw, w)) = self.inner.fleet_window() else {
            return Step::Done(Recorded::Stale);
        };
        let epoch = w.epoch(|| m.clock.coarse_ms());
        let alone = ticket.is_valid_for(m.tag | DEGRADED_TAG);
        if alone && !self.is_down() {
            // Issued by the mirror alone while the store was away.
            return Step::Done(Recorded::Stale);
        }
        if self.is_down() {
            return Step::Done(self.decide_alone(m, fw, w, epoch, call, ev));
        }
        // Counted and taken under the lock, so this call's own failure
        // travels with it, never in the watcher's flush.
        let delta = {
            let mut sent = fw.sent();
            if sent.was_down {
                // Counted while the store was away: never sent.
                sent.take(w, epoch);
                sent.was_down = false;
            }
            w.add(epoch, failed, slow);
            sent.flushed_epoch = Some(epoch);
            sent.take(w, epoch)
        };
        w.check(epoch, || None::<()>);
        let outcome = if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let args = WindowArgs {
            rule: w.fleet_rule(),
            generation: ticket.episode(),
            delta,
        };
        Step::Ask(Run {
            op: Op::Record(ticket, outcome, false),
            windowed: Some((args, epoch)),
        })
    }

    /// What the record did, from the fleet's answer to
    /// [`Fleet::begin_windowed`]'s run.
    pub(in crate::redis) fn answer_windowed(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        run: Run,
        answer: Result<Reply, StorageError>,
        ev: &mut Events,
    ) -> Recorded {
        match answer {
            Ok(reply) => self.apply_record_reply(m, &reply, ev),
            Err(e) => {
                self.went_down(m, e, ev);
                self.inner.windowed_run_failed();
                match (self.inner.policy, self.inner.fleet_window(), run.windowed) {
                    (FaultPolicy::Local, Some((_, w)), Some((_, epoch))) => {
                        self.decide_locally(m, w, epoch, ticket, ev)
                    }
                    _ => Recorded::Stale,
                }
            }
        }
    }

    /// The store is away: under `Local` the call counts in the local window,
    /// which decides on the mirror, and is marked sent; otherwise it counts
    /// nowhere.
    fn decide_alone(
        &self,
        m: Mirror<'_>,
        fw: &FleetWindow,
        w: &Window,
        epoch: u64,
        call: WindowedCall,
        ev: &mut Events,
    ) -> Recorded {
        let WindowedCall { ticket, failed, slow } = call;
        if self.inner.policy != FaultPolicy::Local {
            self.apply_policy(m, ev);
            return Recorded::Stale;
        }
        {
            let mut sent = fw.sent();
            w.add(epoch, failed, slow);
            sent.take(w, epoch);
            sent.was_down = true;
        }
        self.decide_locally(m, w, epoch, ticket, ev)
    }

    /// The local window's decision on the mirror (the call is counted).
    fn decide_locally(
        &self,
        m: Mirror<'_>,
        w: &Window,
        epoch: u64,
        ticket: Ticket,
        ev: &mut Events,
    ) -> Recorded {
        let transition = w.check(epoch, || m.cell.trip(ticket, &mut m.clock.lazy()));
        self.after_local_change(m, transition, ev);
        match transition {
            Some(t) => Recorded::Transitioned(t),
            None => Recorded::Counted,
        }
    }
}

impl Inner {
    /// The attached window, if the breaker has one.
    fn fleet_window(&self) -> Option<(&FleetWindow, &Window)> {
        let fw = self.window.get()?;
        Some((fw, fw.source.window()?))
    }

    /// A windowed record's run failed: what it carried is not sent again
    /// (it may have counted), nor what the window counts until the store
    /// is back.
    pub(in crate::redis) fn windowed_run_failed(&self) {
        if let Some(fw) = self.window.get() {
            fw.sent().was_down = true;
        }
    }

    /// The watcher's flush: sends the counts not sent yet, at most once per
    /// bucket (a time window's width; a count window's bucket of calls),
    /// and decides nothing. While the store is away, and once when it is
    /// back, it marks them sent instead.
    pub(crate) fn flush_due(&self) {
        let Some(fw) = self.window.get() else {
            return;
        };
        let Some(w) = fw.source.window() else {
            return;
        };
        let epoch = w.epoch(|| self.clock.coarse_ms());
        let rule = w.fleet_rule();
        let delta = {
            let mut sent = fw.sent();
            if self.is_down() || sent.was_down {
                sent.take(w, epoch);
                sent.was_down = self.is_down();
                return;
            }
            let (delta, slots) = sent.pending(w, epoch);
            let due = match rule.count_based {
                true => delta.calls >= rule.span,
                false => sent.flushed_epoch != Some(epoch),
            };
            if !due || delta.calls == 0 {
                return;
            }
            sent.slots = slots;
            sent.flushed_epoch = Some(epoch);
            if rule.count_based {
                w.check(epoch, || None::<()>);
            }
            delta
        };
        let (mirror, read) = self.read_point();
        let args = WindowArgs {
            rule,
            generation: mirror.generation(),
            delta,
        };
        let seed = self.seed(mirror);
        match self
            .store
            .run_windowed(Op::Flush, &seed, &super::zero_limits(), &args)
        {
            Ok(reply) => self.post_view(&reply.view, read),
            Err(e) => self.mark_down(Some(e)),
        }
    }
}
