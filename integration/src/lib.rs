//! Nothing to link: this crate holds breakerbox's tests and examples that
//! need heavy dependencies (`tests/`, `examples/`), so that the root crate's
//! own examples build with the library alone.
