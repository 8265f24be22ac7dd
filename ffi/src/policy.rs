//! Rate windows, slow calls, the mode and the open-period backoff: the
//! builder's setters for them and the breaker's getters.
//!
//! Each setter checks its value by the core's own rules, at once (see
//! [`accepted`]); `cb_builder_build` checks how they combine.

use crate::boundary::{NullOrDefault, PanicOrDefault};
use crate::callback::{c_backoff, cb_backoff_fn, CB_RATE_NONE};
use crate::config::cb_builder;
use crate::handle::cb_breaker;
use crate::status::{cb_status, status_of};
use breakerbox::{Backoff, Builder, CircuitBreaker, Jitter, Mode, WindowKind};
use std::ffi::c_void;
use std::time::Duration;

/// What a `u64` getter returns when it has no value (`UINT64_MAX`).
pub const CB_NO_VALUE: u64 = u64::MAX;

/// Whether a breaker acts on its decisions.
///
/// Taken as a 32-bit integer and checked: a value outside this list is
/// `CB_STATUS_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_mode {
    /// Rejects calls while open. The default.
    Enforcing = 0,
    /// Shadow mode, to tune thresholds on live traffic: every decision is
    /// made, counted and reported to the callbacks (transitions included),
    /// but no call is rejected. A call admitted where it would have been
    /// rejected counts for nothing: recording its permit returns
    /// `CB_STATUS_STALE_PERMIT`.
    MetricsOnly = 1,
    /// Every call is admitted and nothing is counted or reported. Forced
    /// states still change, but reject nothing.
    Disabled = 2,
}

/// Randomness added to an exponential backoff, so that breakers opened
/// together do not probe together.
///
/// Taken as a 32-bit integer and checked: a value outside this list is
/// `CB_STATUS_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_jitter {
    /// Exactly the computed duration.
    None = 0,
    /// Uniform in [0, d] ("full jitter").
    Full = 1,
    /// Uniform in [d/2, d] ("equal jitter").
    Equal = 2,
}

/// A mode exactly as C passed it; [`cb_mode`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMode(pub u32);

/// A jitter exactly as C passed it; [`cb_jitter`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJitter(pub u32);

impl RawMode {
    fn to_mode(self) -> Option<Mode> {
        match self.0 {
            x if x == cb_mode::Enforcing as u32 => Some(Mode::Enforcing),
            x if x == cb_mode::MetricsOnly as u32 => Some(Mode::MetricsOnly),
            x if x == cb_mode::Disabled as u32 => Some(Mode::Disabled),
            _ => None,
        }
    }
}

impl RawJitter {
    fn to_jitter(self) -> Option<Jitter> {
        match self.0 {
            x if x == cb_jitter::None as u32 => Some(Jitter::None),
            x if x == cb_jitter::Full as u32 => Some(Jitter::Full),
            x if x == cb_jitter::Equal as u32 => Some(Jitter::Equal),
            _ => None,
        }
    }
}

impl From<Mode> for cb_mode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Enforcing => cb_mode::Enforcing,
            Mode::MetricsOnly => cb_mode::MetricsOnly,
            Mode::Disabled => cb_mode::Disabled,
        }
    }
}

/// A builder's window, mode and backoff settings; unset ones keep the core's defaults.
#[derive(Default)]
pub(crate) struct PolicyOptions {
    window: Option<WindowKind>,
    buckets: Option<u32>,
    failure_rate_threshold: Option<f32>,
    minimum_calls: Option<u32>,
    slow_call_duration: Option<Duration>,
    slow_call_rate_threshold: Option<f32>,
    mode: Option<Mode>,
    backoff: Option<Backoff>,
}

impl PolicyOptions {
    pub(crate) fn apply(&self, mut builder: Builder) -> Builder {
        match self.window {
            Some(WindowKind::Count { size }) => builder = builder.count_window(size),
            Some(WindowKind::Time { duration }) => builder = builder.time_window(duration),
            Some(WindowKind::Consecutive) | None => {}
        }
        if let Some(buckets) = self.buckets {
            builder = builder.window_buckets(buckets);
        }
        if let Some(percent) = self.failure_rate_threshold {
            builder = builder.failure_rate_threshold(percent);
        }
        if let Some(calls) = self.minimum_calls {
            builder = builder.minimum_calls(calls);
        }
        if let Some(duration) = self.slow_call_duration {
            builder = builder.slow_call_duration(duration);
        }
        if let Some(percent) = self.slow_call_rate_threshold {
            builder = builder.slow_call_rate_threshold(percent);
        }
        if let Some(mode) = self.mode {
            builder = builder.mode(mode);
        }
        if let Some(backoff) = &self.backoff {
            builder = builder.open_backoff(backoff.clone());
        }
        builder
    }

    /// Whether calls are timed: only with slow calls configured.
    pub(crate) fn times_calls(&self) -> bool {
        self.slow_call_duration.is_some()
    }
}

/// Whether the core accepts `option` on its own. A breaker is built with
/// it (and a count window, which every window option needs) and dropped, so
/// the setters refuse exactly what `cb_builder_build` would, by the core's
/// checks rather than a copy of them.
fn accepted(option: impl FnOnce(Builder) -> Builder) -> cb_status {
    status_of(
        option(CircuitBreaker::builder().count_window(1))
            .build()
            .map(drop),
    )
}

/// Stores `value` in `field` if the core accepts `option`; else nothing changes.
fn set<T>(field: &mut Option<T>, value: T, option: impl FnOnce(Builder) -> Builder) -> cb_status {
    let status = accepted(option);
    if status == cb_status::Ok {
        *field = Some(value);
    }
    status
}

/// Decides the closed state by the failure rate of the last `size` calls
/// (at least 1) instead of `fail_max` consecutive failures, which is then
/// unused while closed. Replaces a time window. The README's rules table
/// gives the semantics; the defaults are a 50% threshold and 100 minimum
/// calls (at most `size`), in 10 buckets. `CB_STATUS_INVALID_ARGUMENT` for
/// a NULL builder or 0, and nothing changes.
///
/// With `cb_builder_set_redis` the window is the fleet's (every process's
/// counts summed) and `CB_MODE_METRICS_ONLY` watches the fleet's
/// decisions; an exponential backoff grows the fleet's open periods. A
/// custom backoff (its function cannot run at the fleet) and
/// `CB_MODE_DISABLED` are per-process rules, which `cb_builder_build`
/// refuses with it (`CB_STATUS_INVALID_ARGUMENT`).
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_count_window(builder: *mut cb_builder, size: u32) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        set(&mut builder.policy.window, WindowKind::Count { size }, |b| b.count_window(size))
    }
}

/// Decides the closed state by the failure rate of the calls of the last
/// `duration_ms` milliseconds (at least 1), kept in buckets of
/// `duration_ms / buckets` each: the window covers between `duration_ms`
/// minus one bucket and `duration_ms` of history. Replaces a count window.
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0, and nothing
/// changes. See `cb_builder_set_count_window`.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_time_window_ms(
    builder: *mut cb_builder,
    duration_ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let duration = Duration::from_millis(duration_ms);
        set(&mut builder.policy.window, WindowKind::Time { duration }, |b| b.time_window(duration))
    }
}

/// Sets the buckets a window is kept in (default 10; 1 to 16): the window
/// advances one bucket at a time. `CB_STATUS_INVALID_ARGUMENT` for a NULL
/// builder or out of range, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_window_buckets(builder: *mut cb_builder, buckets: u32) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        set(&mut builder.policy.buckets, buckets, |b| b.window_buckets(buckets))
    }
}

/// Sets the failure rate, in percent, at or above which a window trips
/// (default 50; above 0 and at most 100). `CB_STATUS_INVALID_ARGUMENT` for
/// a NULL builder, a value out of range or NaN, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_failure_rate_threshold(
    builder: *mut cb_builder,
    percent: f32,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        set(&mut builder.policy.failure_rate_threshold, percent, |b| b.failure_rate_threshold(percent))
    }
}

/// Sets how many calls a window must hold before it may trip (default 100,
/// at least 1; a count window needs at most its size). Below it the rates
/// read as none and the window never trips. `CB_STATUS_INVALID_ARGUMENT`
/// for a NULL builder or 0, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_minimum_calls(builder: *mut cb_builder, calls: u32) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        set(&mut builder.policy.minimum_calls, calls, |b| b.minimum_calls(calls))
    }
}

/// A call recorded as taking longer than `duration_ms` milliseconds (at
/// least 1) is slow, whatever its outcome, and a window also trips when its
/// slow-call rate reaches `cb_builder_set_slow_call_rate_threshold`. Off by
/// default; needs a window (`cb_builder_build` refuses it without one).
/// Only calls recorded with a duration (`cb_record_timed`,
/// `cb_record_timed_permit`) can be slow. `CB_STATUS_INVALID_ARGUMENT` for
/// a NULL builder or 0, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_slow_call_duration_ms(
    builder: *mut cb_builder,
    duration_ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let duration = Duration::from_millis(duration_ms);
        set(&mut builder.policy.slow_call_duration, duration, |b| b.slow_call_duration(duration))
    }
}

/// Sets the slow-call rate, in percent, at or above which a window trips
/// (default 100; above 0 and at most 100). `CB_STATUS_INVALID_ARGUMENT` for
/// a NULL builder, a value out of range or NaN, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_slow_call_rate_threshold(
    builder: *mut cb_builder,
    percent: f32,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        set(&mut builder.policy.slow_call_rate_threshold, percent, |b| b.slow_call_rate_threshold(percent))
    }
}

/// Sets whether the breaker rejects, only reports, or does nothing (see
/// `cb_mode`; default `CB_MODE_ENFORCING`). `CB_STATUS_INVALID_ARGUMENT`
/// for a NULL builder or a value outside `cb_mode`, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_mode(builder: *mut cb_builder, mode: RawMode) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let Some(mode) = mode.to_mode() else {
            return cb_status::InvalidArgument;
        };
        set(&mut builder.policy.mode, mode, |b| b.mode(mode))
    }
}

/// Lengthens each consecutive open period: period n (1 for the first since
/// the breaker last closed) lasts min(cap_ms, reset_timeout_ms ×
/// multiplier^(n−1)) milliseconds (a cap below the reset timeout is the
/// reset timeout), then `jitter` is applied. A close starts over at the
/// reset timeout. Replaces any backoff set before. With
/// `cb_builder_set_redis` the periods are the fleet's: its script counts
/// them and chooses each (jitter included), for every process.
///
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder, a multiplier below 1,
/// infinite or NaN, or a jitter outside `cb_jitter`, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_open_backoff_exponential(
    builder: *mut cb_builder,
    multiplier: f64,
    cap_ms: u64,
    jitter: RawJitter,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let Some(jitter) = jitter.to_jitter() else {
            return cb_status::InvalidArgument;
        };
        let backoff = Backoff::exponential(multiplier, Duration::from_millis(cap_ms)).jitter(jitter);
        set(&mut builder.policy.backoff, backoff.clone(), |b| b.open_backoff(backoff))
    }
}

/// Lets `backoff` choose each open period's length (see `cb_backoff_fn`),
/// passing it `user_data` as is; replaces any backoff set before. NULL
/// removes the backoff: every open period lasts the reset timeout.
///
/// `user_data` is copied into every breaker the builder makes: what it
/// points to must be safe to use from any thread and outlive all of them
/// (freeing the builder does not end its use). `CB_STATUS_INVALID_ARGUMENT`
/// for a NULL builder.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_open_backoff_custom(
    builder: *mut cb_builder,
    backoff: cb_backoff_fn,
    user_data: *mut c_void,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        builder.policy.backoff = backoff.map(|f| c_backoff(f, user_data));
        cb_status::Ok
    }
}

/// The window's failure rate in percent (0 to 100), or `CB_RATE_NONE` (-1)
/// when there is none: no window, fewer calls in it than `minimum_calls`,
/// or a NULL breaker.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_failure_rate(breaker: *const cb_breaker) -> f32 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.failure_rate().unwrap_or(CB_RATE_NONE)
    }
}

/// The window's slow-call rate in percent (0 to 100), or `CB_RATE_NONE`
/// (-1) when there is none: no window, no slow-call duration set, fewer
/// calls in it than `minimum_calls`, or a NULL breaker.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_slow_call_rate(breaker: *const cb_breaker) -> f32 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.slow_call_rate().unwrap_or(CB_RATE_NONE)
    }
}

/// The calls the window holds now (ignored calls are not held), or
/// `CB_NO_VALUE` for a breaker without a window (the consecutive rule) and
/// for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_window_calls(breaker: *const cb_breaker) -> u64 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.window_calls().unwrap_or(CB_NO_VALUE)
    }
}

/// The breaker's mode (fixed when it is built); `CB_MODE_ENFORCING` for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_current_mode(breaker: *const cb_breaker) -> cb_mode {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.mode().into()
    }
}

/// How long the current open period lasts in milliseconds (the reset
/// timeout without a backoff), counted from when the breaker opened; or
/// `CB_NO_VALUE` when the breaker is not open, while a backoff is still
/// choosing the period's length, and for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_open_for_ms(breaker: *const cb_breaker) -> u64 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker)
            .breaker
            .open_for()
            .map_or(CB_NO_VALUE, |d| u64::try_from(d.as_millis()).unwrap_or(CB_NO_VALUE))
    }
}

impl PanicOrDefault for f32 {
    fn value() -> Self {
        CB_RATE_NONE
    }
}

impl NullOrDefault for f32 {
    fn value() -> Self {
        CB_RATE_NONE
    }
}

/// A `u64` getter's default is "no value".
impl PanicOrDefault for u64 {
    fn value() -> Self {
        CB_NO_VALUE
    }
}

impl NullOrDefault for u64 {
    fn value() -> Self {
        CB_NO_VALUE
    }
}

impl PanicOrDefault for cb_mode {
    fn value() -> Self {
        cb_mode::Enforcing
    }
}

impl NullOrDefault for cb_mode {
    fn value() -> Self {
        cb_mode::Enforcing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{cb_builder_build, cb_builder_free, cb_builder_new};
    use crate::handle::cb_free;
    use breakerbox::{
        DEFAULT_FAILURE_RATE_THRESHOLD, DEFAULT_MINIMUM_CALLS, DEFAULT_WINDOW_BUCKETS, MAX_WINDOW_BUCKETS,
    };
    use std::ptr;

    /// The numbers the setters' documentation gives.
    #[test]
    fn the_documented_defaults_are_the_cores() {
        assert_eq!(DEFAULT_FAILURE_RATE_THRESHOLD, 50.0);
        assert_eq!(DEFAULT_MINIMUM_CALLS, 100);
        assert_eq!(DEFAULT_WINDOW_BUCKETS, 10);
        assert_eq!(MAX_WINDOW_BUCKETS, 16);
    }

    unsafe extern "C-unwind" fn five_seconds(_: *mut c_void, _: u32, _: f32) -> u64 {
        5000
    }

    #[test]
    fn a_refused_value_changes_nothing() {
        let mut builder = ptr::null_mut();
        let mut breaker = ptr::null_mut();
        // SAFETY: valid pointers; the builder and breaker are freed once below.
        unsafe {
            assert_eq!(cb_builder_new(ptr::null(), &mut builder), cb_status::Ok);
            assert_eq!(cb_builder_set_count_window(builder, 20), cb_status::Ok);
            assert_eq!(
                cb_builder_set_count_window(builder, 0),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_window_buckets(builder, 17),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_failure_rate_threshold(builder, f32::NAN),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_mode(builder, RawMode(3)),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_open_backoff_exponential(builder, 2.0, 10, RawJitter(3)),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_open_backoff_custom(builder, Some(five_seconds), ptr::null_mut()),
                cb_status::Ok
            );
            assert_eq!(cb_builder_build(builder, &mut breaker), cb_status::Ok);
            let handle = &*breaker.cast::<crate::handle::FfiBreaker>();
            assert_eq!(handle.breaker.window_calls(), Some(0));
            assert_eq!(handle.breaker.mode(), Mode::Enforcing);
            assert!(
                handle.timer.is_none(),
                "no slow-call duration: calls are not timed"
            );
            let _ = handle.breaker.open();
            assert_eq!(cb_open_for_ms(breaker), 5000);
            cb_free(breaker);
            cb_builder_free(builder);
        }
    }
}
