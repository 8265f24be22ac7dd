//! The compiled half of the `breakerbox` Python package (`breakerbox._breakerbox`).
//!
//! The public package is plain Python that re-exports these objects; the
//! work of every protected call (admission, the call, the record) happens
//! here, in one crossing into Rust. Every object is `frozen`: its state is
//! atomics or short locks, never a borrow flag, and never a lock held across
//! the protected call or a listener.
#![deny(unsafe_op_in_unsafe_fn, unused_must_use)]

mod args;
mod breaker;
mod calls;
mod core;
mod events;
mod policy;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

pyo3::create_exception!(
    breakerbox,
    CircuitBreakerError,
    PyException,
    "Raised when the breaker rejects a call, or when a call's failure trips it \
     (pybreaker's `throw_new_error_on_trip`)."
);
pyo3::create_exception!(
    breakerbox.nodus,
    CircuitOpenError,
    PyException,
    "Raised when a nodus-style breaker rejects a call."
);

/// What the Python package hands over once, at import.
pub(crate) struct Setup {
    /// The state objects listeners receive: closed, open, half-open.
    pub(crate) states: [Py<PyAny>; 3],
    /// `_generator_call(permit, generator)`: records when the generator ends.
    pub(crate) generator_call: Py<PyAny>,
    /// The function `before_call` listeners see for a `calling()` block.
    pub(crate) calling_func: Py<PyAny>,
    pub(crate) generator_type: Py<PyType>,
    pub(crate) method_type: Py<PyAny>,
    /// The `breakerbox.Mode` members: enforcing, metrics-only, disabled.
    pub(crate) modes: [Py<PyAny>; 3],
}

static SETUP: PyOnceLock<Setup> = PyOnceLock::new();

pub(crate) fn setup(py: Python<'_>) -> PyResult<&'static Setup> {
    SETUP.get(py).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("import breakerbox, not breakerbox._breakerbox")
    })
}

/// Called once by `breakerbox/__init__.py`.
#[pyfunction]
fn _setup(
    py: Python<'_>,
    states: &Bound<'_, PyTuple>,
    generator_call: Py<PyAny>,
    calling_func: Py<PyAny>,
    modes: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    let types = py.import("types")?;
    let state = |i: usize| -> PyResult<Py<PyAny>> { Ok(states.get_item(i)?.unbind()) };
    let mode = |i: usize| -> PyResult<Py<PyAny>> { Ok(modes.get_item(i)?.unbind()) };
    let value = Setup {
        states: [state(0)?, state(1)?, state(2)?],
        modes: [mode(0)?, mode(1)?, mode(2)?],
        generator_call,
        calling_func,
        generator_type: types.getattr("GeneratorType")?.cast_into::<PyType>()?.unbind(),
        method_type: types.getattr("MethodType")?.unbind(),
    };
    let _ = SETUP.set(py, value);
    Ok(())
}

#[pymodule]
fn _breakerbox(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Seconds until a probe may be admitted, set on the errors rejections
    // raise when known; None on the class, so on any other instance.
    py.get_type::<CircuitBreakerError>()
        .setattr("retry_after", py.None())?;
    py.get_type::<CircuitOpenError>()
        .setattr("retry_after", py.None())?;
    m.add("CircuitBreakerError", py.get_type::<CircuitBreakerError>())?;
    m.add("CircuitOpenError", py.get_type::<CircuitOpenError>())?;
    m.add_class::<breaker::BreakerBase>()?;
    m.add_class::<calls::Decorated>()?;
    m.add_class::<calls::Calling>()?;
    m.add_class::<calls::Ready>()?;
    m.add_class::<calls::Permit>()?;
    m.add_class::<core::PyManualClock>()?;
    m.add_class::<policy::ExponentialBackoff>()?;
    m.add_function(wrap_pyfunction!(_setup, m)?)?;
    Ok(())
}
