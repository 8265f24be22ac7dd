//! Checking what Python hands in: each error names the argument and its unit.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};
use std::time::Duration;

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// An `int` from 1 to `max` (a `bool` is refused: `True` is no count).
pub(crate) fn count(name: &str, value: &Bound<'_, PyAny>, max: u32) -> PyResult<u32> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(value)
        )));
    }
    match value.extract::<i64>() {
        Ok(v) if (1..=i64::from(max)).contains(&v) => Ok(v as u32),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be between 1 and {max}, got {}",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}

/// A number of seconds (`int` or `float`, finite, at least zero, or above
/// zero when `positive`), kept as whole milliseconds.
pub(crate) fn seconds(name: &str, value: &Bound<'_, PyAny>, positive: bool) -> PyResult<Duration> {
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number of seconds (int or float), not {}",
            type_name(value)
        )));
    }
    let secs: f64 = value.extract()?;
    let bad = || {
        let floor = if positive { "above 0" } else { "at least 0" };
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds {floor}, got {secs}"
        ))
    };
    if !secs.is_finite() || secs < 0.0 || (positive && secs <= 0.0) {
        return Err(bad());
    }
    let d = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
    if positive && d.as_millis() == 0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be at least 0.001 seconds (kept in whole milliseconds), got {secs}"
        )));
    }
    Ok(d)
}

/// A finite `int` or `float` (a `bool` is refused), for `name`.
pub(crate) fn number(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number (int or float), not {}",
            type_name(value)
        )));
    }
    let v: f64 = value.extract()?;
    if !v.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number, got {v}"
        )));
    }
    Ok(v)
}

/// A percentage above 0 and at most 100.
pub(crate) fn percent(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f32> {
    let v = number(name, value)?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a percentage above 0 and at most 100, got {v}"
        )));
    }
    Ok(v as f32)
}

/// Seconds as Python sees them.
pub(crate) fn to_seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// How half-open decides: `"successes"` or `"failure_rate"`.
pub(crate) fn half_open_rule(value: &Bound<'_, PyAny>) -> PyResult<breakerbox::HalfOpenRule> {
    let Ok(text) = value.extract::<String>() else {
        return Err(PyTypeError::new_err(format!(
            "half_open_rule must be a str, not {}",
            type_name(value)
        )));
    };
    match text.as_str() {
        "successes" => Ok(breakerbox::HalfOpenRule::Successes),
        "failure_rate" => Ok(breakerbox::HalfOpenRule::FailureRate),
        _ => Err(PyValueError::new_err(format!(
            "half_open_rule must be 'successes' or 'failure_rate', got {text:?}"
        ))),
    }
}

/// The name `half_open_rule` takes for `rule`.
pub(crate) fn half_open_rule_name(rule: breakerbox::HalfOpenRule) -> &'static str {
    match rule {
        breakerbox::HalfOpenRule::Successes => "successes",
        breakerbox::HalfOpenRule::FailureRate => "failure_rate",
    }
}
