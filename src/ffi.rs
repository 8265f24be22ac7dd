//! The C ABI.
//!
//! An opaque [`cb_breaker`] handle owns a [`CircuitBreaker`]; C takes a
//! permit with [`cb_try_acquire`] before the protected call and gives it back
//! with [`cb_record`] after it. `include/breakerbox.h` is generated from this
//! file by cbindgen (`cbindgen.toml`), so the doc comments here are the C
//! documentation.
//!
//! The boundary follows rustls-ffi:
//!
//! * the handle is tied to its Rust type through one trait, [`Castable`], and
//!   every pointer is converted through it, so a handle cannot be cast two ways;
//! * every exported body runs inside one panic boundary, `ffi_panic_boundary!`:
//!   a panic becomes [`cb_status::Panic`] or the function's documented default;
//! * NULL pointers are caught by `try_ref_from_ptr!` / `try_non_null!`, which
//!   return the function's documented error value;
//! * enums that come *from* C are taken as raw integers and checked, because a
//!   C caller can pass any value and an out-of-range Rust enum is undefined
//!   behaviour.

#![allow(non_camel_case_types)]

use crate::{
    CircuitBreaker, Listener, Outcome, Recorded, State, Ticket, DEFAULT_FAIL_MAX,
    DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD,
};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

// ---------------------------------------------------------------------------
// The boundary machinery.
// ---------------------------------------------------------------------------

/// What an exported function returns when its body panicked.
pub(crate) trait PanicOrDefault {
    fn value() -> Self;
}

/// What an exported function returns when a required pointer is NULL.
pub(crate) trait NullOrDefault {
    fn value() -> Self;
}

/// Runs an exported function's body, turning a panic into the function's
/// [`PanicOrDefault`] value. Every `extern "C"` body goes through it.
macro_rules! ffi_panic_boundary {
    ( $($body:tt)* ) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(ret) => ret,
            Err(_) => return $crate::ffi::PanicOrDefault::value(),
        }
    };
}

/// Borrows the Rust value behind a handle, or returns the function's
/// [`NullOrDefault`] value when the pointer is NULL.
macro_rules! try_ref_from_ptr {
    ( $ptr:expr ) => {
        // SAFETY: every exported function taking a handle requires, in its
        // `# Safety` section, that it be NULL (caught here) or a live handle
        // from `cb_new` that no other thread frees during the call.
        match unsafe { $crate::ffi::try_ref_from_ptr($ptr) } {
            Some(value) => value,
            None => return $crate::ffi::NullOrDefault::value(),
        }
    };
}

/// Returns the function's [`NullOrDefault`] value when `ptr` is NULL.
macro_rules! try_non_null {
    ( $ptr:expr ) => {
        if $ptr.is_null() {
            return $crate::ffi::NullOrDefault::value();
        }
    };
}

/// Ties a C handle type to the Rust type it points to. Every conversion
/// between the two goes through this trait.
pub(crate) trait Castable {
    /// The Rust value a handle of this type points to.
    type RustType;
}

/// Borrows the value behind `ptr`; `None` when it is NULL.
///
/// # Safety
///
/// `ptr` is NULL or was returned by [`to_boxed_mut_ptr`] for the same `C`
/// and has not been given to [`free_box`]; it stays live for `'a`.
pub(crate) unsafe fn try_ref_from_ptr<'a, C: Castable>(ptr: *const C) -> Option<&'a C::RustType> {
    // SAFETY: per this function's contract the pointer is NULL (as_ref gives
    // None) or points to a live, initialised `C::RustType` in a Box; only
    // shared references are ever made from it.
    unsafe { ptr.cast::<C::RustType>().as_ref() }
}

/// Moves `value` to the heap and returns it as an opaque handle.
pub(crate) fn to_boxed_mut_ptr<C: Castable>(value: C::RustType) -> *mut C {
    Box::into_raw(Box::new(value)).cast()
}

/// Drops the value behind a handle made by [`to_boxed_mut_ptr`]; NULL is a no-op.
///
/// # Safety
///
/// `ptr` is NULL or came from [`to_boxed_mut_ptr`] for the same `C`, has not
/// been freed before, and no reference to it is used afterwards.
pub(crate) unsafe fn free_box<C: Castable>(ptr: *mut C) {
    if !ptr.is_null() {
        // SAFETY: per this function's contract `ptr` is the `Box::into_raw`
        // of a `C::RustType` and this is its only release.
        drop(unsafe { Box::from_raw(ptr.cast::<C::RustType>()) });
    }
}

// ---------------------------------------------------------------------------
// The C types.
// ---------------------------------------------------------------------------

/// A circuit breaker. Opaque: made by `cb_new`, released by `cb_free`.
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
    breaker: CircuitBreaker,
    /// The name, NUL-terminated, for `cb_name`.
    name: CString,
}

impl Castable for cb_breaker {
    type RustType = FfiBreaker;
}

/// Leave to run one call, returned by `cb_try_acquire` and passed back by
/// value to `cb_record`. An opaque token: its bits mean nothing to the caller
/// and forged bits are refused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cb_permit {
    /// The token; copy it, never compute it.
    pub bits: u64,
}

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
    /// The permit's episode has ended, or it was already recorded: nothing changed.
    StalePermit = 2,
    /// A NULL pointer, an out-of-range value, an invalid UTF-8 name, or permit
    /// bits this breaker never issued. Nothing changed.
    InvalidArgument = 3,
    /// The library panicked; the call was abandoned. A bug: please report it.
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

/// Called once per state change, on the thread whose call made it, after the
/// new state is visible (`cb_current_state(breaker)` returns `to` unless yet
/// another change has happened since). `breaker` is the handle `cb_new`
/// returned. The callback must not call `cb_free` on it, must not unwind
/// (throw) into the library, and should be quick: the call that made the
/// transition waits for it.
pub type cb_state_change_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, breaker: *const cb_breaker, from: cb_state, to: cb_state),
>;

/// Configuration for `cb_new`. Start from `cb_config_default()` and change
/// the fields you need.
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
    fn to_outcome(self) -> Option<Outcome> {
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

impl From<crate::ConfigError> for cb_status {
    fn from(_: crate::ConfigError) -> Self {
        cb_status::InvalidArgument
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

impl PanicOrDefault for u32 {
    fn value() -> Self {
        0
    }
}

impl NullOrDefault for u32 {
    fn value() -> Self {
        0
    }
}

impl PanicOrDefault for () {
    fn value() -> Self {}
}

impl NullOrDefault for () {
    fn value() -> Self {}
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

impl PanicOrDefault for cb_config {
    fn value() -> Self {
        default_config()
    }
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

// ---------------------------------------------------------------------------
// The state-change callback as a listener.
// ---------------------------------------------------------------------------

/// The handle's address, once `cb_new` has boxed it.
#[derive(Clone, Copy)]
struct HandlePtr(*const cb_breaker);

// SAFETY: the pointer is only handed back to the C callback, which may use it
// from any thread: every function taking `const cb_breaker *` is thread-safe.
unsafe impl Send for HandlePtr {}
// SAFETY: as above; the pointer itself is never dereferenced here.
unsafe impl Sync for HandlePtr {}

/// Forwards state changes to a C `cb_state_change_fn`.
struct CallbackListener {
    callback: unsafe extern "C" fn(*mut c_void, *const cb_breaker, cb_state, cb_state),
    user_data: *mut c_void,
    /// Set by `cb_new` right after boxing, before the handle is returned, so
    /// before any transition can happen. Keeping the pointer `cb_new` made
    /// (rather than re-deriving it from the `&CircuitBreaker`) keeps its
    /// provenance over the whole handle.
    handle: OnceLock<HandlePtr>,
}

// SAFETY: `cb_config::user_data` is documented as usable from any thread, and
// the callback is documented to be callable from any thread.
unsafe impl Send for CallbackListener {}
// SAFETY: as above; the listener itself holds no mutable state but a OnceLock.
unsafe impl Sync for CallbackListener {}

impl Listener for CallbackListener {
    fn state_change(&self, breaker: &CircuitBreaker, from: State, to: State) {
        let handle = self.handle.get().map_or(std::ptr::null(), |h| h.0);
        debug_assert!(
            handle.is_null() || std::ptr::eq(handle.cast::<CircuitBreaker>(), breaker),
            "the handle's address is its breaker's address"
        );
        // SAFETY: `cb_new`'s caller supplied this function pointer and
        // user_data, promising both may be used from any thread for the
        // breaker's whole life; `handle` is the live handle of `breaker`.
        unsafe { (self.callback)(self.user_data, handle, from.into(), to.into()) }
    }
}

// ---------------------------------------------------------------------------
// The exported functions.
// ---------------------------------------------------------------------------

/// The default configuration: fail_max 5, reset_timeout_ms 60000,
/// success_threshold 1, half_open_max_calls 1, no name, no callback.
#[no_mangle]
pub extern "C" fn cb_config_default() -> cb_config {
    ffi_panic_boundary! { default_config() }
}

/// Builds the breaker `config` describes (`shared` may add a shared state)
/// and boxes it as a handle; `cb_new` and `cb_new_redis` differ only there.
///
/// # Safety
///
/// `config.name` is NULL or a NUL-terminated string.
unsafe fn new_handle(
    config: &cb_config,
    shared: impl FnOnce(crate::Builder) -> Result<crate::Builder, cb_status>,
) -> Result<*mut cb_breaker, cb_status> {
    let name = if config.name.is_null() {
        CString::default()
    } else {
        // SAFETY: a non-NULL name is NUL-terminated per the contract.
        unsafe { CStr::from_ptr(config.name) }.to_owned()
    };
    let Ok(name_str) = name.to_str() else {
        return Err(cb_status::InvalidArgument);
    };
    let mut builder = CircuitBreaker::builder()
        .name(name_str)
        .fail_max(config.fail_max)
        .reset_timeout(Duration::from_millis(config.reset_timeout_ms))
        .success_threshold(config.success_threshold)
        .half_open_max_calls(config.half_open_max_calls);
    let listener = config.on_state_change.map(|callback| {
        Arc::new(CallbackListener {
            callback,
            user_data: config.user_data,
            handle: OnceLock::new(),
        })
    });
    if let Some(listener) = &listener {
        builder = builder.shared_listener(listener.clone());
    }
    let breaker = shared(builder)?.build()?;
    let handle = to_boxed_mut_ptr::<cb_breaker>(FfiBreaker { breaker, name });
    if let Some(listener) = listener {
        let _ = listener.handle.set(HandlePtr(handle));
    }
    Ok(handle)
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
        // SAFETY: non-NULL, and readable per this function's contract. Every
        // field type accepts any bit pattern C can put there.
        let config = unsafe { config.read() };
        // SAFETY: the name is NULL or NUL-terminated per this function's contract.
        let handle = match unsafe { new_handle(&config, Ok) } {
            Ok(handle) => handle,
            Err(status) => return status,
        };
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.write(handle) };
        cb_status::Ok
    }
}

/// Makes a breaker whose state is shared, through the Redis at `redis_url`,
/// with every breaker of the same namespace: one logical breaker for a fleet
/// of processes (see the README's consistency model). Writes its handle to
/// `*out`; the handle takes the same functions as a `cb_new` one, and is
/// released with `cb_free`.
///
/// `redis_url` is like "redis://127.0.0.1:6379/". `namespace_` is NULL (the
/// breaker's name, or "default") or a NUL-terminated UTF-8 name. Redis is
/// contacted now, within its timeouts (100 ms per command, 250 ms to
/// connect); a Redis that is down is not an error: the breaker decides
/// locally, reconnects in the background and re-syncs.
///
/// Returns `CB_STATUS_OK`; `CB_STATUS_INVALID_ARGUMENT` as `cb_new` does, or
/// when `redis_url` is NULL or either string is not valid UTF-8;
/// `CB_STATUS_STORAGE_ERROR` when `redis_url` is not a Redis URL. `*out` is
/// written only on `CB_STATUS_OK`.
///
/// # Safety
///
/// As `cb_new`; `redis_url` is NULL or a NUL-terminated string; `namespace_`
/// is NULL or a NUL-terminated string.
#[cfg(feature = "redis")]
#[no_mangle]
pub unsafe extern "C" fn cb_new_redis(
    config: *const cb_config,
    redis_url: *const c_char,
    namespace_: *const c_char,
    out: *mut *mut cb_breaker,
) -> cb_status {
    ffi_panic_boundary! {
        try_non_null!(config);
        try_non_null!(redis_url);
        try_non_null!(out);
        // SAFETY: non-NULL, and readable per this function's contract.
        let config = unsafe { config.read() };
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let Ok(url) = unsafe { CStr::from_ptr(redis_url) }.to_str() else {
            return cb_status::InvalidArgument;
        };
        let namespace = if namespace_.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            match unsafe { CStr::from_ptr(namespace_) }.to_str() {
                Ok(ns) => Some(ns),
                Err(_) => return cb_status::InvalidArgument,
            }
        };
        let Ok(mut state) = crate::redis::RedisState::connect(url) else {
            return cb_status::StorageError;
        };
        if let Some(ns) = namespace {
            state = state.namespace(ns);
        }
        // SAFETY: the name is NULL or NUL-terminated per the contract.
        let handle = match unsafe { new_handle(&config, |builder| Ok(builder.shared(state))) } {
            Ok(handle) => handle,
            Err(status) => return status,
        };
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.write(handle) };
        cb_status::Ok
    }
}

/// Releases a breaker made by `cb_new`. NULL is a no-op.
///
/// # Safety
///
/// `breaker` is NULL or a handle from `cb_new` not yet freed; no other call
/// may be using it, and it must not be used afterwards (nor freed from
/// inside its own state-change callback).
#[no_mangle]
pub unsafe extern "C" fn cb_free(breaker: *mut cb_breaker) {
    ffi_panic_boundary! {
        // SAFETY: per this function's contract this is the handle's one release.
        unsafe { free_box(breaker) }
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
                unsafe { out_permit.write(cb_permit { bits: ticket.to_bits() }) };
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
        match handle.breaker.record(Ticket::from_bits(permit.bits), outcome) {
            Ok(Recorded::Stale) => cb_status::StalePermit,
            Ok(Recorded::Counted | Recorded::Transitioned(_)) => cb_status::Ok,
            Err(_) => cb_status::InvalidArgument,
        }
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
        match try_ref_from_ptr!(breaker).breaker.set_fail_max(fail_max) {
            Ok(_) => cb_status::Ok,
            Err(error) => error.into(),
        }
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
        match try_ref_from_ptr!(breaker).breaker.set_success_threshold(success_threshold) {
            Ok(_) => cb_status::Ok,
            Err(error) => error.into(),
        }
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
        match try_ref_from_ptr!(breaker).breaker.set_half_open_max_calls(half_open_max_calls) {
            Ok(()) => cb_status::Ok,
            Err(error) => error.into(),
        }
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
        match try_ref_from_ptr!(breaker)
            .breaker
            .set_probe_lease(Duration::from_millis(probe_lease_ms))
        {
            Ok(()) => cb_status::Ok,
            Err(error) => error.into(),
        }
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

/// The major version of this header (the crate's version; a test keeps them equal).
pub const BREAKERBOX_VERSION_MAJOR: u32 = 0;
/// The minor version of this header.
pub const BREAKERBOX_VERSION_MINOR: u32 = 1;
/// The patch version of this header.
pub const BREAKERBOX_VERSION_PATCH: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;
    use std::sync::atomic::{AtomicU32, Ordering};

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
        handle: std::sync::atomic::AtomicPtr<cb_breaker>,
    }

    unsafe extern "C" fn on_change(
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
            handle: std::sync::atomic::AtomicPtr::new(ptr::null_mut()),
        };
        let config = cb_config {
            fail_max: 1,
            name: b"db\0".as_ptr().cast(),
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
            name: b"\xff\xfe\0".as_ptr().cast(),
            ..cb_config_default()
        };
        // SAFETY: valid pointers; the name is NUL-terminated.
        assert_eq!(unsafe { cb_new(&bad_name, &mut out) }, cb_status::InvalidArgument);
        assert!(out.is_null());
    }

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
