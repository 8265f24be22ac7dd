//! Permits: asking to run a call, and recording how it ended.

use crate::handle::cb_breaker;
use crate::status::{cb_status, RawOutcome};
use breakerbox::{Recorded, Ticket};

/// Leave to run one call, returned by `cb_try_acquire` and passed back by
/// value to `cb_record`. An opaque token: its bits mean nothing to the caller
/// and forged bits are refused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cb_permit {
    /// The token; copy it, never compute it.
    pub bits: u64,
}

/// Turns a ticket into a permit and back.
#[derive(Clone, Copy)]
pub(crate) struct PermitKey;

impl PermitKey {
    pub(crate) fn new() -> PermitKey {
        PermitKey
    }

    fn seal(self, ticket: Ticket) -> cb_permit {
        cb_permit {
            bits: ticket.to_bits(),
        }
    }

    fn open(self, permit: cb_permit) -> Ticket {
        Ticket::from_bits(permit.bits)
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
        match handle.breaker.acquire_ticket() {
            Ok(ticket) => {
                // SAFETY: `out_permit` is non-NULL and writable per the contract.
                unsafe { crate::boundary::write_out(out_permit, handle.key.seal(ticket)) };
                cb_status::Ok
            }
            Err(_) => cb_status::Rejected,
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
/// Recording twice is caught as far as one atomic word allows: a probe permit
/// recorded twice is stale whenever no other probe is in flight (always so
/// with `half_open_max_calls` 1); a closed-state permit recorded twice is
/// stale only if the state changed in between (a second success changes
/// nothing anyway; a second failure counts again). Record each permit once.
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
        let Some(outcome) = outcome.to_outcome() else {
            return cb_status::InvalidArgument;
        };
        match handle.breaker.record(handle.key.open(permit), outcome) {
            Ok(Recorded::Stale) => cb_status::StalePermit,
            Ok(Recorded::Counted | Recorded::Transitioned(_)) => cb_status::Ok,
            Err(_) => cb_status::InvalidArgument,
        }
    }
}
