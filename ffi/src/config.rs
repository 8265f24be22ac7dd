//! Configuration: the frozen `cb_config` of version 0.1, and `cb_builder`,
//! where every setting added since goes.

use crate::boundary::{free_box, to_boxed_mut_ptr, write_out, Castable, PanicOrDefault};
use crate::callback::{cb_clock_fn, cb_state_change_fn, cb_storage_error_fn, CClock, CallbackListener};
use crate::handle::{cb_breaker, FfiBreaker};
use crate::permit::PermitKey;
use crate::policy::PolicyOptions;
use crate::status::cb_status;
use breakerbox::clock::{Clock, MonotonicClock};
use breakerbox::{
    CircuitBreaker, HalfOpenRule, DEFAULT_FAIL_MAX, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT,
    DEFAULT_SUCCESS_THRESHOLD,
};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;
use std::time::Duration;

/// Configuration for `cb_new`. Start from `cb_config_default()` and change
/// the fields you need.
///
/// Its layout is frozen: no field is ever added, removed or reordered, so a
/// program built against any 0.x header can pass it to any later library.
/// Settings added after 0.1 are set on a `cb_builder`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cb_config {
    /// Consecutive failures in the closed state that trip the breaker.
    /// Default 5; at least 1.
    pub fail_max: u32,
    /// Milliseconds the breaker stays open before it admits a probe.
    /// Default 60000.
    pub reset_timeout_ms: u64,
    /// Probe successes in half-open needed to close. Default 1; 1 to 65535.
    pub success_threshold: u32,
    /// Probes admitted at once in half-open. Default 1; 1 to 65535.
    pub half_open_max_calls: u32,
    /// NULL (unnamed) or a NUL-terminated UTF-8 name, copied by `cb_new`.
    pub name: *const c_char,
    /// NULL for none, or called on every state change (see
    /// `cb_state_change_fn`).
    pub on_state_change: cb_state_change_fn,
    /// Passed to `on_state_change` as is. It is used from whichever thread
    /// makes a transition, so what it points to must be safe to use from any
    /// thread, and must outlive the breaker.
    pub user_data: *mut c_void,
}

fn default_config() -> cb_config {
    cb_config {
        fail_max: DEFAULT_FAIL_MAX,
        reset_timeout_ms: DEFAULT_RESET_TIMEOUT.as_millis() as u64,
        success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
        name: std::ptr::null(),
        on_state_change: None,
        user_data: std::ptr::null_mut(),
    }
}

impl PanicOrDefault for cb_config {
    fn value() -> Self {
        default_config()
    }
}

/// Settings for a breaker beyond `cb_config`. Opaque: made by
/// `cb_builder_new`, released by `cb_builder_free`; the breakers it built
/// do not depend on it.
///
/// A builder is not thread-safe: use it from one thread at a time. Its
/// setters check their argument at once (`CB_STATUS_INVALID_ARGUMENT`, and
/// nothing changes); `cb_builder_build` checks the whole.
pub struct cb_builder {
    _private: [u8; 0],
}

/// What a `cb_builder` handle points to.
pub(crate) struct FfiBuilder {
    /// The 0.1 settings; its `name` is not used (see `name`).
    base: cb_config,
    name: CString,
    probe_lease: Option<Duration>,
    on_storage_error: cb_storage_error_fn,
    storage_error_user_data: *mut c_void,
    /// `None`: the system's monotonic clock.
    clock: Option<CClock>,
    pub(crate) policy: PolicyOptions,
    #[cfg(feature = "redis")]
    pub(crate) redis: crate::redis::RedisOptions,
    half_open_rule: HalfOpenRule,
}

impl Castable for cb_builder {
    type RustType = FfiBuilder;
}

impl FfiBuilder {
    /// A builder holding `config`.
    ///
    /// # Safety
    ///
    /// `config.name` is NULL or a NUL-terminated string.
    pub(crate) unsafe fn from_config(config: &cb_config) -> Result<FfiBuilder, cb_status> {
        let name = if config.name.is_null() {
            CString::default()
        } else {
            // SAFETY: a non-NULL name is NUL-terminated per the contract.
            unsafe { CStr::from_ptr(config.name) }.to_owned()
        };
        if name.to_str().is_err() {
            return Err(cb_status::InvalidArgument);
        }
        Ok(FfiBuilder {
            base: cb_config {
                name: std::ptr::null(),
                ..*config
            },
            name,
            probe_lease: None,
            on_storage_error: None,
            storage_error_user_data: std::ptr::null_mut(),
            clock: None,
            policy: PolicyOptions::default(),
            #[cfg(feature = "redis")]
            redis: Default::default(),
            half_open_rule: HalfOpenRule::Successes,
        })
    }

    /// Builds the breaker and boxes it as a handle.
    pub(crate) fn build(&self) -> Result<*mut cb_breaker, cb_status> {
        let config = &self.base;
        let mut builder = CircuitBreaker::builder()
            .name(self.name.to_str().map_err(|_| cb_status::InvalidArgument)?)
            .fail_max(config.fail_max)
            .reset_timeout(Duration::from_millis(config.reset_timeout_ms))
            .success_threshold(config.success_threshold)
            .half_open_max_calls(config.half_open_max_calls);
        if let Some(lease) = self.probe_lease {
            builder = builder.probe_lease(lease);
        }
        if let Some(clock) = &self.clock {
            builder = builder.clock(clock.clone());
        }
        builder = self.policy.apply(builder);
        builder = builder.half_open_rule(self.half_open_rule);
        let listener = CallbackListener::new(
            config.on_state_change,
            config.user_data,
            self.on_storage_error,
            self.storage_error_user_data,
        )
        .map(Arc::new);
        if let Some(listener) = &listener {
            builder = builder.shared_listener(listener.clone());
        }
        #[cfg(feature = "redis")]
        let builder = self.redis.apply(builder)?;
        let breaker = builder.build()?;
        // Calls are timed on the breaker's clock, and only when their
        // duration counts.
        let timer = self.policy.times_calls().then(|| -> Arc<dyn Clock> {
            match &self.clock {
                Some(clock) => Arc::new(clock.clone()),
                None => Arc::new(MonotonicClock::new()),
            }
        });
        let handle = to_boxed_mut_ptr::<cb_breaker>(FfiBreaker {
            breaker,
            name: self.name.clone(),
            key: PermitKey::new(),
            timer,
        });
        if let Some(listener) = listener {
            listener.set_handle(handle);
        }
        Ok(handle)
    }
}

/// Reads `*config` (NULL: the defaults) into a builder.
///
/// # Safety
///
/// `config` is NULL or points to a readable `cb_config` whose `name` is NULL
/// or a NUL-terminated string.
pub(crate) unsafe fn builder_from(config: *const cb_config) -> Result<FfiBuilder, cb_status> {
    // SAFETY: NULL or readable per this function's contract; every field
    // type accepts any bit pattern C can put there.
    let config = if config.is_null() {
        default_config()
    } else {
        unsafe { config.read() }
    };
    // SAFETY: the name is NULL or NUL-terminated per the contract.
    unsafe { FfiBuilder::from_config(&config) }
}

/// Writes `result`'s handle to `*out`, or returns its error.
///
/// # Safety
///
/// `out` is non-NULL and writable.
pub(crate) unsafe fn write_handle<T>(result: Result<*mut T, cb_status>, out: *mut *mut T) -> cb_status {
    match result {
        Ok(handle) => {
            // SAFETY: per this function's contract.
            unsafe { write_out(out, handle) };
            cb_status::Ok
        }
        Err(status) => status,
    }
}

/// The default configuration: fail_max 5, reset_timeout_ms 60000,
/// success_threshold 1, half_open_max_calls 1, no name, no callback.
#[no_mangle]
pub extern "C" fn cb_config_default() -> cb_config {
    ffi_panic_boundary! { default_config() }
}

/// Makes a breaker from `config` and writes its handle to `*out`.
///
/// Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `config` or
/// `out` is NULL, a threshold is 0 or above its maximum, or the name is not
/// valid UTF-8. `*out` is written only on `CB_STATUS_OK`; release the handle
/// with `cb_free`. The name is copied; `config` is not kept.
///
/// # Safety
///
/// `config` is NULL or points to a readable `cb_config` whose `name` is NULL
/// or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cb_new(config: *const cb_config, out: *mut *mut cb_breaker) -> cb_status {
    ffi_panic_boundary! {
        try_non_null!(config);
        try_non_null!(out);
        // SAFETY: `config` is non-NULL and readable per the contract, and
        // `out` non-NULL and writable.
        unsafe { write_handle(builder_from(config).and_then(|b| b.build()), out) }
    }
}

/// Makes a builder holding `config`'s settings (NULL: the defaults of
/// `cb_config_default()`) and writes it to `*out`. Change settings with the
/// `cb_builder_set_*` functions, make breakers with `cb_builder_build`,
/// release it with `cb_builder_free`.
///
/// Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `out` is
/// NULL or the name is not valid UTF-8 (thresholds are checked by
/// `cb_builder_build`). `*out` is written only on `CB_STATUS_OK`. The name
/// is copied; `config` is not kept.
///
/// # Safety
///
/// `config` is NULL or points to a readable `cb_config` whose `name` is NULL
/// or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_new(config: *const cb_config, out: *mut *mut cb_builder) -> cb_status {
    ffi_panic_boundary! {
        try_non_null!(out);
        // SAFETY: `config` is NULL or readable per the contract, and `out`
        // non-NULL and writable.
        unsafe { write_handle(builder_from(config).map(to_boxed_mut_ptr::<cb_builder>), out) }
    }
}

/// Releases a builder. NULL is a no-op. Breakers it built are not affected.
///
/// # Safety
///
/// `builder` is NULL or a builder from `cb_builder_new` not yet freed, not
/// in use by another call, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_free(builder: *mut cb_builder) {
    ffi_panic_boundary! {
        // SAFETY: per this function's contract this is the builder's one release.
        unsafe { free_box(builder) }
    }
}

/// Sets the probe lease in milliseconds (at least 1), as
/// `cb_set_probe_lease_ms` does on a breaker. `CB_STATUS_INVALID_ARGUMENT`
/// for NULL or 0, and nothing changes.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_probe_lease_ms(
    builder: *mut cb_builder,
    probe_lease_ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        if probe_lease_ms == 0 {
            return cb_status::InvalidArgument;
        }
        builder.probe_lease = Some(Duration::from_millis(probe_lease_ms));
        cb_status::Ok
    }
}

/// Sets the function called when the store sharing the breaker's state
/// fails (see `cb_storage_error_fn`), and the `user_data` passed to it;
/// NULL for none. A breaker whose state is in memory never calls it.
/// `user_data` must be safe to use from any thread and outlive the breakers.
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_on_storage_error(
    builder: *mut cb_builder,
    on_storage_error: cb_storage_error_fn,
    user_data: *mut c_void,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        builder.on_storage_error = on_storage_error;
        builder.storage_error_user_data = user_data;
        cb_status::Ok
    }
}

/// Makes a breaker from the builder's settings and writes its handle to
/// `*out`; release it with `cb_free`. The builder is not consumed: each
/// call makes a new, independent breaker.
///
/// Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `builder` or
/// `out` is NULL, a threshold is 0 or above its maximum (see `cb_config`),
/// or the settings do not combine (a slow-call duration without a window;
/// a custom backoff or the disabled mode with Redis settings). A
/// builder with Redis settings behaves as `cb_new_redis`.
/// `*out` is written only on `CB_STATUS_OK`.
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_build(
    builder: *const cb_builder,
    out: *mut *mut cb_breaker,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_ref_from_ptr!(builder);
        try_non_null!(out);
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { write_handle(builder.build(), out) }
    }
}

/// Makes the breakers this builder builds read the time from `now_ms`
/// (see `cb_clock_fn`), passing it `user_data` as is, instead of the
/// system's monotonic clock; NULL goes back to the system's. Tests move
/// such a clock by hand instead of sleeping.
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
pub unsafe extern "C" fn cb_builder_set_clock(
    builder: *mut cb_builder,
    now_ms: cb_clock_fn,
    user_data: *mut c_void,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        builder.clock = CClock::new(now_ms, user_data);
        cb_status::Ok
    }
}

/// How a half-open breaker decides whether to close.
///
/// Taken as a 32-bit integer and checked: a value outside this list is
/// `CB_STATUS_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_half_open_rule {
    /// `success_threshold` probe successes close; a probe failure re-opens
    /// at once. The default.
    Successes = 0,
    /// `half_open_max_calls` probes are admitted in all (at most 31); once
    /// every one is recorded, the breaker re-opens if the share of them that
    /// failed is at or above the failure-rate threshold
    /// (`cb_builder_set_failure_rate_threshold`, default 50%), else closes. An ignored
    /// probe gives its permit back. `success_threshold` must stay 1.
    FailureRate = 1,
}

/// A half-open rule exactly as C passed it; [`cb_half_open_rule`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHalfOpenRule(pub u32);

impl RawHalfOpenRule {
    fn to_rule(self) -> Option<HalfOpenRule> {
        match self.0 {
            x if x == cb_half_open_rule::Successes as u32 => Some(HalfOpenRule::Successes),
            x if x == cb_half_open_rule::FailureRate as u32 => Some(HalfOpenRule::FailureRate),
            _ => None,
        }
    }
}

/// Sets how half-open decides (default `CB_HALF_OPEN_RULE_SUCCESSES`).
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or a value outside
/// `cb_half_open_rule`, and nothing changes. Under
/// `CB_HALF_OPEN_RULE_FAILURE_RATE`, `cb_builder_build` refuses a
/// `half_open_max_calls` above 31, a `success_threshold` other than 1, and
/// Redis settings (`CB_STATUS_INVALID_ARGUMENT`).
///
/// # Safety
///
/// `builder` is NULL or a live builder not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn cb_builder_set_half_open_rule(
    builder: *mut cb_builder,
    rule: RawHalfOpenRule,
) -> cb_status {
    ffi_panic_boundary! {
        let builder = try_mut_from_ptr!(builder);
        let Some(rule) = rule.to_rule() else {
            return cb_status::InvalidArgument;
        };
        builder.half_open_rule = rule;
        cb_status::Ok
    }
}
