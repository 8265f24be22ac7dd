//! The one place atomics come from.
//!
//! Normal builds use `core`'s atomics; builds with `--cfg breakerbox_loom`
//! use loom's, so the loom models check the very code that ships.

#[cfg(not(breakerbox_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(breakerbox_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
