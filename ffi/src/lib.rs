//! The C ABI of [`breakerbox`]: `libbreakerbox.a`,
//! `libbreakerbox.so` and `include/breakerbox.h`.
//!
//! An opaque [`cb_breaker`] handle owns a [`breakerbox::CircuitBreaker`]; C
//! takes a permit with [`cb_try_acquire`] before the protected call and
//! gives it back with [`cb_record`] after it. The header is generated from
//! this crate by cbindgen (`cbindgen.toml`), so the doc comments here are
//! the C documentation.
//!
//! The crate uses only breakerbox's public API; breakerbox itself exports
//! no C symbol. The boundary follows rustls-ffi:
//!
//! * each handle is tied to its Rust type through one trait, `Castable`, and
//!   every pointer is converted through it, so a handle cannot be cast two ways;
//! * every exported body runs inside one panic boundary, `ffi_panic_boundary!`:
//!   a panic becomes [`cb_status::Panic`] or the function's documented default;
//! * NULL pointers are caught by `try_ref_from_ptr!` / `try_non_null!`, which
//!   return the function's documented error value;
//! * enums that come *from* C are taken as raw integers and checked, because a
//!   C caller can pass any value and an out-of-range Rust enum is undefined
//!   behaviour.
//!
//! The modules split it by concern: the boundary machinery, the status
//! codes, the breaker handle, configuration (`cb_config` and `cb_builder`),
//! permits, the rate windows, mode and backoff, the callbacks, and the
//! Redis constructor.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn, unused_must_use)]
#![warn(missing_docs)]

#[macro_use]
mod boundary;
mod callback;
mod config;
mod handle;
mod permit;
mod policy;
#[cfg(feature = "redis")]
mod redis;
mod status;

pub use callback::{cb_backoff_fn, cb_clock_fn, cb_state_change_fn, cb_storage_error_fn, CB_RATE_NONE};
pub use config::{
    cb_builder, cb_builder_build, cb_builder_free, cb_builder_new, cb_builder_set_clock,
    cb_builder_set_on_storage_error, cb_builder_set_probe_lease_ms, cb_config, cb_config_default, cb_new,
};
pub use config::{cb_builder_set_half_open_rule, cb_half_open_rule, RawHalfOpenRule};
pub use handle::{
    cb_breaker, cb_current_state, cb_fail_counter, cb_force_close, cb_force_half_open, cb_force_open,
    cb_free, cb_get_storage_health, cb_name, cb_probes_in_flight, cb_set_fail_max,
    cb_set_half_open_max_calls, cb_set_probe_lease_ms, cb_set_reset_timeout_ms, cb_set_success_threshold,
    cb_storage_health, cb_success_counter,
};
pub use permit::{
    cb_permit, cb_record, cb_record_timed, cb_record_timed_permit, cb_timed_permit, cb_try_acquire,
    cb_try_acquire_retry_after, cb_try_acquire_timed,
};
pub use policy::{
    cb_builder_set_count_window, cb_builder_set_failure_rate_threshold, cb_builder_set_minimum_calls,
    cb_builder_set_mode, cb_builder_set_open_backoff_custom, cb_builder_set_open_backoff_exponential,
    cb_builder_set_slow_call_duration_ms, cb_builder_set_slow_call_rate_threshold,
    cb_builder_set_time_window_ms, cb_builder_set_window_buckets, cb_current_mode, cb_failure_rate,
    cb_jitter, cb_mode, cb_open_for_ms, cb_slow_call_rate, cb_window_calls, RawJitter, RawMode, CB_NO_VALUE,
};
#[cfg(feature = "redis-cluster")]
pub use redis::cb_builder_set_redis_cluster;
#[cfg(feature = "redis")]
pub use redis::{
    cb_builder_set_redis, cb_builder_set_redis_command_timeout_ms, cb_builder_set_redis_connect_timeout_ms,
    cb_builder_set_redis_fault_policy, cb_builder_set_redis_max_backoff_ms,
    cb_builder_set_redis_notifications, cb_builder_set_redis_refresh_interval_ms,
    cb_builder_set_redis_require_reachable, cb_builder_set_redis_sentinel, cb_fault_policy, cb_new_redis,
    RawFaultPolicy,
};
pub use status::{cb_outcome, cb_state, cb_status, cb_status_str, cb_version, RawOutcome, RawStatus};

/// The major version of this header (the crate's version; a test keeps them equal).
pub const BREAKERBOX_VERSION_MAJOR: u32 = 0;
/// The minor version of this header.
pub const BREAKERBOX_VERSION_MINOR: u32 = 1;
/// The patch version of this header.
pub const BREAKERBOX_VERSION_PATCH: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{c_void, CStr};
    use std::ptr;
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

    fn new(config: &cb_config) -> *mut cb_breaker {
        let mut out = ptr::null_mut();
        // SAFETY: both pointers are valid; the config's name is NULL or a C string.
        assert_eq!(unsafe { cb_new(config, &mut out) }, cb_status::Ok);
        assert!(!out.is_null());
        out
    }

    struct Seen {
        calls: AtomicU32,
        last_to: AtomicU32,
        state_inside: AtomicU32,
        name_ok: AtomicU32,
        handle: AtomicPtr<cb_breaker>,
    }

    unsafe extern "C-unwind" fn on_change(
        user_data: *mut c_void,
        breaker: *const cb_breaker,
        _from: cb_state,
        to: cb_state,
    ) {
        // SAFETY: the tests pass a `Seen` that outlives the breaker.
        let seen = unsafe { &*user_data.cast::<Seen>() };
        seen.calls.fetch_add(1, Ordering::SeqCst);
        seen.last_to.store(to as u32, Ordering::SeqCst);
        // SAFETY: `breaker` is the live handle the callback reports on.
        seen.state_inside
            .store(unsafe { cb_current_state(breaker) } as u32, Ordering::SeqCst);
        // SAFETY: as above; the name is read through the same pointer, which
        // must carry provenance over the whole handle (miri checks this).
        let name = unsafe { CStr::from_ptr(cb_name(breaker)) };
        seen.name_ok
            .store(u32::from(name.to_bytes() == b"db"), Ordering::SeqCst);
        seen.handle.store(breaker.cast_mut(), Ordering::SeqCst);
    }

    #[test]
    fn callback_gets_the_callers_handle_and_sees_the_new_state() {
        let seen = Seen {
            calls: AtomicU32::new(0),
            last_to: AtomicU32::new(99),
            state_inside: AtomicU32::new(99),
            name_ok: AtomicU32::new(0),
            handle: AtomicPtr::new(ptr::null_mut()),
        };
        let config = cb_config {
            fail_max: 1,
            name: c"db".as_ptr(),
            on_state_change: Some(on_change),
            user_data: ptr::addr_of!(seen).cast_mut().cast(),
            ..cb_config_default()
        };
        let b = new(&config);
        let mut permit = cb_permit { bits: 0 };
        // SAFETY: `b` is live until cb_free below.
        unsafe {
            assert_eq!(cb_try_acquire(b, &mut permit), cb_status::Ok);
            assert_eq!(cb_record(b, permit, RawOutcome(1)), cb_status::Ok);
        }
        assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
        assert_eq!(seen.last_to.load(Ordering::SeqCst), cb_state::Open as u32);
        assert_eq!(seen.state_inside.load(Ordering::SeqCst), cb_state::Open as u32);
        assert_eq!(seen.name_ok.load(Ordering::SeqCst), 1);
        assert_eq!(seen.handle.load(Ordering::SeqCst), b);
        // SAFETY: freed once, not used afterwards.
        unsafe { cb_free(b) };
    }

    #[test]
    fn null_and_out_of_range_inputs_are_errors() {
        let mut out = ptr::null_mut();
        let mut permit = cb_permit { bits: 7 };
        // SAFETY: NULL handles are allowed everywhere; other pointers are valid.
        unsafe {
            assert_eq!(cb_new(ptr::null(), &mut out), cb_status::InvalidArgument);
            assert_eq!(
                cb_new(&cb_config_default(), ptr::null_mut()),
                cb_status::InvalidArgument
            );
            assert!(out.is_null());
            assert_eq!(
                cb_try_acquire(ptr::null(), &mut permit),
                cb_status::InvalidArgument
            );
            assert_eq!(permit.bits, 7);
            assert_eq!(
                cb_record(ptr::null(), permit, RawOutcome(0)),
                cb_status::InvalidArgument
            );
            assert_eq!(cb_current_state(ptr::null()), cb_state::Open);
            assert_eq!(CStr::from_ptr(cb_name(ptr::null())).to_bytes(), b"");
            cb_free(ptr::null_mut());

            let b = new(&cb_config_default());
            assert_eq!(cb_try_acquire(b, ptr::null_mut()), cb_status::InvalidArgument);
            assert_eq!(cb_try_acquire(b, &mut permit), cb_status::Ok);
            assert_eq!(cb_record(b, permit, RawOutcome(7)), cb_status::InvalidArgument);
            assert_eq!(
                cb_record(b, cb_permit { bits: u64::MAX }, RawOutcome(1)),
                cb_status::InvalidArgument
            );
            assert_eq!(cb_fail_counter(b), 0);
            assert_eq!(cb_record(b, permit, RawOutcome(1)), cb_status::Ok);
            assert_eq!(cb_fail_counter(b), 1);
            assert_eq!(cb_set_fail_max(b, 0), cb_status::InvalidArgument);
            assert_eq!(CStr::from_ptr(cb_name(b)).to_bytes(), b"");
            cb_free(b);
        }
        let bad_name = cb_config {
            name: c"\xff\xfe".as_ptr(),
            ..cb_config_default()
        };
        // SAFETY: valid pointers; the name is NUL-terminated.
        assert_eq!(unsafe { cb_new(&bad_name, &mut out) }, cb_status::InvalidArgument);
        assert!(out.is_null());
    }

    #[test]
    fn a_builder_adds_settings_and_checks_them() {
        let mut builder = ptr::null_mut();
        let mut breaker = ptr::null_mut();
        // SAFETY: valid pointers; the builder and breakers are freed once below.
        unsafe {
            assert_eq!(
                cb_builder_new(ptr::null(), ptr::null_mut()),
                cb_status::InvalidArgument
            );
            assert_eq!(cb_builder_new(ptr::null(), &mut builder), cb_status::Ok);
            assert_eq!(
                cb_builder_set_probe_lease_ms(builder, 0),
                cb_status::InvalidArgument
            );
            assert_eq!(
                cb_builder_set_probe_lease_ms(ptr::null_mut(), 5),
                cb_status::InvalidArgument
            );
            assert_eq!(cb_builder_set_probe_lease_ms(builder, 1500), cb_status::Ok);
            assert_eq!(
                cb_builder_build(builder, ptr::null_mut()),
                cb_status::InvalidArgument
            );
            assert_eq!(cb_builder_build(builder, &mut breaker), cb_status::Ok);
            let handle = &*breaker.cast::<handle::FfiBreaker>();
            assert_eq!(handle.breaker.probe_lease().as_millis(), 1500);
            assert_eq!(cb_current_state(breaker), cb_state::Closed);
            cb_free(breaker);
            cb_builder_free(builder);
            cb_builder_free(ptr::null_mut());

            let zero = cb_config {
                fail_max: 0,
                ..cb_config_default()
            };
            assert_eq!(cb_builder_new(&zero, &mut builder), cb_status::Ok);
            breaker = ptr::null_mut();
            assert_eq!(
                cb_builder_build(builder, &mut breaker),
                cb_status::InvalidArgument
            );
            assert!(breaker.is_null());
            cb_builder_free(builder);
        }
    }
}
