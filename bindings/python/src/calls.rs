//! The objects a protected call goes through: the decorator's wrapper, the
//! `calling()` context manager, and a permit for code that records by hand
//! (`call_async`, generators, the LLM adapter).
//!
//! Each holds at most one admitted ticket, taken exactly once (an atomic
//! swap), so an outcome is never recorded twice. One dropped unrecorded
//! (a permit forgotten, a coroutine abandoned mid-call) records the call as
//! ignored: it never answered, and must not hold a probe slot.

use crate::breaker::{BreakerBase, Errors};
use crate::setup;
use breakerbox::{Outcome, Ticket};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::sync::atomic::{AtomicU64, Ordering};

/// One admitted ticket; 0 when there is none (no ticket has bits 0).
struct Slot(AtomicU64);

impl Slot {
    fn new(ticket: Option<Ticket>) -> Slot {
        Slot(AtomicU64::new(ticket.map_or(0, Ticket::to_bits)))
    }

    fn put(&self, ticket: Ticket) -> bool {
        self.0
            .compare_exchange(0, ticket.to_bits(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn take(&self) -> Option<Ticket> {
        match self.0.swap(0, Ordering::AcqRel) {
            0 => None,
            bits => Some(Ticket::from_bits(bits)),
        }
    }

    fn is_held(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }
}

/// Records `outcome` for a ticket of `breaker` (of a call timed from
/// `started_ms`, if slow calls are configured); listener errors are returned.
pub(crate) fn record(
    breaker: &Bound<'_, BreakerBase>,
    ticket: Ticket,
    outcome: Outcome,
    started_ms: Option<u64>,
    exc: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let this = breaker.get();
    let core = this.core()?;
    let mut errors = Errors::default();
    let recorded = this.record(breaker, core, ticket, outcome, started_ms, exc, &mut errors);
    errors.into_result(recorded.tripped())
}

/// Records an exception; `Ok` when the caller should re-raise it as is.
pub(crate) fn record_error(
    breaker: &Bound<'_, BreakerBase>,
    ticket: Ticket,
    started_ms: Option<u64>,
    exc: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let this = breaker.get();
    let core = this.core()?;
    let raised = this.fail(breaker, core, ticket, started_ms, PyErr::from_value(exc.clone()));
    if raised.value(breaker.py()).is(exc) {
        Ok(())
    } else {
        Err(raised)
    }
}

/// Records a forgotten ticket as ignored, from a destructor.
fn drop_slot(breaker: &Py<BreakerBase>, slot: &Slot) {
    if let Some(ticket) = slot.take() {
        Python::attach(|py| {
            if let Err(e) = record(breaker.bind(py), ticket, Outcome::Ignored, None, None) {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// What `@breaker` makes of a function: calls it through the breaker.
#[pyclass(frozen, dict, module = "breakerbox._breakerbox", name = "Decorated")]
pub(crate) struct Decorated {
    breaker: Py<BreakerBase>,
    func: Py<PyAny>,
}

impl Decorated {
    pub(crate) fn new(breaker: Py<BreakerBase>, func: Py<PyAny>) -> Self {
        Decorated { breaker, func }
    }
}

#[pymethods]
impl Decorated {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        BreakerBase::run(self.breaker.bind(py), self.func.bind(py), args, kwargs)
    }

    /// Binds like a function, so a decorated method gets its `self`.
    fn __get__(
        slf: &Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match obj.filter(|o| !o.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            Some(obj) => Ok(setup(py)?.method_type.bind(py).call1((slf, obj))?.unbind()),
        }
    }

    /// Pickled by name, as the function it replaces would be (so it can be
    /// handed to a `multiprocessing` worker).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.as_any().getattr(pyo3::intern!(slf.py(), "__qualname__"))
    }

    /// The breaker protecting the function.
    #[getter]
    fn breaker(&self, py: Python<'_>) -> Py<BreakerBase> {
        self.breaker.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("<breakerbox-protected {}>", self.func.bind(py).repr()?))
    }
}

/// No start time kept: the breaker does not time its calls.
const UNTIMED: u64 = u64::MAX;

fn started(ms: Option<u64>) -> u64 {
    ms.unwrap_or(UNTIMED)
}

fn started_ms(raw: u64) -> Option<u64> {
    (raw != UNTIMED).then_some(raw)
}

/// `with breaker.calling():` and `async with breaker.calling():`.
#[pyclass(frozen, module = "breakerbox._breakerbox", name = "Calling")]
pub(crate) struct Calling {
    breaker: Py<BreakerBase>,
    slot: Slot,
    /// When the block was entered, if the breaker times calls; written
    /// before the ticket is put in its slot, read after it is taken.
    started: AtomicU64,
}

impl Calling {
    pub(crate) fn new(breaker: Py<BreakerBase>) -> Self {
        Calling {
            breaker,
            slot: Slot::new(None),
            started: AtomicU64::new(UNTIMED),
        }
    }

    fn enter(&self, py: Python<'_>) -> PyResult<()> {
        if self.slot.is_held() {
            return Err(PyRuntimeError::new_err("this calling() block is already entered"));
        }
        let breaker = self.breaker.bind(py);
        let this = breaker.get();
        let core = this.core()?;
        let ticket = this.admit(breaker, core, None)?;
        if core.times_calls() {
            self.started.store(started(core.started_ms()), Ordering::Relaxed);
        }
        if !self.slot.put(ticket) {
            let _ = record(breaker, ticket, Outcome::Ignored, None, None);
            return Err(PyRuntimeError::new_err("this calling() block is already entered"));
        }
        Ok(())
    }

    /// False: let the block's exception (if any) propagate as it is.
    fn exit(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(ticket) = self.slot.take() else {
            return Ok(false);
        };
        let breaker = self.breaker.bind(py);
        let started = started_ms(self.started.load(Ordering::Relaxed));
        match exc.filter(|e| !e.is_none()) {
            None => record(breaker, ticket, Outcome::Success, started, None).map(|_| false),
            Some(exc) => record_error(breaker, ticket, started, exc).map(|_| false),
        }
    }
}

#[pymethods]
impl Calling {
    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        self.enter(py)
    }

    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.exit(py, exc)
    }

    /// Admission happens here, before anything is awaited.
    fn __aenter__(&self, py: Python<'_>) -> PyResult<Ready> {
        self.enter(py)?;
        Ok(Ready { value: py.None() })
    }

    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Ready> {
        let suppress = self.exit(py, exc)?;
        Ok(Ready {
            value: pyo3::types::PyBool::new(py, suppress)
                .to_owned()
                .into_any()
                .unbind(),
        })
    }
}

impl Drop for Calling {
    fn drop(&mut self) {
        drop_slot(&self.breaker, &self.slot);
    }
}

/// An awaitable that is already done.
#[pyclass(frozen, module = "breakerbox._breakerbox", name = "Ready")]
pub(crate) struct Ready {
    value: Py<PyAny>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    #[pyo3(signature = (_value=None))]
    fn send(&self, py: Python<'_>, _value: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        self.__next__(py)
    }

    #[pyo3(signature = (typ, val=None, _tb=None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        Err(thrown(typ, val))
    }

    fn close(&self) {}
}

/// The exception `throw(typ, val)` asks for.
fn thrown(typ: &Bound<'_, PyAny>, val: Option<&Bound<'_, PyAny>>) -> PyErr {
    if let Ok(t) = typ.cast::<PyType>() {
        let args = val.filter(|v| !v.is_none()).map(|v| v.clone().unbind());
        match args {
            Some(v) if v.bind(typ.py()).is_instance(t).unwrap_or(false) => {
                PyErr::from_value(v.into_bound(typ.py()))
            }
            Some(v) => PyErr::from_type(t.clone(), (v,)),
            None => PyErr::from_type(t.clone(), ()),
        }
    } else {
        PyErr::from_value(typ.clone())
    }
}

/// Leave to run one call, recorded by hand, exactly once.
#[pyclass(frozen, module = "breakerbox._breakerbox", name = "Permit")]
pub(crate) struct Permit {
    breaker: Py<BreakerBase>,
    slot: Slot,
    /// When the call started, if the breaker times calls.
    started_ms: Option<u64>,
}

impl Permit {
    pub(crate) fn new(breaker: Py<BreakerBase>, ticket: Ticket, started_ms: Option<u64>) -> Self {
        Permit {
            breaker,
            slot: Slot::new(Some(ticket)),
            started_ms,
        }
    }
}

#[pymethods]
impl Permit {
    /// The call succeeded.
    pub(crate) fn success(&self, py: Python<'_>) -> PyResult<()> {
        match self.slot.take() {
            Some(t) => record(self.breaker.bind(py), t, Outcome::Success, self.started_ms, None).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The call failed; returns whether this failure tripped the breaker.
    #[pyo3(signature = (exc=None))]
    fn failure(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        match self.slot.take() {
            Some(t) => record(self.breaker.bind(py), t, Outcome::Failure, self.started_ms, exc),
            None => Ok(false),
        }
    }

    /// The call counts as neither.
    #[pyo3(signature = (exc=None))]
    fn ignore(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match self.slot.take() {
            Some(t) => record(self.breaker.bind(py), t, Outcome::Ignored, None, exc).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The call raised `exc`, classified as `call` would; returns when the
    /// caller should re-raise `exc` itself, raises the replacement otherwise.
    pub(crate) fn error(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        match self.slot.take() {
            Some(t) => record_error(self.breaker.bind(py), t, self.started_ms, exc),
            None => Ok(()),
        }
    }

    /// Whether this permit admitted a half-open probe.
    #[getter]
    fn is_probe(&self) -> bool {
        self.slot.0.load(Ordering::Acquire) != 0
            && Ticket::from_bits(self.slot.0.load(Ordering::Acquire)).is_probe()
    }

    /// Whether the outcome has been recorded.
    #[getter]
    fn recorded(&self) -> bool {
        !self.slot.is_held()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        drop_slot(&self.breaker, &self.slot);
    }
}
