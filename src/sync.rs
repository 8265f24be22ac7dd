//! The one place atomics come from.
//!
//! Normal builds use `core`'s atomics; builds with `--cfg breakerbox_loom`
//! use loom's, so the loom models check the very code that ships.

#[cfg(not(breakerbox_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(breakerbox_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A small number fixed per thread, handed out round-robin: which stripe of
/// a rate window this thread writes. Not a modelled atomic under loom: no
/// ordering depends on it, only which cache line a thread tends to write.
#[inline]
pub(crate) fn thread_index() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}
