//! The breaker handle: its release, queries, forced states and setters.

use crate::boundary::{free_box, Castable};
use crate::permit::PermitKey;
use crate::status::{cb_state, cb_status, status_of};
use breakerbox::CircuitBreaker;
use std::ffi::{c_char, CString};
use std::time::Duration;

/// A circuit breaker. Opaque: made by `cb_new` (or `cb_builder_build`),
/// released by `cb_free`.
///
/// Every function taking a `const cb_breaker *` is thread-safe and lock-free.
pub struct cb_breaker {
    _private: [u8; 0],
}

/// What a `cb_breaker` handle points to.
///
/// `#[repr(C)]` with the breaker first: the address of the handle is the
/// address of its `CircuitBreaker`, so the `&CircuitBreaker` a listener
/// receives names the very handle the C caller holds.
#[repr(C)]
pub(crate) struct FfiBreaker {
    pub(crate) breaker: CircuitBreaker,
    /// The name, NUL-terminated, for `cb_name`.
    pub(crate) name: CString,
    /// Seals this handle's permits (see `permit.rs`).
    pub(crate) key: PermitKey,
}

impl Castable for cb_breaker {
    type RustType = FfiBreaker;
}

/// Releases a breaker made by `cb_new`. NULL is a no-op.
///
/// # Safety
///
/// `breaker` is NULL or a handle from `cb_new` not yet freed; no other call
/// may be using it, and it must not be used afterwards (nor freed from
/// inside its own callbacks).
#[no_mangle]
pub unsafe extern "C" fn cb_free(breaker: *mut cb_breaker) {
    ffi_panic_boundary! {
        // SAFETY: per this function's contract this is the handle's one release.
        unsafe { free_box(breaker) }
    }
}

/// The current state; `CB_STATE_OPEN` for NULL. An open breaker whose reset
/// timeout has passed still reports open until a call asks for a permit.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_current_state(breaker: *const cb_breaker) -> cb_state {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.state().into()
    }
}

/// Consecutive failures counted in the closed state (0 in other states, and for NULL).
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_fail_counter(breaker: *const cb_breaker) -> u32 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.fail_counter()
    }
}

/// Probe successes counted in the half-open state (0 in other states, and for NULL).
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_success_counter(breaker: *const cb_breaker) -> u32 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.success_counter()
    }
}

/// Probes admitted in the half-open state and not yet recorded (0 in other
/// states, and for NULL).
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_probes_in_flight(breaker: *const cb_breaker) -> u32 {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).breaker.probes_in_flight()
    }
}

/// Forces the breaker open now; it half-opens after the reset timeout.
/// Already open: nothing changes. `CB_STATUS_OK`, or
/// `CB_STATUS_INVALID_ARGUMENT` for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_force_open(breaker: *const cb_breaker) -> cb_status {
    ffi_panic_boundary! {
        let _ = try_ref_from_ptr!(breaker).breaker.open();
        cb_status::Ok
    }
}

/// Forces the breaker half-open with every probe slot free. Already
/// half-open: nothing changes. `CB_STATUS_OK`, or
/// `CB_STATUS_INVALID_ARGUMENT` for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_force_half_open(breaker: *const cb_breaker) -> cb_status {
    ffi_panic_boundary! {
        let _ = try_ref_from_ptr!(breaker).breaker.half_open();
        cb_status::Ok
    }
}

/// Forces the breaker closed with a zero failure count. `CB_STATUS_OK`, or
/// `CB_STATUS_INVALID_ARGUMENT` for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_force_close(breaker: *const cb_breaker) -> cb_status {
    ffi_panic_boundary! {
        let _ = try_ref_from_ptr!(breaker).breaker.close();
        cb_status::Ok
    }
}

/// Sets `fail_max` (at least 1) for the next decision. A closed breaker that
/// already has that many failures trips now. `CB_STATUS_INVALID_ARGUMENT`
/// for NULL or 0, and nothing changes.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_set_fail_max(breaker: *const cb_breaker, fail_max: u32) -> cb_status {
    ffi_panic_boundary! {
        status_of(try_ref_from_ptr!(breaker).breaker.set_fail_max(fail_max).map(drop))
    }
}

/// Sets the reset timeout in milliseconds; an open breaker measures it from
/// when it opened. `CB_STATUS_INVALID_ARGUMENT` for NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_set_reset_timeout_ms(
    breaker: *const cb_breaker,
    reset_timeout_ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker)
            .breaker
            .set_reset_timeout(Duration::from_millis(reset_timeout_ms));
        cb_status::Ok
    }
}

/// Sets `success_threshold` (1 to 65535) for the next decision. A half-open
/// breaker that already has that many successes closes now.
/// `CB_STATUS_INVALID_ARGUMENT` for NULL or out of range, and nothing changes.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_set_success_threshold(
    breaker: *const cb_breaker,
    success_threshold: u32,
) -> cb_status {
    ffi_panic_boundary! {
        status_of(
            try_ref_from_ptr!(breaker)
                .breaker
                .set_success_threshold(success_threshold)
                .map(drop),
        )
    }
}

/// Sets how many probes half-open admits at once (1 to 65535), for the next
/// decision. `CB_STATUS_INVALID_ARGUMENT` for NULL or out of range, and
/// nothing changes.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_set_half_open_max_calls(
    breaker: *const cb_breaker,
    half_open_max_calls: u32,
) -> cb_status {
    ffi_panic_boundary! {
        status_of(try_ref_from_ptr!(breaker).breaker.set_half_open_max_calls(half_open_max_calls))
    }
}

/// Sets the probe lease in milliseconds (at least 1): how long a half-open
/// probe may stay unrecorded before its slot is given to another probe (its
/// permit then goes stale). Defaults to the reset timeout, at least one
/// second. `CB_STATUS_INVALID_ARGUMENT` for NULL or 0.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_set_probe_lease_ms(breaker: *const cb_breaker, probe_lease_ms: u64) -> cb_status {
    ffi_panic_boundary! {
        status_of(
            try_ref_from_ptr!(breaker)
                .breaker
                .set_probe_lease(Duration::from_millis(probe_lease_ms)),
        )
    }
}

/// The breaker's name, NUL-terminated; "" when unnamed or for NULL. Never
/// NULL. The string lives as long as the breaker; do not free it.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_name(breaker: *const cb_breaker) -> *const c_char {
    ffi_panic_boundary! {
        try_ref_from_ptr!(breaker).name.as_ptr()
    }
}
