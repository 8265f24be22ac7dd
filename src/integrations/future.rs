//! Protecting async calls, on any executor.
//!
//! [`CircuitBreaker::call_async`] is the async twin of
//! [`CircuitBreaker::call`]. It asks for admission when first polled, so a
//! rejected call never constructs (or never polls) the protected future, and
//! an admitted one is polled to completion once — never run twice.
//!
//! # Cancellation
//!
//! A future dropped before it finishes (a `select!` that lost, a timeout, an
//! aborted task) records its call as [`Outcome::Ignored`] by default: the
//! dependency never answered, so the call counts neither way, and a
//! half-open probe's slot is freed at once instead of waiting out its lease.
//! [`CallAsync::on_cancel`] picks another outcome, such as
//! [`Outcome::Failure`] when a timeout should count against the dependency.
//! A protected future that panics, or a `make` that panics while building
//! it, counts as a failure, as in the sync `call`.
//!
//! Nothing here depends on a runtime: the futures are plain
//! [`core::future::Future`]s.
//!
//! # A breaker shared through Redis
//!
//! These futures never wait on Redis on the polling thread. A step that
//! needs the fleet (a probe's admission, the open to half-open move, a
//! failure, a probe's outcome) hands its one script run to the endpoint's
//! I/O workers and returns `Pending`; the task is woken when the reply is
//! in, or when the command timeout ends the exchange (the call then decides
//! by the fault policy). The output is returned once the outcome's record
//! is done, so [`Error::Failed`]'s `tripped` says what the fleet did with
//! it. A call dropped unrecorded hands its `on_cancel` record off without
//! waiting; one dropped while its record is in flight is recorded once.
//!
//! ```
//! use breakerbox::{CircuitBreaker, State};
//! use std::future::Future;
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake};
//!
//! struct NoWake;
//! impl Wake for NoWake {
//!     fn wake(self: Arc<Self>) {}
//! }
//!
//! let breaker = CircuitBreaker::builder().name("db").fail_max(1).build()?;
//! let waker = Arc::new(NoWake).into();
//! let mut cx = Context::from_waker(&waker);
//!
//! // Cancelled: polled once (admitted), then dropped before it finished.
//! let mut slow = Box::pin(breaker.call_async(std::future::pending::<Result<(), std::io::Error>>));
//! assert!(slow.as_mut().poll(&mut cx).is_pending());
//! drop(slow);
//! assert_eq!((breaker.state(), breaker.fail_counter()), (State::Closed, 0), "ignored");
//!
//! // A failure that finishes counts, and trips this breaker.
//! let mut failing = Box::pin(breaker.call_async(|| async { Err::<(), _>(std::io::Error::other("down")) }));
//! assert!(matches!(failing.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.tripped()));
//! assert_eq!(breaker.state(), State::Open);
//! # Ok::<(), breakerbox::ConfigError>(())
//! ```

use crate::breaker::backend::RoundTrip;
use crate::breaker::error::{Error, Rejected};
use crate::breaker::CircuitBreaker;
use crate::machine::state::{Outcome, Recorded, Ticket};
use std::borrow::Borrow;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// An admitted call that has not been recorded yet.
///
/// Dropped unrecorded, it records `on_cancel` — or a failure while the
/// thread is panicking, since the call then did not succeed — without
/// waiting on the network (see [`CircuitBreaker::record_detached`]). Used by
/// every async integration (futures, tower, the LLM adapter).
pub(crate) struct TicketGuard<B: Borrow<CircuitBreaker>> {
    breaker: B,
    ticket: Option<Ticket>,
    on_cancel: Outcome,
    /// The record's round trip while [`TicketGuard::poll_finish`] waits on
    /// it; a guard dropped then has its record already sent.
    io: RoundTrip,
    /// When the call started, if the breaker times its calls (slow calls).
    started_ms: Option<u64>,
}

impl<B: Borrow<CircuitBreaker>> TicketGuard<B> {
    /// Asks `breaker` for admission, blocking on a shared breaker's round
    /// trip if it needs one.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn acquire(breaker: B, on_cancel: Outcome) -> Result<Self, Rejected> {
        let ticket = breaker.borrow().acquire_ticket()?;
        Ok(TicketGuard::admitted(breaker, ticket, on_cancel))
    }

    /// Asks `breaker` for admission without blocking the thread.
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) async fn admit(breaker: B, on_cancel: Outcome) -> Result<Self, Rejected> {
        let mut io = RoundTrip::default();
        let ticket = poll_fn(|cx| breaker.borrow().poll_acquire(&mut io, cx)).await?;
        Ok(TicketGuard::admitted(breaker, ticket, on_cancel))
    }

    /// The guard of a call `breaker` admitted with `ticket`.
    /// The call's clock starts now.
    pub(crate) fn admitted(breaker: B, ticket: Ticket, on_cancel: Outcome) -> Self {
        let started_ms = breaker.borrow().call_timer_start();
        TicketGuard {
            breaker,
            ticket: Some(ticket),
            on_cancel,
            io: RoundTrip::default(),
            started_ms,
        }
    }

    /// Starts the call's clock again: for an admission asked for before
    /// the call (the tower layer's `poll_ready`).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn restart_clock(&mut self) {
        self.started_ms = self.breaker.borrow().call_timer_start();
    }

    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        self.breaker.borrow()
    }

    pub(crate) fn set_on_cancel(&mut self, outcome: Outcome) {
        self.on_cancel = outcome;
    }

    /// Polls the protected future; a panic in it records a failure first
    /// (executors such as tokio catch the panic and drop the future later,
    /// when the thread is no longer panicking), then keeps unwinding.
    pub(crate) fn poll_call<Fut: Future>(
        &mut self,
        fut: Pin<&mut Fut>,
        cx: &mut Context<'_>,
    ) -> Poll<Fut::Output> {
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                self.abandon(Outcome::Failure);
                resume_unwind(panic)
            }
        }
    }

    /// Records how the call ended, ready once the record is done (for a
    /// shared breaker, once the fleet answered: the [`Recorded`] is what
    /// the fleet did). Later calls (and the drop) record nothing.
    pub(crate) fn poll_finish(&mut self, outcome: Outcome, cx: &mut Context<'_>) -> Poll<Recorded> {
        let Some(ticket) = self.ticket else {
            return Poll::Ready(Recorded::Stale);
        };
        let recorded =
            ready!(self
                .breaker
                .borrow()
                .poll_record(ticket, outcome, self.started_ms, &mut self.io, cx));
        self.ticket = None;
        Poll::Ready(recorded)
    }

    /// [`TicketGuard::poll_finish`], awaited.
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) async fn finish(&mut self, outcome: Outcome) -> Recorded {
        poll_fn(|cx| self.poll_finish(outcome, cx)).await
    }

    /// Records `outcome` for a call that is gone, without waiting; nothing
    /// if the call was recorded already or its record is in flight.
    pub(crate) fn abandon(&mut self, outcome: Outcome) {
        if !self.io.is_idle() {
            return;
        }
        if let Some(ticket) = self.ticket.take() {
            self.breaker.borrow().record_detached(ticket, outcome);
        }
    }
}

/// Polls an admitted call; once it is done, drops the protected future (so
/// what it holds is released before the outcome is recorded) and returns
/// its output.
pub(crate) fn poll_admitted<B: Borrow<CircuitBreaker>, F: Future>(
    guard: &mut TicketGuard<B>,
    mut fut: Pin<&mut Option<F>>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let running = fut
        .as_mut()
        .as_pin_mut()
        .expect("an admitted call has its future");
    let result = ready!(guard.poll_call(running, cx));
    fut.set(None);
    Poll::Ready(result)
}

impl<B: Borrow<CircuitBreaker>> Drop for TicketGuard<B> {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Failure
        } else {
            self.on_cancel
        };
        self.abandon(outcome);
    }
}

impl<B: Borrow<CircuitBreaker>> fmt::Debug for TicketGuard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketGuard")
            .field("breaker", &self.breaker.borrow().name())
            .field("ticket", &self.ticket)
            .field("on_cancel", &self.on_cancel)
            .field("recording", &!self.io.is_idle())
            .finish()
    }
}

/// The future returned by [`CircuitBreaker::call_async`] and its siblings.
///
/// Resolves to `Ok(value)`, or to [`Error::Rejected`] without running the
/// call, or to [`Error::Failed`] with the call's own error, classified by the
/// breaker's `exclude` and `ignore` predicates as in
/// [`CircuitBreaker::call`]. Polling it again after it resolved panics, as
/// for any future.
#[must_use = "futures do nothing unless polled; the call is not admitted until then"]
pub struct CallAsync<B, F, Fut>
where
    B: Borrow<CircuitBreaker>,
    Fut: Future,
{
    /// The breaker until admission; then it lives in `guard`.
    breaker: Option<B>,
    /// Builds the protected future once admitted; taken exactly once.
    make: Option<F>,
    /// The protected future, pinned in place once built.
    fut: Option<Fut>,
    guard: Option<TicketGuard<B>>,
    /// The call's output and how it counts, held while its record waits
    /// on a shared breaker's fleet.
    output: Option<(Fut::Output, Outcome)>,
    /// Admission's round trip, while a shared breaker waits on it.
    io: RoundTrip,
    on_cancel: Outcome,
    done: bool,
}

impl<B, F, Fut> CallAsync<B, F, Fut>
where
    B: Borrow<CircuitBreaker>,
    Fut: Future,
{
    fn new(breaker: B, make: F) -> Self {
        CallAsync {
            breaker: Some(breaker),
            make: Some(make),
            fut: None,
            guard: None,
            output: None,
            io: RoundTrip::default(),
            on_cancel: Outcome::Ignored,
            done: false,
        }
    }

    /// How a call dropped before it finished is recorded (default
    /// [`Outcome::Ignored`]). May be changed while the call runs.
    pub fn on_cancel(mut self, outcome: Outcome) -> Self {
        self.set_on_cancel(outcome);
        self
    }

    fn set_on_cancel(&mut self, outcome: Outcome) {
        self.on_cancel = outcome;
        if let Some(guard) = self.guard.as_mut() {
            guard.set_on_cancel(outcome);
        }
    }

    /// Whether the call has been admitted (and not yet finished).
    pub fn is_admitted(&self) -> bool {
        self.guard.is_some()
    }

    /// Admission, on the first polls: builds the protected future once
    /// admitted; `Some` is the call's output when rejected.
    fn poll_admission<T, E>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error<E>>>>
    where
        F: FnOnce() -> Fut,
    {
        let Some(breaker) = self.breaker.as_ref() else {
            return Poll::Ready(None);
        };
        match ready!(breaker.borrow().poll_acquire(&mut self.io, cx)) {
            Ok(ticket) => {
                let breaker = self.breaker.take().expect("admitted once");
                let mut guard = TicketGuard::admitted(breaker, ticket, self.on_cancel);
                let make = self.make.take().expect("the call is built once, on admission");
                // A panic in `make` is the call failing, as one in the
                // future is (see `TicketGuard::poll_call`).
                let built = match catch_unwind(AssertUnwindSafe(make)) {
                    Ok(built) => built,
                    Err(panic) => {
                        self.done = true;
                        guard.abandon(Outcome::Failure);
                        resume_unwind(panic)
                    }
                };
                // Admission happens once (`breaker` was taken above): the
                // slot is empty, so there is nothing to drop.
                std::mem::forget(self.guard.replace(guard));
                // SAFETY: called only from `poll`, on the pinned call (see
                // there); `fut` is pinned in place from here on.
                let mut fut = unsafe { Pin::new_unchecked(&mut self.fut) };
                fut.set(Some(built));
                Poll::Ready(None)
            }
            Err(rejected) => {
                self.breaker = None;
                self.make = None;
                Poll::Ready(Some(Err(Error::Rejected(rejected))))
            }
        }
    }
}

impl<B, F, Fut, T, E> Future for CallAsync<B, F, Fut>
where
    B: Borrow<CircuitBreaker>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: 'static,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is the only structurally pinned field: it is never
        // moved out of `self` (it is only polled through the `Pin` made
        // below, and replaced with `Pin::set`, which drops it in place), and
        // `Drop` does not touch it. Every other field is used by `&mut` as
        // an ordinary unpinned value. `CallAsync` is `Unpin` only when all
        // its fields are (the auto trait), so no `Unpin` impl breaks this.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.done, "CallAsync polled after it resolved");

        if let Some(rejected) = ready!(this.poll_admission(cx)) {
            this.done = true;
            return Poll::Ready(rejected);
        }
        let guard = this.guard.as_mut().expect("an admitted call holds its ticket");
        let (result, outcome) = match this.output.take() {
            Some(output) => output,
            None => {
                // SAFETY: see above.
                let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
                let result = ready!(poll_admitted(guard, fut, cx));
                let outcome = match &result {
                    Ok(_) => Outcome::Success,
                    Err(error) => guard.breaker().classify(error),
                };
                (result, outcome)
            }
        };
        // Ready once the record is done: `tripped` is what it did.
        let Poll::Ready(recorded) = guard.poll_finish(outcome, cx) else {
            this.output = Some((result, outcome));
            return Poll::Pending;
        };
        this.guard = None;
        this.done = true;
        Poll::Ready(result.map_err(|error| Error::Failed {
            error,
            tripped: recorded.tripped(),
            outcome,
        }))
    }
}

impl<B, F, Fut> fmt::Debug for CallAsync<B, F, Fut>
where
    B: Borrow<CircuitBreaker>,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallAsync")
            .field("admitted", &self.is_admitted())
            .field("done", &self.done)
            .field("on_cancel", &self.on_cancel)
            .finish()
    }
}

impl CircuitBreaker {
    /// Runs the future `make()` builds if the breaker admits the call, and
    /// records how it ended. See the [module docs](crate::future).
    ///
    /// Admission is asked for when the returned future is first polled;
    /// `make` is called only then, and only if admitted.
    ///
    /// ```
    /// use breakerbox::CircuitBreaker;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W; impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) {} }
    /// #     let waker = std::sync::Arc::new(W).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    ///
    /// let breaker = CircuitBreaker::builder().name("db").build().unwrap();
    /// let answer = block_on(breaker.call_async(|| async { Ok::<_, std::io::Error>(42) }));
    /// assert_eq!(answer.unwrap(), 42);
    /// ```
    pub fn call_async<F, Fut, T, E>(&self, make: F) -> CallAsync<&Self, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        CallAsync::new(self, make)
    }

    /// Like [`CircuitBreaker::call_async`], for a future already built. It
    /// is polled only if the call is admitted; a rejected call drops it
    /// unpolled.
    pub fn call_future<Fut, T, E>(&self, fut: Fut) -> CallAsync<&Self, impl FnOnce() -> Fut, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        CallAsync::new(self, move || fut)
    }

    /// Like [`CircuitBreaker::call_async`], holding an `Arc` of the breaker,
    /// so the future is `'static` and can be spawned.
    pub fn call_async_owned<F, Fut, T, E>(self: &Arc<Self>, make: F) -> CallAsync<Arc<Self>, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        CallAsync::new(Arc::clone(self), make)
    }

    /// Like [`CircuitBreaker::call_future`], holding an `Arc` of the breaker.
    pub fn call_future_owned<Fut, T, E>(
        self: &Arc<Self>,
        fut: Fut,
    ) -> CallAsync<Arc<Self>, impl FnOnce() -> Fut, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        CallAsync::new(Arc::clone(self), move || fut)
    }
}
