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
    use core::sync::atomic::{AtomicU32, Ordering::*};
    static CLAIMED: AtomicU32 = AtomicU32::new(0);
    struct Claim(usize);
    impl Drop for Claim {
        fn drop(&mut self) {
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
                return usize::MAX;
            }
            match CLAIMED.compare_exchange_weak(current, current | 1 << free, Acquire, Relaxed) {
                Ok(_) => return free,
                Err(actual) => current = actual,
            }
        }
    }
    thread_local! {
        static CLAIM: Claim = Claim(claim());
    }
    // A thread being torn down owns nothing any more.
    CLAIM.try_with(|c| c.0).unwrap_or(usize::MAX)
}
