//! The C callbacks: state changes and storage errors as one [`Listener`],
//! and the clock and the open-period backoff the breaker asks.
//!
//! Two rules hold here for every callback:
//!
//! * **No nesting.** A callback may call the library, and so cause another
//!   event on the same breaker. That event is not reported from inside the
//!   running callback: it is queued and reported, in order, right after the
//!   callback returns, on the same thread. A breaker's callback therefore
//!   never runs inside itself, so a callback that forces the opposite state
//!   on every change cannot exhaust the stack.
//! * **No unwinding through the library.** The callback types are
//!   `extern "C-unwind"`, so a C++ exception thrown from one is a defined
//!   unwind into the trampoline rather than undefined behaviour; there it is
//!   caught and the process aborts (a callback must not throw, and the
//!   library's callers must not see an exception come out of it). Every
//!   callback is called through [`abort_on_unwind`].
//!
//! The clock and backoff functions are asked for a value inside a decision,
//! so the first rule does not apply to them: they must not call the library
//! on the breaker that asks (see their types).

use crate::handle::cb_breaker;
use crate::status::cb_state;
use breakerbox::clock::Clock;
use breakerbox::{Backoff, CircuitBreaker, Listener, State};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Called once per state change, on the thread whose call made it, after the
/// new state is visible (`cb_current_state(breaker)` returns `to` unless yet
/// another change has happened since). `breaker` is the handle `cb_new`
/// returned. The callback must not call `cb_free` on it and should be quick:
/// the call that made the transition waits for it.
///
/// It may call any other function on the breaker. A change caused from
/// inside the callback (say, `cb_force_close` from the callback reporting
/// the breaker opened) is reported after this callback returns, not nested
/// inside it: a breaker's callback never runs inside itself.
///
/// It must not throw: an exception thrown from it aborts the process.
pub type cb_state_change_fn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        breaker: *const cb_breaker,
        from: cb_state,
        to: cb_state,
    ),
>;

/// Called when the store sharing a breaker's state (Redis) fails or times
/// out; the breaker goes on deciding by its fault policy. `message` is a
/// NUL-terminated description, valid only during the call. Runs on the
/// thread that met the error (a caller's, or the breaker's background
/// thread), under the same rules as `cb_state_change_fn`: not nested, must
/// not throw, must not call `cb_free`.
pub type cb_storage_error_fn = Option<
    unsafe extern "C-unwind" fn(user_data: *mut c_void, breaker: *const cb_breaker, message: *const c_char),
>;

/// Returns the time in milliseconds, for a breaker built with
/// `cb_builder_set_clock`: tests and simulations move it by hand instead of
/// sleeping. Its origin is arbitrary; it must not go backwards (a reading
/// below an earlier one is taken as that earlier one).
///
/// Called from any thread that asks the breaker for a decision needing the
/// time (a rejection, a transition, a timed call), possibly from several at
/// once; it must be thread-safe and quick, must not call the library on the
/// breaker that asks, and must not throw (an exception thrown from it aborts
/// the process).
pub type cb_clock_fn = Option<unsafe extern "C-unwind" fn(user_data: *mut c_void) -> u64>;

/// Chooses how long an open period lasts, in milliseconds, for a breaker
/// built with `cb_builder_set_open_backoff_custom`. `attempt` counts the
/// open periods since the breaker last closed, from 1. `last_failure_rate`
/// is the window's failure rate in percent when the breaker opened, or
/// `CB_RATE_NONE` (-1) when there is none: no window, or fewer calls in it
/// than `minimum_calls` (so always after a failed probe, as every
/// transition clears the window). `UINT64_MAX` never half-opens by itself.
///
/// Called once per open period, on the thread whose call opened the
/// breaker, after the breaker is open and before the state-change callback
/// hears of it; until it returns the breaker rejects every call. Several
/// breakers built from one builder share its `user_data` and may call it
/// at once from different threads. It must be quick, must not call the
/// library on the breaker being opened, and must not throw (an exception
/// thrown from it aborts the process).
pub type cb_backoff_fn =
    Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, attempt: u32, last_failure_rate: f32) -> u64>;

/// The failure rate a getter or `cb_backoff_fn` gets when there is none.
pub const CB_RATE_NONE: f32 = -1.0;

/// A C function pointer and the `user_data` to pass it.
#[derive(Clone, Copy)]
pub(crate) struct Callback<F> {
    pub(crate) function: F,
    pub(crate) user_data: *mut c_void,
}

// SAFETY: every `user_data` is documented as usable from any thread, and
// every callback as callable from any thread; `F` is a function pointer.
unsafe impl<F: Send> Send for Callback<F> {}
// SAFETY: as above; a `Callback` is never mutated after it is made.
unsafe impl<F: Sync> Sync for Callback<F> {}

/// Runs a call into C; aborts the process if it unwinds (a C++ exception,
/// or a panic of a Rust callback), as no unwind may cross the library.
pub(crate) fn abort_on_unwind<R>(call: impl FnOnce() -> R) -> R {
    // A foreign exception may also abort inside catch_unwind itself (which
    // of the two is unspecified); either way the process ends.
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => value,
        Err(_) => {
            eprintln!("breakerbox: a callback threw or unwound into the library; aborting");
            std::process::abort();
        }
    }
}

type ClockFn = unsafe extern "C-unwind" fn(*mut c_void) -> u64;
type BackoffFn = unsafe extern "C-unwind" fn(*mut c_void, u32, f32) -> u64;

/// A C clock as the core's [`Clock`]; clones share one latest reading.
#[derive(Clone)]
pub(crate) struct CClock(Arc<ClockInner>);

struct ClockInner {
    callback: Callback<ClockFn>,
    /// The latest reading handed out: the core's clocks never go back.
    latest: AtomicU64,
}

impl CClock {
    /// `None` for a NULL function.
    pub(crate) fn new(function: cb_clock_fn, user_data: *mut c_void) -> Option<CClock> {
        function.map(|function| {
            CClock(Arc::new(ClockInner {
                callback: Callback { function, user_data },
                latest: AtomicU64::new(0),
            }))
        })
    }
}

impl Clock for CClock {
    fn now_ms(&self) -> u64 {
        let cb = self.0.callback;
        // SAFETY: the caller supplied this function and user_data, promising
        // both may be used from any thread for the life of the breakers.
        let reading = abort_on_unwind(|| unsafe { (cb.function)(cb.user_data) });
        let before = self.0.latest.fetch_max(reading, Ordering::AcqRel);
        before.max(reading)
    }
}

/// A C backoff function as the core's custom [`Backoff`].
pub(crate) fn c_backoff(function: BackoffFn, user_data: *mut c_void) -> Backoff {
    let cb = Callback { function, user_data };
    Backoff::custom(move |attempt, rate| {
        // The whole `Callback` is captured (it is Send), not its fields.
        let cb = &cb;
        let rate = rate.unwrap_or(CB_RATE_NONE);
        // SAFETY: as for the clock: the caller promised the function and
        // user_data may be used from any thread for the life of the breakers.
        let ms = abort_on_unwind(|| unsafe { (cb.function)(cb.user_data, attempt, rate) });
        Duration::from_millis(ms)
    })
}

/// The handle's address, once it is boxed.
#[derive(Clone, Copy)]
struct HandlePtr(*const cb_breaker);

// SAFETY: the pointer is only handed back to the C callbacks, which may use it
// from any thread: every function taking `const cb_breaker *` is thread-safe.
unsafe impl Send for HandlePtr {}
// SAFETY: as above; the pointer itself is never dereferenced here.
unsafe impl Sync for HandlePtr {}

type StateChangeFn = unsafe extern "C-unwind" fn(*mut c_void, *const cb_breaker, cb_state, cb_state);
type StorageErrorFn = unsafe extern "C-unwind" fn(*mut c_void, *const cb_breaker, *const c_char);

/// Forwards a breaker's state changes and storage errors to C.
pub(crate) struct CallbackListener {
    state_change: Option<Callback<StateChangeFn>>,
    storage_error: Option<Callback<StorageErrorFn>>,
    /// Set right after boxing, before the handle is returned, so before any
    /// transition can happen. Keeping the pointer the handle was made as
    /// (rather than re-deriving it from the `&CircuitBreaker`) keeps its
    /// provenance over the whole handle.
    handle: OnceLock<HandlePtr>,
}

// SAFETY: `user_data` is documented as usable from any thread, and the
// callbacks are documented to be callable from any thread.
unsafe impl Send for CallbackListener {}
// SAFETY: as above; the listener holds no mutable state but a OnceLock.
unsafe impl Sync for CallbackListener {}

/// One event waiting to be reported.
enum Event {
    StateChange(State, State),
    StorageError(CString),
}

/// The listeners whose callback is running on this thread, each with the
/// events that arrived meanwhile.
struct Running {
    listener: *const CallbackListener,
    queued: VecDeque<Event>,
}

thread_local! {
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
}

/// Takes this thread's entry for a listener out when its delivery ends,
/// however it ends.
struct Delivery(*const CallbackListener);

impl Drop for Delivery {
    fn drop(&mut self) {
        let _ = RUNNING.try_with(|running| running.borrow_mut().retain(|r| r.listener != self.0));
    }
}

impl CallbackListener {
    /// `None` when there is no callback at all.
    pub(crate) fn new(
        state_change: cb_state_change_fn,
        state_user_data: *mut c_void,
        storage_error: cb_storage_error_fn,
        storage_user_data: *mut c_void,
    ) -> Option<CallbackListener> {
        let state_change = state_change.map(|function| Callback {
            function,
            user_data: state_user_data,
        });
        let storage_error = storage_error.map(|function| Callback {
            function,
            user_data: storage_user_data,
        });
        (state_change.is_some() || storage_error.is_some()).then(|| CallbackListener {
            state_change,
            storage_error,
            handle: OnceLock::new(),
        })
    }

    /// Records the handle's address; called once, before the handle is returned.
    pub(crate) fn set_handle(&self, handle: *const cb_breaker) {
        let _ = self.handle.set(HandlePtr(handle));
    }

    /// Reports `event` now, or queues it when this listener's callback is
    /// already running on this thread (see the module docs).
    fn deliver(&self, event: Event) {
        let me: *const CallbackListener = self;
        let mut event = Some(event);
        // Queued behind a running callback of this listener, or marked as
        // running; fails only while this thread's storage is torn down.
        let running = RUNNING.try_with(|running| {
            let mut running = running.borrow_mut();
            match running.iter_mut().find(|r| r.listener == me) {
                Some(entry) => entry.queued.extend(event.take()),
                None => running.push(Running {
                    listener: me,
                    queued: VecDeque::new(),
                }),
            }
        });
        let Some(mut next) = event else {
            return;
        };
        if running.is_err() {
            return self.call(next);
        }
        let _delivery = Delivery(me);
        loop {
            self.call(next);
            let more = RUNNING.with(|running| {
                running
                    .borrow_mut()
                    .iter_mut()
                    .find(|r| r.listener == me)
                    .and_then(|r| r.queued.pop_front())
            });
            match more {
                Some(event) => next = event,
                None => break,
            }
        }
    }

    /// Calls the C function for `event`; aborts if it unwinds.
    fn call(&self, event: Event) {
        let handle = self.handle.get().map_or(std::ptr::null(), |h| h.0);
        abort_on_unwind(|| match event {
            Event::StateChange(from, to) => {
                if let Some(cb) = self.state_change {
                    // SAFETY: the caller supplied this function and user_data,
                    // promising both may be used from any thread for the
                    // breaker's whole life; `handle` is the live handle.
                    unsafe { (cb.function)(cb.user_data, handle, from.into(), to.into()) }
                }
            }
            Event::StorageError(message) => {
                if let Some(cb) = self.storage_error {
                    // SAFETY: as above; `message` is NUL-terminated and
                    // outlives the call.
                    unsafe { (cb.function)(cb.user_data, handle, message.as_ptr()) }
                }
            }
        });
    }
}

impl Listener for CallbackListener {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        debug_assert!(
            self.handle
                .get()
                .map_or(true, |h| std::ptr::eq(h.0.cast::<CircuitBreaker>(), breaker)),
            "the handle's address is its breaker's address"
        );
        if self.state_change.is_some() {
            self.deliver(Event::StateChange(from, to));
        }
    }

    fn storage_error(&self, _breaker: &CircuitBreaker, error: &dyn std::error::Error) {
        if self.storage_error.is_some() {
            let text = error.to_string().replace('\0', " ");
            let message = CString::new(text).unwrap_or_default();
            self.deliver(Event::StorageError(message));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{cb_breaker, cb_state, cb_status};
    use crate::{
        cb_config, cb_config_default, cb_current_state, cb_force_close, cb_force_open, cb_free, cb_new,
    };
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;

    #[derive(Default)]
    struct PingPong {
        calls: Cell<u32>,
        depth: Cell<u32>,
        max_depth: Cell<u32>,
    }

    const TRANSITIONS: u32 = if cfg!(miri) { 20 } else { 2000 };

    unsafe extern "C-unwind" fn force_opposite(
        user_data: *mut c_void,
        breaker: *const cb_breaker,
        _from: cb_state,
        to: cb_state,
    ) {
        // SAFETY: the test passes a PingPong that outlives the breaker, used
        // from this one thread.
        let pp = unsafe { &*user_data.cast::<PingPong>() };
        pp.depth.set(pp.depth.get() + 1);
        pp.max_depth.set(pp.max_depth.get().max(pp.depth.get()));
        pp.calls.set(pp.calls.get() + 1);
        if pp.calls.get() < TRANSITIONS {
            // SAFETY: `breaker` is the live handle being reported on.
            let status = unsafe {
                if to == cb_state::Open {
                    cb_force_close(breaker)
                } else {
                    cb_force_open(breaker)
                }
            };
            assert_eq!(status, cb_status::Ok);
        }
        pp.depth.set(pp.depth.get() - 1);
    }

    #[test]
    fn a_change_made_inside_the_callback_is_reported_after_it_returns() {
        let pp = PingPong::default();
        let config = cb_config {
            on_state_change: Some(force_opposite),
            user_data: ptr::addr_of!(pp).cast_mut().cast(),
            ..cb_config_default()
        };
        let mut b = ptr::null_mut();
        // SAFETY: valid pointers; `b` is freed once, below.
        unsafe {
            assert_eq!(cb_new(&config, &mut b), cb_status::Ok);
            assert_eq!(cb_force_open(b), cb_status::Ok);
            assert_eq!(pp.calls.get(), TRANSITIONS);
            assert_eq!(pp.max_depth.get(), 1);
            assert_eq!(cb_current_state(b), cb_state::Closed);
            cb_free(b);
        }
    }
}
