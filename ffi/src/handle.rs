//! The breaker handle: its release, queries, forced states and setters.

use crate::boundary::{free_box, Castable};
use crate::permit::PermitKey;
use crate::status::{cb_state, cb_status, status_of};
use breakerbox::clock::Clock;
use breakerbox::CircuitBreaker;
use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

/// A circuit breaker. Opaque: made by `cb_new` (or `cb_builder_build`),
/// released by `cb_free`.
///
/// Every function taking a `const cb_breaker *` is thread-safe; lock-free for
/// `cb_new` handles.
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
    /// The breaker's clock, for `cb_try_acquire_timed`; `None` when the
    /// duration of a call does not count (no slow-call duration).
    pub(crate) timer: Option<Arc<dyn Clock>>,
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
        match try_ref_from_ptr!(breaker)
            .breaker
            .set_reset_timeout(Duration::from_millis(reset_timeout_ms))
        {
            Ok(()) => cb_status::Ok,
            Err(error) => error.into(),
        }
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

/// How the store sharing a breaker's state is doing, as `cb_get_storage_health`
/// reports it. Its layout is frozen, as `cb_config`'s is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cb_storage_health {
    /// 1 for a breaker whose state is shared (`cb_new_redis`, or a builder
    /// with Redis settings); 0 for one whose state is in memory, which has
    /// no store: the other fields are then 1, 0 and 0.
    pub shared: u32,
    /// 1 while calls reach the store; 0 while they decide by the fault
    /// policy and the breaker reconnects in the background.
    pub reachable: u32,
    /// Milliseconds since `reachable` last changed (since the breaker was
    /// built, if it never did), on the system's monotonic clock.
    pub for_ms: u64,
    /// Bytes in the message of the latest fault met, without its NUL; 0 when
    /// none was. The message is copied into the caller's buffer.
    pub last_error_len: usize,
}

/// Writes how the store sharing the breaker's state is doing to `*out`, and
/// the latest fault's message (NUL-terminated, cut at a character boundary
/// to fit) to `error_buf` when it is not NULL and `error_buf_len` is not 0;
/// `out->last_error_len` tells how long the whole message is, so a buffer
/// of `last_error_len + 1` bytes holds it. The same message reaches the
/// storage-error callback as each fault happens. Reading it runs no
/// callback and contacts no store.
///
/// `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` for a NULL `breaker` or
/// `out` (nothing is written).
///
/// # Safety
///
/// `breaker` is NULL or a live handle; `out` is NULL or writable;
/// `error_buf` is NULL or writable for `error_buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cb_get_storage_health(
    breaker: *const cb_breaker,
    out: *mut cb_storage_health,
    error_buf: *mut c_char,
    error_buf_len: usize,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        try_non_null!(out);
        let health = handle.breaker.storage_health();
        let message = health.as_ref().and_then(|h| h.last_error.as_deref()).unwrap_or("");
        let report = match &health {
            None => cb_storage_health { shared: 0, reachable: 1, for_ms: 0, last_error_len: 0 },
            Some(h) => cb_storage_health {
                shared: 1,
                reachable: u32::from(h.reachable),
                for_ms: u64::try_from(h.since.elapsed().as_millis()).unwrap_or(u64::MAX),
                last_error_len: message.len(),
            },
        };
        // SAFETY: NULL or writable for `error_buf_len` bytes per the contract.
        unsafe { copy_c_string(message, error_buf, error_buf_len) };
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { crate::boundary::write_out(out, report) };
        cb_status::Ok
    }
}

/// Copies as much of `text` as fits into `buf` (cut at a character
/// boundary), NUL-terminated; nothing for a NULL or empty buffer.
///
/// # Safety
///
/// `buf` is NULL or writable for `len` bytes, and does not overlap `text`.
unsafe fn copy_c_string(text: &str, buf: *mut c_char, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut fit = text.len().min(len - 1);
    while !text.is_char_boundary(fit) {
        fit -= 1;
    }
    // SAFETY: `fit + 1 <= len` bytes of `buf` are written, per the contract.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), fit);
        buf.add(fit).write(0);
    }
}

#[cfg(test)]
mod tests {
    use super::copy_c_string;
    use std::ffi::{c_char, CStr};

    fn copied(text: &str, len: usize) -> Vec<u8> {
        let mut buf = [b'#' as c_char; 8];
        // SAFETY: `buf` has 8 writable bytes, `len` is at most 8.
        unsafe { copy_c_string(text, buf.as_mut_ptr(), len) };
        if len == 0 {
            return Vec::new();
        }
        // SAFETY: a NUL was written within the buffer.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes().to_vec()
    }

    #[test]
    fn a_message_is_cut_to_fit_at_a_character_boundary() {
        assert_eq!(copied("refused", 8), b"refused");
        assert_eq!(copied("refused!", 8), b"refused");
        assert_eq!(copied("refused", 1), b"");
        assert_eq!(copied("refused", 0), b"");
        // "é" is two bytes: a cut inside it drops the whole character.
        assert_eq!(copied("abcdeé", 7), "abcde".as_bytes());
        assert_eq!(copied("abcdeé", 8), "abcdeé".as_bytes());
    }
}
