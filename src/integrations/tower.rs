//! A [`tower`](https://docs.rs/tower) layer that puts a breaker in front of
//! any service (feature `tower`).
//!
//! * `poll_ready` only asks the inner service; it reserves no probe, so a
//!   service that is ready but never called cannot hold a half-open slot.
//!   A breaker shared through Redis is the exception: its admission may
//!   need a round trip, which must not block the caller's thread, so once
//!   the inner service is ready `poll_ready` asks the breaker too (waiting
//!   on the fleet without blocking) and holds the answer for the next
//!   `call`. A service dropped with an admission records it as ignored.
//! * A response waits for its outcome's record (for a shared breaker, the
//!   fleet's answer, without blocking the thread) before it resolves.
//! * `call` asks the breaker. A rejected request never reaches the inner
//!   service and fails with [`ServiceError::Rejected`], distinct from the
//!   inner service's own errors ([`ServiceError::Inner`]). Like tower's
//!   `Filter`, it leaves the readiness the inner service granted unused, for
//!   the next `call`.
//! * A response is classified by the layer's predicate (every response
//!   counts as a success by default — pass one that makes HTTP 5xx a
//!   failure); an inner error by the breaker's `exclude`/`ignore`
//!   predicates, else as a failure. [`ServiceError::Inner`] carries the
//!   error alone (it also carries `poll_ready` errors, which are not
//!   counted); `breaker.classify(&error)` says how a response error was
//!   counted, as `Error::Failed`'s `outcome` does for `call`.
//! * A response future dropped before it finishes records the call as
//!   [`Outcome::Ignored`] (see [`CircuitBreakerLayer::on_cancel`]).
//!
//! The layer holds the breaker as any `B: Borrow<CircuitBreaker> + Clone`:
//! an `Arc<CircuitBreaker>` (the usual), or a `&'static CircuitBreaker`,
//! which spares each request the `Arc` reference-count update.
//!
//! ```
//! use breakerbox::tower::CircuitBreakerLayer;
//! use breakerbox::{CircuitBreaker, Outcome};
//! use std::sync::Arc;
//!
//! struct Response { status: u16 }
//!
//! let breaker = Arc::new(CircuitBreaker::builder().name("upstream").build().unwrap());
//! let layer = CircuitBreakerLayer::new(breaker).classify_response(|r: &Response| {
//!     if r.status >= 500 { Outcome::Failure } else { Outcome::Success }
//! });
//! # let _ = layer;
//! ```

use crate::breaker::backend::RoundTrip;
use crate::breaker::error::Rejected;
use crate::breaker::CircuitBreaker;
use crate::integrations::future::{poll_admitted, TicketGuard};
use crate::machine::state::Outcome;
use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Sorts a service's successful responses into [`Outcome`]s.
///
/// Implemented for every `Fn(&Res) -> Outcome + Clone`, and by
/// [`AllSucceed`], the default.
pub trait ClassifyResponse<Res>: Clone {
    /// How the call that produced `response` counts.
    fn classify(&self, response: &Res) -> Outcome;
}

impl<Res, F> ClassifyResponse<Res> for F
where
    F: Fn(&Res) -> Outcome + Clone,
{
    fn classify(&self, response: &Res) -> Outcome {
        self(response)
    }
}

/// The default response classifier: every response is a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllSucceed;

impl<Res> ClassifyResponse<Res> for AllSucceed {
    fn classify(&self, _response: &Res) -> Outcome {
        Outcome::Success
    }
}

/// The error of a [`CircuitBreakerService`].
#[derive(Debug)]
pub enum ServiceError<E> {
    /// The breaker rejected the request; the inner service never saw it.
    Rejected(Rejected),
    /// The inner service failed (in `poll_ready` or in its response).
    Inner(E),
}

impl<E> ServiceError<E> {
    /// Whether the breaker rejected the request.
    pub fn is_rejected(&self) -> bool {
        matches!(self, ServiceError::Rejected(_))
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            ServiceError::Inner(e) => Some(e),
            ServiceError::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ServiceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Rejected(r) => r.fmt(f),
            ServiceError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ServiceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::Rejected(r) => Some(r),
            ServiceError::Inner(e) => Some(e),
        }
    }
}

/// Wraps services in a [`CircuitBreakerService`] sharing one breaker.
#[derive(Clone)]
pub struct CircuitBreakerLayer<B = Arc<CircuitBreaker>, C = AllSucceed> {
    breaker: B,
    classify: C,
    on_cancel: Outcome,
}

impl<B: Borrow<CircuitBreaker> + Clone> CircuitBreakerLayer<B, AllSucceed> {
    /// A layer guarded by `breaker`, counting every response as a success.
    pub fn new(breaker: B) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: AllSucceed,
            on_cancel: Outcome::Ignored,
        }
    }
}

impl<B: Borrow<CircuitBreaker> + Clone, C> CircuitBreakerLayer<B, C> {
    /// Classifies responses with `classify` (e.g. HTTP 5xx as
    /// [`Outcome::Failure`], anything else as [`Outcome::Success`]).
    pub fn classify_response<C2>(self, classify: C2) -> CircuitBreakerLayer<B, C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
            on_cancel: self.on_cancel,
        }
    }

    /// How a response future dropped before it finished is recorded
    /// (default [`Outcome::Ignored`]).
    pub fn on_cancel(mut self, outcome: Outcome) -> Self {
        self.on_cancel = outcome;
        self
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        self.breaker.borrow()
    }
}

impl<S, B: Borrow<CircuitBreaker> + Clone, C: Clone> Layer<S> for CircuitBreakerLayer<B, C> {
    type Service = CircuitBreakerService<S, B, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            on_cancel: self.on_cancel,
            admission: Admission::None,
        }
    }
}

impl<B: Borrow<CircuitBreaker>, C> fmt::Debug for CircuitBreakerLayer<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker.borrow().name())
            .field("on_cancel", &self.on_cancel)
            .finish()
    }
}

/// A service whose calls go through a circuit breaker; see the
/// [module docs](self).
pub struct CircuitBreakerService<S, B = Arc<CircuitBreaker>, C = AllSucceed>
where
    B: Borrow<CircuitBreaker>,
{
    inner: S,
    breaker: B,
    classify: C,
    on_cancel: Outcome,
    /// A shared breaker's admission for the next call, asked for once the
    /// inner service is ready.
    admission: Admission<B>,
}

/// Where a shared breaker's admission for the next call stands.
enum Admission<B: Borrow<CircuitBreaker>> {
    /// Not asked for (always, for a breaker whose state is in memory).
    None,
    /// Waiting on the fleet.
    Asking(RoundTrip),
    Admitted(TicketGuard<B>),
    Rejected(Rejected),
}

impl<S: Clone, B: Borrow<CircuitBreaker> + Clone, C: Clone> Clone for CircuitBreakerService<S, B, C> {
    /// A clone with no admission of its own yet (as the inner service's
    /// clone has no readiness).
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            on_cancel: self.on_cancel,
            admission: Admission::None,
        }
    }
}

impl<S, B: Borrow<CircuitBreaker>, C> CircuitBreakerService<S, B, C> {
    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        self.breaker.borrow()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, C, Req> Service<Req> for CircuitBreakerService<S, B, C>
where
    S: Service<Req>,
    S::Error: 'static,
    B: Borrow<CircuitBreaker> + Clone,
    C: ClassifyResponse<S::Response>,
{
    type Response = S::Response;
    type Error = ServiceError<S::Error>;
    type Future = ResponseFuture<S::Future, B, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.inner.poll_ready(cx)).map_err(ServiceError::Inner)?;
        if !self.breaker.borrow().may_wait() {
            return Poll::Ready(Ok(()));
        }
        // A shared breaker: admission may need a round trip, which must
        // not block the caller's thread, so it is asked for here.
        if matches!(self.admission, Admission::None) {
            self.admission = Admission::Asking(RoundTrip::default());
        }
        if let Admission::Asking(io) = &mut self.admission {
            self.admission = match ready!(self.breaker.borrow().poll_acquire(io, cx)) {
                Ok(ticket) => Admission::Admitted(TicketGuard::admitted(
                    self.breaker.clone(),
                    ticket,
                    self.on_cancel,
                )),
                Err(rejected) => Admission::Rejected(rejected),
            };
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let admitted = match std::mem::replace(&mut self.admission, Admission::None) {
            Admission::Admitted(mut guard) => {
                guard.restart_clock();
                Ok(guard)
            }
            Admission::Rejected(rejected) => Err(rejected),
            // Not asked for in `poll_ready`: a local breaker, or a call
            // made without readiness, asks now.
            Admission::None | Admission::Asking(_) => {
                TicketGuard::acquire(self.breaker.clone(), self.on_cancel)
            }
        };
        match admitted {
            Ok(guard) => ResponseFuture {
                inner: Some(self.inner.call(request)),
                guard: Some(guard),
                classify: Some(self.classify.clone()),
                output: None,
                rejected: None,
            },
            Err(rejected) => ResponseFuture {
                inner: None,
                guard: None,
                classify: None,
                output: None,
                rejected: Some(rejected),
            },
        }
    }
}

impl<S: fmt::Debug, B: Borrow<CircuitBreaker>, C> fmt::Debug for CircuitBreakerService<S, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.borrow().name())
            .field("on_cancel", &self.on_cancel)
            .finish()
    }
}

/// The future of a [`CircuitBreakerService`] call.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F: Future, B: Borrow<CircuitBreaker>, C> {
    /// The inner service's future: the only pinned field.
    inner: Option<F>,
    guard: Option<TicketGuard<B>>,
    classify: Option<C>,
    /// The response and how it counts, held while its record waits on a
    /// shared breaker's fleet.
    output: Option<(F::Output, Outcome)>,
    rejected: Option<Rejected>,
}

impl<F, B, C, Res, E> Future for ResponseFuture<F, B, C>
where
    F: Future<Output = Result<Res, E>>,
    E: 'static,
    B: Borrow<CircuitBreaker>,
    C: ClassifyResponse<Res>,
{
    type Output = Result<Res, ServiceError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is the only structurally pinned field: it is never
        // moved out (only polled through this `Pin`, and replaced with
        // `Pin::set`, which drops it in place); no `Drop` impl touches it,
        // and `ResponseFuture` is `Unpin` only through the auto trait.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(rejected) = this.rejected.take() {
            return Poll::Ready(Err(ServiceError::Rejected(rejected)));
        }
        let guard = this.guard.as_mut().expect("an admitted call holds its ticket");
        if this.output.is_none() {
            // SAFETY: see above.
            let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
            let result = ready!(poll_admitted(guard, inner, cx));
            let classify = this.classify.take().expect("an admitted call has its classifier");
            let outcome = match &result {
                Ok(response) => classify.classify(response),
                Err(error) => guard.breaker().classify(error),
            };
            this.output = Some((result, outcome));
        }
        let outcome = this.output.as_ref().map_or(Outcome::Failure, |(_, o)| *o);
        // Ready once the record is done (a shared breaker's fleet answered).
        let _ = ready!(guard.poll_finish(outcome, cx));
        this.guard = None;
        let (result, _) = this.output.take().expect("the output waited for its record");
        Poll::Ready(result.map_err(ServiceError::Inner))
    }
}

impl<F: Future, B: Borrow<CircuitBreaker>, C> fmt::Debug for ResponseFuture<F, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("admitted", &self.guard.is_some())
            .field("rejected", &self.rejected)
            .finish()
    }
}
