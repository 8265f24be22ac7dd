//! The options beyond the consecutive rule: a rate window, slow calls, the
//! shadow modes and the open backoff, checked as Python hands them in and
//! handed to the core's builder. None given: the builder sees none of them,
//! and the breaker is the one it was before they existed.

use crate::args;
use breakerbox::clock::{Clock, ManualClock, MonotonicClock};
use breakerbox::{Backoff, Builder, Jitter, Mode, MAX_WINDOW_BUCKETS};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The position of `mode` in the tuple of `breakerbox.Mode` members.
pub(crate) fn mode_index(mode: Mode) -> usize {
    match mode {
        Mode::Enforcing => 0,
        Mode::MetricsOnly => 1,
        Mode::Disabled => 2,
    }
}

fn jitter_name(jitter: Jitter) -> &'static str {
    match jitter {
        Jitter::None => "none",
        Jitter::Full => "full",
        Jitter::Equal => "equal",
    }
}

/// The text of a `str` (or of a `str` enum member, such as `breakerbox.Mode`).
fn text(value: &Bound<'_, PyAny>) -> Option<String> {
    value
        .cast::<PyString>()
        .ok()
        .and_then(|s| s.to_cow().ok().map(|c| c.into_owned()))
}

/// `ExponentialBackoff(multiplier, cap, jitter="none")`: open period n
/// lasts `min(cap, reset_timeout × multiplier^(n-1))`, then jittered.
#[pyclass(frozen, module = "breakerbox._breakerbox", name = "ExponentialBackoff")]
#[derive(Clone, Copy)]
pub(crate) struct ExponentialBackoff {
    multiplier: f64,
    cap: Duration,
    jitter: Jitter,
}

#[pymethods]
impl ExponentialBackoff {
    #[new]
    #[pyo3(signature = (multiplier, cap, jitter=None))]
    fn new(
        multiplier: &Bound<'_, PyAny>,
        cap: &Bound<'_, PyAny>,
        jitter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let m = args::number("multiplier", multiplier)?;
        if m < 1.0 {
            return Err(PyValueError::new_err(format!(
                "multiplier must be at least 1, got {m}"
            )));
        }
        let cap = args::seconds("cap", cap, false)?;
        let jitter = match jitter {
            None => Jitter::None,
            Some(j) => match text(j).as_deref() {
                Some("none") => Jitter::None,
                Some("full") => Jitter::Full,
                Some("equal") => Jitter::Equal,
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "jitter must be 'none', 'full' or 'equal', got {other:?}"
                    )))
                }
                None => {
                    return Err(PyTypeError::new_err(
                        "jitter must be a breakerbox.Jitter or its name ('none', 'full', 'equal')",
                    ))
                }
            },
        };
        Ok(ExponentialBackoff {
            multiplier: m,
            cap,
            jitter,
        })
    }

    #[getter]
    fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The longest open period, in seconds.
    #[getter]
    fn cap(&self) -> f64 {
        args::to_seconds(self.cap)
    }

    /// "none", "full" (uniform in [0, d]) or "equal" (uniform in [d/2, d]).
    #[getter]
    fn jitter(&self) -> &'static str {
        jitter_name(self.jitter)
    }

    fn __repr__(&self) -> String {
        format!(
            "ExponentialBackoff(multiplier={:?}, cap={:?}, jitter='{}')",
            self.multiplier,
            self.cap(),
            self.jitter()
        )
    }
}

#[derive(Clone)]
enum BackoffArg {
    Exponential(ExponentialBackoff),
    /// `f(attempt, failure_rate_or_None) -> seconds`.
    Custom(Arc<Py<PyAny>>),
}

#[derive(Clone, Copy)]
enum WindowArg {
    Count(u32),
    Time(Duration),
}

/// What a call's duration is read from: the breaker's own clock.
#[derive(Clone)]
pub(crate) enum Timer {
    Manual(ManualClock),
    System(MonotonicClock),
}

impl Timer {
    pub(crate) fn new(clock: Option<&ManualClock>) -> Timer {
        match clock {
            Some(c) => Timer::Manual(c.clone()),
            None => Timer::System(MonotonicClock::new()),
        }
    }

    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Timer::Manual(c) => c.now_ms(),
            Timer::System(c) => c.now_ms(),
        }
    }
}

/// The options as checked; the default is none of them.
#[derive(Clone, Default)]
pub(crate) struct Options {
    window: Option<WindowArg>,
    window_buckets: Option<u32>,
    failure_rate_threshold: Option<f32>,
    minimum_calls: Option<u32>,
    slow_call_duration: Option<Duration>,
    slow_call_rate_threshold: Option<f32>,
    mode: Option<Mode>,
    backoff: Option<BackoffArg>,
    /// The names of the options given, for a refusal to name them.
    pub(crate) given: Vec<&'static str>,
}

/// The options as Python passed them (None: not given).
pub(crate) struct Raw<'a, 'py> {
    pub(crate) count_window: Option<&'a Bound<'py, PyAny>>,
    pub(crate) time_window: Option<&'a Bound<'py, PyAny>>,
    pub(crate) window_buckets: Option<&'a Bound<'py, PyAny>>,
    pub(crate) failure_rate_threshold: Option<&'a Bound<'py, PyAny>>,
    pub(crate) minimum_calls: Option<&'a Bound<'py, PyAny>>,
    pub(crate) slow_call_duration: Option<&'a Bound<'py, PyAny>>,
    pub(crate) slow_call_rate_threshold: Option<&'a Bound<'py, PyAny>>,
    pub(crate) mode: Option<&'a Bound<'py, PyAny>>,
    pub(crate) open_backoff: Option<&'a Bound<'py, PyAny>>,
}

fn parse_mode(value: &Bound<'_, PyAny>) -> PyResult<Mode> {
    match text(value).as_deref() {
        Some("enforcing") => Ok(Mode::Enforcing),
        Some("metrics_only") => Ok(Mode::MetricsOnly),
        Some("disabled") => Ok(Mode::Disabled),
        Some(other) => Err(PyValueError::new_err(format!(
            "mode must be 'enforcing', 'metrics_only' or 'disabled', got {other:?}"
        ))),
        None => Err(PyTypeError::new_err(
            "mode must be a breakerbox.Mode or its name ('enforcing', 'metrics_only', 'disabled')",
        )),
    }
}

fn parse_backoff(value: &Bound<'_, PyAny>) -> PyResult<BackoffArg> {
    if let Ok(e) = value.cast::<ExponentialBackoff>() {
        return Ok(BackoffArg::Exponential(*e.get()));
    }
    if value.is_callable() {
        return Ok(BackoffArg::Custom(Arc::new(value.clone().unbind())));
    }
    Err(PyTypeError::new_err(
        "open_backoff must be a breakerbox.ExponentialBackoff or a callable \
         (attempt, failure_rate) -> seconds",
    ))
}

impl Options {
    pub(crate) fn parse(raw: Raw<'_, '_>) -> PyResult<Options> {
        let mut o = Options::default();
        let mut given = |name: &'static str, v: Option<&Bound<'_, PyAny>>| {
            if v.is_some() {
                o.given.push(name);
            }
            v.is_some()
        };
        let window_only = [
            ("window_buckets", given("window_buckets", raw.window_buckets)),
            (
                "failure_rate_threshold",
                given("failure_rate_threshold", raw.failure_rate_threshold),
            ),
            ("minimum_calls", given("minimum_calls", raw.minimum_calls)),
            (
                "slow_call_duration",
                given("slow_call_duration", raw.slow_call_duration),
            ),
            (
                "slow_call_rate_threshold",
                given("slow_call_rate_threshold", raw.slow_call_rate_threshold),
            ),
        ];
        given("count_window", raw.count_window);
        given("time_window", raw.time_window);
        given("mode", raw.mode);
        given("open_backoff", raw.open_backoff);
        o.window = match (raw.count_window, raw.time_window) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "count_window and time_window exclude each other: give one",
                ))
            }
            (Some(n), None) => Some(WindowArg::Count(args::count("count_window", n, u32::MAX)?)),
            (None, Some(t)) => Some(WindowArg::Time(args::seconds("time_window", t, true)?)),
            (None, None) => None,
        };
        if o.window.is_none() {
            if let Some((name, _)) = window_only.iter().find(|(_, g)| *g) {
                return Err(PyValueError::new_err(format!(
                    "{name} needs count_window or time_window (the consecutive rule has no window)"
                )));
            }
        }
        if let Some(v) = raw.window_buckets {
            o.window_buckets = Some(args::count("window_buckets", v, MAX_WINDOW_BUCKETS)?);
        }
        if let Some(v) = raw.failure_rate_threshold {
            o.failure_rate_threshold = Some(args::percent("failure_rate_threshold", v)?);
        }
        if let Some(v) = raw.minimum_calls {
            o.minimum_calls = Some(args::count("minimum_calls", v, u32::MAX)?);
        }
        if let Some(v) = raw.slow_call_duration {
            o.slow_call_duration = Some(args::seconds("slow_call_duration", v, true)?);
        }
        if let Some(v) = raw.slow_call_rate_threshold {
            o.slow_call_rate_threshold = Some(args::percent("slow_call_rate_threshold", v)?);
        }
        if let Some(v) = raw.mode {
            o.mode = Some(parse_mode(v)?);
        }
        if let Some(v) = raw.open_backoff {
            o.backoff = Some(parse_backoff(v)?);
        }
        Ok(o)
    }

    /// Whether calls are timed: only with slow calls configured.
    pub(crate) fn times_calls(&self) -> bool {
        self.slow_call_duration.is_some()
    }

    /// The builder with these options; `base_ms` is the reset timeout a
    /// failing custom backoff falls back to.
    pub(crate) fn apply(&self, mut b: Builder, base_ms: &Arc<AtomicU64>) -> Builder {
        match self.window {
            Some(WindowArg::Count(n)) => b = b.count_window(n),
            Some(WindowArg::Time(d)) => b = b.time_window(d),
            None => {}
        }
        if let Some(v) = self.window_buckets {
            b = b.window_buckets(v);
        }
        if let Some(v) = self.failure_rate_threshold {
            b = b.failure_rate_threshold(v);
        }
        if let Some(v) = self.minimum_calls {
            b = b.minimum_calls(v);
        }
        if let Some(v) = self.slow_call_duration {
            b = b.slow_call_duration(v);
        }
        if let Some(v) = self.slow_call_rate_threshold {
            b = b.slow_call_rate_threshold(v);
        }
        if let Some(m) = self.mode {
            b = b.mode(m);
        }
        match &self.backoff {
            Some(BackoffArg::Exponential(e)) => {
                b = b.open_backoff(Backoff::exponential(e.multiplier, e.cap).jitter(e.jitter))
            }
            Some(BackoffArg::Custom(f)) => b = b.open_backoff(custom(f.clone(), base_ms.clone())),
            None => {}
        }
        b
    }
}

/// A Python function choosing each open period. Whatever goes wrong in it
/// (it raises, or returns no finite number of seconds at least 0) is
/// reported through `sys.unraisablehook`, and that period lasts the reset
/// timeout in force.
fn custom(func: Arc<Py<PyAny>>, base_ms: Arc<AtomicU64>) -> Backoff {
    Backoff::custom(move |attempt, failure_rate| {
        Python::attach(|py| {
            let f = func.bind(py);
            let chosen = f
                .call1((attempt, failure_rate))
                .and_then(|v| args::seconds("the result of open_backoff", &v, false));
            chosen.unwrap_or_else(|e| {
                e.write_unraisable(py, Some(f));
                Duration::from_millis(base_ms.load(Ordering::Acquire))
            })
        })
    })
}
