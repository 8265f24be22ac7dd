//! `BreakerBase`: the compiled base of `breakerbox.CircuitBreaker` and
//! `breakerbox.nodus.CircuitBreaker`.
//!
//! A protected call is one method here: admission, the call, the record and
//! the listeners, with no lock held across any of them. Listeners are told
//! in pybreaker's order: a state change caused by admission first, then
//! `before_call`; on failure `failure` then the state change; on success the
//! state change then `success`. A listener that raises does not stop the
//! others nor undo anything: the first exception is raised once all ran.

use crate::args;
use crate::calls::{self, Calling, Decorated, Permit};
use crate::core::{build_error, config_error, Config, Core, Endpoint, PyManualClock, Shared, Tls};
use crate::events::{self, Event};
use crate::policy::{self, Options, Raw};
use crate::{setup, CircuitBreakerError, CircuitOpenError};
use breakerbox::{CircuitBreaker, Mode, Outcome, Recorded, Rejected, State, Ticket};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;
use pyo3::types::{PyBool, PyDict, PyInt, PyString, PyTuple, PyType};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// A protected call: the function, its positional and keyword arguments.
pub(crate) type CallArgs<'a, 'py> = (
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyTuple>,
    Option<&'a Bound<'py, PyDict>>,
);

const MAX_COUNT: u32 = u16::MAX as u32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first exception a listener (or predicate) raised; the rest run anyway.
#[derive(Default)]
pub(crate) struct Errors(Option<PyErr>);

impl Errors {
    fn keep<T>(&mut self, result: PyResult<T>) {
        if let Err(e) = result {
            self.0.get_or_insert(e);
        }
    }

    pub(crate) fn into_result<T>(self, value: T) -> PyResult<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    pub(crate) fn take(&mut self) -> Option<PyErr> {
        self.0.take()
    }
}

/// Tells each listener that has a `storage_error` hook of a store fault.
fn tell_storage_error(
    slf: &Bound<'_, PyAny>,
    listeners: &Bound<'_, PyTuple>,
    message: &str,
    errors: &mut Errors,
) {
    let py = slf.py();
    for l in listeners.iter() {
        if let Ok(hook) = l.getattr(intern!(py, "storage_error")) {
            errors.keep(hook.call1((slf, message)));
        }
    }
}

pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half-open",
    }
}

fn parse_state(name: &str) -> PyResult<State> {
    match name {
        "closed" => Ok(State::Closed),
        "open" => Ok(State::Open),
        "half-open" => Ok(State::HalfOpen),
        other => Err(PyValueError::new_err(format!(
            "Unknown state '{other}', valid states: closed, open, half-open"
        ))),
    }
}

fn state_index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

/// `exclude=` / `ignore=`: exception classes (ABCs included) or predicates.
fn exclusions(py: Python<'_>, name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyTuple>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let bad = || {
        PyTypeError::new_err(format!(
            "{name} must be an iterable of exception classes or predicates"
        ))
    };
    if value.is_instance_of::<PyType>() || value.is_instance_of::<PyString>() {
        return Err(bad());
    }
    let items: Vec<Bound<'_, PyAny>> = value.try_iter().map_err(|_| bad())?.collect::<PyResult<_>>()?;
    let base = py.get_type::<pyo3::exceptions::PyBaseException>();
    for item in &items {
        let ok = match item.cast::<PyType>() {
            Ok(t) => t.is_subclass(&base)?,
            Err(_) => item.is_callable(),
        };
        if !ok {
            return Err(PyTypeError::new_err(format!(
                "{name}: {} is neither an exception class nor a callable predicate",
                item.repr()?
            )));
        }
    }
    if items.is_empty() {
        return Ok(None);
    }
    Ok(Some(PyTuple::new(py, items)?.unbind()))
}

fn matches(list: &Bound<'_, PyTuple>, exc: &Bound<'_, PyAny>) -> PyResult<bool> {
    for entry in list.iter() {
        let hit = match entry.cast::<PyType>() {
            Ok(t) => exc.is_instance(t)?,
            Err(_) => entry.call1((exc,))?.is_truthy()?,
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A `T(message)` with `retry_after` (seconds) set when known; the class's
/// own `retry_after` is None. The instance is made here, once: a lazy error
/// made first and normalised to set the attribute costs more.
fn raised<T, M>(py: Python<'_>, message: M, retry_after: Option<Duration>) -> PyErr
where
    T: PyTypeInfo,
    M: for<'py> IntoPyObject<'py> + Send + Sync + 'static,
{
    let Some(d) = retry_after else {
        return PyErr::new::<T, _>(message);
    };
    let made = py.get_type::<T>().call1((message,)).and_then(|value| {
        value.setattr(intern!(py, "retry_after"), args::to_seconds(d))?;
        Ok(value)
    });
    match made {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

/// The compiled base class; subclass it (as `breakerbox.CircuitBreaker`
/// does) and call `_init` from `__init__`.
#[pyclass(
    frozen,
    subclass,
    weakref,
    module = "breakerbox._breakerbox",
    name = "BreakerBase"
)]
pub(crate) struct BreakerBase {
    /// Null until `_init`. Replaced only in a forked child, and the replaced
    /// core is then leaked on purpose (its watcher thread does not exist
    /// there), so a reference taken from it stays valid as long as `self`.
    core: AtomicPtr<Core>,
    listeners: Mutex<Option<Py<PyTuple>>>,
    has_listeners: AtomicBool,
    exclude: Mutex<Option<Py<PyTuple>>>,
    ignore: Mutex<Option<Py<PyTuple>>>,
    name: Mutex<Option<Py<PyAny>>>,
    throw_new_error: AtomicBool,
    nodus: AtomicBool,
    /// Wall-clock milliseconds of the latest opening this process saw; 0: none.
    opened_at_ms: AtomicU64,
}

impl Drop for BreakerBase {
    fn drop(&mut self) {
        let core = self.core.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !core.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` in
            // `install` and is freed only here, once no `&self` remains.
            drop(unsafe { Box::from_raw(core) });
        }
    }
}

impl BreakerBase {
    pub(crate) fn core(&self) -> PyResult<&Core> {
        let core = self.core.load(Ordering::Acquire);
        if core.is_null() {
            return Err(PyRuntimeError::new_err("CircuitBreaker.__init__ was not called"));
        }
        // SAFETY: non-null pointers come from `Box::into_raw` and are freed
        // only in `Drop` (replaced ones are leaked), so it outlives `&self`.
        Ok(unsafe { &*core })
    }

    /// Puts `core` in place; returns the one it replaced, never freed.
    fn install(&self, core: Core) -> *mut Core {
        self.core.swap(Box::into_raw(Box::new(core)), Ordering::AcqRel)
    }

    #[inline]
    fn listening(&self) -> bool {
        self.has_listeners.load(Ordering::Acquire)
    }

    fn listener_list<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyTuple>> {
        lock(&self.listeners).as_ref().map(|t| t.bind(py).clone())
    }

    fn name_text(&self, py: Python<'_>) -> String {
        match lock(&self.name).as_ref() {
            Some(n) => n.bind(py).str().map(|s| s.to_string()).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Runs one core operation and then tells the listeners what it changed.
    fn control<'py, T: Send>(
        slf: &Bound<'py, Self>,
        detach: bool,
        op: impl Send + FnOnce(&CircuitBreaker) -> T,
    ) -> PyResult<T> {
        let this = slf.get();
        let core = this.core()?;
        let out = if detach && core.is_shared() {
            slf.py().detach(|| op(&core.breaker))
        } else {
            op(&core.breaker)
        };
        let mut errors = Errors::default();
        this.dispatch(slf, core, &mut errors);
        errors.into_result(out)
    }

    /// Hands the queued events of `core` to the listeners.
    fn dispatch(&self, slf: &Bound<'_, Self>, core: &Core, errors: &mut Errors) {
        let queued = events::take(&core.breaker);
        if queued.is_empty() {
            return;
        }
        let py = slf.py();
        let listeners = self.listener_list(py);
        for event in queued {
            match event {
                Event::Transition { from, to } => {
                    match to {
                        State::Open => self.opened_at_ms.store(now_ms(), Ordering::Release),
                        State::Closed => self.opened_at_ms.store(0, Ordering::Release),
                        State::HalfOpen => {}
                    }
                    let (Some(list), Ok(setup)) = (&listeners, setup(py)) else {
                        continue;
                    };
                    let old = setup.states[state_index(from)].bind(py);
                    let new = setup.states[state_index(to)].bind(py);
                    for l in list.iter() {
                        errors.keep(l.call_method1(intern!(py, "state_change"), (slf, old, new)));
                    }
                }
                Event::StorageError(message) => {
                    if let Some(list) = &listeners {
                        tell_storage_error(slf.as_any(), list, &message, errors);
                    }
                }
                Event::WouldReject => {
                    self.notify_optional(slf, intern!(py, "rejected"), None, errors);
                }
            }
        }
    }

    fn notify_optional(
        &self,
        slf: &Bound<'_, Self>,
        hook: &Bound<'_, PyString>,
        exc: Option<&Bound<'_, PyAny>>,
        errors: &mut Errors,
    ) {
        let Some(list) = self.listener_list(slf.py()) else {
            return;
        };
        for l in list.iter() {
            if let Ok(f) = l.getattr(hook) {
                let r = match exc {
                    Some(e) => f.call1((slf, e)),
                    None => f.call1((slf,)),
                };
                errors.keep(r);
            }
        }
    }

    fn rejection(&self, py: Python<'_>, rejected: &Rejected) -> PyErr {
        let retry_after = rejected.retry_after();
        if self.nodus.load(Ordering::Relaxed) {
            let name = self.name_text(py);
            let msg = match rejected.state {
                State::HalfOpen => format!("Circuit '{name}' is half-open; probe already in flight"),
                _ => format!("Circuit '{name}' is open; rejecting call"),
            };
            raised::<CircuitOpenError, _>(py, msg, retry_after)
        } else {
            let msg = match rejected.state {
                State::HalfOpen => "Probe limit reached, circuit breaker still half-open",
                _ => "Timeout not elapsed yet, circuit breaker still open",
            };
            raised::<CircuitBreakerError, _>(py, msg, retry_after)
        }
    }

    /// Asks for admission and runs the `before_call` listeners with the call
    /// (`func`, `args`, `kwargs`); `func` is None for `calling()` blocks.
    pub(crate) fn admit(
        &self,
        slf: &Bound<'_, Self>,
        core: &Core,
        call: Option<CallArgs<'_, '_>>,
    ) -> PyResult<Ticket> {
        let py = slf.py();
        let acquired = if core.is_shared() {
            py.detach(|| core.breaker.acquire_ticket())
        } else {
            core.breaker.acquire_ticket()
        };
        let mut errors = Errors::default();
        self.dispatch(slf, core, &mut errors);
        match acquired {
            Ok(ticket) => {
                if self.listening() {
                    if let Some(list) = self.listener_list(py) {
                        let (func, args, kwargs) = match call {
                            Some((f, a, k)) => (f.clone(), a.clone(), k),
                            None => (setup(py)?.calling_func.bind(py).clone(), PyTuple::empty(py), None),
                        };
                        let mut full = Vec::with_capacity(args.len() + 2);
                        full.push(slf.clone().into_any());
                        full.push(func);
                        full.extend(args.iter());
                        let full = PyTuple::new(py, full)?;
                        for l in list.iter() {
                            errors.keep(l.call_method(intern!(py, "before_call"), &full, kwargs));
                        }
                    }
                }
                if let Some(e) = errors.take() {
                    // The caller never gets this ticket: free its slot.
                    self.record(slf, core, ticket, Outcome::Ignored, None, None, &mut errors);
                    return Err(e);
                }
                Ok(ticket)
            }
            Err(rejected) => {
                if self.listening() {
                    self.notify_optional(slf, intern!(py, "rejected"), None, &mut errors);
                }
                Err(errors.take().unwrap_or_else(|| self.rejection(py, &rejected)))
            }
        }
    }

    /// Records `outcome` (of a call timed from `started_ms`, when slow calls
    /// are configured) and tells the listeners, in pybreaker's order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        slf: &Bound<'_, Self>,
        core: &Core,
        ticket: Ticket,
        outcome: Outcome,
        started_ms: Option<u64>,
        exc: Option<&Bound<'_, PyAny>>,
        errors: &mut Errors,
    ) -> Recorded {
        let py = slf.py();
        let elapsed = started_ms.map(|s| core.elapsed(s));
        let op = || match elapsed {
            None => core.breaker.record(ticket, outcome),
            Some(e) => core.breaker.record_timed(ticket, outcome, e),
        };
        let recorded = if core.is_shared() { py.detach(op) } else { op() }.unwrap_or(Recorded::Stale);
        // Listeners hear of outcomes that counted (a disabled breaker counts none).
        let tell = self.listening() && recorded != Recorded::Stale && core.reports_outcomes();
        if tell && outcome == Outcome::Failure {
            if let Some(list) = self.listener_list(py) {
                for l in list.iter() {
                    errors.keep(l.call_method1(intern!(py, "failure"), (slf, exc)));
                }
            }
        }
        self.dispatch(slf, core, errors);
        if tell {
            match outcome {
                Outcome::Success => {
                    if let Some(list) = self.listener_list(py) {
                        for l in list.iter() {
                            errors.keep(l.call_method1(intern!(py, "success"), (slf,)));
                        }
                    }
                }
                Outcome::Ignored => self.notify_optional(slf, intern!(py, "ignored"), exc, errors),
                Outcome::Failure => {}
            }
        }
        recorded
    }

    /// How the breaker counts `exc`: `ignore=` first, then `exclude=`; an
    /// exception that is not an `Exception` (cancellation, interrupts,
    /// `GeneratorExit`) counts as neither.
    fn classify(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<Outcome> {
        let ignore = lock(&self.ignore).as_ref().map(|t| t.clone_ref(py));
        if let Some(list) = ignore {
            if matches(list.bind(py), exc)? {
                return Ok(Outcome::Ignored);
            }
        }
        let exclude = lock(&self.exclude).as_ref().map(|t| t.clone_ref(py));
        if let Some(list) = exclude {
            if matches(list.bind(py), exc)? {
                return Ok(Outcome::Success);
            }
        }
        if !exc.is_instance_of::<pyo3::exceptions::PyException>() {
            return Ok(Outcome::Ignored);
        }
        Ok(Outcome::Failure)
    }

    /// Records a call that raised `err`; returns what the caller raises: the
    /// call's own exception, or `CircuitBreakerError` if it tripped the
    /// breaker and `throw_new_error_on_trip` is on, or a listener's.
    pub(crate) fn fail(
        &self,
        slf: &Bound<'_, Self>,
        core: &Core,
        ticket: Ticket,
        started_ms: Option<u64>,
        err: PyErr,
    ) -> PyErr {
        let py = slf.py();
        let exc = err.value(py).clone().into_any();
        let mut errors = Errors::default();
        let outcome = match self.classify(py, &exc) {
            Ok(o) => o,
            Err(e) => {
                errors.keep::<()>(Err(e));
                Outcome::Failure
            }
        };
        let recorded = self.record(slf, core, ticket, outcome, started_ms, Some(&exc), &mut errors);
        if let Some(e) = errors.take() {
            let _ = e.value(py).setattr(intern!(py, "__context__"), &exc);
            return e;
        }
        match recorded {
            // A shadow mode changes nothing callers see: the call's own error.
            Recorded::Transitioned(t)
                if t.to == State::Open
                    && outcome == Outcome::Failure
                    && self.throw_new_error.load(Ordering::Relaxed)
                    && core.breaker.mode() == Mode::Enforcing =>
            {
                let msg = if t.from == State::HalfOpen {
                    "Trial call failed, circuit breaker opened"
                } else {
                    "Failures threshold reached, circuit breaker opened"
                };
                let trip = raised::<CircuitBreakerError, _>(py, msg, core.breaker.open_for());
                let value = trip.value(py);
                let _ = value.setattr(intern!(py, "__context__"), &exc);
                let _ = value.setattr(intern!(py, "__traceback__"), err.traceback(py));
                trip
            }
            _ => err,
        }
    }

    /// Records how an admitted call ended; a generator is recorded when it ends.
    pub(crate) fn finish(
        &self,
        slf: &Bound<'_, Self>,
        core: &Core,
        ticket: Ticket,
        started_ms: Option<u64>,
        result: PyResult<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match result {
            Ok(value) => {
                let setup = setup(py)?;
                if value.is_exact_instance(setup.generator_type.bind(py)) {
                    let permit = Permit::new(slf.clone().unbind(), ticket, started_ms);
                    return Ok(setup.generator_call.bind(py).call1((permit, value))?.unbind());
                }
                let mut errors = Errors::default();
                self.record(slf, core, ticket, Outcome::Success, started_ms, None, &mut errors);
                errors.into_result(value.unbind())
            }
            Err(err) => Err(self.fail(slf, core, ticket, started_ms, err)),
        }
    }

    /// `breaker.call(func, *args, **kwargs)`, also behind the decorator.
    pub(crate) fn run(
        slf: &Bound<'_, Self>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let this = slf.get();
        let core = this.core()?;
        let ticket = this.admit(slf, core, Some((func, args, kwargs)))?;
        let started_ms = core.started_ms();
        let result = func.call(args, kwargs);
        this.finish(slf, core, ticket, started_ms, result)
    }

    fn set_count(
        slf: &Bound<'_, Self>,
        name: &str,
        value: &Bound<'_, PyAny>,
        max: u32,
        set: fn(&CircuitBreaker, u32) -> Result<(), breakerbox::ConfigError>,
    ) -> PyResult<()> {
        let v = args::count(name, value, max)?;
        Self::control(slf, true, move |b| set(b, v))?.map_err(config_error)
    }
}

#[pymethods]
impl BreakerBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        BreakerBase {
            core: AtomicPtr::new(std::ptr::null_mut()),
            listeners: Mutex::new(None),
            has_listeners: AtomicBool::new(false),
            exclude: Mutex::new(None),
            ignore: Mutex::new(None),
            name: Mutex::new(None),
            throw_new_error: AtomicBool::new(true),
            nodus: AtomicBool::new(false),
            opened_at_ms: AtomicU64::new(0),
        }
    }

    /// Configures the breaker; every argument is checked, and an error
    /// names it. Called once, by the subclass's `__init__`.
    #[pyo3(signature = (*, name, fail_max, reset_timeout, success_threshold, half_open_max_calls,
        probe_lease, exclude, ignore, listeners, throw_new_error_on_trip, clock, initial_state,
        redis_url=None, redis_namespace=None, redis_policy="local", redis_command_timeout=None,
        redis_refresh_interval=None, redis_cluster=None, redis_tls=None, redis_sentinel=None, nodus=false, count_window=None, time_window=None,
        window_buckets=None, failure_rate_threshold=None, minimum_calls=None,
        slow_call_duration=None, slow_call_rate_threshold=None, mode=None, open_backoff=None,
        half_open_rule=None))]
    #[allow(clippy::too_many_arguments)]
    fn _init(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        fail_max: &Bound<'_, PyAny>,
        reset_timeout: &Bound<'_, PyAny>,
        success_threshold: &Bound<'_, PyAny>,
        half_open_max_calls: &Bound<'_, PyAny>,
        probe_lease: &Bound<'_, PyAny>,
        exclude: &Bound<'_, PyAny>,
        ignore: &Bound<'_, PyAny>,
        listeners: &Bound<'_, PyAny>,
        throw_new_error_on_trip: &Bound<'_, PyAny>,
        clock: &Bound<'_, PyAny>,
        initial_state: &Bound<'_, PyAny>,
        redis_url: Option<String>,
        redis_namespace: Option<String>,
        redis_policy: &str,
        redis_command_timeout: Option<&Bound<'_, PyAny>>,
        redis_refresh_interval: Option<&Bound<'_, PyAny>>,
        redis_cluster: Option<Vec<String>>,
        redis_tls: Option<Tls>,
        redis_sentinel: Option<(Vec<String>, String, String, String, u32)>,
        nodus: bool,
        count_window: Option<&Bound<'_, PyAny>>,
        time_window: Option<&Bound<'_, PyAny>>,
        window_buckets: Option<&Bound<'_, PyAny>>,
        failure_rate_threshold: Option<&Bound<'_, PyAny>>,
        minimum_calls: Option<&Bound<'_, PyAny>>,
        slow_call_duration: Option<&Bound<'_, PyAny>>,
        slow_call_rate_threshold: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        open_backoff: Option<&Bound<'_, PyAny>>,
        half_open_rule: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.core.load(Ordering::Acquire).is_null() {
            return Err(PyRuntimeError::new_err("CircuitBreaker is already initialised"));
        }
        let core_name = if name.is_none() {
            String::new()
        } else {
            name.cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("name must be a str or None"))?
                .to_string()
        };
        if !(throw_new_error_on_trip.is_instance_of::<PyBool>()
            || throw_new_error_on_trip.is_instance_of::<PyInt>())
        {
            return Err(PyTypeError::new_err("throw_new_error_on_trip must be a bool"));
        }
        let clock = if clock.is_none() {
            None
        } else {
            Some(
                clock
                    .cast::<PyManualClock>()
                    .map_err(|_| PyTypeError::new_err("clock must be a breakerbox.ManualClock or None"))?
                    .get()
                    .0
                    .clone(),
            )
        };
        let initial = parse_state(
            &initial_state
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("state must be a str"))?
                .to_string(),
        )?;
        let listeners: Vec<Bound<'_, PyAny>> = if listeners.is_none() {
            Vec::new()
        } else {
            listeners
                .try_iter()
                .map_err(|_| PyTypeError::new_err("listeners must be an iterable of listeners"))?
                .collect::<PyResult<_>>()?
        };
        let shared = match redis_url {
            Some(url) => {
                let timeout = match redis_command_timeout {
                    Some(v) => args::seconds("command_timeout", v, true)?,
                    None => breakerbox::redis::DEFAULT_COMMAND_TIMEOUT,
                };
                let refresh = match redis_refresh_interval {
                    Some(v) => args::seconds("refresh_interval", v, true)?,
                    None => breakerbox::redis::DEFAULT_REFRESH_INTERVAL,
                };
                let endpoint = match (redis_cluster, redis_sentinel) {
                    (Some(nodes), _) => Endpoint::Cluster(nodes),
                    (None, Some((sentinels, master, username, password, db))) => Endpoint::Sentinel {
                        sentinels,
                        master,
                        username,
                        password,
                        db,
                    },
                    (None, None) => Endpoint::Url(url),
                };
                Some(Shared::new(
                    endpoint,
                    redis_tls,
                    redis_namespace,
                    redis_policy,
                    timeout,
                    refresh,
                )?)
            }
            None => None,
        };
        let config = Config {
            name: core_name,
            fail_max: args::count("fail_max", fail_max, u32::MAX)?,
            reset_timeout: args::seconds("reset_timeout", reset_timeout, false)?,
            success_threshold: args::count("success_threshold", success_threshold, MAX_COUNT)?,
            half_open_max_calls: args::count("half_open_max_calls", half_open_max_calls, MAX_COUNT)?,
            probe_lease: if probe_lease.is_none() {
                None
            } else {
                Some(args::seconds("probe_lease", probe_lease, true)?)
            },
            half_open_rule: match half_open_rule {
                Some(rule) if !rule.is_none() => args::half_open_rule(rule)?,
                _ => breakerbox::HalfOpenRule::Successes,
            },
            clock,
            shared,
            options: Options::parse(Raw {
                count_window,
                time_window,
                window_buckets,
                failure_rate_threshold,
                minimum_calls,
                slow_call_duration,
                slow_call_rate_threshold,
                mode,
                open_backoff,
            })?,
        };
        let exclude = exclusions(py, "exclude", Some(exclude))?;
        let ignore = exclusions(py, "ignore", Some(ignore))?;
        let given = config.options.given.clone();
        // The build runs on this thread with the GIL released; what it
        // reports is queued here, under the breaker's address while it was
        // being made.
        let mark = events::mark();
        let core = py
            .detach(|| Core::build(config, initial))
            .map_err(|e| build_error(e, &given))?;
        *lock(&this.exclude) = exclude;
        *lock(&this.ignore) = ignore;
        *lock(&this.name) = if name.is_none() {
            None
        } else {
            Some(name.clone().unbind())
        };
        this.throw_new_error
            .store(throw_new_error_on_trip.is_truthy()?, Ordering::Release);
        this.nodus.store(nodus, Ordering::Release);
        this._set_listeners(py, PyTuple::new(py, listeners)?);
        this.install(core);
        let core = this.core()?;
        events::adopt(mark, &core.breaker);
        // The starting state is where it begins, not a change to report; a
        // fault met while building (a shared breaker's first sync) is.
        let mut faults = Vec::new();
        for event in events::take(&core.breaker) {
            match event {
                Event::Transition { to: State::Open, .. } => {
                    this.opened_at_ms.store(now_ms(), Ordering::Release);
                }
                Event::StorageError(message) => faults.push(message),
                _ => {}
            }
        }
        let mut errors = Errors::default();
        if let Some(list) = this.listener_list(py).filter(|_| !faults.is_empty()) {
            for message in &faults {
                tell_storage_error(slf.as_any(), &list, message, &mut errors);
            }
        }
        errors.into_result(())
    }

    /// `func(*args, **kwargs)` if the breaker admits it; raises
    /// `CircuitBreakerError` without calling it otherwise.
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn call(
        slf: &Bound<'_, Self>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        Self::run(slf, func, args, kwargs)
    }

    /// A context manager (sync and async) protecting its block.
    fn calling(slf: &Bound<'_, Self>) -> Calling {
        Calling::new(slf.clone().unbind())
    }

    /// The sync decorator's wrapper object.
    fn _decorate(slf: &Bound<'_, Self>, func: Py<PyAny>) -> Decorated {
        Decorated::new(slf.clone().unbind(), func)
    }

    /// Admission alone, for the call `func(*args, **kwargs)` that
    /// `before_call` listeners are shown; the permit records the outcome.
    #[pyo3(signature = (func=None, args=None, kwargs=None))]
    fn _acquire(
        slf: &Bound<'_, Self>,
        func: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyTuple>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Permit> {
        let this = slf.get();
        let empty = PyTuple::empty(slf.py());
        let call = func.map(|f| (f, args.unwrap_or(&empty), kwargs));
        let core = this.core()?;
        let ticket = this.admit(slf, core, call)?;
        Ok(Permit::new(slf.clone().unbind(), ticket, core.started_ms()))
    }

    /// `_acquire` without the permit object, for `call_async`: the ticket's
    /// bits, to hand back exactly once to `_succeed` or `_fail`. (The
    /// coroutine always records: a close or cancellation raises into it.)
    /// A breaker that times its calls hands out a `Permit` instead, which
    /// keeps when the call started.
    fn _admit(
        slf: &Bound<'_, Self>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let this = slf.get();
        let py = slf.py();
        let core = this.core()?;
        let ticket = this.admit(slf, core, Some((func, args, kwargs)))?;
        if core.times_calls() {
            let permit = Permit::new(slf.clone().unbind(), ticket, core.started_ms());
            return Ok(Bound::new(py, permit)?.into_any().unbind());
        }
        Ok(ticket.to_bits().into_pyobject(py)?.into_any().unbind())
    }

    /// Records the call admitted with `ticket` as a success.
    fn _succeed(slf: &Bound<'_, Self>, ticket: &Bound<'_, PyAny>) -> PyResult<()> {
        if !ticket.is_exact_instance_of::<PyInt>() {
            return ticket.cast::<Permit>()?.get().success(slf.py());
        }
        let ticket = Ticket::from_bits(ticket.extract()?);
        calls::record(slf, ticket, Outcome::Success, None, None).map(|_| ())
    }

    /// Records the call admitted with `ticket`, which raised `exc`; returns
    /// when `exc` itself should propagate, raises its replacement otherwise.
    fn _fail(slf: &Bound<'_, Self>, ticket: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        if !ticket.is_exact_instance_of::<PyInt>() {
            return ticket.cast::<Permit>()?.get().error(slf.py(), exc);
        }
        calls::record_error(slf, Ticket::from_bits(ticket.extract()?), None, exc)
    }

    /// How this breaker counts `exc`: "success", "failure" or "ignored".
    fn _classify(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<&'static str> {
        Ok(match self.classify(py, exc)? {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        })
    }

    /// Whether `exception` would count as a failure: no `exclude=` entry
    /// matches it (pybreaker's meaning; `ignore=` is not consulted).
    fn is_system_error(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<bool> {
        let exclude = lock(&self.exclude).as_ref().map(|t| t.clone_ref(py));
        match exclude {
            Some(list) => Ok(!matches(list.bind(py), exception)?),
            None => Ok(true),
        }
    }

    /// Forces the breaker open; returns `throw_new_error_on_trip`, as pybreaker does.
    fn open(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::control(slf, true, |b| {
            b.open();
        })?;
        Ok(slf.get().throw_new_error.load(Ordering::Relaxed))
    }

    /// Forces the breaker half-open.
    fn half_open(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::control(slf, true, |b| {
            b.half_open();
        })
    }

    /// Forces the breaker closed, with no failures counted.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::control(slf, true, |b| {
            b.close();
        })
    }

    #[getter]
    fn current_state(slf: &Bound<'_, Self>) -> PyResult<&'static str> {
        Self::control(slf, false, |b| state_name(b.state()))
    }

    /// The state object (`.name` is `current_state`).
    #[getter]
    fn state(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let state = Self::control(slf, false, |b| b.state())?;
        Ok(setup(slf.py())?.states[state_index(state)].clone_ref(slf.py()))
    }

    /// Forces the named state ("closed", "open" or "half-open").
    #[setter]
    fn set_state(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = match value.cast::<PyString>() {
            Ok(s) => s.to_string(),
            Err(_) => value
                .getattr("name")
                .and_then(|n| n.extract::<String>())
                .map_err(|_| PyTypeError::new_err("state must be a state name (str)"))?,
        };
        let target = parse_state(&name)?;
        Self::control(slf, true, move |b| {
            match target {
                State::Closed => b.close(),
                State::Open => b.open(),
                State::HalfOpen => b.half_open(),
            };
        })
    }

    #[getter]
    fn fail_counter(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Self::control(slf, false, |b| b.fail_counter())
    }

    #[getter]
    fn success_counter(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Self::control(slf, false, |b| b.success_counter())
    }

    /// Half-open probes admitted and not yet recorded.
    #[getter]
    fn probes_in_flight(slf: &Bound<'_, Self>) -> PyResult<u32> {
        Self::control(slf, false, |b| b.probes_in_flight())
    }

    #[getter]
    fn fail_max(&self) -> PyResult<u32> {
        Ok(self.core()?.breaker.fail_max())
    }

    #[setter]
    fn set_fail_max(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::set_count(slf, "fail_max", value, u32::MAX, |b, v| {
            b.set_fail_max(v).map(|_| ())
        })
    }

    #[getter]
    fn success_threshold(&self) -> PyResult<u32> {
        Ok(self.core()?.breaker.success_threshold())
    }

    #[setter]
    fn set_success_threshold(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::set_count(slf, "success_threshold", value, MAX_COUNT, |b, v| {
            b.set_success_threshold(v).map(|_| ())
        })
    }

    /// How half-open decides: `"successes"` or `"failure_rate"`.
    #[getter]
    fn half_open_rule(&self) -> PyResult<&'static str> {
        Ok(args::half_open_rule_name(self.core()?.breaker.half_open_rule()))
    }

    #[getter]
    fn half_open_max_calls(&self) -> PyResult<u32> {
        Ok(self.core()?.breaker.half_open_max_calls())
    }

    #[setter]
    fn set_half_open_max_calls(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::set_count(slf, "half_open_max_calls", value, MAX_COUNT, |b, v| {
            b.set_half_open_max_calls(v)
        })
    }

    /// Seconds the breaker stays open before it admits a probe.
    #[getter]
    fn reset_timeout(&self) -> PyResult<f64> {
        Ok(args::to_seconds(self.core()?.breaker.reset_timeout()))
    }

    #[setter]
    fn set_reset_timeout(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = args::seconds("reset_timeout", value, false)?;
        let core = self.core()?;
        core.breaker.set_reset_timeout(d).map_err(config_error)?;
        core.note_reset_timeout(d);
        Ok(())
    }

    /// The window's failure rate in percent; None without a window, or
    /// below its minimum number of calls.
    #[getter]
    fn failure_rate(&self) -> PyResult<Option<f64>> {
        Ok(self.core()?.breaker.failure_rate().map(f64::from))
    }

    /// The window's slow-call rate in percent; None without a window or
    /// slow calls, or below its minimum number of calls.
    #[getter]
    fn slow_call_rate(&self) -> PyResult<Option<f64>> {
        Ok(self.core()?.breaker.slow_call_rate().map(f64::from))
    }

    /// Calls the window holds now; None without a window.
    #[getter]
    fn window_calls(&self) -> PyResult<Option<u64>> {
        Ok(self.core()?.breaker.window_calls())
    }

    /// Seconds the current open period lasts (the reset timeout without a
    /// backoff); None when not open.
    #[getter]
    fn open_for(&self) -> PyResult<Option<f64>> {
        Ok(self.core()?.breaker.open_for().map(args::to_seconds))
    }

    /// `breakerbox.Mode.ENFORCING`, `METRICS_ONLY` or `DISABLED`.
    #[getter]
    fn mode(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mode = self.core()?.breaker.mode();
        Ok(setup(py)?.modes[policy::mode_index(mode)].clone_ref(py))
    }

    /// Seconds a probe may stay unrecorded before its slot is reclaimed.
    #[getter]
    fn probe_lease(&self) -> PyResult<f64> {
        Ok(args::to_seconds(self.core()?.breaker.probe_lease()))
    }

    #[setter]
    fn set_probe_lease(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = args::seconds("probe_lease", value, true)?;
        let core = self.core()?;
        core.breaker.set_probe_lease(d).map_err(config_error)?;
        core.note_probe_lease();
        Ok(())
    }

    #[getter]
    fn name(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.name).as_ref().map(|n| n.clone_ref(py))
    }

    #[setter]
    fn set_name(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !(value.is_none() || value.is_instance_of::<PyString>()) {
            return Err(PyTypeError::new_err("name must be a str or None"));
        }
        *lock(&self.name) = if value.is_none() {
            None
        } else {
            Some(value.clone().unbind())
        };
        Ok(())
    }

    #[getter]
    fn throw_new_error_on_trip(&self) -> bool {
        self.throw_new_error.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_throw_new_error_on_trip(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !value.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err("throw_new_error_on_trip must be a bool"));
        }
        self.throw_new_error.store(value.is_truthy()?, Ordering::Relaxed);
        Ok(())
    }

    /// The registered listeners.
    #[getter]
    fn listeners<'py>(&self, py: Python<'py>) -> Bound<'py, PyTuple> {
        self.listener_list(py).unwrap_or_else(|| PyTuple::empty(py))
    }

    fn _set_listeners(&self, _py: Python<'_>, listeners: Bound<'_, PyTuple>) {
        let any = !listeners.is_empty();
        *lock(&self.listeners) = any.then(|| listeners.unbind());
        self.has_listeners.store(any, Ordering::Release);
    }

    /// Exception classes and predicates that count as successes.
    #[getter]
    fn excluded_exceptions<'py>(&self, py: Python<'py>) -> Bound<'py, PyTuple> {
        lock(&self.exclude)
            .as_ref()
            .map(|t| t.bind(py).clone())
            .unwrap_or_else(|| PyTuple::empty(py))
    }

    fn _set_exclude(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let list = exclusions(py, "exclude", Some(value))?;
        *lock(&self.exclude) = list;
        Ok(())
    }

    /// Exception classes and predicates that count as neither.
    #[getter]
    fn ignored_exceptions<'py>(&self, py: Python<'py>) -> Bound<'py, PyTuple> {
        lock(&self.ignore)
            .as_ref()
            .map(|t| t.bind(py).clone())
            .unwrap_or_else(|| PyTuple::empty(py))
    }

    fn _set_ignore(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let list = exclusions(py, "ignore", Some(value))?;
        *lock(&self.ignore) = list;
        Ok(())
    }

    /// Whether the state is shared through Redis.
    #[getter]
    fn is_shared(&self) -> PyResult<bool> {
        Ok(self.core()?.is_shared())
    }

    /// Seconds since the epoch of the latest opening this process saw.
    #[getter]
    fn _opened_at(&self) -> Option<f64> {
        match self.opened_at_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }

    /// In a forked child: a shared breaker gets a watcher and connections of
    /// its own. The parent's are left untouched (leaked): their thread does
    /// not exist here, and joining or closing them could hang.
    fn _after_fork_in_child(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let core = this.core()?;
        if !core.is_shared() {
            return Ok(());
        }
        let fresh = slf.py().detach(|| core.rebuild()).map_err(config_error)?;
        let _leaked = this.install(fresh);
        let mut errors = Errors::default();
        this.dispatch(slf, this.core()?, &mut errors);
        errors.into_result(())
    }
}
