//! The boundary machinery: every exported function body runs inside
//! `ffi_panic_boundary!`, and every handle is converted through
//! [`Castable`], as in rustls-ffi.

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
            Err(_) => return $crate::boundary::PanicOrDefault::value(),
        }
    };
}

/// Borrows the Rust value behind a handle, or returns the function's
/// [`NullOrDefault`] value when the pointer is NULL.
macro_rules! try_ref_from_ptr {
    ( $ptr:expr ) => {
        // SAFETY: every exported function taking a handle requires, in its
        // `# Safety` section, that it be NULL (caught here) or a live handle
        // that no other thread frees during the call.
        match unsafe { $crate::boundary::try_ref_from_ptr($ptr) } {
            Some(value) => value,
            None => return $crate::boundary::NullOrDefault::value(),
        }
    };
}

/// Borrows the Rust value behind a handle mutably, or returns the
/// function's [`NullOrDefault`] value when the pointer is NULL.
macro_rules! try_mut_from_ptr {
    ( $ptr:expr ) => {
        // SAFETY: every exported function taking a `*mut` handle requires,
        // in its `# Safety` section, that it be NULL (caught here) or a live
        // handle that no other call uses at the same time.
        match unsafe { $crate::boundary::try_mut_from_ptr($ptr) } {
            Some(value) => value,
            None => return $crate::boundary::NullOrDefault::value(),
        }
    };
}

/// Returns the function's [`NullOrDefault`] value when `ptr` is NULL.
macro_rules! try_non_null {
    ( $ptr:expr ) => {
        if $ptr.is_null() {
            return $crate::boundary::NullOrDefault::value();
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
    // None) or points to a live, initialised `C::RustType` in a Box.
    unsafe { ptr.cast::<C::RustType>().as_ref() }
}

/// Borrows the value behind `ptr` mutably; `None` when it is NULL.
///
/// # Safety
///
/// As [`try_ref_from_ptr`], and no other reference to the value is used
/// during `'a`.
pub(crate) unsafe fn try_mut_from_ptr<'a, C: Castable>(ptr: *mut C) -> Option<&'a mut C::RustType> {
    // SAFETY: per this function's contract the pointer is NULL or points to
    // a live `C::RustType` in a Box that nothing else uses meanwhile.
    unsafe { ptr.cast::<C::RustType>().as_mut() }
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

/// Writes `value` to an out-parameter already checked to be non-NULL.
///
/// # Safety
///
/// `out` is non-NULL and writable (every exported function with an
/// out-parameter requires it, and checks NULL with `try_non_null!`).
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: per this function's contract.
    unsafe { out.write(value) }
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
