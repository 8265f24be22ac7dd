//! The enums C sees (states, outcomes, status codes), their checks, and the
//! static strings the library returns.

use crate::boundary::{NullOrDefault, PanicOrDefault};
use breakerbox::{Outcome, State};
use std::ffi::c_char;

/// The three states of a circuit breaker.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_state {
    /// Calls flow; consecutive failures are counted.
    Closed = 0,
    /// Calls are rejected until the reset timeout has passed.
    Open = 1,
    /// A limited number of probe calls decide whether to close again.
    HalfOpen = 2,
}

/// How a call ended, as far as the breaker is concerned.
///
/// Functions take it as a 32-bit integer and check it: a value outside this
/// list is `CB_STATUS_INVALID_ARGUMENT`, never undefined behaviour.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_outcome {
    /// The dependency answered: resets the failure count, counts toward closing.
    Success = 0,
    /// The dependency failed: counts toward tripping, re-opens from half-open.
    Failure = 1,
    /// Counts as neither; frees a probe slot.
    Ignored = 2,
}

/// What a call into the library did. New codes may be added after the last.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cb_status {
    /// Done.
    Ok = 0,
    /// The breaker refused the call (open, or half-open with every probe slot
    /// taken): do not run it; serve a fallback.
    Rejected = 1,
    /// The permit's episode has ended, or it is a probe permit already
    /// recorded (caught among the first 16 probes of a half-open episode of
    /// a `cb_new` handle; a `cb_new_redis` handle's fleet counts probes, so
    /// there a second record frees another probe's slot while one is in
    /// flight), or the permit of a call that a `CB_MODE_METRICS_ONLY`
    /// breaker admitted where it would have rejected it: nothing changed.
    StalePermit = 2,
    /// A NULL pointer, an out-of-range value, an invalid UTF-8 name, or permit
    /// bits this breaker never issued (forged or edited). Nothing changed.
    InvalidArgument = 3,
    /// The library panicked inside the call. A bug: please report it. What
    /// the call had done before the panic stays done (a permit may already
    /// be recorded); nothing is undone.
    Panic = 4,
    /// The shared-state store could not be reached. Returned only by a
    /// breaker whose state lives in a shared store, never by `cb_new` ones.
    StorageError = 5,
}

/// An outcome exactly as C passed it; [`cb_outcome`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOutcome(pub u32);

/// A status exactly as C passed it; [`cb_status`] in the header.
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStatus(pub u32);

impl From<State> for cb_state {
    fn from(state: State) -> Self {
        match state {
            State::Closed => cb_state::Closed,
            State::Open => cb_state::Open,
            State::HalfOpen => cb_state::HalfOpen,
        }
    }
}

impl RawOutcome {
    pub(crate) fn to_outcome(self) -> Option<Outcome> {
        match self.0 {
            x if x == cb_outcome::Success as u32 => Some(Outcome::Success),
            x if x == cb_outcome::Failure as u32 => Some(Outcome::Failure),
            x if x == cb_outcome::Ignored as u32 => Some(Outcome::Ignored),
            _ => None,
        }
    }
}

impl cb_status {
    /// The code's description, NUL-terminated and static.
    fn description(self) -> &'static [u8] {
        match self {
            cb_status::Ok => b"ok\0",
            cb_status::Rejected => b"rejected: the circuit breaker is open\0",
            cb_status::StalePermit => b"stale permit: already recorded or from an ended episode\0",
            cb_status::InvalidArgument => b"invalid argument\0",
            cb_status::Panic => b"internal panic\0",
            cb_status::StorageError => b"shared-state storage error\0",
        }
    }

    fn from_raw(raw: RawStatus) -> Option<cb_status> {
        [
            cb_status::Ok,
            cb_status::Rejected,
            cb_status::StalePermit,
            cb_status::InvalidArgument,
            cb_status::Panic,
            cb_status::StorageError,
        ]
        .into_iter()
        .find(|s| *s as u32 == raw.0)
    }
}

/// A store that must be reachable at build and is not is a storage error;
/// every other refusal is a bad argument.
impl From<breakerbox::ConfigError> for cb_status {
    fn from(error: breakerbox::ConfigError) -> Self {
        match error {
            #[cfg(feature = "redis")]
            breakerbox::ConfigError::Unreachable { .. } => cb_status::StorageError,
            _ => cb_status::InvalidArgument,
        }
    }
}

/// `Ok(())` as `CB_STATUS_OK`, an error as its status.
pub(crate) fn status_of<E: Into<cb_status>>(result: Result<(), E>) -> cb_status {
    match result {
        Ok(()) => cb_status::Ok,
        Err(error) => error.into(),
    }
}

const EMPTY: &[u8] = b"\0";
const UNKNOWN_STATUS: &[u8] = b"unknown status\0";
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

fn static_c_str(bytes: &'static [u8]) -> *const c_char {
    debug_assert_eq!(bytes.last(), Some(&0));
    bytes.as_ptr().cast()
}

impl PanicOrDefault for cb_status {
    fn value() -> Self {
        cb_status::Panic
    }
}

impl NullOrDefault for cb_status {
    fn value() -> Self {
        cb_status::InvalidArgument
    }
}

/// Unknown means "do not call": the safe answer is open.
impl PanicOrDefault for cb_state {
    fn value() -> Self {
        cb_state::Open
    }
}

impl NullOrDefault for cb_state {
    fn value() -> Self {
        cb_state::Open
    }
}

/// Strings returned to C are never NULL: the default is "".
impl PanicOrDefault for *const c_char {
    fn value() -> Self {
        static_c_str(EMPTY)
    }
}

impl NullOrDefault for *const c_char {
    fn value() -> Self {
        static_c_str(EMPTY)
    }
}

/// A static description of `status`; "unknown status" for a value outside
/// `cb_status`. Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn cb_status_str(status: RawStatus) -> *const c_char {
    ffi_panic_boundary! {
        static_c_str(cb_status::from_raw(status).map_or(UNKNOWN_STATUS, cb_status::description))
    }
}

/// The library's version, e.g. "0.1.0": static, never NULL. It equals
/// "BREAKERBOX_VERSION_MAJOR.BREAKERBOX_VERSION_MINOR.BREAKERBOX_VERSION_PATCH"
/// when the header and the library match.
#[no_mangle]
pub extern "C" fn cb_version() -> *const c_char {
    ffi_panic_boundary! {
        static_c_str(VERSION.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BREAKERBOX_VERSION_MAJOR, BREAKERBOX_VERSION_MINOR, BREAKERBOX_VERSION_PATCH};
    use std::ffi::CStr;

    fn panicking_status() -> cb_status {
        ffi_panic_boundary! {
            panic!("a bug inside the library")
        }
    }

    fn panicking_state() -> cb_state {
        ffi_panic_boundary! {
            panic!("a bug inside the library")
        }
    }

    fn panicking_string() -> *const c_char {
        ffi_panic_boundary! {
            panic!("a bug inside the library")
        }
    }

    #[test]
    fn the_boundary_turns_a_panic_into_the_documented_default() {
        assert_eq!(panicking_status(), cb_status::Panic);
        assert_eq!(panicking_state(), cb_state::Open);
        // SAFETY: the default string is a static C string.
        assert_eq!(unsafe { CStr::from_ptr(panicking_string()) }.to_bytes(), b"");
    }

    #[test]
    fn status_strings_are_static_and_total() {
        for raw in 0..=6 {
            // SAFETY: cb_status_str never returns NULL and its strings are static C strings.
            let text = unsafe { CStr::from_ptr(cb_status_str(RawStatus(raw))) };
            assert!(!text.to_bytes().is_empty());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(cb_status_str(RawStatus(6))) };
        assert_eq!(unknown.to_bytes(), b"unknown status");
        // SAFETY: cb_version returns a static C string.
        let version = unsafe { CStr::from_ptr(cb_version()) };
        assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
        let numbers =
            format!("{BREAKERBOX_VERSION_MAJOR}.{BREAKERBOX_VERSION_MINOR}.{BREAKERBOX_VERSION_PATCH}");
        assert_eq!(
            numbers,
            env!("CARGO_PKG_VERSION"),
            "update the header's version constants"
        );
    }
}
