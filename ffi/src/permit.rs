//! Permits: asking to run a call, and recording how it ended.

use crate::boundary::write_out;
use crate::handle::{cb_breaker, FfiBreaker};
use crate::policy::CB_NO_VALUE;
use crate::status::{cb_status, RawOutcome};
use breakerbox::{InvalidTicket, Recorded, Rejected, Ticket};
use std::time::Duration;

/// Leave to run one call, returned by `cb_try_acquire` and passed back by
/// value to `cb_record`. An opaque token: its bits mean nothing to the caller.
/// Bits from another breaker, forged bits, and a permit with any of its bits
/// changed are refused (`CB_STATUS_INVALID_ARGUMENT`); a keyed check covers
/// every field, so only a change guessing the key (about one chance in 2^32)
/// could pass.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cb_permit {
    /// The token; copy it, never compute it.
    pub bits: u64,
}

/// Seals a handle's tickets into permits and opens them again.
///
/// The core refuses a ticket whose high 32 bits are not its breaker's random
/// tag, but it takes the low 32 (the kind and episode) as they come. A
/// permit therefore carries `tag ^ (low * key)` in its high half, `key` a
/// random odd number per handle: multiplying by an odd number is a bijection
/// of the 32-bit integers, so any change to the low half alone changes what
/// opening yields for the high half and the core refuses it; any change to
/// the high half alone is refused as before. Changes to both halves pass
/// only when they match, about once in 2^32 for bits picked at random. This
/// is an integrity check against mistakes (and fuzzers), not a MAC against a
/// caller who studies the permits it is given.
#[derive(Clone, Copy)]
pub(crate) struct PermitKey(u32);

impl PermitKey {
    pub(crate) fn new() -> PermitKey {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(1);
        PermitKey(hasher.finish() as u32 | 1)
    }

    /// XORed into the high half; depends on the low half only, so sealing
    /// and opening are the same operation.
    #[inline]
    fn mask(self, bits: u64) -> u64 {
        u64::from((bits as u32).wrapping_mul(self.0)) << 32
    }

    #[inline]
    fn seal(self, ticket: Ticket) -> cb_permit {
        let bits = ticket.to_bits();
        cb_permit {
            bits: bits ^ self.mask(bits),
        }
    }

    #[inline]
    fn open(self, permit: cb_permit) -> Ticket {
        Ticket::from_bits(permit.bits ^ self.mask(permit.bits))
    }
}

/// Asks to run one call. On `CB_STATUS_OK` writes a permit to `*out_permit`:
/// run the call, then give the permit to `cb_record`. On `CB_STATUS_REJECTED`
/// do not run the call; `*out_permit` is not written.
///
/// In the closed state this is one atomic load. A permit never recorded is
/// not counted as a failure; a half-open probe's slot is reclaimed after the
/// probe lease (by default the reset timeout, at least one second).
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`; `out_permit` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cb_try_acquire(breaker: *const cb_breaker, out_permit: *mut cb_permit) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        try_non_null!(out_permit);
        match acquire(handle) {
            Ok(permit) => {
                // SAFETY: `out_permit` is non-NULL and writable per the contract.
                unsafe { write_out(out_permit, permit) };
                cb_status::Ok
            }
            Err(_) => cb_status::Rejected,
        }
    }
}

fn acquire(handle: &FfiBreaker) -> Result<cb_permit, Rejected> {
    handle
        .breaker
        .acquire_ticket()
        .map(|ticket| handle.key.seal(ticket))
}

/// As `cb_try_acquire`, and on `CB_STATUS_REJECTED` writes to
/// `*out_retry_after_ms` how long until the breaker may admit a probe, in
/// milliseconds from the rejection's own clock reading, or `CB_NO_VALUE`
/// when it is not known. On `CB_STATUS_OK` it writes the permit and leaves
/// `*out_retry_after_ms` alone; on `CB_STATUS_REJECTED` the reverse.
///
/// * Open: the time left of the open period (read from a coarse clock, so
///   it may exceed the truth by a few milliseconds, never fall short of
///   it); `CB_NO_VALUE` while a backoff is still choosing the period.
/// * Half-open with every probe slot taken: the time left on the latest
///   probe's lease, an upper bound (a probe recorded sooner frees its slot
///   sooner).
/// * `CB_NO_VALUE` also for a shared breaker rejecting by its fault policy
///   or by the fleet's state when its local mirror would admit.
///
/// `CB_STATUS_INVALID_ARGUMENT` when any pointer is NULL.
///
/// # Safety
///
/// `breaker` is NULL or a live handle; `out_permit` and
/// `out_retry_after_ms` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cb_try_acquire_retry_after(
    breaker: *const cb_breaker,
    out_permit: *mut cb_permit,
    out_retry_after_ms: *mut u64,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        try_non_null!(out_permit);
        try_non_null!(out_retry_after_ms);
        match acquire(handle) {
            Ok(permit) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { write_out(out_permit, permit) };
                cb_status::Ok
            }
            Err(rejected) => {
                let ms = rejected
                    .retry_after()
                    .map_or(CB_NO_VALUE, |d| u64::try_from(d.as_millis()).unwrap_or(CB_NO_VALUE));
                // SAFETY: as above.
                unsafe { write_out(out_retry_after_ms, ms) };
                cb_status::Rejected
            }
        }
    }
}

/// Records how the call admitted with `permit` ended.
///
/// Returns `CB_STATUS_OK`; `CB_STATUS_STALE_PERMIT` when the permit was
/// already recorded or its episode has ended (nothing changes);
/// `CB_STATUS_INVALID_ARGUMENT` for a NULL breaker, an outcome outside
/// `cb_outcome`, or bits this breaker never issued.
///
/// A probe permit recorded twice is stale (each probe holds its own slot),
/// among the first 16 probes admitted in its half-open episode; after that a
/// second record may free another probe's slot. A closed-state permit
/// recorded twice is stale only if the state changed in between (a second
/// success changes nothing anyway; a second failure counts again). Record
/// each permit once.
///
/// # Safety
///
/// `breaker` is NULL or a live handle from `cb_new`.
#[no_mangle]
pub unsafe extern "C" fn cb_record(
    breaker: *const cb_breaker,
    permit: cb_permit,
    outcome: RawOutcome,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        record(handle, permit, outcome, None)
    }
}

/// Records `permit` with its duration, if known.
fn record(
    handle: &FfiBreaker,
    permit: cb_permit,
    outcome: RawOutcome,
    elapsed: Option<Duration>,
) -> cb_status {
    let Some(outcome) = outcome.to_outcome() else {
        return cb_status::InvalidArgument;
    };
    let ticket = handle.key.open(permit);
    status_of_record(match elapsed {
        None => handle.breaker.record(ticket, outcome),
        Some(elapsed) => handle.breaker.record_timed(ticket, outcome, elapsed),
    })
}

fn status_of_record(recorded: Result<Recorded, InvalidTicket>) -> cb_status {
    match recorded {
        Ok(Recorded::Stale) => cb_status::StalePermit,
        Ok(Recorded::Counted | Recorded::Transitioned(_)) => cb_status::Ok,
        Err(_) => cb_status::InvalidArgument,
    }
}

/// As `cb_record`, with how long the call took in milliseconds, measured by
/// the caller. With a slow-call duration set (see
/// `cb_builder_set_slow_call_duration_ms`) a call longer than it counts as
/// slow, whatever its outcome; otherwise the duration is not used.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_record_timed(
    breaker: *const cb_breaker,
    permit: cb_permit,
    outcome: RawOutcome,
    elapsed_ms: u64,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        record(handle, permit, outcome, Some(Duration::from_millis(elapsed_ms)))
    }
}

/// A permit that lets the breaker time its call: returned by
/// `cb_try_acquire_timed`, passed back by value to `cb_record_timed_permit`.
/// A plain value like `cb_permit`; copy it, never compute it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cb_timed_permit {
    /// The permit itself (may also be given to `cb_record`, untimed).
    pub permit: cb_permit,
    /// When the call started, in milliseconds on the breaker's clock;
    /// `CB_NO_VALUE` when the breaker does not time calls.
    pub started_ms: u64,
}

/// As `cb_try_acquire`, but the breaker times the call from now until
/// `cb_record_timed_permit`. The clock is read only when a slow-call
/// duration is set (the breaker's clock: the system's monotonic clock, or
/// the builder's `cb_builder_set_clock`); otherwise this costs what
/// `cb_try_acquire` does. `*out` is written only on `CB_STATUS_OK`.
///
/// # Safety
///
/// `breaker` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cb_try_acquire_timed(
    breaker: *const cb_breaker,
    out: *mut cb_timed_permit,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        try_non_null!(out);
        match acquire(handle) {
            Ok(permit) => {
                let started_ms = handle.timer.as_ref().map_or(CB_NO_VALUE, |clock| clock.now_ms());
                // SAFETY: `out` is non-NULL and writable per the contract.
                unsafe { write_out(out, cb_timed_permit { permit, started_ms }) };
                cb_status::Ok
            }
            Err(_) => cb_status::Rejected,
        }
    }
}

/// Records how the call admitted with `timed` ended, with the time since
/// `cb_try_acquire_timed` issued it (as `cb_record_timed` would with that
/// duration; as `cb_record` when the breaker does not time calls). Returns
/// what `cb_record` returns.
///
/// # Safety
///
/// `breaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cb_record_timed_permit(
    breaker: *const cb_breaker,
    timed: cb_timed_permit,
    outcome: RawOutcome,
) -> cb_status {
    ffi_panic_boundary! {
        let handle = try_ref_from_ptr!(breaker);
        let elapsed = match (&handle.timer, timed.started_ms) {
            (Some(clock), started) if started != CB_NO_VALUE => {
                Some(Duration::from_millis(clock.now_ms().saturating_sub(started)))
            }
            _ => None,
        };
        record(handle, timed.permit, outcome, elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cb_config, cb_config_default, cb_force_half_open, cb_free, RawOutcome};
    use std::ptr;

    fn new(half_open_max_calls: u32) -> *mut cb_breaker {
        let config = cb_config {
            half_open_max_calls,
            ..cb_config_default()
        };
        let mut out = ptr::null_mut();
        // SAFETY: valid pointers.
        assert_eq!(unsafe { crate::cb_new(&config, &mut out) }, cb_status::Ok);
        out
    }

    /// Records `permit` with each one of its 64 bits flipped in turn.
    ///
    /// # Safety
    ///
    /// `b` is a live handle.
    unsafe fn assert_every_bit_edit_refused(b: *const cb_breaker, permit: cb_permit, what: &str) {
        for bit in 0..64 {
            let edited = cb_permit {
                bits: permit.bits ^ (1 << bit),
            };
            for outcome in 0..3 {
                // SAFETY: `b` is live per this function's contract.
                let status = unsafe { cb_record(b, edited, RawOutcome(outcome)) };
                assert_eq!(
                    status,
                    cb_status::InvalidArgument,
                    "{what} permit, bit {bit} flipped"
                );
            }
        }
    }

    #[test]
    fn every_single_bit_edit_of_a_permit_is_refused() {
        let b = new(2);
        let mut closed = cb_permit { bits: 0 };
        let mut probe = cb_permit { bits: 0 };
        // SAFETY: `b` is live until cb_free; the permits are written on Ok.
        unsafe {
            assert_eq!(cb_try_acquire(b, &mut closed), cb_status::Ok);
            assert_every_bit_edit_refused(b, closed, "closed");
            assert_eq!(cb_force_half_open(b), cb_status::Ok);
            assert_eq!(cb_try_acquire(b, &mut probe), cb_status::Ok);
            assert_every_bit_edit_refused(b, probe, "probe");
            assert_eq!(cb_record(b, probe, RawOutcome(0)), cb_status::Ok);
            cb_free(b);
        }
    }

    #[test]
    fn a_permit_of_one_handle_is_refused_by_another() {
        let (a, b) = (new(1), new(1));
        let mut permit = cb_permit { bits: 0 };
        // SAFETY: both handles are live until cb_free.
        unsafe {
            assert_eq!(cb_try_acquire(a, &mut permit), cb_status::Ok);
            assert_eq!(cb_record(b, permit, RawOutcome(1)), cb_status::InvalidArgument);
            assert_eq!(cb_record(a, permit, RawOutcome(1)), cb_status::Ok);
            cb_free(a);
            cb_free(b);
        }
    }
}
