//! The one place atomics come from.
//!
//! Normal builds use `core`'s atomics; builds with `--cfg breakerbox_loom`
//! use loom's, so the loom models check the very code that ships.

#[cfg(not(breakerbox_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(breakerbox_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Stripes of a rate window that one thread may own (see `window.rs`).
#[cfg(not(breakerbox_loom))]
pub(crate) const OWNED_STRIPES: usize = 15;
// Under loom every thread takes the shared stripe: its CAS is what is modelled.
#[cfg(breakerbox_loom)]
pub(crate) const OWNED_STRIPES: usize = 0;

/// Whether `index` names an owned stripe (never, under loom).
#[inline]
#[allow(clippy::absurd_extreme_comparisons)] // OWNED_STRIPES is 0 under loom
pub(crate) fn owns_stripe(index: usize) -> bool {
    index < OWNED_STRIPES
}

/// Which rate-window stripe this thread owns: below [`OWNED_STRIPES`], a
/// stripe no other live thread writes; otherwise none (use the shared one).
/// A thread claims a free stripe on first use and frees it when it exits,
/// so short-lived threads recycle stripes. Not a modelled atomic under loom:
/// the claim word is touched only at a thread's first use and exit.
#[inline]
pub(crate) fn thread_index() -> usize {
    let index = stripe::INDEX.with(core::cell::Cell::get);
    if owns_stripe(index) {
        return index;
    }
    stripe::not_owned(index)
}

mod stripe {
    use super::owns_stripe;
    use core::cell::Cell;
    use core::sync::atomic::{AtomicU32, Ordering::*};

    /// Not yet asked for a stripe.
    const UNCLAIMED: usize = usize::MAX - 1;
    /// No stripe of its own: the shared one.
    const NONE: usize = usize::MAX;

    static CLAIMED: AtomicU32 = AtomicU32::new(0);

    thread_local! {
        /// The stripe as last known: constant-initialized and without a
        /// destructor, so reading it is one load with no first-use check.
        pub(super) static INDEX: Cell<usize> = const { Cell::new(UNCLAIMED) };
        /// Frees the stripe when the thread exits.
        static CLAIM: Claim = Claim(claim());
    }

    struct Claim(usize);

    impl Drop for Claim {
        fn drop(&mut self) {
            // A thread being torn down owns nothing any more; it may still
            // record (from another destructor), on the shared stripe.
            let _ = INDEX.try_with(|i| i.set(NONE));
            if owns_stripe(self.0) {
                // Release: the next owner sees this thread's last records.
                CLAIMED.fetch_and(!(1 << self.0), Release);
            }
        }
    }

    fn claim() -> usize {
        let mut current = CLAIMED.load(Relaxed);
        loop {
            let free = (!current).trailing_zeros() as usize;
            if !owns_stripe(free) {
                return NONE;
            }
            match CLAIMED.compare_exchange_weak(current, current | 1 << free, Acquire, Relaxed) {
                Ok(_) => return free,
                Err(actual) => current = actual,
            }
        }
    }

    /// A thread on the shared stripe, or at its first use: claims a stripe
    /// then, and remembers the answer.
    #[inline(never)]
    pub(super) fn not_owned(index: usize) -> usize {
        if index != UNCLAIMED {
            return index;
        }
        // A thread being torn down owns nothing any more.
        let index = CLAIM.try_with(|c| c.0).unwrap_or(NONE);
        let _ = INDEX.try_with(|i| i.set(index));
        index
    }
}
