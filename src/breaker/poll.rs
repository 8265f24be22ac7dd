//! The breaker's cold paths for calls that must not block their thread (the
//! async calls, the tower layer): polled, they never wait on the network.
//! A local breaker takes the very paths of the blocking API. A shared one
//! decides on the polling thread whatever its mirror can, and hands a round
//! trip it needs to its endpoint's workers (see `redis::offload`), returning
//! `Pending` until the reply is in; the decision made from the reply, and
//! how it is reported, are the blocking path's own.

use super::policy::Route;
use super::CircuitBreaker;
use crate::breaker::backend::RoundTrip;
use crate::breaker::error::Rejected;
use crate::machine::events::Events;
use crate::machine::state::{Outcome, Recorded, Ticket};
use std::task::{Context, Poll};

impl CircuitBreaker {
    /// [`CircuitBreaker::acquire_ticket`], polled. `io` holds the round
    /// trip in flight between polls; dropped, the round trip is settled
    /// without the caller (a probe the fleet admitted meanwhile is freed).
    #[inline]
    pub(crate) fn poll_acquire(
        &self,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Ticket, Rejected>> {
        if io.is_idle() && !self.backend.may_wait() {
            return Poll::Ready(self.acquire_ticket());
        }
        self.poll_acquire_shared(io, cx)
    }

    /// The steps of [`CircuitBreaker::acquire_ticket`], the backend's polled.
    #[inline(never)]
    fn poll_acquire_shared(
        &self,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Ticket, Rejected>> {
        if io.is_idle() {
            if !self.listeners.is_empty() {
                self.notify_before_call();
            }
            if self.backend.has_news() {
                self.catch_up();
            }
            if let Some(ticket) = self.state.acquire_closed() {
                return Poll::Ready(Ok(ticket.with_tag(self.tag)));
            }
            if let Some((state, left_ms)) = self.backend.rejects(self.core(), &self.settings) {
                return Poll::Ready(self.reject(state, left_ms));
            }
        }
        let mut events = Events::default();
        match self.backend.poll_acquire(self.core(), io, cx, &mut events) {
            Poll::Pending => {
                self.report(events);
                Poll::Pending
            }
            Poll::Ready(decision) => Poll::Ready(self.acquired(decision, events, |ticket| {
                self.record_detached(ticket, Outcome::Ignored)
            })),
        }
    }

    /// [`CircuitBreaker::record`] of a ticket this breaker issued, polled:
    /// ready once the record is done (for a shared breaker, once the fleet
    /// answered), so the [`Recorded`] is what the fleet did. A ticket it did
    /// not issue is [`Recorded::Stale`].
    /// `started_ms` is [`CircuitBreaker::call_timer_start`]'s reading at
    /// the call's start: the call's duration counts toward the slow-call
    /// rate.
    #[inline]
    pub(crate) fn poll_record(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        started_ms: Option<u64>,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
    ) -> Poll<Recorded> {
        if io.is_idle() && !self.backend.may_wait() {
            if !self.backend.issued(ticket, self.tag) {
                return Poll::Ready(Recorded::Stale);
            }
            let elapsed_ms = self.elapsed_since(started_ms);
            return Poll::Ready(self.record_valid_timed(ticket, outcome, elapsed_ms));
        }
        self.poll_record_shared(ticket, outcome, started_ms, io, cx)
    }

    /// The steps of [`CircuitBreaker::record`], the backend's polled: the
    /// record is routed once, on the first poll (a windowed failure's run
    /// then carries the window's counts), and later polls go on with the
    /// round trip in flight.
    #[inline(never)]
    fn poll_record_shared(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        started_ms: Option<u64>,
        io: &mut RoundTrip,
        cx: &mut Context<'_>,
    ) -> Poll<Recorded> {
        let mut events = Events::default();
        if io.is_idle() {
            if !self.backend.issued(ticket, self.tag) {
                return Poll::Ready(Recorded::Stale);
            }
            let decided = match self.route(ticket, outcome, self.elapsed_since(started_ms)) {
                Route::Done(recorded) => Some(recorded),
                Route::Swallowed => return Poll::Ready(Recorded::Counted),
                Route::Window(w, call) => self.backend.send_windowed(self.core(), w, call, io, &mut events),
                Route::SlowProbe => self
                    .backend
                    .send_slow(self.core(), ticket, outcome, io, &mut events),
                Route::Backend => None,
            };
            if let Some(recorded) = decided {
                return Poll::Ready(self.report_record(recorded, outcome, events));
            }
        }
        match self
            .backend
            .poll_record(self.core(), ticket, outcome, io, cx, &mut events)
        {
            Poll::Pending => {
                self.report(events);
                Poll::Pending
            }
            Poll::Ready(recorded) => Poll::Ready(self.report_record(recorded, outcome, events)),
        }
    }

    /// Records without waiting on the network, and without telling the
    /// caller what the record did: for a call that is gone (dropped,
    /// cancelled, panicked). A shared breaker hands a record that needs the
    /// fleet to its workers (a windowed one with the counts it carries);
    /// its outcome is told to the listeners when it is handed off, its
    /// transition (if any) once the mirror learns of it.
    pub(crate) fn record_detached(&self, ticket: Ticket, outcome: Outcome) {
        if !self.backend.may_wait() {
            let _ = self.record(ticket, outcome);
            return;
        }
        if !self.backend.issued(ticket, self.tag) {
            return;
        }
        let mut events = Events::default();
        let core = self.core();
        let recorded = match self.route(ticket, outcome, None) {
            Route::Done(recorded) => Some(recorded),
            Route::Swallowed => return,
            Route::Window(w, call) => self.backend.record_windowed_detached(core, w, call, &mut events),
            Route::SlowProbe => Some(self.backend.record_slow(core, ticket, outcome, &mut events)),
            Route::Backend => self.backend.record_detached(core, ticket, outcome, &mut events),
        };
        // Handed off (`None`): told as sent, its answer not known here.
        let _ = self.report_record(recorded.unwrap_or(Recorded::Counted), outcome, events);
    }

    /// Whether this breaker's cold paths may wait on the network (a shared
    /// breaker): the tower layer then asks for admission when polled ready.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    #[inline]
    pub(crate) fn may_wait(&self) -> bool {
        self.backend.may_wait()
    }
}
