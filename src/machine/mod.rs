//! The core: the state word and everything its decisions read (settings,
//! the clock, the rate windows, the open-duration backoff) and the events a
//! decision leaves for the listeners. Nothing here knows of a breaker, a
//! store or an integration; the layers above import it, never the reverse.

pub(crate) mod backoff;
pub mod clock;
pub(crate) mod config_error;
pub(crate) mod events;
pub(crate) mod settings;
pub(crate) mod state;
pub(crate) mod window;
